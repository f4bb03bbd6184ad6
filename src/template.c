/* template.c: the Mustache-style templates of ferry/template.h. A template
 * is parsed once (at config load, so that a bad one is a config error) into a
 * tree of nodes, and rendered per request by walking the tree over the JSON
 * document. */
#include "ferry/alloc.h"
#include "ferry/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_TEXT, N_VAR, N_SECTION, N_INVERTED };

typedef struct node {
    int type;
    char *s;                 /* the text (N_TEXT) or the name; owned */
    size_t len;
    int line;                /* where a section opens, for error messages */
    struct node *kids;       /* sections: what is inside */
    size_t nkids, cap;
} node_t;

struct ferry_template {
    node_t root;
};

/* ---- parse ---- */

static node_t *add_node(node_t *parent, int type, const char *s, size_t len, int line)
{
    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? 2 * parent->cap : 8;
        parent->kids = ferry_realloc(parent->kids, parent->cap * sizeof *parent->kids);
    }
    node_t *n = &parent->kids[parent->nkids++];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->s = ferry_strndup(s, len);
    n->len = len;
    n->line = line;
    return n;
}

static void node_free(node_t *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        node_free(&n->kids[i]);
    free(n->kids);
    free(n->s);
}

static int count_lines(const char *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    return n;
}

static int blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

/* A tag alone on its line (but for spaces) takes the line with it, as in
 * Mustache, so that sections can stand on lines of their own without
 * leaving blank lines in the text. Returns the end of that line (past its
 * newline), or 0 when the tag is not alone. */
static size_t standalone_end(const char *s, size_t len, size_t line_start, size_t open,
                             size_t close)
{
    if (!blank(s + line_start, open - line_start))
        return 0;
    size_t e = close;
    while (e < len && (s[e] == ' ' || s[e] == '\t'))
        e++;
    if (e == len)
        return e;
    if (s[e] == '\n')
        return e + 1;
    if (s[e] == '\r' && e + 1 < len && s[e + 1] == '\n')
        return e + 2;
    return 0;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '{' || s[i] == '}')
            return 0;
    return 1;
}

static void *parse_error(ferry_template_t *t, int *out_line, int line, char *err, size_t errlen,
                         const char *msg)
{
    *out_line = line;
    snprintf(err, errlen, "%s", msg);
    ferry_template_free(t);
    return NULL;
}

/* The line of the first byte that is not UTF-8 text (a NUL byte, or no
 * UTF-8), or 0 when all is: what a template writes must be text. */
static int bad_text_line(const char *s, size_t len)
{
    if (!memchr(s, 0, len)) {
        json_t *probe = json_stringn(s, len);
        json_decref(probe);
        if (probe)
            return 0;
    }
    int line = 1;
    for (size_t start = 0; start < len; line++) {
        const char *nl = memchr(s + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - s) : len;
        json_t *probe = memchr(s + start, 0, end - start) ? NULL : json_stringn(s + start, end - start);
        json_decref(probe);
        if (!probe)
            return line;
        start = end + 1;
    }
    return 1;
}

ferry_template_t *ferry_template_parse(const char *s, size_t len, int *out_line, char *err,
                                       size_t errlen)
{
    int bad = bad_text_line(s, len);
    if (bad) {
        *out_line = bad;
        snprintf(err, errlen, "not UTF-8 text");
        return NULL;
    }
    ferry_template_t *t = ferry_calloc(1, sizeof *t);
    node_t *stack[FERRY_TEMPLATE_MAX_DEPTH + 1];
    int depth = 0;
    stack[0] = &t->root;
    size_t pos = 0;
    int line = 1;
    while (pos < len) {
        const char *o = memmem(s + pos, len - pos, "{{", 2);
        if (!o) {
            add_node(stack[depth], N_TEXT, s + pos, len - pos, line);
            break;
        }
        size_t open = (size_t)(o - s);
        int triple = open + 2 < len && s[open + 2] == '{';
        const char *closer = triple ? "}}}" : "}}";
        const char *c = memmem(s + open + 2, len - open - 2, closer, strlen(closer));
        int tag_line = line + count_lines(s + pos, open - pos);
        char msg[400];
        if (!c) {
            snprintf(msg, sizeof msg, "\"%s\" without a closing \"%s\"", triple ? "{{{" : "{{", closer);
            return parse_error(t, out_line, tag_line, err, errlen, msg);
        }
        size_t close = (size_t)(c - s) + strlen(closer);
        const char *in = s + open + (triple ? 3 : 2);
        size_t in_len = (size_t)(c - in);
        char sigil = in_len && strchr("#^/!&", *in) && !triple ? *in : 0;
        if (sigil) {
            in++;
            in_len--;
        }
        while (in_len && (*in == ' ' || *in == '\t')) {
            in++;
            in_len--;
        }
        while (in_len && (in[in_len - 1] == ' ' || in[in_len - 1] == '\t'))
            in_len--;

        size_t line_start = open;
        while (line_start > 0 && s[line_start - 1] != '\n')
            line_start--;
        size_t end = 0;
        if (sigil && sigil != '&' && line_start >= pos)
            end = standalone_end(s, len, line_start, open, close);
        size_t text_end = end ? line_start : open;
        if (text_end > pos)
            add_node(stack[depth], N_TEXT, s + pos, text_end - pos, line);
        line += count_lines(s + pos, (end ? end : close) - pos);
        pos = end ? end : close;

        if (sigil == '!')
            continue;
        if (!valid_name(in, in_len)) {
            snprintf(msg, sizeof msg, "\"%.*s\": a tag holds one name, without spaces or braces",
                     (int)(close - open < 150 ? close - open : 150), s + open);
            return parse_error(t, out_line, tag_line, err, errlen, msg);
        }
        if (sigil == '#' || sigil == '^') {
            if (depth == FERRY_TEMPLATE_MAX_DEPTH) {
                snprintf(msg, sizeof msg, "sections nested deeper than %d", FERRY_TEMPLATE_MAX_DEPTH);
                return parse_error(t, out_line, tag_line, err, errlen, msg);
            }
            node_t *n = add_node(stack[depth], sigil == '#' ? N_SECTION : N_INVERTED, in, in_len,
                                 tag_line);
            stack[++depth] = n;
        } else if (sigil == '/') {
            int shown = (int)(in_len < 150 ? in_len : 150);
            if (depth == 0) {
                snprintf(msg, sizeof msg, "{{/%.*s}} closes no section", shown, in);
                return parse_error(t, out_line, tag_line, err, errlen, msg);
            }
            node_t *open_sec = stack[depth];
            if (open_sec->len != in_len || memcmp(open_sec->s, in, in_len) != 0) {
                snprintf(msg, sizeof msg, "{{/%.*s}} does not close {{%c%.150s}} (opened on line %d)",
                         shown, in, open_sec->type == N_SECTION ? '#' : '^', open_sec->s,
                         open_sec->line);
                return parse_error(t, out_line, tag_line, err, errlen, msg);
            }
            depth--;
        } else {
            add_node(stack[depth], N_VAR, in, in_len, tag_line);
        }
    }
    if (depth > 0) {
        node_t *n = stack[depth];
        char msg[300];
        snprintf(msg, sizeof msg, "{{%c%.150s}} is not closed", n->type == N_SECTION ? '#' : '^', n->s);
        return parse_error(t, out_line, n->line, err, errlen, msg);
    }
    return t;
}

void ferry_template_free(ferry_template_t *t)
{
    if (!t)
        return;
    node_free(&t->root);
    free(t);
}

/* ---- render ---- */

typedef struct out {
    char *buf;
    size_t len, cap;
    size_t steps;
    int full;                /* the output or the step budget is spent */
} out_t;

static void emit(out_t *o, const char *s, size_t n)
{
    if (o->full)
        return;
    if (o->len + n > FERRY_TEMPLATE_MAX_OUTPUT) {
        n = FERRY_TEMPLATE_MAX_OUTPUT - o->len;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* do not cut a character in two */
        o->full = 1;
    }
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->buf = ferry_realloc(o->buf, o->cap);
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = 0;
}

static int is_index(const char *s, size_t len)
{
    if (len == 0 || len > 9)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static json_t *child(const json_t *v, const char *part, size_t len)
{
    if (json_is_object(v)) {
        char key[256];
        if (len >= sizeof key)
            return NULL;
        memcpy(key, part, len);
        key[len] = 0;
        return json_object_get(v, key);
    }
    if (json_is_array(v) && is_index(part, len))
        return json_array_get(v, (size_t)strtoul(part, NULL, 10));
    return NULL;
}

/* The value NAME refers to: its first part is looked up from the innermost
 * context outwards, the rest inside what that found. */
static json_t *lookup(json_t **ctx, int depth, const char *name)
{
    if (strcmp(name, ".") == 0)
        return ctx[depth - 1];
    size_t first = strcspn(name, ".");
    json_t *v = NULL;
    for (int i = depth - 1; i >= 0 && !v; i--)
        v = json_is_object(ctx[i]) ? child(ctx[i], name, first) : NULL;
    const char *p = name + first;
    while (v && *p == '.') {
        p++;
        size_t n = strcspn(p, ".");
        v = child(v, p, n);
        p += n;
    }
    return v;
}

static int truthy(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_number(v))
        return json_number_value(v) != 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    return 1;
}

static void emit_value(out_t *o, const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        emit(o, s, strlen(s)); /* an embedded NUL ends it */
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text)
        emit(o, text, strlen(text));
    free(text);
}

static void render(out_t *o, const node_t *nodes, size_t n, json_t **ctx, int depth)
{
    for (size_t i = 0; i < n && !o->full; i++) {
        const node_t *nd = &nodes[i];
        if (++o->steps > FERRY_TEMPLATE_MAX_STEPS) {
            o->full = 1;
            return;
        }
        if (nd->type == N_TEXT) {
            emit(o, nd->s, nd->len);
            continue;
        }
        json_t *v = lookup(ctx, depth, nd->s);
        if (nd->type == N_VAR) {
            emit_value(o, v);
        } else if (nd->type == N_INVERTED) {
            if (!truthy(v))
                render(o, nd->kids, nd->nkids, ctx, depth);
        } else if (json_is_array(v)) {
            for (size_t k = 0; k < json_array_size(v) && !o->full; k++) {
                ctx[depth] = json_array_get(v, k);
                render(o, nd->kids, nd->nkids, ctx, depth + 1);
            }
        } else if (truthy(v)) {
            ctx[depth] = v;
            render(o, nd->kids, nd->nkids, ctx, depth + 1);
        }
    }
}

char *ferry_template_render(const ferry_template_t *t, const json_t *data)
{
    out_t o = {0};
    json_t *ctx[FERRY_TEMPLATE_MAX_DEPTH + 2];
    ctx[0] = (json_t *)data;
    emit(&o, "", 0);
    render(&o, t->root.kids, t->root.nkids, ctx, 1);
    return o.buf;
}
