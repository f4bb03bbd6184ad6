/* irc_adhoc.c: the settings biboumi users configure from their client, with
 * biboumi's XEP-0050 command nodes and field names, so that what they know
 * (and what clients remember) works here too:
 *   the gateway JID: "configure" (record_history, max_history_length,
 *     persistent), "disconnect-from-irc-server" (a user's own connections;
 *     admins choose whose), "disconnect-user" (admins);
 *   a server JID: "configure" (ports, tls_ports, verify_cert, nick,
 *     username, realname, sasl_password, pass, after_connect_commands,
 *     throttle_limit, encoding_in, encoding_out: the record XEP-0077
 *     edits too);
 *   a room JID: "configure" (record_history, persistent, encoding_in,
 *     encoding_out), also as the XEP-0045 muc#owner form.
 * Forms are answered statelessly: a submitted form says everything the
 * next step needs (a hidden field when a step picked a user). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

#define NS_COMMANDS FERRY_NS_COMMANDS
#define NS_DATA FERRY_NS_DATA
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_OWNER "http://jabber.org/protocol/muc#owner"

enum target { T_DOMAIN, T_SERVER, T_ROOM };

typedef struct command {
    const char *node;
    const char *name;
    enum target target;
    int admin;              /* only for [admin] jids */
} command_t;

static const command_t commands[] = {
    {"configure", "Configure a few settings", T_DOMAIN, 0},
    {"disconnect-from-irc-server", "Disconnect from the selected IRC servers", T_DOMAIN, 0},
    {"disconnect-user", "Disconnect selected users from the gateway", T_DOMAIN, 1},
    {"configure", "Configure the IRC server", T_SERVER, 0},
    {"configure", "Configure the IRC channel", T_ROOM, 0},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

/* ---- building answers ---- */

/* The node the command element CMD asks for. */
static const char *node_of(xmpp_stanza_t *cmd) { return xmpp_stanza_get_attribute(cmd, "node"); }

/* The form builder, under a name short enough for the long forms below. */
static xmpp_stanza_t *field(xmpp_stanza_t *x, const char *var, const char *type, const char *label,
                            const char *value)
{
    return ferry_form_add_field(x, var, type, label, value);
}

static void completed(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *asked, const char *note)
{
    ferry_command_complete(irc->comp, iq, node_of(asked), "info", note);
}

/* A step that needs the form X filled: status executing, action complete. */
static xmpp_stanza_t *ask(xmpp_stanza_t *iq, xmpp_stanza_t *asked, const char *title,
                          const char *instructions, xmpp_stanza_t **x)
{
    return ferry_command_ask(iq, node_of(asked), title, instructions, x);
}

static void option(xmpp_stanza_t *f, const char *value)
{
    xmpp_stanza_t *o = ferry_stanza_add(f, "option", NULL);
    xmpp_stanza_set_attribute(o, "label", value);
    ferry_stanza_add_text(o, "value", value);
}

static xmpp_stanza_t *desc(xmpp_stanza_t *f, const char *text)
{
    ferry_stanza_add_text(f, "desc", text);
    return f;
}

/* encoding_out and encoding_in (biboumi's order), IN and OUT their values
 * ("" none), described by IN_DESC and OUT_DESC. */
static void encoding_fields(xmpp_stanza_t *x, const char *in, const char *out,
                            const char *in_desc, const char *out_desc)
{
    desc(field(x, "encoding_out", "text-single", "Out encoding", *out ? out : NULL), out_desc);
    desc(field(x, "encoding_in", "text-single", "In encoding", *in ? in : NULL), in_desc);
}

/* "6667,6668" as one <value/> each. */
static void port_values(xmpp_stanza_t *f, const char *ports)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", ports);
    for (char *p = strtok(buf, ","); p; p = strtok(NULL, ","))
        ferry_stanza_add_text(f, "value", p);
}

/* ---- reading submitted forms ---- */

/* The submitted <x type=submit/> of ST (a command or a muc#owner query). */
static xmpp_stanza_t *submitted(xmpp_stanza_t *st)
{
    xmpp_stanza_t *x = st ? xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_DATA) : NULL;
    const char *type = x ? xmpp_stanza_get_type(x) : NULL;
    return type && strcmp(type, "submit") == 0 ? x : NULL;
}

/* The values of a text-multi of ports into OUT ("6667,6668"); 0, or -1
 * when one is not a port. A field left out keeps OUT. */
static int read_ports(xmpp_stanza_t *x, const char *var, char *out, size_t cap)
{
    xmpp_stanza_t *f = ferry_form_field(x, var);
    if (!f)
        return 0;
    size_t len = 0;
    out[0] = 0;
    for (xmpp_stanza_t *v = xmpp_stanza_get_children(f); v; v = xmpp_stanza_get_next(v)) {
        xmpp_stanza_t *t = xmpp_stanza_get_children(v);
        const char *name = xmpp_stanza_get_name(v), *text = t ? xmpp_stanza_get_text_ptr(t) : "";
        if (!name || strcmp(name, "value") != 0 || !*text)
            continue;
        char *end;
        long port = strtol(text, &end, 10);
        if (*end || port < 1 || port > 65535)
            return -1;
        int n = snprintf(out + len, cap - len, "%s%ld", len ? "," : "", port);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
    }
    return 0;
}

/* XEP-0004 booleans: "1"/"true" or "0"/"false"; -1 otherwise. */
static int boolean(const char *v)
{
    if (!v)
        return -1;
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        return 1;
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        return 0;
    return -1;
}

static int fits_line(const char *s, size_t cap)
{
    return !s || (strlen(s) < cap && !strpbrk(s, "\r\n"));
}

static void bad_request(irc_t *irc, xmpp_stanza_t *iq, const char *text)
{
    ferry_component_reply_error(irc->comp, iq, "modify", "bad-request", text);
}

/* encoding_in and encoding_out of X into IN and OUT (IRC_CHARSET_MAX each; a
 * field left out keeps its value, an empty one clears it). 0, or -1 after
 * answering IQ bad-request, saying which value is refused: then IN and OUT
 * are as they were. */
static int read_encodings(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *x, char *in, char *out)
{
    const char *vars[] = {"encoding_in", "encoding_out"}, *values[2];
    for (int i = 0; i < 2; i++) {
        values[i] = ferry_form_value(x, vars[i]);
        if (values[i] && *values[i] && !irc_charset_valid(values[i])) {
            char text[160];
            snprintf(text, sizeof text,
                     "%s: '%.40s' is not an encoding ferry can use (one iconv knows, such as "
                     "ISO-8859-1, and that keeps ASCII as it is)",
                     vars[i], values[i]);
            bad_request(irc, iq, text);
            return -1;
        }
    }
    if (values[0])
        snprintf(in, IRC_CHARSET_MAX, "%s", values[0]);
    if (values[1])
        snprintf(out, IRC_CHARSET_MAX, "%s", values[1]);
    return 0;
}

/* ---- the gateway JID ---- */

static void configure_user(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *cmd, const char *bare)
{
    irc_user_options_t o;
    irc_user_options_load(irc, bare, &o);
    xmpp_stanza_t *x = submitted(cmd);
    if (!x) {
        char max[32];
        snprintf(max, sizeof max, "%d",
                 o.max_history >= 0 ? o.max_history : (int)irc->history_on_join);
        xmpp_stanza_t *res = ask(iq, cmd, "Configure some global default settings.",
                                 "Edit the form, to configure your global settings for the "
                                 "component.", &x);
        desc(field(x, "max_history_length", "text-single", "Max history length", max),
             "The maximum number of lines in the history that the server sends when joining a "
             "channel");
        desc(field(x, "record_history", "boolean", "Record history",
                   o.record_history ? "true" : "false"),
             "Whether to save the messages into the database, or not");
        desc(field(x, "persistent", "boolean", "Make all channels persistent",
                   o.persistent ? "true" : "false"),
             "If true, all channels will be persistent");
        ferry_component_send_release(irc->comp, res);
        return;
    }
    const char *max = ferry_form_value(x, "max_history_length");
    int record = boolean(ferry_form_value(x, "record_history"));
    int persistent = boolean(ferry_form_value(x, "persistent"));
    if (max && *max) {
        char *end;
        long n = strtol(max, &end, 10);
        if (*end || n < 0) {
            bad_request(irc, iq, "max_history_length: a number of messages");
            return;
        }
        o.max_history = n > 100 ? 100 : (int)n;
    }
    if (record >= 0)
        o.record_history = record;
    if (persistent >= 0)
        o.persistent = persistent;
    if (irc_user_options_store(irc, bare, &o) != 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "internal-server-error",
                                    "the settings could not be stored");
        return;
    }
    irc_bridge_user_options_changed(irc, bare);
    completed(irc, iq, cmd, "Configuration successfully applied.");
}

/* The bare JIDs with a connection, each once; NULL-terminated. */
static const char **users(irc_t *irc)
{
    const char **out = ferry_calloc(ferry_list_count(&irc->conns) + 1, sizeof *out);
    size_t k = 0;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &irc->conns) {
        irc_conn_t *c = ferry_list_entry(pos, irc_conn_t, link);
        size_t i = 0;
        while (i < k && strcmp(out[i], c->jid) != 0)
            i++;
        if (i == k)
            out[k++] = c->jid;
    }
    return out;
}

static const char *quit_message(xmpp_stanza_t *x, const char *fallback)
{
    const char *q = ferry_form_value(x, "quit-message");
    return q && *q && !strpbrk(q, "\r\n") ? q : fallback;
}

static void disconnect_user(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *cmd)
{
    xmpp_stanza_t *x = submitted(cmd);
    if (!x) {
        xmpp_stanza_t *res = ask(iq, cmd, "Disconnect a user from the gateway",
                                 "Choose a user JID and a quit message", &x);
        xmpp_stanza_t *f = field(x, "jids", "list-multi", "The JIDs to disconnect", NULL);
        ferry_stanza_add(f, "required", NULL);
        const char **list = users(irc);
        for (const char **u = list; *u; u++)
            option(f, *u);
        free(list);
        field(x, "quit-message", "text-single", "Quit message", "Disconnected by admin");
        ferry_component_send_release(irc->comp, res);
        return;
    }
    xmpp_stanza_t *jids = ferry_form_field(x, "jids");
    if (!jids) {
        bad_request(irc, iq, "which users?");
        return;
    }
    const char *reason = quit_message(x, "Disconnected by admin");
    size_t users_done = 0;
    for (xmpp_stanza_t *v = xmpp_stanza_get_children(jids); v; v = xmpp_stanza_get_next(v)) {
        const char *name = xmpp_stanza_get_name(v);
        xmpp_stanza_t *t = xmpp_stanza_get_children(v);
        const char *jid = t ? xmpp_stanza_get_text_ptr(t) : NULL;
        if (name && strcmp(name, "value") == 0 && jid)
            users_done += irc_disconnect_user(irc, jid, NULL, reason, 0) > 0;
    }
    char note[96];
    snprintf(note, sizeof note, "%zu user(s) disconnected.", users_done);
    completed(irc, iq, cmd, note);
}

static void disconnect_servers(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *cmd,
                               const char *bare, int admin)
{
    xmpp_stanza_t *x = submitted(cmd);
    const char *who = admin ? ferry_form_value(x, "jid") : bare;
    if (admin && (!who || !*who)) { /* first, whose connections */
        xmpp_stanza_t *res = ask(iq, cmd, "Disconnect a user from selected IRC servers",
                                 "Choose a user JID", &x);
        xmpp_stanza_t *f = field(x, "jid", "list-single", "The JID to disconnect", NULL);
        ferry_stanza_add(f, "required", NULL);
        const char **list = users(irc);
        for (const char **u = list; *u; u++)
            option(f, *u);
        free(list);
        ferry_component_send_release(irc->comp, res);
        return;
    }
    xmpp_stanza_t *servers = ferry_form_field(x, "irc-servers");
    if (servers) {
        const char *reason = quit_message(x, "Killed by admin");
        size_t n = 0;
        for (xmpp_stanza_t *v = xmpp_stanza_get_children(servers); v; v = xmpp_stanza_get_next(v)) {
            xmpp_stanza_t *t = xmpp_stanza_get_children(v);
            const char *name = xmpp_stanza_get_name(v);
            if (name && strcmp(name, "value") == 0 && t)
                n += irc_disconnect_user(irc, who, xmpp_stanza_get_text_ptr(t), reason, 0);
        }
        char note[2300];
        snprintf(note, sizeof note, "%s was disconnected from %zu IRC server(s).", who, n);
        completed(irc, iq, cmd, note);
        return;
    }
    int connected = 0;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &irc->conns)
        connected |= strcmp(ferry_list_entry(pos, irc_conn_t, link)->jid, who) == 0;
    if (!connected) {
        char note[2300];
        snprintf(note, sizeof note, "User %s is not connected to any IRC server.", who);
        completed(irc, iq, cmd, note);
        return;
    }
    xmpp_stanza_t *res = ask(iq, cmd, "Disconnect a user from selected IRC servers",
                             "Choose one or more servers to disconnect this JID from", &x);
    if (admin)
        field(x, "jid", "hidden", NULL, who);
    xmpp_stanza_t *f = field(x, "irc-servers", "list-multi", "The servers to disconnect from",
                             NULL);
    ferry_stanza_add(f, "required", NULL);
    ferry_list_foreach(pos, &irc->conns) {
        irc_conn_t *c = ferry_list_entry(pos, irc_conn_t, link);
        if (strcmp(c->jid, who) == 0)
            option(f, c->server->name);
    }
    field(x, "quit-message", "text-single", "Quit message", "Killed by admin");
    ferry_component_send_release(irc->comp, res);
}

/* ---- a server JID ---- */

static void configure_server(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *cmd, const char *bare,
                             const irc_server_t *server)
{
    irc_user_settings_t s;
    irc_settings_load(irc, server->name, bare, &s);
    char *commands = irc_settings_commands(irc, server->name, bare);
    xmpp_stanza_t *x = submitted(cmd);
    if (!x) {
        char title[IRC_NAME_MAX + 40];
        snprintf(title, sizeof title, "Configure the IRC server %s", server->name);
        xmpp_stanza_t *res = ask(iq, cmd, title,
                                 "Edit the form, to configure the settings of the IRC server",
                                 &x);
        desc(field(x, "nick", "text-single", "Nickname", s.nick[0] ? s.nick : NULL),
             "If set, will override the nickname provided in the initial presence sent to join "
             "the first server channel");
        field(x, "username", "text-single", "Username", s.username[0] ? s.username : NULL);
        field(x, "realname", "text-single", "Realname", s.realname[0] ? s.realname : NULL);
        /* Passwords are never sent back: empty keeps the stored one. */
        desc(field(x, "sasl_password", "text-private", "SASL Password", NULL),
             "Use it to authenticate with your nick. Left empty: unchanged.");
        desc(field(x, "pass", "text-private", "Server password", NULL),
             "Will be used in a PASS command when connecting. Left empty: unchanged.");
        port_values(desc(field(x, "ports", "text-multi", "Ports", NULL),
                         "List of ports to try, without TLS (the first is used). Empty: the "
                         "gateway's setting."),
                    s.ports);
        port_values(desc(field(x, "tls_ports", "text-multi", "TLS ports", NULL),
                         "List of ports to try, with TLS (the first is used, before any plain "
                         "port). Empty: the gateway's setting."),
                    s.tls_ports);
        int verify = s.verify_cert >= 0 ? s.verify_cert : server->verify_cert;
        desc(field(x, "verify_cert", "boolean", "Verify certificate", verify ? "true" : "false"),
             "Whether or not to abort the connection if the server's TLS certificate is invalid");
        char throttle[32];
        snprintf(throttle, sizeof throttle, "%d",
                 s.throttle_limit > 0 ? s.throttle_limit : (int)server->throttle_rate);
        desc(field(x, "throttle_limit", "text-single", "Throttle limit", throttle),
             "How many lines a second ferry sends to the server.");
        encoding_fields(x, s.encoding_in, s.encoding_out,
                        "The encoding used to decode messages received from the IRC server. "
                        "Empty: UTF-8, and Latin-1 where a line is not UTF-8.",
                        "The encoding used when sending messages to the IRC server (an iconv "
                        "name such as ISO-8859-15 or KOI8-R). Empty: UTF-8.");
        xmpp_stanza_t *f = field(x, "after_connect_commands", "text-multi",
                                 "After-connection IRC commands", NULL);
        desc(f, "Custom IRC commands sent after the connection is established with the server.");
        for (char *line = commands ? strtok(commands, "\n") : NULL; line; line = strtok(NULL, "\n"))
            ferry_stanza_add_text(f, "value", line);
        ferry_component_send_release(irc->comp, res);
        free(commands);
        return;
    }
    const char *nick = ferry_form_value(x, "nick"), *username = ferry_form_value(x, "username");
    const char *realname = ferry_form_value(x, "realname"), *sasl = ferry_form_value(x, "sasl_password");
    const char *pass = ferry_form_value(x, "pass"), *throttle = ferry_form_value(x, "throttle_limit");
    int verify = boolean(ferry_form_value(x, "verify_cert"));
    char *end = NULL;
    long limit = throttle && *throttle ? strtol(throttle, &end, 10) : -1;
    if (read_ports(x, "ports", s.ports, sizeof s.ports) != 0 ||
        read_ports(x, "tls_ports", s.tls_ports, sizeof s.tls_ports) != 0 ||
        (end && (*end || limit < 1 || limit > 1000))) {
        free(commands);
        bad_request(irc, iq, "ports are numbers from 1 to 65535, throttle_limit lines a second");
        return;
    }
    if (read_encodings(irc, iq, x, s.encoding_in, s.encoding_out) != 0) {
        free(commands);
        return;
    }
    if (verify >= 0)
        s.verify_cert = verify;
    if (end)
        s.throttle_limit = (int)limit;
    if ((nick && *nick && !irc_valid_nick(nick)) ||
        (username && *username && (strpbrk(username, " @:") || !irc_valid_nick(username))) ||
        !fits_line(nick, IRC_NICK_MAX) || !fits_line(username, IRC_NICK_MAX) ||
        !fits_line(realname, IRC_NAME_MAX) || !fits_line(sasl, IRC_NAME_MAX) ||
        !fits_line(pass, IRC_NAME_MAX) || (pass && strchr(pass, ' '))) {
        free(commands);
        ferry_component_reply_error(irc->comp, iq, "modify", "not-acceptable",
                                    "a field holds characters IRC cannot carry");
        return;
    }
    if (nick)
        snprintf(s.nick, sizeof s.nick, "%s", nick);
    if (username)
        snprintf(s.username, sizeof s.username, "%s", username);
    if (realname)
        snprintf(s.realname, sizeof s.realname, "%s", realname);
    if (sasl && *sasl)
        snprintf(s.password, sizeof s.password, "%s", sasl);
    if (pass && *pass)
        snprintf(s.pass, sizeof s.pass, "%s", pass);
    /* Each value is one command: checked as IRC would carry it. */
    xmpp_stanza_t *f = ferry_form_field(x, "after_connect_commands");
    size_t len = 0, cap = 1;
    char *lines = NULL;
    xmpp_stanza_t *v = f ? xmpp_stanza_get_children(f) : NULL;
    for (; v; v = xmpp_stanza_get_next(v)) {
        xmpp_stanza_t *t = xmpp_stanza_get_children(v);
        const char *line = t ? xmpp_stanza_get_text_ptr(t) : "";
        const char *name = xmpp_stanza_get_name(v);
        if (!name || strcmp(name, "value") != 0 || !*line)
            continue;
        irc_msg_t *m = strpbrk(line, "\r\n") ? NULL : irc_msg_parse(line, strlen(line));
        char out[IRC_LINE_MAX + 1];
        int ok = m && irc_format(out, sizeof out, m->command, (const char *const *)m->params,
                                 m->nparams);
        free(m);
        if (!ok) {
            free(lines);
            free(commands);
            bad_request(irc, iq, "after_connect_commands: one IRC command a line");
            return;
        }
        size_t n = strlen(line);
        cap += n + 1;
        lines = ferry_realloc(lines, cap);
        memcpy(lines + len, line, n);
        len += n;
        lines[len++] = '\n';
        lines[len] = 0;
    }
    int rc = irc_settings_store(irc, server->name, bare, &s, f ? lines : commands);
    free(lines);
    free(commands);
    if (rc != 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "internal-server-error",
                                    "the settings could not be stored");
        return;
    }
    /* The encodings apply at once (the rest at the next connection). */
    irc_conn_t *conn = irc_find_conn(irc, bare, server->name);
    if (conn) {
        snprintf(conn->settings.encoding_in, sizeof conn->settings.encoding_in, "%s",
                 s.encoding_in);
        snprintf(conn->settings.encoding_out, sizeof conn->settings.encoding_out, "%s",
                 s.encoding_out);
        irc_charset_open(conn);
    }
    completed(irc, iq, cmd, "Configuration successfully applied.");
}

/* ---- a room JID (also muc#owner) ---- */

static void room_form(irc_t *irc, xmpp_stanza_t *x, const irc_server_t *server,
                      const char *channel, const char *bare)
{
    irc_room_options_t o;
    irc_room_options_load(irc, server->name, channel, bare, &o);
    xmpp_stanza_t *f = field(x, "record_history", "list-single", "Record history for this channel",
                             o.record_history < 0 ? "unset" : o.record_history ? "true" : "false");
    desc(f, "If unset, the value is the one configured globally");
    option(f, "unset");
    option(f, "true");
    option(f, "false");
    desc(field(x, "persistent", "boolean", "Persistent", o.persistent ? "true" : "false"),
         "If set to true, when all XMPP clients have left this channel, ferry will stay idle in "
         "it, without sending a PART command, and record its history for when you come back.");
    encoding_fields(x, o.encoding_in, o.encoding_out,
                    "The encoding used to decode the messages received on this channel. Empty: "
                    "the server's in encoding.",
                    "The encoding used to send messages to this channel (an iconv name such as "
                    "ISO-8859-1). Empty: the server's out encoding.");
}

/* Applies a submitted room form; 0, or -1 after answering an error. */
static int room_apply(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *x,
                      const irc_server_t *server, const char *channel, const char *bare)
{
    irc_room_options_t o;
    irc_room_options_load(irc, server->name, channel, bare, &o);
    const char *record = ferry_form_value(x, "record_history");
    int persistent = boolean(ferry_form_value(x, "persistent"));
    if (record && *record) {
        if (strcmp(record, "unset") == 0)
            o.record_history = -1;
        else if (boolean(record) >= 0)
            o.record_history = boolean(record);
        else {
            bad_request(irc, iq, "record_history: unset, true or false");
            return -1;
        }
    }
    if (read_encodings(irc, iq, x, o.encoding_in, o.encoding_out) != 0)
        return -1;
    if (persistent >= 0)
        o.persistent = persistent;
    if (irc_room_options_store(irc, server->name, channel, bare, &o) != 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "internal-server-error",
                                    "the settings could not be stored");
        return -1;
    }
    irc_conn_t *conn = irc_find_conn(irc, bare, server->name);
    if (conn) /* its lines in and out of the channel: the new encodings */
        irc_charset_forget(conn, channel);
    irc_bridge_room_options_changed(irc, bare, server, channel);
    return 0;
}

static void configure_room(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *cmd, const char *bare,
                           const irc_server_t *server, const char *channel)
{
    xmpp_stanza_t *x = submitted(cmd);
    if (!x) {
        char title[2 * IRC_NAME_MAX + 64];
        snprintf(title, sizeof title, "Configure the IRC channel %s on server %s", channel,
                 server->name);
        xmpp_stanza_t *res = ask(iq, cmd, title,
                                 "Edit the form, to configure the settings of the IRC channel",
                                 &x);
        room_form(irc, x, server, channel, bare);
        ferry_component_send_release(irc->comp, res);
        return;
    }
    if (room_apply(irc, iq, x, server, channel, bare) == 0)
        completed(irc, iq, cmd, "Configuration successfully applied.");
}

int irc_owner(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_OWNER);
    if (!q || to->kind != IRC_JID_CHANNEL || to->nick[0])
        return 0;
    char bare[2100];
    const irc_server_t *server = irc_served_server(irc, iq, to->server, bare, sizeof bare);
    if (!server)
        return 1;
    if (strcmp(xmpp_stanza_get_type(iq), "get") == 0) {
        xmpp_stanza_t *out;
        xmpp_stanza_t *res = ferry_iq_result(iq, NS_OWNER, &out);
        char title[2 * IRC_NAME_MAX + 64];
        snprintf(title, sizeof title, "Configure the IRC channel %s on server %s", to->channel,
                 server->name);
        xmpp_stanza_t *x = ferry_form_add(out, "form", title);
        room_form(irc, x, server, to->channel, bare);
        ferry_component_send_release(irc->comp, res);
        return 1;
    }
    xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(q, "x", NS_DATA);
    const char *type = x ? xmpp_stanza_get_type(x) : NULL;
    if (type && strcmp(type, "cancel") == 0) {
        ferry_component_send_release(irc->comp,
                                     ferry_iq_result(iq, NULL, NULL));
        return 1;
    }
    if (!type || strcmp(type, "submit") != 0) {
        /* destroying a room is not something an IRC channel does */
        ferry_component_reply_error(irc->comp, iq, "cancel", "feature-not-implemented",
                                    "only the configuration form is supported");
        return 1;
    }
    if (room_apply(irc, iq, x, server, to->channel, bare) == 0)
        ferry_component_send_release(irc->comp,
                                     ferry_iq_result(iq, NULL, NULL));
    return 1;
}

/* ---- dispatch ---- */

static int target_of(irc_t *irc, const char *to, irc_jid_t *j, enum target *t)
{
    if (to && strcmp(to, ferry_component_domain(irc->comp)) == 0) {
        *t = T_DOMAIN;
        return 1;
    }
    if (!to || irc_jid_parse(to, irc->default_server, "#&+!", j) != 0)
        return 0;
    if (j->kind == IRC_JID_SERVER)
        *t = T_SERVER;
    else if (j->kind == IRC_JID_CHANNEL && !j->nick[0])
        *t = T_ROOM;
    else
        return 0;
    return 1;
}

static const command_t *find_command(enum target t, const char *node)
{
    for (size_t i = 0; node && i < NCOMMANDS; i++)
        if (commands[i].target == t && strcmp(commands[i].node, node) == 0)
            return &commands[i];
    return NULL;
}

static int may_run(irc_t *irc, const command_t *c, const char *from)
{
    return ferry_jid_allowed(irc->allow, from) &&
           (!c->admin || ferry_component_is_admin(irc->comp, from));
}

static void list_commands(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *query, enum target t)
{
    const char *from = xmpp_stanza_get_from(iq);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (commands[i].target != t || !may_run(irc, &commands[i], from))
            continue;
        ferry_disco_item(query, xmpp_stanza_get_to(iq), commands[i].node, commands[i].name);
    }
}

void irc_adhoc_items(void *self, xmpp_stanza_t *iq, xmpp_stanza_t *query)
{
    list_commands(self, iq, query, T_DOMAIN);
}

static void command_info(irc_t *irc, xmpp_stanza_t *iq, const command_t *c)
{
    ferry_command_info(irc->comp, iq, c->node, c->name);
}

static void run(irc_t *irc, xmpp_stanza_t *iq, xmpp_stanza_t *cmd, const command_t *c,
                const irc_jid_t *j)
{
    const char *from = xmpp_stanza_get_from(iq);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    const char *action = xmpp_stanza_get_attribute(cmd, "action");
    if (action && strcmp(action, "cancel") == 0) {
        xmpp_stanza_t *out;
        xmpp_stanza_t *res = ferry_command_answer(iq, node_of(cmd), "canceled", &out);
        ferry_component_send_release(irc->comp, res);
        return;
    }
    const irc_server_t *server = c->target == T_DOMAIN ? NULL : irc_find_server(irc, j->server);
    if (c->target != T_DOMAIN && !server) {
        ferry_component_reply_error(irc->comp, iq, "cancel", "item-not-found",
                                    "this IRC server is not served here");
    } else if (c->target == T_SERVER) {
        configure_server(irc, iq, cmd, bare, server);
    } else if (c->target == T_ROOM) {
        configure_room(irc, iq, cmd, bare, server, j->channel);
    } else if (strcmp(c->node, "configure") == 0) {
        configure_user(irc, iq, cmd, bare);
    } else if (strcmp(c->node, "disconnect-user") == 0) {
        disconnect_user(irc, iq, cmd);
    } else {
        disconnect_servers(irc, iq, cmd, bare, ferry_component_is_admin(irc->comp, from));
    }
}

int irc_adhoc(irc_t *irc, xmpp_stanza_t *iq)
{
    const char *type = xmpp_stanza_get_type(iq);
    irc_jid_t j;
    enum target t;
    if (!type || !target_of(irc, xmpp_stanza_get_to(iq), &j, &t))
        return 0;
    xmpp_stanza_t *cmd = xmpp_stanza_get_child_by_name_and_ns(iq, "command", NS_COMMANDS);
    if (cmd && strcmp(type, "set") == 0) {
        const command_t *c = find_command(t, xmpp_stanza_get_attribute(cmd, "node"));
        if (!c && t == T_DOMAIN)
            return 0; /* the core's own commands */
        if (!c) {
            ferry_component_reply_error(irc->comp, iq, "cancel", "item-not-found",
                                        "no such command");
            return 1;
        }
        if (!may_run(irc, c, xmpp_stanza_get_from(iq)))
            ferry_component_reply_error(irc->comp, iq, "auth", "forbidden",
                                        c->admin ? "this command is for the gateway's admins"
                                                 : "you may not use this IRC gateway");
        else
            run(irc, iq, cmd, c, &j);
        return 1;
    }
    if (strcmp(type, "get") != 0)
        return 0;
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_DISCO_ITEMS);
    const char *node = q ? xmpp_stanza_get_attribute(q, "node") : NULL;
    if (q && node && strcmp(node, NS_COMMANDS) == 0 && t != T_DOMAIN) {
        xmpp_stanza_t *out;
        xmpp_stanza_t *res = ferry_iq_result(iq, NS_DISCO_ITEMS, &out);
        xmpp_stanza_set_attribute(out, "node", NS_COMMANDS);
        list_commands(irc, iq, out, t);
        ferry_component_send_release(irc->comp, res);
        return 1;
    }
    q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_DISCO_INFO);
    node = q ? xmpp_stanza_get_attribute(q, "node") : NULL;
    const command_t *c = find_command(t, node);
    if (c) {
        command_info(irc, iq, c);
        return 1;
    }
    return 0;
}
