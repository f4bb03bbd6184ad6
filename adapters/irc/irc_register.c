/* irc_register.c: what a user keeps per IRC server: nick, username,
 * realname, the password for SASL PLAIN, the server password (PASS) and
 * commands sent after connecting, set with XEP-0077 on the server's JID
 * (irc.example.net@gw) or its ad-hoc configure form, and kept in the
 * store. The password is
 * stored as it is, because SASL PLAIN sends it as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

#define NS_REGISTER "jabber:iq:register"

/* The stored record: one line per field, in this order (records written
 * before a field existed simply end early). The after-connection commands
 * are one field, each command ending with an RS byte, which XML text (and
 * so a form) cannot hold. */
enum {
    S_NICK, S_USERNAME, S_REALNAME, S_PASSWORD, S_PASS, S_COMMANDS, S_PORTS, S_TLS_PORTS,
    S_VERIFY, S_THROTTLE, S_ENC_IN, S_ENC_OUT, S_FIELDS
};
#define COMMAND_END '\x1e'

static void settings_ns(const char *server, char *buf, size_t len)
{
    snprintf(buf, len, "irc:%s", server);
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* The stored record split into F (pointing into the returned buffer, which
 * the caller frees; NULL when nothing is stored). */
static char *load_record(irc_t *irc, const char *server, const char *jid, char *f[S_FIELDS])
{
    char ns[IRC_NAME_MAX + 8], *value = NULL;
    settings_ns(server, ns, sizeof ns);
    memset(f, 0, S_FIELDS * sizeof *f);
    if (ferry_setting_get(irc->comp, ns, jid, &value) != 0)
        return NULL;
    char *p = value;
    for (int i = 0; i < S_FIELDS && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = 0;
    }
    return value;
}

int irc_settings_load(irc_t *irc, const char *server, const char *jid, irc_user_settings_t *s)
{
    memset(s, 0, sizeof *s);
    char *f[S_FIELDS];
    char *value = load_record(irc, server, jid, f);
    copy_field(s->nick, sizeof s->nick, f[S_NICK]);
    copy_field(s->username, sizeof s->username, f[S_USERNAME]);
    copy_field(s->realname, sizeof s->realname, f[S_REALNAME]);
    copy_field(s->password, sizeof s->password, f[S_PASSWORD]);
    copy_field(s->pass, sizeof s->pass, f[S_PASS]);
    copy_field(s->ports, sizeof s->ports, f[S_PORTS]);
    copy_field(s->tls_ports, sizeof s->tls_ports, f[S_TLS_PORTS]);
    s->verify_cert = f[S_VERIFY] && *f[S_VERIFY] ? atoi(f[S_VERIFY]) : -1;
    s->throttle_limit = f[S_THROTTLE] && *f[S_THROTTLE] ? atoi(f[S_THROTTLE]) : -1;
    copy_field(s->encoding_in, sizeof s->encoding_in, f[S_ENC_IN]);
    copy_field(s->encoding_out, sizeof s->encoding_out, f[S_ENC_OUT]);
    free(value);
    return 0;
}

void irc_settings_route(const irc_server_t *server, const irc_user_settings_t *s,
                        irc_route_t *r)
{
    r->port = server->port;
    r->tls = server->tls;
    r->verify_cert = server->verify_cert;
    r->burst = server->throttle_burst;
    r->rate = server->throttle_rate;
    /* As biboumi: a TLS port first, else a plain one; the first of each. */
    int tls_port = atoi(s->tls_ports), port = atoi(s->ports);
    if (tls_port > 0) {
        r->port = tls_port;
        r->tls = 1;
    } else if (port > 0) {
        r->port = port;
        r->tls = 0;
    }
    if (s->verify_cert >= 0)
        r->verify_cert = s->verify_cert;
    if (s->throttle_limit > 0) /* lines a second, and as many at once */
        r->burst = r->rate = s->throttle_limit;
}

char *irc_settings_commands(irc_t *irc, const char *server, const char *jid)
{
    char *f[S_FIELDS];
    char *value = load_record(irc, server, jid, f);
    char *out = f[S_COMMANDS] && *f[S_COMMANDS] ? ferry_strdup(f[S_COMMANDS]) : NULL;
    free(value);
    for (char *c = out; c && *c; c++)
        if (*c == COMMAND_END)
            *c = '\n';
    return out;
}

int irc_settings_store(irc_t *irc, const char *server, const char *jid,
                       const irc_user_settings_t *s, const char *commands)
{
    char ns[IRC_NAME_MAX + 8];
    settings_ns(server, ns, sizeof ns);
    size_t clen = commands ? strlen(commands) : 0;
    size_t cap = sizeof *s + clen + 64;
    char *value = ferry_malloc(cap);
    int n = snprintf(value, cap, "%s\n%s\n%s\n%s\n%s\n", s->nick, s->username, s->realname,
                     s->password, s->pass);
    /* One command a line in, each ended by COMMAND_END in the record. */
    for (const char *c = commands; c && *c; c += strspn(c, "\r\n")) {
        size_t len = strcspn(c, "\r\n");
        if (len) {
            memcpy(value + n, c, len);
            n += (int)len;
            value[n++] = COMMAND_END;
        }
        c += len;
    }
    n += snprintf(value + n, cap - (size_t)n, "\n%s\n%s\n%d\n%d\n%s\n%s", s->ports,
                  s->tls_ports, s->verify_cert, s->throttle_limit, s->encoding_in,
                  s->encoding_out);
    int rc = ferry_setting_put(irc->comp, ns, jid, value);
    free(value);
    return rc;
}

int irc_settings_forget(irc_t *irc, const char *server, const char *jid)
{
    char ns[IRC_NAME_MAX + 8];
    settings_ns(server, ns, sizeof ns);
    return ferry_setting_del(irc->comp, ns, jid);
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
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_REGISTER, &q);
    ferry_stanza_add_text(q, "instructions",
                          "Your settings for this IRC server: the nick used outside rooms, the "
                          "username and real name, and a password for SASL (NickServ account).");
    if (registered)
        ferry_stanza_add(q, "registered", NULL);
    ferry_stanza_add_text(q, "nick", s->nick);
    ferry_stanza_add_text(q, "username", s->username);
    ferry_stanza_add_text(q, "name", s->realname);
    ferry_stanza_add(q, "password", NULL); /* never sent back */
    ferry_component_send_release(irc->comp, res);
}

int irc_bridge_register(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_REGISTER);
    if (!q || to->kind != IRC_JID_SERVER)
        return 0;
    char bare[2100];
    const irc_server_t *server = irc_served_server(irc, iq, to->server, bare, sizeof bare);
    if (!server)
        return 1;
    irc_user_settings_t s;
    irc_settings_load(irc, server->name, bare, &s);
    int registered = s.nick[0] || s.username[0] || s.realname[0] || s.password[0];
    if (strcmp(xmpp_stanza_get_type(iq), "get") == 0) {
        send_form(irc, iq, &s, registered);
        return 1;
    }
    if (xmpp_stanza_get_child_by_name(q, "remove")) {
        irc_settings_forget(irc, server->name, bare);
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
    /* The same record as the ad-hoc configure form (irc_adhoc.c): what
     * this form does not show is kept. */
    char *commands = irc_settings_commands(irc, server->name, bare);
    int rc = irc_settings_store(irc, server->name, bare, &s, commands);
    free(commands);
    if (rc != 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "internal-server-error",
                                    "the settings could not be stored");
        return 1;
    }
    ferry_component_send_release(irc->comp, ferry_iq_result(iq, NULL, NULL));
    return 1;
}
