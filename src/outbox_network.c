/* outbox_network.c: the durable queue of messages on their way from XMPP to
 * a network. The store holds every pending message; memory holds a window
 * of at most WINDOW of them (so 100,000 waiting cost no more memory than
 * 1,000), scheduled in id order with at most one message per conversation
 * under way, so that each conversation stays in order through retries. */
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "outbox.h"

#define WINDOW 1024
#define MAX_IN_FLIGHT 64
#define RESCAN_MS 30000 /* picks up rows requeued by `ferry queue retry` */

enum entry_state { E_READY, E_FLIGHT, E_WAIT };

typedef struct entry {
    struct entry *prev, *next;
    ferry_msg_t msg;
    enum entry_state state;
    int64_t next_ms;
} entry_t;

struct net_outbox {
    uv_loop_t *loop;
    store_t *store;
    char *component;
    outbox_policy_t policy;
    ferry_outbox_handlers_t h;
    void *arg;
    int started, paused;

    entry_t *head, *tail;  /* id order */
    size_t count, in_flight;
    int64_t loaded_upto;   /* highest id ever loaded */
    int caught_up;         /* nothing pending beyond loaded_upto */

    outbox_stats_t stats;

    uv_idle_t pump;        /* runs dispatch once per loop iteration when needed */
    uv_timer_t wake;       /* the earliest retry */
    uv_timer_t rescan;
    int handles;
};

/* ---- the window ---- */

static entry_t *entry_new(const store_row_t *r, int64_t now)
{
    entry_t *e = calloc(1, sizeof *e);
    e->msg.id = r->id;
    e->msg.conversation = strdup(r->conversation);
    char *payload = malloc(r->payload_len + 1);
    memcpy(payload, r->payload, r->payload_len);
    payload[r->payload_len] = 0;
    e->msg.payload = payload;
    e->msg.payload_len = r->payload_len;
    e->msg.attempts = r->attempts;
    e->msg.created_ms = r->created_ms;
    e->next_ms = r->next_ms;
    e->state = r->next_ms > now ? E_WAIT : E_READY;
    return e;
}

static void entry_free(entry_t *e)
{
    free((char *)e->msg.conversation);
    free((char *)e->msg.payload);
    free(e);
}

static entry_t *find(net_outbox_t *ob, int64_t id)
{
    for (entry_t *e = ob->head; e; e = e->next)
        if (e->msg.id == id)
            return e;
    return NULL;
}

/* Keeps id order; rows come mostly in order, so search from the tail. */
static void insert(net_outbox_t *ob, entry_t *e)
{
    entry_t *after = ob->tail;
    while (after && after->msg.id > e->msg.id)
        after = after->prev;
    e->prev = after;
    e->next = after ? after->next : ob->head;
    if (e->next)
        e->next->prev = e;
    else
        ob->tail = e;
    if (after)
        after->next = e;
    else
        ob->head = e;
    ob->count++;
}

static void unlink_entry(net_outbox_t *ob, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        ob->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        ob->tail = e->prev;
    ob->count--;
}

static void remove_entry(net_outbox_t *ob, entry_t *e)
{
    unlink_entry(ob, e);
    entry_free(e);
}

typedef struct load_ctx {
    net_outbox_t *ob;
    int64_t now;
} load_ctx_t;

static void on_loaded_row(void *arg, const store_row_t *r)
{
    load_ctx_t *lc = arg;
    if (r->id > lc->ob->loaded_upto)
        lc->ob->loaded_upto = r->id;
    if (find(lc->ob, r->id))
        return; /* a rescan found what is already here */
    insert(lc->ob, entry_new(r, lc->now));
}

static void load(net_outbox_t *ob, int64_t after)
{
    if (ob->count >= WINDOW)
        return;
    size_t want = WINDOW - ob->count;
    load_ctx_t lc = {ob, store_now_ms()};
    int n = store_msg_pending(ob->store, ob->component, STORE_TO_NETWORK, after, want,
                              on_loaded_row, &lc);
    if (n >= 0 && after == ob->loaded_upto)
        ob->caught_up = (size_t)n < want;
}

/* ---- scheduling ---- */

/* The conversations seen in one dispatch pass: an open-addressing set of
 * pointers into the window's entries, rebuilt each pass. */
typedef struct conv_set {
    const char *slot[WINDOW * 2];
} conv_set_t;

static size_t conv_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Adds CONV; returns 1 when it was there already. */
static int conv_add(conv_set_t *set, const char *conv)
{
    size_t i = conv_hash(conv) % (WINDOW * 2);
    while (set->slot[i]) {
        if (strcmp(set->slot[i], conv) == 0)
            return 1;
        i = (i + 1) % (WINDOW * 2);
    }
    set->slot[i] = conv;
    return 0;
}

static void on_wake(uv_timer_t *t);

static void start_delivery(net_outbox_t *ob, entry_t *e, int64_t now)
{
    e->state = E_FLIGHT;
    e->msg.attempts++;
    ob->in_flight++;
    store_msg_update(ob->store, e->msg.id, STORE_PENDING, e->msg.attempts, now, NULL);
    ob->h.deliver(ob->arg, &e->msg);
}

static void dispatch(net_outbox_t *ob)
{
    if (!ob->started || ob->paused)
        return;
    if (ob->count < WINDOW && !ob->caught_up)
        load(ob, ob->loaded_upto);
    int64_t now = store_now_ms();
    int64_t earliest = INT64_MAX;
    static conv_set_t seen;
    memset(&seen, 0, sizeof seen);
    for (entry_t *e = ob->head, *next; e; e = next) {
        next = e->next; /* deliver() may answer at once and free e */
        if (e->state == E_WAIT && e->next_ms <= now)
            e->state = E_READY;
        if (e->state == E_WAIT && e->next_ms < earliest)
            earliest = e->next_ms;
        /* The first entry of each conversation may go; the rest wait. */
        if (conv_add(&seen, e->msg.conversation) || e->state != E_READY)
            continue;
        if (ob->in_flight < MAX_IN_FLIGHT)
            start_delivery(ob, e, now);
    }
    if (earliest != INT64_MAX)
        uv_timer_start(&ob->wake, on_wake, (uint64_t)(earliest - now), 0);
}

static void on_pump(uv_idle_t *h)
{
    net_outbox_t *ob = h->data;
    uv_idle_stop(h);
    dispatch(ob);
}

static void schedule(net_outbox_t *ob)
{
    uv_idle_start(&ob->pump, on_pump);
}

static void on_wake(uv_timer_t *t) { schedule(t->data); }

void net_outbox_rescan(net_outbox_t *ob)
{
    if (ob->count < WINDOW && !ob->paused) {
        load(ob, 0);
        schedule(ob);
    }
}

static void on_rescan(uv_timer_t *t) { net_outbox_rescan(t->data); }

/* ---- answers from the adapter ---- */

static uint64_t backoff_ms(const outbox_policy_t *p, int attempts, long retry_after)
{
    double delay = p->retry_delay;
    for (int i = 1; i < attempts && delay < p->retry_delay_max; i++)
        delay *= 2;
    if (delay > p->retry_delay_max)
        delay = p->retry_delay_max;
    /* Jitter in [delay/2, delay]: retries from many senders spread out. */
    delay = delay / 2 + (delay / 2) * ((double)rand() / RAND_MAX);
    if (retry_after >= 0 && (double)retry_after > delay)
        delay = (double)retry_after; /* the far end said when: not sooner */
    return (uint64_t)(delay * 1000);
}

static entry_t *answered(net_outbox_t *ob, int64_t id)
{
    entry_t *e = find(ob, id);
    if (e && e->state == E_FLIGHT) {
        ob->in_flight--;
        schedule(ob);
        return e;
    }
    return NULL;
}

void net_outbox_done(net_outbox_t *ob, int64_t id)
{
    entry_t *e = answered(ob, id);
    ob->stats.delivered++;
    store_msg_update(ob->store, id, STORE_DONE, e ? e->msg.attempts : 0, 0, NULL);
    if (e)
        remove_entry(ob, e);
}

void net_outbox_fail(net_outbox_t *ob, int64_t id, const char *error)
{
    entry_t *e = answered(ob, id);
    ob->stats.failed++;
    store_msg_update(ob->store, id, STORE_DEAD, e ? e->msg.attempts : 0, 0, error);
    if (e)
        remove_entry(ob, e);
}

void net_outbox_retry(net_outbox_t *ob, int64_t id, const char *error, long retry_after)
{
    entry_t *e = answered(ob, id);
    if (!e)
        return; /* not ours any more (shutdown): it stays pending in the store */
    int64_t now = store_now_ms();
    double age = (double)(now - e->msg.created_ms) / 1000;
    char reason[512];
    if (e->msg.attempts >= ob->policy.max_attempts || age >= ob->policy.max_age) {
        if (e->msg.attempts >= ob->policy.max_attempts)
            snprintf(reason, sizeof reason, "gave up after %d attempts: %s", e->msg.attempts,
                     error);
        else
            snprintf(reason, sizeof reason, "gave up after %.0f s (max_age): %s", age, error);
        store_msg_update(ob->store, id, STORE_DEAD, e->msg.attempts, 0, reason);
        ob->stats.dead++;
        unlink_entry(ob, e);
        ob->h.dead(ob->arg, &e->msg, reason);
        entry_free(e);
        return;
    }
    uint64_t delay = backoff_ms(&ob->policy, e->msg.attempts, retry_after);
    ob->stats.retried++;
    e->state = E_WAIT;
    e->next_ms = now + (int64_t)delay;
    store_msg_update(ob->store, id, STORE_PENDING, e->msg.attempts, e->next_ms, error);
    ferry_log_info(ob->component, "message %lld: %s; attempt %d in %.1f s", (long long)id, error,
                   e->msg.attempts + 1, (double)delay / 1000);
}

/* ---- lifetime ---- */

static void init_handle(net_outbox_t *ob, uv_handle_t *h)
{
    h->data = ob;
    ob->handles++;
}

net_outbox_t *net_outbox_new(uv_loop_t *loop, store_t *store, const char *component,
                             const outbox_policy_t *policy)
{
    net_outbox_t *ob = calloc(1, sizeof *ob);
    ob->loop = loop;
    ob->store = store;
    ob->component = strdup(component);
    ob->policy = *policy;
    uv_idle_init(loop, &ob->pump);
    init_handle(ob, (uv_handle_t *)&ob->pump);
    uv_timer_init(loop, &ob->wake);
    init_handle(ob, (uv_handle_t *)&ob->wake);
    uv_timer_init(loop, &ob->rescan);
    init_handle(ob, (uv_handle_t *)&ob->rescan);
    return ob;
}

void net_outbox_start(net_outbox_t *ob, const ferry_outbox_handlers_t *h, void *arg)
{
    ob->h = *h;
    ob->arg = arg;
    ob->started = 1;
    load(ob, 0);
    if (ob->count)
        ferry_log_info(ob->component, "resuming %zu pending message(s)%s", ob->count,
                       ob->caught_up ? "" : " (and more in the store)");
    uv_timer_start(&ob->rescan, on_rescan, RESCAN_MS, RESCAN_MS);
    schedule(ob);
}

void net_outbox_set_policy(net_outbox_t *ob, const outbox_policy_t *policy)
{
    ob->policy = *policy;
}

int net_outbox_put(net_outbox_t *ob, const char *conversation, const char *dedup,
                   const char *payload, size_t len, int64_t *id)
{
    int64_t new_id = 0;
    int rc = store_msg_add(ob->store, ob->component, STORE_TO_NETWORK, conversation, dedup,
                           payload, len, &new_id);
    if (rc != 0)
        return rc;
    if (id)
        *id = new_id;
    if (ob->caught_up && ob->count < WINDOW) {
        store_row_t r = {.id = new_id, .conversation = conversation, .payload = payload,
                         .payload_len = len, .created_ms = store_now_ms()};
        r.next_ms = r.created_ms;
        insert(ob, entry_new(&r, r.created_ms));
        ob->loaded_upto = new_id;
    } else {
        ob->caught_up = 0;
    }
    schedule(ob);
    return 0;
}

void net_outbox_pause(net_outbox_t *ob)
{
    ob->paused = 1;
    uv_timer_stop(&ob->wake);
    uv_timer_stop(&ob->rescan);
}

size_t net_outbox_in_flight(const net_outbox_t *ob) { return ob->in_flight; }

void net_outbox_stats(const net_outbox_t *ob, outbox_stats_t *out) { *out = ob->stats; }

static void on_handle_closed(uv_handle_t *h)
{
    net_outbox_t *ob = h->data;
    if (--ob->handles == 0)
        free(ob);
}

void net_outbox_free(net_outbox_t *ob)
{
    while (ob->head)
        remove_entry(ob, ob->head);
    free(ob->component);
    uv_close((uv_handle_t *)&ob->pump, on_handle_closed);
    uv_close((uv_handle_t *)&ob->wake, on_handle_closed);
    uv_close((uv_handle_t *)&ob->rescan, on_handle_closed);
}
