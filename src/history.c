/* history.c: ferry/history.h, the message archive per group chat, kept in
 * the component's store; text is cleaned both ways. */
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "ferry/history.h"
#include "ferry/text.h"

int ferry_history_add(ferry_component_t *comp, const char *room, int64_t ts_ms, const char *nick,
                      const char *body, int64_t *id)
{
    if (!comp->gw->store)
        return -1;
    size_t nl = strlen(nick), bl = strlen(body);
    char *n = ferry_xml_text_valid(nick, nl) ? NULL : ferry_xml_text_dup(nick, nl, NULL);
    char *b = ferry_xml_text_valid(body, bl) ? NULL : ferry_xml_text_dup(body, bl, NULL);
    int rc = ferry__store_history_add(comp->gw->store, comp->name, room, ts_ms, n ? n : nick, b ? b : body,
                               id);
    free(n);
    free(b);
    return rc;
}

typedef struct history_load {
    ferry_history_cb cb;
    void *arg;
} history_load_t;

/* Rows stored before text was cleaned on the way in are cleaned on the way
 * out: a replay must never carry what the server would refuse. */
static void on_history_row(void *arg, int64_t id, int64_t ts_ms, const char *nick,
                           const char *body)
{
    history_load_t *hl = arg;
    size_t nl = strlen(nick), bl = strlen(body);
    if (ferry_xml_text_valid(nick, nl) && ferry_xml_text_valid(body, bl)) {
        hl->cb(hl->arg, id, ts_ms, nick, body);
        return;
    }
    char *n = ferry_xml_text_dup(nick, nl, NULL), *b = ferry_xml_text_dup(body, bl, NULL);
    hl->cb(hl->arg, id, ts_ms, n, b);
    free(n);
    free(b);
}

int ferry_history_query(ferry_component_t *comp, const char *room, const ferry_history_query_t *q,
                        ferry_history_cb cb, void *arg)
{
    if (!comp->gw->store)
        return -1;
    store_history_filter_t f = {q->after_id, q->before_id, q->start_ms, q->end_ms, q->limit,
                                q->newest_first};
    history_load_t hl = {cb, arg};
    return ferry__store_history_query(comp->gw->store, comp->name, room, &f, on_history_row, &hl);
}

int ferry_history_prune(ferry_component_t *comp, int64_t before_ms)
{
    return comp->gw->store ? ferry__store_history_prune(comp->gw->store, before_ms) : -1;
}
