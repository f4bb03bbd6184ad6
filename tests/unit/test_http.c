/* test_http.c: the HTTP client and server against each other on one loop,
 * over loopback only. Every wait is bounded by a guard timer. Prints one line
 * per failed check and "N passed, N failed" at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "ferry/http_client.h"
#include "ferry/http_server.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"

static int passed, failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            passed++;                                                           \
        } else {                                                                \
            failed++;                                                           \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            printf(__VA_ARGS__);                                                \
            printf("\n");                                                       \
        }                                                                       \
    } while (0)

static uv_loop_t loop;
static ferry_http_client_t *client;
static ferry_http_server_t *server;
static char base[64]; /* "http://127.0.0.1:PORT" */

#include "loop_wait.h"

/* ---- client side: responses land here ---- */

struct result {
    int calls;
    long status;
    char error[256];
    char *body;
    size_t body_len;
    long retry_after;
    uint64_t at;
};

static int done_count;

static void on_response(void *arg, const ferry_http_response_t *resp)
{
    struct result *r = arg;
    r->calls++;
    r->status = resp->status;
    snprintf(r->error, sizeof r->error, "%s", resp->error ? resp->error : "");
    free(r->body);
    r->body = malloc(resp->body_len + 1);
    memcpy(r->body, resp->body, resp->body_len + 1);
    r->body_len = resp->body_len;
    r->retry_after = resp->retry_after;
    r->at = uv_now(&loop);
    done_count++;
}

static void result_reset(struct result *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static ferry_http_request_t *req(const char *method, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    return ferry_http_request_new(client, method, url);
}

/* Sends and waits for the answer. */
static int fetch(ferry_http_request_t *rq, struct result *r)
{
    result_reset(r);
    int before = done_count;
    if (ferry_http_request_send(rq, on_response, r) != 0)
        return 0;
    int want = before + 1;
    return wait_for(&done_count, want, 10000);
}

/* ---- server side: handlers ---- */

/* Answers "METHOD|PATH|QUERY|X-Test|AUTH|BODY". */
static void h_echo(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    const char *xt = ferry_http_exchange_header(ex, "x-TEST");
    const char *auth = ferry_http_exchange_header(ex, "authorization");
    size_t cap = len + 1024;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "%s|%s|%s|%s|%s|", ferry_http_exchange_method(ex),
                     ferry_http_exchange_path(ex), ferry_http_exchange_query(ex), xt ? xt : "-",
                     auth ? auth : "-");
    memcpy(out + n, body, len);
    ferry_http_exchange_add_header(ex, "X-Reply", "yes");
    ferry_http_exchange_respond(ex, 200, "text/plain", out, (size_t)n + len);
    free(out);
}

/* Answers with the name it was registered under. */
static int named_calls;

static void h_named(void *arg, ferry_http_exchange_t *ex)
{
    named_calls++;
    ferry_http_exchange_respond(ex, 200, "text/plain", arg, strlen(arg));
}

/* Answers 50 ms later from a timer. */
struct later {
    uv_timer_t timer;
    ferry_http_exchange_t *ex;
};

static void on_later(uv_timer_t *t)
{
    struct later *l = t->data;
    ferry_http_exchange_respond(l->ex, 202, "text/plain", "later", 5);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_slow(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    struct later *l = calloc(1, sizeof *l);
    uv_timer_init(&loop, &l->timer);
    l->timer.data = l;
    l->ex = ex;
    uv_timer_start(&l->timer, on_later, 50, 0);
}

/* Keeps the exchange for the test to answer (or not) by hand. */
static ferry_http_exchange_t *held;
static int held_count;

static void h_hold(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    held = ex;
    held_count++;
}

static void h_busy(void *arg, ferry_http_exchange_t *ex)
{
    const char *value = arg;
    if (*value)
        ferry_http_exchange_add_header(ex, "Retry-After", value);
    ferry_http_exchange_respond(ex, 429, "text/plain", "slow down\n", 10);
}

static void h_big(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    size_t len = 1536 * 1024;
    char *b = malloc(len);
    memset(b, 'x', len);
    ferry_http_exchange_respond(ex, 200, "application/octet-stream", b, len);
    free(b);
}

static void h_inject(void *arg, ferry_http_exchange_t *ex)
{
    int *rc = arg;
    rc[0] = ferry_http_exchange_add_header(ex, "X-Ok", "a\r\nX-Evil: 1");
    rc[1] = ferry_http_exchange_add_header(ex, "X:Bad", "v");
    ferry_http_exchange_respond(ex, 204, NULL, NULL, 0);
}

/* ---- the tests ---- */

static void test_get_post(void)
{
    struct result r = {0};
    ferry_http_request_t *rq = req("GET", "/echo/a%20b?x=1&y=%20z");
    ferry_http_request_header(rq, "X-Test", "hello");
    CHECK(fetch(rq, &r), "GET timed out");
    CHECK(r.status == 200, "status %ld (%s)", r.status, r.error);
    CHECK(r.body && strcmp(r.body, "GET|/echo/a%20b|x=1&y=%20z|hello|-|") == 0, "body '%s'",
          r.body);
    CHECK(r.retry_after == -1, "retry_after %ld", r.retry_after);

    rq = req("POST", "/echo");
    ferry_http_request_header(rq, "Content-Type", "text/plain");
    ferry_http_request_body(rq, "hello world", 11);
    CHECK(ferry__http_client_pending(client) == 0, "pending before send");
    CHECK(fetch(rq, &r), "POST timed out");
    CHECK(ferry__http_client_pending(client) == 0, "pending after done");
    CHECK(r.status == 200, "status %ld (%s)", r.status, r.error);
    CHECK(r.body && strcmp(r.body, "POST|/echo||-|-|hello world") == 0, "body '%s'", r.body);

    /* A body big enough to come in many pieces, with a NUL inside. */
    size_t len = 300 * 1000;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + i % 26);
    big[1000] = '\0';
    rq = req("PUT", "/echo");
    ferry_http_request_body(rq, big, len);
    CHECK(fetch(rq, &r), "PUT timed out");
    const char *prefix = "PUT|/echo||-|-|";
    size_t pl = strlen(prefix);
    CHECK(r.status == 200 && r.body_len == pl + len && memcmp(r.body + pl, big, len) == 0,
          "status %ld, %zu bytes", r.status, r.body_len);
    free(big);

    rq = req("GET", "/echo");
    ferry_http_request_basic_auth(rq, "user", "pass");
    CHECK(fetch(rq, &r), "auth timed out");
    CHECK(r.body && strstr(r.body, "|Basic dXNlcjpwYXNz|"), "body '%s'", r.body);

    rq = req("DELETE", "/echo/item");
    CHECK(fetch(rq, &r), "DELETE timed out");
    CHECK(r.body && strcmp(r.body, "DELETE|/echo/item||-|-|") == 0, "body '%s'", r.body);
    result_reset(&r);
}

static void test_not_found(void)
{
    struct result r = {0};
    CHECK(fetch(req("GET", "/nowhere"), &r), "timed out");
    CHECK(r.status == 404, "status %ld", r.status);
    CHECK(r.body && strstr(r.body, "404") && strstr(r.body, "no such endpoint"), "body '%s'",
          r.body);
    CHECK(fetch(req("GET", "/echox"), &r) && r.status == 404, "/echox gave %ld", r.status);
    result_reset(&r);
}

static void test_too_large(void)
{
    struct result r = {0};
    named_calls = 0;
    char body[100];
    memset(body, 'b', sizeof body);

    ferry_http_request_t *rq = req("POST", "/small/x");
    ferry_http_request_body(rq, body, 16);
    CHECK(fetch(rq, &r) && r.status == 200, "16 bytes: status %ld", r.status);

    rq = req("POST", "/small/x");
    ferry_http_request_body(rq, body, sizeof body);
    CHECK(fetch(rq, &r), "timed out");
    CHECK(r.status == 413, "status %ld (%s)", r.status, r.error);
    CHECK(r.body && strstr(r.body, "413"), "body '%s'", r.body);

    /* Chunked: no length up front, found out while reading. */
    rq = req("POST", "/small/x");
    ferry_http_request_header(rq, "Transfer-Encoding", "chunked");
    ferry_http_request_body(rq, body, sizeof body);
    CHECK(fetch(rq, &r), "timed out");
    CHECK(r.status == 413, "chunked: status %ld (%s)", r.status, r.error);

    /* A client that waits for "100 Continue" is told at once. */
    rq = req("POST", "/small/x");
    ferry_http_request_header(rq, "Expect", "100-continue");
    ferry_http_request_body(rq, body, sizeof body);
    CHECK(fetch(rq, &r), "timed out");
    CHECK(r.status == 413, "expect: status %ld (%s)", r.status, r.error);

    /* Far over the limit: answered before the body is read. */
    size_t len = 4 * 1024 * 1024;
    char *huge = calloc(1, len);
    rq = req("POST", "/small/x");
    ferry_http_request_body(rq, huge, len);
    CHECK(fetch(rq, &r), "timed out");
    CHECK(r.status == 413 || (r.status == 0 && r.error[0]), "huge: status %ld (%s)", r.status,
          r.error);
    free(huge);

    CHECK(named_calls == 1, "handler ran %d times, want 1", named_calls);
    result_reset(&r);
}

static void test_routing(void)
{
    struct result r = {0};
    static const struct {
        const char *path, *want;
    } cases[] = {
        {"/hooks/other", "hooks"},
        {"/hooks", "hooks"},
        {"/hooks/main", "main"},
        {"/hooks/main/alerts", "main"},
        {"/hooks/main/xy", "main"},
        {"/hooks/main/x", "x"},
        {"/hooks/main/x/1", "x"},
        {"/hooksx", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(fetch(req("GET", cases[i].path), &r), "%s timed out", cases[i].path);
        if (cases[i].want)
            CHECK(r.status == 200 && strcmp(r.body, cases[i].want) == 0, "%s -> %ld '%s'",
                  cases[i].path, r.status, r.body);
        else
            CHECK(r.status == 404, "%s -> %ld", cases[i].path, r.status);
    }
    CHECK(ferry_http_route_add(server, "/hooks/main/", 10, h_named, "again") == -1,
          "duplicate route accepted");
    ferry_http_route_remove(server, "/hooks/main/");
    CHECK(fetch(req("GET", "/hooks/main/alerts"), &r) && strcmp(r.body, "hooks") == 0,
          "after remove: '%s'", r.body);
    result_reset(&r);
}

static void test_async(void)
{
    struct result slow = {0}, fast = {0};
    int before = done_count;
    uint64_t t0 = uv_now(&loop);
    ferry_http_request_send(req("GET", "/slow"), on_response, &slow);
    ferry_http_request_send(req("GET", "/echo/fast"), on_response, &fast);
    CHECK(ferry__http_client_pending(client) == 2, "pending %zu", ferry__http_client_pending(client));
    CHECK(wait_for(&done_count, before + 2, 10000), "timed out");
    CHECK(slow.status == 202 && strcmp(slow.body, "later") == 0, "slow: %ld '%s'", slow.status,
          slow.body);
    CHECK(slow.at - t0 >= 45, "slow answered after %llu ms", (unsigned long long)(slow.at - t0));
    CHECK(fast.status == 200 && fast.at <= slow.at, "fast %ld at %llu, slow at %llu",
          fast.status, (unsigned long long)fast.at, (unsigned long long)slow.at);
    result_reset(&slow);
    result_reset(&fast);
}

static void test_retry_after(void)
{
    struct result r = {0};
    CHECK(fetch(req("GET", "/busy/delta"), &r), "timed out");
    CHECK(r.status == 429 && r.retry_after == 7, "status %ld, retry_after %ld", r.status,
          r.retry_after);
    CHECK(fetch(req("GET", "/busy/future"), &r), "timed out");
    CHECK(r.retry_after >= 115 && r.retry_after <= 120, "future date: %ld", r.retry_after);
    CHECK(fetch(req("GET", "/busy/past"), &r), "timed out");
    CHECK(r.retry_after == 0, "past date: %ld", r.retry_after);
    CHECK(fetch(req("GET", "/busy/junk"), &r), "timed out");
    CHECK(r.retry_after == -1, "junk: %ld", r.retry_after);
    CHECK(fetch(req("GET", "/busy/none"), &r), "timed out");
    CHECK(r.retry_after == -1, "absent: %ld", r.retry_after);
    result_reset(&r);
}

static void test_injection(void)
{
    ferry_http_request_t *rq = req("GET", "/echo");
    CHECK(ferry_http_request_header(rq, "X-A", "b\r\nX-Evil: 1") == -1, "CRLF value accepted");
    CHECK(ferry_http_request_header(rq, "X-A", "b\nc") == -1, "LF value accepted");
    CHECK(ferry_http_request_header(rq, "X-A\r\nX-B", "c") == -1, "CRLF name accepted");
    CHECK(ferry_http_request_header(rq, "X:A", "c") == -1, "colon in name accepted");
    CHECK(ferry_http_request_header(rq, "", "c") == -1, "empty name accepted");
    CHECK(ferry_http_request_header(rq, "X-Test", "fine") == 0, "plain header refused");
    CHECK(ferry_http_request_new(client, "GE T", "http://127.0.0.1/") == NULL, "bad method");
    struct result r = {0};
    CHECK(fetch(rq, &r) && strstr(r.body, "|fine|"), "body '%s'", r.body);

    int rc[2] = {0, 0};
    ferry_http_route_add(server, "/inject", 0, h_inject, rc);
    CHECK(fetch(req("GET", "/inject"), &r) && r.status == 204, "status %ld", r.status);
    CHECK(rc[0] == -1 && rc[1] == -1, "server add_header gave %d %d", rc[0], rc[1]);
    ferry_http_route_remove(server, "/inject");
    result_reset(&r);
}

static void test_refused(void)
{
    /* A port that was just free: bind, read the number, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    struct result r = {0};
    CHECK(fetch(ferry_http_request_new(client, "GET", url), &r), "timed out");
    CHECK(r.calls == 1 && r.status == 0 && r.error[0], "status %ld error '%s'", r.status,
          r.error);
    result_reset(&r);
}

static void test_timeout_and_gone_client(void)
{
    struct result r = {0};
    held = NULL;
    ferry_http_request_t *rq = req("POST", "/hold");
    ferry_http_request_body(rq, "x", 1);
    ferry_http_request_timeout(rq, 200);
    uint64_t t0 = uv_now(&loop);
    CHECK(fetch(rq, &r), "timed out waiting for the timeout");
    CHECK(r.status == 0 && r.error[0], "status %ld error '%s'", r.status, r.error);
    CHECK(r.at - t0 >= 150 && r.at - t0 < 5000, "took %llu ms",
          (unsigned long long)(r.at - t0));
    /* The client has hung up; answering must neither crash nor leak. */
    CHECK(held != NULL, "handler never ran");
    if (held) {
        CHECK(strcmp(ferry_http_exchange_method(held), "POST") == 0, "method");
        size_t n;
        CHECK(strcmp(ferry_http_exchange_body(held, &n), "x") == 0 && n == 1, "body");
        ferry_http_exchange_respond(held, 200, "text/plain", "too late", 8);
        held = NULL;
    }
    sleep_loop(50);
    /* And the server still works. */
    CHECK(fetch(req("GET", "/echo"), &r) && r.status == 200, "after: %ld", r.status);
    result_reset(&r);
}

static void test_cancel(void)
{
    struct result r = {0};
    ferry_http_request_t *rq = req("GET", "/slow");
    ferry_http_request_send(rq, on_response, &r);
    ferry_http_request_cancel(rq);
    CHECK(ferry__http_client_pending(client) == 0, "pending %zu", ferry__http_client_pending(client));
    /* Cancel after it reached the server too. */
    held_count = 0;
    rq = req("GET", "/hold");
    ferry_http_request_send(rq, on_response, &r);
    wait_for(&held_count, 1, 5000);
    ferry_http_request_cancel(rq);
    sleep_loop(150);
    CHECK(r.calls == 0, "callback ran %d times", r.calls);
    if (held) {
        ferry_http_exchange_respond(held, 200, NULL, NULL, 0);
        held = NULL;
    }
    /* Cancel of a request never sent frees it. */
    ferry_http_request_cancel(req("GET", "/echo"));
    result_reset(&r);
}

static void test_big_response(void)
{
    struct result r = {0};
    CHECK(fetch(req("GET", "/big"), &r), "timed out");
    CHECK(r.status == 200 && r.body_len == HTTP_CLIENT_MAX_BODY, "status %ld, %zu bytes",
          r.status, r.body_len);
    result_reset(&r);
}

static void test_many(void)
{
    enum { N = 40 };
    static struct result rs[N];
    int before = done_count;
    for (int i = 0; i < N; i++)
        ferry_http_request_send(req("GET", i % 2 ? "/slow" : "/echo/many"), on_response, &rs[i]);
    CHECK(wait_for(&done_count, before + N, 10000), "only %d of %d", done_count - before, N);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += rs[i].status == (i % 2 ? 202 : 200);
        result_reset(&rs[i]);
    }
    CHECK(ok == N, "%d of %d right", ok, N);
}

/* ---- raw connections: what our own client cannot show or do ---- */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    const char *data;
    char buf[16384];
    size_t len;
    int done;
};

static void raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;
    r->done = 1;
}

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct raw *r = h->data;
    b->base = r->buf + r->len;
    b->len = sizeof r->buf - 1 - r->len;
}

static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct raw *r = st->data;
    if (n > 0) {
        r->len += (size_t)n;
        r->buf[r->len] = '\0';
    } else if (n < 0) {
        uv_close((uv_handle_t *)st, raw_closed);
    }
}

static void raw_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void raw_connected(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    if (status < 0) {
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)strlen(r->data));
    uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

/* Sends text as is and collects everything until the server hangs up. */
static void raw_exchange(struct raw *r, const char *text)
{
    memset(r, 0, sizeof *r);
    r->data = text;
    uv_tcp_init(&loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", ferry__http_server_port(server), &sa);
    uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&sa, raw_connected);
    if (!wait_for(&r->done, 1, 5000)) {
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
        wait_for(&r->done, 1, 1000);
    }
}

/* Blocking is fine here: the kernel completes a loopback connect from the
 * listen backlog, and a few bytes fit the socket buffer. */
static int raw_send(const char *text)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sa.sin_port = htons((uint16_t)ferry__http_server_port(server));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, text, strlen(text), 0) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int wait_server_idle(uint64_t ms)
{
    for (uint64_t t = 0; t < ms && ferry__http_server_pending(server) != 0; t += 20)
        sleep_loop(20);
    return ferry__http_server_pending(server) == 0;
}

static void test_raw(void)
{
    struct raw r;
    raw_exchange(&r, "GET /echo/r?q HTTP/1.1\r\nHost: x\r\nX-Test: raw\r\n"
                     "Connection: close\r\n\r\n");
    CHECK(strncmp(r.buf, "HTTP/1.1 200", 12) == 0, "reply '%.40s'", r.buf);
    CHECK(strcasestr(r.buf, "\r\nX-Reply: yes\r\n") != NULL, "no X-Reply in '%s'", r.buf);
    CHECK(strcasestr(r.buf, "\r\nContent-Type: text/plain\r\n") != NULL, "no type in '%s'",
          r.buf);
    CHECK(strstr(r.buf, "\r\n\r\nGET|/echo/r|q|raw|-|") != NULL, "body in '%s'", r.buf);

    raw_exchange(&r, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(r.buf, "HTTP/1.1 404", 12) == 0, "reply '%.40s'", r.buf);
    CHECK(strcasestr(r.buf, "\r\nContent-Type: text/plain") != NULL, "404 type in '%s'", r.buf);

    raw_exchange(&r, "POST /small/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     "Expect: 100-continue\r\n\r\n");
    CHECK(strncmp(r.buf, "HTTP/1.1 413", 12) == 0, "reply '%.40s'", r.buf);

    /* Hang-ups at every stage leave nothing behind. */
    CHECK(ferry__http_server_pending(server) == 0, "pending %zu at start", ferry__http_server_pending(server));
    int fd1 = raw_send("GET /echo HTTP/1.1\r\n");
    int fd2 = raw_send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
    sleep_loop(100);
    CHECK(ferry__http_server_pending(server) == 2, "pending %zu mid-request",
          ferry__http_server_pending(server));
    close(fd1);
    close(fd2);
    CHECK(wait_server_idle(3000), "pending %zu after hang-ups", ferry__http_server_pending(server));

    held = NULL;
    held_count = 0;
    int fd3 = raw_send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(wait_for(&held_count, 1, 5000), "hold never reached");
    close(fd3);
    sleep_loop(100);
    /* Suspended: MHD does not notice the hang-up until it writes. */
    CHECK(ferry__http_server_pending(server) == 1, "pending %zu while held",
          ferry__http_server_pending(server));
    if (held)
        ferry_http_exchange_respond(held, 200, "text/plain", "late", 4);
    held = NULL;
    CHECK(wait_server_idle(3000), "pending %zu after late answer", ferry__http_server_pending(server));
}

static int closed_count;
static void on_closed(void *arg);

/* ---- the rest of the path ---- */

static void h_rest(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    const char *rest = ferry_http_exchange_rest(ex);
    if (rest == NULL)
        rest = "(null)";
    ferry_http_exchange_respond(ex, 200, "text/plain", rest, strlen(rest));
}

static void test_rest(void)
{
    struct result r = {0};
    static const struct {
        const char *path, *want;
    } cases[] = {
        {"/rest/main", "(null)"},   {"/rest/main?x", "(null)"}, {"/rest/main?/x", "(null)"},
        {"/rest/main/", ""},        {"/rest/main/a?b", "a"},    {"/rest/main/a/b", "a/b"},
        {"/restb", ""},             {"/restb?q", ""},           {"/restb/x", "/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(fetch(req("POST", cases[i].path), &r), "%s timed out", cases[i].path);
        CHECK(r.status == 200 && strcmp(r.body, cases[i].want) == 0, "%s -> %ld '%s'",
              cases[i].path, r.status, r.body);
    }
    result_reset(&r);
}

/* ---- connection limits and the request deadline ---- */

/* A connection from SOURCE (a 127.x address) to PORT that sends TEXT. */
static int raw_from(int port, const char *source, const char *text)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in src = {.sin_family = AF_INET}, sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    sa.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, text, strlen(text), 0) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Runs the loop until the server closes fd (or ms pass), keeping what it
 * sent in buf. 1 when it was closed. */
static int raw_until_closed(int fd, char *buf, size_t cap, uint64_t ms)
{
    size_t len = 0;
    buf[0] = '\0';
    for (uint64_t t = 0; t < ms; t += 10) {
        sleep_loop(10);
        ssize_t n;
        while ((n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT)) > 0)
            len += (size_t)n;
        buf[len] = '\0';
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 1;
    }
    return 0;
}

static int raw_is_open(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && errno == EAGAIN;
}

static void h_ok(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    ferry_http_exchange_respond(ex, 200, "text/plain", "ok", 2);
}

static const char *get_ok = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
static const char *get_health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
static const char *get_ok_close = "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
static const char *partial = "GET /ok HTTP/1.1\r\nHost: x\r\n";

/* A server with LIMITS, /ok and the exempt /health. */
static ferry_http_server_t *limited_server(http_server_limits_t limits)
{
    char err[256];
    ferry_http_server_t *s = ferry__http_server_new(&loop, "127.0.0.1:0", &limits, err, sizeof err);
    CHECK(s != NULL, "limited server: %s", err);
    if (s == NULL)
        return NULL;
    ferry_http_route_add(s, "/ok", 0, h_ok, NULL);
    ferry_http_route_add(s, "/health", 0, h_ok, NULL);
    ferry__http_server_route_exempt(s, "/health");
    return s;
}

static void close_limited(ferry_http_server_t *s)
{
    closed_count = 0;
    ferry__http_server_close(s, on_closed, NULL);
    CHECK(wait_for(&closed_count, 1, 3000), "limited server never closed");
}

/* Sends text from source and expects an answer starting "HTTP/1.1 <want>"
 * holding needle, then the end of the connection. */
static void expect_answer(int port, const char *source, const char *text, const char *want,
                          const char *needle, const char *what)
{
    char buf[4096];
    int fd = raw_from(port, source, text);
    int closed = raw_until_closed(fd, buf, sizeof buf, 2000);
    CHECK(closed && strncmp(buf + 9, want, 3) == 0 && strstr(buf, needle), "%s: '%s'", what, buf);
    close(fd);
}

static void test_limits(void)
{
    char buf[4096];
    ferry_http_server_t *s = limited_server((http_server_limits_t){4, 2, 5.0});
    if (s == NULL)
        return;
    int port = ferry__http_server_port(s);

    /* Two slow requests hold 127.0.0.1's share. */
    int held[4];
    for (int i = 0; i < 2; i++)
        held[i] = raw_from(port, "127.0.0.1", partial);
    sleep_loop(50);
    expect_answer(port, "127.0.0.1", get_ok, "429", "Retry-After: ", "third from one address");
    expect_answer(port, "127.0.0.1", get_ok, "429", "from your address", "its reason");
    expect_answer(port, "127.0.0.1", get_health, "200", "Connection: close",
                  "exempt route over the limit");
    expect_answer(port, "127.0.0.2", get_ok_close, "200", "ok", "another address");

    /* Silent spares make way for a newcomer, oldest first. */
    int spare[9];
    for (int i = 0; i < 9; i++)
        spare[i] = raw_from(port, "127.0.0.1", "");
    CHECK(raw_until_closed(spare[0], buf, sizeof buf, 500) && strstr(buf, " 429 "),
          "oldest spare: '%s'", buf);
    CHECK(raw_is_open(spare[1]) && raw_is_open(spare[8]), "newer spares closed");
    expect_answer(port, "127.0.0.1", get_health, "200", "ok", "exempt route, every spare taken");
    CHECK(!raw_is_open(spare[1]), "the spare that made way is open");
    for (int i = 0; i < 9; i++)
        close(spare[i]);

    /* All four taken: 503, except for the exempt route. */
    for (int i = 2; i < 4; i++)
        held[i] = raw_from(port, "127.0.0.3", partial);
    sleep_loop(50);
    expect_answer(port, "127.0.0.4", get_ok, "503", "too many connections", "over the total");
    expect_answer(port, "127.0.0.4", get_health, "200", "ok", "exempt route over the total");
    for (int i = 0; i < 4; i++)
        CHECK(raw_is_open(held[i]), "held connection %d closed", i);

    /* Closing with requests half in leaves nothing behind (ASan, fds). */
    close_limited(s);
    for (int i = 0; i < 4; i++)
        close(held[i]);
}

static void test_deadline(void)
{
    char buf[4096];
    ferry_http_server_t *s = limited_server((http_server_limits_t){8, 8, 0.3});
    if (s == NULL)
        return;
    int port = ferry__http_server_port(s);
    /* Bytes that keep coming do not push the deadline back. */
    int slow[2] = {raw_from(port, "127.0.0.1", partial),
                   raw_from(port, "127.0.0.1",
                            "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")};
    uint64_t t0 = uv_now(&loop);
    for (int t = 0; t < 250; t += 50) {
        sleep_loop(50);
        send(slow[0], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
        send(slow[1], "x", 1, MSG_NOSIGNAL);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(raw_until_closed(slow[i], buf, sizeof buf, 1000) &&
                  strncmp(buf, "HTTP/1.1 408", 12) == 0 && strstr(buf, "Connection: close"),
              "slow request %d: '%s'", i, buf);
        close(slow[i]);
    }
    uint64_t took = uv_now(&loop) - t0;
    CHECK(took >= 280 && took < 700, "closed after %llu ms", (unsigned long long)took);
    /* A kept-alive connection idle past the deadline is closed without a
     * word; a request on time is answered meanwhile. */
    int fd = raw_from(port, "127.0.0.2", get_ok);
    CHECK(raw_until_closed(fd, buf, sizeof buf, 1500) && strncmp(buf, "HTTP/1.1 200", 12) == 0 &&
              strstr(buf, "408") == NULL,
          "kept-alive connection: '%s'", buf);
    close(fd);
    close_limited(s);
}

/* ---- closing from inside callbacks ---- */

static void on_closed(void *arg)
{
    (void)arg;
    closed_count++;
}

static ferry_http_server_t *other_server;

static void h_close_server(void *arg, ferry_http_exchange_t *ex)
{
    (void)arg;
    ferry_http_exchange_respond(ex, 200, "text/plain", "bye", 3);
    ferry__http_server_close(other_server, on_closed, NULL);
}

static void test_close_server_in_handler(void)
{
    char err[256];
    other_server = ferry__http_server_new(&loop, "127.0.0.1:0", NULL, err, sizeof err);
    CHECK(other_server != NULL, "%s", err);
    if (other_server == NULL)
        return;
    ferry_http_route_add(other_server, "/", 0, h_close_server, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ferry__http_server_port(other_server));
    struct result r = {0};
    int before = closed_count;
    CHECK(fetch(ferry_http_request_new(client, "GET", url), &r), "timed out");
    CHECK(r.calls == 1, "calls %d", r.calls);
    CHECK(wait_for(&closed_count, before + 1, 5000), "close never finished");
    result_reset(&r);
}

static ferry_http_client_t *other_client;
static ferry_http_request_t *victim;

static void on_close_client(void *arg, const ferry_http_response_t *resp)
{
    (void)resp;
    struct result *r = arg;
    r->calls++;
    ferry__http_client_close(other_client, on_closed, NULL);
}

static void on_cancel_other(void *arg, const ferry_http_response_t *resp)
{
    (void)resp;
    struct result *r = arg;
    r->calls++;
    ferry_http_request_cancel(victim);
    victim = NULL;
    done_count++;
}

static void test_close_client_in_callback(void)
{
    struct result a = {0}, b = {0};
    char url[128];

    /* Cancelling another request from a callback. */
    snprintf(url, sizeof url, "%s/slow", base);
    victim = ferry_http_request_new(client, "GET", url);
    ferry_http_request_send(victim, on_response, &b);
    int before = done_count;
    ferry_http_request_send(req("GET", "/echo/first"), on_cancel_other, &a);
    CHECK(wait_for(&done_count, before + 1, 5000), "timed out");
    sleep_loop(120);
    CHECK(a.calls == 1 && b.calls == 0, "calls %d %d", a.calls, b.calls);
    CHECK(ferry__http_client_pending(client) == 0, "pending %zu", ferry__http_client_pending(client));

    /* Closing the client from one callback drops the rest. */
    other_client = ferry__http_client_new(&loop);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    snprintf(url, sizeof url, "%s/slow", base);
    ferry_http_request_send(ferry_http_request_new(other_client, "GET", url), on_response, &b);
    snprintf(url, sizeof url, "%s/echo", base);
    ferry_http_request_send(ferry_http_request_new(other_client, "GET", url), on_close_client,
                            &a);
    before = closed_count;
    CHECK(wait_for(&closed_count, before + 1, 5000), "client close never finished");
    sleep_loop(120);
    CHECK(a.calls == 1 && b.calls == 0, "calls %d %d", a.calls, b.calls);
}

static void test_listen_errors(void)
{
    char err[256] = "";
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ferry__http_server_port(server));
    ferry_http_server_t *s = ferry__http_server_new(&loop, addr, NULL, err, sizeof err);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on %s: Address already in use", addr);
    CHECK(s == NULL && strcmp(err, want) == 0, "err '%s'", err);
    err[0] = '\0';
    CHECK(ferry__http_server_new(&loop, "nonsense", NULL, err, sizeof err) == NULL && err[0], "nonsense");
    CHECK(ferry__http_server_new(&loop, "127.0.0.1:99999", NULL, err, sizeof err) == NULL, "port 99999");
    CHECK(ferry__http_server_new(&loop, "::1:80", NULL, err, sizeof err) == NULL, "unbracketed v6");
}

static void test_ipv6(void)
{
    char err[256] = "";
    ferry_http_server_t *s = ferry__http_server_new(&loop, "[::1]:0", NULL, err, sizeof err);
    if (s == NULL) {
        printf("skip: no IPv6 loopback here (%s)\n", err);
        return;
    }
    ferry_http_route_add(s, "/", 0, h_named, "six");
    char url[64];
    snprintf(url, sizeof url, "http://[::1]:%d/x", ferry__http_server_port(s));
    struct result r = {0};
    CHECK(fetch(ferry_http_request_new(client, "GET", url), &r), "timed out");
    CHECK(r.status == 200 && strcmp(r.body, "six") == 0, "status %ld '%s' %s", r.status, r.body,
          r.error);
    int before = closed_count;
    ferry__http_server_close(s, on_closed, NULL);
    CHECK(wait_for(&closed_count, before + 1, 5000), "v6 server close never finished");
    result_reset(&r);
}

/* Closing with work in flight: the client drops its requests without
 * calling back; the server orphans the held exchange. */
static void test_close(void)
{
    struct result r1 = {0}, r2 = {0};
    held = NULL;
    held_count = 0;
    int before = closed_count;
    ferry_http_request_send(req("GET", "/hold"), on_response, &r1);
    ferry_http_request_send(req("GET", "/slow"), on_response, &r2);
    CHECK(wait_for(&held_count, 1, 5000), "hold never reached");
    ferry__http_client_close(client, on_closed, NULL);
    CHECK(ferry_http_request_new(client, "GET", base) == NULL, "request on closing client");
    ferry__http_server_close(server, on_closed, NULL);
    CHECK(wait_for(&closed_count, before + 2, 5000), "close finished %d of 2",
          closed_count - before);
    sleep_loop(100); /* let the slow handler's timer answer into the void */
    CHECK(r1.calls == 0 && r2.calls == 0, "callbacks after close: %d %d", r1.calls, r2.calls);
    if (held) /* orphan: respond only frees */
        ferry_http_exchange_respond(held, 200, NULL, "x", 1);
    client = NULL;
    server = NULL;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int main(void)
{
    /* Each wait has its own guard; this one catches a hang outside them. */
    alarm(120);
    if (getenv("FERRY_TEST_DEBUG"))
        ferry__log_set_level(FERRY_LOG_DEBUG);
    ferry__http_global_init();
    uv_loop_init(&loop);
    /* libuv keeps a spare fd from its first stream on: take it now. */
    uv_tcp_t spare;
    uv_tcp_init(&loop, &spare);
    uv_close((uv_handle_t *)&spare, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    int fds_before = count_fds();

    char err[256];
    server = ferry__http_server_new(&loop, "127.0.0.1:0", NULL, err, sizeof err);
    client = ferry__http_client_new(&loop);
    if (server == NULL || client == NULL) {
        printf("FAIL setup: %s\n", server ? "no client" : err);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    CHECK(ferry__http_server_port(server) > 0, "port %d", ferry__http_server_port(server));
    snprintf(base, sizeof base, "http://127.0.0.1:%d", ferry__http_server_port(server));

    ferry_http_route_add(server, "/echo", 1024 * 1024, h_echo, NULL);
    ferry_http_route_add(server, "/small/", 16, h_named, "small");
    ferry_http_route_add(server, "/hooks/", 1024, h_named, "hooks");
    ferry_http_route_add(server, "/hooks/main/", 1024, h_named, "main");
    ferry_http_route_add(server, "/hooks/main/x", 1024, h_named, "x");
    ferry_http_route_add(server, "/slow", 0, h_slow, NULL);
    ferry_http_route_add(server, "/rest/main/", 0, h_rest, NULL);
    ferry_http_route_add(server, "/restb", 0, h_rest, NULL);
    ferry_http_route_add(server, "/hold", 1024, h_hold, NULL);
    ferry_http_route_add(server, "/big", 0, h_big, NULL);
    ferry_http_route_add(server, "/busy/delta", 0, h_busy, "7");
    ferry_http_route_add(server, "/busy/junk", 0, h_busy, "soon-ish");
    ferry_http_route_add(server, "/busy/none", 0, h_busy, "");
    char future[64], past[64];
    time_t now = time(NULL) + 120;
    strftime(future, sizeof future, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&now));
    now -= 3600;
    strftime(past, sizeof past, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&now));
    ferry_http_route_add(server, "/busy/future", 0, h_busy, future);
    ferry_http_route_add(server, "/busy/past", 0, h_busy, past);

    test_get_post();
    test_not_found();
    test_too_large();
    test_routing();
    test_async();
    test_retry_after();
    test_injection();
    test_refused();
    test_timeout_and_gone_client();
    test_cancel();
    test_big_response();
    test_many();
    test_raw();
    test_rest();
    test_limits();
    test_deadline();
    test_close_server_in_handler();
    test_close_client_in_callback();
    test_listen_errors();
    test_ipv6();
    test_close();

    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(count_fds() == fds_before, "fds: %d before, %d after", fds_before, count_fds());
    CHECK(uv_loop_close(&loop) == 0, "handles left open on the loop");

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
