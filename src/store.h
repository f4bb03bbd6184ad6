/* store.h: the durable store behind the outboxes and per-user settings.
 * Two backends: store_sqlite.c (embedded, the default) and store_pg.c
 * (PostgreSQL); store.c dispatches to the one opened and owns the group
 * commit (store_backend.h).
 *
 * Writes join one transaction (group commit): it opens with the first write
 * and commits a few milliseconds later (store.c's COMMIT_DELAY_MS),
 * or at the end of the loop iteration when somebody waits for durability
 * (ferry__store_sync(), e.g. an HTTP sender before its 202), or at once on
 * ferry__store_flush(). Thousands of messages a second cost one commit per batch,
 * not one each. ferry__store_sync() calls back once what was written so far is
 * committed. */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct store store_t;

enum { STORE_PENDING = 0, STORE_DONE = 1, STORE_DEAD = 2 };
/* Directions of messages; STORE_HISTORY only names leases (who archives a
 * group chat, history.c). */
enum { STORE_TO_NETWORK = 0, STORE_TO_XMPP = 1, STORE_HISTORY = 2 };

typedef struct store_row {
    int64_t id;
    const char *component;
    int direction;
    const char *conversation;
    const char *dedup;
    const char *payload;
    size_t payload_len;
    int state;
    int attempts;
    int64_t created_ms;
    int64_t next_ms;
    const char *error;
} store_row_t;

/* Rows handed to a callback live until it returns. */
typedef void (*store_row_cb)(void *arg, const store_row_t *row);

/* Opens (creating and migrating) the store at PATH. NULL with a message in
 * err: unwritable, corrupt, or written by a newer ferry. */
store_t *ferry__store_open(uv_loop_t *loop, const char *path, char *err, size_t errlen);
/* Commits what is pending and closes. */
void ferry__store_close(store_t *store);
/* Opens without a loop, for the `ferry queue` command: writes commit at
 * once. */
store_t *ferry__store_open_offline(const char *path, char *err, size_t errlen);
/* The same in a PostgreSQL database (URL: a libpq URI or conninfo string).
 * NULL with a message in err: unreachable, credentials refused, or a
 * schema from a newer ferry. The message never shows the password. */
store_t *ferry__store_open_pg(uv_loop_t *loop, const char *url, char *err, size_t errlen);
store_t *ferry__store_open_pg_offline(const char *url, char *err, size_t errlen);

int64_t ferry__store_now_ms(void);

/* Adds a pending message. Returns 0 and sets *id; when DEDUP is already
 * known for this component and direction nothing is added and it returns 1
 * + the stored message's state (1 pending, 2 done, 3 dead); -1 on error. */
int ferry__store_msg_add(store_t *s, const char *component, int direction, const char *conversation,
                  const char *dedup, const char *payload, size_t len, int64_t *id);
/* Pending messages with id > AFTER, in id order, at most LIMIT. Returns the
 * number passed to CB, or -1. */
int ferry__store_msg_pending(store_t *s, const char *component, int direction, int64_t after,
                      size_t limit, store_row_cb cb, void *arg);
/* Pending messages in id order but those in SKIP (N of them: written and
 * not yet acknowledged), at most LIMIT. With several instances a row may
 * be committed after rows with higher ids were read: read from the oldest
 * each time, it comes in its place. Returns the number passed to CB, or
 * -1. */
int ferry__store_msg_pending_but(store_t *s, const char *component, int direction,
                                 const int64_t *skip, size_t n, size_t limit, store_row_cb cb,
                                 void *arg);
int ferry__store_msg_update(store_t *s, int64_t id, int state, int attempts, int64_t next_ms,
                     const char *error);
/* Marks the N pending messages IDS as done (with several instances a row
 * with a lower id may be committed after higher ones were read: a range of
 * ids would take it along unsent). */
int ferry__store_msg_done_ids(store_t *s, const int64_t *ids, size_t n);

typedef struct store_counts {
    int64_t pending, dead;
    int64_t oldest_pending_ms; /* created_ms of the oldest pending, 0 if none */
} store_counts_t;
int ferry__store_msg_counts(store_t *s, const char *component, store_counts_t *out);

/* For `ferry queue`: every pending and dead message of every component, in
 * id order. Returns the number passed to CB, or -1. */
int ferry__store_msg_list(store_t *s, store_row_cb cb, void *arg);
/* Makes a message pending again with attempts reset (0, or 1 when no such
 * message). */
int ferry__store_msg_requeue(store_t *s, int64_t id);
/* Removes a message (0, or 1 when no such message). */
int ferry__store_msg_drop(store_t *s, int64_t id);
/* Deletes done and dead messages last touched before BEFORE_MS. Returns how
 * many, or -1. */
int ferry__store_prune(store_t *s, int64_t before_ms);

/* Settings: 0 found (*value malloc'd), 1 absent, -1 error. */
int ferry__store_kv_get(store_t *s, const char *component, const char *ns, const char *key, char **value);
int ferry__store_kv_put(store_t *s, const char *component, const char *ns, const char *key,
                 const char *value);
int ferry__store_kv_del(store_t *s, const char *component, const char *ns, const char *key);
/* Every setting of NS, in key order: the number passed to CB, or -1. */
int ferry__store_kv_list(store_t *s, const char *component, const char *ns,
                  void (*cb)(void *arg, const char *key, const char *value), void *arg);

/* ---- several instances on one database (PostgreSQL) ----
 * Each conversation's messages are delivered by one instance at a time: the
 * one holding its lease, which expires LEASE seconds after it was last
 * claimed or renewed (storage.lease), so that another instance takes over
 * a dead one's conversations. Messages of conversations another instance
 * holds are not loaded (ferry__store_msg_pending()). With SQLite (one
 * process) every lease is granted and these calls do nothing else. */

/* The owner name in leases (default: host name and pid). */
void ferry__store_set_instance(store_t *s, const char *name);
void ferry__store_set_lease(store_t *s, double seconds);
double ferry__store_lease_seconds(const store_t *s);
/* Claims or renews the lease on a conversation: 1 held (for the lease
 * from now), 0 another instance holds it, -1 error. Runs outside the
 * batch's transaction, so that a claim is seen by others at once. */
int ferry__store_lease(store_t *s, const char *component, int direction, const char *conversation);
/* Lets the lease go (others are told, so that one takes it at once). */
void ferry__store_lease_release(store_t *s, const char *component, int direction,
                                const char *conversation);

enum { STORE_EV_ROWS, STORE_EV_ANSWER };
/* CB(arg, STORE_EV_ROWS, NULL) when another instance committed new
 * messages or let a lease go; CB(arg, STORE_EV_ANSWER, id) when another
 * instance got the XMPP server's answer to an iq with that id (ferry's pings
 * go to the server; with several instances its answer may reach any). */
typedef void (*store_event_cb)(void *arg, int event, const char *text);
void ferry__store_watch(store_t *s, store_event_cb cb, void *arg);
void ferry__store_unwatch(store_t *s, store_event_cb cb, void *arg);
/* Passes the server's answer ID on to the other instances. */
void ferry__store_relay_answer(store_t *s, const char *id);

/* 1 while the store can take writes; 0 with the reason in WHY (PostgreSQL
 * unreachable), for /healthz. */
int ferry__store_healthy(store_t *s, char *why, size_t len);

/* Commits what is written so far, now. */
void ferry__store_flush(store_t *s);
/* Whether the open transaction queues messages (added, or put back by a
 * retry): they must be committed before they are sent. Other writes (a
 * message marked delivered, an attempt counted) may wait for the batch: a
 * crash loses at most a mark, and the message goes again. */
int ferry__store_queued_uncommitted(const store_t *s);
/* Group chat archives (one row per message, per room). */
typedef struct store_history_filter {
    int64_t after_id, before_id;   /* 0: no bound */
    int64_t start_ms, end_ms;      /* inclusive; 0: no bound */
    int64_t limit;                 /* at most this many */
    int newest_first;
} store_history_filter_t;

typedef void (*store_history_cb)(void *arg, int64_t id, int64_t ts_ms, const char *nick,
                                 const char *body);

int ferry__store_history_add(store_t *s, const char *component, const char *room, int64_t ts_ms,
                      const char *nick, const char *body, int64_t *id);
/* The number of rows passed to CB (oldest first, or newest first: the
 * newest LIMIT), or -1. */
int ferry__store_history_query(store_t *s, const char *component, const char *room,
                        const store_history_filter_t *f, store_history_cb cb, void *arg);
/* Deletes what was archived before BEFORE_MS; returns how many, or -1. */
int ferry__store_history_prune(store_t *s, int64_t before_ms);

/* CB(arg, ok) once everything written so far is committed (ok = 0 when the
 * commit failed). */
void ferry__store_sync(store_t *s, void (*cb)(void *arg, int ok), void *arg);
/* CB(arg, ok) when the open transaction ends, without hurrying it (as
 * ferry__store_sync() does): ok = 1 committed, ok = 0 rolled back, and
 * every row added in it is gone (PostgreSQL: the connection dropped before
 * or during COMMIT). For a writer that keeps what it added until then, to
 * add it again (outbox_hold.c). At once with ok = 1 outside a transaction. */
void ferry__store_batch_end(store_t *s, void (*cb)(void *arg, int ok), void *arg);
/* CB(arg) after each commit: outboxes send what just became durable. */
void ferry__store_listen(store_t *s, void (*cb)(void *arg), void *arg);
void ferry__store_unlisten(store_t *s, void (*cb)(void *arg), void *arg);

#endif
