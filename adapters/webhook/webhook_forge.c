/* webhook_forge.c: GitHub, Gitea/Forgejo and GitLab events as one chat
 * message: "*[owner/repo]* who did what", then the details (commits, the
 * link). Gitea and Forgejo send GitHub-shaped payloads with a few other
 * field names, so the two share the code through a small dialect table;
 * GitLab's payloads have their own shape. Events without a formatter get the
 * one-line summary ferry always gave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook_source.h"

#define MAX_COMMITS 5     /* commit lines shown for a push */
#define MAX_SUBJECT 120   /* bytes of a commit's first line */
#define MAX_TITLE 300
#define MAX_URL 2000

typedef struct dialect {
    const char *name;      /* as people write it */
    const char *header;    /* the event header */
    const char *compare;   /* the push's compare link */
    int ci;                /* sends workflow_run and check_suite */
} dialect_t;

static const dialect_t github = {"GitHub", "X-GitHub-Event", "compare", 1};
static const dialect_t gitea = {"Gitea", "X-Gitea-Event", "compare_url", 0};

/* ---- shared pieces ---- */

static int missing(char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "the JSON has no %s", what);
    return -1;
}

static json_int_t int_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static const char *first_of(const char *a, const char *b)
{
    return webhook_has(a) ? a : b;
}

static void add_repo(webhook_buf_t *out, const char *repo)
{
    webhook_buf_add(out, "*[");
    webhook_buf_add_line(out, repo, MAX_TITLE);
    webhook_buf_add(out, "]* ");
}

static void add_url(webhook_buf_t *out, const char *url)
{
    if (!webhook_has(url))
        return;
    webhook_buf_add(out, "\n");
    webhook_buf_add_line(out, url, MAX_URL);
}

/* "opened", "review_requested" -> "review requested". */
static void add_action(webhook_buf_t *out, const char *action)
{
    size_t start = out->len;
    webhook_buf_add_line(out, action, 60);
    for (size_t i = start; i < out->len; i++)
        if (out->buf[i] == '_')
            out->buf[i] = ' ';
}

static int zero_sha(const char *sha)
{
    return sha && *sha && strspn(sha, "0") == strlen(sha);
}

/* One line per commit (short id and subject), MAX_COMMITS at most, then
 * how many more there were (TOTAL, when the sender says; GitLab sends 20 of
 * them at most). */
static void add_commits(webhook_buf_t *out, const json_t *commits, json_int_t total)
{
    size_t i;
    json_t *c;
    json_array_foreach(commits, i, c) {
        if (i == MAX_COMMITS)
            break;
        const char *id = webhook_str(c, "id");
        webhook_buf_add(out, "\n\xe2\x80\xa2 "); /* • */
        if (webhook_has(id))
            webhook_buf_addf(out, "%.7s ", id);
        webhook_buf_add_line(out, first_of(webhook_str(c, "message"), ""), MAX_SUBJECT);
    }
    json_int_t shown = (json_int_t)(json_array_size(commits) < MAX_COMMITS ? json_array_size(commits)
                                                                           : MAX_COMMITS);
    if (total < (json_int_t)json_array_size(commits))
        total = (json_int_t)json_array_size(commits);
    if (total > shown)
        webhook_buf_addf(out, "\n\xe2\x80\xa6 and %" JSON_INTEGER_FORMAT " more", total - shown);
}

static void add_commit_count(webhook_buf_t *out, json_int_t n)
{
    webhook_buf_addf(out, "%" JSON_INTEGER_FORMAT " commit%s", n, n == 1 ? "" : "s");
}

/* "refs/heads/main" -> "main" (and *tag = 0), "refs/tags/v1" -> "v1". */
static const char *ref_name(const char *ref, int *tag)
{
    *tag = strncmp(ref, "refs/tags/", 10) == 0;
    if (*tag)
        return ref + 10;
    return strncmp(ref, "refs/heads/", 11) == 0 ? ref + 11 : ref;
}

/* The summary for events without a formatter: "GitHub star created in
 * owner/repo by alice". */
static int summary(const dialect_t *d, const char *event, const char *repo, const char *who,
                   const json_t *doc, webhook_buf_t *out)
{
    const char *action = webhook_str(doc, "action");
    webhook_buf_addf(out, "%s ", d->name);
    webhook_buf_add_line(out, event, 100);
    if (webhook_has(action)) {
        webhook_buf_add(out, " ");
        webhook_buf_add_line(out, action, 60);
    }
    if (webhook_has(repo)) {
        webhook_buf_add(out, " in ");
        webhook_buf_add_line(out, repo, MAX_TITLE);
    }
    if (webhook_has(who)) {
        webhook_buf_add(out, " by ");
        webhook_buf_add_line(out, who, MAX_TITLE);
    }
    return 0;
}

/* ---- GitHub and Gitea ---- */

static int gh_push(const dialect_t *d, const json_t *doc, const char *repo, const char *who,
                   webhook_buf_t *out, char *why, size_t whylen)
{
    const char *ref = webhook_str(doc, "ref");
    if (!webhook_has(ref))
        return missing(why, whylen, "\"ref\" string");
    const json_t *commits = json_object_get(doc, "commits");
    int tag;
    const char *name = ref_name(ref, &tag);
    int deleted = json_is_true(json_object_get(doc, "deleted")) || zero_sha(webhook_str(doc, "after"));
    add_repo(out, repo);
    webhook_buf_add_line(out, who, MAX_TITLE);
    if (deleted)
        webhook_buf_addf(out, " deleted %s ", tag ? "tag" : "branch");
    else if (tag)
        webhook_buf_add(out, " pushed tag ");
    else if (json_array_size(commits) == 0 && json_is_true(json_object_get(doc, "created")))
        webhook_buf_add(out, " created branch ");
    else {
        webhook_buf_add(out, " pushed ");
        add_commit_count(out, (json_int_t)json_array_size(commits));
        webhook_buf_add(out, " to ");
    }
    webhook_buf_add_line(out, name, MAX_TITLE);
    if (!deleted && !tag)
        add_commits(out, commits, -1);
    if (!deleted)
        add_url(out, webhook_str(doc, d->compare));
    return 0;
}

/* pull_request and issues: "who opened pull request #2: title". */
static int gh_item(const json_t *doc, const char *key, const char *noun, const char *repo,
                   const char *who, webhook_buf_t *out, char *why, size_t whylen)
{
    const json_t *item = json_object_get(doc, key);
    const char *action = webhook_str(doc, "action");
    const char *title = webhook_str(item, "title");
    if (!json_is_object(item))
        return missing(why, whylen, strcmp(key, "issue") == 0 ? "\"issue\" object" : "\"pull_request\" object");
    if (!webhook_has(action))
        return missing(why, whylen, "\"action\" string");
    json_int_t number = int_at(doc, "number");
    if (number < 0)
        number = int_at(item, "number");
    add_repo(out, repo);
    webhook_buf_add_line(out, who, MAX_TITLE);
    webhook_buf_add(out, " ");
    if (strcmp(action, "closed") == 0 && json_is_true(json_object_get(item, "merged")))
        webhook_buf_add(out, "merged");
    else
        add_action(out, action);
    webhook_buf_addf(out, " %s", noun);
    if (number >= 0)
        webhook_buf_addf(out, " #%" JSON_INTEGER_FORMAT, number);
    if (webhook_has(title)) {
        webhook_buf_add(out, ": ");
        webhook_buf_add_line(out, title, MAX_TITLE);
    }
    const char *url = webhook_str(item, "html_url");
    const char *repo_url = webhook_str(doc, "repository.html_url");
    if (!webhook_has(url) && webhook_has(repo_url) && number >= 0) /* older Gitea */
        webhook_buf_addf(out, "\n%.*s/%s/%" JSON_INTEGER_FORMAT, MAX_URL, repo_url,
                         strcmp(key, "issue") == 0 ? "issues" : "pulls", number);
    else
        add_url(out, url);
    return 0;
}

static int gh_release(const json_t *doc, const char *repo, const char *who, webhook_buf_t *out,
                      char *why, size_t whylen)
{
    const json_t *rel = json_object_get(doc, "release");
    const char *tag = webhook_str(rel, "tag_name");
    if (!webhook_has(tag))
        return missing(why, whylen, "\"release.tag_name\" string");
    const char *name = webhook_str(rel, "name");
    add_repo(out, repo);
    webhook_buf_add_line(out, who, MAX_TITLE);
    webhook_buf_add(out, " ");
    add_action(out, first_of(webhook_str(doc, "action"), "published"));
    webhook_buf_add(out, json_is_true(json_object_get(rel, "prerelease")) ? " pre-release " : " release ");
    webhook_buf_add_line(out, tag, MAX_TITLE);
    if (webhook_has(name) && strcmp(name, tag) != 0) {
        webhook_buf_add(out, ": ");
        webhook_buf_add_line(out, name, MAX_TITLE);
    }
    const char *url = webhook_str(rel, "html_url");
    const char *repo_url = webhook_str(doc, "repository.html_url");
    if (!webhook_has(url) && webhook_has(repo_url))
        webhook_buf_addf(out, "\n%.*s/releases/tag/%.*s", MAX_URL, repo_url, MAX_TITLE, tag);
    else
        add_url(out, url);
    return 0;
}

static int gh_workflow_run(const json_t *doc, const char *repo, webhook_buf_t *out, char *why,
                           size_t whylen)
{
    const json_t *run = json_object_get(doc, "workflow_run");
    if (!json_is_object(run))
        return missing(why, whylen, "\"workflow_run\" object");
    const char *name = first_of(webhook_str(run, "name"), webhook_str(doc, "workflow.name"));
    const char *result = first_of(webhook_str(run, "conclusion"), webhook_str(run, "status"));
    const char *branch = webhook_str(run, "head_branch");
    json_int_t number = int_at(run, "run_number");
    add_repo(out, repo);
    webhook_buf_add(out, "workflow ");
    webhook_buf_add_line(out, first_of(name, "(unnamed)"), MAX_TITLE);
    if (number >= 0)
        webhook_buf_addf(out, " #%" JSON_INTEGER_FORMAT, number);
    if (webhook_has(branch)) {
        webhook_buf_add(out, " on ");
        webhook_buf_add_line(out, branch, MAX_TITLE);
    }
    webhook_buf_add(out, ": *");
    webhook_buf_add_line(out, first_of(result, first_of(webhook_str(doc, "action"), "?")), 60);
    webhook_buf_add(out, "*");
    add_url(out, webhook_str(run, "html_url"));
    return 0;
}

static int gh_check_suite(const json_t *doc, const char *repo, webhook_buf_t *out, char *why,
                          size_t whylen)
{
    const json_t *cs = json_object_get(doc, "check_suite");
    if (!json_is_object(cs))
        return missing(why, whylen, "\"check_suite\" object");
    const char *app = webhook_str(cs, "app.name");
    const char *branch = webhook_str(cs, "head_branch");
    const char *sha = webhook_str(cs, "head_sha");
    const char *result = first_of(webhook_str(cs, "conclusion"), webhook_str(cs, "status"));
    add_repo(out, repo);
    webhook_buf_add(out, "check suite");
    if (webhook_has(app)) {
        webhook_buf_add(out, " ");
        webhook_buf_add_line(out, app, MAX_TITLE);
    }
    if (webhook_has(branch)) {
        webhook_buf_add(out, " on ");
        webhook_buf_add_line(out, branch, MAX_TITLE);
    }
    if (webhook_has(sha))
        webhook_buf_addf(out, " (%.7s)", sha);
    webhook_buf_add(out, ": *");
    webhook_buf_add_line(out, first_of(result, first_of(webhook_str(doc, "action"), "?")), 60);
    webhook_buf_add(out, "*");
    const char *repo_url = webhook_str(doc, "repository.html_url");
    if (webhook_has(repo_url) && webhook_has(sha))
        webhook_buf_addf(out, "\n%.*s/commit/%.64s", MAX_URL, repo_url, sha);
    return 0;
}

static int gh_ping(const dialect_t *d, const json_t *doc, const char *repo, webhook_buf_t *out)
{
    const char *where = first_of(repo, webhook_str(doc, "organization.login"));
    if (webhook_has(where))
        add_repo(out, where);
    webhook_buf_addf(out, "%s webhook connected", d->name);
    const char *zen = webhook_str(doc, "zen");
    if (webhook_has(zen)) {
        webhook_buf_add(out, ": ");
        webhook_buf_add_line(out, zen, MAX_TITLE);
    }
    return 0;
}

static int format_github_like(const dialect_t *d, const char *event, const json_t *doc,
                              webhook_buf_t *out, char *why, size_t whylen)
{
    if (!webhook_has(event)) {
        snprintf(why, whylen, "the request has no %s header", d->header);
        return -1;
    }
    const char *repo = webhook_str(doc, "repository.full_name");
    const char *who = first_of(webhook_str(doc, "sender.login"), webhook_str(doc, "sender.username"));
    if (strcmp(event, "ping") == 0)
        return gh_ping(d, doc, repo, out);
    int known = strcmp(event, "push") == 0 || strcmp(event, "pull_request") == 0 ||
                strcmp(event, "issues") == 0 || strcmp(event, "release") == 0 ||
                (d->ci && (strcmp(event, "workflow_run") == 0 || strcmp(event, "check_suite") == 0));
    if (!known)
        return summary(d, event, repo, who, doc, out);
    if (!webhook_has(repo))
        return missing(why, whylen, "\"repository.full_name\" string");
    if (strcmp(event, "push") == 0) {
        const char *pusher = first_of(webhook_str(doc, "pusher.login"), webhook_str(doc, "pusher.name"));
        return gh_push(d, doc, repo, first_of(pusher, first_of(who, "someone")), out, why, whylen);
    }
    who = first_of(who, "someone");
    if (strcmp(event, "pull_request") == 0)
        return gh_item(doc, "pull_request", "pull request", repo, who, out, why, whylen);
    if (strcmp(event, "issues") == 0)
        return gh_item(doc, "issue", "issue", repo, who, out, why, whylen);
    if (strcmp(event, "release") == 0)
        return gh_release(doc, repo, who, out, why, whylen);
    if (strcmp(event, "workflow_run") == 0)
        return gh_workflow_run(doc, repo, out, why, whylen);
    return gh_check_suite(doc, repo, out, why, whylen);
}

int webhook_format_github(const char *event, const json_t *doc, webhook_buf_t *out, char *why,
                          size_t whylen)
{
    return format_github_like(&github, event, doc, out, why, whylen);
}

int webhook_format_gitea(const char *event, const json_t *doc, webhook_buf_t *out, char *why,
                         size_t whylen)
{
    return format_github_like(&gitea, event, doc, out, why, whylen);
}

/* ---- GitLab ---- */

static const dialect_t gitlab = {"GitLab", "X-Gitlab-Event", NULL, 0};

/* GitLab's object_attributes.action, as a verb. */
static const char *gl_verb(const char *action)
{
    static const char *const map[][2] = {
        {"open", "opened"},       {"close", "closed"},         {"reopen", "reopened"},
        {"update", "updated"},    {"merge", "merged"},         {"approval", "approved"},
        {"unapproval", "unapproved"}, {NULL, NULL},
    };
    for (int i = 0; map[i][0]; i++)
        if (strcmp(action, map[i][0]) == 0)
            return map[i][1];
    return action;
}

static int gl_push(const json_t *doc, const char *repo, webhook_buf_t *out, char *why, size_t whylen)
{
    const char *ref = webhook_str(doc, "ref");
    if (!webhook_has(ref))
        return missing(why, whylen, "\"ref\" string");
    const char *who = first_of(webhook_str(doc, "user_name"), first_of(webhook_str(doc, "user_username"), "someone"));
    const json_t *commits = json_object_get(doc, "commits");
    json_int_t total = int_at(doc, "total_commits_count");
    if (total < 0)
        total = (json_int_t)json_array_size(commits);
    const char *before = webhook_str(doc, "before"), *after = webhook_str(doc, "after");
    const char *web = webhook_str(doc, "project.web_url");
    int tag;
    const char *name = ref_name(ref, &tag);
    add_repo(out, repo);
    webhook_buf_add_line(out, who, MAX_TITLE);
    if (zero_sha(after)) {
        webhook_buf_addf(out, " deleted %s ", tag ? "tag" : "branch");
        webhook_buf_add_line(out, name, MAX_TITLE);
        return 0;
    }
    if (tag) {
        webhook_buf_add(out, " pushed tag ");
    } else {
        webhook_buf_add(out, " pushed ");
        add_commit_count(out, total);
        webhook_buf_add(out, " to ");
    }
    webhook_buf_add_line(out, name, MAX_TITLE);
    if (!tag)
        add_commits(out, commits, total);
    if (!webhook_has(web))
        return 0;
    if (tag)
        webhook_buf_addf(out, "\n%.*s/-/tags/%.*s", MAX_URL, web, MAX_TITLE, name);
    else if (webhook_has(before) && !zero_sha(before) && webhook_has(after))
        webhook_buf_addf(out, "\n%.*s/-/compare/%.12s...%.12s", MAX_URL, web, before, after);
    else
        webhook_buf_addf(out, "\n%.*s/-/commits/%.*s", MAX_URL, web, MAX_TITLE, name);
    return 0;
}

/* merge_request, issue and work_item: "who opened merge request !1: title". */
static int gl_item(const json_t *doc, const char *kind, const char *repo, webhook_buf_t *out,
                   char *why, size_t whylen)
{
    const json_t *oa = json_object_get(doc, "object_attributes");
    if (!json_is_object(oa))
        return missing(why, whylen, "\"object_attributes\" object");
    int mr = strcmp(kind, "merge_request") == 0;
    const char *who = first_of(webhook_str(doc, "user.name"), first_of(webhook_str(doc, "user.username"), "someone"));
    const char *action = webhook_str(oa, "action");
    const char *title = webhook_str(oa, "title");
    json_int_t iid = int_at(oa, "iid");
    add_repo(out, repo);
    webhook_buf_add_line(out, who, MAX_TITLE);
    webhook_buf_add(out, " ");
    add_action(out, gl_verb(first_of(action, first_of(webhook_str(oa, "state"), "updated"))));
    if (mr) {
        webhook_buf_add(out, " merge request");
    } else {
        /* a work item says what it is: Task, Incident, Epic... */
        char type[40];
        snprintf(type, sizeof type, "%s", first_of(webhook_str(oa, "type"), "issue"));
        for (char *p = type; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        webhook_buf_add(out, " ");
        webhook_buf_add_line(out, type, sizeof type);
    }
    if (iid >= 0)
        webhook_buf_addf(out, " %c%" JSON_INTEGER_FORMAT, mr ? '!' : '#', iid);
    if (webhook_has(title)) {
        webhook_buf_add(out, ": ");
        webhook_buf_add_line(out, title, MAX_TITLE);
    }
    const char *src = webhook_str(oa, "source_branch"), *dst = webhook_str(oa, "target_branch");
    if (mr && webhook_has(src) && webhook_has(dst)) {
        webhook_buf_add(out, " (");
        webhook_buf_add_line(out, src, MAX_TITLE);
        webhook_buf_add(out, " \xe2\x86\x92 "); /* → */
        webhook_buf_add_line(out, dst, MAX_TITLE);
        webhook_buf_add(out, ")");
    }
    add_url(out, webhook_str(oa, "url"));
    return 0;
}

static int gl_pipeline(const json_t *doc, const char *repo, webhook_buf_t *out, char *why, size_t whylen)
{
    const json_t *oa = json_object_get(doc, "object_attributes");
    if (!json_is_object(oa))
        return missing(why, whylen, "\"object_attributes\" object");
    const char *status = webhook_str(oa, "status");
    const char *ref = webhook_str(oa, "ref");
    json_int_t id = int_at(oa, "id");
    add_repo(out, repo);
    webhook_buf_add(out, "pipeline");
    if (id >= 0)
        webhook_buf_addf(out, " #%" JSON_INTEGER_FORMAT, id);
    if (webhook_has(ref)) {
        webhook_buf_add(out, " on ");
        webhook_buf_add_line(out, ref, MAX_TITLE);
    }
    webhook_buf_add(out, ": *");
    webhook_buf_add_line(out, first_of(status, "?"), 60);
    webhook_buf_add(out, "*");
    json_int_t duration = int_at(oa, "duration");
    if (duration >= 0)
        webhook_buf_addf(out, " in %" JSON_INTEGER_FORMAT " s", duration);
    /* which jobs failed is what one wants to know next */
    size_t i, failed = 0;
    json_t *b;
    json_array_foreach(json_object_get(doc, "builds"), i, b) {
        const char *bs = webhook_str(b, "status"), *name = webhook_str(b, "name");
        if (!bs || strcmp(bs, "failed") != 0 || !webhook_has(name) || failed == 10)
            continue;
        webhook_buf_add(out, failed++ ? ", " : "\nfailed jobs: ");
        webhook_buf_add_line(out, name, MAX_TITLE);
    }
    add_url(out, webhook_str(oa, "url"));
    return 0;
}

int webhook_format_gitlab(const char *event, const json_t *doc, webhook_buf_t *out, char *why,
                          size_t whylen)
{
    const char *kind = webhook_str(doc, "object_kind");
    if (!webhook_has(kind))
        return missing(why, whylen, "\"object_kind\" string");
    const char *repo = webhook_str(doc, "project.path_with_namespace");
    int push = strcmp(kind, "push") == 0 || strcmp(kind, "tag_push") == 0;
    int item = strcmp(kind, "merge_request") == 0 || strcmp(kind, "issue") == 0 ||
               strcmp(kind, "work_item") == 0;
    if (!push && !item && strcmp(kind, "pipeline") != 0) {
        const char *who = first_of(webhook_str(doc, "user.name"), webhook_str(doc, "user_name"));
        return summary(&gitlab, first_of(event, kind), repo, who, doc, out);
    }
    if (!webhook_has(repo))
        return missing(why, whylen, "\"project.path_with_namespace\" string");
    if (push)
        return gl_push(doc, repo, out, why, whylen);
    if (item)
        return gl_item(doc, kind, repo, out, why, whylen);
    return gl_pipeline(doc, repo, out, why, whylen);
}
