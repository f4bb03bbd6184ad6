/* toml.h: a strict TOML 1.0 parser into a tree of nodes that remember their
 * line, so that every later config error can name file and line. */
#ifndef FERRY_TOML_H
#define FERRY_TOML_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME,       /* offset date-time: text in str */
    TOML_DATETIME_LOCAL, /* local date-time: text in str */
    TOML_DATE_LOCAL,     /* local date: text in str */
    TOML_TIME_LOCAL,     /* local time: text in str */
    TOML_ARRAY,
    TOML_TABLE
} toml_type_t;

typedef struct toml_node toml_node_t;

struct toml_node {
    toml_type_t type;
    int line;   /* line of the key (or header) that defined this node, 1-based */
    int used;   /* set by config readers; nodes never read are unknown keys */
    union {
        struct { char *s; size_t len; } str; /* NUL-terminated; len excludes it.
                                                 May contain NUL bytes (\u0000). */
        int64_t i;
        double f;
        int b;
        struct { toml_node_t **items; size_t n, cap; } arr;
        struct { char **keys; toml_node_t **vals; size_t n, cap; } tab; /* in file order */
    } u;
    /* parser bookkeeping for tables: how the table came to be, to reject
     * redefinition as TOML 1.0 requires */
    unsigned char defined;   /* [header] or key/value seen for it directly */
    unsigned char implicit;  /* created as a parent of a dotted key or header */
    unsigned char is_inline; /* inline table or static array: closed */
    unsigned char aot;       /* array created by [[header]] */
    unsigned char dotted;    /* created by a dotted key */
};

/* Parses text. On error returns NULL and writes "LINE: message" context:
 * *errline gets the 1-based line, err the message (without line). */
toml_node_t *ferry__toml_parse(const char *text, size_t len, char *err, size_t errlen, int *errline);

/* Reads and parses a file. On error returns NULL and err holds
 * "PATH:LINE: message" (or "PATH: strerror" when unreadable). */
toml_node_t *ferry__toml_parse_file(const char *path, char *err, size_t errlen);

void ferry__toml_free(toml_node_t *node);

/* Lookup by key in a table; NULL when absent or node is not a table. */
toml_node_t *ferry__toml_table_get(const toml_node_t *table, const char *key);

const char *ferry__toml_type_name(toml_type_t type);

#endif
