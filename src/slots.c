/* slots.c: a component's slot locks (slots.h) on PostgreSQL session
 * advisory locks, waited for on the loop.
 *
 * Why locks in PostgreSQL: the store is already shared, and a session lock
 * dies with its session. When the holder is killed, PostgreSQL ends its
 * session at once and hands the lock to the next waiter, so a standby
 * takes over within milliseconds plus the XMPP handshake, with no polling
 * and no timeout to tune.
 *
 * How: an instance opens one connection per slot and tries each lock
 * (pg_try_advisory_lock(key, k)); a slot held elsewhere is then waited for
 * with `SELECT pg_advisory_lock(key, k)` (PQsendQuery, the socket watched
 * with uv_poll). An instance is a standby once every slot is known to be
 * held elsewhere. The first lock granted wins: that connection is kept
 * (it holds the lock for as long as it lives) and the others are closed,
 * which gives up their waits or any second slot they got at the same time.
 * The held connection is watched for its end: a lost connection means the
 * slot may already be someone else's, so the link is cut at once and the
 * wait starts again after a backoff. Nothing here runs on the store's
 * connection: a lock wait never holds up a statement. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ferry/alloc.h"
#include "ferry/backoff.h"
#include "ferry/log.h"
#include "slots.h"

typedef struct slot_conn {
    ferry__slots_t *owner;
    PGconn *pg;
    uv_poll_t *watch; /* heap: it is freed from the loop after uv_close() */
    uv_os_sock_t fd;
    int slot;
    enum { CONNECTING, TRYING, WAITING, HOLDING } phase;
    int free_now; /* TRYING: the try got the lock */
} slot_conn_t;

struct ferry__slots {
    uv_loop_t *loop;
    char *url, *domain, *scope;
    int n, key;
    slot_conn_t **conns; /* one per slot while waiting; the held one after */
    int held;            /* -1: none */
    unsigned failures;   /* since the last slot held: the backoff */
    uv_timer_t retry;
    ferry__slots_handlers_t h;
    void *arg;
    char last_error[256];
};

/* The first key of DOMAIN's locks (the second is the slot's number):
 * FNV-1a, which every ferry computes alike. */
static int slots_key(const char *domain)
{
    uint32_t h = 2166136261u;
    for (const char *p = "ferry slots "; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = domain; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return (int)(int32_t)h;
}

/* ---- one connection ---- */

static void on_watch_closed(uv_handle_t *h) { free(h); }

static void conn_close(slot_conn_t *c)
{
    if (c->watch)
        uv_close((uv_handle_t *)c->watch, on_watch_closed);
    PQfinish(c->pg); /* ends the session: its lock or its wait with it */
    free(c);
}

static void close_all(ferry__slots_t *s, const slot_conn_t *keep)
{
    for (int k = 0; k < s->n; k++)
        if (s->conns[k] && s->conns[k] != keep) {
            conn_close(s->conns[k]);
            s->conns[k] = NULL;
        }
}

static void on_ready(uv_poll_t *w, int status, int events);

static void watch(slot_conn_t *c, int events)
{
    uv_os_sock_t fd = PQsocket(c->pg);
    if (c->watch && c->fd != fd) { /* libpq moved on to the next address */
        uv_close((uv_handle_t *)c->watch, on_watch_closed);
        c->watch = NULL;
    }
    if (!c->watch) {
        c->watch = ferry_malloc(sizeof *c->watch);
        uv_poll_init_socket(c->owner->loop, c->watch, fd);
        c->watch->data = c;
        c->fd = fd;
    }
    uv_poll_start(c->watch, events, on_ready);
}

/* Keepalives: a lock connection is idle for hours, and a PostgreSQL host
 * that vanishes without a reset must still be noticed (in about 11 s). */
static const char *const conn_keys[] = {
    "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "application_name", "dbname", NULL};

static slot_conn_t *conn_open(ferry__slots_t *s, int slot)
{
    const char *const values[] = {"10", "1", "5", "2", "3", "ferry-slots", s->url, NULL};
    PGconn *pg = PQconnectStartParams(conn_keys, values, 1);
    if (!pg || PQstatus(pg) == CONNECTION_BAD) {
        snprintf(s->last_error, sizeof s->last_error, "%s",
                 pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        return NULL;
    }
    slot_conn_t *c = ferry_calloc(1, sizeof *c);
    c->owner = s;
    c->pg = pg;
    c->slot = slot;
    watch(c, UV_WRITABLE);
    return c;
}

/* ---- the wait ---- */

static void open_all(ferry__slots_t *s);

static void on_retry(uv_timer_t *t) { open_all(t->data); }

/* Every connection goes; the wait starts again after a backoff. */
static void fail(ferry__slots_t *s, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%.*s", (int)strcspn(why, "\n"), why);
    int had = s->held;
    close_all(s, NULL);
    s->held = -1;
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    uint64_t delay = ferry_backoff_ms(s->failures, 500, 10000);
    if (s->failures < 16)
        s->failures++;
    if (had >= 0)
        ferry_log_error(s->scope, "lost slot %d of %s (its PostgreSQL connection: %s); "
                        "waiting for a slot again in %.1f s",
                        had, s->domain, msg, (double)delay / 1000);
    else
        ferry_log_warn(s->scope, "cannot wait for a slot of %s: %s; retrying in %.1f s",
                       s->domain, msg, (double)delay / 1000);
    uv_timer_start(&s->retry, on_retry, delay, 0);
    if (had >= 0)
        s->h.lost(s->arg, "slot lock lost");
}

static void open_all(ferry__slots_t *s)
{
    for (int k = 0; k < s->n; k++) {
        s->conns[k] = conn_open(s, k);
        if (!s->conns[k]) {
            fail(s, s->last_error);
            return;
        }
    }
}

static void got_slot(ferry__slots_t *s, slot_conn_t *c)
{
    if (s->held >= 0) { /* a second slot freed at the same moment: give it up */
        s->conns[c->slot] = NULL;
        conn_close(c);
        return;
    }
    s->held = c->slot;
    c->phase = HOLDING;
    s->failures = 0;
    s->last_error[0] = 0;
    close_all(s, c);
    watch(c, UV_READABLE); /* for its end only */
    ferry_log_info(s->scope, "holding slot %d of %d for %s: linking", c->slot, s->n, s->domain);
    s->h.acquired(s->arg, c->slot);
}

/* Every slot known to be held elsewhere: a standby. */
static int all_waiting(const ferry__slots_t *s)
{
    for (int k = 0; k < s->n; k++)
        if (!s->conns[k] || s->conns[k]->phase != WAITING)
            return 0;
    return 1;
}

static void send_sql(slot_conn_t *c, const char *sql)
{
    if (!PQsendQuery(c->pg, sql)) {
        fail(c->owner, PQerrorMessage(c->pg));
        return;
    }
    int more = PQflush(c->pg);
    if (more < 0)
        fail(c->owner, PQerrorMessage(c->pg));
    else
        watch(c, more ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* The try came back "held elsewhere": wait for that slot. */
static void send_wait(slot_conn_t *c)
{
    ferry__slots_t *s = c->owner;
    char sql[80];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d, %d)", s->key, c->slot);
    c->phase = WAITING;
    send_sql(c, sql);
    if (s->held < 0 && all_waiting(s)) {
        ferry_log_info(s->scope, "standby: the %d slot(s) of %s are held elsewhere", s->n,
                       s->domain);
        s->h.standby(s->arg);
    }
}

/* Every statement of the query sent: the SETs, then the try (one row, t
 * or f) or the wait (one row, once the lock is granted). */
static void read_results(slot_conn_t *c)
{
    ferry__slots_t *s = c->owner;
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        fail(s, PQerrorMessage(c->pg));
        return;
    }
    int answered = 0;
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            break;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK) {
            answered = 1;
            c->free_now = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        } else if (st != PGRES_COMMAND_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
            PQclear(r);
            fail(s, msg);
            return;
        }
        PQclear(r);
    }
    if (!answered || PQisBusy(c->pg))
        return;
    if (c->phase == WAITING || (c->phase == TRYING && c->free_now))
        got_slot(s, c);
    else if (c->phase == TRYING)
        send_wait(c);
}

/* Connected: the session may not time out its wait or its idleness (the
 * database's defaults might); the server probes the connection as we do,
 * so that the lock of a host that vanished without a reset is freed in
 * about 11 s rather than after the system's 2 hours; then the try. */
static void send_try(slot_conn_t *c)
{
    ferry__slots_t *s = c->owner;
    char sql[400];
    snprintf(sql, sizeof sql,
             "SET statement_timeout = 0; SET lock_timeout = 0; %s"
             "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
             " SET tcp_keepalives_count = 3; SELECT pg_try_advisory_lock(%d, %d)",
             PQserverVersion(c->pg) >= 140000 ? "SET idle_session_timeout = 0; " : "", s->key,
             c->slot);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        fail(s, PQerrorMessage(c->pg));
        return;
    }
    c->phase = TRYING;
    send_sql(c, sql);
}

static void on_ready(uv_poll_t *w, int status, int events)
{
    slot_conn_t *c = w->data;
    ferry__slots_t *s = c->owner;
    if (status < 0) {
        /* A refused connect: libpq may have closed the socket the poll
         * watched (EBADF here); its own message says what happened. */
        const char *why = uv_strerror(status);
        if (c->phase == CONNECTING && PQconnectPoll(c->pg) == PGRES_POLLING_FAILED)
            why = PQerrorMessage(c->pg);
        fail(s, why);
        return;
    }
    if (c->phase == CONNECTING) {
        switch (PQconnectPoll(c->pg)) {
        case PGRES_POLLING_READING: watch(c, UV_READABLE); return;
        case PGRES_POLLING_WRITING: watch(c, UV_WRITABLE); return;
        case PGRES_POLLING_OK: send_try(c); return;
        default: fail(s, PQerrorMessage(c->pg)); return;
        }
    }
    if (events & UV_WRITABLE) {
        int more = PQflush(c->pg);
        if (more < 0) {
            fail(s, PQerrorMessage(c->pg));
            return;
        }
        if (!more)
            watch(c, UV_READABLE);
    }
    if (events & UV_READABLE)
        read_results(c);
}

/* ---- the API ---- */

ferry__slots_t *ferry__slots_start(uv_loop_t *loop, const ferry__slots_options_t *o,
                                   const ferry__slots_handlers_t *h, void *arg)
{
    ferry__slots_t *s = ferry_calloc(1, sizeof *s);
    s->loop = loop;
    s->url = ferry_strdup(o->url);
    s->domain = ferry_strdup(o->domain);
    s->scope = ferry_strdup(o->scope);
    s->n = o->slots;
    s->key = slots_key(o->domain);
    s->conns = ferry_calloc((size_t)s->n, sizeof *s->conns);
    s->held = -1;
    s->h = *h;
    s->arg = arg;
    uv_timer_init(loop, &s->retry);
    s->retry.data = s;
    ferry_log_info(s->scope, "waiting for one of %d slot(s) of %s in PostgreSQL", s->n, s->domain);
    open_all(s);
    return s;
}

int ferry__slots_held(const ferry__slots_t *s) { return s->held; }

const char *ferry__slots_role(const ferry__slots_t *s)
{
    return s->held >= 0       ? "active"
           : all_waiting(s)   ? "standby"
           : s->last_error[0] ? "unreachable"
                              : "starting";
}

void ferry__slots_describe(const ferry__slots_t *s, char *buf, size_t len)
{
    if (s->held >= 0)
        snprintf(buf, len, "active (slot %d of %d)", s->held, s->n);
    else if (all_waiting(s))
        snprintf(buf, len, "standby (%d slot(s) held elsewhere)", s->n);
    else if (s->last_error[0])
        snprintf(buf, len, "no slot: PostgreSQL unreachable (%s)", s->last_error);
    else
        snprintf(buf, len, "starting (asking PostgreSQL for a slot)");
}

static void on_retry_closed(uv_handle_t *h)
{
    ferry__slots_t *s = h->data;
    free(s->conns);
    free(s->url);
    free(s->domain);
    free(s->scope);
    free(s);
}

void ferry__slots_close(ferry__slots_t *s)
{
    close_all(s, NULL);
    uv_close((uv_handle_t *)&s->retry, on_retry_closed);
}
