/* alloc.c: the out-of-memory policy of ferry/alloc.h: abort with a message.
 * The message is written straight to stderr: the logger may itself need
 * memory (JSON lines), which is what just ran out. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ferry/alloc.h"

static void __attribute__((noreturn)) out_of_memory(size_t size)
{
    fprintf(stderr, "ferry: out of memory (%zu bytes wanted); stopping\n", size);
    fflush(stderr);
    abort();
}

void *ferry_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *ferry_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory(n * size);
    return p;
}

void *ferry_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        out_of_memory(size);
    return q;
}

void *ferry_grow(void *p, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    *cap = n;
    return ferry_realloc(p, n);
}

char *ferry_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ferry_malloc(n), s, n);
}

char *ferry_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = ferry_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ferry_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ferry_strdup(""); /* a format error, not a want of memory */
    char *p = ferry_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- libstrophe ---- */

static void *mem_alloc(size_t size, void *userdata)
{
    (void)userdata;
    return ferry_malloc(size);
}

static void mem_free(void *p, void *userdata)
{
    (void)userdata;
    free(p);
}

static void *mem_realloc(void *p, size_t size, void *userdata)
{
    (void)userdata;
    return ferry_realloc(p, size);
}

const xmpp_mem_t ferry__alloc_xmpp_mem = {mem_alloc, mem_free, mem_realloc, NULL};
