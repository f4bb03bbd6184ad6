/* ferry/http_outbox.h: delivering outbox rows over HTTP.
 *
 * An adapter whose deliver() is "POST this row somewhere" (SMS providers,
 * webhook receivers) has the same life for every attempt: the request goes
 * out, a 2xx marks the row done, no answer or 408/429/5xx retries it (with
 * the far end's Retry-After), any other status is a refusal the sender is
 * told about and the row fails; the attempts under way hold a stop back
 * until they end. That is written once here; the adapter builds the request
 * and says what a success and a refusal mean to its users.
 *
 * Ownership: each attempt's DATA is the adapter's, handed over to send() and
 * given back to handlers.free once the attempt is over (answered, or dropped
 * when the set is freed: requests still under way went with the HTTP
 * client, which closes before adapters are destroyed; their rows stay
 * pending in the store). */
#ifndef FERRY_HTTP_OUTBOX_H
#define FERRY_HTTP_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/component.h"
#include "ferry/http_client.h"

/* Whether an HTTP answer STATUS (0: none came) may go another way on a
 * retry: no answer, 408 Request Timeout, 429 Too Many Requests, 5xx. */
int ferry_http_transient(long status);

typedef struct ferry_http_outbox_handlers {
    /* Who answers, for the retry reason: "the provider" answered HTTP 503. */
    const char *peer;
    /* 2xx: the row is done already; say so to whom it concerns. May be NULL. */
    void (*delivered)(void *arg, void *data, const ferry_http_response_t *resp);
    /* A refusal that a retry will not change: tell the sender, and write in
     * TEXT (CAP bytes) why; the row fails with it. */
    void (*refused)(void *arg, void *data, const ferry_http_response_t *resp, char *text,
                    size_t cap);
    /* Frees an attempt's DATA. */
    void (*free)(void *data);
} ferry_http_outbox_handlers_t;

/* The attempts under way of one adapter instance. HANDLERS is copied. */
typedef struct ferry_http_outbox ferry_http_outbox_t;

ferry_http_outbox_t *ferry_http_outbox_new(ferry_component_t *comp,
                                           const ferry_http_outbox_handlers_t *handlers,
                                           void *arg);

/* Sends REQ for the outbox row ID; the answer goes to the outbox and the
 * handlers, then DATA is freed. When REQ is NULL or cannot start, the row is
 * retried later and DATA freed at once. */
void ferry_http_outbox_send(ferry_http_outbox_t *o, int64_t id, ferry_http_request_t *req,
                            void *data);

/* From the adapter's stop(): ferry_component_stopped() once no attempt is
 * under way (now, when none is). */
void ferry_http_outbox_stop(ferry_http_outbox_t *o);

/* From destroy(): frees O and the attempts left, without stopped(). */
void ferry_http_outbox_free(ferry_http_outbox_t *o);

#endif
