/* slots.h: which instances may link a component when several share a
 * PostgreSQL store. A component has N slots (ejabberd's component_number;
 * 1 for Prosody, which takes one connection per domain); an instance links
 * the component only while it holds one of them, as a PostgreSQL session
 * advisory lock. The others are standbys, waiting in PostgreSQL for a slot
 * to free. */
#ifndef FERRY_SLOTS_H
#define FERRY_SLOTS_H

#include <stddef.h>

#include <uv.h>

typedef struct ferry__slots ferry__slots_t;

typedef struct ferry__slots_options {
    const char *url;      /* storage.url: a libpq URI or conninfo string */
    const char *domain;   /* the component's domain: the locks' key */
    const char *scope;    /* log scope: the component's name */
    int slots;            /* N >= 1 */
} ferry__slots_options_t;

typedef struct ferry__slots_handlers {
    void (*acquired)(void *arg, int slot); /* link now */
    void (*lost)(void *arg, const char *why); /* unlink now: the lock is gone */
    void (*standby)(void *arg); /* every slot is known to be held elsewhere */
} ferry__slots_handlers_t;

/* Starts waiting for a slot (on connections of its own, never the store's).
 * Copies what it keeps of OPTS. */
ferry__slots_t *ferry__slots_start(uv_loop_t *loop, const ferry__slots_options_t *opts,
                                   const ferry__slots_handlers_t *h, void *arg);
/* The slot held (0..N-1), or -1 (standby, or PostgreSQL unreachable). */
int ferry__slots_held(const ferry__slots_t *s);
/* "active (slot K of N)", "standby (N slots held elsewhere)" or "no slot:
 * PostgreSQL unreachable (...)", for /healthz and the status command. */
void ferry__slots_describe(const ferry__slots_t *s, char *buf, size_t len);
/* "active", "standby" or "unreachable". */
const char *ferry__slots_role(const ferry__slots_t *s);
/* Releases the slot (its connection closes) and frees S; no callback after
 * this. Call it once the link is closed, so that a standby does not meet
 * this link still open. */
void ferry__slots_close(ferry__slots_t *s);

#endif
