/* stanza_error.c: builds RFC 6120 error replies. */
#include <string.h>

#include "ferry/stanza.h"
#include "stanza_error.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

xmpp_stanza_t *ferry__stanza_error_new(xmpp_stanza_t *stanza, const char *type, const char *condition,
                                const char *text)
{
    const char *orig_type = xmpp_stanza_get_type(stanza);
    const char *from = xmpp_stanza_get_from(stanza);
    if ((orig_type && strcmp(orig_type, "error") == 0) || !from)
        return NULL;
    xmpp_stanza_t *reply = xmpp_stanza_copy(stanza);
    const char *to = xmpp_stanza_get_to(stanza);
    xmpp_stanza_set_to(reply, from);
    if (to)
        xmpp_stanza_set_from(reply, to);
    else
        xmpp_stanza_del_attribute(reply, "from");
    xmpp_stanza_set_type(reply, "error");

    xmpp_stanza_t *err = ferry_stanza_add(reply, "error", NULL);
    xmpp_stanza_set_type(err, type);
    ferry_stanza_add(err, condition, NS_STANZAS);
    if (text)
        xmpp_stanza_set_ns(ferry_stanza_add_text(err, "text", text), NS_STANZAS);
    return reply;
}
