/* xmpp_link.c: the XEP-0114 component stream, owned on libuv rather than by
 * libstrophe's connection code (which, in the Debian 12 version, crashes on
 * component send, polls with select() and drops its queue on reconnect).
 *
 * The bytes travel over a ferry/net.h connection. Each connection attempt is
 * a conn_t; when it fails it is orphaned and freed once its connection is
 * closed (from the loop), so that a failure found deep inside the parser's
 * callbacks never frees memory the parser is still using. The link outlives
 * its connections and holds the queue, the timers and the backoff. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "ferry/alloc.h"
#include "ferry/backoff.h"
#include "ferry/log.h"
#include "ferry/net.h"
#include "xml_stream.h"
#include "xmpp_link.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define CLOSE_WAIT_MS 2000
#define PING_CHECK_MS 1000 /* how often an unanswered ping looks at the server's progress */

enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_OPENING, LINK_UP, LINK_WAITING, LINK_CLOSING };

typedef struct conn conn_t;

typedef struct barrier {
    struct barrier *next;
    char id[80];
    void (*cb)(void *arg, int ok);
    void *arg;
} barrier_t;

typedef struct queued {
    struct queued *next;
    size_t len;
    char data[];
} queued_t;

struct ferry__xmpp_link {
    uv_loop_t *loop;
    xmpp_ctx_t *ctx;
    char *host, *domain, *secret, *scope, *ping_to;
    int port;
    size_t queue_size, max_stanza_size;
    uint64_t ping_interval_ms, ping_timeout_ms, keepalive_ms;
    ferry__xmpp_link_handlers_t h;
    void *arg;

    enum link_state state;
    conn_t *conn;
    unsigned attempt;
    char ping_id[80];
    /* The ping under way: its end in the stream (ferry_net_written()), whether
     * the server has received it, what it had acknowledged at the last sign
     * of progress, and when that was (see ping_check()). */
    uint64_t ping_mark, ping_acked, ping_since;
    int ping_delivered;
    int ping_unsure;             /* its answer may have been lost (answers_away) */
    char ping_after[80];         /* the last barrier written before it ("": none) */
    char id_secret[33];          /* see new_id_secret() */
    unsigned long long id_seq;
    uint64_t last_write;

    queued_t *head, *tail;
    barrier_t *barriers, **barriers_tail; /* answers come in order */
    ferry__xmpp_link_stats_t stats;

    uv_timer_t retry_timer, ping_timer, ping_deadline, keepalive_timer, close_timer;
    int timers_open;
    void (*close_done)(void *);
    void *close_arg;
};

struct conn {
    ferry__xmpp_link_t *link; /* NULL once orphaned */
    ferry_net_t *net;
    int saw_header;
    xml_stream_t *xml;
};

static void connect_attempt(ferry__xmpp_link_t *link);
static void conn_fail(conn_t *conn, const char *reason);
static void finish_close(ferry__xmpp_link_t *link);

/* ---- writing ---- */

/* The connection failed or the server closed it: STATUS and REASON as
 * ferry/net.h gives them. */
static void net_failed(conn_t *conn, int status, const char *reason)
{
    if (status == UV_EOF && !conn->saw_header)
        reason = "the server closed the connection before the stream header";
    conn_fail(conn, reason ? reason : uv_strerror(status));
}

/* A write the connection refuses means it has failed (it has no bound: see
 * connect_attempt()). The link learns it now rather than from closed(), so
 * that what is sent meanwhile waits in the queue for the next connection. */
static void conn_write(conn_t *conn, const char *data, size_t len)
{
    int rc = ferry_net_write(conn->net, data, len);
    if (rc == 0)
        conn->link->last_write = uv_now(conn->link->loop);
    else
        net_failed(conn, rc, ferry_net_failure(conn->net));
}

static void conn_write_str(conn_t *conn, const char *s) { conn_write(conn, s, strlen(s)); }

/* ---- counting ---- */

static int kind_of(const char *text)
{
    if (strncmp(text, "<message", 8) == 0)
        return KIND_MESSAGE;
    if (strncmp(text, "<presence", 9) == 0)
        return KIND_PRESENCE;
    if (strncmp(text, "<iq", 3) == 0)
        return KIND_IQ;
    return KIND_OTHER;
}

/* ---- the queue ---- */

static void queue_push(ferry__xmpp_link_t *link, const char *data, size_t len)
{
    queued_t *q = ferry_malloc(sizeof *q + len);
    q->next = NULL;
    q->len = len;
    memcpy(q->data, data, len);
    if (link->tail)
        link->tail->next = q;
    else
        link->head = q;
    link->tail = q;
    link->stats.queued++;
    while (link->stats.queued > link->queue_size) {
        queued_t *old = link->head;
        link->head = old->next;
        free(old);
        link->stats.queued--;
        link->stats.dropped++;
        ferry_log_warn(link->scope, "outbound queue full (%zu stanzas): dropped the oldest, "
                       "%llu dropped so far", link->queue_size, link->stats.dropped);
    }
}

static void queue_flush(ferry__xmpp_link_t *link)
{
    size_t n = 0;
    while (link->head && link->state == LINK_UP) {
        queued_t *q = link->head;
        link->head = q->next;
        if (!link->head)
            link->tail = NULL;
        link->stats.queued--;
        link->stats.out[kind_of(q->data)]++;
        conn_write(link->conn, q->data, q->len);
        free(q);
        n++;
    }
    if (n)
        ferry_log_info(link->scope, "sent %zu stanza(s) queued while the link was down", n);
}

static void queue_clear(ferry__xmpp_link_t *link)
{
    while (link->head) {
        queued_t *q = link->head;
        link->head = q->next;
        free(q);
    }
    link->tail = NULL;
    link->stats.queued = 0;
}

void ferry__xmpp_link_send_text(ferry__xmpp_link_t *link, const char *text, size_t len)
{
    if (link->state == LINK_UP) {
        link->stats.out[kind_of(text)]++;
        conn_write(link->conn, text, len);
    } else if (link->state != LINK_CLOSING) {
        queue_push(link, text, len);
    }
}

int ferry__xmpp_link_send_raw(ferry__xmpp_link_t *link, const char *text, size_t len)
{
    if (link->state != LINK_UP)
        return -1;
    link->stats.out[kind_of(text)]++;
    conn_write(link->conn, text, len);
    return 0;
}

/* A new secret for the ids of this connection's pings: 128 random bits in
 * hex. With it, no user can guess an id, so that no stanza of theirs passes
 * for the server's answer (ids were once a plain counter). */
static void new_id_secret(ferry__xmpp_link_t *link)
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        /* OpenSSL's generator does not fail once seeded from getrandom(). */
        ferry_log_error(link->scope, "no random bytes from OpenSSL; ping ids use the clock");
        uint64_t t = uv_hrtime();
        memset(r, 0, sizeof r);
        memcpy(r, &t, sizeof t);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(link->id_secret + 2 * i, 3, "%02x", r[i]);
}

/* PREFIX, the connection's secret and a sequence number. */
static void next_id(ferry__xmpp_link_t *link, char *buf, size_t len, const char *prefix)
{
    snprintf(buf, len, "%s%s-%llu", prefix, link->id_secret, ++link->id_seq);
}

/* Whether ST is the server's answer to our iq ID: the id alone is not
 * enough, since a user can send an iq with any id to the component; the
 * answer comes from the server's domain, of type result or error. */
static int server_answer(const ferry__xmpp_link_t *link, xmpp_stanza_t *st, const char *id)
{
    const char *name = xmpp_stanza_get_name(st);
    const char *sid = xmpp_stanza_get_id(st);
    const char *type = xmpp_stanza_get_type(st);
    const char *from = xmpp_stanza_get_from(st);
    return id[0] && name && strcmp(name, "iq") == 0 && sid && strcmp(sid, id) == 0 && type &&
           (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) && from &&
           strcasecmp(from, link->ping_to) == 0;
}

int ferry__xmpp_link_barrier(ferry__xmpp_link_t *link, void (*cb)(void *arg, int ok), void *arg)
{
    if (link->state != LINK_UP)
        return -1;
    barrier_t *b = ferry_calloc(1, sizeof *b);
    next_id(link, b->id, sizeof b->id, "ferry-ack-");
    b->cb = cb;
    b->arg = arg;
    *link->barriers_tail = b;
    link->barriers_tail = &b->next;
    char buf[512];
    snprintf(buf, sizeof buf,
             "<iq type='get' id='%s' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
             b->id, link->domain, link->ping_to);
    conn_write_str(link->conn, buf);
    return 0;
}

static void barriers_fail(ferry__xmpp_link_t *link)
{
    barrier_t *b = link->barriers;
    link->barriers = NULL;
    link->barriers_tail = &link->barriers;
    while (b) {
        barrier_t *next = b->next;
        b->cb(b->arg, 0);
        free(b);
        b = next;
    }
}

/* Answers barrier ID and those before it (the server answers in order;
 * with several instances an answer may come through another, ahead of
 * an earlier one). 0 when ID is not one of ours. */
static int answer_barrier(ferry__xmpp_link_t *link, const char *id)
{
    barrier_t *b = link->barriers;
    while (b && strcmp(b->id, id) != 0)
        b = b->next;
    if (!b)
        return 0;
    barrier_t *last = b;
    do {
        b = link->barriers;
        link->barriers = b->next;
        if (!link->barriers)
            link->barriers_tail = &link->barriers;
        b->cb(b->arg, 1);
        free(b);
    } while (b != last);
    return 1;
}

/* The answer to the keepalive ping or a barrier, if ID is one. */
static int our_answer(ferry__xmpp_link_t *link, const char *id)
{
    if (link->ping_id[0] && strcmp(id, link->ping_id) == 0) {
        link->ping_id[0] = 0;
        uv_timer_stop(&link->ping_deadline);
        if (link->ping_after[0]) /* answered in order: so were the barriers before it */
            answer_barrier(link, link->ping_after);
        return 1;
    }
    return answer_barrier(link, id);
}

/* The server's answer to a ping of ours or, when its id has the form of
 * ferry's ids but is not ours, of another instance's. */
static int server_answered(ferry__xmpp_link_t *link, xmpp_stanza_t *st)
{
    const char *id = xmpp_stanza_get_id(st);
    if (!id || strncmp(id, "ferry-", 6) != 0 || !server_answer(link, st, id))
        return 0;
    if (!our_answer(link, id) && link->h.foreign_answer)
        link->h.foreign_answer(link->arg, id);
    return 1;
}

void ferry__xmpp_link_answered(ferry__xmpp_link_t *link, const char *id)
{
    if (link->state == LINK_UP)
        our_answer(link, id);
}

/* ---- connection lifetime ---- */

static void conn_free(void *arg)
{
    conn_t *conn = arg;
    ferry__xml_stream_free(conn->xml);
    free(conn);
}

/* Detaches CONN from its link; it is freed once its connection is closed. */
static void conn_drop(conn_t *conn)
{
    ferry__xmpp_link_t *link = conn->link;
    if (!link)
        return;
    conn->link = NULL;
    if (link->conn == conn)
        link->conn = NULL;
    if (conn->xml)
        ferry__xml_stream_stop(conn->xml);
    if (conn->net)
        ferry_net_close(conn->net, conn_free);
    else
        conn_free(conn);
}

static void on_retry(uv_timer_t *t)
{
    ferry__xmpp_link_t *link = t->data;
    link->stats.reconnects++;
    connect_attempt(link);
}

static void stop_link_timers(ferry__xmpp_link_t *link)
{
    uv_timer_stop(&link->ping_timer);
    uv_timer_stop(&link->ping_deadline);
    uv_timer_stop(&link->keepalive_timer);
}

static void conn_fail(conn_t *conn, const char *reason)
{
    ferry__xmpp_link_t *link = conn->link;
    if (!link)
        return;
    int was_up = link->state == LINK_UP, had_tcp = link->state != LINK_CONNECTING;
    /* Stanzas the kernel has not taken yet go with the connection. */
    size_t lost = conn->net ? ferry_net_pending(conn->net) : 0;
    link->stats.lost_bytes += lost;
    conn_drop(conn);
    stop_link_timers(link);
    barriers_fail(link);
    if (link->state == LINK_CLOSING) {
        finish_close(link);
        return;
    }
    snprintf(link->stats.last_error, sizeof link->stats.last_error, "%s", reason);
    link->state = LINK_WAITING;
    link->stats.up = 0;
    /* Jitter: many gateways restarted with their server do not reconnect in
     * lockstep. */
    uint64_t delay = ferry_backoff_ms(link->attempt, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    if (link->attempt < 16)
        link->attempt++;
    if (was_up && lost)
        ferry_log_warn(link->scope, "link to %s:%d lost: %s; %zu bytes of stanzas not yet sent are "
                       "lost; reconnecting in %.1f s", link->host, link->port, reason, lost,
                       (double)delay / 1000);
    else if (was_up)
        ferry_log_warn(link->scope, "link to %s:%d lost: %s; reconnecting in %.1f s", link->host,
                       link->port, reason, (double)delay / 1000);
    else if (had_tcp)
        ferry_log_warn(link->scope, "cannot link %s to %s:%d: %s; retrying in %.1f s",
                       link->domain, link->host, link->port, reason, (double)delay / 1000);
    else /* the reason names the host and port */
        ferry_log_warn(link->scope, "cannot link %s: %s; retrying in %.1f s", link->domain,
                       reason, (double)delay / 1000);
    uv_timer_start(&link->retry_timer, on_retry, delay, 0);
    if (was_up && link->h.state)
        link->h.state(link->arg, 0);
}

/* ---- the stream ---- */

static void send_stream_error(conn_t *conn, const char *condition, const char *text)
{
    char buf[512];
    snprintf(buf, sizeof buf,
             "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
             "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>%s</text></stream:error>"
             "</stream:stream>",
             condition, text);
    conn_write_str(conn, buf);
}

static void on_stream_open(void *arg, const char **attrs)
{
    conn_t *conn = arg;
    ferry__xmpp_link_t *link = conn->link;
    const char *id = NULL;
    for (int i = 0; attrs[i]; i += 2)
        if (strcmp(attrs[i], "id") == 0)
            id = attrs[i + 1];
    conn->saw_header = 1;
    if (!id || !*id) {
        /* Prosody opens with an empty id right before a stream error such as
         * host-unknown: wait for it (bounded by the handshake deadline). */
        ferry_log_debug(link->scope, "stream header without id; waiting for the server");
        return;
    }
    size_t n = strlen(id) + strlen(link->secret);
    char *input = ferry_malloc(n + 1);
    snprintf(input, n + 1, "%s%s", id, link->secret);
    char *digest = xmpp_sha1(link->ctx, (const unsigned char *)input, n);
    free(input);
    char handshake[96];
    snprintf(handshake, sizeof handshake, "<handshake>%s</handshake>", digest);
    xmpp_free(link->ctx, digest);
    conn_write_str(conn, handshake);
}

static const char *stream_error_hint(const char *condition)
{
    if (strcmp(condition, "not-authorized") == 0)
        return " (wrong component secret?)";
    if (strcmp(condition, "host-unknown") == 0)
        return " (is the domain configured as a component on the server?)";
    if (strcmp(condition, "conflict") == 0)
        return " (another connection already serves this domain)";
    return "";
}

static void on_stream_error(conn_t *conn, xmpp_stanza_t *err)
{
    const char *condition = "undefined-condition";
    const char *text = NULL;
    char *text_alloc = NULL;
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(err); c; c = xmpp_stanza_get_next(c)) {
        const char *name = xmpp_stanza_get_name(c);
        if (!name)
            continue;
        if (strcmp(name, "text") == 0)
            text = text_alloc = xmpp_stanza_get_text(c);
        else
            condition = name;
    }
    char reason[256];
    snprintf(reason, sizeof reason, "stream error %s%s%s%s", condition, text ? ": " : "",
             text ? text : "", stream_error_hint(condition));
    if (text_alloc)
        xmpp_free(conn->link->ctx, text_alloc);
    conn_fail(conn, reason);
}

static void send_ping(uv_timer_t *t);
static void on_deadline(uv_timer_t *t);

/* The next look at the ping under way: in at most LEFT ms. */
static void ping_check_in(ferry__xmpp_link_t *link, uint64_t left)
{
    uv_timer_start(&link->ping_deadline, on_deadline, left < PING_CHECK_MS ? left : PING_CHECK_MS,
                   0);
}

/* A ping's answer comes after everything written before it, so a server
 * that is slow to read a long backlog (a burst fanned out to a thousand
 * users) answers late, and is not dead: dropping the link then would lose the
 * whole backlog. So the ping's ping_timeout runs from the last time the
 * server took some of the bytes before the ping (its TCP acknowledged them),
 * and from when it received the ping itself. A server that stops reading
 * acknowledges nothing once its receive buffer is full; one that stops
 * answering has received the ping: both fail within ping_timeout (plus one
 * check). */
static void ping_check(ferry__xmpp_link_t *link)
{
    uint64_t now = uv_now(link->loop), acked = ferry_net_acked(link->conn->net);
    if (!link->ping_delivered && acked >= link->ping_mark) {
        link->ping_delivered = 1;
        link->ping_since = now;
    } else if (!link->ping_delivered && acked > link->ping_acked) {
        link->ping_acked = acked;
        link->ping_since = now;
    }
    if (link->h.answers_away && link->h.answers_away(link->arg))
        link->ping_unsure = 1;
    uint64_t waited = now - link->ping_since;
    if (waited < link->ping_timeout_ms) {
        ping_check_in(link, link->ping_timeout_ms - waited);
        return;
    }
    if (link->ping_delivered && link->ping_unsure) {
        /* The server took it; its answer may have been lost between
         * instances: the next ping asks again (and answers the barriers). */
        ferry_log_debug(link->scope, "a ping's answer may have been lost between instances "
                        "(the store was away); asking again");
        link->ping_id[0] = 0;
        return;
    }
    char reason[160];
    if (link->ping_delivered)
        snprintf(reason, sizeof reason, "no answer to a ping within %.0f s",
                 (double)link->ping_timeout_ms / 1000);
    else
        snprintf(reason, sizeof reason,
                 "the server took none of our %llu unread bytes within %.0f s",
                 (unsigned long long)(ferry_net_written(link->conn->net) - acked),
                 (double)link->ping_timeout_ms / 1000);
    conn_fail(link->conn, reason);
}

/* ping_deadline guards the handshake, then each ping. */
static void on_deadline(uv_timer_t *t)
{
    ferry__xmpp_link_t *link = t->data;
    if (!link->conn)
        return;
    if (link->state == LINK_UP) {
        ping_check(link);
        return;
    }
    char reason[96];
    snprintf(reason, sizeof reason, "no answer to the handshake within %.0f s",
             (double)link->ping_timeout_ms / 1000);
    conn_fail(link->conn, reason);
}

static void on_keepalive(uv_timer_t *t)
{
    ferry__xmpp_link_t *link = t->data;
    if (link->state == LINK_UP && uv_now(link->loop) - link->last_write >= link->keepalive_ms / 2)
        conn_write_str(link->conn, " ");
}

static void link_up(conn_t *conn)
{
    ferry__xmpp_link_t *link = conn->link;
    uv_timer_stop(&link->ping_deadline); /* it guarded the handshake */
    link->state = LINK_UP;
    link->stats.up = 1;
    link->attempt = 0;
    ferry_log_info(link->scope, "linked as %s to %s:%d", link->domain, link->host, link->port);
    uv_timer_start(&link->ping_timer, send_ping, link->ping_interval_ms, link->ping_interval_ms);
    uv_timer_start(&link->keepalive_timer, on_keepalive, link->keepalive_ms, link->keepalive_ms);
    queue_flush(link);
    if (link->h.state)
        link->h.state(link->arg, 1);
}

static void on_stream_stanza(void *arg, xmpp_stanza_t *st)
{
    conn_t *conn = arg;
    ferry__xmpp_link_t *link = conn->link;
    if (!link)
        return;
    const char *name = xmpp_stanza_get_name(st);
    if (strcmp(name, "stream:error") == 0) {
        on_stream_error(conn, st);
        return;
    }
    if (link->state != LINK_UP) {
        if (strcmp(name, "handshake") == 0)
            link_up(conn);
        else
            ferry_log_debug(link->scope, "ignoring <%s> before the handshake", name);
        return;
    }
    if (server_answered(link, st))
        return;
    char tag[16];
    snprintf(tag, sizeof tag, "<%s", name);
    link->stats.in[kind_of(tag)]++;
    if (link->h.stanza)
        link->h.stanza(link->arg, st);
}

static void on_stream_close(void *arg)
{
    conn_t *conn = arg;
    if (conn->link && conn->link->state == LINK_CLOSING)
        finish_close(conn->link);
    else
        conn_fail(conn, "the server closed the stream");
}

static const xml_stream_handlers_t stream_handlers = {
    .open = on_stream_open,
    .stanza = on_stream_stanza,
    .close = on_stream_close,
};

static void send_ping(uv_timer_t *t)
{
    ferry__xmpp_link_t *link = t->data;
    if (link->state != LINK_UP || link->ping_id[0])
        return; /* the one under way has its own deadline */
    next_id(link, link->ping_id, sizeof link->ping_id, "ferry-ping-");
    char buf[512];
    snprintf(buf, sizeof buf,
             "<iq type='get' id='%s' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
             link->ping_id, link->domain, link->ping_to);
    conn_write_str(link->conn, buf);
    if (link->state != LINK_UP) /* the write found the link down */
        return;
    link->ping_mark = ferry_net_written(link->conn->net);
    link->ping_acked = ferry_net_acked(link->conn->net);
    link->ping_since = uv_now(link->loop);
    link->ping_delivered = 0;
    link->ping_unsure = 0;
    const barrier_t *last = link->barriers;
    while (last && last->next)
        last = last->next;
    snprintf(link->ping_after, sizeof link->ping_after, "%s", last ? last->id : "");
    ping_check_in(link, link->ping_timeout_ms);
}

static void on_net_data(void *arg, const char *buf, size_t len)
{
    conn_t *conn = arg;
    if (ferry__xml_stream_feed(conn->xml, buf, len) != 0 && conn->link) {
        const char *condition = ferry__xml_stream_error(conn->xml);
        char reason[256];
        snprintf(reason, sizeof reason, "bad XML from the server (%s: %s)", condition,
                 ferry__xml_stream_error_text(conn->xml));
        send_stream_error(conn, condition, ferry__xml_stream_error_text(conn->xml));
        conn_fail(conn, reason);
    }
}

/* In LINK_CLOSING, the server's close is the answer to our
 * </stream:stream>, which conn_fail() takes as such. */
static void on_net_closed(void *arg, int status, const char *reason)
{
    net_failed(arg, status, reason);
}

static void on_net_connected(void *arg)
{
    conn_t *conn = arg;
    ferry__xmpp_link_t *link = conn->link;
    link->state = LINK_OPENING;
    link->ping_id[0] = 0;
    new_id_secret(link);
    uv_timer_start(&link->ping_deadline, on_deadline, link->ping_timeout_ms, 0);
    char header[1200];
    snprintf(header, sizeof header,
             "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
             link->domain);
    conn_write_str(conn, header);
}

static const ferry_net_callbacks_t net_callbacks = {
    .connected = on_net_connected,
    .data = on_net_data,
    .closed = on_net_closed,
};

static void connect_attempt(ferry__xmpp_link_t *link)
{
    conn_t *conn = ferry_calloc(1, sizeof *conn);
    conn->link = link;
    conn->xml = ferry__xml_stream_new(link->ctx, link->max_stanza_size, &stream_handlers, conn);
    link->conn = conn;
    link->state = LINK_CONNECTING;
    ferry_log_debug(link->scope, "connecting to %s:%d", link->host, link->port);
    /* No bound on bytes the server has not read yet: the link bounds what
     * waits while it is down (queue_size), and a server that stops reading
     * misses the ping deadline. Connecting has the handshake's deadline. */
    ferry_net_options_t o = {.host = link->host,
                             .port = link->port,
                             .connect_timeout_ms = link->ping_timeout_ms,
                             .max_pending = SIZE_MAX};
    conn->net = ferry_net_connect(link->loop, &o, &net_callbacks, conn);
}

/* ---- the link ---- */

static void init_timer(ferry__xmpp_link_t *link, uv_timer_t *t)
{
    uv_timer_init(link->loop, t);
    t->data = link;
    link->timers_open++;
}

ferry__xmpp_link_t *ferry__xmpp_link_new(uv_loop_t *loop, xmpp_ctx_t *ctx,
                                         const ferry__xmpp_link_options_t *o,
                                         const ferry__xmpp_link_handlers_t *h, void *arg)
{
    ferry__xmpp_link_t *link = ferry_calloc(1, sizeof *link);
    link->loop = loop;
    link->ctx = ctx;
    link->host = ferry_strdup(o->host);
    link->port = o->port;
    link->domain = ferry_strdup(o->domain);
    link->secret = ferry_strdup(o->secret);
    link->scope = ferry_strdup(o->scope);
    /* Pinging the server's own domain proves the whole path through it. */
    const char *dot = strchr(o->domain, '.');
    link->ping_to = ferry_strdup(dot && dot[1] ? dot + 1 : o->domain);
    link->queue_size = o->queue_size;
    link->max_stanza_size = o->max_stanza_size;
    link->ping_interval_ms = (uint64_t)(o->ping_interval * 1000);
    link->ping_timeout_ms = (uint64_t)(o->ping_timeout * 1000);
    link->keepalive_ms = (uint64_t)(o->keepalive_interval * 1000);
    link->h = *h;
    link->arg = arg;
    link->barriers_tail = &link->barriers;
    init_timer(link, &link->retry_timer);
    init_timer(link, &link->ping_timer);
    init_timer(link, &link->ping_deadline);
    init_timer(link, &link->keepalive_timer);
    init_timer(link, &link->close_timer);
    return link;
}

void ferry__xmpp_link_start(ferry__xmpp_link_t *link)
{
    if (link->state == LINK_IDLE)
        connect_attempt(link);
}

/* Not a failure: nothing is retried until ferry__xmpp_link_start(), and
 * the stream is cut rather than closed (the owner no longer may hold it). */
void ferry__xmpp_link_stop(ferry__xmpp_link_t *link, const char *reason)
{
    if (link->state == LINK_IDLE || link->state == LINK_CLOSING)
        return;
    int was_up = link->state == LINK_UP;
    uv_timer_stop(&link->retry_timer);
    stop_link_timers(link);
    if (link->conn)
        conn_drop(link->conn);
    link->state = LINK_IDLE;
    barriers_fail(link);
    link->attempt = 0;
    link->stats.up = 0;
    snprintf(link->stats.last_error, sizeof link->stats.last_error, "%s", reason);
    ferry_log_warn(link->scope, "link to %s:%d stopped: %s", link->host, link->port, reason);
    if (was_up && link->h.state)
        link->h.state(link->arg, 0);
}

int ferry__xmpp_link_is_up(const ferry__xmpp_link_t *link) { return link->state == LINK_UP; }

void ferry__xmpp_link_stats(const ferry__xmpp_link_t *link, ferry__xmpp_link_stats_t *out)
{
    *out = link->stats;
    if (link->state == LINK_UP)
        out->backlog = ferry_net_written(link->conn->net) - ferry_net_acked(link->conn->net);
}

static void on_timer_closed(uv_handle_t *handle)
{
    ferry__xmpp_link_t *link = handle->data;
    if (--link->timers_open > 0)
        return;
    void (*done)(void *) = link->close_done;
    void *arg = link->close_arg;
    queue_clear(link);
    free(link->host);
    free(link->domain);
    free(link->secret);
    free(link->scope);
    free(link->ping_to);
    free(link);
    if (done)
        done(arg);
}

static void finish_close(ferry__xmpp_link_t *link)
{
    if (link->conn)
        conn_drop(link->conn);
    barriers_fail(link);
    if (uv_is_closing((uv_handle_t *)&link->retry_timer))
        return;
    if (link->stats.queued)
        ferry_log_warn(link->scope, "%zu queued stanza(s) not sent at shutdown",
                       link->stats.queued);
    uv_close((uv_handle_t *)&link->retry_timer, on_timer_closed);
    uv_close((uv_handle_t *)&link->ping_timer, on_timer_closed);
    uv_close((uv_handle_t *)&link->ping_deadline, on_timer_closed);
    uv_close((uv_handle_t *)&link->keepalive_timer, on_timer_closed);
    uv_close((uv_handle_t *)&link->close_timer, on_timer_closed);
}

static void on_close_wait(uv_timer_t *t) { finish_close(t->data); }

void ferry__xmpp_link_close(ferry__xmpp_link_t *link, void (*done)(void *), void *arg)
{
    int was_up = link->state == LINK_UP;
    int open_stream = link->conn && (link->state == LINK_OPENING || was_up);
    link->close_done = done;
    link->close_arg = arg;
    link->state = LINK_CLOSING;
    uv_timer_stop(&link->retry_timer);
    stop_link_timers(link);
    if (!open_stream) {
        finish_close(link);
        return;
    }
    /* The server's </stream:stream> or its close ends the wait. */
    conn_write_str(link->conn, "</stream:stream>");
    if (link->conn) { /* else the write found it failed, and the link closed */
        ferry_net_shutdown(link->conn->net);
        uv_timer_start(&link->close_timer, on_close_wait, CLOSE_WAIT_MS, 0);
    }
    if (was_up)
        ferry_log_info(link->scope, "closing the link to %s:%d", link->host, link->port);
}
