/* log.h: the core's side of logging: level and format chosen at start and on
 * reload. */
#ifndef FERRY_SRC_LOG_H
#define FERRY_SRC_LOG_H

#include "ferry/log.h"

void ferry__log_set_level(ferry_log_level_t level);
void ferry__log_set_json(int json);
/* NAME ([cluster] instance) in every line from now on: text lines read
 * "TIME LEVEL NAME [scope] message", JSON lines get "instance". */
void ferry__log_set_instance(const char *name);
/* "error" | "warn" | "info" | "debug" -> level, or -1. */
int ferry__log_level_parse(const char *name);

#endif
