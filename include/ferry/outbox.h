/* ferry/outbox.h: durable delivery, both ways.
 *
 * To a network (XMPP -> SMS, webhook, ...): the adapter puts each message it
 * accepts; the core stores it, hands it to the adapter's deliver() in order
 * per conversation, and keeps it until the adapter says done. Retries
 * (exponential backoff with jitter, at least Retry-After) and giving up
 * (max_attempts, max_age of the component) are the core's.
 *
 * To XMPP (network -> XMPP): the adapter puts a stanza; the core sends it
 * once it is committed and the link is up, in order, and keeps it until the
 * XMPP server has taken it (a ping round trip after it), resending after a
 * reconnect or restart.
 *
 * Delivery is at least once: a message whose delivery was under way when
 * the process died is delivered again. Puts with the same dedup key (a
 * provider's message id, a webhook-id, a stanza id) are recognised and
 * stored once. */
#ifndef FERRY_OUTBOX_H
#define FERRY_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include <strophe.h>

#include "ferry/component.h"

typedef struct ferry_msg {
    int64_t id;               /* stable across retries and restarts */
    const char *conversation; /* order is kept within one conversation */
    const char *payload;      /* what the adapter put, byte for byte */
    size_t payload_len;
    int attempts;             /* including the one being made */
    int64_t created_ms;       /* wall clock, ms since the epoch */
} ferry_msg_t;

typedef struct ferry_outbox_handlers {
    /* Make one attempt; answer with ferry_outbox_done/_retry/_fail. MSG lives
     * until then. */
    void (*deliver)(void *arg, const ferry_msg_t *msg);
    /* The core gave up on MSG (attempts or age exhausted; REASON says which
     * and the last error): tell the sender. The row stays, as dead, for
     * `ferry queue`. */
    void (*dead)(void *arg, const ferry_msg_t *msg, const char *reason);
} ferry_outbox_handlers_t;

/* From start(): pending messages resume at once. */
int ferry_outbox_open(ferry_component_t *comp, const ferry_outbox_handlers_t *handlers, void *arg);

/* 0 stored (and *id set if id is not NULL); for a duplicate of DEDUP
 * (dropped) the state of the first: FERRY_DUP_PENDING, FERRY_DUP_DONE or
 * FERRY_DUP_DEAD; -1 store error (not accepted: say so to the sender). */
enum { FERRY_DUP_PENDING = 1, FERRY_DUP_DONE = 2, FERRY_DUP_DEAD = 3 };
int ferry_outbox_put(ferry_component_t *comp, const char *conversation, const char *dedup,
                     const char *payload, size_t len, int64_t *id);
/* The same for a message from an XMPP user. While the store cannot take
 * writes (PostgreSQL away) it is held in memory and stored once the store
 * is back, before any newer message: 0 then too, with *id = 0 (it is not
 * stored yet: acknowledge nothing). Past the hold's bound (storage.
 * hold_messages, hold_bytes) FERRY_OUTBOX_FULL: not accepted, answer the
 * sender wait/resource-constraint. Never for a network's request: its
 * sender must hear 503 and retry. */
enum { FERRY_OUTBOX_FULL = -2 };
int ferry_outbox_put_or_hold(ferry_component_t *comp, const char *conversation, const char *dedup,
                             const char *payload, size_t len, int64_t *id);
void ferry_outbox_done(ferry_component_t *comp, int64_t id);
/* A transient failure: try again later. retry_after: seconds the far end
 * asked for, -1 when it did not. */
void ferry_outbox_retry(ferry_component_t *comp, int64_t id, const char *error, long retry_after);
/* A permanent failure the adapter has already told the sender about. */
void ferry_outbox_fail(ferry_component_t *comp, int64_t id, const char *error);

/* Network -> XMPP: stores STANZA (serialised now; 'from' defaults to the
 * domain; what XML forbids in it becomes U+FFFD) for delivery. 0 stored, a
 * FERRY_DUP_* for a duplicate, -1 store error. Answer the sender after
 * ferry_outbox_sync(): with PostgreSQL a duplicate of an earlier batch is
 * found only at commit (0 here; it is dropped then, stored once). */
int ferry_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza);

/* CB(arg, ok) once everything put so far is committed; answer a network's
 * request only then (ok = 0: the commit failed, answer with an error so the
 * sender retries). */
void ferry_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg);

/* A simple record format for payloads: N strings, each ending with a NUL
 * byte (XML text cannot hold NUL, so stanza parts fit). Packing returns a
 * malloc'd buffer and its length; unpacking points into BUF (which must
 * stay alive) and returns 0, or -1 when BUF does not hold N fields. */
char *ferry_record_pack(const char *const *fields, size_t n, size_t *len);
int ferry_record_unpack(const char *buf, size_t len, const char **fields, size_t n);

#endif
