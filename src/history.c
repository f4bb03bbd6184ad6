/* history.c: ferry/history.h, the message archive per group chat, kept in
 * the component's store; text is cleaned both ways. With several
 * instances, each room is archived by the one holding its lease, and the
 * others keep what they saw to fill the archive in when they take over. */
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "ferry/alloc.h"
#include "ferry/history.h"
#include "ferry/log.h"
#include "ferry/text.h"

/* Kept messages per room while another instance archives it: at most
 * KEEP_MAX, and none older than two leases (the holder's lease runs out at
 * most one lease after it died, and the next message after that takes it
 * over, within a third of one more) plus SKEW_MS, the room left for the
 * instances' clocks and the holder's commit delay. */
#define KEEP_MAX 4096
#define SKEW_MS 5000
/* While a room not held has kept messages, it tries to take the lease
 * every third of a lease (as the holder renews it), with or without new
 * messages, so that what it kept goes in even if the room goes quiet. When
 * another instance lets a lease go (or commits rows: the store does not
 * say which), sooner, but not more than once per EVENT_RETRY_MS. */
#define EVENT_RETRY_MS 1000

int ferry_history_add(ferry_component_t *comp, const char *room, int64_t ts_ms, const char *nick,
                      const char *body, int64_t *id)
{
    if (!comp->gw->store)
        return -1;
    size_t nl = strlen(nick), bl = strlen(body);
    char *n = ferry_xml_text_valid(nick, nl) ? NULL : ferry_xml_text_dup(nick, nl, NULL);
    char *b = ferry_xml_text_valid(body, bl) ? NULL : ferry_xml_text_dup(body, bl, NULL);
    int rc = ferry__store_history_add(comp->gw->store, comp->name, room, ts_ms, n ? n : nick, b ? b : body,
                               id);
    free(n);
    free(b);
    return rc;
}

typedef struct history_load {
    ferry_history_cb cb;
    void *arg;
} history_load_t;

/* Rows stored before text was cleaned on the way in are cleaned on the way
 * out: a replay must never carry what the server would refuse. */
static void on_history_row(void *arg, int64_t id, int64_t ts_ms, const char *nick,
                           const char *body)
{
    history_load_t *hl = arg;
    size_t nl = strlen(nick), bl = strlen(body);
    if (ferry_xml_text_valid(nick, nl) && ferry_xml_text_valid(body, bl)) {
        hl->cb(hl->arg, id, ts_ms, nick, body);
        return;
    }
    char *n = ferry_xml_text_dup(nick, nl, NULL), *b = ferry_xml_text_dup(body, bl, NULL);
    hl->cb(hl->arg, id, ts_ms, n, b);
    free(n);
    free(b);
}

int ferry_history_query(ferry_component_t *comp, const char *room, const ferry_history_query_t *q,
                        ferry_history_cb cb, void *arg)
{
    if (!comp->gw->store)
        return -1;
    store_history_filter_t f = {q->after_id, q->before_id, q->start_ms, q->end_ms, q->limit,
                                q->newest_first};
    history_load_t hl = {cb, arg};
    return ferry__store_history_query(comp->gw->store, comp->name, room, &f, on_history_row, &hl);
}

int ferry_history_prune(ferry_component_t *comp, int64_t before_ms)
{
    return comp->gw->store ? ferry__store_history_prune(comp->gw->store, before_ms) : -1;
}

/* ---- one archive per room across instances ---- */

typedef struct kept {
    int64_t ts;
    char *nick, *body; /* cleaned as the archive stores them */
} kept_t;

struct ferry_history_room {
    ferry_component_t *comp;
    store_t *store;
    char *key;
    int held;            /* this instance archives the room */
    int64_t next_claim;  /* when to renew the lease (held) or try to take it */
    int64_t tried;
    uv_timer_t retry;    /* armed while not held with messages kept */
    kept_t *kept;        /* kept[first..n): seen while another archives it */
    size_t first, n, cap;
};

/* A lease let go once the store has committed what was archived under it;
 * cancelled when the room is opened again before (the lease is still
 * ours). Few, and for the time of one commit. */
typedef struct release {
    struct release *next;
    store_t *store;
    char *component, *key;
    int cancelled;
} release_t;

static release_t *releases;

static int64_t lease_ms(const ferry_history_room_t *r)
{
    return (int64_t)(ferry__store_lease_seconds(r->store) * 1000);
}

static char *clean_dup(const char *text)
{
    size_t len = strlen(text);
    return ferry_xml_text_valid(text, len) ? ferry_strdup(text) : ferry_xml_text_dup(text, len, NULL);
}

static void kept_drop_first(ferry_history_room_t *r)
{
    free(r->kept[r->first].nick);
    free(r->kept[r->first].body);
    r->first++;
}

/* Drops what is too old to be missing from the archive, and the oldest
 * beyond ROOM_FOR messages. */
static void kept_trim(ferry_history_room_t *r, int64_t now, size_t room_for)
{
    int64_t oldest = now - 2 * lease_ms(r) - SKEW_MS;
    while (r->first < r->n && (r->kept[r->first].ts < oldest || r->n - r->first > room_for))
        kept_drop_first(r);
    if (r->first == r->n)
        r->first = r->n = 0;
}

static void keep(ferry_history_room_t *r, int64_t now, int64_t ts, const char *nick,
                 const char *body)
{
    kept_trim(r, now, KEEP_MAX - 1);
    if (r->n == r->cap && r->first > 0) {
        memmove(r->kept, r->kept + r->first, (r->n - r->first) * sizeof *r->kept);
        r->n -= r->first;
        r->first = 0;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->kept = ferry_realloc(r->kept, r->cap * sizeof *r->kept);
    }
    r->kept[r->n++] = (kept_t){ts, clean_dup(nick), clean_dup(body)};
}

typedef struct tail {
    kept_t *row; /* newest first */
    size_t n, cap;
} tail_t;

static void on_tail_row(void *arg, int64_t id, int64_t ts, const char *nick, const char *body)
{
    (void)id;
    tail_t *t = arg;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->row = ferry_realloc(t->row, t->cap * sizeof *t->row);
    }
    t->row[t->n++] = (kept_t){ts, ferry_strdup(nick), ferry_strdup(body)};
}

static int same(const kept_t *a, const kept_t *b)
{
    return strcmp(a->nick, b->nick) == 0 && strcmp(a->body, b->body) == 0;
}

/* How many of the K kept messages (oldest first) the archive has: the
 * longest run of them, from the first, that ends as the archive's newest
 * rows T end (every instance in a channel sees its messages in the same
 * order, so the holder archived a run from the start of what we kept). */
static size_t archived_run(const kept_t *k, size_t n, const tail_t *t)
{
    for (size_t c = n; c > 0; c--) {
        size_t overlap = c < t->n ? c : t->n, j = 0;
        while (j < overlap && same(&k[c - 1 - j], &t->row[j]))
            j++;
        if (overlap && j == overlap)
            return c;
    }
    return 0;
}

/* The lease is ours now: what we kept and the archive lacks goes in,
 * after what the previous holder archived. */
static void catch_up(ferry_history_room_t *r)
{
    size_t n = r->n - r->first;
    if (!n)
        return;
    kept_t *k = r->kept + r->first;
    ferry_history_query_t q = {.start_ms = k[0].ts - SKEW_MS, .limit = (int64_t)n + 64,
                               .newest_first = 1};
    tail_t t = {0};
    ferry_history_query(r->comp, r->key, &q, on_tail_row, &t);
    size_t from = archived_run(k, n, &t);
    for (size_t i = 0; i < t.n; i++) {
        free(t.row[i].nick);
        free(t.row[i].body);
    }
    free(t.row);
    if (from < n)
        ferry_log_info(r->comp->name, "%s: archiving %zu message(s) the previous archiver did not",
                       r->key, n - from);
    for (size_t i = from; i < n; i++)
        ferry_history_add(r->comp, r->key, k[i].ts, k[i].nick, k[i].body, NULL);
    while (r->first < r->n)
        kept_drop_first(r);
    r->first = r->n = 0;
}

static void on_retry(uv_timer_t *t);

static void schedule(ferry_history_room_t *r, int64_t now)
{
    if (r->held || r->first == r->n)
        uv_timer_stop(&r->retry);
    else
        uv_timer_start(&r->retry, on_retry,
                       r->next_claim > now ? (uint64_t)(r->next_claim - now) : 0, 0);
}

static void claim(ferry_history_room_t *r, int64_t now)
{
    int rc = ferry__store_lease(r->store, r->comp->name, STORE_HISTORY, r->key);
    r->tried = now;
    r->next_claim = now + lease_ms(r) / 3;
    if (rc == 1 && !r->held) {
        r->held = 1;
        catch_up(r);
    } else if (rc == 0) {
        r->held = 0; /* another instance took it (ours ran out) */
    } /* -1: as it was; the store is away */
    schedule(r, now);
}

static void on_retry(uv_timer_t *t)
{
    ferry_history_room_t *r = t->data;
    int64_t now = ferry_now_ms();
    kept_trim(r, now, KEEP_MAX);
    if (r->first < r->n)
        claim(r, now);
}

static void on_store_event(void *arg, int event, const char *text)
{
    (void)text;
    ferry_history_room_t *r = arg;
    if (event == STORE_EV_ROWS && !r->held && r->next_claim > r->tried + EVENT_RETRY_MS) {
        r->next_claim = r->tried + EVENT_RETRY_MS;
        schedule(r, ferry_now_ms());
    }
}

ferry_history_room_t *ferry_history_room_open(ferry_component_t *comp, const char *room)
{
    ferry_history_room_t *r = ferry_calloc(1, sizeof *r);
    r->comp = comp;
    r->store = comp->gw->store;
    r->key = ferry_strdup(room);
    uv_timer_init(ferry_component_loop(comp), &r->retry);
    r->retry.data = r;
    if (!r->store)
        return r;
    ferry__store_watch(r->store, on_store_event, r);
    for (release_t *rel = releases; rel; rel = rel->next)
        if (!rel->cancelled && rel->store == r->store && strcmp(rel->component, comp->name) == 0 &&
            strcmp(rel->key, room) == 0) {
            rel->cancelled = 1;
            r->held = 1; /* renewed at the first message (next_claim 0) */
        }
    return r;
}

int ferry_history_room_add(ferry_history_room_t *r, int64_t ts_ms, const char *nick,
                           const char *body, int64_t *id)
{
    if (!r->store)
        return -1;
    int64_t now = ferry_now_ms();
    if (now >= r->next_claim)
        claim(r, now);
    if (r->held)
        return ferry_history_add(r->comp, r->key, ts_ms, nick, body, id) == 0 ? 1 : -1;
    keep(r, now, ts_ms, nick, body);
    schedule(r, now);
    return 0;
}

static void on_released_committed(void *arg, int ok)
{
    (void)ok; /* rolled back: the next holder's kept messages cover them */
    release_t *rel = arg;
    for (release_t **p = &releases; *p; p = &(*p)->next)
        if (*p == rel) {
            *p = rel->next;
            break;
        }
    if (!rel->cancelled)
        ferry__store_lease_release(rel->store, rel->component, STORE_HISTORY, rel->key);
    free(rel->component);
    free(rel->key);
    free(rel);
}

static void on_room_closed(uv_handle_t *h)
{
    ferry_history_room_t *r = h->data;
    while (r->first < r->n)
        kept_drop_first(r);
    free(r->kept);
    free(r->key);
    free(r);
}

void ferry_history_room_close(ferry_history_room_t *r)
{
    if (!r)
        return;
    if (r->store) {
        ferry__store_unwatch(r->store, on_store_event, r);
        if (r->held) {
            release_t *rel = ferry_calloc(1, sizeof *rel);
            rel->store = r->store;
            rel->component = ferry_strdup(r->comp->name);
            rel->key = ferry_strdup(r->key);
            rel->next = releases;
            releases = rel;
            ferry__store_sync(r->store, on_released_committed, rel);
        }
    }
    uv_close((uv_handle_t *)&r->retry, on_room_closed);
}
