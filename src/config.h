/* config.h: the core's side of config reading: error counting, table paths for
 * messages, and the unknown-key sweep. */
#ifndef FERRY_SRC_CONFIG_H
#define FERRY_SRC_CONFIG_H

#include <stdio.h>

#include "ferry/config.h"
#include "toml.h"

/* Starts a reading session for FILE: resets the error count. */
void ferry__conf_begin(const char *file);
/* Number of errors reported since ferry__conf_begin(). */
int ferry__conf_errors(void);
/* Names TABLE as PATH ("components.hooks") in later messages. */
void ferry__conf_name_table(const toml_node_t *table, const char *path);
/* Reports every key under TABLE that no reader marked as used. */
void ferry__conf_report_unused(const toml_node_t *table);
/* Marks TABLE and everything under it as read (parts the core skips on
 * purpose, so they are not reported as unknown). */
void ferry__conf_mark_used(toml_node_t *node);
/* Says one config error: on stderr as it is, or (ON, while ferry runs)
 * as a log event. */
void ferry__conf_use_log(int on);
void ferry__conf_say(const char *text);
/* With ON, every key a reader looks up is remembered (whether the file sets
 * it or not), for ferry__conf_print_keys(): one "PATH<TAB>TYPE<TAB>set|default"
 * line each, in reading order. This is how ferry says which keys exist. */
void ferry__conf_record_keys(int on);
void ferry__conf_print_keys(FILE *out);
/* Ends the session (forgets table names and recorded keys). */
void ferry__conf_end(void);

#endif
