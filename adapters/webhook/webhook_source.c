/* webhook_source.c: turns an inbound request into chat text: checks the
 * media type, recognises the source (when "auto"), and hands the JSON to the
 * source's formatter or to the endpoint's template. Everything built from a
 * payload is made safe for XML here, in one place. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ferry/alloc.h"
#include "ferry/text.h"
#include "webhook_source.h"

const char *const webhook_source_names[] = {"auto",   "text",   "alertmanager", "grafana",
                                            "github", "gitlab", "gitea",        NULL};

/* As people write them, for reasons. */
static const char *const titles[] = {"auto",   "text",   "Alertmanager", "Grafana",
                                     "GitHub", "GitLab", "Gitea"};

/* ---- small helpers for the formatters ---- */

static void buf_reserve(webhook_buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    b->cap = (b->len + more + 1) * 2;
    b->buf = ferry_realloc(b->buf, b->cap);
}

void webhook_buf_add(webhook_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    buf_reserve(b, n);
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

void webhook_buf_addf(webhook_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void webhook_buf_add_line(webhook_buf_t *b, const char *s, size_t max)
{
    size_t n = strcspn(s, "\r\n");
    int cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* not inside a character */
    }
    buf_reserve(b, n + 3);
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
    if (cut)
        webhook_buf_add(b, "\xe2\x80\xa6"); /* … */
}

const char *webhook_str(const json_t *obj, const char *path)
{
    const json_t *v = obj;
    char key[128];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        v = json_object_get(v, key);
        path += n + (path[n] == '.');
    }
    return json_string_value(v);
}

int webhook_has(const char *s)
{
    return s && *s;
}

/* ---- recognising the source ---- */

static int is_grafana(const json_t *doc)
{
    return json_is_array(json_object_get(doc, "alerts")) && json_is_number(json_object_get(doc, "orgId")) &&
           (json_is_string(json_object_get(doc, "state")) || json_is_string(json_object_get(doc, "status")));
}

static int is_alertmanager(const json_t *doc)
{
    const char *version = webhook_str(doc, "version");
    return json_is_array(json_object_get(doc, "alerts")) && json_is_string(json_object_get(doc, "groupKey")) &&
           version && strcmp(version, "4") == 0;
}

/* Gitea and Forgejo also send X-GitHub-Event (and X-Gogs-Event): their own
 * header is looked at first. */
static webhook_source_t recognise(const webhook_inbound_t *in, const json_t *doc)
{
    if (in->gitea_event)
        return SOURCE_GITEA;
    if (in->gitlab_event)
        return SOURCE_GITLAB;
    if (in->github_event)
        return SOURCE_GITHUB;
    if (is_grafana(doc))
        return SOURCE_GRAFANA;
    if (is_alertmanager(doc))
        return SOURCE_ALERTMANAGER;
    return SOURCE_TEXT;
}

/* ---- XML safety ---- */

/* Everything this file returns goes through ferry_xml_text_clean() (the
 * project's one rule for outside text in XML): characters XML cannot carry
 * and bytes that are not UTF-8 (a header may hold any) become U+FFFD. */

static int valid_utf8(const char *s, size_t len)
{
    json_t *probe = json_stringn(s, len);
    int ok = probe != NULL;
    json_decref(probe);
    return ok;
}

/* ---- the conversion ---- */

static char *refuse(unsigned *status, unsigned code, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static char *refuse(unsigned *status, unsigned code, char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    *status = code;
    return NULL;
}

static int media_type_is(const char *ctype, const char *want)
{
    size_t n = strcspn(ctype, "; \t");
    return n == strlen(want) && strncasecmp(ctype, want, n) == 0;
}

/* The Slack-shaped {"text": ...} body. */
static char *slack_text(const json_t *doc, unsigned *status, char *why, size_t whylen)
{
    const json_t *text = json_object_get(doc, "text");
    size_t n = json_string_length(text);
    const char *s = json_string_value(text);
    if (!s || n == 0)
        return refuse(status, 400, why, whylen,
                      "Bad Request: the JSON needs a non-empty \"text\" string (and is no known "
                      "source's payload)");
    return ferry_xml_text_dup(s, n, NULL);
}

/* The event a forge's request is about: its header, or for GitLab the
 * body's object_kind. */
static const char *event_of(webhook_source_t src, const webhook_inbound_t *in)
{
    switch (src) {
    case SOURCE_GITHUB: return in->github_event;
    case SOURCE_GITLAB: return in->gitlab_event;
    case SOURCE_GITEA: return in->gitea_event;
    default: return NULL;
    }
}

static int format(webhook_source_t src, const char *event, const json_t *doc, webhook_buf_t *out,
                  char *why, size_t whylen)
{
    switch (src) {
    case SOURCE_ALERTMANAGER: return webhook_format_alertmanager(doc, out, why, whylen);
    case SOURCE_GRAFANA: return webhook_format_grafana(doc, out, why, whylen);
    case SOURCE_GITHUB: return webhook_format_github(event, doc, out, why, whylen);
    case SOURCE_GITLAB: return webhook_format_gitlab(event, doc, out, why, whylen);
    case SOURCE_GITEA: return webhook_format_gitea(event, doc, out, why, whylen);
    default: return -1;
    }
}

static char *json_text(const webhook_inbound_t *in, const json_t *doc, webhook_source_t source,
                       const ferry_template_t *tmpl, unsigned *status, char *why, size_t whylen)
{
    if (tmpl) {
        char *text = ferry_template_render(tmpl, doc);
        if (!text || !*text) {
            free(text);
            return refuse(status, 400, why, whylen,
                          "Bad Request: the endpoint's template gave no text for this JSON");
        }
        return ferry_xml_text_clean(&text);
    }
    webhook_source_t src = source == SOURCE_AUTO ? recognise(in, doc) : source;
    if (src == SOURCE_TEXT)
        return slack_text(doc, status, why, whylen);
    const char *event = event_of(src, in);
    webhook_buf_t out = {0};
    char missing[300] = "";
    int rc = -1;
    if (json_is_object(doc))
        rc = format(src, event, doc, &out, missing, sizeof missing);
    else
        snprintf(missing, sizeof missing, "the JSON is not an object");
    if (rc == 0 && out.buf && *out.buf)
        return ferry_xml_text_clean(&out.buf);
    free(out.buf);
    if (rc == 0)
        snprintf(missing, sizeof missing, "nothing to say about it");
    char *shown = event ? ferry_xml_text_dup(event, strnlen(event, 60), NULL) : NULL; /* a header: any bytes */
    refuse(status, 400, why, whylen, "Bad Request: taken as %s%s%s: %s", titles[src], shown ? " " : "",
           shown ? shown : "", missing);
    free(shown);
    return NULL;
}

char *webhook_inbound_text(const webhook_inbound_t *in, webhook_source_t source,
                           const ferry_template_t *tmpl, unsigned *status, char *why, size_t whylen)
{
    const char *ctype = in->content_type;
    if (ctype && media_type_is(ctype, "text/plain")) {
        if (source != SOURCE_AUTO && source != SOURCE_TEXT && !tmpl)
            return refuse(status, 400, why, whylen,
                          "Bad Request: taken as %s: the body is text/plain, not JSON", titles[source]);
        if (in->len == 0 || !valid_utf8(in->body, in->len))
            return refuse(status, 400, why, whylen, "Bad Request: empty, or not UTF-8 text");
        return ferry_xml_text_dup(in->body, in->len, NULL);
    }
    if (!ctype || !media_type_is(ctype, "application/json"))
        return refuse(status, 415, why, whylen,
                      "Unsupported Media Type: send application/json or text/plain");
    json_error_t jerr;
    json_t *doc = json_loadb(in->body, in->len, 0, &jerr);
    if (!doc)
        return refuse(status, 400, why, whylen, "Bad Request: malformed JSON (%s)", jerr.text);
    char *text = json_text(in, doc, source, tmpl, status, why, whylen);
    json_decref(doc);
    return text;
}
