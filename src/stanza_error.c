/* stanza_error.c: builds RFC 6120 error replies. */
#include <string.h>

#include "stanza_error.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

static xmpp_stanza_t *element(xmpp_ctx_t *ctx, const char *name, const char *ns)
{
    xmpp_stanza_t *el = xmpp_stanza_new(ctx);
    xmpp_stanza_set_name(el, name);
    if (ns)
        xmpp_stanza_set_ns(el, ns);
    return el;
}

xmpp_stanza_t *stanza_error_new(xmpp_stanza_t *stanza, const char *type, const char *condition,
                                const char *text)
{
    const char *orig_type = xmpp_stanza_get_type(stanza);
    const char *from = xmpp_stanza_get_from(stanza);
    if ((orig_type && strcmp(orig_type, "error") == 0) || !from)
        return NULL;
    xmpp_ctx_t *ctx = xmpp_stanza_get_context(stanza);
    xmpp_stanza_t *reply = xmpp_stanza_copy(stanza);
    const char *to = xmpp_stanza_get_to(stanza);
    xmpp_stanza_set_to(reply, from);
    if (to)
        xmpp_stanza_set_from(reply, to);
    else
        xmpp_stanza_del_attribute(reply, "from");
    xmpp_stanza_set_type(reply, "error");

    xmpp_stanza_t *err = element(ctx, "error", NULL);
    xmpp_stanza_set_type(err, type);
    xmpp_stanza_add_child_ex(err, element(ctx, condition, NS_STANZAS), 0);
    if (text) {
        xmpp_stanza_t *t = element(ctx, "text", NS_STANZAS);
        xmpp_stanza_t *body = xmpp_stanza_new(ctx);
        xmpp_stanza_set_text(body, text);
        xmpp_stanza_add_child_ex(t, body, 0);
        xmpp_stanza_add_child_ex(err, t, 0);
    }
    xmpp_stanza_add_child_ex(reply, err, 0);
    return reply;
}
