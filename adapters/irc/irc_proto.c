/* irc_proto.c: IRC lines in and out. Everything that comes from XMPP and
 * goes to IRC passes irc_format() or irc_split_text(), which never let CR,
 * LF or NUL through: text never becomes a second command. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc_proto.h"
#include "ferry/text.h"

/* Room kept for the ":nick!user@host " prefix the server adds when it
 * relays our line to others (nick 30, user 10, host 63, punctuation). */
#define PREFIX_ROOM 110

irc_msg_t *irc_msg_parse(const char *line, size_t len)
{
    irc_msg_t *m = ferry_calloc(1, sizeof *m + len + 1);
    memcpy(m->buf, line, len);
    m->buf[len] = 0;
    char *p = m->buf;
    if (*p == '@') {
        m->tags = ++p;
        p = strchr(p, ' ');
        if (!p)
            goto bad;
        *p++ = 0;
        while (*p == ' ')
            p++;
    }
    if (*p == ':') {
        m->prefix = ++p;
        p = strchr(p, ' ');
        if (!p)
            goto bad;
        *p++ = 0;
        while (*p == ' ')
            p++;
    }
    if (!*p)
        goto bad;
    m->command = p;
    while (*p && *p != ' ') {
        *p = (char)toupper((unsigned char)*p);
        p++;
    }
    if (p == m->command)
        goto bad; /* a line starting with a space: no command */
    while (*p == ' ') {
        *p++ = 0;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p == ':' || m->nparams == IRC_MAX_PARAMS - 1) {
            m->params[m->nparams++] = *p == ':' ? p + 1 : p;
            break;
        }
        m->params[m->nparams++] = p;
        while (*p && *p != ' ')
            p++;
    }
    return m;
bad:
    free(m);
    return NULL;
}

void irc_prefix_nick(const char *prefix, char *buf, size_t len)
{
    size_t n = prefix ? strcspn(prefix, "!@") : 0;
    if (n >= len)
        n = len - 1;
    memcpy(buf, prefix ? prefix : "", n);
    buf[n] = 0;
}

irc_casemap_t irc_casemap_parse(const char *name)
{
    if (name && strcmp(name, "ascii") == 0)
        return IRC_CASE_ASCII;
    if (name && strcmp(name, "strict-rfc1459") == 0)
        return IRC_CASE_STRICT_RFC1459;
    return IRC_CASE_RFC1459;
}

static char fold(irc_casemap_t map, char c)
{
    if (c >= 'A' && c <= 'Z')
        return (char)(c - 'A' + 'a');
    if (map == IRC_CASE_ASCII)
        return c;
    /* RFC 1459: []\ are the upper case of {}|, and ~ of ^ (not in strict). */
    if (c == '[')
        return '{';
    if (c == ']')
        return '}';
    if (c == '\\')
        return '|';
    if (c == '~' && map == IRC_CASE_RFC1459)
        return '^';
    return c;
}

void irc_casefold(irc_casemap_t map, const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        buf[i] = fold(map, s[i]);
    buf[i] = 0;
}

int irc_casecmp(irc_casemap_t map, const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = fold(map, *a), y = fold(map, *b);
        if (x != y)
            return (unsigned char)x - (unsigned char)y;
    }
    return (unsigned char)fold(map, *a) - (unsigned char)fold(map, *b);
}

uint32_t irc_casehash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)fold(IRC_CASE_RFC1459, *s)) * 16777619u;
    return h;
}

static int forbidden_anywhere(unsigned char c) { return c == '\r' || c == '\n' || c == 0; }

int irc_valid_nick(const char *s)
{
    if (!s || !*s || strlen(s) > 64 || *s == ':' || *s == '#' || *s == '&' || isdigit((unsigned char)*s) || *s == '-')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == ',' || *p == '!' || *p == '@' || *p == '*' || *p == '?' ||
            *p == 0x7f)
            return 0;
    return 1;
}

int irc_valid_channel(const char *s, const char *chantypes)
{
    if (!s || !*s || !strchr(chantypes, *s) || strlen(s) > 200)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == ',' || *p == 7 || *p == 0x7f)
            return 0;
    return ferry_xml_text_valid(s, strlen(s)); /* it becomes part of a JID */
}

int irc_nick_usable(const char *s)
{
    size_t len = strlen(s);
    if (!len || !ferry_xml_text_valid(s, len))
        return 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += ferry_utf8_next(s + i, len - i, &cp);
        /* RFC 6122 resourceprep forbids controls (C.2) and U+FFF9-U+FFFD
         * (C.6, where a cleaned U+FFFD lands): the server would drop every
         * stanza from such an occupant. */
        if (cp <= ' ' || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0xFFF9 && cp <= 0xFFFD))
            return 0;
    }
    return 1;
}

size_t irc_format(char *out, size_t cap, const char *command, const char *const *params,
                  int nparams)
{
    size_t len = 0;
    int n = snprintf(out, cap, "%s", command);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    len = (size_t)n;
    for (int i = 0; i < nparams; i++) {
        const char *p = params[i];
        int last = i == nparams - 1;
        for (const char *c = p; *c; c++)
            if (forbidden_anywhere((unsigned char)*c))
                return 0;
        int trailing = last && (!*p || *p == ':' || strchr(p, ' '));
        if (!last && (!*p || *p == ':' || strchr(p, ' ')))
            return 0;
        n = snprintf(out + len, cap - len, " %s%s", trailing ? ":" : "", p);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    if (len + 2 > IRC_LINE_MAX || len + 3 > cap)
        return 0;
    out[len++] = '\r';
    out[len++] = '\n';
    out[len] = 0;
    return len;
}

static void push_piece(char ***pieces, size_t *n, size_t *cap, const char *s, size_t len)
{
    if (*n == *cap)
        *pieces = ferry_realloc(*pieces, (*cap *= 2) * sizeof **pieces);
    (*pieces)[(*n)++] = ferry_strndup(s, len);
}

/* Splits one line (no CR/LF inside) into pieces of at most MAX bytes. */
static void split_line(const char *line, size_t len, size_t max, char ***pieces, size_t *n,
                       size_t *cap)
{
    while (len > max) {
        size_t cut = 0, space = 0;
        for (size_t i = 0; i < len;) {
            size_t l = ferry_utf8_seq_len((unsigned char)line[i]);
            if (i + l > max)
                break;
            i += l;
            cut = i;
            if (line[i - 1] == ' ')
                space = i;
        }
        if (space > max / 2)
            cut = space; /* a word boundary, when it is not too far back */
        if (cut == 0)
            cut = 1;
        push_piece(pieces, n, cap, line, cut);
        line += cut;
        len -= cut;
    }
    if (len)
        push_piece(pieces, n, cap, line, len);
}

size_t irc_split_text(const char *command, const char *target, const char *text,
                      char ***pieces)
{
    size_t overhead = strlen(command) + strlen(target) + 5; /* spaces, ':', CR LF */
    size_t max = IRC_LINE_MAX - PREFIX_ROOM > overhead ? IRC_LINE_MAX - PREFIX_ROOM - overhead : 1;
    size_t cap = 4, n = 0;
    *pieces = ferry_malloc(cap * sizeof **pieces);
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "\r\n");
        split_line(p, len, max, pieces, &n, &cap);
        p += len;
        while (*p == '\r' || *p == '\n')
            p++; /* a newline starts a new IRC line; blank lines are dropped */
    }
    return n;
}

void irc_pieces_free(char **pieces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pieces[i]);
    free(pieces);
}

/* ---- reading lines ---- */

static int linebuf_keep(irc_linebuf_t *lb, const char *data, size_t len, size_t max)
{
    if (!len)
        return 0;
    if (lb->len + len > max)
        return -1;
    if (lb->len + len > lb->cap) {
        /* Most connections never hold more than part of a line: start
         * small, so that a thousand idle users cost little memory. */
        size_t cap = lb->cap ? lb->cap : 1024;
        while (cap < lb->len + len)
            cap *= 2;
        lb->buf = ferry_realloc(lb->buf, cap);
        lb->cap = cap;
    }
    memcpy(lb->buf + lb->len, data, len);
    lb->len += len;
    return 0;
}

static int linebuf_deliver(const char *line, size_t len,
                           int (*on_line)(void *ctx, const char *line, size_t len), void *ctx)
{
    if (len && line[len - 1] == '\r')
        len--;
    return len ? on_line(ctx, line, len) : 0;
}

int irc_linebuf_feed(irc_linebuf_t *lb, const char *data, size_t len, size_t max,
                     int (*on_line)(void *ctx, const char *line, size_t len), void *ctx)
{
    const char *nl;
    while ((nl = memchr(data, '\n', len))) {
        size_t n = (size_t)(nl - data);
        int stop;
        if (lb->len) {
            if (linebuf_keep(lb, data, n, max) != 0)
                return -1;
            size_t whole = lb->len;
            lb->len = 0;
            stop = linebuf_deliver(lb->buf, whole, on_line, ctx);
        } else {
            stop = linebuf_deliver(data, n, on_line, ctx);
        }
        data = nl + 1;
        len -= n + 1;
        if (stop)
            return 1;
    }
    if (linebuf_keep(lb, data, len, max) != 0)
        return -1;
    if (!lb->len && lb->cap > 4096)
        irc_linebuf_free(lb); /* a long line is over: give the memory back */
    return 0;
}

void irc_linebuf_free(irc_linebuf_t *lb)
{
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

/* The IRC codes XEP-0393 has a span for: bold (strong), italics (emphasis),
 * strikethrough, monospace (preformatted span); and their directives. */
#define STYLE_CODES "\x02\x1d\x1e\x11"
static const char style_codes[] = STYLE_CODES;
static const char style_marks[] = "*_~`";

static int style_index(unsigned char c)
{
    const char *at = c ? strchr(style_codes, c) : NULL;
    return at ? (int)(at - style_codes) : -1;
}

static char style_mark(unsigned char c)
{
    int k = style_index(c);
    return k < 0 ? 0 : style_marks[k];
}

/* UTF-8 without colors and controls; KEEP_STYLES keeps the codes
 * style_mark() knows and 0x0F (reset) for irc_text_to_styled(). */
static char *clean_text(const char *text, int keep_styles)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *end = p + strlen(text);
    char *out = ferry_malloc(strlen(text) * 3 + 1), *o = out;
    while (*p) {
        unsigned char c = *p;
        if (c >= 0x20 && c < 0x80) { /* most text: printable ASCII, as it is */
            *o++ = (char)*p++;
            continue;
        }
        if (c == 0x03) { /* color: ^C[fg[,bg]] with up to two digits each */
            p++;
            for (int i = 0; i < 2 && isdigit(*p); i++)
                p++;
            if (*p == ',' && isdigit(p[1])) {
                p++;
                for (int i = 0; i < 2 && isdigit(*p); i++)
                    p++;
            }
            continue;
        }
        if (c == 0x04) { /* hex color: ^D RRGGBB[,RRGGBB] */
            p++;
            for (int i = 0; i < 6 && isxdigit(*p); i++)
                p++;
            if (*p == ',' && isxdigit(p[1])) {
                p++;
                for (int i = 0; i < 6 && isxdigit(*p); i++)
                    p++;
            }
            continue;
        }
        if (keep_styles && (style_mark(c) || c == 0x0F)) {
            *o++ = (char)*p++;
            continue;
        }
        /* bold, reset, monospace, reverse, italics, strikethrough, underline */
        if (c == 0x02 || c == 0x0F || c == 0x11 || c == 0x16 || c == 0x1D || c == 0x1E ||
            c == 0x1F) {
            p++;
            continue;
        }
        if (c < 0x20 && c != '\t') { /* other controls cannot go into XML */
            p++;
            continue;
        }
        uint32_t cp;
        size_t l = ferry_utf8_next((const char *)p, (size_t)(end - p), &cp);
        if (cp != FERRY_UTF8_INVALID && ferry_xml_char_ok(cp)) {
            memcpy(o, p, l);
            o += l;
            p += l;
        } else if (cp != FERRY_UTF8_INVALID) { /* U+FFFE, U+FFFF: XML forbids them */
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p += l;
        } else { /* not UTF-8 (overlong, surrogate, F5..): Latin-1, byte by byte */
            *o++ = (char)(0xC0 | (c >> 6));
            *o++ = (char)(0x80 | (c & 0x3F));
            p++;
        }
    }
    *o = 0;
    return out;
}

char *irc_text_to_utf8(const char *text) { return clean_text(text, 0); }

/* ---- XEP-0393 styling ---- */

static int is_code(unsigned char c) { return style_mark(c) || c == 0x0F; }
static int is_space(unsigned char c) { return c == ' ' || c == '\t'; }

/* Where the span opened by the code at S ends: its own code again, a reset,
 * or the end of the text. */
static const char *span_end(const char *s)
{
    const char *e = s + 1;
    while (*e && *e != *s && *e != 0x0F)
        e++;
    return e;
}

/* Whether the span from OPEN to END can be written with directives that a
 * client reads back exactly: not empty, no space just inside, no directive
 * of its own kind inside, nothing but a space or punctuation after it, and
 * a preformatted span with no other style inside. */
static int span_ok(const char *open, const char *end, char mark)
{
    const char *first = NULL, *last = NULL;
    for (const char *p = open + 1; p < end; p++) {
        if (is_code((unsigned char)*p)) {
            if (mark == '`')
                return 0;
            continue;
        }
        if (*p == mark)
            return 0;
        if (!first)
            first = p;
        last = p;
    }
    if (!first || is_space((unsigned char)*first) || is_space((unsigned char)*last))
        return 0;
    const char *after = *end ? end + 1 : end;
    while (*after && is_code((unsigned char)*after))
        after++;
    return !*after || is_space((unsigned char)*after) || ispunct((unsigned char)*after);
}

char *irc_text_to_styled(const char *text)
{
    char *kept = clean_text(text, 1);
    if (!strpbrk(kept, STYLE_CODES "\x0f"))
        return kept; /* most lines: nothing to do */
    char *out = ferry_malloc(strlen(kept) * 2 + 1), *o = out; /* a directive per code at most */
    const char *end[4] = {0}; /* where the open span of each style ends */
    int stack[4], depth = 0;  /* the spans written with directives, innermost last */
    int after_open = 0;       /* the last byte written opened a span */
    for (const char *p = kept; *p; p++) {
        unsigned char c = (unsigned char)*p;
        int k = style_index(c);
        if (c == 0x0F || (k >= 0 && end[k] == p)) {
            while (depth && end[stack[depth - 1]] == p)
                *o++ = style_marks[stack[--depth]];
            for (int i = 0; i < 4; i++)
                if (end[i] == p)
                    end[i] = NULL;
            after_open = 0;
            continue;
        }
        if (k < 0) {
            *o++ = (char)c;
            after_open = 0;
            continue;
        }
        const char *e = span_end(p);
        end[k] = e;
        int nested = 1;
        for (int i = 0; i < depth; i++)
            if (e > end[stack[i]])
                nested = 0;
        char prev = o > out ? o[-1] : ' ';
        if (nested && (is_space((unsigned char)prev) || after_open) && span_ok(p, e, style_marks[k])) {
            stack[depth++] = k;
            *o++ = style_marks[k];
            after_open = 1;
        }
    }
    while (depth)
        *o++ = style_marks[stack[--depth]];
    *o = 0;
    free(kept);
    return out;
}
