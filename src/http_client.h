/* http_client.h: the core's side of the HTTP client: one client per loop,
 * created at start and closed at shutdown. Requests themselves go through the
 * public API in ferry/http_client.h. */
#ifndef FERRY_SRC_HTTP_CLIENT_H
#define FERRY_SRC_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

#include "ferry/http_client.h"

/* Responses bigger than this are cut; the rest is read and dropped. */
#define HTTP_CLIENT_MAX_BODY (1024 * 1024)
#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS 30000L

/* RFC 9110 token characters: what a method or a header name may hold. */
int ferry__http_is_token(const char *s);

/* curl_global_init, once per process; safe to call again. 0 or -1. */
int ferry__http_global_init(void);

ferry_http_client_t *ferry__http_client_new(uv_loop_t *loop);
/* Drops every request still under way without calling its callback, closes
 * the loop handles, then calls done(arg) (from the loop) and frees the
 * client. Requests cannot be made once this is called. */
void ferry__http_client_close(ferry_http_client_t *client, void (*done)(void *arg), void *arg);
/* Requests sent whose callback has not run yet. */
size_t ferry__http_client_pending(const ferry_http_client_t *client);

#endif
