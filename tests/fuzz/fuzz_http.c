/* fuzz_http.c: the shared HTTP listener (src/http_server.c on
 * libmicrohttpd) on any bytes a client may send over TCP: request line,
 * headers, Content-Length and chunked bodies, route matching by path
 * prefix; behind it the real webhook handler (adapters/webhook/webhook.c,
 * included so that its static functions run as they are) on /hooks/main/,
 * and a handler on /sms/sms/ and /healthz that checks what every handler
 * is promised (ferry/http_server.h).
 *
 * Each input is one connection to the listener on 127.0.0.1: the bytes are
 * written, the loop run until ferry has said what it had to, then the
 * client closes. The ORACLE: a handler only ever sees a path its prefix
 * matches in whole segments, a body within its limit and NUL-terminated,
 * header values without CR or LF; the webhook handler stores only for
 * /hooks/main/alerts, and what it stores is, as the core stores it,
 * well-formed XML 1.0; once the client is gone, no exchange is left. */
#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ferry/component.h"
#include "oracle.h"

int fuzz_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza);
void fuzz_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg);
#define ferry_xmpp_put fuzz_xmpp_put
#define ferry_outbox_sync fuzz_outbox_sync
#define ferry_adapter_webhook fuzz_adapter_webhook
#include "../../adapters/webhook/webhook.c"
#undef ferry_xmpp_put
#undef ferry_outbox_sync

#include "component.h"
#include "http_server.h"
#include "toml.h"

#define SMALL_BODY 64

static const char config[] = "[endpoints.alerts]\n"
                             "token = \"s3cret\"\n"
                             "deliver_to = [\"alice@example.org\"]\n";

static uv_loop_t loop;
static const char *webhook_path; /* of the request the webhook handler is in */
static ferry_http_server_t *srv;
static int port;

int fuzz_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza)
{
    (void)comp;
    (void)dedup;
    fuzz_check_stored("http: webhook stored chat", stanza);
    /* Only a request to an endpoint that takes messages stores one. */
    if (!webhook_path || strcmp(webhook_path, "/hooks/main/alerts") != 0)
        fuzz_fail("http", "a message stored for a request to %s", webhook_path);
    return 0;
}

void fuzz_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg)
{
    (void)comp;
    cb(arg, 1);
}

typedef struct route {
    const char *prefix;
    size_t max_body;
} route_t;

static const route_t sms_route = {"/sms/sms/", 64 * 1024};
static const route_t health_route = {"/healthz", SMALL_BODY};

static int route_matches(const char *prefix, const char *path)
{
    size_t len = strlen(prefix);
    if (len > 1 && prefix[len - 1] == '/')
        len--;
    return strncmp(path, prefix, len) == 0 && (path[len] == 0 || path[len] == '/');
}

/* What ferry/http_server.h promises a handler, checked on every request. */
static void on_request(void *arg, ferry_http_exchange_t *ex)
{
    const route_t *rt = arg;
    const char *path = ferry_http_exchange_path(ex), *query = ferry_http_exchange_query(ex);
    if (!route_matches(rt->prefix, path))
        fuzz_fail("http", "route %s got path %s", rt->prefix, path);
    if (strchr(path, '?'))
        fuzz_fail("http", "a '?' left in path %s", path);
    if (!query || !*ferry_http_exchange_method(ex))
        fuzz_fail("http", "no query string or no method");
    static const char *const names[] = {"Content-Type", "Authorization", "Host",
                                        "Content-Length", "X-Anything"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = ferry_http_exchange_header(ex, names[i]);
        if (v && strpbrk(v, "\r\n"))
            fuzz_fail("http", "header %s holds CR or LF", names[i]);
    }
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    if (len > rt->max_body || body[len] != 0)
        fuzz_fail("http", "a body of %zu bytes, limit %zu, or not NUL-ended", len, rt->max_body);
    if (ferry_http_exchange_add_header(ex, "X-Bad", "a\r\nSet-Cookie: x") == 0)
        fuzz_fail("http", "a header value with CR LF accepted");
    ferry_http_exchange_respond(ex, 200, "text/plain", "ok\n", 3);
}

static void on_webhook(void *arg, ferry_http_exchange_t *ex)
{
    webhook_path = ferry_http_exchange_path(ex);
    on_inbound(arg, ex);
    webhook_path = NULL;
}

static void start(void)
{
    static gateway_t gw;
    static ferry_component_t comp;
    uv_loop_init(&loop);
    char err[256];
    srv = ferry__http_server_new(&loop, "127.0.0.1:0", NULL, err, sizeof err);
    if (!srv)
        fuzz_fail("http", "no listener: %s", err);
    port = ferry__http_server_port(srv);
    gw.ctx = fuzz_xmpp_ctx();
    gw.http_server = srv;
    comp.gw = &gw;
    comp.name = "main";
    comp.domain = "hooks.example.org";
    int line;
    static toml_node_t *conf; /* static: a leak check at exit must not count it */
    conf = ferry__toml_parse(config, sizeof config - 1, err, sizeof err, &line);
    webhook_t *wh = conf ? webhook_create(&comp, conf) : NULL;
    /* As webhook_start() registers it, without the outbox. */
    if (!wh || ferry_http_route_add(srv, wh->route, MAX_INBOUND_BODY, on_webhook, wh) != 0 ||
        ferry_http_route_add(srv, sms_route.prefix, sms_route.max_body, on_request,
                             (void *)&sms_route) != 0 ||
        ferry_http_route_add(srv, health_route.prefix, health_route.max_body, on_request,
                             (void *)&health_route) != 0)
        fuzz_fail("http", "routes refused");
}

/* libFuzzer's timers interrupt system calls: every wait here retries. */
static int connect_local(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS &&
                   errno != EINTR))
        fuzz_fail("http", "cannot connect: %s", strerror(errno));
    struct pollfd p = {fd, POLLOUT, 0};
    int n, err = 0;
    socklen_t len = sizeof err;
    while ((n = poll(&p, 1, 5000)) < 0 && errno == EINTR)
        ;
    if (n != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        fuzz_fail("http", "cannot connect: %s", n == 0 ? "timed out" : strerror(err ? err : errno));
    return fd;
}

/* Runs the loop until nothing moves for a few rounds: on loopback a write
 * reaches ferry at once and its answer comes back within the same rounds,
 * so no round needs to sleep. */
static void settle(int fd, int *closed)
{
    char buf[4096];
    for (int quiet = 0; quiet < 4 && !*closed;) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "%.*s", (int)n, buf);
            quiet = 0;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            *closed = 1;
        } else {
            quiet++;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        start();
    int fd = connect_local(), closed = 0;
    /* Written while the loop runs: ferry may answer (and stop reading)
     * before the client is done. */
    for (size_t sent = 0; sent < size && !closed;) {
        ssize_t n = send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* ferry hung up first */
        settle(fd, &closed);
    }
    settle(fd, &closed);
    /* The client goes (a kept-alive connection waits for more otherwise):
     * ferry must let go of every exchange of it. */
    close(fd);
    for (int round = 0; round < 1000 && ferry__http_server_pending(srv); round++)
        uv_run(&loop, UV_RUN_NOWAIT);
    if (ferry__http_server_pending(srv))
        fuzz_fail("http", "%zu exchange(s) left after the client went", ferry__http_server_pending(srv));
    return 0;
}
