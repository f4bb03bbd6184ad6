/* store.c: the store interface of store.h over its backends (store_sqlite.c,
 * store_pg.c), and what they share: the group commit. A transaction opens
 * with the first write and commits COMMIT_DELAY_MS later, or at the end of
 * the loop iteration when somebody waits for durability (an HTTP sender
 * waiting for its 202). Under load that is one commit for hundreds of
 * messages instead of one each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "ferry/alloc.h"
#include "store_backend.h"

#define COMMIT_DELAY_MS 5

struct store_waiter {
    struct store_waiter *next;
    void (*cb)(void *arg, int ok);
    void *arg;
};

struct store_listener {
    struct store_listener *next;
    void (*cb)(void *arg);
    void *arg;
};

struct store_watcher {
    struct store_watcher *next;
    store_event_cb cb;
    void *arg;
};

#define DEFAULT_LEASE 30.0

int64_t ferry__store_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- transactions ---- */

static void answer(store_waiter_t *w, int ok)
{
    while (w) {
        store_waiter_t *next = w->next;
        w->cb(w->arg, ok);
        free(w);
        w = next;
    }
}

/* Answers the waiters (OK: the commit worked); the listeners hear only of a
 * commit that made something durable. Those who wrote into the batch hear
 * first: a writer taking back what a failed commit lost does so before
 * anybody acts on the end of the batch. */
static void notify(store_t *s, int ok, int committed)
{
    store_waiter_t *b = s->batch_waiters, *w = s->waiters;
    s->batch_waiters = NULL;
    s->waiters = NULL;
    s->waiters_tail = &s->waiters;
    answer(b, ok);
    answer(w, ok);
    for (store_listener_t *l = s->listeners; committed && l; l = l->next)
        l->cb(l->arg);
}

/* Commits the open transaction, if any, and says so. */
static void commit_notify(store_t *s)
{
    int wrote = s->in_tx, ok = 1;
    if (s->in_tx) {
        s->in_tx = 0;
        s->queued = 0;
        ok = s->ops->commit(s) == 0;
    }
    notify(s, ok, wrote && ok);
}

static void on_prepare(uv_prepare_t *h)
{
    store_t *s = h->data;
    if (!s->waiters)
        return;
    uv_timer_stop(&s->delay);
    commit_notify(s);
}

static void on_delay(uv_timer_t *t) { commit_notify(t->data); }

int ferry__store_writing(store_t *s)
{
    if (s->in_tx || s->offline)
        return 0;
    if (s->ops->begin(s) != 0)
        return -1;
    s->in_tx = 1;
    uv_timer_start(&s->delay, on_delay, COMMIT_DELAY_MS, 0);
    return 0;
}

void ferry__store_init(store_t *s, const store_ops_t *ops, uv_loop_t *loop)
{
    s->ops = ops;
    s->waiters_tail = &s->waiters;
    if (!s->instance) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        s->instance = ferry_asprintf("%s-%ld", host, (long)getpid());
    }
    if (s->lease <= 0)
        s->lease = DEFAULT_LEASE;
    if (!loop) {
        s->offline = 1;
        return;
    }
    uv_prepare_init(loop, &s->commit);
    s->commit.data = s;
    uv_timer_init(loop, &s->delay);
    s->delay.data = s;
    s->commit_open = 2; /* handles to close */
    uv_prepare_start(&s->commit, on_prepare);
}

void ferry__store_flush(store_t *s)
{
    if (s->in_tx) {
        uv_timer_stop(&s->delay);
        commit_notify(s);
    }
}

int ferry__store_queued_uncommitted(const store_t *s) { return s->queued; }

int ferry__store_healthy(store_t *s, char *why, size_t len)
{
    return s->ops->healthy ? s->ops->healthy(s, why, len) : 1;
}

void ferry__store_sync(store_t *s, void (*cb)(void *arg, int ok), void *arg)
{
    if (s->offline || !s->commit_open) {
        cb(arg, 1);
        return;
    }
    store_waiter_t *w = ferry_malloc(sizeof *w);
    w->next = NULL;
    w->cb = cb;
    w->arg = arg;
    *s->waiters_tail = w;
    s->waiters_tail = &w->next;
}

void ferry__store_batch_end(store_t *s, void (*cb)(void *arg, int ok), void *arg)
{
    if (!s->in_tx) {
        cb(arg, 1); /* offline: every write committed at once */
        return;
    }
    store_waiter_t *w = ferry_malloc(sizeof *w);
    w->next = s->batch_waiters;
    w->cb = cb;
    w->arg = arg;
    s->batch_waiters = w;
}

void ferry__store_listen(store_t *s, void (*cb)(void *arg), void *arg)
{
    store_listener_t *l = ferry_malloc(sizeof *l);
    l->cb = cb;
    l->arg = arg;
    l->next = s->listeners;
    s->listeners = l;
}

void ferry__store_unlisten(store_t *s, void (*cb)(void *arg), void *arg)
{
    for (store_listener_t **p = &s->listeners; *p; p = &(*p)->next) {
        if ((*p)->cb == cb && (*p)->arg == arg) {
            store_listener_t *l = *p;
            *p = l->next;
            free(l);
            return;
        }
    }
}

/* ---- several instances ---- */

void ferry__store_set_instance(store_t *s, const char *name)
{
    free(s->instance);
    s->instance = ferry_strdup(name);
}

void ferry__store_set_lease(store_t *s, double seconds) { s->lease = seconds; }

double ferry__store_lease_seconds(const store_t *s) { return s->lease; }

int ferry__store_lease(store_t *s, const char *component, int direction, const char *conversation)
{
    return s->ops->lease ? s->ops->lease(s, component, direction, conversation) : 1;
}

void ferry__store_lease_release(store_t *s, const char *component, int direction,
                                const char *conversation)
{
    if (s->ops->lease_release)
        s->ops->lease_release(s, component, direction, conversation);
}

void ferry__store_relay_answer(store_t *s, const char *id)
{
    if (s->ops->relay_answer)
        s->ops->relay_answer(s, id);
}

void ferry__store_watch(store_t *s, store_event_cb cb, void *arg)
{
    store_watcher_t *w = ferry_malloc(sizeof *w);
    w->cb = cb;
    w->arg = arg;
    w->next = s->watchers;
    s->watchers = w;
}

void ferry__store_unwatch(store_t *s, store_event_cb cb, void *arg)
{
    for (store_watcher_t **p = &s->watchers; *p; p = &(*p)->next) {
        if ((*p)->cb == cb && (*p)->arg == arg) {
            store_watcher_t *w = *p;
            *p = w->next;
            free(w);
            return;
        }
    }
}

void ferry__store_event(store_t *s, int event, const char *text)
{
    for (store_watcher_t *w = s->watchers, *next; w; w = next) {
        next = w->next; /* a callback may unwatch itself */
        w->cb(w->arg, event, text);
    }
}

static void free_store(store_t *s)
{
    free(s->instance);
    free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    store_t *s = h->data;
    if (--s->commit_open == 0)
        free_store(s);
}

void ferry__store_close(store_t *s)
{
    if (!s)
        return;
    commit_notify(s);
    s->ops->destroy(s);
    while (s->listeners)
        ferry__store_unlisten(s, s->listeners->cb, s->listeners->arg);
    while (s->watchers)
        ferry__store_unwatch(s, s->watchers->cb, s->watchers->arg);
    if (s->commit_open) {
        uv_close((uv_handle_t *)&s->delay, on_handle_closed);
        uv_close((uv_handle_t *)&s->commit, on_handle_closed);
    } else {
        free_store(s);
    }
}

/* ---- the backend's operations ---- */

int ferry__store_msg_add(store_t *s, const char *component, int direction, const char *conversation,
                  const char *dedup, const char *payload, size_t len, int64_t *id)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    int rc = s->ops->msg_add(s, component, direction, conversation, dedup, payload, len, id);
    if (rc == 0)
        s->queued = 1;
    return rc;
}

int ferry__store_msg_put(store_t *s, const char *component, int direction,
                         const char *conversation, const char *dedup, const char *payload,
                         size_t len)
{
    if (!s->ops->msg_put) {
        int64_t id;
        return ferry__store_msg_add(s, component, direction, conversation, dedup, payload, len,
                                    &id);
    }
    if (ferry__store_writing(s) != 0)
        return -1;
    int rc = s->ops->msg_put(s, component, direction, conversation, dedup, payload, len);
    if (rc == 0)
        s->queued = 1;
    return rc;
}

int ferry__store_msg_pending(store_t *s, const char *component, int direction, int64_t after,
                      size_t limit, store_row_cb cb, void *arg)
{
    return s->ops->msg_pending(s, component, direction, after, limit, cb, arg);
}

int ferry__store_msg_pending_but(store_t *s, const char *component, int direction,
                                 const int64_t *skip, size_t n, size_t limit, store_row_cb cb,
                                 void *arg)
{
    if (s->ops->msg_pending_but)
        return s->ops->msg_pending_but(s, component, direction, skip, n, limit, cb, arg);
    int64_t after = 0;
    for (size_t i = 0; i < n; i++)
        if (skip[i] > after)
            after = skip[i];
    return s->ops->msg_pending(s, component, direction, after, limit, cb, arg);
}

int ferry__store_msg_update(store_t *s, int64_t id, int state, int attempts, int64_t next_ms,
                     const char *error)
{
    if (state == STORE_DONE && !error && s->ops->msg_mark_done) {
        /* A delivery cannot be taken back: the mark waits for a batch that
         * can take it (this one, or one after the server is back). */
        (void)ferry__store_writing(s);
        return s->ops->msg_mark_done(s, id, attempts);
    }
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->msg_update(s, id, state, attempts, next_ms, error);
}

int ferry__store_msg_done_ids(store_t *s, const int64_t *ids, size_t n)
{
    if (n == 0)
        return 0;
    /* As for a delivery above: a backend that keeps its marks until a batch
     * takes them (msg_mark_done) gets them even while no batch can open. */
    if (ferry__store_writing(s) != 0 && !s->ops->msg_mark_done)
        return -1;
    return s->ops->msg_done_ids(s, ids, n);
}

int ferry__store_msg_counts(store_t *s, const char *component, store_counts_t *out)
{
    return s->ops->msg_counts(s, component, out);
}

int ferry__store_msg_list(store_t *s, store_row_cb cb, void *arg)
{
    return s->ops->msg_list(s, cb, arg);
}

int ferry__store_msg_requeue(store_t *s, int64_t id)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    int rc = s->ops->msg_requeue(s, id);
    if (rc == 0)
        s->queued = 1;
    return rc;
}

int ferry__store_msg_drop(store_t *s, int64_t id)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->msg_drop(s, id);
}

int ferry__store_prune(store_t *s, int64_t before_ms)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->prune(s, before_ms);
}

int ferry__store_kv_get(store_t *s, const char *component, const char *ns, const char *key, char **value)
{
    return s->ops->kv_get(s, component, ns, key, value);
}

int ferry__store_kv_put(store_t *s, const char *component, const char *ns, const char *key,
                 const char *value)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->kv_put(s, component, ns, key, value);
}

int ferry__store_kv_del(store_t *s, const char *component, const char *ns, const char *key)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->kv_del(s, component, ns, key);
}

int ferry__store_kv_list(store_t *s, const char *component, const char *ns,
                  void (*cb)(void *arg, const char *key, const char *value), void *arg)
{
    return s->ops->kv_list(s, component, ns, cb, arg);
}

int ferry__store_history_add(store_t *s, const char *component, const char *room, int64_t ts_ms,
                      const char *nick, const char *body, int64_t *id)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->history_add(s, component, room, ts_ms, nick, body, id);
}

int ferry__store_history_query(store_t *s, const char *component, const char *room,
                        const store_history_filter_t *f, store_history_cb cb, void *arg)
{
    return s->ops->history_query(s, component, room, f, cb, arg);
}

int ferry__store_history_prune(store_t *s, int64_t before_ms)
{
    if (ferry__store_writing(s) != 0)
        return -1;
    return s->ops->history_prune(s, before_ms);
}
