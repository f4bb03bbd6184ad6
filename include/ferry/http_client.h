/* ferry/http_client.h: outgoing HTTP requests on the ferry loop (src/http_client.c).
 * Requests run on one curl multi handle driven by the libuv loop; the
 * callback runs exactly once per sent request unless it is cancelled. */
#ifndef FERRY_HTTP_CLIENT_H
#define FERRY_HTTP_CLIENT_H

#include <stddef.h>

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

#endif
