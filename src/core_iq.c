/* core_iq.c: the iqs every component answers on its domain: service
 * discovery (XEP-0030), ping (XEP-0199) and software version (XEP-0092).
 * Adapters add features to disco#info through their disco_info hook. */
#include <string.h>
#include <sys/utsname.h>

#include "component.h"
#include "ferry/ferry.h"
#include "ferry/jid.h"
#include "ferry/stanza.h"
#include "adhoc.h"
#include "core_iq.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING "urn:xmpp:ping"
#define NS_VERSION "jabber:iq:version"

static void answer_disco_info(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    xmpp_stanza_t *query;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_DISCO_INFO, &query);
    ferry_disco_identity(query, "gateway", comp->adapter->gateway_type, comp->name);
    ferry_disco_feature(query, NS_DISCO_INFO);
    ferry_disco_feature(query, NS_DISCO_ITEMS);
    ferry_disco_feature(query, NS_PING);
    ferry_disco_feature(query, NS_VERSION);
    ferry_disco_feature(query, FERRY_NS_COMMANDS);
    if (comp->adapter->disco_info)
        comp->adapter->disco_info(comp->self, query);
    ferry_component_send_release(comp, res);
}

static void answer_empty(ferry_component_t *comp, xmpp_stanza_t *iq, const char *name,
                         const char *ns)
{
    xmpp_stanza_t *res = ferry_iq_result(iq, NULL, NULL);
    if (name)
        ferry_stanza_add(res, name, ns);
    ferry_component_send_release(comp, res);
}

static void answer_version(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    xmpp_stanza_t *query;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_VERSION, &query);
    ferry_stanza_add_text(query, "name", "ferry");
    ferry_stanza_add_text(query, "version", FERRY_VERSION);
    struct utsname u;
    if (uname(&u) == 0)
        ferry_stanza_add_text(query, "os", u.sysname);
    ferry_component_send_release(comp, res);
}

static int to_domain(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    ferry_jid_t to;
    return ferry_jid_parse(xmpp_stanza_get_to(iq), &to) == 0 && !to.local[0] && !to.resource[0] &&
           strcmp(to.domain, comp->domain) == 0;
}

int ferry__core_iq_answer(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    const char *type = xmpp_stanza_get_type(iq);
    xmpp_stanza_t *payload = xmpp_stanza_get_children(iq);
    while (payload && !xmpp_stanza_is_tag(payload))
        payload = xmpp_stanza_get_next(payload);
    const char *ns = payload ? xmpp_stanza_get_ns(payload) : NULL;
    if (!ns || !type)
        return 0;
    int get = strcmp(type, "get") == 0;
    if (get && strcmp(ns, NS_PING) == 0) {
        answer_empty(comp, iq, NULL, NULL);
        return 1;
    }
    if (!to_domain(comp, iq))
        return 0;
    if (!get) {
        if (strcmp(ns, FERRY_NS_COMMANDS) != 0)
            return 0;
        ferry__adhoc_execute(&comp->gw->admin, comp, iq, payload);
        return 1;
    }
    const char *node = xmpp_stanza_get_attribute(payload, "node");
    if (node && strcmp(ns, NS_DISCO_ITEMS) == 0 && strcmp(node, FERRY_NS_COMMANDS) == 0) {
        ferry__adhoc_items(comp, iq);
        return 1;
    }
    if (node)
        return strcmp(ns, NS_DISCO_INFO) == 0 && ferry__adhoc_info(comp, iq, node);
    if (strcmp(ns, NS_DISCO_INFO) == 0)
        answer_disco_info(comp, iq);
    else if (strcmp(ns, NS_DISCO_ITEMS) == 0)
        answer_empty(comp, iq, "query", NS_DISCO_ITEMS);
    else if (strcmp(ns, NS_VERSION) == 0)
        answer_version(comp, iq);
    else
        return 0;
    return 1;
}
