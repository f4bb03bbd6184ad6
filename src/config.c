/* config.c: typed reads of gateway.toml tables for the core and for adapters.
 * Reads mark keys as used, so that whatever nobody read can be reported as
 * an unknown key with its line, and every error names file, line and key. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ferry/alloc.h"
#include "config.h"
#include "ferry/log.h"

struct table_name {
    const toml_node_t *table;
    char *path;
};

/* A key some reader looked up (`ferry --check-config --list-keys`). */
struct key_read {
    char *path;        /* "components.hooks.endpoints.alerts.url" */
    const char *type;  /* what the reader expects */
    int present;       /* set in the file, or left to its default */
};

static const char *conf_file = "config";
static int error_count;
static struct table_name *names;
static size_t names_n, names_cap;
static int recording;
static struct key_read *reads;
static size_t reads_n, reads_cap;

void ferry__conf_begin(const char *file)
{
    conf_file = file;
    error_count = 0;
}

int ferry__conf_errors(void) { return error_count; }

void ferry__conf_end(void)
{
    for (size_t i = 0; i < names_n; i++)
        free(names[i].path);
    free(names);
    names = NULL;
    names_n = names_cap = 0;
    for (size_t i = 0; i < reads_n; i++)
        free(reads[i].path);
    free(reads);
    reads = NULL;
    reads_n = reads_cap = 0;
}

void ferry__conf_name_table(const toml_node_t *table, const char *path)
{
    if (names_n == names_cap) {
        names_cap = names_cap ? names_cap * 2 : 16;
        names = ferry_realloc(names, names_cap * sizeof *names);
    }
    names[names_n].table = table;
    names[names_n].path = ferry_strdup(path);
    names_n++;
}

static const char *table_path(const toml_node_t *table)
{
    for (size_t i = 0; i < names_n; i++)
        if (names[i].table == table)
            return names[i].path;
    return NULL;
}

void ferry__conf_record_keys(int on) { recording = on; }

/* Remembers that KEY of TABLE was looked up (once per path), as KIND. */
static void record_read(const toml_node_t *table, const char *key, const char *kind, int present)
{
    const char *parent = table_path(table);
    char path[600];
    snprintf(path, sizeof path, "%s%s%s", parent && *parent ? parent : "",
             parent && *parent ? "." : "", key);
    for (size_t i = 0; i < reads_n; i++)
        if (strcmp(reads[i].path, path) == 0)
            return;
    if (reads_n == reads_cap) {
        reads_cap = reads_cap ? reads_cap * 2 : 64;
        reads = ferry_realloc(reads, reads_cap * sizeof *reads);
    }
    reads[reads_n++] = (struct key_read){ferry_strdup(path), kind, present};
}

void ferry__conf_print_keys(FILE *out)
{
    for (size_t i = 0; i < reads_n; i++)
        fprintf(out, "%s\t%s\t%s\n", reads[i].path, reads[i].type,
                reads[i].present ? "set" : "default");
}

static int through_log;

void ferry__conf_use_log(int on) { through_log = on; }

void ferry__conf_say(const char *text)
{
    /* While running, errors are log events (JSON when the log is); before
     * that, and for --check-config, the plain FILE:LINE: lines. */
    if (through_log)
        ferry_log_error("config", "%s", text);
    else
        fprintf(stderr, "%s\n", text);
}

static void report(int line, const char *path, const char *key, const char *msg)
{
    char text[1200];
    error_count++;
    if (key && path && *path)
        snprintf(text, sizeof text, "%s:%d: %s.%s: %s", conf_file, line, path, key, msg);
    else if (key)
        snprintf(text, sizeof text, "%s:%d: %s: %s", conf_file, line, key, msg);
    else if (path && *path)
        snprintf(text, sizeof text, "%s:%d: [%s]: %s", conf_file, line, path, msg);
    else
        snprintf(text, sizeof text, "%s:%d: %s", conf_file, line, msg);
    ferry__conf_say(text);
}

void ferry_conf_error(const ferry_conf_t *table, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const toml_node_t *node = key ? ferry__toml_table_get(table, key) : NULL;
    int line = node ? node->line : (table ? table->line : 0);
    report(line, table_path(table), key, msg);
}

/* Finds KEY, marks it used, and checks its type; reports what is wrong.
 * KIND names what the reader expects for --list-keys (NULL: the type's
 * name; a number reader takes integers too). */
static toml_node_t *lookup_kind(const ferry_conf_t *table, const char *key, int required,
                                toml_type_t type, const char *kind, int *rc)
{
    toml_node_t *node = ferry__toml_table_get(table, key);
    if (recording)
        record_read(table, key,
                    kind ? kind : type == TOML_FLOAT ? "number" : ferry__toml_type_name(type), !!node);
    if (!node) {
        if (required)
            ferry_conf_error(table, NULL, "missing required key '%s'", key);
        *rc = 1;
        return NULL;
    }
    node->used = 1;
    int ok = node->type == type || (type == TOML_FLOAT && node->type == TOML_INTEGER);
    if (!ok) {
        ferry_conf_error(table, key, "expected %s, found %s", ferry__toml_type_name(type),
                         ferry__toml_type_name(node->type));
        *rc = -1;
        return NULL;
    }
    *rc = 0;
    return node;
}

static toml_node_t *lookup(const ferry_conf_t *table, const char *key, int required,
                           toml_type_t type, int *rc)
{
    return lookup_kind(table, key, required, type, NULL, rc);
}

int ferry_conf_string(const ferry_conf_t *table, const char *key, int required, const char **out)
{
    int rc;
    toml_node_t *node = lookup(table, key, required, TOML_STRING, &rc);
    if (!node)
        return rc;
    if (strlen(node->u.str.s) != node->u.str.len) {
        ferry_conf_error(table, key, "must not contain NUL characters");
        return -1;
    }
    *out = node->u.str.s;
    return 0;
}

int ferry_conf_int(const ferry_conf_t *table, const char *key, int required, int64_t *out)
{
    int rc;
    toml_node_t *node = lookup(table, key, required, TOML_INTEGER, &rc);
    if (node)
        *out = node->u.i;
    return rc;
}

int ferry_conf_number(const ferry_conf_t *table, const char *key, int required, double *out)
{
    int rc;
    toml_node_t *node = lookup(table, key, required, TOML_FLOAT, &rc);
    if (node)
        *out = node->type == TOML_INTEGER ? (double)node->u.i : node->u.f;
    return rc;
}

int ferry_conf_bool(const ferry_conf_t *table, const char *key, int required, int *out)
{
    int rc;
    toml_node_t *node = lookup(table, key, required, TOML_BOOL, &rc);
    if (node)
        *out = node->u.b;
    return rc;
}

/* Names NODE, found under KEY of TABLE, for later messages. */
static void name_child(const toml_node_t *table, const char *key, const toml_node_t *node)
{
    if (table_path(node))
        return;
    const char *parent = table_path(table);
    char path[512];
    snprintf(path, sizeof path, "%s%s%s", parent && *parent ? parent : "",
             parent && *parent ? "." : "", key);
    ferry__conf_name_table(node, path);
}

/* A table or an array under KEY, named for later messages. */
static int container(const ferry_conf_t *table, const char *key, int required, toml_type_t type,
                     const ferry_conf_t **out)
{
    int rc;
    toml_node_t *node = lookup_kind(table, key, required, type,
                                    type == TOML_TABLE ? "table" : "array of tables", &rc);
    if (!node)
        return rc;
    name_child(table, key, node);
    *out = node;
    return 0;
}

int ferry_conf_table(const ferry_conf_t *table, const char *key, int required,
                     const ferry_conf_t **out)
{
    return container(table, key, required, TOML_TABLE, out);
}

void ferry_conf_strings_free(char **strings)
{
    if (!strings)
        return;
    for (char **s = strings; *s; s++)
        free(*s);
    free(strings);
}

int ferry_conf_strings(const ferry_conf_t *table, const char *key, int required, char ***out)
{
    int rc;
    toml_node_t *node = lookup_kind(table, key, required, TOML_ARRAY, "array of strings", &rc);
    if (!node)
        return rc;
    size_t n = node->u.arr.n;
    for (size_t i = 0; i < n; i++) {
        const toml_node_t *item = node->u.arr.items[i];
        if (item->type != TOML_STRING || strlen(item->u.str.s) != item->u.str.len) {
            ferry_conf_error(table, key, "expected an array of strings (item %zu is %s)", i + 1,
                             ferry__toml_type_name(item->type));
            return -1;
        }
    }
    char **list = ferry_calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++)
        list[i] = ferry_strdup(node->u.arr.items[i]->u.str.s);
    *out = list;
    return 0;
}

int ferry_conf_enum(const ferry_conf_t *table, const char *key, int required,
                    const char *const *choices, const char **out)
{
    const char *value;
    int rc = ferry_conf_string(table, key, required, &value);
    if (rc != 0)
        return rc;
    char allowed[256] = "";
    for (const char *const *c = choices; *c; c++) {
        if (strcmp(*c, value) == 0) {
            *out = *c;
            return 0;
        }
        strncat(allowed, c == choices ? "" : ", ", sizeof allowed - strlen(allowed) - 1);
        strncat(allowed, *c, sizeof allowed - strlen(allowed) - 1);
    }
    ferry_conf_error(table, key, "unknown value \"%s\" (expected one of: %s)", value, allowed);
    return -1;
}

static char *read_secret_file(const ferry_conf_t *table, const char *key, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ferry_conf_error(table, key, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        ferry_conf_error(table, key, "cannot read %s: %s", path, strerror(EISDIR));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int too_long = !feof(f);
    fclose(f);
    if (too_long) {
        ferry_conf_error(table, key, "%s: secret longer than %zu bytes", path, sizeof buf - 1);
        return NULL;
    }
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    if (n == 0 || strlen(buf) != n) {
        ferry_conf_error(table, key, "%s: empty secret or NUL byte", path);
        return NULL;
    }
    return ferry_strdup(buf);
}

int ferry_conf_secret(const ferry_conf_t *table, const char *key, int required, char **out)
{
    char file_key[128];
    snprintf(file_key, sizeof file_key, "%s_file", key);
    const char *value = NULL, *path = NULL;
    int rc_value = ferry_conf_string(table, key, FERRY_CONF_OPTIONAL, &value);
    int rc_file = ferry_conf_string(table, file_key, FERRY_CONF_OPTIONAL, &path);
    if (rc_value < 0 || rc_file < 0)
        return -1;
    if (value && path) {
        ferry_conf_error(table, file_key, "give either %s or %s, not both", key, file_key);
        return -1;
    }
    if (!value && !path) {
        if (required)
            ferry_conf_error(table, NULL, "missing required key '%s' (or '%s')", key, file_key);
        return 1;
    }
    if (value) {
        if (!*value) {
            ferry_conf_error(table, key, "must not be empty");
            return -1;
        }
        *out = ferry_strdup(value);
        return 0;
    }
    *out = read_secret_file(table, file_key, path);
    return *out ? 0 : -1;
}

int ferry_conf_array(const ferry_conf_t *table, const char *key, int required,
                     const ferry_conf_t **out)
{
    return container(table, key, required, TOML_ARRAY, out);
}

size_t ferry_conf_count(const ferry_conf_t *table)
{
    if (table && table->type == TOML_TABLE)
        return table->u.tab.n;
    return table && table->type == TOML_ARRAY ? table->u.arr.n : 0;
}

const char *ferry_conf_key_at(const ferry_conf_t *table, size_t i)
{
    if (!table || table->type != TOML_TABLE)
        return NULL;
    return i < ferry_conf_count(table) ? table->u.tab.keys[i] : NULL;
}

const ferry_conf_t *ferry_conf_value_at(const ferry_conf_t *table, size_t i)
{
    if (i >= ferry_conf_count(table))
        return NULL;
    int array = table->type == TOML_ARRAY;
    toml_node_t *node = array ? table->u.arr.items[i] : table->u.tab.vals[i];
    node->used = 1;
    if (node->type == TOML_TABLE && !array) {
        name_child(table, table->u.tab.keys[i], node);
    } else if (node->type == TOML_TABLE && !table_path(node)) {
        const char *parent = table_path(table);
        char path[512];
        snprintf(path, sizeof path, "%s[%zu]", parent ? parent : "", i + 1);
        ferry__conf_name_table(node, path);
    }
    return node;
}

int ferry_conf_is_table(const ferry_conf_t *node) { return node && node->type == TOML_TABLE; }

static void report_unused_array(const toml_node_t *table, const char *key, const toml_node_t *arr)
{
    for (size_t i = 0; i < arr->u.arr.n; i++) {
        const toml_node_t *item = arr->u.arr.items[i];
        if (item->type == TOML_TABLE && item->used)
            ferry__conf_report_unused(item);
    }
    (void)table;
    (void)key;
}

void ferry__conf_report_unused(const toml_node_t *table)
{
    for (size_t i = 0; i < ferry_conf_count(table); i++) {
        const toml_node_t *val = table->u.tab.vals[i];
        const char *key = table->u.tab.keys[i];
        if (!val->used) {
            ferry_conf_error(table, key, "unknown key");
        } else if (val->type == TOML_TABLE) {
            ferry__conf_report_unused(val);
        } else if (val->type == TOML_ARRAY) {
            report_unused_array(table, key, val);
        }
    }
}

void ferry__conf_mark_used(toml_node_t *node)
{
    node->used = 1;
    if (node->type == TOML_TABLE)
        for (size_t i = 0; i < node->u.tab.n; i++)
            ferry__conf_mark_used(node->u.tab.vals[i]);
    else if (node->type == TOML_ARRAY)
        for (size_t i = 0; i < node->u.arr.n; i++)
            ferry__conf_mark_used(node->u.arr.items[i]);
}
