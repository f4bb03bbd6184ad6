/* test_toml.c: checks src/toml.c against the toml-test vectors shipped by
 * golang-github-burntsushi-toml-dev (every invalid document rejected, every
 * valid one equal to its tagged JSON), then makes direct checks of lines,
 * error messages, lookups and limits. Run from the repository root; prints
 * one line per failure and "N passed, N failed" at the end. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include "toml.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VECTORS /* where golang-github-burntsushi-toml-dev installs them */
#define VECTORS "/usr/share/gocode/src/github.com/BurntSushi/toml/internal/toml-test/tests"
#endif
#define UNSUPPORTED "tests/unit/toml_unsupported.txt"

static int passed, failed;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;

    printf("FAIL ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failed++;
}

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One direct case: counted as passed, or printed as a failure. */
static void check(int ok, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        passed++;
        return;
    }
    printf("FAIL ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failed++;
}

/* ------------------------------------------------------------ file helpers */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL, *q;
    size_t n = 0, cap = 0, got;

    if (!f)
        return NULL;
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (!(q = realloc(data, cap + 1))) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = q;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

typedef struct {
    char **items;
    size_t n, cap;
} list_t;

static void list_add(list_t *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) {
            perror("realloc");
            exit(2);
        }
    }
    if (!(l->items[l->n++] = strdup(s))) {
        perror("strdup");
        exit(2);
    }
}

static int list_has(const list_t *l, const char *s)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return 1;
    return 0;
}

static void list_free(list_t *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* nftw has no user pointer, hence the file-level list. */
static list_t found;

static int collect(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    size_t n = strlen(path);

    (void)st;
    (void)ftw;
    if (flag == FTW_F && n > 5 && strcmp(path + n - 5, ".toml") == 0)
        list_add(&found, path + strlen(VECTORS) + 1);
    return 0;
}

/* "relative/path.toml # reason" lines; every entry needs a reason. */
static int load_unsupported(list_t *l)
{
    size_t len, i = 0;
    char *text = read_file(UNSUPPORTED, &len), *line, *save = NULL;
    int bad = 0;

    if (!text) {
        fail("%s: cannot read (%s); run the test from the repository root", UNSUPPORTED,
             strerror(errno));
        return -1;
    }
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *hash = strstr(line, " # "), *end;
        i++;
        if (line[0] == '#' || line[strspn(line, " \t")] == '\0')
            continue;
        if (!hash) {
            fail("%s:%zu: entry without ' # reason'", UNSUPPORTED, i);
            bad = 1;
            continue;
        }
        for (end = hash; end > line && (end[-1] == ' ' || end[-1] == '\t'); end--)
            ;
        *end = '\0';
        list_add(l, line);
    }
    free(text);
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------ comparison */

static const char *tag_of(toml_type_t t)
{
    switch (t) {
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "bool";
    case TOML_DATETIME: return "datetime";
    case TOML_DATETIME_LOCAL: return "datetime-local";
    case TOML_DATE_LOCAL: return "date-local";
    case TOML_TIME_LOCAL: return "time-local";
    default: return NULL;
    }
}

/* toml-test's leaf: {"type": "...", "value": "..."} and nothing else. */
static int is_leaf(json_t *j)
{
    return json_is_object(j) && json_object_size(j) == 2 &&
           json_is_string(json_object_get(j, "type")) &&
           json_is_string(json_object_get(j, "value"));
}

/* toml-test compares date-times as instants, so "56.6" equals "56.6000":
 * drop trailing zeros of the fraction. When canon is set the separator and
 * 'Z' are canonicalised too (for the expected side only, so the parser's
 * own canonical form is what gets checked). */
static void norm_datetime(const char *in, char *out, size_t outlen, int canon)
{
    size_t o = 0, dot = 0, i;

    for (i = 0; in[i] && o + 1 < outlen; i++) {
        char c = in[i];
        if (canon && (c == 't' || c == ' '))
            c = 'T';
        if (canon && c == 'z')
            c = 'Z';
        out[o++] = c;
        if (c == '.')
            dot = o;
        if (dot && (c < '0' || c > '9') && c != '.') {
            /* fraction ended: trim it */
            size_t end = o - 1, k = end;
            while (k > dot && out[k - 1] == '0')
                k--;
            if (k == dot)
                k--;
            memmove(out + k, out + end, 1);
            o = k + 1;
            dot = 0;
        }
    }
    if (dot) {
        while (o > dot && out[o - 1] == '0')
            o--;
        if (o == dot)
            o--;
    }
    out[o] = '\0';
}

static int compare_float(double have, const char *want)
{
    if (strstr(want, "nan"))
        return isnan(have);
    if (strstr(want, "inf"))
        return isinf(have) && (want[0] == '-') == (have < 0);
    return have == strtod(want, NULL);
}

static int compare_leaf(const toml_node_t *n, json_t *j, const char *path, char *msg, size_t len)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *jv = json_object_get(j, "value");
    const char *want = json_string_value(jv), *tag = tag_of(n->type);
    char a[256], b[256];
    int ok;

    if (!tag || strcmp(tag, type) != 0) {
        snprintf(msg, len, "%s: expected %s, got %s", path, type, ferry__toml_type_name(n->type));
        return -1;
    }
    switch (n->type) {
    case TOML_STRING:
        ok = n->u.str.len == json_string_length(jv) && memcmp(n->u.str.s, want, n->u.str.len) == 0;
        snprintf(a, sizeof a, "%s", n->u.str.s);
        break;
    case TOML_INTEGER:
        errno = 0;
        ok = n->u.i == strtoll(want, NULL, 10) && errno == 0;
        snprintf(a, sizeof a, "%lld", (long long)n->u.i);
        break;
    case TOML_FLOAT:
        ok = compare_float(n->u.f, want);
        snprintf(a, sizeof a, "%.17g", n->u.f);
        break;
    case TOML_BOOL:
        ok = strcmp(want, n->u.b ? "true" : "false") == 0;
        snprintf(a, sizeof a, "%s", n->u.b ? "true" : "false");
        break;
    default:
        norm_datetime(n->u.str.s, a, sizeof a, 0);
        norm_datetime(want, b, sizeof b, 1);
        ok = strcmp(a, b) == 0;
        snprintf(a, sizeof a, "%s", n->u.str.s);
        break;
    }
    if (!ok)
        snprintf(msg, len, "%s: expected %s \"%s\", got \"%s\"", path, type, want, a);
    return ok ? 0 : -1;
}

static int compare(const toml_node_t *n, json_t *j, const char *path, char *msg, size_t len)
{
    char sub[512];
    const char *key;
    json_t *v;
    size_t i;

    if (is_leaf(j))
        return compare_leaf(n, j, path, msg, len);
    if (json_is_array(j)) {
        if (n->type != TOML_ARRAY) {
            snprintf(msg, len, "%s: expected array, got %s", path, ferry__toml_type_name(n->type));
            return -1;
        }
        if (n->u.arr.n != json_array_size(j)) {
            snprintf(msg, len, "%s: expected %zu elements, got %zu", path, json_array_size(j),
                     n->u.arr.n);
            return -1;
        }
        json_array_foreach(j, i, v) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (compare(n->u.arr.items[i], v, sub, msg, len))
                return -1;
        }
        return 0;
    }
    if (!json_is_object(j)) {
        snprintf(msg, len, "%s: unexpected JSON in the expected output", path);
        return -1;
    }
    if (n->type != TOML_TABLE) {
        snprintf(msg, len, "%s: expected table, got %s", path, ferry__toml_type_name(n->type));
        return -1;
    }
    if (n->u.tab.n != json_object_size(j)) {
        snprintf(msg, len, "%s: expected %zu keys, got %zu", path, json_object_size(j), n->u.tab.n);
        return -1;
    }
    json_object_foreach(j, key, v) {
        const toml_node_t *child = ferry__toml_table_get(n, key);
        snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
        if (!child) {
            snprintf(msg, len, "%s: missing", sub);
            return -1;
        }
        if (compare(child, v, sub, msg, len))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ toml-test */

static void run_invalid(const char *rel, const char *text, size_t len)
{
    char err[512];
    int line;
    toml_node_t *root = ferry__toml_parse(text, len, err, sizeof err, &line);

    if (root) {
        fail("%s: accepted, but it is invalid TOML", rel);
        ferry__toml_free(root);
        return;
    }
    if (!err[0] || line < 1)
        fail("%s: rejected without a message or line (line %d, \"%s\")", rel, line, err);
    else
        passed++;
}

static void run_valid(const char *rel, const char *text, size_t len, const list_t *unsupported)
{
    char err[512], msg[1024], json_path[4096];
    int line, listed = list_has(unsupported, rel);
    toml_node_t *root = ferry__toml_parse(text, len, err, sizeof err, &line);
    json_error_t jerr;
    json_t *want;

    if (!root) {
        if (listed)
            passed++; /* known unsupported, and rejected rather than misread */
        else
            fail("%s: rejected: line %d: %s", rel, line, err);
        return;
    }
    snprintf(json_path, sizeof json_path, "%s/%.*s.json", VECTORS, (int)(strlen(rel) - 5), rel);
    want = json_load_file(json_path, JSON_ALLOW_NUL, &jerr);
    if (!want)
        fail("%s: cannot read expected JSON: %s", rel, jerr.text);
    else if (compare(root, want, "", msg, sizeof msg))
        fail("%s: wrong value: %s", rel, msg);
    else if (listed)
        fail("%s: listed in %s but parses correctly; remove it from the list", rel, UNSUPPORTED);
    else
        passed++;
    json_decref(want);
    ferry__toml_free(root);
}

static void run_vectors(void)
{
    list_t unsupported = {0};
    size_t i, len;
    char path[4096];

    if (access(VECTORS, R_OK) != 0) {
        fail("toml-test vectors not found at %s (install golang-github-burntsushi-toml-dev)",
             VECTORS);
        return;
    }
    load_unsupported(&unsupported);
    if (nftw(VECTORS, collect, 16, FTW_PHYS) != 0) {
        fail("cannot walk %s: %s", VECTORS, strerror(errno));
        return;
    }
    qsort(found.items, found.n, sizeof *found.items, cmp_str);
    for (i = 0; i < unsupported.n; i++)
        if (!list_has(&found, unsupported.items[i]))
            fail("%s: listed in %s but not among the vectors", unsupported.items[i], UNSUPPORTED);
    for (i = 0; i < found.n; i++) {
        const char *rel = found.items[i];
        char *text;
        snprintf(path, sizeof path, "%s/%s", VECTORS, rel);
        if (!(text = read_file(path, &len))) {
            fail("%s: cannot read: %s", rel, strerror(errno));
            continue;
        }
        if (strncmp(rel, "invalid/", 8) == 0)
            run_invalid(rel, text, len);
        else if (strncmp(rel, "valid/", 6) == 0)
            run_valid(rel, text, len, &unsupported);
        free(text);
    }
    if (found.n == 0)
        fail("no .toml files under %s", VECTORS);
    list_free(&found);
    list_free(&unsupported);
}

/* ------------------------------------------------------------ direct checks */

static toml_node_t *parse_str(const char *text, char *err, size_t errlen, int *line)
{
    return ferry__toml_parse(text, strlen(text), err, errlen, line);
}

/* A document as a C literal, so a failure message stays on one line. */
typedef struct {
    char s[200];
} shown_t;

static shown_t shown(const char *doc)
{
    shown_t t;
    size_t o = 0;

    for (; *doc && o + 5 < sizeof t.s; doc++) {
        unsigned char c = (unsigned char)*doc;
        if (c == '\n')
            o += (size_t)snprintf(t.s + o, sizeof t.s - o, "\\n");
        else if (c == '\r')
            o += (size_t)snprintf(t.s + o, sizeof t.s - o, "\\r");
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(t.s + o, sizeof t.s - o, "\\x%02x", c);
        else
            t.s[o++] = (char)c;
    }
    t.s[o] = '\0';
    return t;
}

/* Follows a dotted path of plain keys ("a.b.c"). */
static toml_node_t *get_path(toml_node_t *t, const char *path)
{
    char buf[256], *part, *save = NULL;

    snprintf(buf, sizeof buf, "%s", path);
    for (part = strtok_r(buf, ".", &save); part && t; part = strtok_r(NULL, ".", &save))
        t = ferry__toml_table_get(t, part);
    return t;
}

static void check_line(toml_node_t *root, const char *path, int want)
{
    toml_node_t *n = get_path(root, path);

    check(n && n->line == want, "line of '%s': expected %d, got %d", path, want, n ? n->line : -1);
}

static void check_lines(void)
{
    static const char doc[] =
        "# comment\n"              /* 1 */
        "title = \"x\"\n"          /* 2 */
        "[server]\n"               /* 3 */
        "host = \"h\"\n"           /* 4 */
        "  port = 5222\n"          /* 5 */
        "[[adapter]]\n"            /* 6 */
        "name = \"a\"\n"           /* 7 */
        "[[adapter]]\n"            /* 8 */
        "name = \"b\"\n"           /* 9 */
        "[a.b.c]\n"                /* 10 */
        "d.e = 1\n"                /* 11 */
        "multi = \"\"\"\n"         /* 12 */
        "x\r\n"                    /* 13 */
        "\"\"\"\n"                 /* 14 */
        "after = [\n"              /* 15 */
        "  1,\n"                   /* 16 */
        "  2 ]\n"                  /* 17 */
        "[x.y]\n"                  /* 18 */
        "[x]\n";                   /* 19 */
    char err[256];
    int line;
    toml_node_t *root = parse_str(doc, err, sizeof err, &line), *n;

    check(root != NULL, "line document: rejected: line %d: %s", line, err);
    if (!root)
        return;
    check_line(root, "title", 2);
    check_line(root, "server", 3);
    check_line(root, "server.host", 4);
    check_line(root, "server.port", 5);
    check_line(root, "adapter", 6);
    n = ferry__toml_table_get(root, "adapter");
    check(n && n->type == TOML_ARRAY && n->u.arr.n == 2 && n->u.arr.items[0]->line == 6 &&
              n->u.arr.items[1]->line == 8,
          "lines of [[adapter]] elements: expected 6 and 8");
    check(n && n->u.arr.n == 2 && ferry__toml_table_get(n->u.arr.items[1], "name") &&
              ferry__toml_table_get(n->u.arr.items[1], "name")->line == 9,
          "line of second adapter name: expected 9");
    check_line(root, "a", 10);
    check_line(root, "a.b.c", 10);
    check_line(root, "a.b.c.d", 11);
    check_line(root, "a.b.c.d.e", 11);
    check_line(root, "a.b.c.multi", 12);
    n = get_path(root, "a.b.c.multi");
    check(n && n->type == TOML_STRING && strcmp(n->u.str.s, "x\n") == 0,
          "CRLF in a multi-line string is stored as LF");
    check_line(root, "a.b.c.after", 15);
    n = get_path(root, "a.b.c.after");
    check(n && n->type == TOML_ARRAY && n->u.arr.n == 2 && n->u.arr.items[0]->line == 16 &&
              n->u.arr.items[1]->line == 17,
          "lines of array elements: expected 16 and 17");
    check_line(root, "x.y", 18);
    check_line(root, "x", 19); /* explicit [x] after implicit creation by [x.y] */
    ferry__toml_free(root);
}

static void check_errors(void)
{
    char err[256], path[] = "/tmp/test_toml_XXXXXX", want[300];
    static const char dup[] = "a = 1\nb = 2\n\na = 3\n";
    int line = 0, fd;
    toml_node_t *root = parse_str(dup, err, sizeof err, &line);

    check(!root && line == 4, "duplicate key: expected error on line 4, got line %d", line);
    check(!root && strstr(err, "'a'") && strstr(err, "line 1"),
          "duplicate key message should name the key and its first line: \"%s\"", err);
    ferry__toml_free(root);

    root = parse_str("[t]\nx = 1\n[u]\n[t]\n", err, sizeof err, &line);
    check(!root && line == 4 && strstr(err, "line 1"),
          "duplicate table: expected line 4 naming line 1, got %d \"%s\"", line, err);
    ferry__toml_free(root);

    root = parse_str("a = 1\ns = \"abc\n", err, sizeof err, &line);
    check(!root && line == 2, "unterminated string: expected line 2, got %d \"%s\"", line, err);
    ferry__toml_free(root);

    fd = mkstemp(path);
    if (fd < 0 || write(fd, dup, sizeof dup - 1) != (ssize_t)(sizeof dup - 1)) {
        fail("cannot write %s: %s", path, strerror(errno));
    } else {
        root = ferry__toml_parse_file(path, err, sizeof err);
        snprintf(want, sizeof want, "%s:4: ", path);
        check(!root && strncmp(err, want, strlen(want)) == 0 && strstr(err, "line 1"),
              "toml_parse_file: expected \"%s...line 1...\", got \"%s\"", want, err);
        ferry__toml_free(root);
    }
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    root = ferry__toml_parse_file("/nonexistent/ferry.toml", err, sizeof err);
    check(!root && strcmp(err, "/nonexistent/ferry.toml: No such file or directory") == 0,
          "toml_parse_file on a missing file: got \"%s\"", err);
    ferry__toml_free(root);
}

static void check_table_get(void)
{
    char err[256];
    int line;
    toml_node_t *root = parse_str("n = 1\n[t]\ns = 'v'\n", err, sizeof err, &line), *t;

    check(root != NULL, "table_get document: rejected: %s", err);
    if (!root)
        return;
    t = ferry__toml_table_get(root, "t");
    check(t && t->type == TOML_TABLE, "toml_table_get finds table 't'");
    check(t && ferry__toml_table_get(t, "s") && strcmp(ferry__toml_table_get(t, "s")->u.str.s, "v") == 0,
          "toml_table_get finds t.s = 'v'");
    check(ferry__toml_table_get(root, "missing") == NULL, "toml_table_get of a missing key is NULL");
    check(ferry__toml_table_get(ferry__toml_table_get(root, "n"), "x") == NULL,
          "toml_table_get on a non-table is NULL");
    check(ferry__toml_table_get(NULL, "n") == NULL, "toml_table_get on NULL is NULL");
    check(strcmp(ferry__toml_type_name(TOML_DATETIME_LOCAL), "local date-time") == 0 &&
              strcmp(ferry__toml_type_name(TOML_TABLE), "table") == 0,
          "toml_type_name");
    ferry__toml_free(root);
}

/* Builds prefix + body repeated n times + suffix. */
static char *repeat(const char *prefix, const char *body, int n, const char *suffix)
{
    size_t len = strlen(prefix) + strlen(body) * (size_t)n + strlen(suffix) + 1;
    char *s = malloc(len), *o = s;
    int i;

    if (!s) {
        perror("malloc");
        exit(2);
    }
    o += sprintf(o, "%s", prefix);
    for (i = 0; i < n; i++)
        o += sprintf(o, "%s", body);
    sprintf(o, "%s", suffix);
    return s;
}

static void check_deep(const char *what, char *doc, int want_ok)
{
    char err[256];
    int line;
    toml_node_t *root = ferry__toml_parse(doc, strlen(doc), err, sizeof err, &line);

    if (want_ok)
        check(root != NULL, "%s: rejected: %s", what, err);
    else
        check(!root && strstr(err, "too deep"), "%s: expected a 'too deep' error, got \"%s\"",
              what, root ? "(accepted)" : err);
    ferry__toml_free(root);
    free(doc);
}

static void check_limits(void)
{
    char *s = repeat("a = ", "[", 120, "");

    check_deep("120 nested arrays", repeat(s, "]", 120, "\n"), 1);
    free(s);
    check_deep("100000 nested arrays", repeat("a = ", "[", 100000, ""), 0);
    check_deep("100000 nested inline tables", repeat("a = ", "{b=", 100000, ""), 0);
    check_deep("dotted key with 100000 parts", repeat("a", ".a", 100000, " = 1\n"), 0);
    check_deep("header with 100000 parts", repeat("[a", ".a", 100000, "]\n"), 0);
    check_deep("array of tables header with 100000 parts", repeat("[[a", ".a", 100000, "]]\n"), 0);
}

static void check_rejected(const char *doc, const char *why)
{
    char err[256];
    int line;
    toml_node_t *root = parse_str(doc, err, sizeof err, &line);

    check(!root && err[0] && line >= 1, "should reject (%s): %s", why, shown(doc).s);
    ferry__toml_free(root);
}

static toml_node_t *check_accepted(const char *doc, const char *key, toml_type_t type,
                                   toml_node_t **root)
{
    char err[256];
    int line;
    toml_node_t *n;

    *root = parse_str(doc, err, sizeof err, &line);
    n = get_path(*root, key);
    check(n && n->type == type, "should accept %s as %s: %s", shown(doc).s, ferry__toml_type_name(type),
          *root ? "(wrong type or missing)" : err);
    return n && n->type == type ? n : NULL;
}

static void check_value(const char *doc, const char *key, toml_type_t type, const char *text)
{
    toml_node_t *root, *n = check_accepted(doc, key, type, &root);

    if (n && text)
        check(strcmp(n->u.str.s, text) == 0, "%s: expected \"%s\", got \"%s\"", shown(doc).s,
              shown(text).s, shown(n->u.str.s).s);
    ferry__toml_free(root);
}

static void check_int(const char *doc, int64_t want)
{
    toml_node_t *root, *n = check_accepted(doc, "x", TOML_INTEGER, &root);

    if (n)
        check(n->u.i == want, "%s: expected %lld, got %lld", shown(doc).s, (long long)want,
              (long long)n->u.i);
    ferry__toml_free(root);
}

static void check_strictness(void)
{
    static const char *const bad[][2] = {
        {"a.b = 1\n[a]\n", "[table] after dotted keys defined it"},
        {"[a]\nb.c = 1\n[a.b]\n", "[table] after dotted keys defined it"},
        {"a = {}\n[a.b]\n", "extending an inline table"},
        {"a = {b = {}}\n[a.b.c]\n", "extending a nested inline table"},
        {"a = {b.c = 1}\na.b.d = 2\n", "extending an inline table by dotted keys"},
        {"a = {b = 1, b = 2}\n", "duplicate key in inline table"},
        {"a = [1]\n[[a]]\n", "appending to a static array"},
        {"[[a]]\n[a]\n", "[table] over an array of tables"},
        {"a = 1\na.b = 2\n", "dotted key through an integer"},
        {"[a]\n[a]\n", "table defined twice"},
        {"x = \"\\e\"\n", "\\e is not a TOML 1.0 escape"},
        {"x = \"\\uD800\"\n", "surrogate escape"},
        {"x = \"\\U00110000\"\n", "escape beyond U+10FFFF"},
        {"x = \"\\u12\"\n", "short \\u escape"},
        {"x = 1979-02-29\n", "not a leap year"},
        {"x = 1900-02-29\n", "not a leap year"},
        {"x = 2000-02-30\n", "day out of range"},
        {"x = 2000-04-31\n", "day out of range"},
        {"x = 24:00:00\n", "hour out of range"},
        {"x = 1979-05-27T07:32:00+24:00\n", "offset hour out of range"},
        {"x = 1979-05-27T07:32:00.Z\n", "empty fraction"},
        {"x = 07:32\n", "time without seconds"},
        {"x = 07:32:00Z\n", "local time with offset"},
        {"x = 1\r y = 2\n", "bare carriage return"},
        {"x = 0x_1\n", "underscore after prefix"},
        {"x = 1__2\n", "double underscore"},
        {"x = +0x1\n", "sign on hex"},
        {"x = 9223372036854775808\n", "integer overflow"},
        {"x = -9223372036854775809\n", "integer underflow"},
        {"x = 0x8000000000000000\n", "hex overflow"},
        {"x = 1e400\n", "float overflow"},
        {"x = \"\"\"a\"\"\"\"\"\"\n", "six quotes closing a multi-line string"},
        {"x = '''a''''''\n", "six quotes closing a multi-line literal string"},
        {"x = [1,,]\n", "double comma in array"},
        {"x = truee\n", "text after boolean"},
        {"x = 1 2\n", "two values"},
        {"x = \"\xc0\xaf\"\n", "overlong UTF-8"},
        {"# \xed\xa0\x80\n", "UTF-8 surrogate in a comment"},
        {"x = \"\xf4\x90\x80\x80\"\n", "UTF-8 beyond U+10FFFF"},
        {"x = 'a\x7f'\n", "DEL in a literal string"},
        {"\"a\\u0000b\" = 1\n", "NUL in a key cannot be represented"},
        {"x = \"\"\"a\\ b\"\"\"\n", "backslash-space not at end of line"},
        {"x = { a = 1 # c\n}\n", "comment and newline in inline table"},
        {"x = 1\n\xEF\xBB\xBFy = 2\n", "byte order mark not at start"},
        {"[a]b = 1\n", "key after header on the same line"},
        {"[ [a]]\n", "space inside [["},
    };
    size_t i;
    toml_node_t *root, *n;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_rejected(bad[i][0], bad[i][1]);

    check_int("x = -9223372036854775808\n", INT64_MIN);
    check_int("x = 0x7fff_FFFF_ffff_ffff\n", INT64_MAX);
    check_int("x = 0o777\n", 511);
    check_int("x = 0b1_0\n", 2);
    check_int("x = -0\n", 0);
    check_value("x = 2000-02-29\n", "x", TOML_DATE_LOCAL, "2000-02-29");
    check_value("x = 23:59:60.5\n", "x", TOML_TIME_LOCAL, "23:59:60.5");
    check_value("x = 1987-07-05 17:45:00z\n", "x", TOML_DATETIME, "1987-07-05T17:45:00Z");
    check_value("x = 1987-07-05t17:45:00.123-07:30\n", "x", TOML_DATETIME,
                "1987-07-05T17:45:00.123-07:30");
    check_value("x = 1987-07-05 17:45:00 # c\n", "x", TOML_DATETIME_LOCAL, "1987-07-05T17:45:00");
    check_value("x = \"\"\"a\"\"\"\"\"\n", "x", TOML_STRING, "a\"\"");
    check_value("x = '''\r\na''''\n", "x", TOML_STRING, "a'");
    check_value("x = \"\"\"\\\n   \n  b \\  \r\n c\"\"\"\n", "x", TOML_STRING, "b c");
    check_value("\xEF\xBB\xBFx = 'bom'\n", "x", TOML_STRING, "bom");
    check_value("[[a]]\nb.c = 1\n[a.b.d]\ne = 'ok'\n", "a", TOML_ARRAY, NULL);

    n = check_accepted("x = \"a\\u0000b\"\n", "x", TOML_STRING, &root);
    check(n && n->u.str.len == 3 && memcmp(n->u.str.s, "a\0b", 4) == 0,
          "\\u0000 kept inside a string with its length");
    ferry__toml_free(root);
    n = check_accepted("x = 1e-400\n", "x", TOML_FLOAT, &root);
    check(n && n->u.f == 0.0, "underflow reads as zero");
    ferry__toml_free(root);
    n = check_accepted("x = -nan\ny = -inf\n", "x", TOML_FLOAT, &root);
    check(n && isnan(n->u.f) && get_path(root, "y") && isinf(get_path(root, "y")->u.f) &&
              get_path(root, "y")->u.f < 0,
          "-nan and -inf");
    ferry__toml_free(root);
}

int main(void)
{
    run_vectors();
    check_lines();
    check_errors();
    check_table_get();
    check_limits();
    check_strictness();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
