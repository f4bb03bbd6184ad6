/* outbox_hold.c: messages from XMPP users that arrive while the store cannot
 * take writes (PostgreSQL away). Refusing them would make every user resend
 * by hand through an outage of a few seconds, so they wait here, in memory,
 * in arrival order, up to storage.hold_messages and storage.hold_bytes per
 * component; past that the sender is told to wait (resource-constraint).
 * Once the store takes writes again they are put in the outbox before any
 * newer message, so each conversation keeps its order.
 *
 * A message put in the outbox is in the store's open transaction (group
 * commit, store.c) until it commits, and a failed COMMIT (the connection
 * dropped just then) takes it back. So every message put through here is
 * kept, in put order, until its batch ends: committed, it is freed; rolled
 * back, it leaves the outbox's window and comes back to the front of the
 * hold (it was put before anything held now), to be stored again when the
 * store takes writes.
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
    int64_t id;                 /* in the store's open transaction */
} held_t;

struct outbox_hold {
    net_outbox_t *ob;   /* not owned */
    store_t *store;     /* not owned */
    char *component;
    held_t *first, **tail;      /* held: not in the store */
    held_t *unsure, **unsure_tail; /* owned copies of what was put in the
                                    * store's open transaction, put order */
    int watching;               /* ferry__store_batch_end() asked */
    unsigned long long taken_back; /* rolled back (put_now() looks) */
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
    h->unsure_tail = &h->unsure;
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

static held_t *held_new(const char *conversation, const char *dedup, const char *payload,
                        size_t len, size_t cost)
{
    held_t *m = ferry_calloc(1, sizeof *m);
    m->conversation = ferry_strdup(conversation);
    m->dedup = dedup ? ferry_strdup(dedup) : NULL;
    m->payload = ferry_malloc(len ? len : 1);
    memcpy(m->payload, payload, len);
    m->len = len;
    m->cost = cost;
    return m;
}

static int store_down(outbox_hold_t *h)
{
    char why[16];
    return !ferry__store_healthy(h->store, why, sizeof why);
}

static void on_retry(uv_timer_t *t);

/* The batch the unsure messages were put in ended. Rolled back, they go
 * before everything held, in the order they were put, and are put again
 * after RETRY_MS (a commit that the server refuses for good, rather than a
 * dropped connection, would come back each time, logged). */
static void on_batch_end(void *arg, int ok)
{
    outbox_hold_t *h = arg;
    held_t *lost = h->unsure;
    h->watching = 0;
    h->unsure = NULL;
    h->unsure_tail = &h->unsure;
    if (ok) {
        while (lost) {
            held_t *m = lost;
            lost = m->next;
            held_free(m);
        }
        return;
    }
    if (!lost)
        return;
    size_t n = 0;
    held_t *last = NULL;
    for (held_t *m = lost; m; last = m, m = m->next) {
        ferry__net_outbox_forget(h->ob, m->id, m->conversation);
        h->count++;
        h->bytes += m->cost;
        n++;
    }
    last->next = h->first;
    if (!h->first)
        h->tail = &last->next;
    h->first = lost;
    h->taken_back++;
    ferry_log_warn(h->component, "%zu message(s) from XMPP were in a batch whose commit failed:"
                   " held, to be stored again", n);
    uv_timer_start(&h->retry, on_retry, RETRY_MS, 0);
}

/* M is in the store's open transaction now: kept until it ends. */
static void keep_unsure(outbox_hold_t *h, held_t *m)
{
    m->next = NULL;
    *h->unsure_tail = m;
    h->unsure_tail = &m->next;
    if (!h->watching) {
        h->watching = 1;
        ferry__store_batch_end(h->store, on_batch_end, h);
    }
}

enum { TAKEN_BACK = -100 };

/* Puts M in the outbox. A put that failed with the store up may have met a
 * transaction lost with its connection (the new connection is up, the old
 * batch not ended yet): ending that batch lets the put go through, unless
 * it took back messages: those are older than M and go first (TAKEN_BACK;
 * M waits behind them). */
static int put_now(outbox_hold_t *h, held_t *m)
{
    int rc = ferry__net_outbox_put(h->ob, m->conversation, m->dedup, m->payload, m->len, &m->id);
    if (rc >= 0 || store_down(h))
        return rc;
    unsigned long long taken_back = h->taken_back;
    ferry__store_flush(h->store);
    if (h->taken_back != taken_back)
        return TAKEN_BACK;
    return ferry__net_outbox_put(h->ob, m->conversation, m->dedup, m->payload, m->len, &m->id);
}

/* Puts held messages in the outbox, oldest first, until one fails (the
 * store is still away) or LIMIT are stored; the timer comes back for the
 * rest. */
static void drain(outbox_hold_t *h, size_t limit)
{
    for (size_t n = 0; h->first && n < limit && !store_down(h); n++) {
        held_t *m = h->first;
        int rc = put_now(h, m);
        if (rc == TAKEN_BACK)
            continue; /* they are first now */
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
        if (rc == 0)
            keep_unsure(h, m);
        else
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
    size_t cost = sizeof(held_t) + strlen(conversation) + 1 + (dedup ? strlen(dedup) + 1 : 0) + len;
    if (!h->first) {
        held_t *m = held_new(conversation, dedup, payload, len, cost);
        int rc = put_now(h, m);
        if (rc == 0) {
            if (id)
                *id = m->id;
            keep_unsure(h, m);
            return 0;
        }
        held_free(m);
        if (rc != TAKEN_BACK && (rc >= 0 || !store_down(h)))
            return rc;
    }
    if (h->count + 1 > max_messages || h->bytes + cost > max_bytes) {
        if (!h->refused++)
            ferry_log_warn(h->component, "%zu message(s) held (%zu bytes) while the store is"
                           " away: refusing more until it is back", h->count, h->bytes);
        return FERRY_OUTBOX_FULL;
    }
    if (!h->first)
        ferry_log_warn(h->component, "the store cannot take writes: holding messages from XMPP"
                       " in memory until it can");
    held_t *m = held_new(conversation, dedup, payload, len, cost);
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
    /* The batches end before the hold goes: what they lose is held and
     * counted (on_batch_end() must not come after). */
    if (h->watching)
        ferry__store_flush(h->store);
    if (h->first)
        drain(h, h->count); /* the store may be back: a last chance */
    if (h->watching)
        ferry__store_flush(h->store);
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
