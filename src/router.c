/* router.c: every inbound stanza passes here: to the adapter, to the core's
 * own answers, or back to its sender as an error. */
#include <string.h>

#include "component.h"
#include "core_iq.h"
#include "ferry/jid.h"
#include "ferry/log.h"
#include "router.h"

static int is_error(xmpp_stanza_t *st)
{
    const char *type = xmpp_stanza_get_type(st);
    return type && strcmp(type, "error") == 0;
}

static void route_iq(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    const char *type = xmpp_stanza_get_type(iq);
    int request = type && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
    if (comp->adapter->on_iq && comp->adapter->on_iq(comp->self, iq))
        return;
    if (!request)
        return; /* results and errors answer nothing */
    if (ferry__core_iq_answer(comp, iq))
        return;
    ferry_component_reply_error(comp, iq, "cancel", "service-unavailable", NULL);
}

void ferry__router_route(ferry_component_t *comp, xmpp_stanza_t *st)
{
    const char *name = xmpp_stanza_get_name(st);
    ferry_jid_t to;
    if (ferry_jid_parse(xmpp_stanza_get_to(st), &to) != 0 || strcmp(to.domain, comp->domain) != 0) {
        if (!is_error(st))
            ferry_component_reply_error(comp, st, "modify", "jid-malformed",
                                        "the 'to' address is not under this component");
        return;
    }
    if (!xmpp_stanza_get_from(st)) {
        ferry_log_debug(comp->name, "dropping a <%s> without 'from'", name);
        return;
    }
    if (strcmp(name, "message") == 0) {
        comp->adapter->on_message(comp->self, st);
    } else if (strcmp(name, "presence") == 0) {
        if (comp->adapter->on_presence)
            comp->adapter->on_presence(comp->self, st);
    } else if (strcmp(name, "iq") == 0) {
        route_iq(comp, st);
    } else {
        ferry_log_debug(comp->name, "ignoring a <%s> element", name);
    }
}
