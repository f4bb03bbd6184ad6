/* irc_ctcp.c: CTCP, the IRC convention for asking a client about itself.
 * A version iq (XEP-0092) to an occupant or an IRC user becomes CTCP
 * VERSION and its NOTICE answer the iq result; CTCP VERSION and PING sent
 * to the user are answered for it, with ferry's version, as IRC clients
 * expect of each other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

#define NS_VERSION "jabber:iq:version"
#define WAIT_MS 30000   /* an IRC client that has not answered by then will not */
#define WAITS_MAX 16    /* per connection: a user cannot pile up requests */

static int is_ctcp(const char *text, const char *verb)
{
    size_t n = strlen(verb);
    return text[0] == 1 && strncmp(text + 1, verb, n) == 0 && (text[1 + n] == ' ' ||
                                                                 text[1 + n] == 1 || !text[1 + n]);
}

/* The argument of "\1VERB arg\1", in BUF. */
static void ctcp_arg(const char *text, const char *verb, char *buf, size_t len)
{
    const char *arg = text + 1 + strlen(verb);
    arg += strspn(arg, " ");
    size_t n = strcspn(arg, "\1");
    snprintf(buf, len, "%.*s", (int)n, arg);
}

int irc_ctcp_on_request(irc_conn_t *conn, const char *nick, const char *text)
{
    char reply[IRC_LINE_MAX];
    if (is_ctcp(text, "VERSION")) {
        snprintf(reply, sizeof reply, "\1VERSION ferry %s\1", FERRY_VERSION);
    } else if (is_ctcp(text, "PING")) {
        char arg[400];
        ctcp_arg(text, "PING", arg, sizeof arg);
        snprintf(reply, sizeof reply, "\1PING %s\1", arg);
    } else {
        return 0;
    }
    const char *p[] = {nick, reply};
    irc_conn_send(conn, "NOTICE", p, 2);
    return 1;
}

static void wait_free(irc_ctcp_wait_t *w)
{
    xmpp_stanza_release(w->iq);
    free(w);
}

int irc_ctcp_on_reply(irc_conn_t *conn, const char *nick, const char *text)
{
    if (!is_ctcp(text, "VERSION"))
        return text[0] == 1; /* other CTCP replies are not for people either */
    irc_ctcp_wait_t *w = NULL;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &conn->ctcp_waits) {
        irc_ctcp_wait_t *each = ferry_list_entry(pos, irc_ctcp_wait_t, link);
        if (irc_casecmp(conn->casemap, each->nick, nick) == 0) {
            w = each;
            break;
        }
    }
    if (!w)
        return 1;
    ferry_list_remove(&w->link);
    char arg[IRC_LINE_MAX];
    ctcp_arg(text, "VERSION", arg, sizeof arg);
    char *version = irc_text_to_utf8(arg);
    /* Free text ("irssi v1.4.3 - running on Linux"): the first word as the
     * name, the rest as the version, so clients show it whole. */
    size_t n = strcspn(version, " ");
    char name[IRC_LINE_MAX];
    snprintf(name, sizeof name, "%.*s", (int)n, version);
    const char *rest = version + n + strspn(version + n, " ");
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = ferry_iq_result(w->iq, NS_VERSION, &q);
    ferry_stanza_add_text(q, "name", *name ? name : nick);
    ferry_stanza_add_text(q, "version", *rest ? rest : "unknown");
    ferry_component_send_release(conn->irc->comp, res);
    free(version);
    wait_free(w);
    return 1;
}

void irc_ctcp_version_iq(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    const char *from = xmpp_stanza_get_from(iq);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    const irc_server_t *server = irc_find_server(irc, to->server);
    irc_conn_t *conn = server ? irc_find_conn(irc, bare, server->name) : NULL;
    if (to->kind == IRC_JID_CHANNEL) {
        irc_room_t *room = conn ? irc_bridge_find_room(conn, to->channel) : NULL;
        if (!room || !irc_bridge_in_room(room, from)) {
            ferry_component_reply_error(irc->comp, iq, "modify", "not-acceptable",
                                        "join the room first");
            return;
        }
    }
    if (!conn || conn->state != IRC_READY) {
        ferry_component_reply_error(irc->comp, iq, "cancel", "recipient-unavailable",
                                    "not connected to this IRC server");
        return;
    }
    if (!irc_valid_nick(to->nick)) {
        ferry_component_reply_error(irc->comp, iq, "modify", "jid-malformed", "not an IRC nick");
        return;
    }
    size_t n = 0;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &conn->ctcp_waits)
        n++;
    const char *p[] = {to->nick, "\1VERSION\1"};
    if (n >= WAITS_MAX || irc_conn_send(conn, "PRIVMSG", p, 2) != 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "resource-constraint",
                                    "too many version requests waiting");
        return;
    }
    irc_ctcp_wait_t *w = ferry_calloc(1, sizeof *w);
    snprintf(w->nick, sizeof w->nick, "%s", to->nick);
    w->iq = xmpp_stanza_clone(iq);
    w->since = uv_now(ferry_component_loop(irc->comp));
    ferry_list_insert_tail(&conn->ctcp_waits, &w->link); /* answers come in the order asked */
}

void irc_ctcp_expire(irc_conn_t *conn, uint64_t now, int force)
{
    ferry_list_t *pos, *tmp;
    ferry_list_foreach_safe(pos, tmp, &conn->ctcp_waits) {
        irc_ctcp_wait_t *w = ferry_list_entry(pos, irc_ctcp_wait_t, link);
        if (!force && now - w->since < WAIT_MS)
            continue;
        ferry_list_remove(&w->link);
        ferry_component_reply_error(conn->irc->comp, w->iq, "wait", "remote-server-timeout",
                                    "the IRC user did not answer");
        wait_free(w);
    }
}
