/* store_backend.h: what a store backend (store_sqlite.c, store_pg.c) gives
 * store.c, and what store.c keeps for all of them: the group commit (one
 * transaction per batch of writes), the durability waiters and the commit
 * listeners. A backend's struct begins with a store_t; store.c calls the
 * backend through its ops and frees the struct once the loop handles are
 * closed. */
#ifndef FERRY_STORE_BACKEND_H
#define FERRY_STORE_BACKEND_H

#include "store.h"

typedef struct store_waiter store_waiter_t;
typedef struct store_listener store_listener_t;
typedef struct store_watcher store_watcher_t;

typedef struct store_ops {
    /* Transactions: begin and commit return 0 or -1 (a failed commit is
     * rolled back by the backend: the batch is lost, the waiters hear so). */
    int (*begin)(store_t *s);
    int (*commit)(store_t *s);
    /* Releases what the backend holds; store.c frees the struct. */
    void (*destroy)(store_t *s);
    /* NULL when it cannot fail short of the disk: see ferry__store_healthy(). */
    int (*healthy)(store_t *s, char *why, size_t len);

    int (*msg_add)(store_t *s, const char *component, int direction, const char *conversation,
                   const char *dedup, const char *payload, size_t len, int64_t *id);
    /* Optional (NULL: msg_add): store.h's msg_put. */
    int (*msg_put)(store_t *s, const char *component, int direction, const char *conversation,
                   const char *dedup, const char *payload, size_t len);
    int (*msg_pending)(store_t *s, const char *component, int direction, int64_t after,
                       size_t limit, store_row_cb cb, void *arg);
    /* NULL: one process commits in id order, so the rows past SKIP's
     * highest id are the rest (store.c). */
    int (*msg_pending_but)(store_t *s, const char *component, int direction,
                           const int64_t *skip, size_t n, size_t limit, store_row_cb cb,
                           void *arg);
    int (*msg_update)(store_t *s, int64_t id, int state, int attempts, int64_t next_ms,
                      const char *error);
    int (*msg_done_ids)(store_t *s, const int64_t *ids, size_t n);
    /* Optional: message ID was delivered (store.h's msg_update to
     * STORE_DONE). A backend that has it keeps the mark until it is
     * committed, also while no transaction can begin (server away). */
    int (*msg_mark_done)(store_t *s, int64_t id, int attempts);
    int (*msg_counts)(store_t *s, const char *component, store_counts_t *out);
    int (*msg_list)(store_t *s, store_row_cb cb, void *arg);
    int (*msg_requeue)(store_t *s, int64_t id);
    int (*msg_drop)(store_t *s, int64_t id);
    int (*prune)(store_t *s, int64_t before_ms);
    int (*kv_get)(store_t *s, const char *component, const char *ns, const char *key,
                  char **value);
    int (*kv_put)(store_t *s, const char *component, const char *ns, const char *key,
                  const char *value);
    int (*kv_del)(store_t *s, const char *component, const char *ns, const char *key);
    int (*kv_list)(store_t *s, const char *component, const char *ns,
                   void (*cb)(void *arg, const char *key, const char *value), void *arg);
    int (*history_add)(store_t *s, const char *component, const char *room, int64_t ts_ms,
                       const char *nick, const char *body, int64_t *id);
    int (*history_query)(store_t *s, const char *component, const char *room,
                         const store_history_filter_t *f, store_history_cb cb, void *arg);
    int (*history_prune)(store_t *s, int64_t before_ms);
    /* Several instances (NULL for a backend of one process): see store.h. */
    int (*lease)(store_t *s, const char *component, int direction, const char *conversation);
    void (*lease_release)(store_t *s, const char *component, int direction,
                          const char *conversation);
    void (*relay_answer)(store_t *s, const char *id);
} store_ops_t;

struct store {
    const store_ops_t *ops;
    int in_tx;
    int queued;           /* the open transaction queues messages (added or put back) */
    int offline;          /* no loop: every write commits at once */
    uv_prepare_t commit;  /* commits at the end of an iteration with waiters */
    uv_timer_t delay;     /* commits a batch nobody waits for */
    int commit_open;      /* loop handles not yet closed */
    store_waiter_t *waiters, **waiters_tail;
    store_waiter_t *batch_waiters; /* ferry__store_batch_end(): hurry nothing */
    store_listener_t *listeners;
    store_watcher_t *watchers;    /* ferry__store_watch() */
    char *instance;               /* the owner name in leases */
    double lease;                 /* seconds */
};

/* Sets up the common part of a backend's calloc'd store once it is open
 * (a backend that fails to open frees its store itself): with a LOOP the
 * writes are group-committed, without one (offline) each commits at once. */
void ferry__store_init(store_t *s, const store_ops_t *ops, uv_loop_t *loop);
/* Every write calls this first: it opens the batch's transaction (0), or
 * -1 when that failed. */
int ferry__store_writing(store_t *s);
/* Tells the watchers of an EVENT from another instance. */
void ferry__store_event(store_t *s, int event, const char *text);

#endif
