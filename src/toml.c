/* toml.c: a strict TOML 1.0 parser for ferry's configuration. It builds a
 * tree of toml_node_t that remember the line of their key, and rejects
 * anything TOML 1.0 forbids (or that the tree cannot represent exactly) with
 * a message and a line instead of guessing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l: float syntax must not depend on LC_NUMERIC */
#endif
#include "ferry/alloc.h"
#include "toml.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ferry/text.h"

/* Parsing and freeing recurse over the tree, so hostile input must not be
 * able to nest deeper than this and exhaust the stack. */
#define MAX_DEPTH 128

typedef struct {
    const char *s;
    size_t len, pos;
    int line;
    char *err;
    size_t errlen;
    int errline;
    int failed;
    toml_node_t *root;
    toml_node_t *cur; /* table that key/value lines go into */
    int cur_depth;
} parser_t;

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

typedef struct {
    char **parts;
    size_t n, cap;
    int line;
} keypath_t;

/* Short texts built for error messages; returned by value so that they can
 * be used inline as printf arguments. */
typedef struct {
    char s[160];
} text_t;

/* ---------------------------------------------------------------- errors */

static int fail_at(parser_t *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(parser_t *p, int line, const char *fmt, ...)
{
    va_list ap;

    if (p->failed) /* the first error is the precise one */
        return -1;
    p->failed = 1;
    p->errline = line;
    if (p->err && p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define fail(p, ...) fail_at((p), (p)->line, __VA_ARGS__)

static text_t describe(int c)
{
    text_t t;

    if (c == -1)
        snprintf(t.s, sizeof t.s, "end of file");
    else if (c == '\n' || c == '\r')
        snprintf(t.s, sizeof t.s, "end of line");
    else if (c == ' ')
        snprintf(t.s, sizeof t.s, "a space");
    else if (c == '\t')
        snprintf(t.s, sizeof t.s, "a tab");
    else if (c > ' ' && c < 0x7f)
        snprintf(t.s, sizeof t.s, "'%c'", c);
    else
        snprintf(t.s, sizeof t.s, "byte 0x%02X", (unsigned)c);
    return t;
}

static int is_bare_key_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Key path as the user would write it, for messages; truncation is fine. */
static text_t key_name(const keypath_t *k, size_t upto)
{
    text_t t;
    size_t o = 0, i;
    const char *c;

    t.s[0] = '\0';
    for (i = 0; i <= upto && i < k->n && o + 8 < sizeof t.s; i++) {
        int bare = k->parts[i][0] != '\0';
        for (c = k->parts[i]; *c; c++)
            bare = bare && is_bare_key_char((unsigned char)*c);
        if (i > 0)
            t.s[o++] = '.';
        if (!bare)
            t.s[o++] = '"';
        for (c = k->parts[i]; *c && o + 8 < sizeof t.s; c++) {
            unsigned char ch = (unsigned char)*c;
            if (!bare && (ch == '"' || ch == '\\'))
                t.s[o++] = '\\';
            if (ch < 0x20 || ch == 0x7f)
                o += (size_t)snprintf(t.s + o, sizeof t.s - o, "\\u%04X", ch);
            else
                t.s[o++] = (char)ch;
        }
        if (!bare)
            t.s[o++] = '"';
        t.s[o] = '\0';
    }
    if (i <= upto && i < k->n)
        snprintf(t.s + o, sizeof t.s - o, "...");
    return t;
}

static int check_depth(parser_t *p, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(p, "nesting too deep (more than %d levels of tables and arrays)", MAX_DEPTH);
    return 0;
}

/* ---------------------------------------------------------------- memory */

/* Capacity of at least need elements, doubling; 0 when it would overflow. */
static size_t next_cap(size_t cap, size_t need, size_t elem)
{
    size_t c = cap ? cap : 8;

    while (c < need) {
        if (c > SIZE_MAX / 4)
            return 0;
        c *= 2;
    }
    return c > SIZE_MAX / elem ? 0 : c;
}

static int buf_add(parser_t *p, buf_t *b, const char *s, size_t n)
{
    if (b->cap - b->n <= n) { /* keep room for the terminating NUL */
        size_t cap = next_cap(b->cap, b->n + n + 1, 1);
        char *q = cap ? ferry_realloc(b->p, cap) : NULL;
        if (!q)
            return fail(p, "out of memory");
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static int buf_addc(parser_t *p, buf_t *b, char c)
{
    return buf_add(p, b, &c, 1);
}

/* The buffer's text, allocated even when empty; NULL when out of memory. */
static char *buf_take(parser_t *p, buf_t *b)
{
    if (!b->p && buf_add(p, b, "", 0))
        return NULL;
    return b->p;
}

static toml_node_t *node_new(parser_t *p, toml_type_t type, int line)
{
    toml_node_t *n = ferry_calloc(1, sizeof *n);

    (void)p;
    n->type = type;
    n->line = line;
    return n;
}

void ferry__toml_free(toml_node_t *node)
{
    size_t i;

    if (!node)
        return;
    switch (node->type) {
    case TOML_ARRAY:
        for (i = 0; i < node->u.arr.n; i++)
            ferry__toml_free(node->u.arr.items[i]);
        free(node->u.arr.items);
        break;
    case TOML_TABLE:
        for (i = 0; i < node->u.tab.n; i++) {
            free(node->u.tab.keys[i]);
            ferry__toml_free(node->u.tab.vals[i]);
        }
        free(node->u.tab.keys);
        free(node->u.tab.vals);
        break;
    case TOML_INTEGER:
    case TOML_FLOAT:
    case TOML_BOOL:
        break;
    default: /* strings and date-times keep their text */
        free(node->u.str.s);
        break;
    }
    free(node);
}

/* Takes ownership of v only on success. */
static int array_push(parser_t *p, toml_node_t *a, toml_node_t *v)
{
    if (a->u.arr.n == a->u.arr.cap) {
        size_t cap = next_cap(a->u.arr.cap, a->u.arr.n + 1, sizeof *a->u.arr.items);
        toml_node_t **q = cap ? ferry_realloc(a->u.arr.items, cap * sizeof *q) : NULL;
        if (!q)
            return fail(p, "out of memory");
        a->u.arr.items = q;
        a->u.arr.cap = cap;
    }
    a->u.arr.items[a->u.arr.n++] = v;
    return 0;
}

toml_node_t *ferry__toml_table_get(const toml_node_t *table, const char *key)
{
    size_t i;

    if (!table || !key || table->type != TOML_TABLE)
        return NULL;
    for (i = 0; i < table->u.tab.n; i++)
        if (strcmp(table->u.tab.keys[i], key) == 0)
            return table->u.tab.vals[i];
    return NULL;
}

/* Takes ownership of key and v only on success. */
static int table_add(parser_t *p, toml_node_t *t, char *key, toml_node_t *v)
{
    if (t->u.tab.n == t->u.tab.cap) {
        size_t cap = next_cap(t->u.tab.cap, t->u.tab.n + 1, sizeof(void *));
        char **keys = cap ? ferry_realloc(t->u.tab.keys, cap * sizeof *keys) : NULL;
        toml_node_t **vals;
        if (!keys)
            return fail(p, "out of memory");
        t->u.tab.keys = keys; /* a larger array with the old cap is harmless */
        vals = ferry_realloc(t->u.tab.vals, cap * sizeof *vals);
        t->u.tab.vals = vals;
        t->u.tab.cap = cap;
    }
    t->u.tab.keys[t->u.tab.n] = key;
    t->u.tab.vals[t->u.tab.n] = v;
    t->u.tab.n++;
    return 0;
}

static toml_node_t *new_child_table(parser_t *p, toml_node_t *parent, const char *name, int line)
{
    char *key = ferry_strdup(name);
    toml_node_t *t = node_new(p, TOML_TABLE, line);

    if (table_add(p, parent, key, t)) {
        free(key);
        free(t);
        return NULL;
    }
    return t;
}

static int keypath_push(parser_t *p, keypath_t *k, char *part)
{
    if (k->n == k->cap) {
        size_t cap = next_cap(k->cap, k->n + 1, sizeof *k->parts);
        char **q = cap ? ferry_realloc(k->parts, cap * sizeof *q) : NULL;
        if (!q)
            return fail(p, "out of memory");
        k->parts = q;
        k->cap = cap;
    }
    k->parts[k->n++] = part;
    return 0;
}

static void keypath_free(keypath_t *k)
{
    size_t i;

    for (i = 0; i < k->n; i++)
        free(k->parts[i]);
    free(k->parts);
}

/* ---------------------------------------------------------------- text */

static int peek(const parser_t *p, size_t off)
{
    return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(parser_t *p)
{
    while (peek(p, 0) == ' ' || peek(p, 0) == '\t')
        p->pos++;
}

static int at_newline(const parser_t *p)
{
    return peek(p, 0) == '\n' || (peek(p, 0) == '\r' && peek(p, 1) == '\n');
}

static int eat_newline(parser_t *p)
{
    if (!at_newline(p))
        return 0;
    p->pos += peek(p, 0) == '\r' ? 2 : 1;
    p->line++;
    return 1;
}

/* check_text has vetted every byte, so a comment simply runs to the end of
 * the line. */
static void skip_comment(parser_t *p)
{
    if (peek(p, 0) != '#')
        return;
    while (p->pos < p->len && p->s[p->pos] != '\n' && p->s[p->pos] != '\r')
        p->pos++;
}

/* Between array elements: whitespace, newlines and comments. */
static void skip_ws_nl_comments(parser_t *p)
{
    do {
        skip_ws(p);
        skip_comment(p);
    } while (eat_newline(p));
}

/* Length of the valid UTF-8 sequence at s, or 0: overlong forms, surrogates
 * and code points above U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len, i;
    unsigned long cp, min;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* TOML forbids control characters other than tab everywhere (comments and
 * strings included; newlines only end lines or sit in multi-line strings),
 * and a document must be valid UTF-8. Checking the whole text up front lets
 * the grammar code assume clean input. */
static int check_text(parser_t *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t i = p->pos, n;
    int line = 1;

    while (i < p->len) {
        unsigned c = s[i];
        if (c == '\n') {
            line++;
            i++;
        } else if (c == '\r') {
            if (i + 1 >= p->len || s[i + 1] != '\n')
                return fail_at(p, line, "carriage return not followed by line feed");
            i++;
        } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
            i++;
        } else if (c < 0x80) {
            return fail_at(p, line, "control character U+%04X is not allowed", c);
        } else if ((n = utf8_len(s + i, p->len - i)) == 0) {
            return fail_at(p, line, "invalid UTF-8 byte 0x%02X", c);
        } else {
            i += n;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- strings */

static int add_utf8(parser_t *p, buf_t *b, unsigned long cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12), n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18), n = 4;
    }
    if (n > 1)
        u[n - 1] = (char)(0x80 | (cp & 0x3F));
    if (n > 2)
        u[n - 2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    if (n > 3)
        u[n - 3] = (char)(0x80 | ((cp >> 12) & 0x3F));
    return buf_add(p, b, u, n);
}

/* \uXXXX or \UXXXXXXXX, positioned after the letter. */
static int parse_unicode_escape(parser_t *p, buf_t *b, int ndigits, char letter)
{
    unsigned long cp = 0;
    int i, d;

    for (i = 0; i < ndigits; i++) {
        if ((d = ferry_hex_digit(peek(p, (size_t)i))) < 0)
            return fail(p, "escape \\%c needs exactly %d hex digits", letter, ndigits);
        cp = cp << 4 | (unsigned long)d;
    }
    p->pos += (size_t)ndigits;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail(p, "escape \\%c%0*lX is not a Unicode scalar value", letter, ndigits, cp);
    return add_utf8(p, b, cp);
}

/* An escape sequence, positioned at the backslash. */
static int parse_escape(parser_t *p, buf_t *b)
{
    int c = peek(p, 1);

    p->pos += 2;
    switch (c) {
    case 'b': return buf_addc(p, b, '\b');
    case 't': return buf_addc(p, b, '\t');
    case 'n': return buf_addc(p, b, '\n');
    case 'f': return buf_addc(p, b, '\f');
    case 'r': return buf_addc(p, b, '\r');
    case '"': return buf_addc(p, b, '"');
    case '\\': return buf_addc(p, b, '\\');
    case 'u': return parse_unicode_escape(p, b, 4, 'u');
    case 'U': return parse_unicode_escape(p, b, 8, 'U');
    default:
        if (c > ' ' && c < 0x7f)
            return fail(p, "invalid escape sequence '\\%c'", c);
        return fail(p, "invalid escape sequence: backslash followed by %s", describe(c).s);
    }
}

/* Copies one character (a whole UTF-8 sequence) of a string body. */
static int copy_char(parser_t *p, buf_t *b)
{
    size_t n = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);

    p->pos += n; /* n >= 1: check_text has validated the text */
    return buf_add(p, b, p->s + p->pos - n, n);
}

static int parse_basic_string(parser_t *p, buf_t *b)
{
    int start = p->line, c;

    p->pos++;
    for (;;) {
        c = peek(p, 0);
        if (c == -1)
            return fail_at(p, start, "unterminated string");
        if (c == '\n' || c == '\r')
            return fail(p, "newline in a single-line string (use \"\"\" for multi-line strings)");
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c == '\\' ? parse_escape(p, b) : copy_char(p, b))
            return -1;
    }
}

static int parse_literal_string(parser_t *p, buf_t *b)
{
    int start = p->line, c;

    p->pos++;
    for (;;) {
        c = peek(p, 0);
        if (c == -1)
            return fail_at(p, start, "unterminated literal string");
        if (c == '\n' || c == '\r')
            return fail(p, "newline in a single-line literal string (use ''' for multi-line strings)");
        if (c == '\'') {
            p->pos++;
            return 0;
        }
        if (copy_char(p, b))
            return -1;
    }
}

/* At a run of the delimiter quote inside a multi-line string: one or two are
 * content, three to five close the string (the extra ones being content),
 * more cannot be written. Returns 1 when the string is closed. */
static int ml_quotes(parser_t *p, buf_t *b, char q)
{
    size_t n = 0;

    while (peek(p, n) == q)
        n++;
    if (n > 5)
        return fail(p, "too many quotes (%zu) at the end of a multi-line string", n);
    p->pos += n;
    if (n >= 3) {
        while (n-- > 3)
            if (buf_addc(p, b, q))
                return -1;
        return 1;
    }
    while (n--)
        if (buf_addc(p, b, q))
            return -1;
    return 0;
}

/* A backslash that is the last thing on its line (trailing whitespace
 * allowed) joins the lines, dropping the newline and following whitespace. */
static int line_ending_backslash(parser_t *p)
{
    size_t i = 1;

    while (peek(p, i) == ' ' || peek(p, i) == '\t')
        i++;
    if (peek(p, i) != '\n' && !(peek(p, i) == '\r' && peek(p, i + 1) == '\n'))
        return 0;
    p->pos += i;
    for (;;) {
        if (peek(p, 0) == ' ' || peek(p, 0) == '\t')
            p->pos++;
        else if (!eat_newline(p))
            return 1;
    }
}

/* Multi-line string, basic (with escapes) or literal. Newlines in the body
 * are stored as LF, whichever form the file uses. */
static int parse_ml_string(parser_t *p, buf_t *b, char q)
{
    int start = p->line, c, rc;

    p->pos += 3;
    eat_newline(p); /* a newline right after the delimiter is trimmed */
    for (;;) {
        c = peek(p, 0);
        if (c == -1)
            return fail_at(p, start, "unterminated multi-line string");
        if (c == q) {
            if ((rc = ml_quotes(p, b, q)) != 0)
                return rc < 0 ? -1 : 0;
        } else if (eat_newline(p)) {
            if (buf_addc(p, b, '\n'))
                return -1;
        } else if (c == '\\' && q == '"') {
            if (!line_ending_backslash(p) && parse_escape(p, b))
                return -1;
        } else if (copy_char(p, b)) {
            return -1;
        }
    }
}

/* ---------------------------------------------------------------- keys */

static int parse_simple_key(parser_t *p, char **out)
{
    buf_t b = {0};
    int c = peek(p, 0), rc;
    size_t start;

    if (c == '"' || c == '\'') {
        if (peek(p, 1) == c && peek(p, 2) == c)
            return fail(p, "multi-line strings cannot be used as keys");
        rc = c == '"' ? parse_basic_string(p, &b) : parse_literal_string(p, &b);
    } else if (is_bare_key_char(c)) {
        start = p->pos;
        while (is_bare_key_char(peek(p, 0)))
            p->pos++;
        rc = buf_add(p, &b, p->s + start, p->pos - start);
    } else {
        return fail(p, "expected a key, found %s", describe(c).s);
    }
    if (rc == 0 && !buf_take(p, &b))
        rc = -1;
    /* keys are C strings in the tree; an embedded NUL would cut them */
    if (rc == 0 && strlen(b.p) != b.n)
        rc = fail(p, "keys containing U+0000 are not supported");
    if (rc) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    return 0;
}

/* simple-key *( ws "." ws simple-key ), leaving trailing whitespace eaten. */
static int parse_key(parser_t *p, keypath_t *k)
{
    char *part = NULL;

    k->line = p->line;
    for (;;) {
        if (parse_simple_key(p, &part))
            return -1;
        if (keypath_push(p, k, part)) {
            free(part);
            return -1;
        }
        skip_ws(p);
        if (peek(p, 0) != '.')
            return 0;
        p->pos++;
        skip_ws(p);
    }
}

/* ---------------------------------------------------------------- scalars */

static int is_token_char(int c)
{
    return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

static int looks_like_date(const char *s, size_t n)
{
    return n >= 10 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) &&
           is_digit(s[3]) && s[4] == '-' && is_digit(s[5]) && is_digit(s[6]) &&
           s[7] == '-' && is_digit(s[8]) && is_digit(s[9]);
}

/* Extent of a bare value (number, bool, date-time). None of its characters
 * can legally follow a value, so the whole run must form one value. */
static size_t token_length(const parser_t *p)
{
    const char *s = p->s + p->pos;
    size_t avail = p->len - p->pos, n = 0;

    while (n < avail && is_token_char((unsigned char)s[n]))
        n++;
    /* a date and a time may be separated by a space instead of 'T' */
    if (n == 10 && looks_like_date(s, n) && avail > 13 && s[10] == ' ' &&
        is_digit(s[11]) && is_digit(s[12]) && s[13] == ':') {
        n = 11;
        while (n < avail && is_token_char((unsigned char)s[n]))
            n++;
    }
    return n;
}

static int two_digits(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* HH:MM:SS[.fraction] at s: its length, or 0 when malformed or out of
 * range. Second 60 is RFC 3339's leap second. */
static size_t scan_time(const char *s, size_t n)
{
    size_t i = 8;

    if (n < 8 || !is_digit(s[0]) || !is_digit(s[1]) || s[2] != ':' ||
        !is_digit(s[3]) || !is_digit(s[4]) || s[5] != ':' ||
        !is_digit(s[6]) || !is_digit(s[7]))
        return 0;
    if (two_digits(s) > 23 || two_digits(s + 3) > 59 || two_digits(s + 6) > 60)
        return 0;
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i;
}

static int valid_offset(const char *s, size_t n)
{
    if (n == 1)
        return s[0] == 'Z' || s[0] == 'z';
    return n == 6 && (s[0] == '+' || s[0] == '-') && is_digit(s[1]) &&
           is_digit(s[2]) && s[3] == ':' && is_digit(s[4]) && is_digit(s[5]) &&
           two_digits(s + 1) <= 23 && two_digits(s + 4) <= 59;
}

/* Classifies and validates a date, time or date-time token; returns why it
 * is invalid, or NULL. */
static const char *datetime_type(const char *tok, size_t n, toml_type_t *type)
{
    static const char *const bad_time =
        "time must be HH:MM:SS[.fraction], hour 00-23, minute 00-59, second 00-60";
    size_t t;
    int y, m, d;

    if (n >= 3 && is_digit(tok[0]) && is_digit(tok[1]) && tok[2] == ':') {
        *type = TOML_TIME_LOCAL;
        return scan_time(tok, n) == n ? NULL : bad_time;
    }
    if (!looks_like_date(tok, n))
        return "date must be YYYY-MM-DD";
    y = two_digits(tok) * 100 + two_digits(tok + 2);
    m = two_digits(tok + 5);
    d = two_digits(tok + 8);
    if (m < 1 || m > 12)
        return "month out of range";
    if (d < 1 || d > days_in_month(y, m))
        return "day out of range for the month";
    if (n == 10) {
        *type = TOML_DATE_LOCAL;
        return NULL;
    }
    if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ')
        return "date and time must be separated by 'T' or a space";
    if ((t = scan_time(tok + 11, n - 11)) == 0)
        return bad_time;
    if (11 + t == n) {
        *type = TOML_DATETIME_LOCAL;
        return NULL;
    }
    *type = TOML_DATETIME;
    if (!valid_offset(tok + 11 + t, n - 11 - t))
        return "offset must be Z or +HH:MM/-HH:MM, hour 00-23, minute 00-59";
    return NULL;
}

static toml_node_t *parse_datetime(parser_t *p, const char *tok, size_t n, int line)
{
    toml_type_t type;
    toml_node_t *node;
    const char *why = datetime_type(tok, n, &type);
    char *text;
    size_t i;

    if (why) {
        fail(p, "invalid date/time '%.*s': %s", (int)(n > 60 ? 60 : n), tok, why);
        return NULL;
    }
    text = ferry_malloc(n + 1);
    /* the canonical form: 'T' between date and time, upper-case 'Z' */
    for (i = 0; i < n; i++)
        text[i] = tok[i] == 't' || tok[i] == ' ' ? 'T' : tok[i] == 'z' ? 'Z' : tok[i];
    text[n] = '\0';
    if (!(node = node_new(p, type, line))) {
        free(text);
        return NULL;
    }
    node->u.str.s = text;
    node->u.str.len = n;
    return node;
}

/* digit *( ["_"] digit ) in the given base: length of the valid run at s;
 * an underscore not between two digits ends it. */
static size_t scan_digits(const char *s, size_t n, int base)
{
    size_t i = 0;

    while (i < n) {
        size_t j = i + (s[i] == '_' && i > 0);
        int d = j < n ? ferry_hex_digit((unsigned char)s[j]) : -1;
        if (d < 0 || d >= base)
            break;
        i = j + 1;
    }
    return i;
}

/* Accumulates the digits of s (underscores skipped) up to limit. */
static int digits_value(const char *s, size_t n, int base, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        uint64_t d;
        if (s[i] == '_')
            continue;
        d = (uint64_t)ferry_hex_digit((unsigned char)s[i]);
        if (v > (limit - d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + d;
    }
    *out = v;
    return 0;
}

static toml_node_t *int_node(parser_t *p, int64_t v, int line)
{
    toml_node_t *n = node_new(p, TOML_INTEGER, line);

    if (n)
        n->u.i = v;
    return n;
}

static toml_node_t *float_node(parser_t *p, double v, int line)
{
    toml_node_t *n = node_new(p, TOML_FLOAT, line);

    if (n)
        n->u.f = v;
    return n;
}

/* Checks decimal float syntax after the sign: int-part ( frac [exp] / exp ),
 * the int part without leading zeros. */
static int valid_float(const char *s, size_t n)
{
    size_t i = scan_digits(s, n, 10), k;
    int frac_or_exp = 0;

    if (i == 0 || (s[0] == '0' && i > 1))
        return 0;
    if (i < n && s[i] == '.') {
        if ((k = scan_digits(s + i + 1, n - i - 1, 10)) == 0)
            return 0;
        i += 1 + k;
        frac_or_exp = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if ((k = scan_digits(s + i, n - i, 10)) == 0)
            return 0;
        i += k;
        frac_or_exp = 1;
    }
    return frac_or_exp && i == n;
}

static toml_node_t *parse_float(parser_t *p, const char *tok, size_t n, int line)
{
    char *text = ferry_malloc(n + 1);
    size_t i, o = 0;
    locale_t c_locale;
    double v;
    int overflow;

    for (i = 0; i < n; i++)
        if (tok[i] != '_')
            text[o++] = tok[i];
    text[o] = '\0';
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c_locale) {
        free(text);
        fail(p, "cannot create the C locale to read a float");
        return NULL;
    }
    errno = 0;
    v = strtod_l(text, NULL, c_locale); /* the syntax is already checked */
    overflow = errno == ERANGE && isinf(v);
    freelocale(c_locale);
    free(text);
    if (overflow) { /* storing infinity for 1e400 would be a wrong value */
        fail(p, "float '%.*s' is out of range", (int)(n > 60 ? 60 : n), tok);
        return NULL;
    }
    return float_node(p, v, line);
}

static toml_node_t *parse_number(parser_t *p, const char *tok, size_t n, int line)
{
    const char *s = tok;
    int neg = 0, sign = 0, base = 0;
    uint64_t v;

    if (n > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        sign = 1;
        s++, n--;
    }
    if (n == 3 && (memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0)) {
        if (s[0] == 'n')
            return float_node(p, neg ? -NAN : NAN, line);
        return float_node(p, neg ? -INFINITY : INFINITY, line);
    }
    if (n > 2 && s[0] == '0')
        base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : s[1] == 'b' ? 2 : 0;
    if (base) {
        if (sign) {
            fail(p, "a sign is not allowed on hexadecimal, octal or binary integers");
            return NULL;
        }
        if (scan_digits(s + 2, n - 2, base) != n - 2)
            goto invalid;
        if (digits_value(s + 2, n - 2, base, INT64_MAX, &v))
            goto overflow;
        return int_node(p, (int64_t)v, line);
    }
    if (memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n)) {
        if (!valid_float(s, n))
            goto invalid;
        return parse_float(p, tok, n + (size_t)sign, line);
    }
    if (n == 0 || scan_digits(s, n, 10) != n)
        goto invalid;
    if (s[0] == '0' && n > 1) {
        fail(p, "leading zeros are not allowed in '%.*s'", (int)(n > 60 ? 60 : n), s);
        return NULL;
    }
    if (digits_value(s, n, 10, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &v))
        goto overflow;
    if (!neg)
        return int_node(p, (int64_t)v, line);
    /* -2^63 has no positive counterpart to negate */
    return int_node(p, v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v, line);

invalid:
    fail(p, "invalid value '%.*s'", (int)(n + (size_t)sign > 60 ? 60 : n + (size_t)sign), tok);
    return NULL;
overflow:
    fail(p, "integer '%.*s' does not fit in 64 bits", (int)(n + (size_t)sign > 60 ? 60 : n + (size_t)sign), tok);
    return NULL;
}

static int token_is(const char *tok, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(tok, word, n) == 0;
}

/* Numbers, booleans and date-times. */
static toml_node_t *parse_bare_value(parser_t *p, int line)
{
    const char *tok = p->s + p->pos;
    size_t n = token_length(p);
    toml_node_t *node;
    int c = peek(p, 0);

    if (n == 0) {
        fail(p, "expected a value, found %s", describe(c).s);
        return NULL;
    }
    if (token_is(tok, n, "true") || token_is(tok, n, "false")) {
        if ((node = node_new(p, TOML_BOOL, line)))
            node->u.b = tok[0] == 't';
    } else if ((n >= 5 && is_digit(tok[0]) && is_digit(tok[1]) && is_digit(tok[2]) &&
                is_digit(tok[3]) && tok[4] == '-') ||
               (n >= 3 && is_digit(tok[0]) && is_digit(tok[1]) && tok[2] == ':')) {
        node = parse_datetime(p, tok, n, line);
    } else if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n') {
        node = parse_number(p, tok, n, line);
    } else {
        fail(p, "invalid value '%.*s'", (int)(n > 60 ? 60 : n), tok);
        return NULL;
    }
    p->pos += n;
    return node;
}

/* ---------------------------------------------------------------- values */

static toml_node_t *parse_value(parser_t *p, int depth, int line);
static int parse_keyval(parser_t *p, toml_node_t *t, int depth);

static toml_node_t *parse_string_value(parser_t *p, int line)
{
    buf_t b = {0};
    char q = (char)peek(p, 0);
    int multi = peek(p, 1) == q && peek(p, 2) == q, rc;
    toml_node_t *n = NULL;

    if (multi)
        rc = parse_ml_string(p, &b, q);
    else
        rc = q == '"' ? parse_basic_string(p, &b) : parse_literal_string(p, &b);
    if (rc == 0 && buf_take(p, &b))
        n = node_new(p, TOML_STRING, line);
    if (!n) {
        free(b.p);
        return NULL;
    }
    n->u.str.s = b.p;
    n->u.str.len = b.n;
    return n;
}

static toml_node_t *parse_array(parser_t *p, int depth, int line)
{
    int start = p->line, c;
    toml_node_t *a = node_new(p, TOML_ARRAY, line), *v;

    if (!a)
        return NULL;
    a->is_inline = 1; /* a static array: [[headers]] cannot extend it */
    p->pos++;
    for (;;) {
        skip_ws_nl_comments(p);
        c = peek(p, 0);
        if (c == ']')
            break;
        if (c == -1) {
            fail_at(p, start, "unterminated array");
            goto error;
        }
        v = parse_value(p, depth + 1, p->line);
        if (!v)
            goto error;
        if (array_push(p, a, v)) {
            ferry__toml_free(v);
            goto error;
        }
        skip_ws_nl_comments(p);
        c = peek(p, 0);
        if (c == ']')
            break;
        if (c != ',') {
            if (c == -1)
                fail_at(p, start, "unterminated array");
            else
                fail(p, "expected ',' or ']' in array, found %s", describe(c).s);
            goto error;
        }
        p->pos++;
    }
    p->pos++;
    return a;
error:
    ferry__toml_free(a);
    return NULL;
}

/* An inline table is complete once closed: neither it nor the tables its
 * dotted keys created may be extended later. */
static void seal(toml_node_t *t)
{
    size_t i;

    t->is_inline = 1;
    for (i = 0; i < t->u.tab.n; i++)
        if (t->u.tab.vals[i]->type == TOML_TABLE && !t->u.tab.vals[i]->is_inline)
            seal(t->u.tab.vals[i]);
}

static int inline_table_end(parser_t *p, int start)
{
    int c = peek(p, 0);

    if (c == -1)
        return fail_at(p, start, "unterminated inline table");
    if (c == '\n' || c == '\r')
        return fail(p, "newline inside an inline table (TOML 1.0 inline tables must stay on one line)");
    return 0;
}

static toml_node_t *parse_inline_table(parser_t *p, int depth, int line)
{
    int start = p->line, c;
    toml_node_t *t = node_new(p, TOML_TABLE, line);

    if (!t)
        return NULL;
    t->defined = 1;
    p->pos++;
    skip_ws(p);
    if (peek(p, 0) != '}') {
        for (;;) {
            skip_ws(p);
            if (inline_table_end(p, start) || parse_keyval(p, t, depth))
                goto error;
            skip_ws(p);
            if (inline_table_end(p, start))
                goto error;
            c = peek(p, 0);
            if (c == '}')
                break;
            if (c != ',') {
                fail(p, "expected ',' or '}' in inline table, found %s", describe(c).s);
                goto error;
            }
            p->pos++;
            skip_ws(p);
            if (peek(p, 0) == '}') {
                fail(p, "trailing comma in an inline table is not allowed");
                goto error;
            }
        }
    }
    p->pos++;
    seal(t);
    return t;
error:
    ferry__toml_free(t);
    return NULL;
}

static toml_node_t *parse_value(parser_t *p, int depth, int line)
{
    int c = peek(p, 0);

    if (check_depth(p, depth))
        return NULL;
    if (c == '"' || c == '\'')
        return parse_string_value(p, line);
    if (c == '[')
        return parse_array(p, depth, line);
    if (c == '{')
        return parse_inline_table(p, depth, line);
    if (c == -1 || c == '\n' || c == '\r' || c == '#') {
        fail(p, "missing value (found %s)", describe(c).s);
        return NULL;
    }
    return parse_bare_value(p, line);
}

/* ---------------------------------------------------------------- tables */

static int redefinition(parser_t *p, const keypath_t *k, const toml_node_t *n, int line,
                        const char *what)
{
    text_t name = key_name(k, k->n - 1);

    if (n->type == TOML_TABLE && n->is_inline)
        return fail_at(p, line, "%s '%s': it is an inline table, closed on line %d",
                       what, name.s, n->line);
    if (n->type == TOML_TABLE && n->defined)
        return fail_at(p, line, "%s '%s': table already defined on line %d",
                       what, name.s, n->line);
    if (n->type == TOML_TABLE && n->dotted)
        return fail_at(p, line, "%s '%s': table already defined by dotted keys on line %d",
                       what, name.s, n->line);
    if (n->type == TOML_TABLE)
        return fail_at(p, line, "%s '%s': it is a table (line %d)", what, name.s, n->line);
    if (n->type == TOML_ARRAY && n->aot)
        return fail_at(p, line, "%s '%s': it is an array of tables since line %d",
                       what, name.s, n->line);
    return fail_at(p, line, "%s '%s': key already defined on line %d as %s",
                   what, name.s, n->line, ferry__toml_type_name(n->type));
}

/* Walks the parents in a [header] or [[header]] path, creating missing ones
 * as implicit tables; through an array of tables it takes the last element. */
static toml_node_t *walk_header(parser_t *p, const keypath_t *k, int line, int *depth)
{
    toml_node_t *t = p->root, *n;
    size_t i;

    *depth = 0;
    for (i = 0; i + 1 < k->n; i++) {
        n = ferry__toml_table_get(t, k->parts[i]);
        if (!n) {
            if (check_depth(p, *depth + 1) || !(n = new_child_table(p, t, k->parts[i], line)))
                return NULL;
            n->implicit = 1;
        } else if (n->type == TOML_ARRAY && n->aot) {
            n = n->u.arr.items[n->u.arr.n - 1];
            (*depth)++;
        } else if (n->type != TOML_TABLE) {
            fail_at(p, line, "cannot use '%s' as a table: key already defined on line %d as %s",
                    key_name(k, i).s, n->line, ferry__toml_type_name(n->type));
            return NULL;
        } else if (n->is_inline) {
            fail_at(p, line, "cannot extend '%s': it is an inline table, closed on line %d",
                    key_name(k, i).s, n->line);
            return NULL;
        }
        if (check_depth(p, ++*depth))
            return NULL;
        t = n;
    }
    return t;
}

static int open_table(parser_t *p, const keypath_t *k, int line)
{
    int depth;
    toml_node_t *t = walk_header(p, k, line, &depth), *n;

    if (!t)
        return -1;
    n = ferry__toml_table_get(t, k->parts[k->n - 1]);
    if (!n) {
        if (check_depth(p, depth + 1) || !(n = new_child_table(p, t, k->parts[k->n - 1], line)))
            return -1;
    } else if (n->type == TOML_TABLE && !n->is_inline && !n->defined && !n->dotted) {
        n->line = line; /* the explicit header is where it is defined */
    } else {
        return redefinition(p, k, n, line, "cannot define table");
    }
    n->defined = 1;
    p->cur = n;
    p->cur_depth = depth + 1;
    return 0;
}

static int open_array_table(parser_t *p, const keypath_t *k, int line)
{
    int depth;
    toml_node_t *t = walk_header(p, k, line, &depth), *a, *elem;
    char *key;

    if (!t || check_depth(p, depth + 2))
        return -1;
    a = ferry__toml_table_get(t, k->parts[k->n - 1]);
    if (!a) {
        key = ferry_strdup(k->parts[k->n - 1]);
        a = node_new(p, TOML_ARRAY, line);
        if (table_add(p, t, key, a)) {
            free(key);
            free(a);
            return -1;
        }
        a->aot = 1;
    } else if (a->type == TOML_ARRAY && !a->aot) {
        return fail_at(p, line, "cannot append to '%s': it is a static array, defined on line %d",
                       key_name(k, k->n - 1).s, a->line);
    } else if (a->type != TOML_ARRAY) {
        return redefinition(p, k, a, line, "cannot define array of tables");
    }
    if (!(elem = node_new(p, TOML_TABLE, line)))
        return -1;
    elem->defined = 1;
    if (array_push(p, a, elem)) {
        free(elem);
        return -1;
    }
    p->cur = elem;
    p->cur_depth = depth + 2;
    return 0;
}

static int parse_header(parser_t *p)
{
    keypath_t k = {0};
    int line = p->line, aot = peek(p, 1) == '[', rc = -1;

    p->pos += aot ? 2 : 1;
    skip_ws(p);
    if (parse_key(p, &k))
        goto out;
    if (aot ? peek(p, 0) != ']' || peek(p, 1) != ']' : peek(p, 0) != ']') {
        fail(p, "expected '%s' to close the table header, found %s", aot ? "]]" : "]",
             describe(peek(p, 0)).s);
        goto out;
    }
    p->pos += aot ? 2 : 1;
    rc = aot ? open_array_table(p, &k, line) : open_table(p, &k, line);
out:
    keypath_free(&k);
    return rc;
}

/* One part of a dotted key on the left of '=': it may create tables or go
 * into ones that dotted keys made, but not reopen a [table] or an inline
 * table. A table that a header only created as a parent may be entered; it
 * then counts as defined by dotted keys, so a later [header] for it fails
 * (the reading Python's tomllib takes as well). */
static toml_node_t *dotted_step(parser_t *p, toml_node_t *t, const keypath_t *k, size_t i,
                                int depth)
{
    toml_node_t *n = ferry__toml_table_get(t, k->parts[i]);

    if (check_depth(p, depth))
        return NULL;
    if (!n) {
        if ((n = new_child_table(p, t, k->parts[i], k->line)))
            n->dotted = 1;
        return n;
    }
    if (n->type != TOML_TABLE)
        fail_at(p, k->line, "cannot use '%s' as a table: key already defined on line %d as %s",
                key_name(k, i).s, n->line, ferry__toml_type_name(n->type));
    else if (n->is_inline)
        fail_at(p, k->line, "cannot add keys to '%s': it is an inline table, closed on line %d",
                key_name(k, i).s, n->line);
    else if (n->defined)
        fail_at(p, k->line, "cannot add keys to table '%s' with dotted keys: it is defined "
                            "by a [header] on line %d",
                key_name(k, i).s, n->line);
    else
        n->dotted = 1;
    return p->failed ? NULL : n;
}

/* key = value, into table t which sits at the given depth. */
static int parse_keyval(parser_t *p, toml_node_t *t, int depth)
{
    keypath_t k = {0};
    toml_node_t *v;
    size_t i;
    int rc = -1;

    if (parse_key(p, &k))
        goto out;
    if (peek(p, 0) != '=') {
        fail(p, "expected '=' after key '%s', found %s", key_name(&k, k.n - 1).s,
             describe(peek(p, 0)).s);
        goto out;
    }
    p->pos++;
    skip_ws(p);
    for (i = 0; i + 1 < k.n; i++)
        if (!(t = dotted_step(p, t, &k, i, ++depth)))
            goto out;
    if ((v = ferry__toml_table_get(t, k.parts[k.n - 1]))) {
        fail_at(p, k.line, "duplicate key '%s' (first defined on line %d)",
                key_name(&k, k.n - 1).s, v->line);
        goto out;
    }
    if (!(v = parse_value(p, depth + 1, k.line)))
        goto out;
    if (table_add(p, t, k.parts[k.n - 1], v)) {
        ferry__toml_free(v);
        goto out;
    }
    k.parts[k.n - 1] = NULL; /* now owned by the table */
    rc = 0;
out:
    keypath_free(&k);
    return rc;
}

/* ---------------------------------------------------------------- document */

/* After a key/value or header: optional comment, then newline or EOF. */
static int end_of_line(parser_t *p, const char *what)
{
    skip_ws(p);
    skip_comment(p);
    if (p->pos >= p->len || eat_newline(p))
        return 0;
    return fail(p, "unexpected %s after %s (expected a newline or a comment)",
                describe(peek(p, 0)).s, what);
}

static int parse_document(parser_t *p)
{
    int c;

    while (p->pos < p->len) {
        skip_ws(p);
        c = peek(p, 0);
        if (c == '[') {
            if (parse_header(p) || end_of_line(p, "table header"))
                return -1;
        } else if (c == '#' || c == '\n' || c == '\r' || c == -1) {
            if (end_of_line(p, "comment"))
                return -1;
        } else if (parse_keyval(p, p->cur, p->cur_depth) || end_of_line(p, "value")) {
            return -1;
        }
    }
    return 0;
}

toml_node_t *ferry__toml_parse(const char *text, size_t len, char *err, size_t errlen, int *errline)
{
    parser_t p = {0};

    p.s = text ? text : "";
    p.len = text ? len : 0;
    p.line = 1;
    p.err = err;
    p.errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
    if (errline)
        *errline = 0;
    /* a UTF-8 byte order mark is tolerated at the very start only */
    if (p.len >= 3 && memcmp(p.s, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3;
    if ((p.root = node_new(&p, TOML_TABLE, 1))) {
        p.root->defined = 1;
        p.cur = p.root;
        if (check_text(&p) == 0)
            parse_document(&p);
    }
    if (p.failed) {
        ferry__toml_free(p.root);
        if (errline)
            *errline = p.errline;
        return NULL;
    }
    return p.root;
}

static char *read_all(FILE *f, size_t *len)
{
    char *data = NULL;
    size_t n = 0, cap = 0, got;

    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 65536;
            data = ferry_realloc(data, cap);
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(data);
        if (!errno)
            errno = EIO;
        return NULL;
    }
    *len = n;
    return data;
}

toml_node_t *ferry__toml_parse_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text, msg[512];
    size_t len = 0;
    int line = 0;
    toml_node_t *root;

    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    errno = 0;
    text = read_all(f, &len);
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    fclose(f);
    root = ferry__toml_parse(text, len, msg, sizeof msg, &line);
    free(text);
    if (!root && err && errlen)
        snprintf(err, errlen, "%s:%d: %s", path, line, msg);
    return root;
}

const char *ferry__toml_type_name(toml_type_t type)
{
    switch (type) {
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "boolean";
    case TOML_DATETIME: return "offset date-time";
    case TOML_DATETIME_LOCAL: return "local date-time";
    case TOML_DATE_LOCAL: return "local date";
    case TOML_TIME_LOCAL: return "local time";
    case TOML_ARRAY: return "array";
    case TOML_TABLE: return "table";
    }
    return "unknown";
}
