/* net.c: outgoing TCP connections on the loop, optionally in TLS
 * (ferry/net.h). The XMPP link and the IRC connection each had their own
 * resolve, connect, read, write and TLS code; this is the one copy.
 *
 * TLS runs through OpenSSL memory BIOs: libuv moves the bytes, OpenSSL only
 * sees buffers, so one code path reads and writes both kinds of connection.
 *
 * Failures are recorded where they are found and reported by the timer, from
 * the loop: an owner never sees closed() from inside its own ferry_net_*
 * call, and what is under way (a read, a callback of the owner's) finishes
 * before the owner hears of it. The memory lives until the owner's
 * ferry_net_close() and every handle and request it started are done. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ferry/alloc.h"
#include "ferry/net.h"

enum net_state { NET_RESOLVING, NET_CONNECTING, NET_HANDSHAKING, NET_OPEN };

struct ferry_net {
    uv_loop_t *loop;
    ferry_net_callbacks_t cb;
    void *arg;
    char *host, *tls_name;
    int port, tls_no_verify;
    uint64_t connect_timeout_ms;
    size_t max_pending;
    uint64_t queued_total;              /* wire bytes handed to libuv so far */

    enum net_state state;
    struct addrinfo *addrs, *next_addr; /* next_addr: the one to try after this one */
    int last_status;                    /* of the last address tried */
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uv_tcp_t tcp;
    uv_timer_t timer;                   /* the connect deadline, then failure reports */
    SSL *ssl;                           /* owns rbio and wbio */
    BIO *rbio, *wbio;                   /* server -> OpenSSL, OpenSSL -> server */

    /* What still holds the memory after ferry_net_close(). */
    int resolving, tcp_open, timer_open;

    int shut;                           /* ferry_net_shutdown() was called */
    int failed;                         /* closed() is due (or was called) */
    int fail_status;
    char fail_reason[320];
    int closing;                        /* ferry_net_close() was called */
    void (*done)(void *arg);
};

struct ferry_net_tls {
    SSL_CTX *ctx;
};

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req_t;

/* Reads are consumed before the loop reads again, so all connections share
 * one buffer. */
static char read_buf[65536];

static void try_next_address(ferry_net_t *conn);

/* ---- failing and freeing ---- */

static int alive(const ferry_net_t *conn) { return !conn->failed && !conn->closing; }

static void on_report(uv_timer_t *t);

/* Records the first failure and schedules closed() for the loop's next turn.
 * Nothing more is read; the socket stays until ferry_net_close(). */
static void __attribute__((format(printf, 3, 4))) fail(ferry_net_t *conn, int status,
                                                       const char *fmt, ...)
{
    if (!alive(conn))
        return;
    conn->failed = 1;
    conn->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(conn->fail_reason, sizeof conn->fail_reason, fmt, ap);
    va_end(ap);
    if (conn->tcp_open)
        uv_read_stop((uv_stream_t *)&conn->tcp);
    uv_timer_start(&conn->timer, on_report, 0, 0);
}

static void fail_connect(ferry_net_t *conn, int status)
{
    fail(conn, status, "cannot connect to %s:%d: %s", conn->host, conn->port,
         uv_strerror(status));
}

static void maybe_free(ferry_net_t *conn)
{
    if (!conn->closing || conn->resolving || conn->tcp_open || conn->timer_open)
        return;
    void (*done)(void *) = conn->done;
    void *arg = conn->arg;
    if (conn->ssl)
        SSL_free(conn->ssl);
    if (conn->addrs)
        uv_freeaddrinfo(conn->addrs);
    free(conn->host);
    free(conn->tls_name);
    free(conn);
    if (done)
        done(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    ferry_net_t *conn = h->data;
    conn->timer_open = 0;
    maybe_free(conn);
}

/* Closed to free the connection, or to try the next address. */
static void on_tcp_closed(uv_handle_t *h)
{
    ferry_net_t *conn = h->data;
    conn->tcp_open = 0;
    if (conn->closing)
        maybe_free(conn);
    else if (alive(conn))
        try_next_address(conn);
}

void ferry_net_close(ferry_net_t *conn, void (*done)(void *arg))
{
    if (conn->closing)
        return;
    conn->closing = 1;
    conn->done = done;
    if (conn->resolving)
        uv_cancel((uv_req_t *)&conn->resolve); /* else on_resolved comes as usual */
    uv_close((uv_handle_t *)&conn->timer, on_timer_closed);
    if (conn->tcp_open && !uv_is_closing((uv_handle_t *)&conn->tcp))
        uv_close((uv_handle_t *)&conn->tcp, on_tcp_closed); /* cancels queued writes */
    maybe_free(conn);
}

/* ---- writing ---- */

static void on_written(uv_write_t *req, int status)
{
    ferry_net_t *conn = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED)
        fail(conn, status, "%s", uv_strerror(status));
}

static int write_raw(ferry_net_t *conn, const char *data, size_t len)
{
    write_req_t *w = ferry_malloc(sizeof *w + len);
    memcpy(w->data, data, len);
    w->req.data = conn;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(w);
        fail(conn, rc, "%s", uv_strerror(rc));
    } else {
        conn->queued_total += len;
    }
    return rc;
}

/* What OpenSSL wrote into its memory BIO goes to the socket. */
static int flush_tls(ferry_net_t *conn)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(conn->wbio, buf, sizeof buf)) > 0) {
        int rc = write_raw(conn, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

size_t ferry_net_pending(const ferry_net_t *conn)
{
    return conn->tcp_open ? uv_stream_get_write_queue_size((const uv_stream_t *)&conn->tcp) : 0;
}

uint64_t ferry_net_written(const ferry_net_t *conn) { return conn->queued_total; }

/* What the kernel took minus what it still holds unacknowledged (SIOCOUTQ,
 * Linux): a server whose receive buffer is full acknowledges only as fast
 * as it reads. */
uint64_t ferry_net_acked(const ferry_net_t *conn)
{
    uint64_t behind = ferry_net_pending(conn);
    uv_os_fd_t fd;
    int outq = 0;
    if (conn->tcp_open && uv_fileno((const uv_handle_t *)&conn->tcp, &fd) == 0 &&
        ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
        behind += (uint64_t)outq;
    return behind < conn->queued_total ? conn->queued_total - behind : 0;
}

const char *ferry_net_failure(const ferry_net_t *conn)
{
    return conn->failed ? conn->fail_reason : NULL;
}

int ferry_net_write(ferry_net_t *conn, const void *data, size_t len)
{
    if (conn->failed && !conn->closing)
        return conn->fail_status;
    if (conn->closing || conn->state != NET_OPEN || conn->shut)
        return UV_ENOTCONN;
    if (len == 0)
        return 0;
    if (conn->max_pending != SIZE_MAX && ferry_net_pending(conn) + len > conn->max_pending)
        return UV_ENOBUFS;
    if (!conn->ssl)
        return write_raw(conn, data, len);
    /* Into the memory BIO, which takes it all (no partial writes). */
    if (len > INT_MAX || SSL_write(conn->ssl, data, (int)len) <= 0) {
        ERR_clear_error();
        fail(conn, FERRY_NET_ETLS, "TLS: cannot encrypt");
        return FERRY_NET_ETLS;
    }
    return flush_tls(conn);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req, (void)status; /* the server's close, or a read error, says the rest */
}

void ferry_net_shutdown(ferry_net_t *conn)
{
    if (!alive(conn) || conn->state != NET_OPEN || conn->shut)
        return;
    conn->shut = 1;
    if (conn->ssl) {
        SSL_shutdown(conn->ssl); /* our close_notify; we do not wait for theirs */
        if (flush_tls(conn) < 0)
            return;
    }
    int rc = uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown);
    if (rc < 0)
        fail(conn, rc, "%s", uv_strerror(rc));
}

/* ---- reading ---- */

static void opened(ferry_net_t *conn)
{
    conn->state = NET_OPEN;
    uv_timer_stop(&conn->timer); /* the connect deadline */
    conn->cb.connected(conn->arg);
}

static void tls_failed(ferry_net_t *conn)
{
    long verify = SSL_get_verify_result(conn->ssl);
    unsigned long e = ERR_peek_last_error();
    if (verify != X509_V_OK)
        fail(conn, FERRY_NET_ECERT, "TLS: certificate not trusted: %s",
             X509_verify_cert_error_string(verify));
    else
        fail(conn, FERRY_NET_ETLS, "TLS handshake failed: %s",
             e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
    ERR_clear_error();
}

/* Whether an SSL_* call that returned RC only waits for more bytes. */
static int tls_wants_more(ferry_net_t *conn, int rc)
{
    int err = SSL_get_error(conn->ssl, rc);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

static void tls_read(ferry_net_t *conn, const char *data, size_t len)
{
    ERR_clear_error(); /* SSL_get_error() reads the queue: only ours in it */
    BIO_write(conn->rbio, data, (int)len);
    if (conn->state == NET_HANDSHAKING) {
        int rc = SSL_do_handshake(conn->ssl);
        if (flush_tls(conn) < 0)
            return;
        if (rc <= 0) {
            if (!tls_wants_more(conn, rc))
                tls_failed(conn);
            return;
        }
        opened(conn);
    }
    char buf[16384];
    int n = 0;
    while (alive(conn) && (n = SSL_read(conn->ssl, buf, sizeof buf)) > 0)
        conn->cb.data(conn->arg, buf, (size_t)n);
    if (!alive(conn))
        return;
    if (SSL_get_error(conn->ssl, n) == SSL_ERROR_ZERO_RETURN) {
        fail(conn, UV_EOF, "the server closed the connection");
    } else if (!tls_wants_more(conn, n)) {
        unsigned long e = ERR_peek_last_error();
        fail(conn, FERRY_NET_ETLS, "TLS: %s",
             e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
        ERR_clear_error();
        return;
    }
    flush_tls(conn); /* what reading made OpenSSL answer (key updates) */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h, (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ferry_net_t *conn = s->data;
    if (!alive(conn) || nread == 0)
        return;
    if (nread == UV_EOF)
        fail(conn, UV_EOF, "the server closed the connection");
    else if (nread < 0)
        fail(conn, (int)nread, "%s", uv_strerror((int)nread));
    else if (conn->ssl)
        tls_read(conn, buf->base, (size_t)nread);
    else
        conn->cb.data(conn->arg, buf->base, (size_t)nread);
}

/* ---- connecting ---- */

static int is_ip_address(const char *s)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

static int start_tls(ferry_net_t *conn, const ferry_net_tls_t *tls)
{
    const char *name = conn->tls_name ? conn->tls_name : conn->host;
    conn->ssl = SSL_new(tls->ctx);
    conn->rbio = BIO_new(BIO_s_mem());
    conn->wbio = BIO_new(BIO_s_mem());
    if (!conn->ssl || !conn->rbio || !conn->wbio) {
        BIO_free(conn->rbio);
        BIO_free(conn->wbio);
        conn->rbio = conn->wbio = NULL;
        return -1;
    }
    SSL_set_bio(conn->ssl, conn->rbio, conn->wbio);
    SSL_set_connect_state(conn->ssl);
    if (!is_ip_address(name)) /* RFC 6066: no addresses in SNI */
        SSL_set_tlsext_host_name(conn->ssl, name);
    if (conn->tls_no_verify)
        SSL_set_verify(conn->ssl, SSL_VERIFY_NONE, NULL);
    else if (SSL_set1_host(conn->ssl, name) != 1) /* an address is checked as one */
        return -1;
    return 0;
}

static void on_connected(uv_connect_t *req, int status)
{
    ferry_net_t *conn = req->data;
    if (!alive(conn))
        return;
    if (status < 0) {
        conn->last_status = status;
        if (conn->next_addr) /* on_tcp_closed tries it */
            uv_close((uv_handle_t *)&conn->tcp, on_tcp_closed);
        else
            fail_connect(conn, status);
        return;
    }
    uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (!conn->ssl) {
        opened(conn);
        return;
    }
    conn->state = NET_HANDSHAKING;
    ERR_clear_error();
    int rc = SSL_do_handshake(conn->ssl);
    if (flush_tls(conn) == 0 && rc <= 0 && !tls_wants_more(conn, rc))
        tls_failed(conn);
}

static void try_next_address(ferry_net_t *conn)
{
    struct addrinfo *ai = conn->next_addr;
    if (!ai) {
        fail_connect(conn, conn->last_status);
        return;
    }
    conn->next_addr = ai->ai_next;
    uv_tcp_init(conn->loop, &conn->tcp);
    conn->tcp.data = conn;
    conn->tcp_open = 1;
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->connect.data = conn;
    int rc = uv_tcp_connect(&conn->connect, &conn->tcp, ai->ai_addr, on_connected);
    if (rc < 0) {
        conn->last_status = rc;
        uv_close((uv_handle_t *)&conn->tcp, on_tcp_closed); /* the next one, or the failure */
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    ferry_net_t *conn = req->data;
    conn->resolving = 0;
    if (conn->closing) {
        uv_freeaddrinfo(res);
        maybe_free(conn);
        return;
    }
    if (conn->failed) { /* the deadline passed */
        uv_freeaddrinfo(res);
        return;
    }
    if (status < 0) {
        fail(conn, status, "cannot resolve %s: %s", conn->host, uv_strerror(status));
        return;
    }
    conn->addrs = conn->next_addr = res;
    conn->last_status = UV_EADDRNOTAVAIL;
    conn->state = NET_CONNECTING;
    try_next_address(conn);
}

/* The connect deadline, then the report of a failure. */
static void on_report(uv_timer_t *t)
{
    ferry_net_t *conn = t->data;
    if (conn->closing)
        return;
    if (!conn->failed) {
        fail(conn, UV_ETIMEDOUT, "cannot connect to %s:%d: no answer within %.3g s", conn->host,
             conn->port, (double)conn->connect_timeout_ms / 1000);
        return; /* reported on the next turn */
    }
    conn->cb.closed(conn->arg, conn->fail_status, conn->fail_reason);
}

ferry_net_t *ferry_net_connect(uv_loop_t *loop, const ferry_net_options_t *o,
                               const ferry_net_callbacks_t *cb, void *arg)
{
    ferry_net_t *conn = ferry_calloc(1, sizeof *conn);
    conn->loop = loop;
    conn->cb = *cb;
    conn->arg = arg;
    conn->host = ferry_strdup(o->host);
    conn->tls_name = o->tls_name ? ferry_strdup(o->tls_name) : NULL;
    conn->port = o->port;
    conn->tls_no_verify = o->tls_no_verify;
    conn->connect_timeout_ms = o->connect_timeout_ms;
    conn->max_pending = o->max_pending ? o->max_pending : FERRY_NET_MAX_PENDING;
    uv_timer_init(loop, &conn->timer);
    conn->timer.data = conn;
    conn->timer_open = 1;
    if (!conn->host || (o->tls_name && !conn->tls_name)) {
        fail(conn, UV_ENOMEM, "out of memory");
        return conn;
    }
    if (o->tls && start_tls(conn, o->tls) < 0) {
        fail(conn, FERRY_NET_ETLS, "TLS: cannot set up a connection to %s", conn->host);
        return conn;
    }
    if (conn->connect_timeout_ms)
        uv_timer_start(&conn->timer, on_report, conn->connect_timeout_ms, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", conn->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    conn->resolve.data = conn;
    conn->state = NET_RESOLVING;
    int rc = uv_getaddrinfo(loop, &conn->resolve, on_resolved, conn->host, port, &hints);
    if (rc < 0)
        fail(conn, rc, "cannot resolve %s: %s", conn->host, uv_strerror(rc));
    else
        conn->resolving = 1;
    return conn;
}

/* ---- TLS contexts ---- */

ferry_net_tls_t *ferry_net_tls_new(const ferry_net_tls_options_t *o, char *err, size_t errlen)
{
    const char *ca_file = o ? o->ca_file : NULL;
    ferry_net_tls_t *tls = ferry_calloc(1, sizeof *tls);
    tls->ctx = SSL_CTX_new(TLS_client_method());
    int ok = tls->ctx != NULL;
    if (ok) {
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
        ok = ca_file ? SSL_CTX_load_verify_locations(tls->ctx, ca_file, NULL) == 1
                     : SSL_CTX_set_default_verify_paths(tls->ctx) == 1;
    }
    if (!ok) {
        unsigned long e = ERR_peek_last_error();
        const char *why = e && ERR_reason_error_string(e) ? ERR_reason_error_string(e)
                                                          : "cannot set up TLS";
        snprintf(err, errlen, "%s%s%s", ca_file ? ca_file : "", ca_file ? ": " : "", why);
        ERR_clear_error();
        ferry_net_tls_free(tls);
        return NULL;
    }
    return tls;
}

void ferry_net_tls_free(ferry_net_tls_t *tls)
{
    if (!tls)
        return;
    SSL_CTX_free(tls->ctx);
    free(tls);
}
