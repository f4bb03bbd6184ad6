/* test_outbox.c: the scheduler of messages on their way to a network
 * (outbox_network.c), as an adapter sees it through ferry/outbox.h: a fake
 * adapter's deliver() answers done, retry or fail a moment later, like an
 * HTTP response would, on a real libuv loop over a real SQLite store.
 * Delays are configured in tens of milliseconds so that the whole program
 * runs in a few seconds; bounds on time are wide, for a loaded machine. */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "log.h"
#include "outbox.h"

#include "check.h"
#include "store_fixture.h"

/* ---- the fake adapter ---- */

enum action { DONE, RETRY, FAIL, HOLD };

#define MAX_LOG 4096
#define MAX_OUT 256

typedef struct attempt {
    int64_t id;
    char conversation[16];
    char payload[32];
    int attempts;
    int64_t at_ms;
    int finished_before; /* messages finished when this attempt began */
} attempt_t;

typedef struct answer {
    int64_t id;
    char conversation[16];
    enum action action;
} answer_t;

typedef struct retry_seen {
    int64_t id;
    int attempts;
    int64_t t0, t1; /* wall clock around ferry__net_outbox_retry() */
    int64_t next_ms; /* what the store then holds */
} retry_seen_t;

typedef struct fake fake_t;
struct fake {
    store_t *store;
    net_outbox_t *ob;
    /* What to answer to MSG. */
    enum action (*decide)(fake_t *f, const ferry_msg_t *msg);
    const char *error;   /* given with retry and fail */
    long retry_after;    /* given with retry */

    uv_timer_t answer_timer;
    answer_t out[MAX_OUT]; /* delivered, not answered yet */
    int n_out, max_out;
    int same_conv_twice;  /* a conversation had two under way */

    attempt_t log[MAX_LOG];
    int n_log, n_delivered;
    int done, retried, failed;
    int want; /* run_finished(): how many must be finished */
    retry_seen_t retries[MAX_LOG];
    int n_retries;

    int n_dead;
    int64_t dead_id;
    int dead_attempts;
    char dead_reason[512];
};

static void answer_all(uv_timer_t *t);

static void on_deliver(void *arg, const ferry_msg_t *msg)
{
    fake_t *f = arg;
    f->n_delivered++;
    if (f->n_log < MAX_LOG) {
        attempt_t *a = &f->log[f->n_log++];
        a->id = msg->id;
        snprintf(a->conversation, sizeof a->conversation, "%s", msg->conversation);
        snprintf(a->payload, sizeof a->payload, "%.*s", (int)msg->payload_len, msg->payload);
        a->attempts = msg->attempts;
        a->at_ms = ferry__store_now_ms();
        a->finished_before = f->done + f->failed + f->n_dead;
    }
    for (int i = 0; i < f->n_out; i++)
        if (strcmp(f->out[i].conversation, msg->conversation) == 0)
            f->same_conv_twice++;
    if (f->n_out >= MAX_OUT)
        return;
    answer_t *a = &f->out[f->n_out++];
    a->id = msg->id;
    snprintf(a->conversation, sizeof a->conversation, "%s", msg->conversation);
    a->action = f->decide(f, msg);
    if (f->n_out > f->max_out)
        f->max_out = f->n_out;
    /* Answer later, as a network would: never from inside deliver(). */
    uv_timer_start(&f->answer_timer, answer_all, 0, 0);
}

static void on_dead(void *arg, const ferry_msg_t *msg, const char *reason)
{
    fake_t *f = arg;
    f->n_dead++;
    f->dead_id = msg->id;
    f->dead_attempts = msg->attempts;
    snprintf(f->dead_reason, sizeof f->dead_reason, "%s", reason);
}

static int64_t row_next_ms(store_t *s, int64_t id);

/* Gives answer I, taking it off the list. */
static void answer(fake_t *f, int i)
{
    answer_t a = f->out[i];
    f->out[i] = f->out[--f->n_out];
    switch (a.action) {
    case DONE:
        f->done++;
        ferry__net_outbox_done(f->ob, a.id);
        break;
    case FAIL:
        f->failed++;
        ferry__net_outbox_fail(f->ob, a.id, f->error);
        break;
    case RETRY: {
        retry_seen_t *r = &f->retries[f->n_retries < MAX_LOG ? f->n_retries++ : MAX_LOG - 1];
        r->id = a.id;
        r->attempts = 0;
        for (int k = f->n_log - 1; k >= 0; k--)
            if (f->log[k].id == a.id) {
                r->attempts = f->log[k].attempts;
                break;
            }
        f->retried++;
        r->t0 = ferry__store_now_ms();
        ferry__net_outbox_retry(f->ob, a.id, f->error, f->retry_after);
        r->t1 = ferry__store_now_ms();
        r->next_ms = row_next_ms(f->store, a.id);
        break;
    }
    case HOLD:
        break;
    }
}

static void answer_all(uv_timer_t *t)
{
    fake_t *f = t->data;
    for (int i = f->n_out - 1; i >= 0; i--)
        if (f->out[i].action != HOLD)
            answer(f, i);
}

static const ferry_outbox_handlers_t handlers = {.deliver = on_deliver, .dead = on_dead};

static enum action always_done(fake_t *f, const ferry_msg_t *m) { (void)f, (void)m; return DONE; }
static enum action always_retry(fake_t *f, const ferry_msg_t *m) { (void)f, (void)m; return RETRY; }

/* ---- one test's loop, store and outbox ---- */

typedef struct fx {
    uv_loop_t loop;
    char *where;
    store_t *store;
    fake_t *f;
} fx_t;

static outbox_policy_t policy(int64_t max_attempts, double max_age, double delay, double max)
{
    outbox_policy_t p = {max_attempts, max_age, delay, max};
    return p;
}

static int open_store(fx_t *x)
{
    char err[512] = "";
    x->store = ferry__store_open(&x->loop, x->where, err, sizeof err);
    return CHECK(x->store != NULL, "store_open %s: %s", x->where, err);
}

/* A fresh fake adapter with its outbox for COMPONENT, not started. */
static fake_t *fake_new(fx_t *x, const char *component, const outbox_policy_t *p,
                        enum action (*decide)(fake_t *, const ferry_msg_t *))
{
    fake_t *f = calloc(1, sizeof *f);
    f->store = x->store;
    f->decide = decide;
    f->error = "HTTP 503 busy";
    f->retry_after = -1;
    uv_timer_init(&x->loop, &f->answer_timer);
    f->answer_timer.data = f;
    f->ob = ferry__net_outbox_new(&x->loop, x->store, component, p);
    return f;
}

static void fake_freed(uv_handle_t *h) { free(h->data); }

static void fake_free(fake_t *f)
{
    ferry__net_outbox_free(f->ob);
    uv_close((uv_handle_t *)&f->answer_timer, fake_freed);
}

static int setup(fx_t *x, const outbox_policy_t *p,
                 enum action (*decide)(fake_t *, const ferry_msg_t *))
{
    memset(x, 0, sizeof *x);
    uv_loop_init(&x->loop);
    x->where = store_backends[0].fresh();
    if (!open_store(x))
        return 0;
    x->f = fake_new(x, "sms", p, decide);
    return 1;
}

/* Frees the outbox and closes the store, as a shutdown does. */
static void shut(fx_t *x)
{
    if (x->f) {
        ferry__net_outbox_pause(x->f->ob);
        fake_free(x->f);
        x->f = NULL;
    }
    if (x->store)
        ferry__store_close(x->store);
    x->store = NULL;
    uv_run(&x->loop, UV_RUN_DEFAULT);
}

static void teardown(fx_t *x)
{
    shut(x);
    CHECK_INT(uv_loop_close(&x->loop), 0);
    free(x->where);
}

static int64_t put(fake_t *f, const char *conversation, const char *payload)
{
    int64_t id = -1;
    int rc = ferry__net_outbox_put(f->ob, conversation, NULL, payload, strlen(payload), &id);
    CHECK(rc == 0 && id > 0, "net_outbox_put(%s) = %d", payload, rc);
    return id;
}

static int finished(void *arg)
{
    fake_t *f = arg;
    return f->done + f->failed + f->n_dead >= f->want;
}

/* Runs until WANT messages are finished (done, failed or dead), at most MS. */
static int run_finished(fx_t *x, int want, int64_t ms)
{
    x->f->want = want;
    return run_until(&x->loop, finished, x->f, ms);
}

/* ---- the store row behind a message ---- */

typedef struct one_row {
    int64_t id;
    int found, state, attempts;
    int64_t next_ms;
    char error[512];
} one_row_t;

static void find_row(void *arg, const store_row_t *r)
{
    one_row_t *o = arg;
    if (r->id != o->id)
        return;
    o->found = 1;
    o->state = r->state;
    o->attempts = r->attempts;
    o->next_ms = r->next_ms;
    snprintf(o->error, sizeof o->error, "%s", r->error ? r->error : "");
}

/* The row ID as `ferry queue` lists it (pending or dead), found = 0 when it
 * is done or gone. */
static one_row_t row(store_t *s, int64_t id)
{
    one_row_t o = {.id = id};
    ferry__store_msg_list(s, find_row, &o);
    return o;
}

static int64_t row_next_ms(store_t *s, int64_t id) { return row(s, id).next_ms; }

/* ---- tests ---- */

/* Each conversation has one message under way; conversations go side by
 * side; retries keep the order within a conversation. */
static enum action retry_first(fake_t *f, const ferry_msg_t *m)
{
    (void)f;
    return m->attempts == 1 ? RETRY : DONE;
}

static void test_order(void)
{
    fx_t x;
    outbox_policy_t p = policy(5, 3600, 0.01, 0.02);
    if (!setup(&x, &p, retry_first))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    const char *convs[] = {"A", "B", "C"};
    int64_t ids[3][4];
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++) {
            char payload[16];
            snprintf(payload, sizeof payload, "%s%d", convs[c], i);
            ids[c][i] = put(f, convs[c], payload);
        }
    CHECK(run_finished(&x, 12, 10000), "%d of 12 done within 10 s", f->done);
    CHECK_INT(f->done, 12);
    CHECK_INT(f->same_conv_twice, 0);
    CHECK(f->max_out >= 3, "at most %d under way at once; conversations should go side by side",
          f->max_out);
    for (int c = 0; c < 3; c++) {
        /* Each message twice (retry, then done), in put order. */
        int k = 0, ok = 1;
        for (int i = 0; i < f->n_log; i++) {
            if (strcmp(f->log[i].conversation, convs[c]) != 0)
                continue;
            if (k >= 8 || f->log[i].id != ids[c][k / 2] || f->log[i].attempts != k % 2 + 1)
                ok = 0;
            k++;
        }
        CHECK(ok && k == 8, "conversation %s: deliveries out of order (%d)", convs[c], k);
    }
    CHECK_STR(f->log[0].payload, "A0");
    outbox_stats_t st;
    ferry__net_outbox_stats(f->ob, &st);
    CHECK_INT(st.delivered, 12);
    CHECK_INT(st.retried, 12);
    CHECK_INT(st.dead, 0);
    store_counts_t counts;
    ferry__store_msg_counts(x.store, "sms", &counts);
    CHECK_INT(counts.pending, 0);
    teardown(&x);
}

/* Backoff doubles from retry_delay up to retry_delay_max, with jitter in
 * [delay/2, delay]; the message does not go again before that. */
static void test_backoff(void)
{
    fx_t x;
    outbox_policy_t p = policy(6, 3600, 0.04, 0.16);
    if (!setup(&x, &p, always_retry))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    put(f, "A", "m");
    run_finished(&x, 1, 10000); /* dead after 6 attempts */
    CHECK_INT(f->n_dead, 1);
    CHECK_INT(f->n_delivered, 6);
    CHECK_INT(f->n_retries, 6); /* the 6th answer makes it dead */
    for (int i = 0; i < 5 && i < f->n_retries; i++) {
        retry_seen_t *r = &f->retries[i];
        int64_t nominal = 40 << i;
        if (nominal > 160)
            nominal = 160;
        CHECK_INT(r->attempts, i + 1);
        /* 1 ms either side: seconds become whole milliseconds */
        CHECK(r->next_ms - r->t0 >= nominal / 2 - 1 && r->next_ms - r->t1 <= nominal + 1,
              "retry %d: next attempt in %lld..%lld ms, expected within [%lld, %lld]", i + 1,
              (long long)(r->next_ms - r->t1), (long long)(r->next_ms - r->t0),
              (long long)nominal / 2, (long long)nominal);
        attempt_t *next = &f->log[i + 1];
        CHECK(next->at_ms >= r->next_ms, "attempt %d came %lld ms early", i + 2,
              (long long)(r->next_ms - next->at_ms));
        CHECK(next->at_ms <= r->next_ms + 2000, "attempt %d came %lld ms late", i + 2,
              (long long)(next->at_ms - r->next_ms));
    }
    teardown(&x);
}

static int both_retried(void *arg)
{
    fake_t **pair = arg;
    return pair[0]->n_retries >= 200 && pair[1]->n_retries >= 200;
}

/* Jitter spreads: over many messages the delays cover [delay/2, delay]. */
static void test_jitter(void)
{
    fx_t x;
    outbox_policy_t p = policy(5, 3600, 10, 10);
    if (!setup(&x, &p, always_retry))
        return;
    /* A second component whose cap is below its first delay. */
    outbox_policy_t capped = policy(5, 3600, 10, 4);
    fake_t *g = fake_new(&x, "capped", &capped, always_retry);
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    ferry__net_outbox_start(g->ob, &handlers, g);
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char conv[16];
        snprintf(conv, sizeof conv, "c%d", i);
        put(f, conv, "m");
        put(g, conv, "m");
    }
    fake_t *pair[2] = {f, g};
    CHECK(run_until(&x.loop, both_retried, pair, 10000), "retries: %d and %d of %d", f->n_retries,
          g->n_retries, N);
    fake_t *fs[2] = {f, g};
    int64_t nominal[2] = {10000, 4000};
    for (int k = 0; k < 2; k++) {
        int64_t lo = INT64_MAX, hi = 0;
        int outside = 0;
        for (int i = 0; i < fs[k]->n_retries; i++) {
            retry_seen_t *r = &fs[k]->retries[i];
            if (r->next_ms - r->t0 < nominal[k] / 2 - 1 || r->next_ms - r->t1 > nominal[k] + 1)
                outside++;
            int64_t d = r->next_ms - r->t0;
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        CHECK(outside == 0, "%d delays outside [%lld, %lld] ms", outside,
              (long long)nominal[k] / 2, (long long)nominal[k]);
        /* 200 uniform draws all in one 30 % corner: less likely than 1e-30. */
        CHECK(lo < nominal[k] * 65 / 100 && hi > nominal[k] * 85 / 100,
              "delays only in [%lld, %lld] ms: no jitter", (long long)lo, (long long)hi);
    }
    /* None went again early. */
    CHECK_INT(f->n_delivered, N);
    CHECK_INT(g->n_delivered, N);
    ferry__net_outbox_pause(g->ob);
    fake_free(g);
    teardown(&x);
}

/* Retry-After: never sooner than the far end asked, even when the backoff
 * is shorter; never shorter than the backoff either. */
static int retried(void *arg) { return ((fake_t *)arg)->n_retries > 0; }

static void test_retry_after(void)
{
    fx_t x;
    outbox_policy_t p = policy(5, 3600, 0.01, 0.01);
    if (!setup(&x, &p, retry_first))
        return;
    fake_t *f = x.f;
    f->retry_after = 1;
    ferry__net_outbox_start(f->ob, &handlers, f);
    put(f, "A", "m");
    CHECK(run_finished(&x, 1, 10000), "not delivered within 10 s");
    CHECK_INT(f->n_retries, 1);
    if (f->n_retries == 1 && f->n_log == 2) {
        retry_seen_t *r = &f->retries[0];
        CHECK(r->next_ms - r->t0 >= 1000, "Retry-After 1 s: next attempt after %lld ms",
              (long long)(r->next_ms - r->t0));
        CHECK(f->log[1].at_ms - r->t0 >= 1000, "went again after %lld ms despite Retry-After",
              (long long)(f->log[1].at_ms - r->t0));
    }
    shut(&x);

    /* A Retry-After shorter than the backoff does not shorten it. */
    p = policy(5, 3600, 4, 4);
    if (!open_store(&x))
        return;
    f = x.f = fake_new(&x, "sms", &p, retry_first);
    f->retry_after = 1;
    ferry__net_outbox_start(f->ob, &handlers, f);
    put(f, "B", "m");
    run_until(&x.loop, retried, f, 5000);
    CHECK_INT(f->n_retries, 1);
    if (f->n_retries == 1) {
        retry_seen_t *r = &f->retries[0];
        CHECK(r->next_ms - r->t0 >= 2000, "backoff 4 s cut to %lld ms by Retry-After 1",
              (long long)(r->next_ms - r->t0));
    }
    teardown(&x);
}

/* Giving up: after max_attempts, or once older than max_age, the message
 * is dead with the reason and the last error, the adapter hears it, and the
 * conversation moves on. */
static enum action retry_first_message(fake_t *f, const ferry_msg_t *m)
{
    (void)f;
    return strcmp(m->payload, "doomed") == 0 ? RETRY : DONE;
}

static void test_max_attempts(void)
{
    fx_t x;
    outbox_policy_t p = policy(3, 3600, 0.01, 0.02);
    if (!setup(&x, &p, retry_first_message))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t doomed = put(f, "A", "doomed");
    int64_t next = put(f, "A", "after");
    CHECK(run_finished(&x, 2, 10000), "not finished within 10 s");
    CHECK_INT(f->n_dead, 1);
    CHECK_INT(f->dead_id, doomed);
    CHECK_INT(f->dead_attempts, 3);
    CHECK_STR(f->dead_reason, "gave up after 3 attempts: HTTP 503 busy");
    CHECK_INT(f->done, 1);
    CHECK(f->n_log == 4 && f->log[3].id == next, "the next message did not go after the dead one");
    one_row_t r = row(x.store, doomed);
    CHECK(r.found && r.state == STORE_DEAD, "dead row: found %d state %d", r.found, r.state);
    CHECK_INT(r.attempts, 3);
    CHECK_STR(r.error, f->dead_reason);
    outbox_stats_t st;
    ferry__net_outbox_stats(f->ob, &st);
    CHECK_INT(st.dead, 1);
    CHECK_INT(st.retried, 2);

    /* `ferry queue retry` puts it back; a rescan finds it. */
    char err[512] = "";
    store_t *q = ferry__store_open_offline(x.where, err, sizeof err);
    if (CHECK(q != NULL, "offline: %s", err)) {
        ferry__store_flush(x.store);
        CHECK_INT(ferry__store_msg_requeue(q, doomed), 0);
        ferry__store_close(q);
        f->decide = always_done;
        ferry__net_outbox_rescan(f->ob);
        CHECK(run_finished(&x, 3, 5000), "requeued message not delivered");
        CHECK(f->n_log == 5 && f->log[4].id == doomed && f->log[4].attempts == 1,
              "requeued message: %d deliveries", f->n_log);
    }
    teardown(&x);
}

/* A dead message requeued while a later one of its conversation is under
 * way waits behind it: the answer to the one under way still counts, and
 * the requeued one goes next. */
static enum action fail_a1_hold_a2(fake_t *f, const ferry_msg_t *m)
{
    (void)f;
    return strcmp(m->payload, "a1") == 0 ? FAIL : HOLD;
}

static int delivered_three(void *arg) { return ((fake_t *)arg)->n_delivered >= 3; }
static int delivered_two(void *arg) { return ((fake_t *)arg)->n_delivered >= 2; }

static void test_rescan_behind_flight(void)
{
    fx_t x;
    outbox_policy_t p = policy(10, 3600, 0.01, 0.01);
    if (!setup(&x, &p, fail_a1_hold_a2))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t a1 = put(f, "A", "a1");
    int64_t a2 = put(f, "A", "a2");
    CHECK(run_until(&x.loop, delivered_two, f, 5000), "a1, a2 not delivered");
    CHECK(f->n_out == 1 && f->out[0].id == a2, "a2 not the one under way");

    ferry__store_flush(x.store);
    char err[512] = "";
    store_t *q = ferry__store_open_offline(x.where, err, sizeof err);
    if (!CHECK(q != NULL, "offline: %s", err)) {
        teardown(&x);
        return;
    }
    CHECK_INT(ferry__store_msg_requeue(q, a1), 0);
    ferry__store_close(q);
    f->decide = always_done;
    ferry__net_outbox_rescan(f->ob);
    run_for(&x.loop, 50);
    CHECK_INT(f->n_delivered, 2); /* a1 waits behind a2 */
    f->out[0].action = DONE;
    answer(f, 0);
    CHECK(run_until(&x.loop, delivered_three, f, 5000), "the requeued a1 did not go after a2");
    run_finished(&x, 3, 5000);
    CHECK_INT(f->same_conv_twice, 0);
    CHECK(f->n_log == 3 && f->log[2].id == a1, "third delivery is not a1");
    CHECK(!row(x.store, a2).found, "a2's done was lost");
    CHECK(!row(x.store, a1).found, "a1 not done after requeue");
    teardown(&x);
}

static void test_max_age(void)
{
    fx_t x;
    outbox_policy_t p = policy(1000, 0.2, 0.03, 0.03);
    if (!setup(&x, &p, always_retry))
        return;
    fake_t *f = x.f;
    f->error = "connection refused";
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t t0 = ferry__store_now_ms();
    int64_t id = put(f, "A", "m");
    CHECK(run_finished(&x, 1, 10000), "not dead within 10 s");
    int64_t took = ferry__store_now_ms() - t0;
    CHECK_INT(f->n_dead, 1);
    CHECK(f->dead_attempts > 1 && f->dead_attempts < 1000, "dead after %d attempts",
          f->dead_attempts);
    CHECK(took >= 200, "dead after %lld ms, before max_age", (long long)took);
    CHECK(strstr(f->dead_reason, "(max_age): connection refused") != NULL, "reason: %s",
          f->dead_reason);
    CHECK(strncmp(f->dead_reason, "gave up after ", 14) == 0, "reason: %s", f->dead_reason);
    one_row_t r = row(x.store, id);
    CHECK(r.state == STORE_DEAD, "row state %d", r.state);
    CHECK_STR(r.error, f->dead_reason);
    teardown(&x);
}

/* A permanent failure: dead at once with the adapter's error, without a
 * dead() call (the adapter has told the sender). */
static enum action fail_first(fake_t *f, const ferry_msg_t *m)
{
    (void)f;
    return strcmp(m->payload, "bad") == 0 ? FAIL : DONE;
}

static void test_fail(void)
{
    fx_t x;
    outbox_policy_t p = policy(10, 3600, 0.01, 0.01);
    if (!setup(&x, &p, fail_first))
        return;
    fake_t *f = x.f;
    f->error = "HTTP 400: invalid number";
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t bad = put(f, "A", "bad");
    put(f, "A", "good");
    CHECK(run_finished(&x, 2, 10000), "not finished within 10 s");
    CHECK_INT(f->failed, 1);
    CHECK_INT(f->done, 1);
    CHECK_INT(f->n_dead, 0);
    CHECK_INT(f->n_delivered, 2);
    one_row_t r = row(x.store, bad);
    CHECK(r.state == STORE_DEAD, "row state %d", r.state);
    CHECK_STR(r.error, "HTTP 400: invalid number");
    CHECK_INT(r.attempts, 1);
    teardown(&x);
}

/* A put with a known dedup key is dropped, answered with the first one's
 * state, and not delivered again. */
static void test_dedup(void)
{
    fx_t x;
    outbox_policy_t p = policy(10, 3600, 0.01, 0.01);
    if (!setup(&x, &p, always_done))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t id = -1, again = -1;
    CHECK_INT(ferry__net_outbox_put(f->ob, "A", "SM123", "m", 1, &id), 0);
    CHECK_INT(ferry__net_outbox_put(f->ob, "A", "SM123", "m", 1, &again), FERRY_DUP_PENDING);
    CHECK_INT(again, -1);
    CHECK(run_finished(&x, 1, 5000), "not delivered");
    CHECK_INT(ferry__net_outbox_put(f->ob, "A", "SM123", "m", 1, &again), FERRY_DUP_DONE);
    run_for(&x.loop, 50);
    CHECK_INT(f->n_delivered, 1);
    teardown(&x);
}

/* At most 64 deliveries are under way at once, over all conversations; the
 * next starts as soon as one is answered. */
static enum action hold(fake_t *f, const ferry_msg_t *m) { (void)f, (void)m; return HOLD; }
static int sixty_five(void *arg) { return ((fake_t *)arg)->n_delivered >= 65; }

static void test_in_flight_limit(void)
{
    fx_t x;
    outbox_policy_t p = policy(10, 3600, 0.01, 0.01);
    if (!setup(&x, &p, hold))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    for (int i = 0; i < 100; i++) {
        char conv[16];
        snprintf(conv, sizeof conv, "c%d", i);
        put(f, conv, "m");
    }
    run_for(&x.loop, 100);
    CHECK_INT(f->n_delivered, 64);
    CHECK_INT(f->n_out, 64);
    f->out[0].action = DONE;
    answer(f, 0);
    CHECK(run_until(&x.loop, sixty_five, f, 5000), "nothing started after an answer");
    run_for(&x.loop, 50);
    CHECK_INT(f->n_delivered, 65);
    teardown(&x);
}

/* Memory holds at most 1,024 pending messages; the rest wait in the store
 * and come in, in id order, as the window empties. */
static void test_window(void)
{
    fx_t x;
    outbox_policy_t p = policy(10, 3600, 0.01, 0.01);
    if (!setup(&x, &p, always_done))
        return;
    fake_t *f = x.f;
    enum { WINDOW = 1024, REFILL = 64, MANY = WINDOW + 6 };
    for (int i = 0; i < MANY; i++) {
        int64_t id;
        ferry__store_msg_add(x.store, "sms", STORE_TO_NETWORK, "A", NULL, "a", 1, &id);
    }
    int64_t b_id;
    ferry__store_msg_add(x.store, "sms", STORE_TO_NETWORK, "B", NULL, "b", 1, &b_id);
    ferry__store_flush(x.store);
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t c_id = put(f, "C", "c"); /* put while the window is full */
    CHECK(run_finished(&x, MANY + 2, 30000), "%d of %d delivered", f->done, MANY + 2);
    CHECK_INT(f->n_delivered, MANY + 2);
    CHECK_INT(f->same_conv_twice, 0);
    /* B's message is row WINDOW + 7: it enters memory, and goes, only when
     * the window has REFILL (64) free places: the window is refilled in
     * batches, not one row per delivery (a round trip each on PostgreSQL). */
    int b_after_done = -1, a_seen = 0, b_at = -1, c_at = -1, in_order = 1;
    int64_t last_a = 0;
    for (int i = 0; i < f->n_log; i++) {
        if (strcmp(f->log[i].conversation, "A") == 0) {
            if (f->log[i].id <= last_a)
                in_order = 0;
            last_a = f->log[i].id;
            a_seen++;
        } else if (f->log[i].id == b_id) {
            b_after_done = f->log[i].finished_before;
            b_at = i;
        } else if (f->log[i].id == c_id) {
            c_at = i;
        }
    }
    CHECK(in_order, "conversation A out of order");
    CHECK_INT(a_seen, MANY);
    CHECK_INT(b_after_done, REFILL);
    CHECK(c_at > b_at, "C (put later) went at %d, before B from the store at %d", c_at, b_at);
    store_counts_t counts;
    ferry__store_msg_counts(x.store, "sms", &counts);
    CHECK_INT(counts.pending, 0);
    teardown(&x);
}

/* A restart: what was pending, retrying or under way at shutdown goes
 * (again) after it, in order; an answer that came after pause() counts;
 * a pause starts nothing new. */
static enum action hold_firsts(fake_t *f, const ferry_msg_t *m)
{
    (void)f;
    if (strcmp(m->payload, "b1") == 0)
        return RETRY;
    return HOLD;
}

static int retried_two_held(void *arg)
{
    fake_t *f = arg;
    return f->n_retries > 0 && f->n_out == 2;
}

static void test_restart(void)
{
    fx_t x;
    outbox_policy_t p = policy(10, 3600, 2, 2);
    if (!setup(&x, &p, hold_firsts))
        return;
    fake_t *f = x.f;
    ferry__net_outbox_start(f->ob, &handlers, f);
    int64_t a1 = put(f, "A", "a1");
    int64_t a2 = put(f, "A", "a2");
    int64_t b1 = put(f, "B", "b1");
    int64_t c1 = put(f, "C", "c1");
    int64_t c2 = put(f, "C", "c2");
    CHECK(run_until(&x.loop, retried_two_held, f, 5000), "a1, b1, c1 not delivered");
    CHECK_INT(f->n_delivered, 3);
    int64_t b1_next = f->n_retries ? f->retries[0].next_ms : 0;

    /* Shutdown begins: c1's answer still counts, nothing new starts. */
    ferry__net_outbox_pause(f->ob);
    for (int i = 0; i < f->n_out; i++)
        if (f->out[i].id == c1) {
            f->out[i].action = DONE;
            answer(f, i);
            break;
        }
    run_for(&x.loop, 100);
    CHECK_INT(f->n_delivered, 3);
    shut(&x);

    /* Restart on the same file. */
    if (!open_store(&x)) {
        teardown(&x);
        return;
    }
    f = x.f = fake_new(&x, "sms", &p, always_done);
    int64_t t_start = ferry__store_now_ms();
    ferry__net_outbox_start(f->ob, &handlers, f);
    CHECK(run_finished(&x, 4, 10000), "%d of 4 delivered after restart", f->done);
    CHECK_INT(f->n_delivered, 4); /* a1 again, a2, b1, c2; not c1 */
    int64_t order[2] = {0, 0};
    for (int i = 0; i < f->n_log; i++) {
        attempt_t *a = &f->log[i];
        CHECK(a->id != c1, "c1 was delivered again after being done");
        if (a->id == a1)
            order[0] = i + 1;
        if (a->id == a2)
            order[1] = i + 1;
        if (a->id == b1) {
            CHECK_INT(a->attempts, 2);
            CHECK(a->at_ms >= b1_next, "b1 went %lld ms before its retry time",
                  (long long)(b1_next - a->at_ms));
            CHECK(b1_next > t_start, "b1's retry time passed before the restart: test too slow");
        }
        if (a->id == c2)
            CHECK_INT(a->attempts, 1);
    }
    CHECK(order[0] && order[1] && order[0] < order[1], "a1 (under way at shutdown) then a2: %lld %lld",
          (long long)order[0], (long long)order[1]);
    store_counts_t counts;
    ferry__store_msg_counts(x.store, "sms", &counts);
    CHECK_INT(counts.pending, 0);
    teardown(&x);
}

int main(void)
{
    srand(1);
    ferry__log_set_level(FERRY_LOG_WARN); /* not a line per retry */
    test_order();
    test_backoff();
    test_jitter();
    test_retry_after();
    test_max_attempts();
    test_rescan_behind_flight();
    test_max_age();
    test_fail();
    test_dedup();
    test_in_flight_limit();
    test_window();
    test_restart();
    return check_summary();
}
