/* outbox.c: ferry/outbox.h, durable delivery as adapters see it: each call
 * goes to the component's queue (outbox_network.c, outbox_xmpp.c) or to the
 * store; and the record format adapters keep their payloads in. */
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "ferry/alloc.h"
#include "ferry/outbox.h"
#include "ferry/text.h"

int ferry_outbox_open(ferry_component_t *comp, const ferry_outbox_handlers_t *handlers, void *arg)
{
    if (comp->net_outbox || !comp->gw->store)
        return -1;
    comp->net_outbox = ferry__net_outbox_new(comp->gw->loop, comp->gw->store, comp->name, &comp->policy);
    ferry__net_outbox_start(comp->net_outbox, handlers, arg);
    comp->hold = ferry__outbox_hold_new(comp->gw->loop, comp->gw->store, comp->net_outbox,
                                        comp->name);
    return 0;
}

int ferry_outbox_put(ferry_component_t *comp, const char *conversation, const char *dedup,
                     const char *payload, size_t len, int64_t *id)
{
    if (!comp->net_outbox)
        return -1;
    return ferry__net_outbox_put(comp->net_outbox, conversation, dedup, payload, len, id);
}

int ferry_outbox_put_or_hold(ferry_component_t *comp, const char *conversation, const char *dedup,
                             const char *payload, size_t len, int64_t *id)
{
    if (!comp->net_outbox)
        return -1;
    const config_t *c = comp->gw->config;
    return ferry__outbox_hold_put(comp->hold, c->hold_messages, c->hold_bytes, conversation, dedup,
                                  payload, len, id);
}

void ferry_outbox_done(ferry_component_t *comp, int64_t id)
{
    if (comp->net_outbox)
        ferry__net_outbox_done(comp->net_outbox, id);
}

void ferry_outbox_retry(ferry_component_t *comp, int64_t id, const char *error, long retry_after)
{
    if (comp->net_outbox)
        ferry__net_outbox_retry(comp->net_outbox, id, error, retry_after);
}

void ferry_outbox_fail(ferry_component_t *comp, int64_t id, const char *error)
{
    if (comp->net_outbox)
        ferry__net_outbox_fail(comp->net_outbox, id, error);
}

int ferry_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza)
{
    if (!comp->xmpp_outbox)
        return -1;
    if (!xmpp_stanza_get_from(stanza))
        xmpp_stanza_set_from(stanza, comp->domain);
    char *text;
    size_t len;
    if (xmpp_stanza_to_text(stanza, &text, &len) != XMPP_EOK)
        return -1;
    /* Cleaned before it is stored: a stored stanza the server refuses would
     * come back after every reconnect. Markup is ASCII, so replacing what XML
     * forbids keeps the stanza well-formed. */
    char *clean = ferry_xml_text_valid(text, len) ? NULL : ferry_xml_text_dup(text, len, &len);
    int rc = ferry__xmpp_outbox_put(comp->xmpp_outbox, dedup, clean ? clean : text, len);
    free(clean);
    xmpp_free(comp->gw->ctx, text);
    return rc;
}

void ferry_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg)
{
    if (!comp->gw->store) {
        cb(arg, 0);
        return;
    }
    ferry__store_sync(comp->gw->store, cb, arg);
}

char *ferry_record_pack(const char *const *fields, size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(fields[i]) + 1;
    char *out = ferry_malloc(total ? total : 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(fields[i]) + 1;
        memcpy(p, fields[i], l);
        p += l;
    }
    *len = total;
    return out;
}

int ferry_record_unpack(const char *buf, size_t len, const char **fields, size_t n)
{
    const char *p = buf, *end = buf + len;
    for (size_t i = 0; i < n; i++) {
        const char *nul = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        if (!nul)
            return -1;
        fields[i] = p;
        p = nul + 1;
    }
    return 0;
}
