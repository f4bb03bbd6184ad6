/* store_sqlite.c: the embedded store: one SQLite file in WAL mode with a
 * versioned schema. store.c batches the writes into one transaction (group
 * commit); this file runs them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ferry/alloc.h"
#include "ferry/log.h"
#include "store_backend.h"

#define SCHEMA_VERSION 2

static const char *const migrations[SCHEMA_VERSION] = {
    /* 1: messages both ways, and settings */
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  component TEXT NOT NULL,"
    "  direction INTEGER NOT NULL,"
    "  conversation TEXT NOT NULL,"
    "  dedup TEXT,"
    "  payload BLOB NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  next_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  error TEXT);"
    "CREATE UNIQUE INDEX messages_dedup ON messages(component, direction, dedup)"
    "  WHERE dedup IS NOT NULL;"
    "CREATE INDEX messages_state ON messages(component, direction, state, id);"
    "CREATE TABLE settings ("
    "  component TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY (component, ns, key));",
    /* 2: group chat archives (IRC channel history, MAM) */
    "CREATE TABLE history ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  component TEXT NOT NULL,"
    "  room TEXT NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  nick TEXT NOT NULL,"
    "  body TEXT NOT NULL);"
    "CREATE INDEX history_room ON history(component, room, id);"
    "CREATE INDEX history_time ON history(ts_ms);",
};

enum {
    Q_ADD, Q_PENDING, Q_UPDATE, Q_COUNT, Q_OLDEST, Q_LIST, Q_REQUEUE, Q_DROP,
    Q_PRUNE, Q_KV_GET, Q_KV_PUT, Q_KV_DEL, Q_DEDUP_STATE, Q_HIST_ADD, Q_HIST_PRUNE,
    Q_KV_LIST, Q_DONE_ID, Q_COUNT_ALL
};

static const char *const queries[Q_COUNT_ALL] = {
    [Q_ADD] = "INSERT INTO messages (component, direction, conversation, dedup, payload,"
              " created_ms, next_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)"
              " ON CONFLICT DO NOTHING",
    [Q_PENDING] = "SELECT id, component, direction, conversation, dedup, payload, state, attempts,"
                  " created_ms, next_ms, error FROM messages WHERE component = ?1 AND"
                  " direction = ?2 AND state = 0 AND id > ?3 ORDER BY id LIMIT ?4",
    [Q_UPDATE] = "UPDATE messages SET state = ?2, attempts = ?3, next_ms = ?4, error = ?5,"
                 " updated_ms = ?6 WHERE id = ?1",
    /* direction IN (0, 1) lets both use messages_state instead of a scan of
     * every delivered row. */
    [Q_COUNT] = "SELECT state, count(*) FROM messages WHERE component = ?1 AND direction IN"
                " (0, 1) AND state IN (0, 2) GROUP BY state",
    [Q_OLDEST] = "SELECT min(created_ms) FROM messages WHERE component = ?1 AND direction IN"
                 " (0, 1) AND state = 0",
    [Q_LIST] = "SELECT id, component, direction, conversation, dedup, payload, state, attempts,"
               " created_ms, next_ms, error FROM messages WHERE state IN (0, 2) ORDER BY id",
    [Q_REQUEUE] = "UPDATE messages SET state = 0, attempts = 0, next_ms = ?2, error = NULL,"
                  " updated_ms = ?2 WHERE id = ?1",
    [Q_DROP] = "DELETE FROM messages WHERE id = ?1",
    [Q_PRUNE] = "DELETE FROM messages WHERE state IN (1, 2) AND updated_ms < ?1",
    [Q_KV_GET] = "SELECT value FROM settings WHERE component = ?1 AND ns = ?2 AND key = ?3",
    [Q_KV_PUT] = "INSERT INTO settings (component, ns, key, value) VALUES (?1, ?2, ?3, ?4)"
                 " ON CONFLICT (component, ns, key) DO UPDATE SET value = excluded.value",
    [Q_KV_DEL] = "DELETE FROM settings WHERE component = ?1 AND ns = ?2 AND key = ?3",
    [Q_DEDUP_STATE] = "SELECT state FROM messages WHERE component = ?1 AND direction = ?2 AND"
                      " dedup = ?3",
    [Q_HIST_ADD] = "INSERT INTO history (component, room, ts_ms, nick, body)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_HIST_PRUNE] = "DELETE FROM history WHERE ts_ms < ?1",
    [Q_KV_LIST] = "SELECT key, value FROM settings WHERE component = ?1 AND ns = ?2 ORDER BY key",
    [Q_DONE_ID] = "UPDATE messages SET state = 1, updated_ms = ?2 WHERE id = ?1 AND state = 0",
};

typedef struct sqlite_store {
    store_t base; /* first: a store_t * is a sqlite_store_t * */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *q[Q_COUNT_ALL];
    int lock_fd; /* flock()ed by the one running ferry; -1 offline */
} sqlite_store_t;

#define SQ(s) ((sqlite_store_t *)(s))

static void log_db_error(sqlite_store_t *s, const char *what)
{
    ferry_log_error("store", "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(sqlite_store_t *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ferry_log_error("store", "%s: %s", s->path, msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* ---- transactions (store.c decides when) ---- */

static int sq_begin(store_t *base)
{
    sqlite_store_t *s = SQ(base);
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        log_db_error(s, "begin");
        return -1;
    }
    return 0;
}

static int sq_commit(store_t *base)
{
    sqlite_store_t *s = SQ(base);
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    log_db_error(s, "commit failed; the batch is lost");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* A statement ready to run (store.c has opened the transaction for a
 * write). */
static sqlite3_stmt *stmt(sqlite_store_t *s, int q)
{
    sqlite3_reset(s->q[q]);
    sqlite3_clear_bindings(s->q[q]);
    return s->q[q];
}

/* ---- opening ---- */

/* The schema version, checked before anything is written: a store from a
 * newer ferry is left exactly as it was. -1 after saying why. */
static int schema_version(sqlite_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) {
        snprintf(err, errlen, "%s: not a usable store: %s", s->path, sqlite3_errmsg(s->db));
        return -1;
    }
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s: written by a newer ferry (schema version %d; this ferry knows up to %d)",
                 s->path, version, SCHEMA_VERSION);
        return -1;
    }
    return version;
}

static int migrate(sqlite_store_t *s, int version, char *err, size_t errlen)
{
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (exec(s, "BEGIN") || exec(s, migrations[v]) || exec(s, sql) || exec(s, "COMMIT")) {
            snprintf(err, errlen, "%s: migration to schema version %d failed: %s", s->path, v + 1,
                     sqlite3_errmsg(s->db));
            return -1;
        }
        if (version > 0) /* an existing store, not a new one */
            ferry_log_info("store", "%s: migrated to schema version %d", s->path, v + 1);
    }
    return 0;
}

static void sq_destroy(store_t *base)
{
    sqlite_store_t *s = SQ(base);
    for (int i = 0; i < Q_COUNT_ALL; i++)
        sqlite3_finalize(s->q[i]);
    if (s->db)
        sqlite3_close(s->db);
    free(s->path);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
}

static const store_ops_t sqlite_ops;

/* Opens PATH into S (calloc'd): 0, or -1 with err set. */
static int open_db(sqlite_store_t *s, const char *path, char *err, size_t errlen)
{
    s->path = ferry_strdup(path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open the store: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -1;
    }
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        snprintf(err, errlen, "%s: the store is not writable", path);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 5000);
    int version = schema_version(s, err, errlen);
    if (version < 0)
        return -1;
    /* WAL + synchronous=NORMAL: a commit survives the process being killed
     * (the WAL is written before COMMIT returns); only a power cut may lose
     * the last transactions, never corrupt the file. */
    char *msg = NULL;
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                            " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                            " PRAGMA cache_size=-4096;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: not a usable store: %s", path, msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    if (migrate(s, version, err, errlen) != 0)
        return -1;
    for (int i = 0; i < Q_COUNT_ALL; i++) {
        if (sqlite3_prepare_v2(s->db, queries[i], -1, &s->q[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
            return -1;
        }
    }
    return 0;
}

/* One running ferry per SQLite file: two would interleave their outboxes and
 * send each message twice, out of order. An flock() on the file itself is
 * independent of SQLite's own fcntl() locks and goes with the process, even
 * on SIGKILL. `ferry queue` (offline) does not take it: it is meant to run
 * beside the gateway. Returns the descriptor, -1 with err set when another
 * process holds it, or -2 when the file cannot be opened (SQLite then says
 * why). */
static int lock_store(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -2;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    int e = errno;
    close(fd);
    if (e != EWOULDBLOCK)
        return -2;
    snprintf(err, errlen,
             "%s: the store is in use by another running ferry; one store serves one process "
             "(give each instance its own storage.path)",
             path);
    return -1;
}

/* LOOP NULL: offline. LOCK_FD: the flock()ed file, or -1. */
static store_t *open_store(uv_loop_t *loop, const char *path, int lock_fd, char *err,
                           size_t errlen)
{
    sqlite_store_t *s = ferry_calloc(1, sizeof *s);
    s->lock_fd = lock_fd;
    if (open_db(s, path, err, errlen) != 0) {
        sq_destroy(&s->base);
        free(s);
        return NULL;
    }
    ferry__store_init(&s->base, &sqlite_ops, loop);
    return &s->base;
}

store_t *ferry__store_open(uv_loop_t *loop, const char *path, char *err, size_t errlen)
{
    int fd = lock_store(path, err, errlen);
    if (fd == -1)
        return NULL;
    return open_store(loop, path, fd, err, errlen);
}

store_t *ferry__store_open_offline(const char *path, char *err, size_t errlen)
{
    return open_store(NULL, path, -1, err, errlen);
}

/* ---- messages ---- */

static int step_done(sqlite_store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        log_db_error(s, what);
        return -1;
    }
    return 0;
}

/* The state of the message already stored under DEDUP. */
static int dedup_state(sqlite_store_t *s, const char *component, int direction, const char *dedup)
{
    sqlite3_stmt *st = stmt(s, Q_DEDUP_STATE);
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, direction);
    sqlite3_bind_text(st, 3, dedup, -1, SQLITE_STATIC);
    int state = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : STORE_PENDING;
    sqlite3_reset(st);
    return state;
}

static int sq_msg_add(store_t *base, const char *component, int direction, const char *conversation,
                  const char *dedup, const char *payload, size_t len, int64_t *id)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_ADD);
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, direction);
    sqlite3_bind_text(st, 3, conversation, -1, SQLITE_STATIC);
    if (dedup)
        sqlite3_bind_text(st, 4, dedup, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, payload, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, ferry__store_now_ms());
    if (step_done(s, st, "adding a message") != 0)
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return 1 + dedup_state(s, component, direction, dedup);
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static void read_row(sqlite3_stmt *st, store_row_t *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->component = (const char *)sqlite3_column_text(st, 1);
    r->direction = sqlite3_column_int(st, 2);
    r->conversation = (const char *)sqlite3_column_text(st, 3);
    r->dedup = (const char *)sqlite3_column_text(st, 4);
    r->payload = sqlite3_column_blob(st, 5);
    r->payload_len = (size_t)sqlite3_column_bytes(st, 5);
    if (!r->payload)
        r->payload = "";
    r->state = sqlite3_column_int(st, 6);
    r->attempts = sqlite3_column_int(st, 7);
    r->created_ms = sqlite3_column_int64(st, 8);
    r->next_ms = sqlite3_column_int64(st, 9);
    r->error = (const char *)sqlite3_column_text(st, 10);
}

static int each_row(sqlite_store_t *s, sqlite3_stmt *st, store_row_cb cb, void *arg)
{
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_row_t r;
        read_row(st, &r);
        cb(arg, &r);
        n++;
    }
    if (rc != SQLITE_DONE) {
        log_db_error(s, "reading messages");
        return -1;
    }
    sqlite3_reset(st);
    return n;
}

static int sq_msg_pending(store_t *base, const char *component, int direction, int64_t after,
                      size_t limit, store_row_cb cb, void *arg)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_PENDING);
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, direction);
    sqlite3_bind_int64(st, 3, after);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
    return each_row(s, st, cb, arg);
}

static int sq_msg_update(store_t *base, int64_t id, int state, int attempts, int64_t next_ms,
                     const char *error)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_UPDATE);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, state);
    sqlite3_bind_int(st, 3, attempts);
    sqlite3_bind_int64(st, 4, next_ms);
    if (error)
        sqlite3_bind_text(st, 5, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, ferry__store_now_ms());
    return step_done(s, st, "updating a message");
}

static int sq_msg_done_ids(store_t *base, const int64_t *ids, size_t n)
{
    sqlite_store_t *s = SQ(base);
    int64_t now = ferry__store_now_ms();
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = stmt(s, Q_DONE_ID);
        sqlite3_bind_int64(st, 1, ids[i]);
        sqlite3_bind_int64(st, 2, now);
        if (step_done(s, st, "marking messages done") != 0)
            return -1;
    }
    return 0;
}

static int sq_msg_counts(store_t *base, const char *component, store_counts_t *out)
{
    sqlite_store_t *s = SQ(base);
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = stmt(s, Q_COUNT);
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_int(st, 0) == STORE_PENDING)
            out->pending = sqlite3_column_int64(st, 1);
        else
            out->dead = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    st = stmt(s, Q_OLDEST);
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        out->oldest_pending_ms = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

static int sq_msg_list(store_t *base, store_row_cb cb, void *arg)
{
    sqlite_store_t *s = SQ(base);
    return each_row(s, stmt(s, Q_LIST), cb, arg);
}

static int change_one(sqlite_store_t *s, int q, int64_t id, const char *what)
{
    sqlite3_stmt *st = stmt(s, q);
    sqlite3_bind_int64(st, 1, id);
    if (q == Q_REQUEUE)
        sqlite3_bind_int64(st, 2, ferry__store_now_ms());
    if (step_done(s, st, what) != 0)
        return -1;
    return sqlite3_changes(s->db) ? 0 : 1;
}

static int sq_msg_requeue(store_t *base, int64_t id)
{
    return change_one(SQ(base), Q_REQUEUE, id, "requeue");
}
static int sq_msg_drop(store_t *base, int64_t id)
{
    return change_one(SQ(base), Q_DROP, id, "drop");
}

static int sq_prune(store_t *base, int64_t before_ms)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_PRUNE);
    sqlite3_bind_int64(st, 1, before_ms);
    if (step_done(s, st, "pruning") != 0)
        return -1;
    return sqlite3_changes(s->db);
}

/* ---- settings ---- */

static void bind_key(sqlite3_stmt *st, const char *component, const char *ns, const char *key)
{
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
}

static int sq_kv_get(store_t *base, const char *component, const char *ns, const char *key, char **value)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_KV_GET);
    bind_key(st, component, ns, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *value = ferry_strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return 1;
    log_db_error(s, "reading a setting");
    return -1;
}

static int sq_kv_list(store_t *base, const char *component, const char *ns,
                  void (*cb)(void *arg, const char *key, const char *value), void *arg)
{
    sqlite_store_t *s = SQ(base);
    /* Prepared per call: CB may read other settings meanwhile. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, queries[Q_KV_LIST], -1, &st, NULL) != SQLITE_OK) {
        log_db_error(s, "listing settings");
        return -1;
    }
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
        n++;
    }
    if (rc != SQLITE_DONE) {
        log_db_error(s, "listing settings");
        n = -1;
    }
    sqlite3_finalize(st);
    return n;
}

static int sq_kv_put(store_t *base, const char *component, const char *ns, const char *key,
                 const char *value)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_KV_PUT);
    bind_key(st, component, ns, key);
    sqlite3_bind_text(st, 4, value, -1, SQLITE_STATIC);
    return step_done(s, st, "writing a setting");
}

static int sq_kv_del(store_t *base, const char *component, const char *ns, const char *key)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_KV_DEL);
    bind_key(st, component, ns, key);
    return step_done(s, st, "deleting a setting");
}

/* ---- group chat history ---- */

static int sq_history_add(store_t *base, const char *component, const char *room, int64_t ts_ms,
                      const char *nick, const char *body, int64_t *id)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_HIST_ADD);
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ts_ms);
    sqlite3_bind_text(st, 4, nick, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, body, -1, SQLITE_STATIC);
    if (step_done(s, st, "archiving a message") != 0)
        return -1;
    if (id)
        *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int sq_history_query(store_t *base, const char *component, const char *room,
                        const store_history_filter_t *f, store_history_cb cb, void *arg)
{
    sqlite_store_t *s = SQ(base);
    /* Built per query: the filters vary, and queries are rare next to
     * writes. Newest first when paging backwards (before), then the
     * callback order is restored by the caller. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT id, ts_ms, nick, body FROM history WHERE component = ?1 AND room = ?2"
             "%s%s%s%s ORDER BY id %s LIMIT ?7",
             f->after_id ? " AND id > ?3" : "", f->before_id ? " AND id < ?4" : "",
             f->start_ms ? " AND ts_ms >= ?5" : "", f->end_ms ? " AND ts_ms <= ?6" : "",
             f->newest_first ? "DESC" : "ASC");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_db_error(s, "querying history");
        return -1;
    }
    sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, f->after_id);
    sqlite3_bind_int64(st, 4, f->before_id);
    sqlite3_bind_int64(st, 5, f->start_ms);
    sqlite3_bind_int64(st, 6, f->end_ms);
    sqlite3_bind_int64(st, 7, f->limit);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cb(arg, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
           (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
        n++;
    }
    if (rc != SQLITE_DONE) {
        log_db_error(s, "reading history");
        n = -1;
    }
    sqlite3_finalize(st);
    return n;
}

static int sq_history_prune(store_t *base, int64_t before_ms)
{
    sqlite_store_t *s = SQ(base);
    sqlite3_stmt *st = stmt(s, Q_HIST_PRUNE);
    sqlite3_bind_int64(st, 1, before_ms);
    if (step_done(s, st, "pruning history") != 0)
        return -1;
    return sqlite3_changes(s->db);
}

static const store_ops_t sqlite_ops = {
    .begin = sq_begin,
    .commit = sq_commit,
    .destroy = sq_destroy,
    .msg_add = sq_msg_add,
    .msg_pending = sq_msg_pending,
    .msg_update = sq_msg_update,
    .msg_done_ids = sq_msg_done_ids,
    .msg_counts = sq_msg_counts,
    .msg_list = sq_msg_list,
    .msg_requeue = sq_msg_requeue,
    .msg_drop = sq_msg_drop,
    .prune = sq_prune,
    .kv_get = sq_kv_get,
    .kv_put = sq_kv_put,
    .kv_del = sq_kv_del,
    .kv_list = sq_kv_list,
    .history_add = sq_history_add,
    .history_query = sq_history_query,
    .history_prune = sq_history_prune,
};
