/* ferry/alloc.h: memory, and what ferry does when there is none.
 *
 * The policy, written once (as redis's zmalloc): an allocation that fails
 * ends the process at once with a message on stderr ("out of memory") and
 * abort(). Nothing in ferry can be kept consistent half-way through a
 * stanza, a stored message or a connection when memory is gone, and a
 * gateway that answers some requests and silently drops others is worse
 * than one that stops and is restarted by its supervisor (systemd restarts
 * it; the store keeps every message it had taken). So these never return
 * NULL and their results are not checked.
 *
 * Libraries: libstrophe's context (stanzas, serialised text) and Jansson
 * allocate through these too (gateway.c, main.c), so building a stanza or a
 * JSON document never yields NULL for want of memory either; Jansson still
 * returns NULL for bad input, which callers check. curl, SQLite, expat,
 * OpenSSL and libuv keep their own allocators and report a failure as an
 * error of the call (a request that fails, SQLITE_NOMEM as a store error, a
 * stream parse error), which ferry handles as it handles any such error. */
#ifndef FERRY_ALLOC_H
#define FERRY_ALLOC_H

#include <stddef.h>

void *ferry_malloc(size_t size);
void *ferry_calloc(size_t n, size_t size);
/* As realloc(), but never frees: a size of 0 keeps one byte. */
void *ferry_realloc(void *p, size_t size);
/* P (of *CAP bytes) grown, when NEED is more, to FIRST bytes or *CAP
 * doubled until NEED fits; *CAP set to the new size. */
void *ferry_grow(void *p, size_t *cap, size_t need, size_t first);
char *ferry_strdup(const char *s);
char *ferry_strndup(const char *s, size_t n);
/* The formatted text in a new buffer (free it). */
char *ferry_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
