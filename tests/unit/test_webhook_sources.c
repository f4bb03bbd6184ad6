/* test_webhook_sources.c: the webhook source formatters and recognition
 * (adapters/webhook/webhook_source.h) on the cases the documented example
 * payloads of the e2e tests do not show: deleted and tag pushes, merged pull
 * requests, resolved and nameless alert groups, Grafana's valueString,
 * GitLab's other verbs and work items, what "auto" picks, the media types,
 * and the replacement of what XML cannot carry. */
#include <stdlib.h>
#include <string.h>

#include "../../adapters/webhook/webhook_source.h"
#include "check.h"

typedef struct req {
    webhook_source_t source;
    const char *github, *gitlab, *gitea;
    const char *ctype;
} req_t;

static char *convert(const req_t *r, const char *body, unsigned *status, char *why, size_t whylen)
{
    webhook_inbound_t in = {
        .body = body,
        .len = strlen(body),
        .content_type = r->ctype ? r->ctype : "application/json",
        .github_event = r->github,
        .gitlab_event = r->gitlab,
        .gitea_event = r->gitea,
    };
    return webhook_inbound_text(&in, r->source, NULL, status, why, whylen);
}

static void gives_at(int line, req_t r, const char *body, const char *want)
{
    unsigned status = 0;
    char why[400] = "";
    char *got = convert(&r, body, &status, why, sizeof why);
    check_at(__FILE__, line, got && strcmp(got, want) == 0, "%s gives %s, expected %s", check_quote(body),
             check_quote(got ? got : why), check_quote(want));
    free(got);
}

static void refused_at(int line, req_t r, const char *body, unsigned want_status, const char *want)
{
    unsigned status = 0;
    char why[400] = "";
    char *got = convert(&r, body, &status, why, sizeof why);
    check_at(__FILE__, line, !got && status == want_status && strcmp(why, want) == 0,
             "%s gives %u %s, expected %u %s", check_quote(body), status, check_quote(got ? got : why),
             want_status, check_quote(want));
    free(got);
}

#define GIVES(r, body, want) gives_at(__LINE__, r, body, want)
#define REFUSED(r, body, status, want) refused_at(__LINE__, r, body, status, want)

static const req_t AUTO = {0};

static void test_recognition(void)
{
    GIVES(AUTO, "{\"text\": \"hello\"}", "hello");
    /* Alertmanager only with version 4 and a groupKey; Grafana by its orgId */
    GIVES(AUTO, "{\"alerts\": [], \"groupKey\": \"{}\", \"version\": \"4\", \"status\": \"resolved\", \"text\": \"t\"}",
          "*[RESOLVED]*");
    GIVES(AUTO, "{\"alerts\": [], \"groupKey\": \"{}\", \"version\": \"3\", \"text\": \"old\"}", "old");
    GIVES(AUTO, "{\"alerts\": [], \"orgId\": 1, \"state\": \"ok\", \"status\": \"resolved\"}", "*[RESOLVED]*");
    /* Gitea's header wins over the X-GitHub-Event it also sends */
    req_t both = {.github = "push", .gitea = "create"};
    GIVES(both, "{\"repository\": {\"full_name\": \"o/r\"}, \"sender\": {\"login\": \"u\"}}",
          "Gitea create in o/r by u");
    req_t gl = {.gitlab = "Note Hook", .github = "push"};
    GIVES(gl, "{\"object_kind\": \"note\", \"project\": {\"path_with_namespace\": \"g/p\"}, \"user\": {\"name\": \"N\"}}",
          "GitLab Note Hook in g/p by N");
}

static void test_media_types(void)
{
    req_t plain = {.ctype = "Text/Plain; charset=utf-8"};
    GIVES(plain, "as it is, {\"text\": 1}", "as it is, {\"text\": 1}");
    GIVES(plain, "bell\x07", "bell\xef\xbf\xbd"); /* what XML cannot carry arrives as U+FFFD */
    REFUSED(plain, "\xff\xfe", 400, "Bad Request: empty, or not UTF-8 text");
    req_t typed = {.source = SOURCE_GITLAB, .ctype = "text/plain"};
    REFUSED(typed, "push", 400, "Bad Request: taken as GitLab: the body is text/plain, not JSON");
    req_t xml = {.ctype = "application/xml"};
    REFUSED(xml, "<a/>", 415, "Unsupported Media Type: send application/json or text/plain");
    req_t none = {.ctype = ""};
    REFUSED(none, "{}", 415, "Unsupported Media Type: send application/json or text/plain");
    REFUSED(AUTO, "{\"text\": ", 400, "Bad Request: malformed JSON (unexpected token near end of file)");
}

static void test_github(void)
{
    req_t push = {.github = "push"};
    GIVES(push,
          "{\"ref\": \"refs/heads/old\", \"deleted\": true, \"after\": \"0000000000000000000000000000000000000000\","
          " \"commits\": [], \"compare\": \"https://x/compare\", \"repository\": {\"full_name\": \"o/r\"},"
          " \"pusher\": {\"name\": \"bob\"}}",
          "*[o/r]* bob deleted branch old");
    GIVES(push,
          "{\"ref\": \"refs/tags/v2.0\", \"commits\": [], \"compare\": \"https://x/compare/v2.0\","
          " \"repository\": {\"full_name\": \"o/r\"}, \"sender\": {\"login\": \"amy\"}}",
          "*[o/r]* amy pushed tag v2.0\nhttps://x/compare/v2.0");
    GIVES(push,
          "{\"ref\": \"refs/heads/feature\", \"created\": true, \"commits\": [], \"compare\": \"https://x/c\","
          " \"repository\": {\"full_name\": \"o/r\"}, \"pusher\": {\"name\": \"bob\"}}",
          "*[o/r]* bob created branch feature\nhttps://x/c");
    req_t pr = {.github = "pull_request"};
    GIVES(pr,
          "{\"action\": \"closed\", \"number\": 9, \"pull_request\": {\"title\": \"Fix\", \"merged\": true,"
          " \"html_url\": \"https://x/pull/9\"}, \"repository\": {\"full_name\": \"o/r\"}, \"sender\": {\"login\": \"amy\"}}",
          "*[o/r]* amy merged pull request #9: Fix\nhttps://x/pull/9");
    GIVES(pr,
          "{\"action\": \"review_requested\", \"number\": 9, \"pull_request\": {\"title\": \"Fix\"},"
          " \"repository\": {\"full_name\": \"o/r\"}, \"sender\": {\"login\": \"amy\"}}",
          "*[o/r]* amy review requested pull request #9: Fix");
    req_t ping = {.github = "ping"};
    GIVES(ping, "{\"zen\": \"Keep it logically awesome.\", \"organization\": {\"login\": \"octo-org\"}}",
          "*[octo-org]* GitHub webhook connected: Keep it logically awesome.");
    req_t rel = {.github = "release"};
    GIVES(rel,
          "{\"action\": \"prereleased\", \"release\": {\"tag_name\": \"v3-rc1\", \"name\": \"Three\", \"prerelease\": true,"
          " \"html_url\": \"https://x/r\"}, \"repository\": {\"full_name\": \"o/r\"}, \"sender\": {\"login\": \"amy\"}}",
          "*[o/r]* amy prereleased pre-release v3-rc1: Three\nhttps://x/r");
    REFUSED(rel, "{\"release\": {}, \"repository\": {\"full_name\": \"o/r\"}}", 400,
            "Bad Request: taken as GitHub release: the JSON has no \"release.tag_name\" string");
    req_t wr = {.github = "workflow_run"};
    GIVES(wr,
          "{\"action\": \"requested\", \"workflow_run\": {\"name\": \"CI\", \"status\": \"queued\", \"conclusion\": null},"
          " \"repository\": {\"full_name\": \"o/r\"}}",
          "*[o/r]* workflow CI: *queued*");
}

static void test_gitlab(void)
{
    req_t gl = {.gitlab = "Merge Request Hook"};
    GIVES(gl,
          "{\"object_kind\": \"merge_request\", \"user\": {\"name\": \"Al\"}, \"project\": {\"path_with_namespace\": \"g/p\"},"
          " \"object_attributes\": {\"iid\": 4, \"title\": \"T\", \"action\": \"approval\", \"url\": \"https://g/mr/4\"}}",
          "*[g/p]* Al approved merge request !4: T\nhttps://g/mr/4");
    req_t wi = {.gitlab = "Issue Hook"};
    GIVES(wi,
          "{\"object_kind\": \"work_item\", \"user\": {\"name\": \"Al\"}, \"project\": {\"path_with_namespace\": \"g/p\"},"
          " \"object_attributes\": {\"iid\": 5, \"title\": \"Do it\", \"action\": \"close\", \"type\": \"Task\"}}",
          "*[g/p]* Al closed task #5: Do it");
    req_t tag = {.gitlab = "Tag Push Hook"};
    GIVES(tag,
          "{\"object_kind\": \"tag_push\", \"ref\": \"refs/tags/v1.0.0\", \"before\": \"0000000000000000000000000000000000000000\","
          " \"after\": \"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7\", \"user_name\": \"John Smith\", \"commits\": [],"
          " \"total_commits_count\": 0, \"project\": {\"path_with_namespace\": \"jsmith/example\","
          " \"web_url\": \"http://example.com/jsmith/example\"}}",
          "*[jsmith/example]* John Smith pushed tag v1.0.0\nhttp://example.com/jsmith/example/-/tags/v1.0.0");
    req_t push = {.gitlab = "Push Hook"};
    GIVES(push,
          "{\"object_kind\": \"push\", \"ref\": \"refs/heads/new\", \"before\": \"0000000000000000000000000000000000000000\","
          " \"after\": \"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7\", \"user_name\": \"J\", \"commits\": [],"
          " \"total_commits_count\": 0, \"project\": {\"path_with_namespace\": \"g/p\", \"web_url\": \"http://g/p\"}}",
          "*[g/p]* J pushed 0 commits to new\nhttp://g/p/-/commits/new");
    REFUSED(push, "{\"object_kind\": \"pipeline\"}", 400,
            "Bad Request: taken as GitLab Push Hook: the JSON has no \"project.path_with_namespace\" string");
}

static void test_alerts(void)
{
    req_t am = {.source = SOURCE_ALERTMANAGER};
    /* no group labels: the common alert name; no annotations: the name */
    GIVES(am,
          "{\"status\": \"firing\", \"alerts\": [{\"status\": \"firing\", \"labels\": {\"alertname\": \"Disk\","
          " \"severity\": \"page\"}}], \"groupLabels\": {}, \"commonLabels\": {\"alertname\": \"Disk\"},"
          " \"externalURL\": \"http://am:9093\"}",
          "*[FIRING:1] Disk*\n\xe2\x80\xa2 Disk (severity=page) http://am:9093");
    req_t gf = {.source = SOURCE_GRAFANA};
    GIVES(gf,
          "{\"status\": \"firing\", \"orgId\": 1, \"alerts\": [{\"status\": \"firing\", \"labels\": {\"alertname\": \"A\","
          " \"__alert_rule_uid__\": \"x\", \"grafana_folder\": \"f\"}, \"valueString\": \"[ var='B' value=3 ]\","
          " \"panelURL\": \"http://g/p\"}]}",
          "*[FIRING:1] A*\n\xe2\x80\xa2 A [ var='B' value=3 ] http://g/p");
    REFUSED(gf, "{\"status\": \"firing\"}", 400, "Bad Request: taken as Grafana: the JSON has no \"alerts\" array");
}

static void test_xml_safety(void)
{
    req_t push = {.github = "push"};
    /* U+0001 and U+FFFF are replaced; U+FFFD and other text stay */
    GIVES(push,
          "{\"ref\": \"refs/heads/m\", \"commits\": [{\"id\": \"abcdef0\", \"message\": \"a\\u0001b\\uffffc\\ufffd\"}],"
          " \"repository\": {\"full_name\": \"o/r\"}, \"pusher\": {\"name\": \"bob\"}}",
          "*[o/r]* bob pushed 1 commit to m\n\xe2\x80\xa2 abcdef0 a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd");
    /* header values may be any bytes: the event name of a summary too */
    req_t odd = {.gitea = "rele\xa3\x8c" "e \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82"};
    GIVES(odd, "{\"repository\": {\"full_name\": \"o/r\"}}",
          /* each maximal invalid subpart is one U+FFFD (Unicode's practice):
           * stray bytes, an overlong form, a surrogate and a code point past
           * U+10FFFF byte by byte, a sequence cut short as one */
          "Gitea rele\xef\xbf\xbd\xef\xbf\xbd" "e \xef\xbf\xbd\xef\xbf\xbd "
          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
          "\xef\xbf\xbd in o/r");
    /* text a sender wrote itself is cleaned the same way */
    GIVES(AUTO, "{\"text\": \"bell\\u0007\"}", "bell\xef\xbf\xbd");
}

int main(void)
{
    test_recognition();
    test_media_types();
    test_github();
    test_gitlab();
    test_alerts();
    test_xml_safety();
    return check_summary();
}
