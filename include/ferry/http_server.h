/* ferry/http_server.h: routes on the shared HTTP listener (src/http_server.c).
 * Adapters register path prefixes on the listener ([http] listen); the core
 * answers 404 for paths nobody registered and 413 for bodies over a route's
 * limit before its handler sees them, and 408, 429 or 503 to clients over
 * the [http] connection limits or request_timeout. */
#ifndef FERRY_HTTP_SERVER_H
#define FERRY_HTTP_SERVER_H

#include <stddef.h>

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
