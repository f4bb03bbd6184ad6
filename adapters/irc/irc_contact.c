/* irc_contact.c: the gateway and each IRC server as contacts in the user's
 * roster, as biboumi users know them. A subscription request to either is
 * approved (and returned); a server JID is online while the user's
 * connection to that server is up; the server JID is also who tells the
 * user about the connection ("Connecting to ...", failures) and relays
 * what the server says. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc.h"

void irc_contact_server_jid(irc_conn_t *conn, char *buf, size_t len)
{
    irc_t *irc = conn->irc;
    const char *domain = ferry_component_domain(irc->comp);
    /* With a default server, "server@domain" would name a nick: the
     * component itself stands for that server. */
    if (irc->default_server && strcasecmp(irc->default_server, conn->server->name) == 0)
        snprintf(buf, len, "%s", domain);
    else
        snprintf(buf, len, "%s@%s", conn->server->name, domain);
}

static void send_presence(irc_t *irc, const char *from, const char *to, const char *type)
{
    xmpp_stanza_t *p = xmpp_presence_new(ferry_component_xmpp(irc->comp));
    xmpp_stanza_set_from(p, from);
    xmpp_stanza_set_to(p, to);
    if (type)
        xmpp_stanza_set_type(p, type);
    ferry_component_send_release(irc->comp, p);
}

void irc_contact_says(irc_conn_t *conn, const char *text)
{
    char from[600];
    irc_contact_server_jid(conn, from, sizeof from);
    xmpp_stanza_t *m = xmpp_message_new(ferry_component_xmpp(conn->irc->comp), "chat", conn->jid,
                                        NULL);
    xmpp_stanza_set_from(m, from);
    xmpp_message_set_body(m, text);
    ferry_component_send_release(conn->irc->comp, m);
}

/* The store remembers who unsubscribed from a contact: no presence then. */
#define NS_UNSUBSCRIBED "irc-unsubscribed"

static void unsubscribed_key(const char *contact, const char *bare, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s", bare, contact);
}

static int unsubscribed(irc_t *irc, const char *contact, const char *bare)
{
    char key[2800], *value = NULL;
    unsubscribed_key(contact, bare, key, sizeof key);
    int found = ferry_setting_get(irc->comp, NS_UNSUBSCRIBED, key, &value) == 0 && value;
    free(value);
    return found;
}

static void set_unsubscribed(irc_t *irc, const char *contact, const char *bare, int yes)
{
    char key[2800];
    unsubscribed_key(contact, bare, key, sizeof key);
    if (yes)
        ferry_setting_put(irc->comp, NS_UNSUBSCRIBED, key, "1");
    else
        ferry_setting_del(irc->comp, NS_UNSUBSCRIBED, key);
}

/* Progress as biboumi words it. */
void irc_contact_connecting(irc_conn_t *conn)
{
    char text[700];
    snprintf(text, sizeof text, "Connecting to %s:%d (%s)", conn->server->host, conn->server->port,
             conn->server->tls ? "encrypted" : "not encrypted");
    irc_contact_says(conn, text);
}

void irc_contact_connected(irc_conn_t *conn)
{
    irc_contact_says(conn, conn->server->tls ? "Connected to IRC server (encrypted)."
                                         : "Connected to IRC server.");
}

void irc_contact_failed(irc_conn_t *conn, const char *reason, int was_connected)
{
    char text[700];
    snprintf(text, sizeof text, "%s: %s", was_connected ? "Connection closed" : "Connection failed",
             reason);
    irc_contact_says(conn, text);
}

void irc_contact_online(irc_conn_t *conn, int up)
{
    if (conn->server_online == up)
        return;
    conn->server_online = up;
    char from[600];
    irc_contact_server_jid(conn, from, sizeof from);
    if (up) /* asked once a connection, not again when it goes */
        conn->contact_muted = unsubscribed(conn->irc, from, conn->jid);
    if (!conn->contact_muted)
        send_presence(conn->irc, from, conn->jid, up ? NULL : "unavailable");
}

/* The server a contact JID names: the JID of a server, or the component
 * itself (*component set; the default server, if any, is returned). */
static const irc_server_t *contact_of(irc_t *irc, const char *to, int *component)
{
    ferry_jid_t j;
    *component = 0;
    if (ferry_jid_parse(to, &j) != 0 || j.resource[0])
        return NULL;
    if (!j.local[0]) {
        *component = 1;
        return irc->default_server ? irc_find_server(irc, irc->default_server) : NULL;
    }
    irc_jid_t id;
    if (irc_jid_parse(to, NULL, "#&+!", &id) != 0 || id.kind != IRC_JID_SERVER)
        return NULL;
    return irc_find_server(irc, id.server);
}

int irc_contact_presence(irc_t *irc, xmpp_stanza_t *st)
{
    const char *type = xmpp_stanza_get_type(st);
    const char *to = xmpp_stanza_get_to(st);
    int component;
    const irc_server_t *server = contact_of(irc, to, &component);
    if (!server && !component)
        return 0;
    char bare[2100], me[600];
    ferry_jid_bare_of(xmpp_stanza_get_from(st), bare, sizeof bare);
    const char *domain = ferry_component_domain(irc->comp);
    if (component)
        snprintf(me, sizeof me, "%s", domain);
    else
        snprintf(me, sizeof me, "%s@%s", server->name, domain);
    to = me; /* as ferry writes it, whatever the case the user wrote */
    irc_conn_t *conn = server ? irc_find_conn(irc, bare, server->name) : NULL;
    /* online: the component always, a server while connected to it */
    int online = component || (conn && conn->state == IRC_READY);
    if (!type) {
        return 1; /* available presence to a contact: nothing to do */
    } else if (strcmp(type, "subscribe") == 0) {
        set_unsubscribed(irc, to, bare, 0);
        if (conn)
            conn->contact_muted = 0;
        send_presence(irc, to, bare, "subscribed");
        send_presence(irc, to, bare, online ? NULL : "unavailable");
        send_presence(irc, to, bare, "subscribe"); /* and back, as biboumi does */
    } else if (strcmp(type, "probe") == 0) {
        send_presence(irc, to, bare, online ? NULL : "unavailable");
    } else if (strcmp(type, "unsubscribe") == 0) {
        /* RFC 6121 3.3: no more presence from the contact; the contact
         * lets go of its own subscription too. */
        set_unsubscribed(irc, to, bare, 1);
        if (conn)
            conn->contact_muted = 1;
        send_presence(irc, to, bare, "unavailable");
        send_presence(irc, to, bare, "unsubscribed");
        send_presence(irc, to, bare, "unsubscribe");
    } else if (strcmp(type, "subscribed") != 0 && strcmp(type, "unsubscribed") != 0 &&
               strcmp(type, "unavailable") != 0) {
        return 0;
    }
    return 1;
}
