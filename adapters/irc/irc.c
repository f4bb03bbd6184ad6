/* irc.c: the IRC adapter: IRC channels as XMPP group chats with biboumi's
 * JIDs. Reads the servers users may reach, routes stanzas to the bridge,
 * and runs the one liveness timer that serves every IRC connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc.h"

#define LIVENESS_MS 30000

/* ---- lookups ---- */

const irc_server_t *irc_find_server(irc_t *irc, const char *name)
{
    for (size_t i = 0; i < irc->nservers; i++)
        if (strcasecmp(irc->servers[i].name, name) == 0)
            return &irc->servers[i];
    return NULL;
}

const irc_server_t *irc_served_server(irc_t *irc, xmpp_stanza_t *st, const char *name,
                                      char *bare, size_t bare_len)
{
    const irc_server_t *s = irc_find_server(irc, name);
    if (!s)
        ferry_component_reply_error(irc->comp, st, "cancel", "not-allowed",
                                    "this IRC server is not served here");
    else if (bare)
        ferry_jid_bare_of(xmpp_stanza_get_from(st), bare, bare_len);
    return s;
}

irc_conn_t *irc_find_conn(irc_t *irc, const char *jid, const char *server)
{
    ferry_list_t *pos;
    ferry_list_foreach(pos, &irc->conns) {
        irc_conn_t *c = ferry_list_entry(pos, irc_conn_t, link);
        if (strcmp(c->jid, jid) == 0 && strcasecmp(c->server->name, server) == 0)
            return c;
    }
    return NULL;
}

size_t irc_disconnect_user(irc_t *irc, const char *bare, const char *server, const char *reason,
                           int status)
{
    size_t n = 0;
    ferry_list_t *pos, *tmp;
    ferry_list_foreach_safe(pos, tmp, &irc->conns) {
        irc_conn_t *c = ferry_list_entry(pos, irc_conn_t, link);
        if (strcmp(c->jid, bare) == 0 && (!server || strcasecmp(c->server->name, server) == 0)) {
            irc_bridge_disconnect(c, reason, status);
            n++;
        }
    }
    return n;
}

void irc_conn_add(irc_t *irc, irc_conn_t *conn)
{
    ferry_list_insert_head(&irc->conns, &conn->link);
    irc->live++;
}

void irc_conn_forget(irc_t *irc, irc_conn_t *conn)
{
    ferry_list_remove(&conn->link);
    if (ferry_list_empty(&irc->conns))
        uv_timer_stop(&irc->liveness);
}

void irc_conn_freed(irc_t *irc)
{
    if (--irc->live == 0 && irc->stopping)
        ferry_component_stopped(irc->comp);
}

static void on_liveness(uv_timer_t *t)
{
    irc_t *irc = t->data;
    uint64_t now = uv_now(ferry_component_loop(irc->comp));
    ferry_list_t *pos, *tmp; /* a check may drop the connection */
    ferry_list_foreach_safe(pos, tmp, &irc->conns) {
        irc_conn_t *c = ferry_list_entry(pos, irc_conn_t, link);
        irc_ctcp_expire(c, now, 0);
        irc_conn_check(c, now);
    }
}

static void watch_liveness(irc_t *irc)
{
    /* One timer for all connections, and only while there are some: an
     * idle gateway does not wake up. */
    if (!ferry_list_empty(&irc->conns) && !uv_is_active((uv_handle_t *)&irc->liveness))
        uv_timer_start(&irc->liveness, on_liveness, LIVENESS_MS, LIVENESS_MS);
}

/* ---- stanzas ---- */

static int allowed(irc_t *irc, xmpp_stanza_t *st)
{
    if (ferry_jid_allowed(irc->allow, xmpp_stanza_get_from(st)))
        return 1;
    ferry_component_reply_error(irc->comp, st, "auth", "forbidden",
                                "you may not use this IRC gateway");
    return 0;
}

static int parse_to(irc_t *irc, xmpp_stanza_t *st, irc_jid_t *to)
{
    if (irc_jid_parse(xmpp_stanza_get_to(st), irc->default_server, "#&+!", to) == 0)
        return 0;
    ferry_component_reply_error(irc->comp, st, "modify", "jid-malformed",
                                "use #channel%server@domain or nick%server@domain");
    return -1;
}

/* Whether ST is an error; one from the user's resources to a room makes
 * that resource leave it. */
static int on_error(irc_t *irc, xmpp_stanza_t *st)
{
    const char *type = xmpp_stanza_get_type(st);
    irc_jid_t to;
    if (!type || strcmp(type, "error") != 0)
        return 0;
    if (irc_jid_parse(xmpp_stanza_get_to(st), irc->default_server, "#&+!", &to) == 0 &&
        to.kind == IRC_JID_CHANNEL)
        irc_bridge_on_error(irc, st, &to);
    return 1;
}

/* The component's own JID, in default_server mode, stands for that server:
 * text typed to it is raw IRC commands, as to a server JID. */
static int to_component(irc_t *irc, xmpp_stanza_t *st, irc_jid_t *to)
{
    const char *jid = xmpp_stanza_get_to(st);
    if (!irc->default_server || !jid || strchr(jid, '@') || strchr(jid, '/'))
        return 0;
    memset(to, 0, sizeof *to);
    to->kind = IRC_JID_SERVER;
    to->implicit_server = 1;
    snprintf(to->server, sizeof to->server, "%s", irc->default_server);
    return 1;
}

static void irc_on_message(void *self, xmpp_stanza_t *st)
{
    irc_t *irc = self;
    irc_jid_t to;
    if (on_error(irc, st) || !allowed(irc, st))
        return;
    if (!to_component(irc, st, &to) && parse_to(irc, st, &to) != 0)
        return;
    irc_bridge_message(irc, st, &to);
    watch_liveness(irc);
}

static void irc_on_presence(void *self, xmpp_stanza_t *st)
{
    irc_t *irc = self;
    const char *type = xmpp_stanza_get_type(st);
    irc_jid_t to;
    if (on_error(irc, st))
        return;
    if (!(type && strcmp(type, "unavailable") == 0) && !allowed(irc, st))
        return;
    if (irc_contact_presence(irc, st))
        return;
    if (irc_jid_parse(xmpp_stanza_get_to(st), irc->default_server, "#&+!", &to) != 0) {
        if (!type)
            parse_to(irc, st, &to);
        return;
    }
    irc_bridge_presence(irc, st, &to);
    watch_liveness(irc);
}

/* MAM, registration, muc#admin, disco#items on a server JID (LIST), ping
 * and version to occupants; the rest of disco in irc_disco.c. */
static int irc_on_iq(void *self, xmpp_stanza_t *iq)
{
    irc_t *irc = self;
    const char *type = xmpp_stanza_get_type(iq);
    irc_jid_t to;
    if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return 0; /* results and errors ask nothing */
    if (irc_adhoc(irc, iq)) /* XEP-0050: biboumi's configure and disconnect commands */
        return 1;
    if (xmpp_stanza_get_child_by_name_and_ns(iq, "query", "http://jabber.org/protocol/muc#owner")) {
        if (!allowed(irc, iq) || parse_to(irc, iq, &to) != 0)
            return 1;
        return irc_owner(irc, iq, &to);
    }
    if (xmpp_stanza_get_child_by_name_and_ns(iq, "query", "urn:xmpp:mam:2")) {
        if (!allowed(irc, iq) || parse_to(irc, iq, &to) != 0)
            return 1;
        return irc_history_mam(irc, iq, &to);
    }
    if (xmpp_stanza_get_child_by_name_and_ns(iq, "query", "jabber:iq:register")) {
        if (!allowed(irc, iq) || parse_to(irc, iq, &to) != 0)
            return 1;
        return irc_bridge_register(irc, iq, &to);
    }
    if (xmpp_stanza_get_child_by_name_and_ns(iq, "query", "http://jabber.org/protocol/muc#admin")) {
        if (!allowed(irc, iq) || parse_to(irc, iq, &to) != 0)
            return 1;
        return irc_bridge_admin(irc, iq, &to);
    }
    xmpp_stanza_t *items = xmpp_stanza_get_child_by_name_and_ns(
        iq, "query", "http://jabber.org/protocol/disco#items");
    if (strcmp(type, "get") == 0 && items && !xmpp_stanza_get_attribute(items, "node") &&
        irc_jid_parse(xmpp_stanza_get_to(iq), NULL, "#&+!", &to) == 0 && to.kind == IRC_JID_SERVER) {
        /* the channels (a node, such as the commands', is something else) */
        if (allowed(irc, iq)) {
            irc_bridge_list(irc, iq, &to);
            watch_liveness(irc);
        }
        return 1;
    }
    if (strcmp(type, "get") == 0 && irc_jid_parse(xmpp_stanza_get_to(iq), irc->default_server,
                                                  "#&+!", &to) == 0) {
        if (xmpp_stanza_get_child_by_name_and_ns(iq, "ping", "urn:xmpp:ping") &&
            to.kind == IRC_JID_CHANNEL && to.nick[0])
            return allowed(irc, iq) ? irc_bridge_ping(irc, iq, &to) : 1;
        if (xmpp_stanza_get_child_by_name_and_ns(iq, "query", "jabber:iq:version") &&
            (to.kind == IRC_JID_USER || (to.kind == IRC_JID_CHANNEL && to.nick[0]))) {
            if (allowed(irc, iq))
                irc_ctcp_version_iq(irc, iq, &to);
            return 1;
        }
    }
    int answered = irc_disco_iq(irc, iq);
    watch_liveness(irc); /* the component's items may have opened a connection */
    return answered;
}

static void irc_disco_info(void *self, xmpp_stanza_t *query) { irc_disco_domain_info(self, query); }

/* ---- config ---- */

static int read_server(const ferry_conf_t *t, const char *name, irc_server_t *s)
{
    int bad = 0;
    const char *host = NULL, *realname = "ferry user";
    int64_t port = 0;
    s->name = ferry_strdup(name);
    s->tls = 1;
    s->verify_cert = 1;
    s->throttle_burst = 10;
    s->throttle_rate = 2;
    bad |= ferry_conf_string(t, "host", FERRY_CONF_REQUIRED, &host) != 0;
    bad |= ferry_conf_bool(t, "tls", FERRY_CONF_OPTIONAL, &s->tls) < 0;
    bad |= ferry_conf_bool(t, "verify_cert", FERRY_CONF_OPTIONAL, &s->verify_cert) < 0;
    if (ferry_conf_int(t, "port", FERRY_CONF_OPTIONAL, &port) == 0 && (port < 1 || port > 65535)) {
        ferry_conf_error(t, "port", "must be between 1 and 65535");
        bad = 1;
    }
    s->port = port ? (int)port : s->tls ? 6697 : 6667;
    bad |= ferry_conf_string(t, "realname", FERRY_CONF_OPTIONAL, &realname) < 0;
    if (strpbrk(realname, "\r\n")) {
        ferry_conf_error(t, "realname", "must be one line");
        bad = 1;
    }
    bad |= ferry_conf_number(t, "throttle_burst", FERRY_CONF_OPTIONAL, &s->throttle_burst) < 0;
    bad |= ferry_conf_number(t, "throttle_rate", FERRY_CONF_OPTIONAL, &s->throttle_rate) < 0;
    if (s->throttle_burst < 1 || s->throttle_rate <= 0) {
        ferry_conf_error(t, NULL, "throttle_burst must be at least 1 and throttle_rate above 0");
        bad = 1;
    }
    s->host = ferry_strdup(host ? host : "");
    s->realname = ferry_strdup(realname);
    return bad ? -1 : 0;
}

static void servers_free(irc_t *irc)
{
    for (size_t i = 0; i < irc->nservers; i++) {
        free(irc->servers[i].name);
        free(irc->servers[i].host);
        free(irc->servers[i].realname);
    }
    free(irc->servers);
}

static int read_config(irc_t *irc, const ferry_conf_t *conf)
{
    int bad = 0;
    const char *def = NULL;
    bad |= ferry_conf_strings(conf, "allow", FERRY_CONF_OPTIONAL, &irc->allow) < 0;
    bad |= ferry_conf_string(conf, "default_server", FERRY_CONF_OPTIONAL, &def) < 0;
    const ferry_conf_t *servers;
    if (ferry_conf_table(conf, "servers", FERRY_CONF_REQUIRED, &servers) != 0)
        return -1;
    size_t n = ferry_conf_count(servers);
    irc->servers = ferry_calloc(n ? n : 1, sizeof *irc->servers);
    for (size_t i = 0; i < n; i++) {
        const char *name = ferry_conf_key_at(servers, i);
        const ferry_conf_t *t = ferry_conf_value_at(servers, i);
        if (!ferry_conf_is_table(t) || strpbrk(name, "@/%% ")) {
            ferry_conf_error(servers, name, "expected a table named after the server");
            bad = 1;
            continue;
        }
        bad |= read_server(t, name, &irc->servers[irc->nservers++]) != 0;
    }
    if (def && !irc_find_server(irc, def)) {
        ferry_conf_error(conf, "default_server", "\"%s\" is not one of the [servers]", def);
        bad = 1;
    }
    irc->default_server = def ? ferry_strdup(def) : NULL;
    irc->history = 1;
    irc->history_on_join = 20;
    irc->history_days = 30;
    bad |= ferry_conf_bool(conf, "history", FERRY_CONF_OPTIONAL, &irc->history) < 0;
    if (ferry_conf_int(conf, "history_on_join", FERRY_CONF_OPTIONAL, &irc->history_on_join) == 0 &&
        (irc->history_on_join < 0 || irc->history_on_join > 100)) {
        ferry_conf_error(conf, "history_on_join", "0 to 100 messages");
        bad = 1;
    }
    if (ferry_conf_int(conf, "history_days", FERRY_CONF_OPTIONAL, &irc->history_days) == 0 &&
        irc->history_days < 1) {
        ferry_conf_error(conf, "history_days", "at least 1");
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* ---- lifetime ---- */

static void irc_free(irc_t *irc)
{
    servers_free(irc);
    free(irc->default_server);
    ferry_conf_strings_free(irc->allow);
    ferry_net_tls_free(irc->tls);
    free(irc);
}

static void *irc_create(ferry_component_t *comp, const ferry_conf_t *conf)
{
    irc_t *irc = ferry_calloc(1, sizeof *irc);
    irc->comp = comp;
    irc->slot = -1;
    ferry_list_init(&irc->conns);
    ferry_list_init(&irc->chans);
    if (read_config(irc, conf) != 0) {
        irc_free(irc);
        return NULL;
    }
    return irc;
}

static int irc_start(void *self)
{
    irc_t *irc = self;
    char err[256];
    irc->tls = ferry_net_tls_new(NULL, err, sizeof err);
    if (!irc->tls) {
        ferry_log_error(ferry_component_name(irc->comp), "TLS: %s", err);
        return -1;
    }
    uv_timer_init(ferry_component_loop(irc->comp), &irc->liveness);
    irc->liveness.data = irc;
    irc->liveness_open = 1;
    /* The users who were in rooms when ferry stopped: now with SQLite (slot
     * 0), else when a slot is taken (irc_on_link). */
    int slot = ferry_component_slot(irc->comp);
    if (slot >= 0)
        irc_state_restore(irc, slot);
    watch_liveness(irc);
    return 0;
}

/* Several instances on one store: the link comes up once this instance
 * holds a slot, at start or when a standby takes a dead instance's slot;
 * the rooms of the users who were on that slot are theirs now. */
static void irc_on_link(void *self, int up)
{
    irc_t *irc = self;
    int slot = ferry_component_slot(irc->comp);
    if (up && !irc->stopping && slot >= 0 && slot != irc->slot)
        irc_state_restore(irc, slot);
}

static irc_conn_t *first_conn(irc_t *irc)
{
    return ferry_list_entry(ferry_list_first(&irc->conns), irc_conn_t, link);
}

static void irc_stop(void *self)
{
    irc_t *irc = self;
    irc->stopping = 1;
    irc->for_good = ferry_component_stopping_for_good(irc->comp);
    uv_timer_stop(&irc->liveness);
    if (irc->for_good) {
        /* 332: the service is going away; clients show the rooms as left,
         * and the store forgets them. */
        while (!ferry_list_empty(&irc->conns))
            irc_bridge_disconnect(first_conn(irc), "ferry is shutting down", 332);
    } else {
        /* A restart: the rooms stay stored and the users are put back on
         * start; telling clients they left would only make them rejoin by
         * hand. */
        while (!ferry_list_empty(&irc->conns))
            irc_conn_quit(first_conn(irc), "ferry is restarting");
    }
    if (irc->live == 0)
        ferry_component_stopped(irc->comp);
}

static void on_liveness_closed(uv_handle_t *h) { irc_free(h->data); }

static void irc_destroy(void *self)
{
    irc_t *irc = self;
    if (irc->liveness_open)
        uv_close((uv_handle_t *)&irc->liveness, on_liveness_closed);
    else
        irc_free(irc);
}

static size_t irc_sessions(void *self)
{
    irc_t *irc = self;
    return ferry_list_count(&irc->conns);
}

static size_t irc_disconnect(void *self, const char *bare_jid)
{
    return irc_disconnect_user(self, bare_jid, NULL, "disconnected by an administrator", 0);
}

static void irc_metrics(void *self, ferry_metrics_t *m)
{
    irc_t *irc = self;
    size_t conns = ferry_list_count(&irc->conns), chans = ferry_list_count(&irc->chans);
    ferry_metric(m, "ferry_irc_connections", "gauge", "IRC client connections.", (double)conns);
    ferry_metric(m, "ferry_irc_channels", "gauge", "IRC channels with local users.",
                 (double)chans);
    ferry_metric(m, "ferry_irc_lines_total", "counter", "IRC lines read.",
                 (double)irc->lines_in);
    ferry_metric(m, "ferry_irc_lines_sent_total", "counter", "IRC lines written.",
                 (double)irc->lines_out);
}

const ferry_adapter_t ferry_adapter_irc = {
    .name = "irc",
    .gateway_type = "irc",
    .create = irc_create,
    .start = irc_start,
    .stop = irc_stop,
    .destroy = irc_destroy,
    .on_message = irc_on_message,
    .on_presence = irc_on_presence,
    .on_iq = irc_on_iq,
    .disco_info = irc_disco_info,
    .on_link = irc_on_link,
    .sessions = irc_sessions,
    .disconnect = irc_disconnect,
    .command_items = irc_adhoc_items,
    .metrics = irc_metrics,
};
