/* http_server.c: the shared HTTP listener on the ferry loop.
 *
 * libmicrohttpd does the protocol; it runs in "external polling" mode with
 * its own epoll set, whose single fd we watch with a uv_poll_t. Whenever that
 * fd is readable, or MHD's own timeout expires (a uv_timer_t re-armed after
 * every MHD_run), we call MHD_run, which never blocks.
 *
 * Requests are dispatched by path prefix to handlers registered by adapters.
 * A handler gets an exchange once the whole body is in, and may answer at
 * once or later; until it does, the connection is suspended so MHD leaves it
 * alone.
 *
 * Exchange lifetime: an exchange is created when MHD has read the request
 * line and lives until both (a) MHD is done with the connection
 * (NOTIFY_COMPLETED) and (b) the handler, if it was called, has answered.
 * MHD does not watch suspended connections, so a client that hangs up while
 * its handler is busy is only noticed when the answer is written; if MHD lets
 * go of the connection first (server closing), the exchange becomes an
 * orphan that respond() just frees. Everything a handler may read is copied
 * into the exchange, so nothing there points into MHD's memory.
 *
 * Hostile clients: every connection has a struct http_conn (MHD's socket
 * context) with a deadline for receiving its whole request, headers and
 * body, that bytes do not push back (MHD's own timeout does reset with every
 * byte, so a client adding a header line now and then would hold a
 * connection for ever). Connections are counted per address and in total;
 * one over either limit becomes a "spare": a few of those exist for the
 * routes that must answer even then (/healthz), with a short deadline, the
 * oldest silent one making way for a newcomer; anything else asked on a
 * spare gets 429 or 503. A connection past its deadline gets a 408 written
 * straight to its socket, then shutdown(): MHD sees the end of the stream
 * and closes it as if the client had. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "ferry/alloc.h"
#include "ferry/list.h"
#include "ferry/log.h"
#include "http_client.h"
#include "http_server.h"

/* How much of a refused body we read and drop (to answer 413 on a
 * connection that stays usable) before we hang up instead. */
#define HTTP_SERVER_DRAIN_LIMIT (1024 * 1024)
#define HTTP_SERVER_IDLE_TIMEOUT_S 60
/* Connections over a limit, kept for exempt routes (/healthz), and how
 * long one of them may take to ask. */
#define HTTP_SERVER_SPARES 8
#define HTTP_SERVER_SPARE_TIMEOUT_MS 2000
#define HTTP_SERVER_ADDR_BUCKETS 256
/* At most one warning about refused connections per this many ms. */
#define HTTP_SERVER_OVER_LOG_MS (60 * 1000)

#ifndef MHD_HTTP_CONTENT_TOO_LARGE /* microhttpd before 0.9.74 */
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

struct route {
    char *prefix;
    size_t len;
    size_t max_body;
    ferry_http_handler_cb cb;
    void *arg;
    unsigned id; /* tells a route from a later one at the same address */
    int exempt;  /* answered on spare connections too (ferry__http_server_route_exempt) */
    ferry_list_t node; /* in srv->routes */
};

/* Connections open from one address (IPv6: one /64), while there are any. */
struct addr_count {
    unsigned char key[16]; /* IPv4 as ::ffff:a.b.c.d */
    unsigned n;
    struct addr_count *next;
};

/* One TCP connection, from MHD's NOTIFY_CONNECTION STARTED to CLOSED. */
struct http_conn {
    ferry_http_server_t *srv;
    struct MHD_Connection *mhd;
    struct addr_count *addr; /* counted there (regular connections only) */
    unsigned over;           /* 0, or the status a spare answers: 429 per address, 503 total */
    int closing;             /* shut down by us; MHD has yet to notice */
    ferry_http_exchange_t *ex; /* the request in progress, if MHD has its request line */
    uv_timer_t deadline;       /* runs until the request is in (or its early answer out) */
    ferry_list_t spare; /* in srv->spares while it is one */
};

struct header {
    char *name, *value;
};

enum ex_phase {
    EX_HEADERS, /* request line read, headers not yet seen */
    EX_BODY,    /* routed, collecting the body */
    EX_HANDLER, /* handler called, no answer yet */
    EX_ANSWERED /* a response is queued */
};

struct ferry_http_exchange {
    ferry_http_server_t *srv;    /* NULL once orphaned */
    struct MHD_Connection *conn; /* NULL once MHD let go of it */
    struct http_conn *sock;      /* its connection's state; NULL once MHD let go of it */
    enum ex_phase phase;
    int suspended;
    unsigned status;

    char *method;
    char *target; /* raw request target, cut at '?' */
    const char *path, *query;
    struct header *headers;
    size_t nheaders;

    unsigned route_id;
    char *route; /* its prefix, for log lines (the rest of the path may be a secret) */
    size_t max_body;
    char *body;
    size_t body_len, body_cap;
    int too_large;
    size_t dropped;

    struct header *extra; /* response headers from add_header */
    size_t nextra;

    ferry_list_t node; /* in srv->exchanges */
};

struct ferry_http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    int port;
    ferry_list_t routes; /* struct route */
    unsigned next_route_id;
    ferry_list_t exchanges; /* ferry_http_exchange_t */
    size_t nexchanges;
    http_server_limits_t limits;
    unsigned nregular;                 /* connections within the limits */
    unsigned nspares;
    ferry_list_t spares; /* struct http_conn, oldest first */
    struct addr_count *by_addr[HTTP_SERVER_ADDR_BUCKETS];
    unsigned long long over_unlogged;  /* spares since the last warning */
    uint64_t over_logged_at;
    int in_run;  /* inside MHD_run: handlers may be running */
    int kicked;  /* someone resumed a connection during MHD_run */
    int closing; /* close asked for */
    int stopped; /* MHD gone */
    int open_handles;
    unsigned long long answers[600]; /* by status, for /metrics */
    void (*done)(void *arg);
    void *done_arg;
};

static void server_run(ferry_http_server_t *srv);

/* ---- small helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int header_add(struct header **list, size_t *n, const char *name, const char *value)
{
    struct header *l = ferry_realloc(*list, (*n + 1) * sizeof **list);
    *list = l;
    l[*n].name = ferry_strdup(name);
    l[*n].value = ferry_strdup(value ? value : "");
    (*n)++;
    return 0;
}

static void headers_free(struct header *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
        free(list[i].value);
    }
    free(list);
}

/* ---- exchanges ---- */

static ferry_http_exchange_t *exchange_new(ferry_http_server_t *srv, struct MHD_Connection *conn,
                                           const char *target)
{
    ferry_http_exchange_t *ex = ferry_calloc(1, sizeof *ex);
    ex->target = ferry_strdup(target ? target : "");
    char *q = strchr(ex->target, '?');
    if (q)
        *q++ = '\0';
    ex->path = ex->target;
    ex->query = q ? q : "";
    ex->srv = srv;
    ex->conn = conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    ex->sock = ci ? ci->socket_context : NULL;
    if (ex->sock)
        ex->sock->ex = ex;
    ferry_list_insert_head(&srv->exchanges, &ex->node);
    srv->nexchanges++;
    return ex;
}

static void exchange_unlink(ferry_http_exchange_t *ex)
{
    ferry_http_server_t *srv = ex->srv;
    if (srv == NULL)
        return;
    ferry_list_remove(&ex->node);
    ex->srv = NULL;
    srv->nexchanges--;
}

/* MHD is done with the request: its connection no longer knows it. */
static void exchange_detach(ferry_http_exchange_t *ex)
{
    if (ex->sock && ex->sock->ex == ex)
        ex->sock->ex = NULL;
    ex->sock = NULL;
}

static void exchange_free(ferry_http_exchange_t *ex)
{
    exchange_detach(ex);
    exchange_unlink(ex);
    headers_free(ex->headers, ex->nheaders);
    headers_free(ex->extra, ex->nextra);
    free(ex->method);
    free(ex->route);
    free(ex->target);
    free(ex->body);
    free(ex);
}

static const char *route_name(const ferry_http_exchange_t *ex)
{
    return ex->route ? ex->route : "(no route)";
}

/* The handler still owes an answer but MHD is done with the connection:
 * keep the exchange for respond() to free. */
static void exchange_orphan(ferry_http_exchange_t *ex)
{
    exchange_detach(ex);
    exchange_unlink(ex);
    ex->conn = NULL;
    ex->suspended = 0;
}

/* ---- answering ---- */

static void kick(ferry_http_server_t *srv);

static void queue_answer(ferry_http_exchange_t *ex, unsigned status, const char *content_type,
                         const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    int ok = r != NULL;
    if (ok && content_type && *content_type) {
        if (strpbrk(content_type, "\r\n") == NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        else
            ferry_log_warn("http", "refused a Content-Type holding CR or LF");
    }
    for (size_t i = 0; ok && i < ex->nextra; i++)
        if (MHD_add_response_header(r, ex->extra[i].name, ex->extra[i].value) != MHD_YES)
            ferry_log_warn("http", "response header %s refused", ex->extra[i].name);
    if (ok && ex->sock && ex->sock->over) /* a spare serves one request */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ok)
        ok = MHD_queue_response(ex->conn, status, r) == MHD_YES;
    if (r)
        MHD_destroy_response(r);
    if (!ok)
        ferry_log_warn("http", "%s %s: could not queue the %u answer", ex->method,
                       route_name(ex), status);
    ex->phase = EX_ANSWERED;
    ex->status = status;
    if (status < 600 && ex->srv)
        ex->srv->answers[status]++;
}

/* The server's own answers: a status line's worth of text saying why. */
static enum MHD_Result answer_plain(ferry_http_exchange_t *ex, unsigned status, const char *why)
{
    const char *reason = MHD_get_reason_phrase_for(status);
    char text[256];
    int n = snprintf(text, sizeof text, "%u %s: %s\n", status, reason, why);
    if (n < 0 || (size_t)n >= sizeof text)
        n = (int)strlen(text);
    queue_answer(ex, status, "text/plain; charset=utf-8", text, (size_t)n);
    return MHD_YES;
}

/* ---- connections and their limits ---- */

/* request_timeout; a spare gets at most HTTP_SERVER_SPARE_TIMEOUT_MS */
static uint64_t deadline_ms(const struct http_conn *c)
{
    uint64_t ms = (uint64_t)(c->srv->limits.request_timeout * 1000.0 + 0.5);
    return c->over && ms > HTTP_SERVER_SPARE_TIMEOUT_MS ? HTTP_SERVER_SPARE_TIMEOUT_MS : ms;
}

/* The address a limit counts: IPv4 as ::ffff:a.b.c.d, IPv6 by its /64 (one
 * host's share). 0 when the connection has no IP address. */
static int addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(key, a, memcmp(a, v4mapped, 12) == 0 ? 16 : 8);
        return 1;
    }
    return 0;
}

static void addr_text(const unsigned char key[16], char *out, size_t len)
{
    if (memcmp(key, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
        inet_ntop(AF_INET, key + 12, out, (socklen_t)len);
    else if (inet_ntop(AF_INET6, key, out, (socklen_t)len) && strlen(out) + 4 < len)
        strcat(out, "/64");
}

static struct addr_count **addr_slot(ferry_http_server_t *srv, const unsigned char key[16])
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    struct addr_count **p = &srv->by_addr[h % HTTP_SERVER_ADDR_BUCKETS];
    while (*p && memcmp((*p)->key, key, 16) != 0)
        p = &(*p)->next;
    return p;
}

static void spare_unlink(ferry_http_server_t *srv, struct http_conn *c)
{
    if (!ferry_list_linked(&c->spare))
        return; /* not a spare, or already out of the list */
    ferry_list_remove(&c->spare);
    srv->nspares--;
}

/* An answer written straight to the socket, for a connection MHD cannot
 * answer on any more (its request is half in) or has not read from yet. */
static void raw_answer(struct http_conn *c, int fd, unsigned status, const char *why)
{
    char body[200], msg[512];
    int bl = snprintf(body, sizeof body, "%u %s: %s\n", status, MHD_get_reason_phrase_for(status),
                      why);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %u %s\r\nConnection: close\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n%s",
                     status, MHD_get_reason_phrase_for(status), bl,
                     status == 408 ? "" : "Retry-After: 1\r\n", body);
    if (n > 0 && (size_t)n < sizeof msg && send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        c->srv->answers[status]++;
}

/* Ends a connection from our side: status (if not 0) tells the client why,
 * then shutdown() makes MHD see the end of the stream and close it. */
static void conn_shut(struct http_conn *c, unsigned status, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->deadline);
    spare_unlink(c->srv, c);
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (i == NULL)
        return;
    if (status)
        raw_answer(c, i->connect_fd, status, why);
    shutdown(i->connect_fd, SHUT_RDWR);
    kick(c->srv);
}

static void on_deadline(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    /* Silence between two requests on a kept-alive connection is no
     * request to answer, nor is one answered early (404, 413) whose answer
     * or body is still on its way; a request line without the rest is. */
    if (c->ex && c->ex->phase != EX_ANSWERED) {
        ferry_log_debug("http", "%s %s: request not complete within %.3g s, closing",
                        c->ex->method ? c->ex->method : "(request line)", route_name(c->ex),
                        (double)deadline_ms(c) / 1000.0);
        conn_shut(c, MHD_HTTP_REQUEST_TIMEOUT, "the request took too long to arrive");
    } else {
        conn_shut(c, 0, NULL);
    }
}

static void arm_deadline(struct http_conn *c)
{
    uv_timer_start(&c->deadline, on_deadline, deadline_ms(c), 0);
}

/* Under attack this would be one line per connection: one a minute, with
 * how many there were. */
static void log_over(ferry_http_server_t *srv, const unsigned char key[16], unsigned over)
{
    srv->over_unlogged++;
    uint64_t now = uv_now(srv->loop);
    if (srv->over_logged_at && now - srv->over_logged_at < HTTP_SERVER_OVER_LOG_MS)
        return;
    char addr[INET6_ADDRSTRLEN + 4] = "?";
    addr_text(key, addr, sizeof addr);
    ferry_log_warn("http", "%llu connection(s) over the limit ([http] %s = %u), latest from %s: "
                   "only /healthz is answered on them",
                   srv->over_unlogged, over == 429 ? "max_connections_per_ip" : "max_connections",
                   over == 429 ? srv->limits.max_connections_per_ip : srv->limits.max_connections,
                   addr);
    srv->over_logged_at = now;
    srv->over_unlogged = 0;
}

static const char *over_reason(unsigned over)
{
    return over == MHD_HTTP_TOO_MANY_REQUESTS ? "too many connections from your address"
                                              : "too many connections";
}

/* A spare is wanted: make room by ending the oldest spare that has not got
 * its answer yet. 0 when all are being answered. */
static int make_spare_room(ferry_http_server_t *srv)
{
    if (srv->nspares < HTTP_SERVER_SPARES)
        return 1;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &srv->spares) {
        struct http_conn *c = ferry_list_entry(pos, struct http_conn, spare);
        if (c->ex == NULL || c->ex->phase < EX_HANDLER) {
            conn_shut(c, c->over, over_reason(c->over));
            return 1;
        }
    }
    return 0;
}

static void conn_open(ferry_http_server_t *srv, struct MHD_Connection *mc, void **socket_context)
{
    struct http_conn *c = ferry_calloc(1, sizeof *c);
    c->srv = srv;
    c->mhd = mc;
    uv_timer_init(srv->loop, &c->deadline);
    c->deadline.data = c;
    *socket_context = c;

    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char key[16];
    int has_addr = addr_key(i ? i->client_addr : NULL, key);
    struct addr_count **slot = has_addr ? addr_slot(srv, key) : NULL;
    if (srv->nregular >= srv->limits.max_connections)
        c->over = MHD_HTTP_SERVICE_UNAVAILABLE;
    else if (slot && *slot && (*slot)->n >= srv->limits.max_connections_per_ip)
        c->over = MHD_HTTP_TOO_MANY_REQUESTS;

    if (!c->over) {
        if (slot && *slot == NULL) {
            *slot = ferry_calloc(1, sizeof **slot);
            memcpy((*slot)->key, key, 16);
        }
        c->addr = slot ? *slot : NULL;
        if (c->addr)
            c->addr->n++;
        srv->nregular++;
    } else {
        log_over(srv, key, c->over);
        if (!make_spare_room(srv)) {
            conn_shut(c, c->over, over_reason(c->over));
            return;
        }
        ferry_list_insert_tail(&srv->spares, &c->spare);
        srv->nspares++;
    }
    arm_deadline(c);
}

static void on_conn_freed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(ferry_http_server_t *srv, struct http_conn *c)
{
    if (c == NULL)
        return;
    if (c->ex)
        c->ex->sock = NULL;
    if (c->over) {
        spare_unlink(srv, c);
    } else {
        srv->nregular--;
        if (c->addr && --c->addr->n == 0) {
            struct addr_count **slot = addr_slot(srv, c->addr->key);
            *slot = c->addr->next;
            free(c->addr);
        }
    }
    uv_close((uv_handle_t *)&c->deadline, on_conn_freed);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        conn_open(cls, mc, socket_context);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        conn_close(cls, *socket_context);
}

/* ---- routing ---- */

/* Whole segments only: "/hooks/main" and "/hooks/main/" both match
 * "/hooks/main" and "/hooks/main/x", never "/hooks/mainx". */
static int prefix_matches(const struct route *rt, const char *path)
{
    size_t len = rt->len;
    if (len > 1 && rt->prefix[len - 1] == '/')
        len--;
    if (strncmp(path, rt->prefix, len) != 0)
        return 0;
    return path[len] == '\0' || path[len] == '/' || rt->prefix[len - 1] == '/';
}

/* The route registered for PREFIX exactly, or NULL. */
static struct route *route_find(ferry_http_server_t *srv, const char *prefix)
{
    ferry_list_t *pos;
    ferry_list_foreach(pos, &srv->routes) {
        struct route *rt = ferry_list_entry(pos, struct route, node);
        if (strcmp(rt->prefix, prefix) == 0)
            return rt;
    }
    return NULL;
}

static void route_free(struct route *rt)
{
    ferry_list_remove(&rt->node);
    free(rt->prefix);
    free(rt);
}

static struct route *route_match(ferry_http_server_t *srv, const char *path)
{
    struct route *best = NULL;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &srv->routes) {
        struct route *rt = ferry_list_entry(pos, struct route, node);
        if (prefix_matches(rt, path) && (best == NULL || rt->len > best->len))
            best = rt;
    }
    return best;
}

int ferry_http_route_add(ferry_http_server_t *srv, const char *prefix, size_t max_body,
                         ferry_http_handler_cb cb, void *arg)
{
    if (srv == NULL || srv->closing || prefix == NULL || prefix[0] != '/' || cb == NULL)
        return -1;
    if (route_find(srv, prefix)) {
        ferry_log_warn("http", "route %s is taken already", prefix);
        return -1;
    }
    struct route *rt = ferry_calloc(1, sizeof *rt);
    rt->prefix = ferry_strdup(prefix);
    rt->len = strlen(prefix);
    rt->max_body = max_body;
    rt->cb = cb;
    rt->arg = arg;
    rt->id = ++srv->next_route_id;
    ferry_list_insert_head(&srv->routes, &rt->node);
    ferry_log_debug("http", "route %s added (body up to %zu bytes)", prefix, max_body);
    return 0;
}

void ferry__http_server_route_exempt(ferry_http_server_t *srv, const char *prefix)
{
    struct route *rt = srv ? route_find(srv, prefix) : NULL;
    if (rt)
        rt->exempt = 1;
}

void ferry_http_route_remove(ferry_http_server_t *srv, const char *prefix)
{
    if (srv == NULL || prefix == NULL)
        return;
    struct route *rt = route_find(srv, prefix);
    if (rt) {
        route_free(rt);
        ferry_log_debug("http", "route %s removed", prefix);
    }
}

/* ---- MHD callbacks ---- */

/* MHD hands us the raw target here, before it percent-decodes the path and
 * takes the query apart in place. The return value becomes con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    return exchange_new(cls, conn, uri);
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *name,
                                   const char *value)
{
    (void)kind;
    ferry_http_exchange_t *ex = cls;
    if (header_add(&ex->headers, &ex->nheaders, name, value) != 0)
        return MHD_NO;
    /* microhttpd lets a bare CR through in a value; RFC 9112 section 2.2:
     * replace it with SP, so that no handler passes it on. */
    for (char *c = ex->headers[ex->nheaders - 1].value; *c; c++)
        if (*c == '\r' || *c == '\n')
            *c = ' ';
    return MHD_YES;
}

static enum MHD_Result on_headers(ferry_http_server_t *srv, ferry_http_exchange_t *ex,
                                  const char *method)
{
    ex->method = ferry_strdup(method ? method : "");
    MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, copy_header, ex);
    if (srv->closing)
        return answer_plain(ex, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    struct route *rt = route_match(srv, ex->path);
    if (rt == NULL)
        return answer_plain(ex, MHD_HTTP_NOT_FOUND, "no such endpoint");
    if (ex->sock && ex->sock->over && !rt->exempt) {
        header_add(&ex->extra, &ex->nextra, "Retry-After", "1");
        return answer_plain(ex, ex->sock->over, over_reason(ex->sock->over));
    }
    ex->route_id = rt->id;
    ex->route = ferry_strdup(rt->prefix);
    ex->max_body = rt->max_body;
    ex->phase = EX_BODY;

    const char *cl = ferry_http_exchange_header(ex, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && n > ex->max_body) {
            ex->too_large = 1;
            /* Answer now when the client waits for "100 Continue" (it then
             * never sends the body) or when there is too much even to
             * drain; MHD drops the rest and closes the connection. */
            const char *expect = ferry_http_exchange_header(ex, "Expect");
            if (n - ex->max_body > HTTP_SERVER_DRAIN_LIMIT ||
                (expect && strcasecmp(expect, "100-continue") == 0)) {
                ferry_log_debug("http", "%s %s: %llu bytes announced, over %zu", ex->method,
                                route_name(ex), n, ex->max_body);
                return answer_plain(ex, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
            }
        }
    }
    return MHD_YES;
}

static enum MHD_Result on_body(ferry_http_exchange_t *ex, const char *data, size_t len)
{
    if (!ex->too_large && len > ex->max_body - ex->body_len) {
        ex->too_large = 1;
        ex->dropped = ex->body_len;
        free(ex->body);
        ex->body = NULL;
        ex->body_len = ex->body_cap = 0;
    }
    if (ex->too_large) {
        ex->dropped += len;
        /* MHD cannot queue an answer in the middle of a body: hang up. */
        if (ex->dropped > ex->max_body && ex->dropped - ex->max_body > HTTP_SERVER_DRAIN_LIMIT) {
            ferry_log_debug("http", "%s %s: body far over %zu bytes, closing", ex->method,
                            route_name(ex), ex->max_body);
            return MHD_NO;
        }
        return MHD_YES;
    }
    ex->body = ferry_grow(ex->body, &ex->body_cap, ex->body_len + len + 1, 1024);
    memcpy(ex->body + ex->body_len, data, len);
    ex->body_len += len;
    ex->body[ex->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_complete(ferry_http_server_t *srv, ferry_http_exchange_t *ex)
{
    if (ex->too_large) {
        ferry_log_debug("http", "%s %s: body over %zu bytes refused", ex->method,
                        route_name(ex), ex->max_body);
        return answer_plain(ex, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
    }
    if (srv->closing)
        return answer_plain(ex, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    /* The route may have gone while the body came in; its arg with it. */
    struct route *rt = route_match(srv, ex->path);
    if (rt == NULL || rt->id != ex->route_id)
        return answer_plain(ex, MHD_HTTP_NOT_FOUND, "no such endpoint");

    ex->phase = EX_HANDLER;
    if (ex->sock) /* the request is in, on time */
        uv_timer_stop(&ex->sock->deadline);
    rt->cb(rt->arg, ex); /* may remove rt, answer, or close the server */
    if (ex->phase == EX_HANDLER) {
        MHD_suspend_connection(ex->conn);
        ex->suspended = 1;
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    ferry_http_server_t *srv = cls;
    ferry_http_exchange_t *ex = *con_cls;
    if (ex == NULL) { /* no on_uri call made it (MHD always calls it: defensive) */
        ex = exchange_new(srv, conn, url);
        *con_cls = ex;
    }
    switch (ex->phase) {
    case EX_HEADERS:
        return on_headers(srv, ex, method);
    case EX_BODY:
        if (*upload_size) {
            size_t len = *upload_size;
            *upload_size = 0;
            return on_body(ex, upload_data, len);
        }
        return on_complete(srv, ex);
    case EX_HANDLER:
        /* Woken without an answer: only the server closing does that. */
        return MHD_NO;
    case EX_ANSWERED:
        break;
    }
    return MHD_NO; /* the answer could not be queued */
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    ferry_http_exchange_t *ex = *con_cls;
    /* A kept-alive connection has request_timeout again for its next one. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct http_conn *sock = ci ? ci->socket_context : NULL;
    if (sock && !sock->closing && !sock->over && why == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        arm_deadline(sock);
    if (ex == NULL)
        return;
    *con_cls = NULL;
    if (ex->phase == EX_ANSWERED)
        ferry_log_debug("http", "%s %s -> %u%s", ex->method, route_name(ex), ex->status,
                        why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (not delivered)");
    if (ex->phase == EX_HANDLER) {
        ferry_log_debug("http", "%s %s: connection dropped before the handler answered",
                        ex->method, route_name(ex));
        exchange_orphan(ex);
        return;
    }
    exchange_free(ex);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    ferry_log_debug("http", "microhttpd: %s", msg);
}

/* ---- the public exchange API ---- */

const char *ferry_http_exchange_method(const ferry_http_exchange_t *ex)
{
    return ex && ex->method ? ex->method : "";
}

const char *ferry_http_exchange_path(const ferry_http_exchange_t *ex)
{
    return ex ? ex->path : "";
}

const char *ferry_http_exchange_rest(const ferry_http_exchange_t *ex)
{
    if (ex == NULL || ex->route == NULL)
        return NULL;
    size_t len = strlen(ex->route);
    return strncmp(ex->path, ex->route, len) == 0 ? ex->path + len : NULL;
}

const char *ferry_http_exchange_query(const ferry_http_exchange_t *ex)
{
    return ex ? ex->query : "";
}

const char *ferry_http_exchange_header(const ferry_http_exchange_t *ex, const char *name)
{
    if (ex == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < ex->nheaders; i++)
        if (strcasecmp(ex->headers[i].name, name) == 0)
            return ex->headers[i].value;
    return NULL;
}

const char *ferry_http_exchange_body(const ferry_http_exchange_t *ex, size_t *len)
{
    if (len)
        *len = ex ? ex->body_len : 0;
    return ex && ex->body ? ex->body : "";
}

int ferry_http_exchange_add_header(ferry_http_exchange_t *ex, const char *name, const char *value)
{
    if (ex == NULL || ex->phase == EX_ANSWERED || !ferry__http_is_token(name) || value == NULL ||
        strpbrk(value, "\r\n") != NULL)
        return -1;
    return header_add(&ex->extra, &ex->nextra, name, value);
}

void ferry_http_exchange_respond(ferry_http_exchange_t *ex, unsigned status,
                                 const char *content_type, const char *body, size_t len)
{
    if (ex == NULL || ex->phase != EX_HANDLER)
        return;
    if (ex->conn == NULL) { /* orphan: nobody left to tell */
        exchange_free(ex);
        return;
    }
    if (status < 100 || status > 599) {
        ferry_log_warn("http", "handler answered with status %u; sending 500", status);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Queueing on a suspended connection is allowed; the resume then sends
     * it. The exchange itself goes when MHD reports the request complete. */
    queue_answer(ex, status, content_type, body, len);
    if (ex->suspended) {
        ex->suspended = 0;
        MHD_resume_connection(ex->conn);
        kick(ex->srv);
    }
}

/* ---- loop glue ---- */

static void on_handle_closed(uv_handle_t *h)
{
    ferry_http_server_t *srv = h->data;
    if (--srv->open_handles > 0)
        return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    free(srv);
    if (done)
        done(arg);
}

static void server_stop(ferry_http_server_t *srv)
{
    if (srv->stopped)
        return;
    srv->stopped = 1;
    /* MHD must not be stopped with suspended connections. */
    ferry_list_t *pos, *first;
    ferry_list_foreach(pos, &srv->exchanges) {
        ferry_http_exchange_t *ex = ferry_list_entry(pos, ferry_http_exchange_t, node);
        if (ex->suspended) {
            ex->suspended = 0;
            MHD_resume_connection(ex->conn);
        }
    }
    /* Stop watching the epoll fd before MHD closes it. */
    uv_close((uv_handle_t *)&srv->poll, on_handle_closed);
    uv_timer_stop(&srv->timer);
    uv_close((uv_handle_t *)&srv->timer, on_handle_closed);
    MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
    /* Whatever MHD did not report complete: free, or orphan if a handler
     * still holds it. */
    while ((first = ferry_list_first(&srv->exchanges))) {
        ferry_http_exchange_t *ex = ferry_list_entry(first, ferry_http_exchange_t, node);
        if (ex->phase == EX_HANDLER)
            exchange_orphan(ex);
        else
            exchange_free(ex);
    }
    while ((first = ferry_list_first(&srv->routes)))
        route_free(ferry_list_entry(first, struct route, node));
}

static void arm_timer(ferry_http_server_t *srv);

static void on_timer(uv_timer_t *t)
{
    server_run(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    server_run(p->data);
}

static void arm_timer(ferry_http_server_t *srv)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (srv->kicked) {
        srv->kicked = 0;
        uv_timer_start(&srv->timer, on_timer, 0, 0);
    } else if (MHD_get_timeout(srv->mhd, &ms) == MHD_YES) {
        uv_timer_start(&srv->timer, on_timer, (uint64_t)ms, 0);
    } else {
        uv_timer_stop(&srv->timer);
    }
}

/* A resumed connection needs an MHD_run to get going. */
static void kick(ferry_http_server_t *srv)
{
    if (srv == NULL || srv->stopped)
        return;
    if (srv->in_run)
        srv->kicked = 1;
    else
        uv_timer_start(&srv->timer, on_timer, 0, 0);
}

static void server_run(ferry_http_server_t *srv)
{
    if (srv->stopped)
        return;
    srv->in_run = 1;
    MHD_run(srv->mhd);
    srv->in_run = 0;
    if (srv->closing)
        server_stop(srv);
    else
        arm_timer(srv);
}

/* ---- listening ---- */

/* "HOST:PORT" or "[V6]:PORT" -> host and port strings. */
static int split_listen(const char *addr, char *host, size_t hostlen, char *port, size_t portlen,
                        char *err, size_t errlen)
{
    const char *h = addr, *hend, *p;
    if (*h == '[') {
        h++;
        hend = strchr(h, ']');
        if (hend == NULL || hend[1] != ':') {
            set_err(err, errlen, "bad listen address %s: want [ADDR]:PORT", addr);
            return -1;
        }
        p = hend + 2;
    } else {
        hend = strrchr(h, ':');
        if (hend == NULL || memchr(h, ':', (size_t)(hend - h)) != NULL) {
            set_err(err, errlen, "bad listen address %s: want HOST:PORT (IPv6 in brackets)",
                    addr);
            return -1;
        }
        p = hend + 1;
    }
    size_t hl = (size_t)(hend - h), pl = strlen(p);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen || strspn(p, "0123456789") != pl ||
        atol(p) > 65535) {
        set_err(err, errlen, "bad listen address %s: want HOST:PORT, port 0-65535", addr);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

/* We bind ourselves rather than let MHD do it: that way a failure comes
 * with its errno, and the message can say what went wrong. */
static int open_listener(const char *addr, int *family, char *err, size_t errlen)
{
    char host[256], port[8];
    if (split_listen(addr, host, sizeof host, port, sizeof port, err, errlen) != 0)
        return -1;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        set_err(err, errlen, "cannot listen on %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        set_err(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    *family = res->ai_family;
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static struct MHD_Daemon *start_mhd(ferry_http_server_t *srv, int fd, int family)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first, or MHD logs its complaints about the rest
     * straight to stderr. */
    return MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_SERVER_IDLE_TIMEOUT_S,
                            /* Our limits are per address and leave spares
                             * for /healthz (conn_open); MHD's is the hard
                             * stop, with room for the spares and for
                             * connections shut but not yet reaped. */
                            MHD_OPTION_CONNECTION_LIMIT,
                            srv->limits.max_connections + 2 * HTTP_SERVER_SPARES,
                            MHD_OPTION_END);
}

const http_server_limits_t ferry__http_server_default_limits = {
    .max_connections = 512,
    .max_connections_per_ip = 64,
    .request_timeout = 30.0,
};

ferry_http_server_t *ferry__http_server_new(uv_loop_t *loop, const char *listen,
                                     const http_server_limits_t *limits, char *err, size_t errlen)
{
    if (listen == NULL) {
        set_err(err, errlen, "no listen address");
        return NULL;
    }
    int family;
    int fd = open_listener(listen, &family, err, errlen);
    if (fd < 0)
        return NULL;
    ferry_http_server_t *srv = ferry_calloc(1, sizeof *srv);
    srv->loop = loop;
    ferry_list_init(&srv->routes);
    ferry_list_init(&srv->exchanges);
    ferry_list_init(&srv->spares);
    srv->limits = limits ? *limits : ferry__http_server_default_limits;
    srv->port = bound_port(fd);
    srv->mhd = start_mhd(srv, fd, family);
    const union MHD_DaemonInfo *info =
        srv->mhd ? MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info == NULL || uv_poll_init(loop, &srv->poll, info->epoll_fd) != 0) {
        set_err(err, errlen, "cannot listen on %s: microhttpd would not start", listen);
        if (srv->mhd)
            MHD_stop_daemon(srv->mhd); /* closes fd too */
        else if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        free(srv);
        return NULL;
    }
    uv_timer_init(loop, &srv->timer);
    srv->poll.data = srv;
    srv->timer.data = srv;
    srv->open_handles = 2;
    uv_poll_start(&srv->poll, UV_READABLE, on_poll);
    arm_timer(srv);
    ferry_log_debug("http", "listening on %s (port %d)", listen, srv->port);
    return srv;
}

int ferry__http_server_port(const ferry_http_server_t *srv)
{
    return srv ? srv->port : -1;
}

const unsigned long long *ferry__http_server_answers(const ferry_http_server_t *srv)
{
    return srv->answers;
}

size_t ferry__http_server_pending(const ferry_http_server_t *srv)
{
    return srv ? srv->nexchanges : 0;
}

void ferry__http_server_close(ferry_http_server_t *srv, void (*done)(void *arg), void *arg)
{
    if (srv == NULL || srv->closing)
        return;
    srv->closing = 1;
    srv->done = done;
    srv->done_arg = arg;
    /* Inside a handler MHD is on the stack: server_run stops it after. */
    if (!srv->in_run)
        server_stop(srv);
}
