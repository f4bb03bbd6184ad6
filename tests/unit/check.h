/* check.h: the few assertions the unit tests share. Each failed check prints
 * one line "FILE:LINE: what differed"; check_summary() prints the closing
 * "N passed, N failed" line and returns the exit status (0 only when nothing
 * failed). Header-only: include it in exactly one file per test program. */
#ifndef FERRY_TEST_CHECK_H
#define FERRY_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_;

/* Counts one check; on failure prints FILE:LINE: and the formatted message.
 * Returns ok, so that callers can skip what depends on it. */
static int __attribute__((format(printf, 4, 5), unused))
check_at(const char *file, int line, int ok, const char *fmt, ...)
{
    if (ok) {
        check_passed_++;
        return 1;
    }
    check_failed_++;
    printf("%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* Quotes S for a message (NULL shown as NULL); returns a static buffer,
 * one of a few so that two can appear in one message. */
__attribute__((unused)) static const char *check_quote(const char *s)
{
    static char bufs[4][600];
    static int next;
    char *b = bufs[next++ % 4];
    if (!s) {
        snprintf(b, sizeof bufs[0], "NULL");
        return b;
    }
    size_t o = 0;
    b[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o < sizeof bufs[0] - 12; p++) {
        if (*p == '\n')
            o += (size_t)snprintf(b + o, 4, "\\n");
        else if (*p == '"' || *p == '\\')
            o += (size_t)snprintf(b + o, 4, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(b + o, 6, "\\x%02x", *p);
        else
            b[o++] = (char)*p;
    }
    if (strlen(s) > sizeof bufs[0] - 14)
        o += (size_t)snprintf(b + o, 5, "...");
    b[o++] = '"';
    b[o] = 0;
    return b;
}

/* CHECK(cond, fmt, ...): a condition, with a message saying what was seen. */
#define CHECK(cond, ...) check_at(__FILE__, __LINE__, (cond) ? 1 : 0, __VA_ARGS__)

/* Two strings (either may be NULL) must be equal. */
#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        check_at(__FILE__, __LINE__, (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_,             \
                 "%s is %s, expected %s", #got, check_quote(g_), check_quote(w_));             \
    } while (0)

/* Two integers must be equal. */
#define CHECK_INT(got, want)                                                                   \
    do {                                                                                       \
        long long g_ = (long long)(got), w_ = (long long)(want);                               \
        check_at(__FILE__, __LINE__, g_ == w_, "%s is %lld, expected %lld", #got, g_, w_);    \
    } while (0)

/* Prints the summary line; returns the program's exit status. */
static int __attribute__((unused)) check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    fflush(stdout);
    return check_failed_ ? 1 : 0;
}

#endif
