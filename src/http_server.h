/* http_server.h: the core's side of the HTTP listener ([http] listen) that
 * adapters share by registering path prefixes (ferry/http_server.h). */
#ifndef FERRY_SRC_HTTP_SERVER_H
#define FERRY_SRC_HTTP_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "ferry/http_server.h"

/* What one client, or all together, may hold ([http] in gateway.toml). */
typedef struct http_server_limits {
    unsigned max_connections;        /* open at once, all clients (spares aside) */
    unsigned max_connections_per_ip; /* open at once from one address (IPv6: one /64) */
    double request_timeout;          /* seconds for a whole request, headers and body,
                                      * from the connection's start or the previous answer */
} http_server_limits_t;

extern const http_server_limits_t ferry__http_server_default_limits; /* 512, 64, 30 s */

/* listen is "HOST:PORT": "127.0.0.1:8480", "[::1]:8480", "0.0.0.0:0" (port 0
 * picks a free one, see ferry__http_server_port); limits NULL means the defaults.
 * On failure returns NULL and says why in err, e.g. "cannot listen on
 * 127.0.0.1:8480: Address already in use". */
ferry_http_server_t *ferry__http_server_new(uv_loop_t *loop, const char *listen,
                                     const http_server_limits_t *limits, char *err, size_t errlen);
/* Marks a registered route as answered even on a connection over the
 * limits (one of a few spares, one request each): /healthz. */
void ferry__http_server_route_exempt(ferry_http_server_t *srv, const char *prefix);
/* The port actually bound. */
int ferry__http_server_port(const ferry_http_server_t *srv);
/* Requests in progress: being read, waiting on a handler, or being sent. */
size_t ferry__http_server_pending(const ferry_http_server_t *srv);
/* Answers sent so far, indexed by status code (0-599). */
const unsigned long long *ferry__http_server_answers(const ferry_http_server_t *srv);
/* Stops listening and drops every connection, then calls done(arg) from the
 * loop and frees the server. Exchanges whose handler has not answered yet
 * stay valid: ferry_http_exchange_respond() on them only frees them (the
 * client is gone), so their owners must still call it once. Safe to call
 * from inside a handler. */
void ferry__http_server_close(ferry_http_server_t *srv, void (*done)(void *arg), void *arg);

#endif
