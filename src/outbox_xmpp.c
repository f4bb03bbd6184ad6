/* outbox_xmpp.c: the durable queue of stanzas on their way from a network to
 * XMPP. XEP-0114 has no acknowledgements, so after each batch the link sends
 * a ping: the server answers in order, so its answer proves it has taken
 * every stanza written before. Only then are they marked done; whatever was
 * written but not acknowledged when the link or the process died is sent
 * again (at least once).
 *
 * A poison stanza (one the server answers by closing the stream) would come
 * back first after every reconnect and hold up everything behind it. So
 * after a drop with stanzas unacknowledged, those are sent again one at a
 * time, each with its own ping: the one the link drops on is then known,
 * and after POISON_TRIES drops it goes to the dead list with the reason
 * (`ferry queue` shows it), and the rest flows. Rows stored before text was
 * cleaned on the way in are cleaned as they are loaded.
 *
 * With several instances on one PostgreSQL store, any of them stores what
 * comes in, and one sends: the holder of the component's lease for this
 * direction (one conversation, so one order for everything), while its link
 * is up. It lets the lease go when its link drops; the others try again when
 * the store tells of new rows and every lease period, so a dead holder's
 * rows go out once its lease runs out. Another instance may commit a row
 * with a lower id after higher ones were read, so there is no "read up to"
 * mark: each read starts from the oldest pending row, leaving out those
 * written and not yet acknowledged, and finds such a row in its place
 * (before anything committed after it); rows are marked done by id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "ferry/log.h"
#include "ferry/text.h"
#include "outbox.h"

#define BATCH 256
#define MAX_UNACKED 4096
#define POISON_TRIES 3
#define LEASE_RETRY_MS 1000

struct ferry__xmpp_outbox {
    uv_loop_t *loop;
    store_t *store;
    char *component;
    ferry__xmpp_link_t *link;
    int64_t sent_upto;    /* highest id written on this connection */
    int64_t *written;     /* ids written, answer not yet seen, in order */
    size_t unacked;       /* how many */
    unsigned generation;  /* bumps on every link-up: old acks are void */
    int freed;
    size_t acks_pending;  /* barrier callbacks still to come */
    unsigned long long delivered;
    int64_t suspect_upto; /* unacknowledged at a drop: sent one at a time */
    int64_t lone_id;      /* while one at a time: the row written, unanswered */
    int lone_attempts;    /* drops it has caused so far, from the store */
    int64_t lease_ms, lease_until; /* the sending lease: ours until then (0: not) */
    uv_timer_t *retry;    /* another instance holds it: try again later */
};

typedef struct ack {
    ferry__xmpp_outbox_t *ob;
    int64_t upto;
    size_t count;
    unsigned generation;
} ack_t;

static void pump(ferry__xmpp_outbox_t *ob);

static void on_ack(void *arg, int ok)
{
    ack_t *a = arg;
    ferry__xmpp_outbox_t *ob = a->ob;
    ob->acks_pending--;
    if (ob->freed) {
        if (ob->acks_pending == 0)
            free(ob);
        free(a);
        return;
    }
    if (ok && a->generation == ob->generation) {
        /* Answers come in order: the batch is at the front. */
        ferry__store_msg_done_ids(ob->store, ob->written, a->count);
        ob->unacked -= a->count;
        memmove(ob->written, ob->written + a->count, ob->unacked * sizeof *ob->written);
        ob->delivered += a->count;
        ob->lone_id = 0;
        if (ob->suspect_upto && a->upto >= ob->suspect_upto) {
            ob->suspect_upto = 0;
            ferry_log_info(ob->component, "the stanzas unanswered at the last drop are through; "
                           "sending in batches again");
        }
        pump(ob);
    }
    free(a);
}

typedef struct send_ctx {
    ferry__xmpp_outbox_t *ob;
    size_t sent;
} send_ctx_t;

static void on_row(void *arg, const store_row_t *r)
{
    send_ctx_t *sc = arg;
    ferry__xmpp_outbox_t *ob = sc->ob;
    const char *text = r->payload;
    size_t len = r->payload_len;
    char *clean = NULL;
    if (!ferry_xml_text_valid(text, len)) {
        /* Stored by a ferry that did not clean text on the way in. */
        text = clean = ferry_xml_text_dup(text, len, &len);
        ferry_log_warn(ob->component, "stored stanza %lld held bytes XML does not allow; "
                       "sent with them replaced by U+FFFD", (long long)r->id);
    }
    int rc = ferry__xmpp_link_send_raw(ob->link, text, len);
    free(clean);
    if (rc != 0)
        return;
    ob->sent_upto = r->id;
    ob->written[ob->unacked + sc->sent++] = r->id;
    if (ob->suspect_upto) {
        ob->lone_id = r->id;
        ob->lone_attempts = r->attempts;
    }
}

static void on_retry(uv_timer_t *t) { pump(t->data); }

/* Whether this instance sends: it holds the lease for at least half a
 * lease more, claimed now if needed; else a new try is set. */
static int leased(ferry__xmpp_outbox_t *ob)
{
    int64_t now = ferry__store_now_ms();
    if (ob->lease_until - now > ob->lease_ms / 2)
        return 1;
    int rc = ferry__store_lease(ob->store, ob->component, STORE_TO_XMPP, "");
    if (rc == 1) {
        ob->lease_until = now + ob->lease_ms;
        return 1;
    }
    ob->lease_until = 0;
    uv_timer_start(ob->retry, on_retry, rc == 0 ? (uint64_t)ob->lease_ms : LEASE_RETRY_MS, 0);
    return 0;
}

static void pump(ferry__xmpp_outbox_t *ob)
{
    if (!ferry__xmpp_link_is_up(ob->link) || !leased(ob))
        return;
    while (ferry__xmpp_link_is_up(ob->link) && ob->unacked < MAX_UNACKED) {
        size_t batch = BATCH;
        if (ob->suspect_upto) {
            if (ob->unacked)
                return; /* one at a time: wait for its answer */
            batch = 1;
        }
        send_ctx_t sc = {ob, 0};
        int n = ferry__store_msg_pending_but(ob->store, ob->component, STORE_TO_XMPP, ob->written,
                                             ob->unacked, batch, on_row, &sc);
        if (sc.sent) {
            ack_t *a = ferry_malloc(sizeof *a);
            *a = (ack_t){ob, ob->sent_upto, sc.sent, ob->generation};
            if (ferry__xmpp_link_barrier(ob->link, on_ack, a) == 0) {
                ob->acks_pending++;
                ob->unacked += sc.sent;
            } else {
                free(a);
            }
        }
        if (n < (int)batch)
            return;
    }
}

static void on_commit(void *arg) { pump(arg); }

static void on_store_event(void *arg, int event, const char *text)
{
    (void)text;
    if (event == STORE_EV_ROWS)
        pump(arg);
}

ferry__xmpp_outbox_t *ferry__xmpp_outbox_new(uv_loop_t *loop, store_t *store, const char *component,
                               ferry__xmpp_link_t *link)
{
    ferry__xmpp_outbox_t *ob = ferry_calloc(1, sizeof *ob);
    ob->loop = loop;
    ob->store = store;
    ob->component = ferry_strdup(component);
    ob->link = link;
    ob->lease_ms = (int64_t)(ferry__store_lease_seconds(store) * 1000);
    ob->written = ferry_malloc((MAX_UNACKED + BATCH) * sizeof *ob->written);
    ob->retry = ferry_malloc(sizeof *ob->retry);
    uv_timer_init(loop, ob->retry);
    ob->retry->data = ob;
    ferry__store_listen(store, on_commit, ob);
    ferry__store_watch(store, on_store_event, ob);
    return ob;
}

int ferry__xmpp_outbox_put(ferry__xmpp_outbox_t *ob, const char *dedup, const char *text,
                           size_t len)
{
    /* The commit listener sends it: never before it is durable. Its sender
     * hears only after the commit (ferry_outbox_sync()): no need to wait for
     * the row here. */
    return ferry__store_msg_put(ob->store, ob->component, STORE_TO_XMPP, "", dedup, text, len);
}

void ferry__xmpp_outbox_link_up(ferry__xmpp_outbox_t *ob)
{
    /* Start over from the oldest pending row: what was written on the last
     * connection without an answer goes again. */
    ob->generation++;
    ob->sent_upto = 0;
    ob->unacked = 0;
    pump(ob);
}

void ferry__xmpp_outbox_link_down(ferry__xmpp_outbox_t *ob, const char *reason)
{
    uv_timer_stop(ob->retry);
    if (ob->lease_until) { /* another instance whose link is up takes over */
        ob->lease_until = 0;
        ferry__store_lease_release(ob->store, ob->component, STORE_TO_XMPP, "");
    }
    if (ob->lone_id) {
        int attempts = ob->lone_attempts + 1;
        char why[400];
        snprintf(why, sizeof why, "the XMPP server dropped the link after it %d time(s): %s",
                 attempts, reason);
        if (attempts >= POISON_TRIES) {
            ferry_log_warn(ob->component, "stanza %lld moved to the dead list: %s",
                           (long long)ob->lone_id, why);
            ferry__store_msg_update(ob->store, ob->lone_id, STORE_DEAD, attempts, 0, why);
        } else {
            ferry__store_msg_update(ob->store, ob->lone_id, STORE_PENDING, attempts, 0, why);
        }
        ob->lone_id = 0;
    } else if (ob->unacked && ob->sent_upto > ob->suspect_upto) {
        ob->suspect_upto = ob->sent_upto;
        ferry_log_info(ob->component, "%zu stanza(s) unanswered when the link dropped: "
                       "sending them again one at a time", ob->unacked);
    }
}

static void on_retry_closed(uv_handle_t *h) { free(h); }

void ferry__xmpp_outbox_free(ferry__xmpp_outbox_t *ob)
{
    ferry__store_unlisten(ob->store, on_commit, ob);
    ferry__store_unwatch(ob->store, on_store_event, ob);
    uv_close((uv_handle_t *)ob->retry, on_retry_closed);
    free(ob->written);
    free(ob->component);
    ob->freed = 1;
    if (ob->acks_pending == 0)
        free(ob);
}

unsigned long long ferry__xmpp_outbox_delivered(const ferry__xmpp_outbox_t *ob)
{
    return ob->delivered;
}
