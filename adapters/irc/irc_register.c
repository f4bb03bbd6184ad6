/* irc_register.c: what a user keeps per IRC server: nick, username,
 * realname and the password for SASL PLAIN, set with XEP-0077 on the
 * server's JID (irc.example.net@gw) and kept in the store. The password is
 * stored as it is, because SASL PLAIN sends it as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc.h"

#define NS_REGISTER "jabber:iq:register"

/* The stored record: four lines, in this order. */
enum { S_NICK, S_USERNAME, S_REALNAME, S_PASSWORD, S_FIELDS };

static void settings_ns(const char *server, char *buf, size_t len)
{
    snprintf(buf, len, "irc:%s", server);
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

int irc_settings_load(irc_t *irc, const char *server, const char *jid, irc_user_settings_t *s)
{
    memset(s, 0, sizeof *s);
    char ns[IRC_NAME_MAX + 8], *value = NULL;
    settings_ns(server, ns, sizeof ns);
    if (ferry_setting_get(irc->comp, ns, jid, &value) != 0)
        return 0;
    char *f[S_FIELDS] = {0};
    char *p = value;
    for (int i = 0; i < S_FIELDS && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = 0;
    }
    copy_field(s->nick, sizeof s->nick, f[S_NICK]);
    copy_field(s->username, sizeof s->username, f[S_USERNAME]);
    copy_field(s->realname, sizeof s->realname, f[S_REALNAME]);
    copy_field(s->password, sizeof s->password, f[S_PASSWORD]);
    free(value);
    return 0;
}

static const char *child_text(xmpp_stanza_t *q, const char *name)
{
    xmpp_stanza_t *el = xmpp_stanza_get_child_by_name(q, name);
    xmpp_stanza_t *t = el ? xmpp_stanza_get_children(el) : NULL;
    return t ? xmpp_stanza_get_text_ptr(t) : el ? "" : NULL;
}

static int one_line(const char *s, size_t max)
{
    return !s || (strlen(s) < max && !strpbrk(s, "\r\n"));
}

static void send_form(irc_t *irc, xmpp_stanza_t *iq, const irc_user_settings_t *s, int registered)
{
    xmpp_stanza_t *res = xmpp_iq_new(ferry_component_xmpp(irc->comp), "result",
                                     xmpp_stanza_get_id(iq));
    xmpp_stanza_set_to(res, xmpp_stanza_get_from(iq));
    xmpp_stanza_set_from(res, xmpp_stanza_get_to(iq));
    xmpp_stanza_t *q = ferry_stanza_add(res, "query", NS_REGISTER);
    ferry_stanza_add_text(q, "instructions",
                          "Your settings for this IRC server: the nick used outside rooms, the "
                          "username and real name, and a password for SASL (NickServ account).");
    if (registered)
        ferry_stanza_add(q, "registered", NULL);
    ferry_stanza_add_text(q, "nick", s->nick);
    ferry_stanza_add_text(q, "username", s->username);
    ferry_stanza_add_text(q, "name", s->realname);
    ferry_stanza_add(q, "password", NULL); /* never sent back */
    ferry_component_send(irc->comp, res);
    xmpp_stanza_release(res);
}

int bridge_register(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_REGISTER);
    if (!q || to->kind != IRC_JID_SERVER)
        return 0;
    const irc_server_t *server = irc_find_server(irc, to->server);
    if (!server) {
        ferry_component_reply_error(irc->comp, iq, "cancel", "not-allowed",
                                    "this IRC server is not served here");
        return 1;
    }
    char bare[2100], ns[IRC_NAME_MAX + 8];
    ferry_jid_bare_of(xmpp_stanza_get_from(iq), bare, sizeof bare);
    settings_ns(server->name, ns, sizeof ns);
    irc_user_settings_t s;
    irc_settings_load(irc, server->name, bare, &s);
    int registered = s.nick[0] || s.username[0] || s.realname[0] || s.password[0];
    if (strcmp(xmpp_stanza_get_type(iq), "get") == 0) {
        send_form(irc, iq, &s, registered);
        return 1;
    }
    if (xmpp_stanza_get_child_by_name(q, "remove")) {
        ferry_setting_del(irc->comp, ns, bare);
        send_form(irc, iq, &(irc_user_settings_t){0}, 0);
        return 1;
    }
    const char *nick = child_text(q, "nick"), *username = child_text(q, "username");
    const char *realname = child_text(q, "name"), *password = child_text(q, "password");
    if ((nick && *nick && !irc_valid_nick(nick)) ||
        (username && (strpbrk(username, " @:") || (*username && !irc_valid_nick(username)))) ||
        !one_line(nick, IRC_NICK_MAX) || !one_line(username, IRC_NICK_MAX) ||
        !one_line(realname, IRC_NAME_MAX) || !one_line(password, IRC_NAME_MAX)) {
        ferry_component_reply_error(irc->comp, iq, "modify", "not-acceptable",
                                    "a field holds characters IRC cannot carry");
        return 1;
    }
    /* Fields left out keep their value; an empty one clears it. */
    if (nick)
        copy_field(s.nick, sizeof s.nick, nick);
    if (username)
        copy_field(s.username, sizeof s.username, username);
    if (realname)
        copy_field(s.realname, sizeof s.realname, realname);
    /* The form never shows the password: an empty one keeps it (remove the
     * registration to forget it). */
    if (password && *password)
        copy_field(s.password, sizeof s.password, password);
    char value[IRC_NAME_MAX * 4];
    snprintf(value, sizeof value, "%s\n%s\n%s\n%s", s.nick, s.username, s.realname, s.password);
    if (ferry_setting_put(irc->comp, ns, bare, value) != 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "internal-server-error",
                                    "the settings could not be stored");
        return 1;
    }
    xmpp_stanza_t *res = xmpp_iq_new(ferry_component_xmpp(irc->comp), "result",
                                     xmpp_stanza_get_id(iq));
    xmpp_stanza_set_to(res, xmpp_stanza_get_from(iq));
    xmpp_stanza_set_from(res, xmpp_stanza_get_to(iq));
    ferry_component_send(irc->comp, res);
    xmpp_stanza_release(res);
    return 1;
}
