/* outbox_network.c: the durable queue of messages on their way from XMPP to
 * a network. The store holds every pending message; memory holds a window
 * of at most WINDOW of them (so 100,000 waiting cost no more memory than
 * 1,000), grouped by conversation. Only the oldest message of a conversation
 * is ever under way, so each conversation stays in order through retries;
 * conversations whose oldest message may go wait in a ready list, so each
 * event costs O(1), not a walk over the window.
 *
 * With several instances on one PostgreSQL store, a conversation is sent
 * by the instance holding its lease (store.h): claimed before its head
 * goes, renewed while a message is under way, and when another instance
 * holds it the conversation leaves this window (the store does not load it
 * again while that lease lives). Rows committed by other instances are
 * looked for when the store says some came (NOTIFY) and by the rescan,
 * every lease period: a dead instance's conversations are taken over once
 * their leases run out. */
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "ferry/backoff.h"
#include "ferry/log.h"
#include "outbox.h"

#define WINDOW 1024
#define MAX_IN_FLIGHT 64
#define REFILL 64       /* free places in the window before it loads more */
#define CONV_BUCKETS 2048
#define RESCAN_MS 30000 /* at most: rows requeued by hand, leases run out */
#define LEASE_RETRY_MS 1000 /* the store failed to answer a claim */
#define NOTIFIED_MS 50      /* rescans for rows of other instances: at most this often */

typedef struct conv conv_t;

typedef struct entry {
    struct entry *next;  /* in its conversation, id order */
    conv_t *conv;
    ferry_msg_t msg;
    int64_t next_ms;     /* not before (a retry, or as loaded) */
} entry_t;

enum conv_state { C_IDLE, C_READY, C_FLIGHT, C_WAIT };

struct conv {
    conv_t *hnext;              /* hash chain */
    conv_t *lprev, *lnext;      /* the list its state puts it on */
    char *key;
    entry_t *head, *tail;
    enum conv_state state;      /* of its head entry */
    int64_t next_ms;            /* C_WAIT: when the head may go again */
    int64_t lease_until;        /* ours until then (0: not claimed) */
};

typedef struct conv_list {
    conv_t *first, *last;
} conv_list_t;

struct net_outbox {
    uv_loop_t *loop;
    store_t *store;
    char *component;
    outbox_policy_t policy;
    ferry_outbox_handlers_t h;
    void *arg;
    int started, paused;

    conv_t *buckets[CONV_BUCKETS];
    conv_list_t ready, flight, waiting;
    size_t count, in_flight;
    int64_t loaded_upto;   /* highest id loaded so far */
    int caught_up;         /* nothing pending beyond loaded_upto */
    outbox_stats_t stats;

    uv_idle_t pump;        /* dispatches once per loop iteration when needed */
    uv_timer_t wake;       /* the earliest retry */
    uv_timer_t rescan;
    uv_timer_t renew;      /* the leases of conversations under way */
    uv_timer_t notified;   /* a rescan for rows of other instances */
    int64_t lease_ms;
    int rescan_due;        /* another instance committed rows */
    int handles;
};

/* ---- conversations ---- */

static size_t conv_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h % CONV_BUCKETS;
}

static void list_push(conv_list_t *l, conv_t *c)
{
    c->lprev = l->last;
    c->lnext = NULL;
    if (l->last)
        l->last->lnext = c;
    else
        l->first = c;
    l->last = c;
}

static void list_drop(conv_list_t *l, conv_t *c)
{
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        l->first = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else
        l->last = c->lprev;
    c->lprev = c->lnext = NULL;
}

static conv_list_t *list_of(net_outbox_t *ob, enum conv_state state)
{
    switch (state) {
    case C_READY: return &ob->ready;
    case C_FLIGHT: return &ob->flight;
    case C_WAIT: return &ob->waiting;
    default: return NULL;
    }
}

static void set_state(net_outbox_t *ob, conv_t *c, enum conv_state state)
{
    conv_list_t *from = list_of(ob, c->state), *to = list_of(ob, state);
    if (from)
        list_drop(from, c);
    if (to)
        list_push(to, c);
    c->state = state;
}

static conv_t *conv_get(net_outbox_t *ob, const char *key)
{
    size_t b = conv_hash(key);
    for (conv_t *c = ob->buckets[b]; c; c = c->hnext)
        if (strcmp(c->key, key) == 0)
            return c;
    conv_t *c = ferry_calloc(1, sizeof *c);
    c->key = ferry_strdup(key);
    c->hnext = ob->buckets[b];
    ob->buckets[b] = c;
    return c;
}

static void conv_free(net_outbox_t *ob, conv_t *c)
{
    set_state(ob, c, C_IDLE);
    conv_t **p = &ob->buckets[conv_hash(c->key)];
    while (*p != c)
        p = &(*p)->hnext;
    *p = c->hnext;
    free(c->key);
    free(c);
}

/* What the head of C may do now. */
static void settle(net_outbox_t *ob, conv_t *c, int64_t now)
{
    if (!c->head) {
        conv_free(ob, c);
    } else if (c->next_ms > now) {
        set_state(ob, c, C_WAIT);
    } else {
        set_state(ob, c, C_READY);
    }
}

/* ---- entries ---- */

static void entry_free(entry_t *e)
{
    free((char *)e->msg.payload);
    free(e);
}

static int known(net_outbox_t *ob, int64_t id, const char *conversation)
{
    size_t b = conv_hash(conversation);
    for (conv_t *c = ob->buckets[b]; c; c = c->hnext)
        if (strcmp(c->key, conversation) == 0)
            for (entry_t *e = c->head; e; e = e->next)
                if (e->msg.id == id)
                    return 1;
    return 0;
}

static void add_entry(net_outbox_t *ob, const store_row_t *r, int64_t now)
{
    conv_t *c = conv_get(ob, r->conversation);
    entry_t *e = ferry_calloc(1, sizeof *e);
    char *payload = ferry_malloc(r->payload_len + 1);
    memcpy(payload, r->payload, r->payload_len);
    payload[r->payload_len] = 0;
    e->conv = c;
    e->msg.id = r->id;
    e->msg.conversation = c->key;
    e->msg.payload = payload;
    e->msg.payload_len = r->payload_len;
    e->msg.attempts = r->attempts;
    e->msg.created_ms = r->created_ms;
    e->next_ms = r->next_ms;
    /* Keep id order inside the conversation (a rescan may bring older
     * rows); never in front of a head that is under way. */
    entry_t **p = &c->head;
    if (c->tail && c->tail->msg.id < r->id)
        p = &c->tail->next; /* the usual case: newer than all */
    else if (c->state == C_FLIGHT)
        p = &c->head->next;
    while (*p && (*p)->msg.id < r->id)
        p = &(*p)->next;
    e->next = *p;
    *p = e;
    if (!e->next)
        c->tail = e;
    ob->count++;
    if (c->head == e) {
        c->next_ms = r->next_ms;
        settle(ob, c, now);
    }
}

/* Takes the head off C after it was answered. */
static entry_t *pop_head(net_outbox_t *ob, conv_t *c)
{
    entry_t *e = c->head;
    c->head = e->next;
    if (!c->head)
        c->tail = NULL;
    ob->count--;
    c->next_ms = c->head ? c->head->next_ms : 0;
    return e;
}

/* Forgets a conversation (another instance holds it, or shutdown): its
 * rows stay in the store. */
static void conv_drop(net_outbox_t *ob, conv_t *c)
{
    while (c->head)
        entry_free(pop_head(ob, c));
    conv_free(ob, c);
}

static entry_t *find_flight(net_outbox_t *ob, int64_t id)
{
    for (conv_t *c = ob->flight.first; c; c = c->lnext)
        if (c->head->msg.id == id)
            return c->head;
    return NULL;
}

/* ---- loading ---- */

typedef struct load_ctx {
    net_outbox_t *ob;
    int64_t now;
    int full;   /* a row was left out: the window was full */
} load_ctx_t;

/* Rows come in id order. Up to loaded_upto they may be here already (a
 * rescan); past it they are new, and loaded_upto follows them as long as
 * none was left out. */
static void on_loaded_row(void *arg, const store_row_t *r)
{
    load_ctx_t *lc = arg;
    net_outbox_t *ob = lc->ob;
    int fresh = r->id > ob->loaded_upto;
    if (!fresh && known(ob, r->id, r->conversation))
        return;
    if (lc->full || ob->count >= WINDOW) {
        lc->full = 1;
        return;
    }
    if (fresh)
        ob->loaded_upto = r->id;
    add_entry(ob, r, lc->now);
}

/* Loads pending rows past AFTER (0: a rescan from the oldest). */
static void load(net_outbox_t *ob, int64_t after)
{
    if (ob->count >= WINDOW)
        return;
    size_t want = after ? WINDOW - ob->count : WINDOW;
    load_ctx_t lc = {ob, ferry__store_now_ms(), 0};
    int n = ferry__store_msg_pending(ob->store, ob->component, STORE_TO_NETWORK, after, want,
                              on_loaded_row, &lc);
    if (n < 0)
        return;
    if (after == ob->loaded_upto || !after)
        ob->caught_up = !lc.full && (size_t)n < want;
    if (!after)
        ob->rescan_due = 0;
}

/* ---- scheduling ---- */

static void on_pump(uv_idle_t *h);

static void schedule(net_outbox_t *ob) { uv_idle_start(&ob->pump, on_pump); }

static void on_wake(uv_timer_t *t)
{
    net_outbox_t *ob = t->data;
    int64_t now = ferry__store_now_ms(), earliest = INT64_MAX;
    for (conv_t *c = ob->waiting.first, *next; c; c = next) {
        next = c->lnext;
        if (c->next_ms <= now)
            set_state(ob, c, C_READY);
        else if (c->next_ms < earliest)
            earliest = c->next_ms;
    }
    if (earliest != INT64_MAX)
        uv_timer_start(&ob->wake, on_wake, (uint64_t)(earliest - now), 0);
    schedule(ob);
}

/* Arms the wake-up for a conversation that now waits until NEXT_MS. */
static void wake_at(net_outbox_t *ob, int64_t next_ms)
{
    uint64_t due = uv_timer_get_due_in(&ob->wake);
    int64_t in = next_ms - ferry__store_now_ms();
    if (in < 0)
        in = 0;
    if (!uv_is_active((uv_handle_t *)&ob->wake) || (uint64_t)in < due)
        uv_timer_start(&ob->wake, on_wake, (uint64_t)in, 0);
}

static void on_renew(uv_timer_t *t);

/* Whether the head of C may go: its lease is ours for at least half a
 * lease more, claimed now if needed. */
static int leased(net_outbox_t *ob, conv_t *c, int64_t now)
{
    if (c->lease_until - now > ob->lease_ms / 2)
        return 1;
    int rc = ferry__store_lease(ob->store, ob->component, STORE_TO_NETWORK, c->key);
    if (rc == 1) {
        c->lease_until = now + ob->lease_ms;
        if (!uv_is_active((uv_handle_t *)&ob->renew))
            uv_timer_start(&ob->renew, on_renew, (uint64_t)ob->lease_ms / 3,
                           (uint64_t)ob->lease_ms / 3);
        return 1;
    }
    c->lease_until = 0;
    if (rc == 0) {
        conv_drop(ob, c);
    } else {
        c->next_ms = now + LEASE_RETRY_MS;
        set_state(ob, c, C_WAIT);
        wake_at(ob, c->next_ms);
    }
    return 0;
}

/* Keeps the leases of the conversations under way (a delivery may outlast
 * a lease); one lost meanwhile is dropped once its answer comes. */
static void on_renew(uv_timer_t *t)
{
    net_outbox_t *ob = t->data;
    int64_t now = ferry__store_now_ms();
    if (!ob->flight.first) {
        uv_timer_stop(t);
        return;
    }
    for (conv_t *c = ob->flight.first; c; c = c->lnext) {
        int rc = ferry__store_lease(ob->store, ob->component, STORE_TO_NETWORK, c->key);
        if (rc == 1)
            c->lease_until = now + ob->lease_ms;
        else if (rc == 0)
            c->lease_until = 0;
    }
}

static void dispatch(net_outbox_t *ob)
{
    if (!ob->started || ob->paused)
        return;
    if (ob->count < WINDOW && ob->rescan_due)
        load(ob, 0);
    /* Refilled in batches (a round trip each with PostgreSQL), or at once
     * when nothing here may go. */
    if (ob->count < WINDOW && !ob->caught_up && (ob->count + REFILL <= WINDOW || !ob->ready.first))
        load(ob, ob->loaded_upto);
    if (ob->ready.first && ob->in_flight < MAX_IN_FLIGHT && ferry__store_queued_uncommitted(ob->store))
        ferry__store_flush(ob->store); /* never send what a crash could still take back */
    int64_t now = ferry__store_now_ms();
    while (ob->ready.first && ob->in_flight < MAX_IN_FLIGHT) {
        conv_t *c = ob->ready.first;
        if (!leased(ob, c, now))
            continue;
        set_state(ob, c, C_FLIGHT);
        c->head->msg.attempts++;
        ob->in_flight++;
        ob->h.deliver(ob->arg, &c->head->msg);
    }
    if (ob->waiting.first && !uv_is_active((uv_handle_t *)&ob->wake))
        on_wake(&ob->wake);
}

static void on_pump(uv_idle_t *h)
{
    net_outbox_t *ob = h->data;
    uv_idle_stop(h);
    dispatch(ob);
}

void ferry__net_outbox_rescan(net_outbox_t *ob)
{
    if (ob->paused)
        return;
    ob->rescan_due = 1;
    schedule(ob);
}

static void on_rescan(uv_timer_t *t) { ferry__net_outbox_rescan(t->data); }

/* Another instance committed rows (or let a lease go): look once, on the
 * next iteration, however many notifications came. */
static void on_notified(uv_timer_t *t) { ferry__net_outbox_rescan(t->data); }

static void on_store_event(void *arg, int event, const char *text)
{
    (void)text;
    net_outbox_t *ob = arg;
    if (event == STORE_EV_ROWS && !uv_is_active((uv_handle_t *)&ob->notified))
        uv_timer_start(&ob->notified, on_notified, NOTIFIED_MS, 0);
}

/* ---- answers from the adapter ---- */

/* After ATTEMPTS attempts: retry_delay doubling up to retry_delay_max, with
 * jitter so that retries from many senders spread out. */
static uint64_t backoff_ms(const outbox_policy_t *p, int attempts, long retry_after)
{
    uint64_t delay = ferry_backoff_ms(attempts > 1 ? (unsigned)attempts - 1 : 0,
                                      (uint64_t)(p->retry_delay * 1000),
                                      (uint64_t)(p->retry_delay_max * 1000));
    if (retry_after >= 0 && (uint64_t)retry_after * 1000 > delay)
        delay = (uint64_t)retry_after * 1000; /* the far end said when: not sooner */
    return delay;
}

/* The entry under way with ID, taken out of flight; NULL when the answer
 * comes for something no longer ours (after a shutdown began). */
static entry_t *answered(net_outbox_t *ob, int64_t id)
{
    entry_t *e = find_flight(ob, id);
    if (!e)
        return NULL;
    ob->in_flight--;
    schedule(ob);
    return e;
}

/* The head of its conversation is finished: the next one may go. */
static void finish(net_outbox_t *ob, entry_t *e)
{
    conv_t *c = e->conv;
    pop_head(ob, c);
    settle(ob, c, ferry__store_now_ms());
    entry_free(e);
}

void ferry__net_outbox_done(net_outbox_t *ob, int64_t id)
{
    entry_t *e = answered(ob, id);
    ob->stats.delivered++;
    ferry__store_msg_update(ob->store, id, STORE_DONE, e ? e->msg.attempts : 0, 0, NULL);
    if (e)
        finish(ob, e);
}

void ferry__net_outbox_fail(net_outbox_t *ob, int64_t id, const char *error)
{
    entry_t *e = answered(ob, id);
    ob->stats.failed++;
    ferry__store_msg_update(ob->store, id, STORE_DEAD, e ? e->msg.attempts : 0, 0, error);
    if (e)
        finish(ob, e);
}

void ferry__net_outbox_retry(net_outbox_t *ob, int64_t id, const char *error, long retry_after)
{
    entry_t *e = answered(ob, id);
    if (!e)
        return; /* not ours any more (shutdown): it stays pending in the store */
    int64_t now = ferry__store_now_ms();
    double age = (double)(now - e->msg.created_ms) / 1000;
    if (e->msg.attempts >= ob->policy.max_attempts || age >= ob->policy.max_age) {
        char reason[512];
        if (e->msg.attempts >= ob->policy.max_attempts)
            snprintf(reason, sizeof reason, "gave up after %d attempts: %s", e->msg.attempts,
                     error);
        else
            snprintf(reason, sizeof reason, "gave up after %.0f s (max_age): %s", age, error);
        ferry__store_msg_update(ob->store, id, STORE_DEAD, e->msg.attempts, 0, reason);
        ferry__store_flush(ob->store); /* the sender's error never runs ahead of the mark */
        ob->stats.dead++;
        ob->h.dead(ob->arg, &e->msg, reason);
        finish(ob, e);
        return;
    }
    uint64_t delay = backoff_ms(&ob->policy, e->msg.attempts, retry_after);
    ob->stats.retried++;
    conv_t *c = e->conv;
    c->next_ms = e->next_ms = now + (int64_t)delay;
    set_state(ob, c, C_WAIT);
    wake_at(ob, c->next_ms);
    ferry__store_msg_update(ob->store, id, STORE_PENDING, e->msg.attempts, c->next_ms, error);
    ferry_log_info(ob->component, "message %lld: %s; attempt %d in %.1f s", (long long)id, error,
                   e->msg.attempts + 1, (double)delay / 1000);
}

/* ---- lifetime ---- */

static void init_handle(net_outbox_t *ob, uv_handle_t *h)
{
    h->data = ob;
    ob->handles++;
}

net_outbox_t *ferry__net_outbox_new(uv_loop_t *loop, store_t *store, const char *component,
                             const outbox_policy_t *policy)
{
    net_outbox_t *ob = ferry_calloc(1, sizeof *ob);
    ob->loop = loop;
    ob->store = store;
    ob->component = ferry_strdup(component);
    ob->policy = *policy;
    uv_idle_init(loop, &ob->pump);
    init_handle(ob, (uv_handle_t *)&ob->pump);
    uv_timer_init(loop, &ob->wake);
    init_handle(ob, (uv_handle_t *)&ob->wake);
    uv_timer_init(loop, &ob->rescan);
    init_handle(ob, (uv_handle_t *)&ob->rescan);
    uv_timer_init(loop, &ob->renew);
    init_handle(ob, (uv_handle_t *)&ob->renew);
    uv_timer_init(loop, &ob->notified);
    init_handle(ob, (uv_handle_t *)&ob->notified);
    ob->lease_ms = (int64_t)(ferry__store_lease_seconds(store) * 1000);
    return ob;
}

void ferry__net_outbox_start(net_outbox_t *ob, const ferry_outbox_handlers_t *h, void *arg)
{
    ob->h = *h;
    ob->arg = arg;
    ob->started = 1;
    load(ob, 0);
    if (ob->count)
        ferry_log_info(ob->component, "resuming %zu pending message(s)%s", ob->count,
                       ob->caught_up ? "" : " (and more in the store)");
    uint64_t every = ob->lease_ms < RESCAN_MS ? (uint64_t)ob->lease_ms : RESCAN_MS;
    uv_timer_start(&ob->rescan, on_rescan, every, every);
    ferry__store_watch(ob->store, on_store_event, ob);
    schedule(ob);
}

void ferry__net_outbox_set_policy(net_outbox_t *ob, const outbox_policy_t *policy)
{
    ob->policy = *policy;
}

int ferry__net_outbox_put(net_outbox_t *ob, const char *conversation, const char *dedup,
                   const char *payload, size_t len, int64_t *id)
{
    int64_t new_id = 0;
    int rc = ferry__store_msg_add(ob->store, ob->component, STORE_TO_NETWORK, conversation, dedup,
                           payload, len, &new_id);
    if (rc != 0)
        return rc;
    if (id)
        *id = new_id;
    if (ob->caught_up && ob->count < WINDOW) {
        int64_t now = ferry__store_now_ms();
        store_row_t r = {.id = new_id, .conversation = conversation, .payload = payload,
                         .payload_len = len, .created_ms = now, .next_ms = now};
        add_entry(ob, &r, now);
        ob->loaded_upto = new_id;
    } else {
        ob->caught_up = 0;
    }
    schedule(ob);
    return 0;
}

/* The row ID of CONVERSATION was rolled back with its batch (outbox_hold.c
 * adds it again): its entry leaves the window, or it would go now and again
 * as the new row. It is not under way: a head goes only once its batch
 * committed (dispatch() flushes first), and a failed commit takes back its
 * rows before dispatch() goes on. */
void ferry__net_outbox_forget(net_outbox_t *ob, int64_t id, const char *conversation)
{
    size_t b = conv_hash(conversation);
    conv_t *c = ob->buckets[b];
    while (c && strcmp(c->key, conversation) != 0)
        c = c->hnext;
    if (!c)
        return; /* never in the window (it was full) */
    entry_t **p = &c->head, *prev = NULL;
    while (*p && (*p)->msg.id != id) {
        prev = *p;
        p = &(*p)->next;
    }
    entry_t *e = *p;
    if (!e || (e == c->head && c->state == C_FLIGHT))
        return;
    *p = e->next;
    if (c->tail == e)
        c->tail = prev;
    ob->count--;
    if (!prev) {
        c->next_ms = c->head ? c->head->next_ms : 0;
        settle(ob, c, ferry__store_now_ms());
    }
    entry_free(e);
}

void ferry__net_outbox_pause(net_outbox_t *ob)
{
    ob->paused = 1;
    uv_timer_stop(&ob->wake);
    uv_timer_stop(&ob->rescan);
    uv_timer_stop(&ob->renew);
    uv_timer_stop(&ob->notified);
    ferry__store_unwatch(ob->store, on_store_event, ob);
}

void ferry__net_outbox_stats(const net_outbox_t *ob, outbox_stats_t *out) { *out = ob->stats; }

static void on_handle_closed(uv_handle_t *h)
{
    net_outbox_t *ob = h->data;
    if (--ob->handles == 0)
        free(ob);
}

void ferry__net_outbox_free(net_outbox_t *ob)
{
    for (size_t b = 0; b < CONV_BUCKETS; b++)
        while (ob->buckets[b])
            conv_drop(ob, ob->buckets[b]);
    if (ob->started)
        ferry__store_unwatch(ob->store, on_store_event, ob);
    free(ob->component);
    uv_close((uv_handle_t *)&ob->renew, on_handle_closed);
    uv_close((uv_handle_t *)&ob->notified, on_handle_closed);
    uv_close((uv_handle_t *)&ob->pump, on_handle_closed);
    uv_close((uv_handle_t *)&ob->wake, on_handle_closed);
    uv_close((uv_handle_t *)&ob->rescan, on_handle_closed);
}
