/* test_store.c: the store interface (store.h) held to what it promises the
 * outboxes, `ferry queue` and the adapters, against a real store on disk
 * and a real libuv loop. The contract tests take a backend (store_fixture.h)
 * so that the same bodies run against every backend: SQLite today,
 * PostgreSQL once it exists. What only one backend has (SQLite's schema
 * version pragma, its file lock) is tested at the end, per backend. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <uv.h>

#include "log.h"

#include "check.h"
#include "store_fixture.h"

/* ---- one test's store ---- */

typedef struct fx {
    const store_backend_t *b;
    uv_loop_t loop;
    char *where;
    store_t *s;
} fx_t;

static int setup(fx_t *f, const store_backend_t *b)
{
    char err[512] = "";
    f->b = b;
    uv_loop_init(&f->loop);
    f->where = b->fresh();
    f->s = b->open(&f->loop, f->where, err, sizeof err);
    return CHECK(f->s != NULL, "%s: open %s: %s", b->name, f->where, err);
}

/* Closes the store and runs the loop until its handles are gone. */
static void close_store(fx_t *f)
{
    ferry__store_close(f->s);
    f->s = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void reopen(fx_t *f)
{
    char err[512] = "";
    close_store(f);
    f->s = f->b->open(&f->loop, f->where, err, sizeof err);
    CHECK(f->s != NULL, "%s: reopen %s: %s", f->b->name, f->where, err);
}

static void teardown(fx_t *f)
{
    if (f->s)
        close_store(f);
    CHECK_INT(uv_loop_close(&f->loop), 0);
    free(f->where);
}

/* ---- rows, copied out of the callbacks ---- */

#define MAX_ROWS 64

typedef struct got_row {
    int64_t id;
    char component[32], conversation[32], dedup[32], error[256];
    int has_dedup, has_error;
    char payload[64];
    size_t payload_len;
    int direction, state, attempts;
    int64_t created_ms, next_ms;
} got_row_t;

typedef struct rows {
    int n;
    got_row_t r[MAX_ROWS];
} rows_t;

static void collect(void *arg, const store_row_t *row)
{
    rows_t *rs = arg;
    if (rs->n >= MAX_ROWS)
        return;
    got_row_t *g = &rs->r[rs->n++];
    memset(g, 0, sizeof *g);
    g->id = row->id;
    snprintf(g->component, sizeof g->component, "%s", row->component);
    snprintf(g->conversation, sizeof g->conversation, "%s", row->conversation);
    g->has_dedup = row->dedup != NULL;
    snprintf(g->dedup, sizeof g->dedup, "%s", row->dedup ? row->dedup : "");
    g->has_error = row->error != NULL;
    snprintf(g->error, sizeof g->error, "%s", row->error ? row->error : "");
    g->payload_len = row->payload_len;
    memcpy(g->payload, row->payload,
           row->payload_len < sizeof g->payload ? row->payload_len : sizeof g->payload);
    g->direction = row->direction;
    g->state = row->state;
    g->attempts = row->attempts;
    g->created_ms = row->created_ms;
    g->next_ms = row->next_ms;
}

static rows_t *pending(fx_t *f, const char *component, int direction, int64_t after, size_t limit,
                       int *n)
{
    static rows_t rs;
    rs.n = 0;
    *n = ferry__store_msg_pending(f->s, component, direction, after, limit, collect, &rs);
    return &rs;
}

static rows_t *list(store_t *s, int *n)
{
    static rows_t rs;
    rs.n = 0;
    *n = ferry__store_msg_list(s, collect, &rs);
    return &rs;
}

static const got_row_t *find(const rows_t *rs, int64_t id)
{
    for (int i = 0; i < rs->n; i++)
        if (rs->r[i].id == id)
            return &rs->r[i];
    return NULL;
}

static int64_t add(fx_t *f, const char *component, int direction, const char *conversation,
                   const char *dedup, const char *payload)
{
    int64_t id = -1;
    int rc = ferry__store_msg_add(f->s, component, direction, conversation, dedup, payload,
                           strlen(payload), &id);
    CHECK(rc == 0 && id > 0, "store_msg_add(%s, %s) = %d, id %lld", component, payload, rc,
          (long long)id);
    return id;
}

/* The pending and dead messages another process (`ferry queue`) sees now:
 * only what is committed. */
static int committed_rows(fx_t *f)
{
    char err[512] = "";
    store_t *o = f->b->open_offline(f->where, err, sizeof err);
    if (!CHECK(o != NULL, "%s: open offline beside: %s", f->b->name, err))
        return -1;
    int n;
    list(o, &n);
    ferry__store_close(o);
    return n;
}

/* ---- messages ---- */

static void test_add_dedup(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t id1 = add(&f, "sms", STORE_TO_NETWORK, "+1555", "d1", "one");
    int64_t id2 = add(&f, "sms", STORE_TO_NETWORK, "+1555", "d2", "two");
    CHECK(id2 > id1, "ids grow: %lld then %lld", (long long)id1, (long long)id2);

    /* A known dedup key: nothing added, 1 + the first one's state. */
    int64_t id = -7;
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "+1555", "d1", "again", 5, &id),
              1 + STORE_PENDING);
    CHECK_INT(id, -7);
    ferry__store_msg_update(f.s, id1, STORE_DONE, 1, 0, NULL);
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "+1555", "d1", "again", 5, &id),
              1 + STORE_DONE);
    ferry__store_msg_update(f.s, id1, STORE_DEAD, 3, 0, "gone");
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "+1555", "d1", "again", 5, &id),
              1 + STORE_DEAD);

    /* The key is per component and direction; no key never collides. */
    add(&f, "sms", STORE_TO_XMPP, "+1555", "d1", "other way");
    add(&f, "hooks", STORE_TO_NETWORK, "+1555", "d1", "other component");
    add(&f, "sms", STORE_TO_NETWORK, "+1555", NULL, "no key");
    add(&f, "sms", STORE_TO_NETWORK, "+1555", NULL, "no key");
    int n;
    rows_t *rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 100, &n);
    CHECK_INT(n, 3); /* d2 and the two without a key */

    /* Payloads are bytes: a NUL inside survives. */
    const char bin[] = {'a', 0, 'b', 0, 'c'};
    int64_t idb = -1;
    CHECK_INT(ferry__store_msg_add(f.s, "bin", STORE_TO_NETWORK, "c", NULL, bin, sizeof bin, &idb), 0);
    rs = pending(&f, "bin", STORE_TO_NETWORK, 0, 10, &n);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_INT(rs->r[0].payload_len, sizeof bin);
        CHECK(memcmp(rs->r[0].payload, bin, sizeof bin) == 0, "binary payload changed");
    }
    teardown(&f);
}

static void test_pending(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t before = ferry__store_now_ms();
    int64_t a1 = add(&f, "sms", STORE_TO_NETWORK, "A", "k1", "a1");
    int64_t b1 = add(&f, "sms", STORE_TO_NETWORK, "B", NULL, "b1");
    add(&f, "sms", STORE_TO_XMPP, "A", NULL, "other direction");
    add(&f, "hooks", STORE_TO_NETWORK, "A", NULL, "other component");
    int64_t a2 = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "a2");
    int64_t after = ferry__store_now_ms();

    int n;
    rows_t *rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 100, &n);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_INT(rs->r[0].id, a1);
        CHECK_INT(rs->r[1].id, b1);
        CHECK_INT(rs->r[2].id, a2);
        const got_row_t *r = &rs->r[0];
        CHECK_STR(r->component, "sms");
        CHECK_INT(r->direction, STORE_TO_NETWORK);
        CHECK_STR(r->conversation, "A");
        CHECK(r->has_dedup, "dedup key lost");
        CHECK_STR(r->dedup, "k1");
        CHECK(!rs->r[1].has_dedup, "a message without a key has one: %s", rs->r[1].dedup);
        CHECK_INT(r->payload_len, 2);
        CHECK(memcmp(r->payload, "a1", 2) == 0, "payload %.2s", r->payload);
        CHECK_INT(r->state, STORE_PENDING);
        CHECK_INT(r->attempts, 0);
        CHECK(!r->has_error, "a new message has an error: %s", r->error);
        CHECK(r->created_ms >= before && r->created_ms <= after,
              "created_ms %lld outside [%lld, %lld]", (long long)r->created_ms,
              (long long)before, (long long)after);
        CHECK_INT(r->next_ms, r->created_ms); /* may go at once */
    }
    pending(&f, "sms", STORE_TO_XMPP, 0, 100, &n);
    CHECK_INT(n, 1);

    /* after and limit page through in id order. */
    rs = pending(&f, "sms", STORE_TO_NETWORK, a1, 100, &n);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_INT(rs->r[0].id, b1);
        CHECK_INT(rs->r[1].id, a2);
    }
    rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 1, &n);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(rs->r[0].id, a1);
    rs = pending(&f, "sms", STORE_TO_NETWORK, b1, 1, &n);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(rs->r[0].id, a2);
    pending(&f, "sms", STORE_TO_NETWORK, a2, 100, &n);
    CHECK_INT(n, 0);

    /* Only pending ones: done and dead are left out. */
    ferry__store_msg_update(f.s, a1, STORE_DONE, 1, 0, NULL);
    ferry__store_msg_update(f.s, b1, STORE_DEAD, 1, 0, "no");
    rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 100, &n);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(rs->r[0].id, a2);
    teardown(&f);
}

static void test_update(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t id = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "x");
    int64_t later = ferry__store_now_ms() + 60000;
    CHECK_INT(ferry__store_msg_update(f.s, id, STORE_PENDING, 2, later, "HTTP 503"), 0);
    int n;
    rows_t *rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 10, &n);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_INT(rs->r[0].attempts, 2);
        CHECK_INT(rs->r[0].next_ms, later);
        CHECK_STR(rs->r[0].error, "HTTP 503");
        CHECK_INT(rs->r[0].state, STORE_PENDING);
    }
    /* A NULL error clears it. */
    ferry__store_msg_update(f.s, id, STORE_PENDING, 3, later, NULL);
    rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 10, &n);
    if (n == 1)
        CHECK(!rs->r[0].has_error, "error kept: %s", rs->r[0].error);

    ferry__store_msg_update(f.s, id, STORE_DEAD, 4, 0, "gave up");
    pending(&f, "sms", STORE_TO_NETWORK, 0, 10, &n);
    CHECK_INT(n, 0);
    rs = list(f.s, &n);
    const got_row_t *r = find(rs, id);
    if (CHECK(r != NULL, "dead message not listed")) {
        CHECK_INT(r->state, STORE_DEAD);
        CHECK_INT(r->attempts, 4);
        CHECK_STR(r->error, "gave up");
    }
    teardown(&f);
}

/* Exactly the ids given: a row between them stays pending, a dead one
 * stays dead. */
static void test_done_ids(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t x1 = add(&f, "c", STORE_TO_XMPP, "", NULL, "x1");
    int64_t x2 = add(&f, "c", STORE_TO_XMPP, "", NULL, "x2");
    int64_t dead = add(&f, "c", STORE_TO_XMPP, "", NULL, "x3");
    int64_t x4 = add(&f, "c", STORE_TO_XMPP, "", NULL, "x4");
    int64_t net = add(&f, "c", STORE_TO_NETWORK, "", NULL, "n");
    ferry__store_msg_update(f.s, dead, STORE_DEAD, 1, 0, "bad");
    int64_t ids[] = {x1, dead, x4};
    CHECK_INT(ferry__store_msg_done_ids(f.s, ids, 3), 0);
    CHECK_INT(ferry__store_msg_done_ids(f.s, ids, 0), 0);
    int n;
    rows_t *rs = pending(&f, "c", STORE_TO_XMPP, 0, 10, &n);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(rs->r[0].id, x2);
    rs = list(f.s, &n);
    const got_row_t *r = find(rs, dead);
    CHECK(r && r->state == STORE_DEAD, "a dead message was marked done");
    CHECK(find(rs, net) != NULL, "another message was marked done");

    /* Pending but those under way: from the oldest, in id order. */
    int64_t x5 = add(&f, "c", STORE_TO_XMPP, "", NULL, "x5");
    int64_t x6 = add(&f, "c", STORE_TO_XMPP, "", NULL, "x6");
    int64_t under_way[] = {x2, x5};
    rows_t got = {0};
    CHECK_INT(ferry__store_msg_pending_but(f.s, "c", STORE_TO_XMPP, under_way, 2, 10, collect, &got),
              1);
    CHECK(got.n == 1 && got.r[0].id == x6, "pending but those under way: not x6 alone");
    got.n = 0;
    CHECK_INT(ferry__store_msg_pending_but(f.s, "c", STORE_TO_XMPP, NULL, 0, 2, collect, &got), 2);
    CHECK(got.n == 2 && got.r[0].id == x2 && got.r[1].id == x5, "not the two oldest");
    teardown(&f);
}

static void test_counts(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    store_counts_t c;
    memset(&c, 0x55, sizeof c);
    CHECK_INT(ferry__store_msg_counts(f.s, "sms", &c), 0);
    CHECK_INT(c.pending, 0);
    CHECK_INT(c.dead, 0);
    CHECK_INT(c.oldest_pending_ms, 0);

    int64_t first = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "1");
    usleep(20000); /* distinct creation times */
    int64_t second = add(&f, "sms", STORE_TO_XMPP, "A", NULL, "2");
    usleep(20000);
    add(&f, "sms", STORE_TO_NETWORK, "B", NULL, "3");
    int64_t d = add(&f, "sms", STORE_TO_NETWORK, "B", NULL, "4");
    int64_t done = add(&f, "sms", STORE_TO_NETWORK, "B", NULL, "5");
    add(&f, "other", STORE_TO_NETWORK, "B", NULL, "6");
    ferry__store_msg_update(f.s, d, STORE_DEAD, 1, 0, "x");
    ferry__store_msg_update(f.s, done, STORE_DONE, 1, 0, NULL);

    int n;
    rows_t *rs = list(f.s, &n);
    int64_t created_first = find(rs, first) ? find(rs, first)->created_ms : -1;
    int64_t created_second = find(rs, second) ? find(rs, second)->created_ms : -1;

    ferry__store_msg_counts(f.s, "sms", &c);
    CHECK_INT(c.pending, 3); /* both directions */
    CHECK_INT(c.dead, 1);
    CHECK_INT(c.oldest_pending_ms, created_first);

    ferry__store_msg_update(f.s, first, STORE_DONE, 1, 0, NULL);
    ferry__store_msg_counts(f.s, "sms", &c);
    CHECK_INT(c.pending, 2);
    CHECK_INT(c.oldest_pending_ms, created_second);
    CHECK(created_second > created_first, "creation times %lld, %lld",
          (long long)created_first, (long long)created_second);
    teardown(&f);
}

static void test_list_requeue_drop(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t p = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "p");
    int64_t d = add(&f, "hooks", STORE_TO_XMPP, "B", NULL, "d");
    int64_t done = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "done");
    ferry__store_msg_update(f.s, d, STORE_DEAD, 5, 0, "HTTP 400");
    ferry__store_msg_update(f.s, done, STORE_DONE, 1, 0, NULL);

    int n;
    rows_t *rs = list(f.s, &n);
    CHECK_INT(n, 2);
    if (n == 2) { /* every component, pending and dead, id order */
        CHECK_INT(rs->r[0].id, p);
        CHECK_INT(rs->r[1].id, d);
        CHECK_STR(rs->r[1].component, "hooks");
        CHECK_INT(rs->r[1].direction, STORE_TO_XMPP);
        CHECK_STR(rs->r[1].error, "HTTP 400");
    }

    int64_t t0 = ferry__store_now_ms();
    CHECK_INT(ferry__store_msg_requeue(f.s, d), 0);
    rs = pending(&f, "hooks", STORE_TO_XMPP, 0, 10, &n);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_INT(rs->r[0].attempts, 0);
        CHECK(!rs->r[0].has_error, "requeued with error %s", rs->r[0].error);
        CHECK(rs->r[0].next_ms >= t0 && rs->r[0].next_ms <= ferry__store_now_ms(),
              "requeued for %lld, not now", (long long)rs->r[0].next_ms);
    }
    CHECK_INT(ferry__store_msg_requeue(f.s, 999999), 1);

    CHECK_INT(ferry__store_msg_drop(f.s, p), 0);
    CHECK_INT(ferry__store_msg_drop(f.s, p), 1);
    CHECK_INT(ferry__store_msg_drop(f.s, 999999), 1);
    rs = list(f.s, &n);
    CHECK(n == 1 && rs->r[0].id == d, "after drop: %d rows", n);
    teardown(&f);
}

static void test_prune(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t p = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "p");
    int64_t old_done = add(&f, "sms", STORE_TO_NETWORK, "A", "od", "od");
    int64_t old_dead = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "oD");
    ferry__store_msg_update(f.s, old_done, STORE_DONE, 1, 0, NULL);
    ferry__store_msg_update(f.s, old_dead, STORE_DEAD, 1, 0, "x");
    usleep(20000);
    int64_t cut = ferry__store_now_ms();
    usleep(20000);
    int64_t new_dead = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "nD");
    ferry__store_msg_update(f.s, new_dead, STORE_DEAD, 1, 0, "x");

    CHECK_INT(ferry__store_prune(f.s, cut), 2);
    int n;
    rows_t *rs = list(f.s, &n);
    CHECK(find(rs, p) != NULL, "prune dropped a pending message");
    CHECK(find(rs, new_dead) != NULL, "prune dropped a message touched after the cut");
    CHECK(find(rs, old_dead) == NULL, "prune kept an old dead message");
    /* The done one is gone too: its dedup key is free again. */
    int64_t again;
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "A", "od", "od", 2, &again), 0);
    ferry__store_msg_drop(f.s, again);
    store_counts_t c;
    ferry__store_msg_counts(f.s, "sms", &c);
    CHECK_INT(c.pending, 1);
    CHECK_INT(c.dead, 1);
    CHECK_INT(ferry__store_prune(f.s, ferry__store_now_ms() + 1000), 1); /* new_dead; pending stays */
    list(f.s, &n);
    CHECK_INT(n, 1);
    teardown(&f);
}

/* ---- settings ---- */

static void test_kv(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    char *v = (char *)"untouched";
    CHECK_INT(ferry__store_kv_get(f.s, "sms", "reg", "alice@localhost", &v), 1);
    CHECK_STR(v, "untouched");
    CHECK_INT(ferry__store_kv_put(f.s, "sms", "reg", "alice@localhost", "+15550001"), 0);
    CHECK_INT(ferry__store_kv_put(f.s, "sms", "pref", "alice@localhost", "quiet"), 0);
    CHECK_INT(ferry__store_kv_put(f.s, "irc", "reg", "alice@localhost", "nick"), 0);
    v = NULL;
    CHECK_INT(ferry__store_kv_get(f.s, "sms", "reg", "alice@localhost", &v), 0);
    CHECK_STR(v, "+15550001");
    free(v);
    CHECK_INT(ferry__store_kv_put(f.s, "sms", "reg", "alice@localhost", "+15550002"), 0);
    v = NULL;
    ferry__store_kv_get(f.s, "sms", "reg", "alice@localhost", &v);
    CHECK_STR(v, "+15550002");
    free(v);
    v = NULL;
    ferry__store_kv_get(f.s, "sms", "pref", "alice@localhost", &v);
    CHECK_STR(v, "quiet");
    free(v);

    CHECK_INT(ferry__store_kv_del(f.s, "sms", "reg", "alice@localhost"), 0);
    v = NULL;
    CHECK_INT(ferry__store_kv_get(f.s, "sms", "reg", "alice@localhost", &v), 1);
    CHECK_INT(ferry__store_kv_del(f.s, "sms", "reg", "alice@localhost"), 0); /* absent: fine */
    v = NULL;
    CHECK_INT(ferry__store_kv_get(f.s, "irc", "reg", "alice@localhost", &v), 0);
    CHECK_STR(v, "nick");
    free(v);
    teardown(&f);
}

/* ---- group chat history ---- */

typedef struct hist {
    int n;
    int64_t id[32], ts[32];
    char nick[32][16], body[32][32];
} hist_t;

static void on_hist(void *arg, int64_t id, int64_t ts_ms, const char *nick, const char *body)
{
    hist_t *h = arg;
    if (h->n >= 32)
        return;
    h->id[h->n] = id;
    h->ts[h->n] = ts_ms;
    snprintf(h->nick[h->n], sizeof h->nick[0], "%s", nick);
    snprintf(h->body[h->n], sizeof h->body[0], "%s", body);
    h->n++;
}

/* Runs a query; returns the bodies joined with commas ("" for none). */
static const char *hq(fx_t *f, const char *room, int64_t after_id, int64_t before_id,
                      int64_t start_ms, int64_t end_ms, int64_t limit, int newest_first)
{
    static char out[256];
    hist_t h = {0};
    store_history_filter_t filter = {after_id, before_id, start_ms, end_ms, limit, newest_first};
    int n = ferry__store_history_query(f->s, "irc", room, &filter, on_hist, &h);
    CHECK(n == h.n, "store_history_query returned %d for %d rows", n, h.n);
    out[0] = 0;
    for (int i = 0; i < h.n; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", h.body[i]);
    return out;
}

static void test_history(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t id[6];
    const char *bodies[] = {"m0", "m1", "m2", "m3", "m4", "m5"};
    for (int i = 0; i < 6; i++) {
        id[i] = -1;
        CHECK_INT(ferry__store_history_add(f.s, "irc", "#c%irc.localhost", 1000 * (i + 1), "nick",
                                    bodies[i], &id[i]),
                  0);
        CHECK(i == 0 || id[i] > id[i - 1], "history ids do not grow");
    }
    ferry__store_history_add(f.s, "irc", "#other%irc.localhost", 3500, "n", "elsewhere", NULL);
    ferry__store_history_add(f.s, "sms", "#c%irc.localhost", 3500, "n", "other component", NULL);

    const char *room = "#c%irc.localhost";
    hist_t h = {0};
    store_history_filter_t all = {0, 0, 0, 0, 100, 0};
    CHECK_INT(ferry__store_history_query(f.s, "irc", room, &all, on_hist, &h), 6);
    if (h.n == 6) {
        CHECK_INT(h.id[0], id[0]);
        CHECK_INT(h.ts[2], 3000);
        CHECK_STR(h.nick[2], "nick");
    }
    CHECK_STR(hq(&f, room, 0, 0, 0, 0, 100, 0), "m0,m1,m2,m3,m4,m5");
    CHECK_STR(hq(&f, room, 0, 0, 0, 0, 100, 1), "m5,m4,m3,m2,m1,m0");
    CHECK_STR(hq(&f, room, 0, 0, 0, 0, 2, 0), "m0,m1");
    CHECK_STR(hq(&f, room, 0, 0, 0, 0, 2, 1), "m5,m4"); /* the last two */
    CHECK_STR(hq(&f, room, id[1], 0, 0, 0, 100, 0), "m2,m3,m4,m5");
    CHECK_STR(hq(&f, room, 0, id[3], 0, 0, 100, 0), "m0,m1,m2");
    CHECK_STR(hq(&f, room, 0, id[3], 0, 0, 2, 1), "m2,m1"); /* paging backwards */
    CHECK_STR(hq(&f, room, id[0], id[4], 0, 0, 100, 0), "m1,m2,m3");
    CHECK_STR(hq(&f, room, 0, 0, 3000, 0, 100, 0), "m2,m3,m4,m5"); /* start inclusive */
    CHECK_STR(hq(&f, room, 0, 0, 0, 3000, 100, 0), "m0,m1,m2");     /* end inclusive */
    CHECK_STR(hq(&f, room, 0, 0, 2000, 4000, 100, 0), "m1,m2,m3");
    CHECK_STR(hq(&f, room, id[1], id[5], 3000, 5000, 2, 1), "m4,m3"); /* every bound at once */
    CHECK_STR(hq(&f, room, 0, 0, 7000, 0, 100, 0), "");
    CHECK_STR(hq(&f, "#nobody%irc.localhost", 0, 0, 0, 0, 100, 0), "");
    CHECK_STR(hq(&f, "#other%irc.localhost", 0, 0, 0, 0, 100, 0), "elsewhere");

    CHECK_INT(ferry__store_history_prune(f.s, 3000), 2); /* m0, m1 (before 3000) */
    CHECK_STR(hq(&f, room, 0, 0, 0, 0, 100, 0), "m2,m3,m4,m5");
    CHECK_STR(hq(&f, "#other%irc.localhost", 0, 0, 0, 0, 100, 0), "elsewhere");
    teardown(&f);
}

/* ---- commits ---- */

typedef struct commit_watch {
    fx_t *f;
    int synced, ok, listened;
    int committed_at_sync, committed_at_listen;
} commit_watch_t;

static void on_sync(void *arg, int ok)
{
    commit_watch_t *w = arg;
    w->synced++;
    w->ok = ok;
    w->committed_at_sync = committed_rows(w->f);
}

static void on_commit(void *arg)
{
    commit_watch_t *w = arg;
    w->listened++;
    w->committed_at_listen = committed_rows(w->f);
}

static int listened(void *arg) { return ((commit_watch_t *)arg)->listened > 0; }
static int synced(void *arg) { return ((commit_watch_t *)arg)->synced > 0; }

static void test_sync(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    commit_watch_t w = {&f, 0, -1, 0, -1, -1};
    ferry__store_listen(f.s, on_commit, &w);
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "1");
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "2");
    CHECK_INT(committed_rows(&f), 0); /* the batch is open */
    ferry__store_sync(f.s, on_sync, &w);
    CHECK_INT(w.synced, 0); /* not from inside ferry__store_sync */
    uv_run(&f.loop, UV_RUN_NOWAIT); /* one iteration */
    CHECK_INT(w.synced, 1);
    CHECK_INT(w.ok, 1);
    CHECK_INT(w.committed_at_sync, 2);
    CHECK_INT(w.listened, 1); /* one commit for the batch */
    CHECK_INT(w.committed_at_listen, 2);

    /* A later write is not covered by an earlier sync; a new one waits for it. */
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "3");
    ferry__store_sync(f.s, on_sync, &w);
    ferry__store_sync(f.s, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.synced, 3);
    CHECK_INT(w.committed_at_sync, 3);
    CHECK_INT(w.listened, 2);

    /* Nothing written: the answer still comes, at the end of the iteration;
     * there was no commit to tell the listeners about. */
    w.ok = -1;
    ferry__store_sync(f.s, on_sync, &w);
    CHECK_INT(w.synced, 3);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.synced, 4);
    CHECK_INT(w.ok, 1);
    CHECK_INT(w.listened, 2);

    /* The end of a batch, without hurrying it: told once it committed;
     * outside a batch at once. */
    commit_watch_t e = {&f, 0, -1, 0, -1, -1};
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "b");
    ferry__store_batch_end(f.s, on_sync, &e);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(e.synced, 0); /* still open: nobody waits for durability */
    CHECK(run_until(&f.loop, synced, &e, 5000), "no end of the batch within 5 s");
    CHECK_INT(e.ok, 1);
    CHECK_INT(e.committed_at_sync, 4);
    ferry__store_batch_end(f.s, on_sync, &e);
    CHECK_INT(e.synced, 2);

    /* Unlistened: no more calls. */
    int before = w.listened;
    ferry__store_unlisten(f.s, on_commit, &w);
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "4");
    ferry__store_flush(f.s);
    CHECK_INT(committed_rows(&f), 5);
    CHECK_INT(w.listened, before);
    teardown(&f);
}

/* msg_put: added without an answer to wait for; a duplicate, in the batch
 * or of a row committed before, is stored once (SQLite says so at once;
 * PostgreSQL finds an earlier batch's at commit). */
static void test_put(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    commit_watch_t w = {&f, 0, -1, 0, -1, -1};
    CHECK_INT(ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", "p1", "one", 3), 0);
    CHECK_INT(ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", NULL, "two", 3), 0);
    int rc = ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", "p1", "one", 3);
    CHECK(rc == 0 || rc == 1 + STORE_PENDING, "a duplicate in the batch: %d", rc);
    CHECK_INT(committed_rows(&f), 0);
    ferry__store_sync(f.s, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.ok, 1);
    CHECK_INT(w.committed_at_sync, 2);

    /* Again in a later batch, beside a new row: the new one is stored, the
     * duplicate not, and the batch commits. */
    rc = ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", "p1", "one", 3);
    CHECK(rc == 0 || rc == 1 + STORE_PENDING, "a duplicate of a committed row: %d", rc);
    CHECK_INT(ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", "p3", "three", 5), 0);
    ferry__store_sync(f.s, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.synced, 2);
    CHECK_INT(w.ok, 1);
    CHECK_INT(w.committed_at_sync, 3);
    int n;
    pending(&f, "sms", STORE_TO_XMPP, 0, 10, &n);
    CHECK_INT(n, 3);
    /* An add that asks hears of the duplicate. */
    int64_t id = -1;
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_XMPP, "", "p1", "one", 3, &id),
              1 + STORE_PENDING);
    teardown(&f);
}

static void test_group_commit(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    commit_watch_t w = {&f, 0, -1, 0, -1, -1};
    ferry__store_listen(f.s, on_commit, &w);
    /* Many writes in one iteration, nobody waiting: one commit, soon. */
    int64_t t0 = ferry__store_now_ms();
    for (int i = 0; i < 50; i++)
        add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "m");
    ferry__store_kv_put(f.s, "sms", "reg", "k", "v");
    CHECK_INT(committed_rows(&f), 0);
    CHECK(run_until(&f.loop, listened, &w, 5000), "no commit within 5 s without store_sync");
    int64_t took = ferry__store_now_ms() - t0;
    CHECK_INT(w.listened, 1);
    CHECK_INT(w.committed_at_listen, 50);
    /* The delay is a few ms; a loaded machine gets a wide margin. */
    CHECK(took < 2000, "the batch took %lld ms to commit", (long long)took);

    /* ferry__store_flush commits at once. */
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "m");
    ferry__store_flush(f.s);
    CHECK_INT(w.listened, 2);
    CHECK_INT(committed_rows(&f), 51);
    teardown(&f);
}

static void test_queued_uncommitted(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 0);
    int64_t id = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "m");
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 1);
    ferry__store_flush(f.s);
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 0);

    /* Marks and settings do not queue anything. */
    ferry__store_msg_update(f.s, id, STORE_DEAD, 1, 0, "x");
    ferry__store_kv_put(f.s, "sms", "reg", "k", "v");
    ferry__store_history_add(f.s, "irc", "#c", 1, "n", "b", NULL);
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 0);
    /* A dedup hit adds nothing. */
    add(&f, "sms", STORE_TO_NETWORK, "A", "key", "m");
    ferry__store_flush(f.s);
    int64_t dup;
    ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "A", "key", "m", 1, &dup);
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 0);
    /* Put back by a requeue: queued again. */
    ferry__store_msg_requeue(f.s, id);
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 1);
    run_until(&f.loop, fixture_never_, NULL, 50); /* the batch commits by itself */
    CHECK_INT(ferry__store_queued_uncommitted(f.s), 0);
    teardown(&f);
}

static void test_reopen(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    int64_t committed = add(&f, "sms", STORE_TO_NETWORK, "A", "k", "first");
    ferry__store_flush(f.s);
    int64_t unflushed = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "second");
    ferry__store_msg_update(f.s, committed, STORE_PENDING, 2, 1234, "HTTP 503");
    ferry__store_kv_put(f.s, "sms", "reg", "alice", "+1555");
    ferry__store_history_add(f.s, "irc", "#c", 42, "n", "hello", NULL);
    reopen(&f); /* close commits the open batch */
    if (!f.s) {
        teardown(&f);
        return;
    }

    int n;
    rows_t *rs = pending(&f, "sms", STORE_TO_NETWORK, 0, 10, &n);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_INT(rs->r[0].id, committed);
        CHECK_INT(rs->r[0].attempts, 2);
        CHECK_INT(rs->r[0].next_ms, 1234);
        CHECK_STR(rs->r[0].error, "HTTP 503");
        CHECK_INT(rs->r[1].id, unflushed);
        CHECK(rs->r[1].payload_len == 6 && memcmp(rs->r[1].payload, "second", 6) == 0,
              "payload after reopen");
    }
    int64_t dup;
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "A", "k", "x", 1, &dup),
              1 + STORE_PENDING); /* dedup keys survive too */
    int64_t next = add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "third");
    CHECK(next > unflushed, "an id was reused after reopening: %lld", (long long)next);
    char *v = NULL;
    CHECK_INT(ferry__store_kv_get(f.s, "sms", "reg", "alice", &v), 0);
    CHECK_STR(v, "+1555");
    free(v);
    CHECK_STR(hq(&f, "#c", 0, 0, 0, 0, 10, 0), "hello");
    teardown(&f);
}

static void test_offline(const store_backend_t *b)
{
    fx_t f;
    if (!setup(&f, b))
        return;
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "online");
    ferry__store_flush(f.s);
    char err[512] = "";
    store_t *o = b->open_offline(f.where, err, sizeof err);
    if (CHECK(o != NULL, "offline beside an open store: %s", err)) {
        /* Offline writes commit at once: the running store sees them. */
        int64_t id;
        CHECK_INT(ferry__store_msg_add(o, "sms", STORE_TO_NETWORK, "A", NULL, "q", 1, &id), 0);
        int n;
        pending(&f, "sms", STORE_TO_NETWORK, 0, 10, &n);
        CHECK_INT(n, 2);
        commit_watch_t w = {&f, 0, -1, 0, -1, -1};
        ferry__store_sync(o, on_sync, &w);
        CHECK_INT(w.synced, 1); /* no loop: at once */
        CHECK_INT(w.committed_at_sync, 2);
        ferry__store_close(o);
    }
    teardown(&f);
}

/* ---- SQLite: schema and lock ---- */

static int sqlite_user_version(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static int sqlite_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    int rc = sqlite3_open(path, &db) == SQLITE_OK &&
             sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(db);
    return CHECK(rc, "%s: %s failed", path, sql);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

static void test_sqlite_schema(void)
{
    const store_backend_t *b = &store_backends[0];
    fx_t f;
    if (!setup(&f, b))
        return;
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "kept");
    ferry__store_history_add(f.s, "irc", "#c", 1, "n", "old", NULL);
    close_store(&f);
    int version = sqlite_user_version(f.where);
    CHECK(version >= 2, "a new store has schema version %d", version);

    /* From a newer ferry: refused, named, and left exactly as it was. */
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version + 1);
    sqlite_exec(f.where, sql);
    size_t len_before = 0, len_after = 0;
    char *before = slurp(f.where, &len_before);
    char err[512] = "";
    store_t *s = ferry__store_open(&f.loop, f.where, err, sizeof err);
    CHECK(s == NULL, "a store from a newer ferry was opened");
    CHECK(strstr(err, f.where) && strstr(err, "newer ferry"), "error: %s", err);
    char *after = slurp(f.where, &len_after);
    CHECK(before && after && len_before == len_after && memcmp(before, after, len_after) == 0,
          "the newer store was modified");
    free(before);
    free(after);
    CHECK_INT(sqlite_user_version(f.where), version + 1);
    err[0] = 0;
    CHECK(ferry__store_open_offline(f.where, err, sizeof err) == NULL, "offline opened a newer store");
    CHECK(strstr(err, "newer ferry") != NULL, "offline error: %s", err);

    /* From version 1 (before history): migrated, messages kept. */
    sqlite_exec(f.where, "DROP TABLE history; PRAGMA user_version = 1");
    err[0] = 0;
    f.s = ferry__store_open(&f.loop, f.where, err, sizeof err);
    if (CHECK(f.s != NULL, "a version 1 store: %s", err)) {
        int n;
        pending(&f, "sms", STORE_TO_NETWORK, 0, 10, &n);
        CHECK_INT(n, 1);
        CHECK_INT(ferry__store_history_add(f.s, "irc", "#c", 1, "n", "new", NULL), 0);
        CHECK_STR(hq(&f, "#c", 0, 0, 0, 0, 10, 0), "new");
        close_store(&f);
        CHECK_INT(sqlite_user_version(f.where), version);
    }

    /* Not a store at all. */
    char *junk = b->fresh();
    FILE *fp = fopen(junk, "wb");
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database. ", fp);
    fclose(fp);
    err[0] = 0;
    CHECK(ferry__store_open(&f.loop, junk, err, sizeof err) == NULL, "a text file opened as a store");
    CHECK(strstr(err, junk) != NULL, "error does not name the file: %s", err);
    free(junk);

    /* Nowhere to write. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir/x.db", fixture_dir());
    err[0] = 0;
    CHECK(ferry__store_open(&f.loop, missing, err, sizeof err) == NULL, "opened in a missing dir");
    CHECK(strstr(err, missing) != NULL, "error does not name the file: %s", err);
    teardown(&f);
}

static void test_sqlite_lock(void)
{
    const store_backend_t *b = &store_backends[0];
    fx_t f;
    if (!setup(&f, b))
        return;
    char err[512] = "";
    store_t *second = ferry__store_open(&f.loop, f.where, err, sizeof err);
    CHECK(second == NULL, "a second running store opened the same file");
    CHECK(strstr(err, "in use") && strstr(err, f.where), "error: %s", err);
    if (second)
        ferry__store_close(second);
    reopen(&f); /* closing releases it */
    teardown(&f);
}

/* ---- PostgreSQL only ---- */

/* Runs SQL on the store at URL; the first value of the result (malloc'd),
 * or NULL. */
static char *pg_query(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

static void test_pg_schema(void)
{
    const store_backend_t *b = &store_backends[1];
    fx_t f;
    if (!setup(&f, b))
        return;
    CHECK_INT(ferry__store_msg_add(f.s, "sms", STORE_TO_NETWORK, "c", "d1", "p", 1, &(int64_t){0}), 0);
    close_store(&f);
    char *v = pg_query(f.where, "SELECT max(version) FROM ferry_schema");
    CHECK_STR(v, "2");
    free(v);

    /* A store of schema 1 (one instance) gets the leases, its rows kept. */
    free(pg_query(f.where, "DROP TABLE leases; UPDATE ferry_schema SET version = 1"));
    reopen(&f);
    close_store(&f);
    v = pg_query(f.where, "SELECT max(version)::text || ' ' || (SELECT count(*) FROM messages)"
                          " || ' ' || (SELECT count(*) FROM leases) FROM ferry_schema");
    CHECK_STR(v, "2 1 0");
    free(v);

    /* From a newer ferry: refused, named, and left exactly as it was. */
    free(pg_query(f.where, "UPDATE ferry_schema SET version = 99"));
    char err[512] = "";
    CHECK(ferry__store_open_pg(&f.loop, f.where, err, sizeof err) == NULL, "a newer schema was opened");
    CHECK(strstr(err, "newer ferry") && strstr(err, "99"), "error: %s", err);
    err[0] = 0;
    CHECK(ferry__store_open_pg_offline(f.where, err, sizeof err) == NULL, "offline opened a newer store");
    CHECK(strstr(err, "newer ferry") != NULL, "offline error: %s", err);
    v = pg_query(f.where, "SELECT max(version)::text || ' ' || (SELECT count(*) FROM messages)"
                          " FROM ferry_schema");
    CHECK_STR(v, "99 1");
    free(v);
    teardown(&f);
}

/* ---- several instances on one PostgreSQL database ---- */

typedef struct events {
    int rows;
    char answer[64];
} events_t;

static void on_event(void *arg, int event, const char *text)
{
    events_t *e = arg;
    if (event == STORE_EV_ROWS)
        e->rows++;
    else
        snprintf(e->answer, sizeof e->answer, "%s", text);
}

static int got_rows(void *arg) { return ((events_t *)arg)->rows > 0; }

static int lease_dave(void *arg)
{
    return ferry__store_lease(arg, "c", STORE_TO_NETWORK, "dave") == 1;
}
static int got_answer(void *arg) { return ((events_t *)arg)->answer[0] != 0; }

/* Two stores on one database, as two instances: one holds a conversation's
 * lease, the other is refused it and does not load its rows, and takes it
 * once it has run out; rows committed by one and answers relayed reach the
 * other without polling. */
/* A PostgreSQL store in F and a second instance on the same database
 * (returned; NULL after saying why, F torn down). */
static store_t *setup_two(fx_t *f)
{
    const store_backend_t *b = &store_backends[1];
    if (!setup(f, b))
        return NULL;
    char err[512] = "";
    store_t *other = b->open(&f->loop, f->where, err, sizeof err);
    if (!CHECK(other != NULL, "second instance: %s", err))
        teardown(f);
    return other;
}

static void test_pg_leases(void)
{
    fx_t f;
    store_t *other = setup_two(&f);
    if (!other)
        return;
    ferry__store_set_instance(f.s, "one");
    ferry__store_set_instance(other, "two");
    ferry__store_set_lease(f.s, 0.5);
    ferry__store_set_lease(other, 0.5);
    events_t ev = {0};
    ferry__store_watch(other, on_event, &ev);

    int64_t a1 = add(&f, "c", STORE_TO_NETWORK, "alice", NULL, "a1");
    int64_t b1 = add(&f, "c", STORE_TO_NETWORK, "bob", NULL, "b1");
    ferry__store_flush(f.s);
    CHECK(run_until(&f.loop, got_rows, &ev, 5000), "no notification of the committed rows");

    CHECK_INT(ferry__store_lease(f.s, "c", STORE_TO_NETWORK, "alice"), 1);
    CHECK_INT(ferry__store_lease(f.s, "c", STORE_TO_NETWORK, "alice"), 1); /* renewed */
    CHECK_INT(ferry__store_lease(other, "c", STORE_TO_NETWORK, "alice"), 0);
    CHECK_INT(ferry__store_lease(other, "c", STORE_TO_XMPP, "alice"), 1); /* per direction */
    rows_t rs = {0};
    int n = ferry__store_msg_pending(other, "c", STORE_TO_NETWORK, 0, 10, collect, &rs);
    CHECK_INT(n, 1);
    CHECK(find(&rs, b1) && !find(&rs, a1), "the other instance loaded a held conversation");
    rs.n = 0;
    CHECK_INT(ferry__store_msg_pending(f.s, "c", STORE_TO_NETWORK, 0, 10, collect, &rs), 2);

    /* Run out (no renewal): the other takes it, and the first is refused. */
    usleep(700 * 1000);
    CHECK_INT(ferry__store_lease(other, "c", STORE_TO_NETWORK, "alice"), 1);
    CHECK_INT(ferry__store_lease(f.s, "c", STORE_TO_NETWORK, "alice"), 0);

    /* Let go: the others hear of it and may take it at once. */
    ev.rows = 0;
    ferry__store_lease_release(other, "c", STORE_TO_NETWORK, "alice");
    CHECK_INT(ferry__store_lease(f.s, "c", STORE_TO_NETWORK, "alice"), 1);

    ferry__store_relay_answer(f.s, "ferry-ack-x-1");
    CHECK(run_until(&f.loop, got_answer, &ev, 5000), "no relayed answer");
    CHECK_STR(ev.answer, "ferry-ack-x-1");

    /* A store that closes lets its leases go: no wait for them. */
    CHECK_INT(ferry__store_lease(other, "c", STORE_TO_NETWORK, "carol"), 1);
    CHECK_INT(ferry__store_lease(f.s, "c", STORE_TO_NETWORK, "carol"), 0);
    ferry__store_close(other);
    CHECK_INT(ferry__store_lease(f.s, "c", STORE_TO_NETWORK, "carol"), 1);

    /* The server drops every connection: leases and notifications come
     * back on a new one, made on the loop. */
    free(pg_query(f.where, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()"));
    CHECK(run_until(&f.loop, lease_dave, f.s, 8000), "no lease after the connections dropped");
    ev.rows = 0;
    ferry__store_watch(f.s, on_event, &ev);
    char err[512] = "";
    store_t *third = f.b->open(&f.loop, f.where, err, sizeof err);
    if (CHECK(third != NULL, "third instance: %s", err)) {
        ferry__store_set_instance(third, "three");
        int64_t id;
        ferry__store_msg_add(third, "c", STORE_TO_NETWORK, "erin", NULL, "e", 1, &id);
        ferry__store_flush(third);
        CHECK(run_until(&f.loop, got_rows, &ev, 5000), "no notification after reconnecting");
        ferry__store_close(third);
    }
    teardown(&f);
}

/* Two instances put the same message (an HTTP sender retrying on the other
 * one): stored once, and each batch commits. */
static void test_pg_put_two(void)
{
    fx_t f;
    store_t *other = setup_two(&f);
    if (!other)
        return;
    commit_watch_t w = {&f, 0, -1, 0, -1, -1};
    CHECK_INT(ferry__store_msg_put(f.s, "hooks", STORE_TO_XMPP, "", "retry", "m", 1), 0);
    ferry__store_sync(f.s, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.ok, 1);
    /* Found at commit on the pipeline, at once without it (an older libpq). */
    int rc = ferry__store_msg_put(other, "hooks", STORE_TO_XMPP, "", "retry", "m", 1);
    CHECK(rc == 0 || rc == 1 + STORE_PENDING, "a duplicate from the other instance: %d", rc);
    CHECK_INT(ferry__store_msg_put(other, "hooks", STORE_TO_XMPP, "", "new", "n", 1), 0);
    ferry__store_sync(other, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.synced, 2);
    CHECK_INT(w.ok, 1);
    CHECK_INT(w.committed_at_sync, 2);
    int64_t id;
    CHECK_INT(ferry__store_msg_add(other, "hooks", STORE_TO_XMPP, "", "retry", "m", 1, &id),
              1 + STORE_PENDING);
    ferry__store_close(other);
    teardown(&f);
}

/* A write sent without waiting that the server refuses (text that is not
 * UTF-8) fails its whole batch, as a failed COMMIT does: the writers hear
 * so, nothing of it is stored, and the next batch works. */
static void test_pg_piped_failure(void)
{
    const store_backend_t *b = &store_backends[1];
    fx_t f;
    if (!setup(&f, b))
        return;
    commit_watch_t w = {&f, 0, -1, 0, -1, -1};
    ferry__store_listen(f.s, on_commit, &w);
    CHECK_INT(ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", NULL, "lost", 4), 0);
    ferry__store_kv_put(f.s, "sms", "ns", "k", "\xff\xfe not UTF-8");
    /* 0 on the pipeline (sent, failed with the batch), -1 without it. */
    ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", NULL, "lost too", 8);
    ferry__store_sync(f.s, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.synced, 1);
    CHECK_INT(w.ok, 0);
    CHECK_INT(w.listened, 0);
    CHECK_INT(committed_rows(&f), 0);
    CHECK_INT(ferry__store_msg_put(f.s, "sms", STORE_TO_XMPP, "", NULL, "kept", 4), 0);
    ferry__store_sync(f.s, on_sync, &w);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(w.synced, 2);
    CHECK_INT(w.ok, 1);
    CHECK_INT(w.committed_at_sync, 1);
    teardown(&f);
}

static int store_up(void *arg)
{
    char why[256];
    return ferry__store_healthy(arg, why, sizeof why);
}

/* The connection drops with a batch open: its COMMIT fails, and the
 * writers hear that their rows are gone (ok = 0), the listeners nothing. */
static void test_pg_commit_lost(void)
{
    const store_backend_t *b = &store_backends[1];
    fx_t f;
    if (!setup(&f, b))
        return;
    commit_watch_t w = {&f, 0, -1, 0, -1, -1}, e = {&f, 0, -1, 0, -1, -1};
    ferry__store_listen(f.s, on_commit, &w);
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "lost 1");
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "lost 2");
    ferry__store_batch_end(f.s, on_sync, &e);
    ferry__store_sync(f.s, on_sync, &w);
    free(pg_query(f.where, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()"));
    ferry__store_flush(f.s);
    CHECK_INT(e.synced, 1);
    CHECK_INT(e.ok, 0);
    CHECK_INT(w.synced, 1);
    CHECK_INT(w.ok, 0); /* an HTTP sender gets a 503, not a 202 */
    CHECK_INT(w.listened, 0);
    CHECK(run_until(&f.loop, store_up, f.s, 8000), "the store did not come back");
    CHECK_INT(committed_rows(&f), 0);
    /* Added again: stored. */
    add(&f, "sms", STORE_TO_NETWORK, "A", NULL, "lost 1");
    ferry__store_batch_end(f.s, on_sync, &e);
    ferry__store_flush(f.s);
    CHECK_INT(e.synced, 2);
    CHECK_INT(e.ok, 1);
    CHECK_INT(committed_rows(&f), 1);
    teardown(&f);
}

static void test_pg_unreachable(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512] = "";
    /* Port 1 on loopback: nobody listens. */
    CHECK(ferry__store_open_pg(&loop, "postgresql://ferry:secret-pw@127.0.0.1:1/x", err, sizeof err) ==
              NULL,
          "opened an unreachable database");
    CHECK(strstr(err, "cannot connect") && strstr(err, "127.0.0.1:1"), "error: %s", err);
    CHECK(strstr(err, "secret-pw") == NULL, "the password is in the message: %s", err);
    CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    ferry__log_set_level(FERRY_LOG_WARN); /* not the migration notice */
    for (size_t i = 0; i < sizeof store_backends / sizeof store_backends[0]; i++) {
        const store_backend_t *b = &store_backends[i];
        if (!store_backend_available(i)) {
            printf("backend %s: skipped (no FERRY_TEST_PG_URL)\n", b->name);
            continue;
        }
        printf("backend %s\n", b->name);
        test_add_dedup(b);
        test_pending(b);
        test_update(b);
        test_done_ids(b);
        test_counts(b);
        test_list_requeue_drop(b);
        test_prune(b);
        test_kv(b);
        test_history(b);
        test_sync(b);
        test_put(b);
        test_group_commit(b);
        test_queued_uncommitted(b);
        test_reopen(b);
        test_offline(b);
    }
    test_sqlite_schema();
    test_sqlite_lock();
    if (getenv("FERRY_TEST_PG_URL")) {
        test_pg_schema();
        test_pg_leases();
        test_pg_commit_lost();
        test_pg_put_two();
        test_pg_piped_failure();
        test_pg_unreachable();
    }
    return check_summary();
}
