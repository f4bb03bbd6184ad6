/* log.c: one line per event on stderr, as text or as one JSON object a line
 * for log shippers. Each line names the instance ([cluster] instance), so
 * that the logs of several ferry processes can be read together. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <sys/time.h>

#include <jansson.h>

#include "log.h"

static ferry_log_level_t current_level = FERRY_LOG_INFO;
static int as_json;
static char instance[65]; /* empty until the config is read */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void ferry__log_set_level(ferry_log_level_t level) { current_level = level; }
void ferry__log_set_json(int json) { as_json = json; }

void ferry__log_set_instance(const char *name)
{
    snprintf(instance, sizeof instance, "%s", name ? name : "");
}

int ferry__log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int ferry_log_enabled(ferry_log_level_t level) { return level <= current_level; }

void ferry_log(ferry_log_level_t level, const char *scope, const char *fmt, ...)
{
    if (!ferry_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One event, one line: a newline inside a message would forge a record. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", ts, "level", level_names[level],
                              "scope", scope ? scope : "core", "msg", msg);
        if (o && instance[0])
            json_object_set_new(o, "instance", json_string(instance));
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (line)
            fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s%s[%s] %s\n", ts, level_names[level], instance,
                instance[0] ? " " : "", scope ? scope : "core", msg);
    }
}
