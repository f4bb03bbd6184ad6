/* irc_conn.c: one IRC client connection for one XMPP user on one server:
 * TCP on the loop, TLS through OpenSSL memory BIOs, lines in and out, flood
 * control (a token bucket whose timer runs only while lines wait), and the
 * registration handshake. What the lines mean is the bridge's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "irc.h"

#define INBUF_MAX (64 * 1024)

static void conn_fail(irc_conn_t *conn, const char *reason);
static void pump_queue(irc_conn_t *conn);
static void on_cap_line(irc_conn_t *conn, irc_msg_t *m);

/* ---- writing ---- */

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req_t;

static void on_written(uv_write_t *req, int status)
{
    irc_conn_t *conn = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED && conn->state != IRC_CLOSED)
        conn_fail(conn, uv_strerror(status));
}

static void write_raw(irc_conn_t *conn, const char *data, size_t len)
{
    if (!conn->tcp_open || uv_is_closing((uv_handle_t *)&conn->tcp))
        return;
    write_req_t *w = ferry_malloc(sizeof *w + len);
    memcpy(w->data, data, len);
    w->req.data = conn;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_written) < 0)
        free(w);
}

/* What OpenSSL wrote into its memory BIO goes to the socket. */
static void flush_tls(irc_conn_t *conn)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(conn->wbio, buf, sizeof buf)) > 0)
        write_raw(conn, buf, (size_t)n);
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
    if (!conn->ssl) {
        write_raw(conn, line, len);
        return;
    }
    SSL_write(conn->ssl, line, (int)len);
    flush_tls(conn);
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
        bridge_on_registered(conn);
        pump_queue(conn);
    } else if (strcmp(m->command, "005") == 0) {
        parse_isupport(conn, m);
    }
    bridge_on_line(conn, m);
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
        conn_fail(conn, "a line longer than 64 KiB from the server");
}

static void start_registration(irc_conn_t *conn)
{
    contact_connected(conn);
    conn->state = IRC_REGISTERING;
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

static void tls_failed(irc_conn_t *conn)
{
    char reason[300];
    long verify = SSL_get_verify_result(conn->ssl);
    if (verify != X509_V_OK)
        snprintf(reason, sizeof reason, "TLS: certificate not trusted: %s (set verify_cert = false "
                 "for a self-signed server)", X509_verify_cert_error_string(verify));
    else
        snprintf(reason, sizeof reason, "TLS handshake failed: %s",
                 ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error()) : "error");
    ERR_clear_error();
    conn_fail(conn, reason);
}

static void on_tls_data(irc_conn_t *conn, const char *data, size_t len)
{
    BIO_write(conn->rbio, data, (int)len);
    if (!SSL_is_init_finished(conn->ssl)) {
        int rc = SSL_do_handshake(conn->ssl);
        flush_tls(conn);
        if (rc <= 0) {
            int err = SSL_get_error(conn->ssl, rc);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                tls_failed(conn);
            return;
        }
        start_registration(conn);
    }
    char buf[16384];
    int n;
    while (conn->state != IRC_CLOSED && (n = SSL_read(conn->ssl, buf, sizeof buf)) > 0)
        feed_lines(conn, buf, (size_t)n);
    flush_tls(conn);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    irc_conn_t *conn = h->data;
    buf->base = conn->irc->readbuf;
    buf->len = sizeof conn->irc->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    irc_conn_t *conn = s->data;
    if (nread > 0 && conn->state != IRC_CLOSED) {
        conn->last_read = uv_now(ferry_component_loop(conn->irc->comp));
        conn->ping_sent = 0;
        if (conn->ssl)
            on_tls_data(conn, buf->base, (size_t)nread);
        else
            feed_lines(conn, buf->base, (size_t)nread);
    } else if (nread < 0 && conn->state != IRC_CLOSED) {
        conn_fail(conn, nread == UV_EOF ? "the server closed the connection"
                                        : uv_strerror((int)nread));
    }
}

/* ---- connecting ---- */

static void on_connected(uv_connect_t *req, int status)
{
    irc_conn_t *conn = req->data;
    if (conn->state == IRC_CLOSED)
        return;
    if (status < 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "cannot connect to %s:%d: %s", conn->server->host,
                 conn->route.port, uv_strerror(status));
        conn_fail(conn, reason);
        return;
    }
    uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    conn->last_read = uv_now(ferry_component_loop(conn->irc->comp));
    if (!conn->route.tls) {
        start_registration(conn);
        return;
    }
    irc_t *irc = conn->irc;
    conn->ssl = SSL_new(conn->route.verify_cert ? irc->tls : irc->tls_noverify);
    conn->rbio = BIO_new(BIO_s_mem());
    conn->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(conn->ssl, conn->rbio, conn->wbio);
    SSL_set_connect_state(conn->ssl);
    SSL_set_tlsext_host_name(conn->ssl, conn->server->host);
    if (conn->route.verify_cert)
        SSL_set1_host(conn->ssl, conn->server->host);
    SSL_do_handshake(conn->ssl);
    flush_tls(conn);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    irc_conn_t *conn = req->data;
    conn->resolving = 0;
    if (conn->state == IRC_CLOSED) {
        uv_freeaddrinfo(res);
        irc_conn_quit(conn, NULL); /* finish the close that waited for us */
        return;
    }
    if (status < 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "cannot resolve %s: %s", conn->server->host,
                 uv_strerror(status));
        conn_fail(conn, reason);
        return;
    }
    uv_tcp_init(ferry_component_loop(conn->irc->comp), &conn->tcp);
    conn->tcp.data = conn;
    conn->tcp_open = 1;
    conn->connect.data = conn;
    int rc = uv_tcp_connect(&conn->connect, &conn->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rc < 0)
        conn_fail(conn, uv_strerror(rc));
}

void irc_conn_start(irc_conn_t *conn)
{
    contact_connecting(conn);
    conn->state = IRC_CONNECTING;
    conn->partial.len = 0;
    conn->ping_sent = 0;
    /* The user's settings may have changed since the last attempt. */
    irc_settings_load(conn->irc, conn->server->name, conn->jid, &conn->settings);
    irc_settings_route(conn->server, &conn->settings, &conn->route);
    irc_charset_open(conn);
    char port[16];
    snprintf(port, sizeof port, "%d", conn->route.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    conn->resolve.data = conn;
    conn->resolving = 1;
    if (uv_getaddrinfo(ferry_component_loop(conn->irc->comp), &conn->resolve, on_resolved,
                       conn->server->host, port, &hints) < 0) {
        conn->resolving = 0;
        conn_fail(conn, "cannot resolve the server's name");
    }
}

irc_conn_t *irc_conn_new(irc_t *irc, const irc_server_t *server, const char *jid,
                         const char *nick)
{
    irc_conn_t *conn = ferry_calloc(1, sizeof *conn);
    conn->irc = irc;
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
    conn->next = irc->conns;
    irc->conns = conn;
    irc->live++;
    return conn;
}

/* ---- closing ---- */

static void drop_socket(irc_conn_t *conn);

static void on_tcp_closed(uv_handle_t *h)
{
    irc_conn_t *conn = h->data;
    conn->tcp_open = 0;
    if (conn->closing)
        irc_conn_quit(conn, NULL);
}

static void drop_socket(irc_conn_t *conn)
{
    if (conn->ssl) {
        SSL_free(conn->ssl); /* frees both BIOs */
        conn->ssl = NULL;
        conn->rbio = conn->wbio = NULL;
    }
    if (conn->tcp_open && !uv_is_closing((uv_handle_t *)&conn->tcp))
        uv_close((uv_handle_t *)&conn->tcp, on_tcp_closed);
    while (conn->qcount) {
        free(conn->queue[conn->qhead]);
        conn->qhead = (conn->qhead + 1) % conn->qcap;
        conn->qcount--;
    }
    conn->pong_waiting = 0;
    uv_timer_stop(&conn->throttle);
}

static void conn_fail(irc_conn_t *conn, const char *reason)
{
    if (conn->state == IRC_CLOSED)
        return;
    conn->state = IRC_CLOSED;
    drop_socket(conn);
    bridge_on_closed(conn, reason);
}

static void on_handle_closed(uv_handle_t *h)
{
    irc_conn_t *conn = h->data;
    if (h == (uv_handle_t *)&conn->throttle)
        conn->throttle_open = 0;
    else
        conn->retry_open = 0;
    irc_conn_quit(conn, NULL);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* Idempotent: every close callback calls it again until all is closed. */
void irc_conn_quit(irc_conn_t *conn, const char *reason)
{
    if (!conn->closing) {
        conn->closing = 1;
        contact_online(conn, 0);
        if (reason && conn->state == IRC_READY) {
            const char *p[] = {reason};
            send_now(conn, "QUIT", p, 1);
        }
        conn->state = IRC_CLOSED;
        irc_conn_forget(conn->irc, conn);
        if (conn->tcp_open) {
            /* Let the QUIT leave before the socket closes. */
            uv_shutdown_t *sd = ferry_malloc(sizeof *sd);
            if (uv_shutdown(sd, (uv_stream_t *)&conn->tcp, on_shutdown) != 0)
                free(sd);
        }
    }
    if (conn->resolving)
        return;
    if (conn->tcp_open) {
        if (!uv_is_closing((uv_handle_t *)&conn->tcp))
            drop_socket(conn);
        return;
    }
    if (conn->ssl)
        drop_socket(conn);
    if (conn->throttle_open || conn->retry_open) {
        if (conn->throttle_open && !uv_is_closing((uv_handle_t *)&conn->throttle))
            uv_close((uv_handle_t *)&conn->throttle, on_handle_closed);
        if (conn->retry_open && !uv_is_closing((uv_handle_t *)&conn->retry))
            uv_close((uv_handle_t *)&conn->retry, on_handle_closed);
        return;
    }
    while (conn->rooms) {
        irc_room_t *r = conn->rooms;
        conn->rooms = r->next;
        if (r->chan && r->chan->leader == conn)
            r->chan->leader = NULL;
        if (r->chan)
            irc_chan_release(conn->irc, r->chan);
        for (size_t i = 0; i < r->nresources; i++)
            free(r->resources[i]);
        free(r->resources);
        free(r->history_max);
        free(r->history_since);
        free(r->asked_nick);
        free(r->name);
        free(r);
    }
    irc_t *irc = conn->irc;
    ctcp_expire(conn, 0, 1);
    bridge_routes_free(conn);
    while (conn->listings) {
        irc_listing_t *l = conn->listings;
        conn->listings = l->next;
        xmpp_stanza_release(l->iq);
        free(l);
    }
    for (size_t i = 0; i < conn->nlisted; i++) {
        free(conn->listed[i].channel);
        free(conn->listed[i].topic);
    }
    free(conn->listed);
    free(conn->queue);
    irc_linebuf_free(&conn->partial);
    irc_charset_close(conn);
    free(conn->motd);
    free(conn->jid);
    free(conn);
    irc_conn_freed(irc);
}

void irc_conn_check(irc_conn_t *conn, uint64_t now)
{
    ctcp_expire(conn, now, 0);
    if (conn->state != IRC_READY && conn->state != IRC_REGISTERING)
        return;
    if (conn->ping_sent && now - conn->last_read > 90000) {
        conn_fail(conn, "no answer from the server (ping timeout)");
    } else if (!conn->ping_sent && now - conn->last_read > 60000) {
        const char *p[] = {"ferry"};
        send_now(conn, "PING", p, 1);
        conn->ping_sent = 1;
    }
}
