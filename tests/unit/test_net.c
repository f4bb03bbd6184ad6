/* test_net.c: ferry_net_* against servers on loopback (a libuv echo server
 * on the test's own loop, and a TLS echo server in a child process with a
 * certificate made here), and ferry_backoff_ms()'s bounds. Every wait is
 * bounded by a guard timer. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "check.h"
#include "ferry/backoff.h"
#include "ferry/net.h"

static uv_loop_t loop;

#include "loop_wait.h"

/* ---- the client side: what the callbacks saw ---- */

typedef struct client {
    ferry_net_t *net;
    int connected, closed, done;
    int events; /* connected or closed */
    int got_n;  /* got_len */
    int status;
    char reason[400];
    char got[8192];
    size_t got_len;
} client_t;

static void c_connected(void *arg)
{
    client_t *c = arg;
    c->connected++;
    c->events++;
}

static void c_data(void *arg, const char *buf, size_t len)
{
    client_t *c = arg;
    size_t room = sizeof c->got - 1 - c->got_len;
    if (len > room)
        len = room;
    memcpy(c->got + c->got_len, buf, len);
    c->got_len += len;
    c->got[c->got_len] = 0;
    c->got_n = (int)c->got_len;
}

static void c_closed(void *arg, int status, const char *reason)
{
    client_t *c = arg;
    c->closed++;
    c->events++;
    c->status = status;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
}

static void c_done(void *arg) { ((client_t *)arg)->done++; }

static const ferry_net_callbacks_t callbacks = {c_connected, c_data, c_closed};

static void client_start(client_t *c, const ferry_net_options_t *o)
{
    memset(c, 0, sizeof *c);
    c->net = ferry_net_connect(&loop, o, &callbacks, c);
}

/* Closes C and checks that done comes, once. */
static void client_close(client_t *c)
{
    ferry_net_close(c->net, c_done);
    CHECK(wait_for(&c->done, 1, 2000), "done after ferry_net_close");
    CHECK_INT(c->done, 1);
}

/* ---- a libuv echo server on the test's loop ---- */

typedef struct peer {
    uv_tcp_t tcp;
    struct peer *next;
} peer_t;

static uv_tcp_t server;
static int server_port;
static int server_accepts;       /* connections accepted so far */
static int server_close_at_once; /* close each connection right after accepting it */
static peer_t *peers;

static void peer_closed(uv_handle_t *h)
{
    peer_t *p = h->data;
    for (peer_t **pp = &peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p);
}

static void peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(hint);
    b->len = hint;
}

static void peer_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        uv_write_t *w = malloc(sizeof *w);
        w->data = b->base;
        uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
        uv_write(w, s, &out, 1, peer_written);
        return;
    }
    free(b->base);
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, peer_closed); /* EOF: close back */
}

static void on_accept(uv_stream_t *s, int status)
{
    if (status < 0)
        return;
    peer_t *p = calloc(1, sizeof *p);
    uv_tcp_init(&loop, &p->tcp);
    p->tcp.data = p;
    p->next = peers;
    peers = p;
    uv_accept(s, (uv_stream_t *)&p->tcp);
    server_accepts++;
    if (server_close_at_once)
        uv_close((uv_handle_t *)&p->tcp, peer_closed);
    else
        uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static void server_start(void)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &server);
    uv_tcp_bind(&server, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&server, 16, on_accept);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&server, (struct sockaddr *)&got, &len);
    server_port = ntohs(got.sin_port);
}

static void server_stop(void)
{
    for (peer_t *p = peers; p; p = p->next)
        if (!uv_is_closing((uv_handle_t *)&p->tcp))
            uv_close((uv_handle_t *)&p->tcp, peer_closed);
    uv_close((uv_handle_t *)&server, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* A port nothing listens on: bound, then closed. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* A socket that listens but never accepts nor reads (the kernel completes
 * the handshake): the port of a server that is stuck. */
static int stuck_fd = -1;

static int stuck_port(void)
{
    stuck_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(stuck_fd, (struct sockaddr *)&a, sizeof a);
    listen(stuck_fd, 4);
    socklen_t len = sizeof a;
    getsockname(stuck_fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* ---- plain TCP ---- */

static void test_echo_and_close(void)
{
    client_t c;
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = server_port});
    CHECK(c.net != NULL, "a connection");
    CHECK_INT(ferry_net_write(c.net, "early", 5), UV_ENOTCONN); /* not open yet */
    CHECK(ferry_net_failure(c.net) == NULL, "no failure yet");
    CHECK(wait_for(&c.connected, 1, 3000), "connected: %s", c.reason);
    CHECK_INT(ferry_net_write(c.net, "hello ", 6), 0);
    CHECK_INT(ferry_net_write(c.net, "world", 5), 0);
    wait_for(&c.got_n, 11, 3000);
    CHECK_STR(c.got, "hello world");
    /* the echo came back: the server has every byte */
    CHECK(ferry_net_written(c.net) == 11 && ferry_net_acked(c.net) == 11,
          "written %llu acked %llu", (unsigned long long)ferry_net_written(c.net),
          (unsigned long long)ferry_net_acked(c.net));
    client_close(&c);
    CHECK_INT(c.closed, 0); /* closing is not a failure */
}

static void test_refused(void)
{
    client_t c;
    int port = free_port();
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = port});
    CHECK(wait_for(&c.closed, 1, 3000), "closed() for a refused connection");
    CHECK_INT(c.connected, 0);
    CHECK_INT(c.status, UV_ECONNREFUSED);
    char want[64];
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%d: ", port);
    CHECK(strncmp(c.reason, want, strlen(want)) == 0, "reason %s", check_quote(c.reason));
    client_close(&c);
    CHECK_INT(c.closed, 1);
}

/* The server closes: closed(UV_EOF), once. */
static void test_server_closes(void)
{
    client_t c;
    server_close_at_once = 1;
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = server_port});
    CHECK(wait_for(&c.closed, 1, 3000), "closed() when the server closes");
    server_close_at_once = 0;
    CHECK_INT(c.connected, 1);
    CHECK_INT(c.status, UV_EOF);
    CHECK_STR(c.reason, "the server closed the connection");
    CHECK_INT(ferry_net_write(c.net, "x", 1), UV_EOF);
    CHECK_STR(ferry_net_failure(c.net), "the server closed the connection");
    client_close(&c);
    CHECK_INT(c.closed, 1);
}

/* Shutdown: what was written still arrives (and comes back), then the
 * server's close is closed(UV_EOF). */
static void test_shutdown(void)
{
    client_t c;
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = server_port});
    CHECK(wait_for(&c.connected, 1, 3000), "connected: %s", c.reason);
    CHECK_INT(ferry_net_write(c.net, "bye", 3), 0);
    ferry_net_shutdown(c.net);
    CHECK_INT(ferry_net_write(c.net, "more", 4), UV_ENOTCONN);
    CHECK(wait_for(&c.closed, 1, 3000), "closed() after shutdown");
    CHECK_STR(c.got, "bye");
    CHECK_INT(c.status, UV_EOF);
    client_close(&c);
}

/* Closing while resolving or connecting: done, and nothing else. */
static void test_close_at_once(void)
{
    client_t c;
    client_start(&c, &(ferry_net_options_t){.host = "localhost", .port = server_port});
    client_close(&c);
    CHECK_INT(c.connected + c.closed, 0);
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = free_port()});
    client_close(&c);
    CHECK_INT(c.connected + c.closed, 0);
}

/* The owner may close from inside its callbacks. */
static void closing_data(void *arg, const char *buf, size_t len)
{
    (void)buf, (void)len;
    client_t *c = arg;
    c->got_n++;
    ferry_net_close(c->net, c_done);
}

static void test_close_in_callback(void)
{
    static const ferry_net_callbacks_t cbs = {c_connected, closing_data, c_closed};
    client_t c;
    memset(&c, 0, sizeof c);
    c.net = ferry_net_connect(&loop, &(ferry_net_options_t){.host = "127.0.0.1",
                                                            .port = server_port},
                              &cbs, &c);
    CHECK(wait_for(&c.connected, 1, 3000), "connected: %s", c.reason);
    ferry_net_write(c.net, "ping", 4);
    CHECK(wait_for(&c.done, 1, 3000), "done after a close in data()");
    CHECK_INT(c.got_n, 1);
    CHECK_INT(c.closed, 0);
}

/* Writes over max_pending are refused (UV_ENOBUFS) and the connection
 * stays; what was accepted stays within the bound. */
static void test_write_bound(void)
{
    client_t c;
    size_t bound = 256 * 1024;
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = stuck_port(),
                                            .max_pending = bound});
    CHECK(wait_for(&c.connected, 1, 3000), "connected: %s", c.reason);
    static char chunk[64 * 1024];
    memset(chunk, 'x', sizeof chunk);
    int rc = 0, writes = 0;
    while (writes < 4096 && (rc = ferry_net_write(c.net, chunk, sizeof chunk)) == 0) {
        writes++;
        CHECK(ferry_net_pending(c.net) <= bound, "pending %zu over %zu",
              ferry_net_pending(c.net), bound);
    }
    CHECK_INT(rc, UV_ENOBUFS);
    CHECK(ferry_net_pending(c.net) > bound - sizeof chunk, "pending %zu", ferry_net_pending(c.net));
    sleep_loop(50);
    CHECK_INT(c.closed, 0);
    /* A server that does not read acknowledges what fits in its receive
     * buffer, then nothing more (what the XMPP link's ping deadline tells a
     * stuck server from a busy one by). */
    uint64_t acked = ferry_net_acked(c.net);
    CHECK(acked > 0 && acked < ferry_net_written(c.net) - ferry_net_pending(c.net),
          "acked %llu of %llu (%zu pending)", (unsigned long long)acked,
          (unsigned long long)ferry_net_written(c.net), ferry_net_pending(c.net));
    CHECK(ferry_net_written(c.net) == (uint64_t)writes * sizeof chunk, "written %llu",
          (unsigned long long)ferry_net_written(c.net));
    sleep_loop(50);
    CHECK(ferry_net_acked(c.net) == acked, "acked moved from %llu to %llu",
          (unsigned long long)acked, (unsigned long long)ferry_net_acked(c.net));
    CHECK_INT(ferry_net_write(c.net, chunk, sizeof chunk), UV_ENOBUFS); /* still stuck */
    client_close(&c);
    close(stuck_fd);
}

/* The deadline covers the TLS handshake: a server that accepts and says
 * nothing is given up on. */
static void test_connect_timeout(ferry_net_tls_t *tls)
{
    client_t c;
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = stuck_port(),
                                            .tls = tls, .connect_timeout_ms = 200});
    CHECK(wait_for(&c.closed, 1, 3000), "closed() after the deadline");
    CHECK_INT(c.connected, 0);
    CHECK_INT(c.status, UV_ETIMEDOUT);
    CHECK(strstr(c.reason, "no answer within 0.2 s") != NULL, "reason %s", check_quote(c.reason));
    client_close(&c);
    close(stuck_fd);
}

/* ---- TLS: a child process serves an echo with a certificate for
 * "right.test", signed by itself ---- */

static char cert_file[64] = "/tmp/ferry-test-net-XXXXXX";
static EVP_PKEY *tls_key;
static X509 *tls_cert;

static void make_cert(void)
{
    tls_key = EVP_EC_gen("P-256");
    tls_cert = X509_new();
    X509_set_version(tls_cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(tls_cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(tls_cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(tls_cert), 3600);
    X509_set_pubkey(tls_cert, tls_key);
    X509_NAME *name = X509_get_subject_name(tls_cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"right.test", -1,
                               -1, 0);
    X509_set_issuer_name(tls_cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, tls_cert, tls_cert, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:right.test");
    X509_add_ext(tls_cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(tls_cert, tls_key, EVP_sha256());
    int fd = mkstemp(cert_file);
    FILE *f = fdopen(fd, "w");
    PEM_write_X509(f, tls_cert);
    fclose(f);
}

/* The child: one connection after the other, echoing until the client
 * closes. Killed by the parent. */
static void tls_serve(int lfd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, tls_cert);
    SSL_CTX_use_PrivateKey(ctx, tls_key);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            char buf[4096];
            int n;
            while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
                SSL_write(ssl, buf, n);
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
        ERR_clear_error();
    }
}

static pid_t tls_child;
static int tls_port;

static void tls_server_start(void)
{
    make_cert();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(lfd, (struct sockaddr *)&a, sizeof a);
    listen(lfd, 8);
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    tls_port = ntohs(a.sin_port);
    fflush(stdout);
    tls_child = fork();
    if (tls_child == 0) {
        tls_serve(lfd);
        _exit(0);
    }
    close(lfd);
}

static void tls_server_stop(void)
{
    kill(tls_child, SIGKILL);
    waitpid(tls_child, NULL, 0);
    unlink(cert_file);
    X509_free(tls_cert);
    EVP_PKEY_free(tls_key);
}

/* Connects to the TLS server under NAME: 1 when it connected and the echo
 * came back, 0 when closed() came instead (C says why). */
static int tls_echo(client_t *c, const ferry_net_tls_t *tls, const char *name, int no_verify)
{
    client_start(c, &(ferry_net_options_t){.host = "127.0.0.1", .port = tls_port, .tls = tls,
                                           .tls_name = name, .tls_no_verify = no_verify,
                                           .connect_timeout_ms = 5000});
    if (!wait_for(&c->events, 1, 6000) || !c->connected)
        return 0;
    ferry_net_write(c->net, "over TLS", 8);
    wait_for(&c->got_n, 8, 3000);
    return strcmp(c->got, "over TLS") == 0;
}

static void test_tls(void)
{
    char err[256] = "";
    ferry_net_tls_t *trusting = ferry_net_tls_new(&(ferry_net_tls_options_t){.ca_file = cert_file},
                                                  err, sizeof err);
    ferry_net_tls_t *system = ferry_net_tls_new(NULL, err, sizeof err);
    if (!CHECK(trusting && system, "TLS contexts: %s", err))
        return;
    client_t c;

    CHECK(tls_echo(&c, trusting, "right.test", 0), "echo over verified TLS: %s", c.reason);
    client_close(&c);

    /* The name the certificate does not carry. */
    CHECK(!tls_echo(&c, trusting, "wrong.test", 0), "a connection to the wrong name");
    CHECK_INT(c.status, FERRY_NET_ECERT);
    CHECK(strstr(c.reason, "certificate not trusted") && strstr(c.reason, "mismatch"),
          "reason %s", check_quote(c.reason));
    client_close(&c);

    /* An address is checked as an address: the certificate has none. */
    CHECK(!tls_echo(&c, trusting, NULL, 0), "a connection by address");
    CHECK_INT(c.status, FERRY_NET_ECERT);
    client_close(&c);

    /* Self-signed and not in the system's store. */
    CHECK(!tls_echo(&c, system, "right.test", 0), "a connection to a self-signed server");
    CHECK_INT(c.status, FERRY_NET_ECERT);
    CHECK(strstr(c.reason, "certificate not trusted") != NULL, "reason %s",
          check_quote(c.reason));
    client_close(&c);

    /* Without verification (IRC's verify_cert = false) it connects. */
    CHECK(tls_echo(&c, system, "wrong.test", 1), "echo over unverified TLS: %s", c.reason);
    client_close(&c);

    /* Freeing a context does not pull it from under its connections. */
    client_start(&c, &(ferry_net_options_t){.host = "127.0.0.1", .port = tls_port,
                                            .tls = trusting, .tls_name = "right.test"});
    ferry_net_tls_free(trusting);
    CHECK(wait_for(&c.connected, 1, 5000), "connected after the context was freed: %s",
          c.reason);
    client_close(&c);

    test_connect_timeout(system);
    ferry_net_tls_free(system);

    CHECK(ferry_net_tls_new(&(ferry_net_tls_options_t){.ca_file = "/nonexistent.pem"}, err,
                            sizeof err) == NULL, "a context from a missing file");
    CHECK(strstr(err, "/nonexistent.pem") != NULL, "error %s", check_quote(err));
}

/* ---- backoff ---- */

static void test_backoff(void)
{
    /* The XMPP link's and IRC's: 1 s doubling to 60 s. */
    uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (unsigned a = 0; a < sizeof want / sizeof *want; a++)
        CHECK(ferry_backoff_ceiling_ms(a, 1000, 60000) == want[a], "attempt %u: %llu", a,
              (unsigned long long)ferry_backoff_ceiling_ms(a, 1000, 60000));
    CHECK(ferry_backoff_ceiling_ms(4000000000u, 1000, 60000) == 60000, "a huge attempt");
    CHECK(ferry_backoff_ceiling_ms(3, 0, 60000) == 0, "base 0");
    CHECK(ferry_backoff_ceiling_ms(0, 5000, 2000) == 2000, "base over max");
    /* Jitter stays in [ceiling/2, ceiling] and spreads. */
    for (unsigned a = 0; a < 10; a++) {
        uint64_t ceiling = ferry_backoff_ceiling_ms(a, 1000, 60000), lo = ceiling, hi = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t d = ferry_backoff_ms(a, 1000, 60000);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        CHECK(lo >= ceiling / 2 && hi <= ceiling, "attempt %u: %llu..%llu", a,
              (unsigned long long)lo, (unsigned long long)hi);
        CHECK(hi - lo > ceiling / 4, "attempt %u: spread %llu..%llu", a, (unsigned long long)lo,
              (unsigned long long)hi);
    }
    CHECK(ferry_backoff_ms(0, 0, 0) == 0, "nothing to wait");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_backoff();
    tls_server_start(); /* forks: before the loop exists */
    uv_loop_init(&loop);
    server_start();
    test_echo_and_close();
    test_refused();
    test_server_closes();
    test_shutdown();
    test_close_at_once();
    test_close_in_callback();
    test_write_bound();
    test_tls();
    server_stop();
    tls_server_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    return check_summary();
}
