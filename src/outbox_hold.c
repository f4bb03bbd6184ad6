/* outbox_hold.c: messages from XMPP users that arrive while the store cannot
 * take writes (PostgreSQL away). Refusing them would make every user resend
 * by hand through an outage of a few seconds, so they wait here, in memory,
 * in arrival order, up to storage.hold_messages and storage.hold_bytes per
 * component; past that the sender is told to wait (resource-constraint).
 * Once the store takes writes again they are put in the outbox before any
 * newer message, so each conversation keeps its order.
 *
 * A held message is not durable: nothing tells the sender it is stored
 * (receipts come with delivery), and a ferry stopped before the store came
 * back says in its log how many it could not store. Messages from the
 * networks (HTTP) are never held: their senders get a 503 and retry. */
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "ferry/log.h"
#include "outbox.h"

#define RETRY_MS 200   /* how often a held message tries the store */
#define BATCH 500      /* stored per loop iteration: the loop stays responsive */

typedef struct held {
    struct held *next;
    char *conversation, *dedup; /* dedup may be NULL */
    char *payload;
    size_t len, cost;
} held_t;

struct outbox_hold {
    net_outbox_t *ob;   /* not owned */
    store_t *store;     /* not owned */
    char *component;
    held_t *first, **tail;
    size_t count, bytes;
    unsigned long long stored, refused; /* since the hold last emptied */
    uv_timer_t retry;   /* armed while something is held */
};

outbox_hold_t *ferry__outbox_hold_new(uv_loop_t *loop, store_t *store, net_outbox_t *ob,
                                      const char *component)
{
    outbox_hold_t *h = ferry_calloc(1, sizeof *h);
    h->ob = ob;
    h->store = store;
    h->component = ferry_strdup(component);
    h->tail = &h->first;
    uv_timer_init(loop, &h->retry);
    h->retry.data = h;
    return h;
}

static void held_free(held_t *m)
{
    free(m->conversation);
    free(m->dedup);
    free(m->payload);
    free(m);
}

static int store_down(outbox_hold_t *h)
{
    char why[16];
    return !ferry__store_healthy(h->store, why, sizeof why);
}

/* A put that failed with the store up may have met a transaction lost with
 * its connection (the new connection is up, the old batch not ended yet):
 * ending that batch lets the put go through. */
static int put_now(outbox_hold_t *h, const char *conversation, const char *dedup,
                   const char *payload, size_t len, int64_t *id)
{
    int rc = ferry__net_outbox_put(h->ob, conversation, dedup, payload, len, id);
    if (rc >= 0 || store_down(h))
        return rc;
    ferry__store_flush(h->store);
    return ferry__net_outbox_put(h->ob, conversation, dedup, payload, len, id);
}

static void on_retry(uv_timer_t *t);

/* Puts held messages in the outbox, oldest first, until one fails (the
 * store is still away) or LIMIT are stored; the timer comes back for the
 * rest. */
static void drain(outbox_hold_t *h, size_t limit)
{
    for (size_t n = 0; h->first && n < limit && !store_down(h); n++) {
        held_t *m = h->first;
        int rc = put_now(h, m->conversation, m->dedup, m->payload, m->len, NULL);
        if (rc < 0 && !store_down(h)) {
            /* The store is up and still refuses it: keeping it would block
             * every message behind it. */
            ferry_log_error(h->component, "a held message (conversation %s) could not be stored;"
                            " dropped", m->conversation);
        } else if (rc < 0) {
            break;
        }
        h->first = m->next;
        if (!h->first)
            h->tail = &h->first;
        h->count--;
        h->bytes -= m->cost;
        h->stored++;
        held_free(m);
    }
    if (h->first) {
        uv_timer_start(&h->retry, on_retry, store_down(h) ? RETRY_MS : 0, 0);
        return;
    }
    uv_timer_stop(&h->retry);
    if (h->stored || h->refused)
        ferry_log_info(h->component, "the store takes writes again: %llu held message(s) stored,"
                       " %llu refused while the hold was full", h->stored, h->refused);
    h->stored = h->refused = 0;
}

static void on_retry(uv_timer_t *t) { drain(t->data, BATCH); }

int ferry__outbox_hold_put(outbox_hold_t *h, size_t max_messages, size_t max_bytes,
                           const char *conversation, const char *dedup, const char *payload,
                           size_t len, int64_t *id)
{
    if (h->first)
        drain(h, BATCH);
    if (!h->first) {
        int rc = put_now(h, conversation, dedup, payload, len, id);
        if (rc >= 0 || !store_down(h))
            return rc;
    }
    size_t cost = sizeof(held_t) + strlen(conversation) + 1 + (dedup ? strlen(dedup) + 1 : 0) + len;
    if (h->count + 1 > max_messages || h->bytes + cost > max_bytes) {
        if (!h->refused++)
            ferry_log_warn(h->component, "%zu message(s) held (%zu bytes) while the store is"
                           " away: refusing more until it is back", h->count, h->bytes);
        return FERRY_OUTBOX_FULL;
    }
    if (!h->first)
        ferry_log_warn(h->component, "the store cannot take writes: holding messages from XMPP"
                       " in memory until it can");
    held_t *m = ferry_calloc(1, sizeof *m);
    m->conversation = ferry_strdup(conversation);
    m->dedup = dedup ? ferry_strdup(dedup) : NULL;
    m->payload = ferry_malloc(len ? len : 1);
    memcpy(m->payload, payload, len);
    m->len = len;
    m->cost = cost;
    *h->tail = m;
    h->tail = &m->next;
    h->count++;
    h->bytes += cost;
    if (id)
        *id = 0; /* not stored yet */
    if (!uv_is_active((uv_handle_t *)&h->retry))
        uv_timer_start(&h->retry, on_retry, RETRY_MS, 0);
    return 0;
}

size_t ferry__outbox_hold_count(const outbox_hold_t *h) { return h ? h->count : 0; }

static void on_closed(uv_handle_t *handle) { free(handle->data); }

void ferry__outbox_hold_free(outbox_hold_t *h)
{
    if (!h)
        return;
    if (h->first)
        drain(h, h->count); /* the store may be back: a last chance */
    if (h->count)
        ferry_log_error(h->component, "stopping with %zu message(s) from XMPP held in memory"
                        " and not stored (the store was away): they are lost", h->count);
    while (h->first) {
        held_t *m = h->first;
        h->first = m->next;
        held_free(m);
    }
    free(h->component);
    uv_close((uv_handle_t *)&h->retry, on_closed);
}
