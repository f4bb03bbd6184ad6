/* irc_jid.c: biboumi's JID convention, so that clients and users who know
 * biboumi just work: "#chan%server@gw/Nick" for a channel occupant,
 * "nick%server@gw" for an IRC user, "server@gw" for the server itself;
 * "#chan@gw" and "nick@gw" when the gateway has a default server. Local
 * parts use XEP-0106 escapes for what a JID cannot hold. */
#include <stdio.h>
#include <string.h>

#include "irc.h"
#include "ferry/text.h"

/* XEP-0106: only these escapes are defined. */
static void unescape(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        if (in[i] == '\\' && i + 2 < len && ferry_hex_digit(in[i + 1]) >= 0 && ferry_hex_digit(in[i + 2]) >= 0) {
            int c = ferry_hex_digit(in[i + 1]) * 16 + ferry_hex_digit(in[i + 2]);
            if (strchr(" \"&'/:<>@\\", c)) {
                out[o++] = (char)c;
                i += 2;
                continue;
            }
        }
        out[o++] = in[i];
    }
    out[o] = 0;
}

static void escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 4 < cap; p++) {
        if (strchr(" \"&'/:<>@", *p) || (*p == '\\' && ferry_hex_digit(p[1]) >= 0 && ferry_hex_digit(p[2]) >= 0)) {
            o += (size_t)snprintf(out + o, cap - o, "\\%02x", (unsigned char)*p);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
}

/* Copies SRC; -1 when it does not fit (too long to be a name on IRC). */
static int copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int irc_jid_parse(const char *jid, const char *default_server, const char *chantypes,
                  irc_jid_t *out)
{
    memset(out, 0, sizeof *out);
    const char *at = jid ? strchr(jid, '@') : NULL;
    const char *slash = jid ? strchr(jid, '/') : NULL;
    if (!jid || !at || (slash && slash < at) || at == jid)
        return -1;
    char local[IRC_NAME_MAX * 2];
    unescape(jid, (size_t)(at - jid), local, sizeof local);
    if (slash && copy(out->nick, sizeof out->nick, slash + 1) != 0)
        return -1;
    char *pct = strrchr(local, '%');
    const char *name = local;
    if (pct) {
        *pct = 0;
        if (copy(out->server, sizeof out->server, pct + 1) != 0)
            return -1;
    } else if (default_server && *default_server) {
        copy(out->server, sizeof out->server, default_server);
        out->implicit_server = 1;
    } else {
        /* No "%": the whole local part names a server. */
        if (strchr(chantypes, *local) || copy(out->server, sizeof out->server, local) != 0)
            return -1;
        out->kind = IRC_JID_SERVER;
        return 0;
    }
    if (!*out->server || !*name)
        return -1;
    if (strchr(chantypes, *name)) {
        out->kind = IRC_JID_CHANNEL;
        return copy(out->channel, sizeof out->channel, name);
    }
    out->kind = IRC_JID_USER;
    return copy(out->nick, sizeof out->nick, name);
}

/* NAME escaped (at most ESC_CAP bytes of it) at SERVER, or at the
 * component itself without one. */
static void jid_of(char *buf, size_t len, const char *name, size_t esc_cap, const char *server,
                   const char *domain)
{
    char esc[IRC_NAME_MAX * 3];
    escape(name, esc, esc_cap);
    if (server)
        snprintf(buf, len, "%s%%%s@%s", esc, server, domain);
    else
        snprintf(buf, len, "%s@%s", esc, domain);
}

void irc_jid_room(char *buf, size_t len, const char *channel, const char *server,
                  const char *domain)
{
    jid_of(buf, len, channel, IRC_NAME_MAX * 3, server, domain);
}

void irc_jid_user(char *buf, size_t len, const char *nick, const char *server,
                  const char *domain)
{
    jid_of(buf, len, nick, IRC_NICK_MAX * 3, server, domain);
}
