/* ferry/http.h: HTTP both ways on the ferry loop.
 *
 * Client: requests run on one curl multi handle driven by the libuv loop;
 * the callback runs exactly once per sent request unless it is cancelled.
 * Server: adapters register path prefixes on the shared listener ([http]
 * listen); the core answers 404 for paths nobody registered and 413 for
 * bodies over a route's limit before its handler sees them, and 408, 429 or
 * 503 to clients over the [http] connection limits or request_timeout. */
#ifndef FERRY_HTTP_H
#define FERRY_HTTP_H

#include <stddef.h>

/* ---- client ---- */

typedef struct ferry_http_client ferry_http_client_t;
typedef struct ferry_http_request ferry_http_request_t;

typedef struct ferry_http_response {
    long status;              /* HTTP status; 0 when no response arrived */
    const char *error;        /* why there was no response (status 0), else NULL */
    const char *body;         /* NUL-terminated; "" when empty */
    size_t body_len;
    long retry_after;         /* seconds from Retry-After (delta or HTTP-date); -1 when absent */
} ferry_http_response_t;

typedef void (*ferry_http_done_cb)(void *arg, const ferry_http_response_t *resp);

ferry_http_request_t *ferry_http_request_new(ferry_http_client_t *client, const char *method,
                                             const char *url);
/* Refuses (-1) names or values holding CR, LF or NUL, so that no text becomes
 * a header of its own. */
int ferry_http_request_header(ferry_http_request_t *req, const char *name, const char *value);
void ferry_http_request_body(ferry_http_request_t *req, const char *body, size_t len);
void ferry_http_request_basic_auth(ferry_http_request_t *req, const char *user, const char *password);
void ferry_http_request_timeout(ferry_http_request_t *req, long ms); /* default 30 s */
/* Starts the request; the client owns it from here. Returns -1 (and frees
 * it, without calling cb) when it cannot start. */
int ferry_http_request_send(ferry_http_request_t *req, ferry_http_done_cb cb, void *arg);
/* Before the callback ran: stops the request; cb will not be called. */
void ferry_http_request_cancel(ferry_http_request_t *req);

/* ---- server ---- */

typedef struct ferry_http_server ferry_http_server_t;
typedef struct ferry_http_exchange ferry_http_exchange_t;

/* Called once the whole body has arrived. The handler answers with
 * ferry_http_exchange_respond(), now or later from the loop (the connection
 * waits meanwhile). */
typedef void (*ferry_http_handler_cb)(void *arg, ferry_http_exchange_t *ex);

/* Prefixes match whole path segments: "/hooks/main/" matches
 * "/hooks/main/alerts". The longest registered prefix wins. */
int ferry_http_route_add(ferry_http_server_t *srv, const char *prefix, size_t max_body,
                         ferry_http_handler_cb cb, void *arg);
void ferry_http_route_remove(ferry_http_server_t *srv, const char *prefix);

const char *ferry_http_exchange_method(const ferry_http_exchange_t *ex);
const char *ferry_http_exchange_path(const ferry_http_exchange_t *ex);  /* without the query */
/* The path after the prefix of the route that took the request: "alerts"
 * for "/hooks/main/alerts" on route "/hooks/main/", "" for the prefix
 * itself, NULL for the route without its trailing slash ("/hooks/main"),
 * which names nothing below it. Never holds the query. */
const char *ferry_http_exchange_rest(const ferry_http_exchange_t *ex);
const char *ferry_http_exchange_query(const ferry_http_exchange_t *ex); /* raw, "" when none */
const char *ferry_http_exchange_header(const ferry_http_exchange_t *ex, const char *name);
const char *ferry_http_exchange_body(const ferry_http_exchange_t *ex, size_t *len);
/* Extra response header, before respond(); refused (-1) with CR/LF/NUL. */
int ferry_http_exchange_add_header(ferry_http_exchange_t *ex, const char *name, const char *value);
/* Sends the answer and frees the exchange. Every exchange handed to a
 * handler must be answered exactly once: if the client hung up meanwhile, or
 * the server was closed, this only frees it. */
void ferry_http_exchange_respond(ferry_http_exchange_t *ex, unsigned status,
                                 const char *content_type, const char *body, size_t len);

#endif
