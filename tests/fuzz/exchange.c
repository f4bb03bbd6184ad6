/* exchange.c: the stand-in HTTP exchange of exchange.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oracle.h"

#include "ferry/http_server.h"

struct ferry_http_exchange {
    char *method;
    char *target; /* owns path and query, as in http_server.c */
    const char *path, *query;
    const char *rest; /* what ferry_http_exchange_rest() gives, once a route is set */
    char **names, **values;
    size_t nheaders;
    char *body;
    size_t body_len;
    size_t nextra;
    unsigned status;
    int answers;
};

/* Declared here rather than through exchange.h, whose macros would rename
 * ferry/http_server.h's declarations in this file. */
ferry_http_exchange_t *fuzz_ex_new(const uint8_t *data, size_t size);
void fuzz_ex_free(ferry_http_exchange_t *ex);
void fuzz_ex_set_header(ferry_http_exchange_t *ex, const char *name, const char *value);
unsigned fuzz_ex_status(const ferry_http_exchange_t *ex);
int fuzz_route_matches(const char *prefix, const char *path);
void fuzz_ex_set_route(ferry_http_exchange_t *ex, const char *prefix);
const char *fuzz_ex_rest(const ferry_http_exchange_t *ex);

static char *copy(const uint8_t *s, size_t n)
{
    char *out = malloc(n + 1);
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

void fuzz_ex_set_header(ferry_http_exchange_t *ex, const char *name, const char *value)
{
    for (size_t i = 0; i < ex->nheaders; i++)
        if (strcasecmp(ex->names[i], name) == 0) {
            free(ex->values[i]);
            ex->values[i] = strdup(value);
            return;
        }
    ex->names = realloc(ex->names, (ex->nheaders + 1) * sizeof *ex->names);
    ex->values = realloc(ex->values, (ex->nheaders + 1) * sizeof *ex->values);
    ex->names[ex->nheaders] = strdup(name);
    ex->values[ex->nheaders] = strdup(value);
    ex->nheaders++;
}

ferry_http_exchange_t *fuzz_ex_new(const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size, *nl = memchr(data, '\n', size);
    if (!nl)
        return NULL;
    const uint8_t *sp = memchr(data, ' ', (size_t)(nl - data));
    if (!sp)
        return NULL;
    ferry_http_exchange_t *ex = calloc(1, sizeof *ex);
    ex->method = copy(data, (size_t)(sp - data));
    /* MHD hands over a target without NUL bytes: cut there too. */
    char *raw = copy(sp + 1, (size_t)(nl - sp - 1));
    ex->target = strdup(raw);
    free(raw);
    char *q = strchr(ex->target, '?');
    if (q)
        *q++ = 0;
    ex->path = ex->target;
    ex->query = q ? q : "";
    const uint8_t *p = nl + 1;
    while (p < end) {
        const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
        size_t n = e ? (size_t)(e - p) : (size_t)(end - p);
        if (n == 0) {
            p++;
            break;
        }
        const uint8_t *colon = memchr(p, ':', n);
        if (colon) {
            char *name = copy(p, (size_t)(colon - p));
            const uint8_t *v = colon + 1;
            while (v < p + n && (*v == ' ' || *v == '\t'))
                v++;
            char *value = copy(v, (size_t)(p + n - v));
            /* MHD keeps every header line; lookups see the first. */
            ex->names = realloc(ex->names, (ex->nheaders + 1) * sizeof *ex->names);
            ex->values = realloc(ex->values, (ex->nheaders + 1) * sizeof *ex->values);
            ex->names[ex->nheaders] = name;
            ex->values[ex->nheaders] = value;
            ex->nheaders++;
        }
        p += n + (e != NULL);
        if (!e)
            break;
    }
    ex->body_len = p < end ? (size_t)(end - p) : 0;
    ex->body = copy(p < end ? p : end, ex->body_len);
    return ex;
}

void fuzz_ex_free(ferry_http_exchange_t *ex)
{
    if (!ex)
        return;
    for (size_t i = 0; i < ex->nheaders; i++) {
        free(ex->names[i]);
        free(ex->values[i]);
    }
    free(ex->names);
    free(ex->values);
    free(ex->method);
    free(ex->target);
    free(ex->body);
    free(ex);
}

unsigned fuzz_ex_status(const ferry_http_exchange_t *ex) { return ex->status; }

int fuzz_route_matches(const char *prefix, const char *path)
{
    size_t len = strlen(prefix);
    if (len > 1 && prefix[len - 1] == '/')
        len--;
    return strncmp(path, prefix, len) == 0 && (path[len] == 0 || path[len] == '/');
}

/* As http_server.c: the path after the whole prefix, NULL when the path is
 * the prefix without its trailing '/'. */
void fuzz_ex_set_route(ferry_http_exchange_t *ex, const char *prefix)
{
    if (!fuzz_route_matches(prefix, ex->path))
        fuzz_fail("http", "route %s set for path %s", prefix, ex->path);
    size_t len = strlen(prefix);
    ex->rest = strncmp(ex->path, prefix, len) == 0 ? ex->path + len : NULL;
}

const char *fuzz_ex_rest(const ferry_http_exchange_t *ex) { return ex->rest; }

const char *fuzz_ex_method(const ferry_http_exchange_t *ex) { return ex->method; }
const char *fuzz_ex_path(const ferry_http_exchange_t *ex) { return ex->path; }
const char *fuzz_ex_query(const ferry_http_exchange_t *ex) { return ex->query; }

const char *fuzz_ex_header(const ferry_http_exchange_t *ex, const char *name)
{
    for (size_t i = 0; i < ex->nheaders; i++)
        if (strcasecmp(ex->names[i], name) == 0)
            return ex->values[i];
    return NULL;
}

const char *fuzz_ex_body(const ferry_http_exchange_t *ex, size_t *len)
{
    if (len)
        *len = ex->body_len;
    return ex->body;
}

int fuzz_ex_add_header(ferry_http_exchange_t *ex, const char *name, const char *value)
{
    if (ex->answers)
        fuzz_fail("http", "a header added after the answer");
    if (!name || !*name || !value || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
        return -1; /* refused, as ferry_http_exchange_add_header does */
    ex->nextra++;
    return 0;
}

void fuzz_ex_respond(ferry_http_exchange_t *ex, unsigned status, const char *content_type,
                     const char *body, size_t len)
{
    if (ex->answers++)
        fuzz_fail("http", "answered twice (%u, then %u)", ex->status, status);
    if (status < 100 || status > 599)
        fuzz_fail("http", "status %u", status);
    if (content_type && strpbrk(content_type, "\r\n"))
        fuzz_fail("http", "a Content-Type with CR or LF");
    if (len && !body)
        fuzz_fail("http", "%zu bytes of no body", len);
    for (size_t i = 0; i < len; i++)
        (void)*(volatile const char *)&body[i]; /* ASan: the whole body is readable */
    ex->status = status;
    if (getenv("FUZZ_VERBOSE")) /* for whoever writes seeds: what the handler said */
        fprintf(stderr, "answer %u %.*s\n", status, (int)len, body ? body : "");
}
