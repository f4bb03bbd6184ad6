/* ferry/config.h: how an adapter reads its table of gateway.toml.
 *
 * Every getter marks the key as known. After an adapter's create() the core
 * reports each key of the component's table that nobody read as an unknown
 * key, with file and line, so adapters need no list of their own keys.
 * Errors are reported as "FILE:LINE: key.path: message" and counted; a
 * config with errors is refused as a whole.
 *
 * Returned strings and tables belong to the config: they live until create()
 * (or reload()) returns. Copy what you keep. */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct toml_node ferry_conf_t;

enum { FERRY_CONF_OPTIONAL = 0, FERRY_CONF_REQUIRED = 1 };

/* Each returns 0 when the key is present and well typed (out set), 1 when it
 * is absent (out untouched; an error is reported if required), -1 when it has
 * the wrong type or value (error reported). */
int ferry_conf_string(const ferry_conf_t *table, const char *key, int required, const char **out);
int ferry_conf_int(const ferry_conf_t *table, const char *key, int required, int64_t *out);
int ferry_conf_number(const ferry_conf_t *table, const char *key, int required, double *out);
int ferry_conf_bool(const ferry_conf_t *table, const char *key, int required, int *out);
int ferry_conf_table(const ferry_conf_t *table, const char *key, int required, const ferry_conf_t **out);
/* An array of strings, returned as a NULL-terminated malloc'd array of
 * malloc'd copies; free it with ferry_conf_strings_free(). */
int ferry_conf_strings(const ferry_conf_t *table, const char *key, int required, char ***out);
void ferry_conf_strings_free(char **strings);
/* One of the listed strings (NULL-terminated). */
int ferry_conf_enum(const ferry_conf_t *table, const char *key, int required,
                    const char *const *choices, const char **out);
/* A secret: either KEY or KEY_file (contents, trailing newline dropped);
 * exactly one must be given. Returns a malloc'd copy in *out. */
int ferry_conf_secret(const ferry_conf_t *table, const char *key, int required, char **out);

/* An array (of tables, for [[a.b]] sections); iterate it with
 * ferry_conf_count() and ferry_conf_value_at(). */
int ferry_conf_array(const ferry_conf_t *table, const char *key, int required,
                     const ferry_conf_t **out);

/* Iterate a table's keys in file order, or an array's items (key_at gives
 * NULL for those). */
size_t ferry_conf_count(const ferry_conf_t *table);
const char *ferry_conf_key_at(const ferry_conf_t *table, size_t i);
const ferry_conf_t *ferry_conf_value_at(const ferry_conf_t *table, size_t i);
int ferry_conf_is_table(const ferry_conf_t *node);

/* Report an error at KEY of TABLE (or at the table itself when key is NULL). */
void ferry_conf_error(const ferry_conf_t *table, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
