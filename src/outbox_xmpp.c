/* outbox_xmpp.c: the durable queue of stanzas on their way from a network to
 * XMPP. XEP-0114 has no acknowledgements, so after each batch the link sends
 * a ping: the server answers in order, so its answer proves it has taken
 * every stanza written before. Only then are they marked done; whatever was
 * written but not acknowledged when the link or the process died is sent
 * again (at least once). */
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "outbox.h"

#define BATCH 256
#define MAX_UNACKED 4096

struct xmpp_outbox {
    store_t *store;
    char *component;
    xmpp_link_t *link;
    int64_t sent_upto;    /* highest id written on this connection */
    size_t unacked;       /* written, answer not yet seen */
    unsigned generation;  /* bumps on every link-up: old acks are void */
    int freed;
    size_t acks_pending;  /* barrier callbacks still to come */
    unsigned long long delivered;
};

typedef struct ack {
    xmpp_outbox_t *ob;
    int64_t upto;
    size_t count;
    unsigned generation;
} ack_t;

static void pump(xmpp_outbox_t *ob);

static void on_ack(void *arg, int ok)
{
    ack_t *a = arg;
    xmpp_outbox_t *ob = a->ob;
    ob->acks_pending--;
    if (ob->freed) {
        if (ob->acks_pending == 0)
            free(ob);
        free(a);
        return;
    }
    if (ok && a->generation == ob->generation) {
        store_msg_done_upto(ob->store, ob->component, STORE_TO_XMPP, a->upto);
        ob->unacked -= a->count;
        ob->delivered += a->count;
        pump(ob);
    }
    free(a);
}

typedef struct send_ctx {
    xmpp_outbox_t *ob;
    size_t sent;
} send_ctx_t;

static void on_row(void *arg, const store_row_t *r)
{
    send_ctx_t *sc = arg;
    if (xmpp_link_send_raw(sc->ob->link, r->payload, r->payload_len) != 0)
        return;
    sc->ob->sent_upto = r->id;
    sc->sent++;
}

static void pump(xmpp_outbox_t *ob)
{
    while (xmpp_link_is_up(ob->link) && ob->unacked < MAX_UNACKED) {
        send_ctx_t sc = {ob, 0};
        int n = store_msg_pending(ob->store, ob->component, STORE_TO_XMPP, ob->sent_upto, BATCH,
                                  on_row, &sc);
        if (sc.sent) {
            ack_t *a = malloc(sizeof *a);
            *a = (ack_t){ob, ob->sent_upto, sc.sent, ob->generation};
            if (xmpp_link_barrier(ob->link, on_ack, a) == 0) {
                ob->acks_pending++;
                ob->unacked += sc.sent;
            } else {
                free(a);
            }
        }
        if (n < BATCH)
            return;
    }
}

static void on_commit(void *arg) { pump(arg); }

xmpp_outbox_t *xmpp_outbox_new(uv_loop_t *loop, store_t *store, const char *component,
                               xmpp_link_t *link)
{
    (void)loop;
    xmpp_outbox_t *ob = calloc(1, sizeof *ob);
    ob->store = store;
    ob->component = strdup(component);
    ob->link = link;
    store_listen(store, on_commit, ob);
    return ob;
}

int xmpp_outbox_put(xmpp_outbox_t *ob, const char *dedup, const char *text, size_t len)
{
    int64_t id;
    /* The commit listener sends it: never before it is durable. */
    return store_msg_add(ob->store, ob->component, STORE_TO_XMPP, "", dedup, text, len, &id);
}

void xmpp_outbox_link_up(xmpp_outbox_t *ob)
{
    /* Start over from the oldest pending row: what was written on the last
     * connection without an answer goes again. */
    ob->generation++;
    ob->sent_upto = 0;
    ob->unacked = 0;
    pump(ob);
}

void xmpp_outbox_free(xmpp_outbox_t *ob)
{
    store_unlisten(ob->store, on_commit, ob);
    free(ob->component);
    ob->freed = 1;
    if (ob->acks_pending == 0)
        free(ob);
}

unsigned long long xmpp_outbox_delivered(const xmpp_outbox_t *ob) { return ob->delivered; }
