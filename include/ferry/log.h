/* ferry/log.h: one line per event on stderr, filtered by level. Never pass
 * secrets or tokens to these functions. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

typedef enum {
    FERRY_LOG_ERROR = 0,
    FERRY_LOG_WARN = 1,
    FERRY_LOG_INFO = 2,
    FERRY_LOG_DEBUG = 3
} ferry_log_level_t;

/* scope names the component or subsystem ("hooks", "http", "core"). */
void ferry_log(ferry_log_level_t level, const char *scope, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ferry_log_enabled(ferry_log_level_t level);

#define ferry_log_error(scope, ...) ferry_log(FERRY_LOG_ERROR, scope, __VA_ARGS__)
#define ferry_log_warn(scope, ...) ferry_log(FERRY_LOG_WARN, scope, __VA_ARGS__)
#define ferry_log_info(scope, ...) ferry_log(FERRY_LOG_INFO, scope, __VA_ARGS__)
#define ferry_log_debug(scope, ...) \
    do { if (ferry_log_enabled(FERRY_LOG_DEBUG)) ferry_log(FERRY_LOG_DEBUG, scope, __VA_ARGS__); } while (0)

#endif
