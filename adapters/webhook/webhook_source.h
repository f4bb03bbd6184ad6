/* webhook_source.h: what an inbound webhook request becomes as chat text.
 * The request is taken for one source (configured, or recognised by its
 * headers and body) and each source has its formatter; a template replaces
 * them all. Shared by webhook.c and the formatters (webhook_alerts.c,
 * webhook_forge.c), which know nothing of HTTP or XMPP. */
#ifndef FERRY_WEBHOOK_SOURCE_H
#define FERRY_WEBHOOK_SOURCE_H

#include <stddef.h>

#include <jansson.h>

#include "ferry/template.h"

typedef enum {
    SOURCE_AUTO,
    SOURCE_TEXT,
    SOURCE_ALERTMANAGER,
    SOURCE_GRAFANA,
    SOURCE_GITHUB,
    SOURCE_GITLAB,
    SOURCE_GITEA,
} webhook_source_t;

/* The config spellings, in enum order, NULL-terminated. */
extern const char *const webhook_source_names[];

/* What of an HTTP request the conversion needs. */
typedef struct webhook_inbound {
    const char *body;
    size_t len;
    const char *content_type;   /* NULL when absent */
    const char *github_event;   /* X-GitHub-Event */
    const char *gitlab_event;   /* X-Gitlab-Event */
    const char *gitea_event;    /* X-Gitea-Event, or else X-Forgejo-Event */
} webhook_inbound_t;

/* The text for IN, malloc'd, as SOURCE says (or TEMPLATE, when not NULL).
 * On failure returns NULL, sets *status (400 or 415) and writes the reason
 * into WHY ("Bad Request: taken as GitHub push: ..."). The text is valid for
 * XML: characters XML cannot carry are replaced. */
char *webhook_inbound_text(const webhook_inbound_t *in, webhook_source_t source,
                           const ferry_template_t *tmpl, unsigned *status, char *why, size_t whylen);

/* ---- for the formatters ---- */

/* A growing string; buf is malloc'd and always NUL-terminated once used. */
typedef struct webhook_buf {
    char *buf;
    size_t len, cap;
} webhook_buf_t;

void webhook_buf_add(webhook_buf_t *b, const char *s);
void webhook_buf_addf(webhook_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first line of S, at most MAX bytes (cut at a character, with "…"). */
void webhook_buf_add_line(webhook_buf_t *b, const char *s, size_t max);

/* A string member of OBJ along a dotted PATH ("repository.full_name"), or
 * NULL when absent or not a string. */
const char *webhook_str(const json_t *obj, const char *path);
/* Non-NULL and not "". */
int webhook_has(const char *s);

/* Each formatter appends the text for DOC to OUT and returns 0, or returns
 * -1 with what was missing in WHY (the caller says which source). EVENT is
 * the event header's value (NULL when absent). */
int webhook_format_alertmanager(const json_t *doc, webhook_buf_t *out, char *why, size_t whylen);
int webhook_format_grafana(const json_t *doc, webhook_buf_t *out, char *why, size_t whylen);
int webhook_format_github(const char *event, const json_t *doc, webhook_buf_t *out, char *why,
                          size_t whylen);
int webhook_format_gitea(const char *event, const json_t *doc, webhook_buf_t *out, char *why,
                         size_t whylen);
int webhook_format_gitlab(const char *event, const json_t *doc, webhook_buf_t *out, char *why,
                          size_t whylen);

#endif
