/* http_client.c: outgoing HTTP on the ferry loop.
 *
 * One curl multi handle per client, driven by libuv: curl tells us which
 * sockets to watch (a uv_poll_t each) and when to wake it up (one
 * uv_timer_t); we hand readiness back through curl_multi_socket_action and
 * collect finished transfers from curl_multi_info_read. Nothing blocks and
 * nothing polls in a loop.
 *
 * Lifetime: a request belongs to the caller until send(), then to the
 * client, which frees it right after its callback returns (or on cancel, or
 * on close). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "ferry/alloc.h"
#include "ferry/list.h"
#include "ferry/log.h"
#include "http_client.h"

enum req_state { REQ_NEW, REQ_RUNNING, REQ_DONE };

struct ferry_http_request {
    ferry_http_client_t *client;
    CURL *easy;
    enum req_state state;
    char *method;
    char *host; /* for log lines: never the URL, it may hold a token */
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    int has_body;
    int has_expect;
    long timeout_ms;
    ferry_http_done_cb cb;
    void *arg;
    uint64_t started_ms;

    char *resp;
    size_t resp_len, resp_cap;
    int resp_cut;
    long retry_after;
    char errbuf[CURL_ERROR_SIZE];

    ferry_list_t node; /* in client->running */
};

/* One per socket curl asked us to watch. */
struct sock_watch {
    uv_poll_t poll;
    curl_socket_t fd;
    ferry_http_client_t *client;
    ferry_list_t node; /* in client->watches */
};

/* Reusing easy handles saves their setup on every request. */
#define IDLE_EASY 64

struct ferry_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    ferry_list_t running; /* ferry_http_request_t, sent and not yet done */
    ferry_list_t watches; /* struct sock_watch */
    size_t pending;
    int open_handles; /* uv handles not yet through their close callback */
    int closing;
    CURL *idle[IDLE_EASY]; /* finished handles, reset and reused */
    size_t nidle;
    void (*done)(void *arg);
    void *done_arg;
};

/* ---- process-wide init ---- */

int ferry__http_global_init(void)
{
    static int state; /* 0 not yet, 1 ok, -1 failed */
    if (state == 0)
        state = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
    return state == 1 ? 0 : -1;
}

/* ---- small helpers ---- */

/* A C string cannot hold NUL, so CR and LF are what is left to refuse. */
static int has_line_break(const char *s)
{
    return s == NULL || strpbrk(s, "\r\n") != NULL;
}

/* RFC 9110 token characters: what a method or a header name may hold. */
int ferry__http_is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c))
            return 0;
    }
    return 1;
}

static void list_add(ferry_http_client_t *c, ferry_http_request_t *r)
{
    ferry_list_insert_head(&c->running, &r->node);
    c->pending++;
}

static void list_remove(ferry_http_client_t *c, ferry_http_request_t *r)
{
    ferry_list_remove(&r->node);
    c->pending--;
}

static void request_free(ferry_http_request_t *r)
{
    ferry_http_client_t *c = r->client;
    if (r->easy && c && !c->closing && c->nidle < IDLE_EASY) {
        curl_easy_reset(r->easy);
        c->idle[c->nidle++] = r->easy;
    } else if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r->method);
    free(r->host);
    free(r->body);
    free(r->resp);
    free(r);
}

/* ---- Retry-After ---- */

/* "120" or "Fri, 31 Dec 1999 23:59:59 GMT" -> seconds from now, at least 0;
 * -1 when the value is neither. */
static long parse_retry_after(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (isdigit((unsigned char)*v)) {
        long n = 0;
        const char *p = v;
        for (; isdigit((unsigned char)*p); p++)
            n = n > 100000000L ? n : n * 10 + (*p - '0'); /* clamps, never overflows */
        while (*p == ' ' || *p == '\t')
            p++;
        return *p == '\0' ? n : -1;
    }
    /* Only a date has letters (day and month names); curl_getdate would
     * also read "-5" as something. */
    int letters = 0;
    for (const char *p = v; *p; p++)
        letters |= isalpha((unsigned char)*p);
    if (!letters)
        return -1;
    time_t when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return -1;
    time_t now = time(NULL);
    return when > now ? (long)(when - now) : 0;
}

/* ---- curl callbacks (no user code runs in here) ---- */

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    ferry_http_request_t *r = userp;
    size_t len = size * n;
    size_t room = HTTP_CLIENT_MAX_BODY - r->resp_len;
    size_t take = len < room ? len : room;
    if (take < len)
        r->resp_cut = 1;
    if (take == 0)
        return len;
    r->resp = ferry_grow(r->resp, &r->resp_cap, r->resp_len + take + 1, 4096);
    memcpy(r->resp + r->resp_len, data, take);
    r->resp_len += take;
    r->resp[r->resp_len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    ferry_http_request_t *r = userp;
    size_t len = size * n;
    /* A status line starts a new response (after a 100 Continue, say):
     * forget what the previous one said. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        r->retry_after = -1;
        return len;
    }
    static const char name[] = "retry-after:";
    size_t nl = sizeof name - 1;
    if (len > nl && strncasecmp(data, name, nl) == 0) {
        char v[128];
        size_t vl = len - nl;
        if (vl >= sizeof v)
            vl = sizeof v - 1;
        memcpy(v, data + nl, vl);
        v[vl] = '\0';
        v[strcspn(v, "\r\n")] = '\0';
        r->retry_after = parse_retry_after(v);
    }
    return len;
}

/* ---- finishing ---- */

static void log_result(const ferry_http_request_t *r, const ferry_http_response_t *resp)
{
    uint64_t ms = uv_now(r->client->loop) - r->started_ms;
    if (resp->status == 0)
        ferry_log_warn("http", "%s %s failed after %llu ms: %s", r->method, r->host,
                       (unsigned long long)ms, resp->error);
    else
        ferry_log_debug("http", "%s %s -> %ld in %llu ms, %zu bytes%s", r->method, r->host,
                        resp->status, (unsigned long long)ms, resp->body_len,
                        r->resp_cut ? " (cut)" : "");
}

/* The easy handle is already out of the multi handle. */
static void request_finish(ferry_http_request_t *r, CURLcode rc)
{
    ferry_http_client_t *c = r->client;
    ferry_http_response_t resp = {0};
    resp.retry_after = -1;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        resp.retry_after = r->retry_after;
    }
    if (resp.status == 0)
        resp.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
    resp.body = r->resp ? r->resp : "";
    resp.body_len = r->resp_len;
    log_result(r, &resp);

    list_remove(c, r);
    /* DONE makes a cancel from inside the callback harmless. */
    r->state = REQ_DONE;
    if (r->cb)
        r->cb(r->arg, &resp);
    request_free(r);
}

static void check_done(ferry_http_client_t *c)
{
    CURLMsg *m;
    int left;
    /* One message at a time: a callback may cancel other requests (which
     * drops their messages) or close the whole client. */
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        ferry_http_request_t *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(c->multi, easy);
        request_finish(r, rc);
    }
}

/* ---- loop glue ---- */

static void on_handle_closed(uv_handle_t *h);

static void on_timer(uv_timer_t *t)
{
    ferry_http_client_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    ferry_http_client_t *c = userp;
    /* Even for 0 ms we go through the loop: curl must not be re-entered
     * from inside its own callback. */
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock_watch *w = p->data;
    ferry_http_client_t *c = w->client;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, w->fd, flags, &running);
    check_done(c);
}

static void watch_close(struct sock_watch *w)
{
    ferry_list_remove(&w->node);
    /* uv_close stops the watcher at once; the memory goes in the callback. */
    uv_close((uv_handle_t *)&w->poll, on_handle_closed);
}

static struct sock_watch *watch_new(ferry_http_client_t *c, curl_socket_t fd)
{
    struct sock_watch *w = ferry_calloc(1, sizeof *w);
    if (uv_poll_init_socket(c->loop, &w->poll, fd) != 0) {
        free(w);
        return NULL;
    }
    w->fd = fd;
    w->client = c;
    w->poll.data = w;
    c->open_handles++;
    ferry_list_insert_head(&c->watches, &w->node);
    return w;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    ferry_http_client_t *c = userp;
    struct sock_watch *w = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (w)
            watch_close(w);
        return 0;
    }
    if (w == NULL) {
        w = watch_new(c, fd);
        if (w == NULL) {
            ferry_log_error("http", "cannot watch socket %d", (int)fd);
            return -1;
        }
        curl_multi_assign(c->multi, fd, w);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&w->poll, events, on_poll);
    return 0;
}

/* ---- client ---- */

ferry_http_client_t *ferry__http_client_new(uv_loop_t *loop)
{
    if (ferry__http_global_init() != 0) {
        ferry_log_error("http", "curl_global_init failed");
        return NULL;
    }
    ferry_http_client_t *c = ferry_calloc(1, sizeof *c);
    c->loop = loop;
    ferry_list_init(&c->running);
    ferry_list_init(&c->watches);
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* A burst of messages to one receiver waits in curl's queue instead of
     * opening a socket each: receivers and descriptor limits both thank us. */
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
    /* Keep idle connections for reuse instead of reconnecting. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
    return c;
}

static void on_handle_closed(uv_handle_t *h)
{
    ferry_http_client_t *c;
    if (h->type == UV_POLL) {
        struct sock_watch *w = h->data;
        c = w->client;
        free(w);
    } else {
        c = h->data;
    }
    c->open_handles--;
    if (c->closing && c->open_handles == 0) {
        void (*done)(void *) = c->done;
        void *arg = c->done_arg;
        free(c);
        if (done)
            done(arg);
    }
}

void ferry__http_client_close(ferry_http_client_t *c, void (*done)(void *arg), void *arg)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    c->done = done;
    c->done_arg = arg;
    if (c->pending)
        ferry_log_debug("http", "closing client, dropping %zu requests", c->pending);
    ferry_list_t *first;
    while ((first = ferry_list_first(&c->running))) {
        ferry_http_request_t *r = ferry_list_entry(first, ferry_http_request_t, node);
        curl_multi_remove_handle(c->multi, r->easy);
        list_remove(c, r);
        request_free(r);
    }
    while (c->nidle)
        curl_easy_cleanup(c->idle[--c->nidle]);
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    /* Cached connections may go without a REMOVE for their socket. */
    while ((first = ferry_list_first(&c->watches)))
        watch_close(ferry_list_entry(first, struct sock_watch, node));
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

size_t ferry__http_client_pending(const ferry_http_client_t *c)
{
    return c ? c->pending : 0;
}

/* ---- requests ---- */

static char *url_host(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *copy = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        copy = ferry_strdup(host);
    curl_free(host);
    curl_url_cleanup(u);
    return copy;
}

ferry_http_request_t *ferry_http_request_new(ferry_http_client_t *client, const char *method,
                                             const char *url)
{
    if (client == NULL || client->closing || url == NULL || !ferry__http_is_token(method))
        return NULL;
    char *host = url_host(url);
    if (host == NULL) {
        ferry_log_warn("http", "%s: not a valid URL", method);
        return NULL;
    }
    ferry_http_request_t *r = ferry_calloc(1, sizeof *r);
    r->client = client;
    r->host = host;
    r->method = ferry_strdup(method);
    r->easy = client->nidle ? client->idle[--client->nidle] : curl_easy_init();
    r->timeout_ms = HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
    r->retry_after = -1;
    if (r->easy == NULL || curl_easy_setopt(r->easy, CURLOPT_URL, url) != CURLE_OK) {
        request_free(r);
        return NULL;
    }
    return r;
}

int ferry_http_request_header(ferry_http_request_t *req, const char *name, const char *value)
{
    if (req == NULL || req->state != REQ_NEW || !ferry__http_is_token(name) || has_line_break(value))
        return -1;
    /* "Name;" is curl's way to send a header with an empty value; "Name:"
     * would remove it instead. */
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = ferry_malloc(len);
    if (*value)
        snprintf(line, len, "%s: %s", name, value);
    else
        snprintf(line, len, "%s;", name);
    struct curl_slist *l = curl_slist_append(req->headers, line);
    free(line);
    if (l == NULL)
        return -1;
    req->headers = l;
    if (strcasecmp(name, "Expect") == 0)
        req->has_expect = 1;
    return 0;
}

void ferry_http_request_body(ferry_http_request_t *req, const char *body, size_t len)
{
    if (req == NULL || req->state != REQ_NEW)
        return;
    char *copy = ferry_malloc(len + 1);
    if (len)
        memcpy(copy, body, len);
    copy[len] = '\0';
    free(req->body);
    req->body = copy;
    req->body_len = len;
    req->has_body = 1;
}

void ferry_http_request_basic_auth(ferry_http_request_t *req, const char *user,
                                   const char *password)
{
    if (req == NULL || req->state != REQ_NEW)
        return;
    curl_easy_setopt(req->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(req->easy, CURLOPT_USERNAME, user ? user : "");
    curl_easy_setopt(req->easy, CURLOPT_PASSWORD, password ? password : "");
}

void ferry_http_request_timeout(ferry_http_request_t *req, long ms)
{
    if (req && req->state == REQ_NEW && ms > 0)
        req->timeout_ms = ms;
}

/* Method and body: curl picks its own verb from the options, so steer it. */
static void set_method(ferry_http_request_t *r)
{
    CURL *e = r->easy;
    const char *m = r->method;
    int is_get = strcmp(m, "GET") == 0, is_head = strcmp(m, "HEAD") == 0;
    int is_post = strcmp(m, "POST") == 0;

    if (r->has_body || (!is_get && !is_head && strcmp(m, "DELETE") != 0 &&
                        strcmp(m, "OPTIONS") != 0)) {
        /* Bodyless POST/PUT/PATCH still say Content-Length: 0. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        if (!is_post)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    } else if (is_get) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (is_head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
}

static int request_setup(ferry_http_request_t *r)
{
    CURL *e = r->easy;
    /* Unless asked for, no "Expect: 100-continue": curl would wait up to a
     * second for an answer to it on larger bodies, and many servers never
     * send one. */
    if (!r->has_expect) {
        struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
        if (l == NULL)
            return -1;
        r->headers = l;
    }
    set_method(r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return 0;
}

int ferry_http_request_send(ferry_http_request_t *req, ferry_http_done_cb cb, void *arg)
{
    if (req == NULL)
        return -1;
    ferry_http_client_t *c = req->client;
    if (req->state != REQ_NEW)
        return -1; /* sent already: it is not ours to free */
    if (c->closing || request_setup(req) != 0) {
        request_free(req);
        return -1;
    }
    req->cb = cb;
    req->arg = arg;
    req->started_ms = uv_now(c->loop);
    CURLMcode mc = curl_multi_add_handle(c->multi, req->easy);
    if (mc != CURLM_OK) {
        ferry_log_error("http", "%s %s: %s", req->method, req->host, curl_multi_strerror(mc));
        request_free(req);
        return -1;
    }
    req->state = REQ_RUNNING;
    list_add(c, req);
    return 0;
}

void ferry_http_request_cancel(ferry_http_request_t *req)
{
    if (req == NULL || req->state == REQ_DONE)
        return; /* inside its own callback: freed when that returns */
    if (req->state == REQ_RUNNING) {
        ferry_http_client_t *c = req->client;
        curl_multi_remove_handle(c->multi, req->easy);
        list_remove(c, req);
        ferry_log_debug("http", "%s %s cancelled", req->method, req->host);
    }
    request_free(req);
}
