/* irc_disco.c: service discovery (XEP-0030) as MUC clients browse it. The
 * component is a conference service (so "browse group chat services"
 * finds it), each channel a text room, each server JID an entity with its
 * commands; with a default server, the component's items are that
 * server's channels (clients such as poezio browse only a domain). */
#include <stdio.h>
#include <string.h>

#include "irc.h"

#define NS_INFO "http://jabber.org/protocol/disco#info"
#define NS_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_TRAFFIC "http://jabber.org/protocol/muc#traffic"
#define NS_COMMANDS "http://jabber.org/protocol/commands"
#define NS_SELF_PING "http://jabber.org/protocol/muc#self-ping-optimization"

static void feature(xmpp_stanza_t *query, const char *var)
{
    xmpp_stanza_set_attribute(ferry_stanza_add(query, "feature", NULL), "var", var);
}

static void identity(xmpp_stanza_t *query, const char *category, const char *type,
                     const char *name)
{
    xmpp_stanza_t *id = ferry_stanza_add(query, "identity", NULL);
    xmpp_stanza_set_attribute(id, "category", category);
    xmpp_stanza_set_attribute(id, "type", type);
    xmpp_stanza_set_attribute(id, "name", name);
}

/* A result with an empty <query xmlns=NS/> (NODE echoed); the caller adds
 * to *query and sends. */
static xmpp_stanza_t *result(irc_t *irc, xmpp_stanza_t *iq, const char *ns, const char *node,
                             xmpp_stanza_t **query)
{
    xmpp_stanza_t *res = xmpp_iq_new(ferry_component_xmpp(irc->comp), "result",
                                     xmpp_stanza_get_id(iq));
    xmpp_stanza_set_to(res, xmpp_stanza_get_from(iq));
    xmpp_stanza_set_from(res, xmpp_stanza_get_to(iq));
    *query = ferry_stanza_add(res, "query", ns);
    if (node)
        xmpp_stanza_set_attribute(*query, "node", node);
    return res;
}

static void reply(irc_t *irc, xmpp_stanza_t *res)
{
    ferry_component_send(irc->comp, res);
    xmpp_stanza_release(res);
}

void disco_domain_info(irc_t *irc, xmpp_stanza_t *query)
{
    /* the core gave it gateway/irc, disco, ping, version and commands */
    identity(query, "conference", "irc", "IRC");
    feature(query, NS_MUC);
    if (irc->history)
        feature(query, "urn:xmpp:mam:2");
}

static void room_info(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = result(irc, iq, NS_INFO, NULL, &q);
    char name[IRC_NAME_MAX * 2 + 8];
    snprintf(name, sizeof name, "%s on %s", to->channel, to->server);
    identity(q, "conference", "text", name);
    static const char *features[] = {NS_INFO, NS_MUC, "muc_nonanonymous", "muc_persistent",
                                     "muc_open", "urn:xmpp:sid:0", "urn:xmpp:ping",
                                     NS_SELF_PING, "jabber:iq:version", NS_COMMANDS};
    for (size_t i = 0; i < sizeof features / sizeof *features; i++)
        feature(q, features[i]);
    if (irc->history)
        feature(q, "urn:xmpp:mam:2");
    reply(irc, res);
}

static void server_info(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = result(irc, iq, NS_INFO, NULL, &q);
    char name[IRC_NAME_MAX + 16];
    snprintf(name, sizeof name, "IRC server %s", to->server);
    identity(q, "conference", "irc", name);
    static const char *features[] = {NS_INFO, NS_ITEMS, NS_COMMANDS, "jabber:iq:register"};
    for (size_t i = 0; i < sizeof features / sizeof *features; i++)
        feature(q, features[i]);
    reply(irc, res);
}

int disco_iq(irc_t *irc, xmpp_stanza_t *iq)
{
    const char *type = xmpp_stanza_get_type(iq);
    xmpp_stanza_t *info = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_INFO);
    xmpp_stanza_t *items = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_ITEMS);
    if ((!info && !items) || !type || strcmp(type, "get") != 0)
        return 0;
    const char *node = xmpp_stanza_get_attribute(info ? info : items, "node");
    const char *to_text = xmpp_stanza_get_to(iq);
    irc_jid_t to;
    if (items && !node && !strchr(to_text, '@') && irc->default_server) {
        /* the component's items: the default server's channels */
        if (!ferry_jid_allowed(irc->allow, xmpp_stanza_get_from(iq)))
            return 0;
        memset(&to, 0, sizeof to);
        to.kind = IRC_JID_SERVER;
        to.implicit_server = 1;
        snprintf(to.server, sizeof to.server, "%s", irc->default_server);
        bridge_list(irc, iq, &to);
        return 1;
    }
    if (!info || irc_jid_parse(to_text, irc->default_server, "#&+!", &to) != 0)
        return 0;
    if (to.kind == IRC_JID_CHANNEL && !to.nick[0]) {
        if (!node) {
            room_info(irc, iq, &to);
            return 1;
        }
        if (strcmp(node, NS_TRAFFIC) == 0) {
            /* XEP-0045 6.7: no traffic to tell about; the node goes back */
            xmpp_stanza_t *q;
            reply(irc, result(irc, iq, NS_INFO, node, &q));
            return 1;
        }
        return 0;
    }
    if (!node && irc_jid_parse(to_text, NULL, "#&+!", &to) == 0 && to.kind == IRC_JID_SERVER &&
        irc_find_server(irc, to.server)) {
        server_info(irc, iq, &to);
        return 1;
    }
    return 0;
}
