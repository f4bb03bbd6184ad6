/* irc_conn.c: one IRC client connection for one XMPP user on one server,
 * on a ferry/net.h connection (TCP, TLS): lines in and out, flood control
 * (a token bucket whose timer runs only while lines wait), the
 * registration handshake, and coming back with backoff when it drops and
 * its owner wants it back. What the lines mean is the owner's business: it
 * hears of them through irc_conn_handlers_t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ferry/backoff.h"
#include "ferry/net.h"
#include "irc.h"

#define INBUF_MAX (64 * 1024)

static void conn_lost(irc_conn_t *conn, const char *reason);
static void pump_queue(irc_conn_t *conn);
static void on_cap_line(irc_conn_t *conn, irc_msg_t *m);

/* ---- writing ---- */

/* A server that has not taken FERRY_NET_MAX_PENDING bytes written to it
 * is not reading: the connection is dropped, from the loop (a write comes
 * from deep inside the owner's handlers). The retry timer is idle while a
 * connection is open. */
static void on_stalled(uv_timer_t *t)
{
    conn_lost(t->data, "the server does not read what is written to it");
}

static void write_line(irc_conn_t *conn, const char *line, size_t len)
{
    char converted[IRC_LINE_MAX * 4];
    size_t n = irc_charset_out(conn, line, len, converted, sizeof converted);
    if (n == (size_t)-1) {
        ferry_log_warn(ferry_component_name(conn->irc->comp),
                       "a line for %s was not sent: its encoding would break it",
                       conn->server->name);
        return;
    }
    if (n) {
        line = converted;
        len = n;
    }
    conn->irc->lines_out++;
    /* Other failures come as the connection's closed(). */
    if (conn->net && ferry_net_write(conn->net, line, len) == UV_ENOBUFS &&
        !uv_is_active((uv_handle_t *)&conn->retry))
        uv_timer_start(&conn->retry, on_stalled, 0, 0);
}

/* ---- flood control ---- */

/* The user's lines spend conn->tokens (conn->route: throttle_burst and
 * throttle_rate, or the user's throttle_limit). PONG has a budget of its
 * own, so that a server's burst of PINGs cannot push the user's next line
 * back (each PONG used to take a user token, with no lower
 * bound): a few at once, then at throttle_rate, and past that only the
 * latest PING's answer waits, which is all a server checks for. */
#define IRC_REPLY_BURST 4

static void refill(irc_conn_t *conn)
{
    uint64_t now = uv_now(conn->irc->comp ? ferry_component_loop(conn->irc->comp) : NULL);
    double burst = conn->route.burst, rate = conn->route.rate;
    double earned = (double)(now - conn->last_fill) / 1000.0 * rate;
    conn->tokens += earned;
    if (conn->tokens > burst)
        conn->tokens = burst;
    conn->reply_tokens += earned;
    if (conn->reply_tokens > IRC_REPLY_BURST)
        conn->reply_tokens = IRC_REPLY_BURST;
    conn->last_fill = now;
}

static void on_throttle(uv_timer_t *t) { pump_queue(t->data); }

static int format_and_write(irc_conn_t *conn, const char *command, const char *const *params,
                            int n)
{
    char line[IRC_LINE_MAX + 1];
    size_t len = irc_format(line, sizeof line, command, params, n);
    if (!len) {
        ferry_log_warn(ferry_component_name(conn->irc->comp),
                       "a %s line for %s could not be written (a parameter IRC cannot carry)",
                       command, conn->server->name);
        return -1;
    }
    write_line(conn, line, len);
    return 0;
}

/* ms until a budget at tokens has one again */
static double wait_for_token(const irc_conn_t *conn, double tokens)
{
    return (1 - tokens) / conn->route.rate * 1000;
}

static void pump_queue(irc_conn_t *conn)
{
    refill(conn);
    double wait = -1;
    if (conn->pong_waiting) {
        if (conn->reply_tokens >= 1) {
            const char *p[] = {conn->pong_token};
            conn->reply_tokens -= 1;
            conn->pong_waiting = 0;
            format_and_write(conn, "PONG", p, 1);
        } else {
            wait = wait_for_token(conn, conn->reply_tokens);
        }
    }
    /* JOINs and the like wait for 001 */
    while (conn->state == IRC_READY && conn->qcount && conn->tokens >= 1) {
        char *line = conn->queue[conn->qhead];
        conn->qhead = (conn->qhead + 1) % conn->qcap;
        conn->qcount--;
        conn->tokens -= 1;
        write_line(conn, line, strlen(line));
        free(line);
    }
    if (conn->state == IRC_READY && conn->qcount) {
        double w = wait_for_token(conn, conn->tokens);
        if (wait < 0 || w < wait)
            wait = w;
    }
    if (wait >= 0)
        uv_timer_start(&conn->throttle, on_throttle, (uint64_t)wait + 1, 0);
}

/* Answers a PING on the replies' budget; a newer PING replaces an answer
 * still waiting. */
static void send_pong(irc_conn_t *conn, const char *token)
{
    snprintf(conn->pong_token, sizeof conn->pong_token, "%s", token);
    conn->pong_waiting = 1;
    pump_queue(conn);
}

static void enqueue(irc_conn_t *conn, char *line)
{
    if (conn->qcount == conn->qcap) {
        size_t cap = conn->qcap ? conn->qcap * 2 : 16;
        char **q = ferry_malloc(cap * sizeof *q);
        for (size_t i = 0; i < conn->qcount; i++)
            q[i] = conn->queue[(conn->qhead + i) % conn->qcap];
        free(conn->queue);
        conn->queue = q;
        conn->qhead = 0;
        conn->qcap = cap;
    }
    conn->queue[(conn->qhead + conn->qcount) % conn->qcap] = line;
    conn->qcount++;
}

int irc_conn_send(irc_conn_t *conn, const char *command, const char *const *params, int n)
{
    char line[IRC_LINE_MAX + 1];
    size_t len = irc_format(line, sizeof line, command, params, n);
    if (!len)
        return -1;
    enqueue(conn, ferry_strdup(line));
    pump_queue(conn);
    return 0;
}

/* Registration lines (a handful) skip the queue's order but not its budget. */
static void send_now(irc_conn_t *conn, const char *command, const char *const *params, int n)
{
    if (format_and_write(conn, command, params, n) == 0)
        conn->tokens -= 1;
}

void irc_conn_send_now(irc_conn_t *conn, const char *command, const char *const *params, int n)
{
    send_now(conn, command, params, n);
}

/* ---- reading ---- */

static void parse_isupport(irc_conn_t *conn, irc_msg_t *m)
{
    for (int i = 1; i < m->nparams - 1; i++) {
        const char *p = m->params[i];
        if (strncmp(p, "CASEMAPPING=", 12) == 0) {
            conn->casemap = irc_casemap_parse(p + 12);
        } else if (strncmp(p, "CHANMODES=", 10) == 0) {
            /* A,B,C,D */
            const char *a = p + 10, *c1 = strchr(a, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
            const char *c3 = c2 ? strchr(c2 + 1, ',') : NULL;
            if (c3) {
                snprintf(conn->arg_modes, sizeof conn->arg_modes, "%.*s%.*s", (int)(c1 - a), a,
                         (int)(c2 - c1 - 1), c1 + 1);
                snprintf(conn->set_arg_modes, sizeof conn->set_arg_modes, "%.*s",
                         (int)(c3 - c2 - 1), c2 + 1);
            }
        } else if (strncmp(p, "CHANTYPES=", 10) == 0) {
            snprintf(conn->chantypes, sizeof conn->chantypes, "%s", p + 10);
        } else if (strncmp(p, "PREFIX=(", 8) == 0) {
            const char *close = strchr(p + 8, ')');
            if (close) {
                size_t n = (size_t)(close - (p + 8));
                if (n < sizeof conn->prefix_modes) {
                    memcpy(conn->prefix_modes, p + 8, n);
                    conn->prefix_modes[n] = 0;
                    snprintf(conn->prefixes, sizeof conn->prefixes, "%s", close + 1);
                }
            }
        }
    }
}

const char *irc_conn_mode_prefix(const irc_conn_t *conn, char mode)
{
    const char *at = strchr(conn->prefix_modes, mode);
    static char out[2];
    if (!at || !mode || (size_t)(at - conn->prefix_modes) >= strlen(conn->prefixes))
        return NULL;
    out[0] = conn->prefixes[at - conn->prefix_modes];
    out[1] = 0;
    return out;
}

static void on_line(irc_conn_t *conn, const char *line, size_t len)
{
    irc_msg_t *m = irc_msg_parse(line, len);
    if (!m)
        return;
    conn->irc->lines_in++;
    if (conn->cap == 1)
        on_cap_line(conn, m);
    if (strcmp(m->command, "PING") == 0) {
        send_pong(conn, m->nparams ? m->params[0] : "ferry");
    } else if (strcmp(m->command, "PONG") == 0) {
        conn->ping_sent = 0;
    } else if (strcmp(m->command, "001") == 0 && conn->state == IRC_REGISTERING) {
        conn->state = IRC_READY;
        conn->registered = 1;
        conn->attempt = 0;
        /* The nick the server gave us names us in every room: only one a
         * JID resource can hold (else we keep the one we asked for). */
        if (m->nparams && irc_nick_usable(m->params[0]))
            snprintf(conn->nick, sizeof conn->nick, "%s", m->params[0]);
        conn->handlers->state(conn->arg, conn, IRC_READY);
        pump_queue(conn);
    } else if (strcmp(m->command, "005") == 0) {
        parse_isupport(conn, m);
    }
    conn->handlers->line(conn->arg, conn, m);
    free(m);
}

static int line_read(void *ctx, const char *line, size_t len)
{
    irc_conn_t *conn = ctx;
    char converted[IRC_LINE_MAX * 4];
    size_t n = len < IRC_LINE_MAX * 2 ? irc_charset_in(conn, line, len, converted,
                                                        sizeof converted)
                                      : 0;
    if (n)
        on_line(conn, converted, n);
    else
        on_line(conn, line, len);
    return conn->state == IRC_CLOSED;
}

static void feed_lines(irc_conn_t *conn, const char *data, size_t len)
{
    if (irc_linebuf_feed(&conn->partial, data, len, INBUF_MAX, line_read, conn) < 0)
        conn_lost(conn, "a line longer than 64 KiB from the server");
}

static void start_registration(irc_conn_t *conn)
{
    conn->state = IRC_REGISTERING;
    conn->handlers->state(conn->arg, conn, IRC_REGISTERING);
    conn->tokens = conn->route.burst;
    conn->reply_tokens = IRC_REPLY_BURST;
    conn->pong_waiting = 0;
    conn->last_fill = uv_now(ferry_component_loop(conn->irc->comp));
    irc_user_settings_t *u = &conn->settings; /* loaded by irc_conn_start() */
    if (u->pass[0]) { /* the server password goes before NICK and USER */
        const char *pass[] = {u->pass};
        send_now(conn, "PASS", pass, 1);
    }
    /* IRCv3 capabilities before registering: SASL when the user set a
     * password, userhost-in-names (every member's user@host in NAMES, no
     * WHO needed) when offered. A server without CAP ignores it. */
    const char *ls[] = {"LS", "302"};
    send_now(conn, "CAP", ls, 2);
    conn->cap = 1;
    conn->caps_offered = 0;
    conn->uhnames = 0;
    conn->sasl = u->password[0] ? 1 : 0;
    const char *nick[] = {conn->wanted_nick};
    const char *user[] = {u->username[0] ? u->username : "ferry", "0", "*",
                          u->realname[0] ? u->realname : conn->server->realname};
    send_now(conn, "NICK", nick, 1);
    send_now(conn, "USER", user, 4);
}

static void cap_end(irc_conn_t *conn)
{
    const char *end[] = {"END"};
    send_now(conn, "CAP", end, 1);
    conn->cap = 2;
}

/* SASL is over (OUTCOME: why without it, NULL when it worked). */
static void sasl_done(irc_conn_t *conn, const char *outcome)
{
    conn->sasl = 2;
    if (outcome)
        ferry_log_warn(ferry_component_name(conn->irc->comp), "SASL with %s: %s",
                       conn->server->name, outcome);
}

/* ... and so is CAP. */
static void sasl_end(irc_conn_t *conn, const char *outcome)
{
    sasl_done(conn, outcome);
    cap_end(conn);
}

enum { CAP_SASL = 1, CAP_UHNAMES = 2 };

/* Whether the space-separated CAPS (values "name=..." allowed) has NAME. */
static int has_cap(const char *caps, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = caps; (p = strstr(p, name)); p += n)
        if ((p == caps || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ' || p[n] == '='))
            return 1;
    return 0;
}

/* CAP LS (possibly over several lines): ask for what we use. */
static void on_cap_ls(irc_conn_t *conn, irc_msg_t *m)
{
    const char *caps = m->params[m->nparams - 1];
    conn->caps_offered |= (has_cap(caps, "sasl") ? CAP_SASL : 0) |
                          (has_cap(caps, "userhost-in-names") ? CAP_UHNAMES : 0);
    if (m->nparams != 3)
        return; /* "CAP * LS * :..." : more lines follow */
    char want[64] = "";
    if (conn->sasl == 1 && (conn->caps_offered & CAP_SASL))
        strcat(want, "sasl");
    if (conn->caps_offered & CAP_UHNAMES)
        strcat(want, *want ? " userhost-in-names" : "userhost-in-names");
    if (conn->sasl == 1 && !(conn->caps_offered & CAP_SASL))
        sasl_done(conn, "the server offers no SASL; connecting without");
    if (!*want) {
        cap_end(conn);
        return;
    }
    const char *req[] = {"REQ", want};
    send_now(conn, "CAP", req, 2);
}

/* CAP LS / ACK / NAK, AUTHENTICATE + and 903-908, during registration. */
static void on_cap_line(irc_conn_t *conn, irc_msg_t *m)
{
    const char *c = m->command;
    if (strcmp(c, "CAP") == 0 && m->nparams >= 3) {
        const char *sub = m->params[1], *caps = m->params[m->nparams - 1];
        if (strcmp(sub, "LS") == 0) {
            on_cap_ls(conn, m);
        } else if (strcmp(sub, "ACK") == 0) {
            conn->uhnames |= has_cap(caps, "userhost-in-names");
            if (has_cap(caps, "sasl") && conn->sasl == 1) {
                const char *mech[] = {"PLAIN"};
                send_now(conn, "AUTHENTICATE", mech, 1);
            } else {
                cap_end(conn);
            }
        } else if (strcmp(sub, "NAK") == 0) {
            if (conn->sasl == 1)
                sasl_end(conn, "the server refused the sasl capability");
            else
                cap_end(conn);
        }
    } else if (conn->sasl != 1) {
        return;
    } else if (strcmp(c, "AUTHENTICATE") == 0 && m->nparams && strcmp(m->params[0], "+") == 0) {
        irc_user_settings_t *u = &conn->settings;
        const char *authcid = u->username[0] ? u->username : conn->wanted_nick;
        size_t a = strlen(authcid), p = strlen(u->password);
        unsigned char plain[IRC_NAME_MAX * 3];
        /* authzid NUL authcid NUL password (RFC 4616), authzid empty */
        plain[0] = 0;
        memcpy(plain + 1, authcid, a);
        plain[1 + a] = 0;
        memcpy(plain + 2 + a, u->password, p);
        char b64[IRC_NAME_MAX * 4 + 8];
        int n = EVP_EncodeBlock((unsigned char *)b64, plain, (int)(2 + a + p));
        /* IRCv3 SASL: 400 bytes a line; a last line of exactly 400 is
         * followed by "+". */
        int off = 0, len = 0;
        do {
            char piece[401];
            len = n - off < 400 ? n - off : 400;
            snprintf(piece, sizeof piece, "%.*s", len, b64 + off);
            const char *arg[] = {piece};
            send_now(conn, "AUTHENTICATE", arg, 1);
            off += len;
        } while (off < n);
        if (len == 400) {
            const char *arg[] = {"+"};
            send_now(conn, "AUTHENTICATE", arg, 1);
        }
    } else if (strcmp(c, "903") == 0) {
        sasl_end(conn, NULL);
        ferry_log_info(ferry_component_name(conn->irc->comp), "SASL authenticated with %s",
                       conn->server->name);
    } else if (strcmp(c, "904") == 0 || strcmp(c, "905") == 0 || strcmp(c, "902") == 0 ||
               strcmp(c, "906") == 0 || strcmp(c, "908") == 0) {
        sasl_end(conn, "authentication failed (wrong password?); connecting without");
    }
}

/* ---- the connection's events (ferry/net.h) ---- */

static void on_net_connected(void *arg)
{
    irc_conn_t *conn = arg;
    conn->last_read = uv_now(ferry_component_loop(conn->irc->comp));
    start_registration(conn);
}

static void on_net_data(void *arg, const char *buf, size_t len)
{
    irc_conn_t *conn = arg;
    conn->last_read = uv_now(ferry_component_loop(conn->irc->comp));
    conn->ping_sent = 0;
    feed_lines(conn, buf, len);
}

static void on_net_closed(void *arg, int status, const char *reason)
{
    char text[400];
    if (status == FERRY_NET_ECERT) {
        snprintf(text, sizeof text, "%s (set verify_cert = false for a self-signed server)",
                 reason);
        reason = text;
    }
    conn_lost(arg, reason);
}

static const ferry_net_callbacks_t net_callbacks = {
    .connected = on_net_connected,
    .data = on_net_data,
    .closed = on_net_closed,
};

/* ---- connecting ---- */

void irc_conn_start(irc_conn_t *conn)
{
    conn->state = IRC_CONNECTING;
    conn->handlers->state(conn->arg, conn, IRC_CONNECTING);
    conn->partial.len = 0;
    conn->ping_sent = 0;
    /* The user's settings may have changed since the last attempt. */
    irc_settings_load(conn->irc, conn->server->name, conn->jid, &conn->settings);
    irc_settings_route(conn->server, &conn->settings, &conn->route);
    irc_charset_open(conn);
    ferry_net_options_t o = {.host = conn->server->host,
                             .port = conn->route.port,
                             .tls = conn->route.tls ? conn->irc->tls : NULL,
                             .tls_no_verify = !conn->route.verify_cert};
    conn->net = ferry_net_connect(ferry_component_loop(conn->irc->comp), &o, &net_callbacks, conn);
}

irc_conn_t *irc_conn_new(irc_t *irc, const irc_server_t *server, const char *jid,
                         const char *nick, const irc_conn_handlers_t *handlers, void *arg)
{
    irc_conn_t *conn = ferry_calloc(1, sizeof *conn);
    conn->irc = irc;
    conn->handlers = handlers;
    conn->arg = arg;
    conn->server = server;
    conn->jid = ferry_strdup(jid);
    snprintf(conn->wanted_nick, sizeof conn->wanted_nick, "%s", nick);
    snprintf(conn->nick, sizeof conn->nick, "%s", nick);
    conn->casemap = IRC_CASE_RFC1459;
    snprintf(conn->chantypes, sizeof conn->chantypes, "#&");
    snprintf(conn->prefixes, sizeof conn->prefixes, "@+");
    snprintf(conn->prefix_modes, sizeof conn->prefix_modes, "ov");
    snprintf(conn->arg_modes, sizeof conn->arg_modes, "beIk"); /* RFC 2811, until 005 says */
    snprintf(conn->set_arg_modes, sizeof conn->set_arg_modes, "l");
    uv_loop_t *loop = ferry_component_loop(irc->comp);
    uv_timer_init(loop, &conn->throttle);
    conn->throttle.data = conn;
    conn->throttle_open = 1;
    uv_timer_init(loop, &conn->retry);
    conn->retry.data = conn;
    conn->retry_open = 1;
    return conn;
}

/* ---- dropping the connection ---- */

/* A closed connection's memory is gone: a quit may finish. */
static void on_net_freed(void *arg)
{
    irc_conn_t *conn = arg;
    conn->nets_closing--;
    if (conn->closing)
        irc_conn_quit(conn, NULL);
}

/* Closes this attempt's connection and forgets what waited to be sent. */
static void drop_socket(irc_conn_t *conn)
{
    if (conn->net) {
        conn->nets_closing++;
        ferry_net_close(conn->net, on_net_freed);
        conn->net = NULL;
    }
    while (conn->qcount) {
        free(conn->queue[conn->qhead]);
        conn->qhead = (conn->qhead + 1) % conn->qcap;
        conn->qcount--;
    }
    conn->pong_waiting = 0;
    uv_timer_stop(&conn->throttle);
}

/* ---- reconnecting ---- */

/* Reconnects wait 1 s doubling up to a minute, with jitter. */
#define RETRY_BASE_MS 1000
#define RETRY_MAX_MS 60000

static void on_retry(uv_timer_t *t) { irc_conn_start(t->data); }

/* The connection dropped: the owner says whether it comes back. */
static void conn_lost(irc_conn_t *conn, const char *reason)
{
    if (conn->state == IRC_CLOSED)
        return;
    conn->state = IRC_CLOSED;
    drop_socket(conn);
    int was_up = conn->registered && conn->attempt == 0;
    if (!conn->handlers->lost(conn->arg, conn, reason, was_up)) {
        irc_conn_quit(conn, NULL);
        return;
    }
    uv_timer_start(&conn->retry, on_retry,
                   ferry_backoff_ms(conn->attempt++, RETRY_BASE_MS, RETRY_MAX_MS), 0);
}

/* ---- closing for good ---- */

static void on_handle_closed(uv_handle_t *h)
{
    irc_conn_t *conn = h->data;
    if (h == (uv_handle_t *)&conn->throttle)
        conn->throttle_open = 0;
    else
        conn->retry_open = 0;
    irc_conn_quit(conn, NULL);
}

/* The one destructor, once every handle is closed. */
static void conn_free(irc_conn_t *conn)
{
    const irc_conn_handlers_t *handlers = conn->handlers;
    void *arg = conn->arg;
    free(conn->queue);
    irc_linebuf_free(&conn->partial);
    irc_charset_close(conn);
    free(conn->jid);
    free(conn);
    handlers->freed(arg);
}

/* Idempotent: every close callback calls it again until all is closed. */
void irc_conn_quit(irc_conn_t *conn, const char *reason)
{
    if (!conn->closing) {
        conn->closing = 1;
        if (reason && conn->state == IRC_READY) {
            const char *p[] = {reason};
            send_now(conn, "QUIT", p, 1);
        }
        conn->state = IRC_CLOSED;
        conn->handlers->closed(conn->arg, conn);
        if (conn->net)
            ferry_net_shutdown(conn->net); /* after the QUIT: TLS close_notify, FIN */
        drop_socket(conn);
    }
    if (conn->nets_closing)
        return;
    if (conn->throttle_open || conn->retry_open) {
        if (conn->throttle_open && !uv_is_closing((uv_handle_t *)&conn->throttle))
            uv_close((uv_handle_t *)&conn->throttle, on_handle_closed);
        if (conn->retry_open && !uv_is_closing((uv_handle_t *)&conn->retry))
            uv_close((uv_handle_t *)&conn->retry, on_handle_closed);
        return;
    }
    conn_free(conn);
}

void irc_conn_check(irc_conn_t *conn, uint64_t now)
{
    if (conn->state != IRC_READY && conn->state != IRC_REGISTERING)
        return;
    if (conn->ping_sent && now - conn->last_read > 90000) {
        conn_lost(conn, "no answer from the server (ping timeout)");
    } else if (!conn->ping_sent && now - conn->last_read > 60000) {
        const char *p[] = {"ferry"};
        send_now(conn, "PING", p, 1);
        conn->ping_sent = 1;
    }
}
