/* http_outbox.c: one outbox row, one HTTP request (ferry/http_outbox.h).
 *
 * The SMS and webhook adapters each kept a list of attempts, answered the
 * outbox from the status the same way and counted down to stopped(); this
 * is that code, once. */
#include <stdio.h>
#include <stdlib.h>

#include "ferry/alloc.h"
#include "ferry/http_outbox.h"
#include "ferry/list.h"
#include "ferry/outbox.h"

struct ferry_http_outbox {
    ferry_component_t *comp;
    ferry_http_outbox_handlers_t h;
    void *arg;
    ferry_list_t attempts; /* attempt_t, requests under way */
    int stopping;
};

typedef struct attempt {
    ferry_http_outbox_t *o;
    ferry_list_t node;
    int64_t id;
    void *data;
} attempt_t;

int ferry_http_transient(long status)
{
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

ferry_http_outbox_t *ferry_http_outbox_new(ferry_component_t *comp,
                                           const ferry_http_outbox_handlers_t *handlers,
                                           void *arg)
{
    ferry_http_outbox_t *o = ferry_calloc(1, sizeof *o);
    o->comp = comp;
    o->h = *handlers;
    o->arg = arg;
    ferry_list_init(&o->attempts);
    return o;
}

static void attempt_free(attempt_t *a)
{
    ferry_http_outbox_t *o = a->o;
    ferry_list_remove(&a->node);
    o->h.free(a->data);
    free(a);
    if (o->stopping && ferry_list_empty(&o->attempts))
        ferry_component_stopped(o->comp);
}

static void on_answer(void *arg, const ferry_http_response_t *resp)
{
    attempt_t *a = arg;
    ferry_http_outbox_t *o = a->o;
    char text[700];
    if (resp->status >= 200 && resp->status < 300) {
        ferry_outbox_done(o->comp, a->id);
        if (o->h.delivered)
            o->h.delivered(o->arg, a->data, resp);
    } else if (ferry_http_transient(resp->status)) {
        if (resp->status)
            snprintf(text, sizeof text, "%s answered HTTP %ld", o->h.peer, resp->status);
        else
            snprintf(text, sizeof text, "%s", resp->error ? resp->error : "no response");
        ferry_outbox_retry(o->comp, a->id, text, resp->retry_after);
    } else {
        text[0] = '\0';
        o->h.refused(o->arg, a->data, resp, text, sizeof text);
        ferry_outbox_fail(o->comp, a->id, text);
    }
    attempt_free(a);
}

void ferry_http_outbox_send(ferry_http_outbox_t *o, int64_t id, ferry_http_request_t *req,
                            void *data)
{
    attempt_t *a = ferry_calloc(1, sizeof *a);
    a->o = o;
    a->id = id;
    a->data = data;
    ferry_list_insert_head(&o->attempts, &a->node);
    if (!req) {
        ferry_outbox_retry(o->comp, id, "the request could not be made", -1);
        attempt_free(a);
    } else if (ferry_http_request_send(req, on_answer, a) != 0) {
        ferry_outbox_retry(o->comp, id, "the HTTP request could not be started", -1);
        attempt_free(a);
    }
}

void ferry_http_outbox_stop(ferry_http_outbox_t *o)
{
    o->stopping = 1;
    if (ferry_list_empty(&o->attempts))
        ferry_component_stopped(o->comp);
}

void ferry_http_outbox_free(ferry_http_outbox_t *o)
{
    if (!o)
        return;
    o->stopping = 0; /* no stopped() from here */
    ferry_list_t *first;
    while ((first = ferry_list_first(&o->attempts)))
        attempt_free(ferry_list_entry(first, attempt_t, node));
    free(o);
}
