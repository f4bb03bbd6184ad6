/* outbox.h: the core's durable queues, one pair per component: messages on
 * their way to a network (driven by the adapter's deliver) and stanzas on
 * their way to XMPP (sent by the core over the link). */
#ifndef FERRY_SRC_OUTBOX_H
#define FERRY_SRC_OUTBOX_H

#include <stdint.h>

#include <uv.h>

#include "ferry/outbox.h"
#include "store.h"
#include "xmpp_link.h"

typedef struct outbox_policy {
    int64_t max_attempts;
    double max_age;         /* seconds */
    double retry_delay;     /* seconds before the first retry */
    double retry_delay_max;
} outbox_policy_t;

/* ---- to a network ---- */

typedef struct net_outbox net_outbox_t;

typedef struct outbox_stats {
    unsigned long long delivered, failed, retried, dead;
} outbox_stats_t;

net_outbox_t *ferry__net_outbox_new(uv_loop_t *loop, store_t *store, const char *component,
                             const outbox_policy_t *policy);
void ferry__net_outbox_start(net_outbox_t *ob, const ferry_outbox_handlers_t *h, void *arg);
void ferry__net_outbox_set_policy(net_outbox_t *ob, const outbox_policy_t *policy);
int ferry__net_outbox_put(net_outbox_t *ob, const char *conversation, const char *dedup,
                   const char *payload, size_t len, int64_t *id);
void ferry__net_outbox_done(net_outbox_t *ob, int64_t id);
void ferry__net_outbox_retry(net_outbox_t *ob, int64_t id, const char *error, long retry_after);
void ferry__net_outbox_fail(net_outbox_t *ob, int64_t id, const char *error);
/* Forgets the entry of row ID, rolled back with its batch. */
void ferry__net_outbox_forget(net_outbox_t *ob, int64_t id, const char *conversation);
/* Starts no new deliveries (shutdown); answers to those under way still
 * count. */
void ferry__net_outbox_pause(net_outbox_t *ob);
/* Looks for rows made pending from outside (a requeued dead message). */
void ferry__net_outbox_rescan(net_outbox_t *ob);
void ferry__net_outbox_stats(const net_outbox_t *ob, outbox_stats_t *out);
/* Frees memory; what is still pending stays in the store. */
void ferry__net_outbox_free(net_outbox_t *ob);

/* ---- held while the store is away (outbox_hold.c) ---- */

typedef struct outbox_hold outbox_hold_t;

/* A hold in front of OB (which must outlive it). */
outbox_hold_t *ferry__outbox_hold_new(uv_loop_t *loop, store_t *store, net_outbox_t *ob,
                                      const char *component);
/* ferry_outbox_put_or_hold(): puts in OB, or holds while the store is away
 * (at most MAX_MESSAGES and MAX_BYTES), or FERRY_OUTBOX_FULL. */
int ferry__outbox_hold_put(outbox_hold_t *h, size_t max_messages, size_t max_bytes,
                           const char *conversation, const char *dedup, const char *payload,
                           size_t len, int64_t *id);
size_t ferry__outbox_hold_count(const outbox_hold_t *h);
/* Stores what it can (the store may be back), logs how many messages it
 * could not, and frees. */
void ferry__outbox_hold_free(outbox_hold_t *h);

/* ---- to XMPP ---- */

typedef struct ferry__xmpp_outbox ferry__xmpp_outbox_t;

ferry__xmpp_outbox_t *ferry__xmpp_outbox_new(uv_loop_t *loop, store_t *store, const char *component,
                               ferry__xmpp_link_t *link);
int ferry__xmpp_outbox_put(ferry__xmpp_outbox_t *ob, const char *dedup, const char *text,
                           size_t len);
void ferry__xmpp_outbox_link_up(ferry__xmpp_outbox_t *ob);
/* The link dropped, for REASON: counts it against the stanza in flight when
 * one was sent alone (see outbox_xmpp.c on poison stanzas). */
void ferry__xmpp_outbox_link_down(ferry__xmpp_outbox_t *ob, const char *reason);
/* Stanzas the XMPP server has acknowledged. */
unsigned long long ferry__xmpp_outbox_delivered(const ferry__xmpp_outbox_t *ob);
void ferry__xmpp_outbox_free(ferry__xmpp_outbox_t *ob);

#endif
