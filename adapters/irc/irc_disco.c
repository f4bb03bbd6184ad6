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

void irc_disco_domain_info(irc_t *irc, xmpp_stanza_t *query)
{
    /* the core gave it gateway/irc, disco, ping, version and commands */
    ferry_disco_identity(query, "conference", "irc", "IRC");
    ferry_disco_feature(query, NS_MUC);
    if (irc->history)
        ferry_disco_feature(query, "urn:xmpp:mam:2");
}

static void room_info(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_INFO, &q);
    char name[IRC_NAME_MAX * 2 + 8];
    snprintf(name, sizeof name, "%s on %s", to->channel, to->server);
    ferry_disco_identity(q, "conference", "text", name);
    static const char *features[] = {NS_INFO, NS_MUC, "muc_nonanonymous", "muc_persistent",
                                     "muc_open", "urn:xmpp:sid:0", "urn:xmpp:ping",
                                     NS_SELF_PING, "jabber:iq:version", NS_COMMANDS};
    for (size_t i = 0; i < sizeof features / sizeof *features; i++)
        ferry_disco_feature(q, features[i]);
    if (irc->history)
        ferry_disco_feature(q, "urn:xmpp:mam:2");
    ferry_component_send_release(irc->comp, res);
}

static void server_info(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_INFO, &q);
    char name[IRC_NAME_MAX + 16];
    snprintf(name, sizeof name, "IRC server %s", to->server);
    ferry_disco_identity(q, "conference", "irc", name);
    static const char *features[] = {NS_INFO, NS_ITEMS, NS_COMMANDS, "jabber:iq:register"};
    for (size_t i = 0; i < sizeof features / sizeof *features; i++)
        ferry_disco_feature(q, features[i]);
    ferry_component_send_release(irc->comp, res);
}

int irc_disco_iq(irc_t *irc, xmpp_stanza_t *iq)
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
        irc_bridge_list(irc, iq, &to);
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
            xmpp_stanza_t *res = ferry_iq_result(iq, NS_INFO, &q);
            xmpp_stanza_set_attribute(q, "node", node);
            ferry_component_send_release(irc->comp, res);
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
