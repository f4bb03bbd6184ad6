/* fuzz_irc_line.c: what an IRC server (or anyone on a channel) sends, on
 * any bytes: adapters/irc/irc_proto.c cuts reads into lines and parses them,
 * and the real bridge (adapters/irc/bridge.c, irc_chan.c, irc_history.c)
 * turns them into presences, messages, subjects, invitations and history
 * replays for a user who is in two rooms. First byte: the read size - 1.
 *
 * The ORACLE: every stanza the bridge sends is well-formed XML 1.0 with
 * JIDs that parse in 'from' and 'to' (RFC 6120: anything else and the
 * server drops the component for everyone), and every line it would send
 * back to IRC is one line. The core's side of the component, the IRC
 * connection's socket and the store are replaced below by stand-ins that
 * check instead of sending; these definitions take the place of
 * component.c, irc_conn.c and irc.c, which are then not linked. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../adapters/irc/irc.h"
#include "ferry/stanza.h"
#include "oracle.h"

#define DOMAIN "irc.example.org"

static irc_server_t server = {.name = "irc.example.net", .host = "127.0.0.1", .port = 6667};
static irc_conn_t *the_conn;

/* ---- the core, as the adapter sees it (ferry/component.h) ---- */

const char *ferry_component_name(const ferry_component_t *comp)
{
    (void)comp;
    return "irc";
}

const char *ferry_component_domain(const ferry_component_t *comp)
{
    (void)comp;
    return DOMAIN;
}

xmpp_ctx_t *ferry_component_xmpp(const ferry_component_t *comp)
{
    (void)comp;
    return fuzz_xmpp_ctx();
}

int64_t ferry_now_ms(void) { return 1700000000000LL; }

void ferry_component_send_xml(ferry_component_t *comp, const char *xml, size_t len)
{
    (void)comp;
    if (strlen(xml) != len)
        fuzz_fail("irc: send_xml", "length %zu, text of %zu bytes", len, strlen(xml));
    fuzz_check_stanza_text("irc: stanza written as text", xml, len, 1);
}

void ferry_component_send(ferry_component_t *comp, xmpp_stanza_t *stanza)
{
    (void)comp;
    if (!xmpp_stanza_get_from(stanza))
        xmpp_stanza_set_from(stanza, DOMAIN);
    fuzz_check_stanza("irc: stanza", stanza, 1);
}

void ferry_component_reply_error(ferry_component_t *comp, xmpp_stanza_t *stanza,
                                 const char *type, const char *condition, const char *text)
{
    xmpp_stanza_t *reply = ferry_stanza_error_reply(stanza, type, condition, text);
    if (reply) {
        ferry_component_send(comp, reply);
        xmpp_stanza_release(reply);
    }
}

/* ---- the archive (ferry/history.h), in memory ---- */

typedef struct row {
    char *room, *nick, *body;
    int64_t ts;
} row_t;

static row_t *rows;
static size_t nrows;

int ferry_history_add(ferry_component_t *comp, const char *room, int64_t ts_ms, const char *nick,
                      const char *body, int64_t *id)
{
    (void)comp;
    rows = realloc(rows, (nrows + 1) * sizeof *rows);
    rows[nrows] = (row_t){strdup(room), strdup(nick), strdup(body), ts_ms};
    if (id)
        *id = (int64_t)nrows + 1;
    nrows++;
    return 0;
}

int ferry_history_query(ferry_component_t *comp, const char *room, const ferry_history_query_t *q,
                        ferry_history_cb cb, void *arg)
{
    (void)comp;
    int n = 0;
    for (size_t k = 0; k < nrows && (!q->limit || n < q->limit); k++) {
        size_t i = q->newest_first ? nrows - 1 - k : k;
        if (strcmp(rows[i].room, room) == 0 && rows[i].ts >= q->start_ms) {
            cb(arg, (int64_t)i + 1, rows[i].ts, rows[i].nick, rows[i].body);
            n++;
        }
    }
    return n;
}

int ferry_history_prune(ferry_component_t *comp, int64_t before_ms)
{
    (void)comp;
    (void)before_ms;
    return 0;
}

static void rows_clear(void)
{
    for (size_t i = 0; i < nrows; i++) {
        free(rows[i].room);
        free(rows[i].nick);
        free(rows[i].body);
    }
    free(rows);
    rows = NULL;
    nrows = 0;
}

/* ---- the adapter's own plumbing (irc.c, irc_register.c, irc_conn.c) ---- */

const irc_server_t *irc_find_server(irc_t *irc, const char *name)
{
    (void)irc;
    return name && strcasecmp(name, server.name) == 0 ? &server : NULL;
}

irc_conn_t *irc_find_conn(irc_t *irc, const char *jid, const char *server_name)
{
    (void)irc;
    return the_conn && strcmp(jid, the_conn->jid) == 0 &&
                   strcasecmp(server_name, server.name) == 0
               ? the_conn
               : NULL;
}

int irc_settings_load(irc_t *irc, const char *server_name, const char *jid,
                      irc_user_settings_t *s)
{
    (void)irc, (void)server_name, (void)jid;
    memset(s, 0, sizeof *s);
    return 0;
}

irc_conn_t *irc_conn_new(irc_t *irc, const irc_server_t *srv, const char *jid, const char *nick)
{
    (void)irc, (void)srv, (void)jid, (void)nick;
    fuzz_fail("irc", "a line from IRC opened a new connection");
}

void irc_conn_start(irc_conn_t *conn) { (void)conn; }

void irc_conn_quit(irc_conn_t *conn, const char *reason)
{
    (void)reason;
    conn->closing = 1;
}

/* As irc_conn.c writes a line: it must stay one line. */
int irc_conn_send(irc_conn_t *conn, const char *command, const char *const *params, int n)
{
    (void)conn;
    char line[IRC_LINE_MAX + 1];
    size_t len = irc_format(line, sizeof line, command, params, n);
    if (!len)
        return -1;
    if (len < 2 || strcspn(line, "\r\n") != len - 2 || strlen(line) != len)
        fuzz_fail("irc: line to IRC", "not one line: %s", line);
    return 0;
}

const char *irc_conn_mode_prefix(const irc_conn_t *conn, char mode)
{
    static char out[2];
    const char *at = mode ? strchr(conn->prefix_modes, mode) : NULL;
    if (!at || (size_t)(at - conn->prefix_modes) >= strlen(conn->prefixes))
        return NULL;
    out[0] = conn->prefixes[at - conn->prefix_modes];
    return out;
}

/* ---- the scene: alice is in #chan (announced, two resources) and is
 * joining &new (history on join wanted) ---- */

static irc_room_t *add_room(irc_t *irc, irc_conn_t *conn, const char *name, int joined,
                            const char *const *resources, size_t n)
{
    irc_room_t *room = calloc(1, sizeof *room);
    room->name = strdup(name);
    room->asked_nick = strdup(conn->nick);
    room->short_jid = !joined;
    room->chan = irc_chan_get(irc, server.name, name, conn->casemap);
    room->resources = calloc(n, sizeof *room->resources);
    room->history_max = calloc(n, sizeof *room->history_max);
    room->history_since = calloc(n, sizeof *room->history_since);
    for (size_t i = 0; i < n; i++) {
        room->resources[i] = strdup(resources[i]);
        room->history_max[i] = 20;
    }
    room->nresources = n;
    room->joined = room->announced = joined;
    if (joined)
        room->chan->joined++;
    room->next = conn->rooms;
    conn->rooms = room;
    return room;
}

static int on_line(void *ctx, const char *line, size_t len)
{
    irc_conn_t *conn = ctx;
    irc_msg_t *m = irc_msg_parse(line, len);
    if (!m)
        return 0;
    if (m->nparams > IRC_MAX_PARAMS || !m->command[0])
        fuzz_fail("irc_msg_parse", "%d parameters, command '%s'", m->nparams, m->command);
    bridge_on_line(conn, m);
    free(m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = data[0] + 1u;
    data++, size--;

    irc_t *irc = calloc(1, sizeof *irc);
    irc->comp = (ferry_component_t *)irc; /* never looked into: the stand-ins above */
    irc->history = 1;
    irc->history_on_join = 20;
    irc->history_days = 7;
    irc_conn_t *conn = calloc(1, sizeof *conn);
    the_conn = conn;
    conn->irc = irc;
    conn->server = &server;
    conn->jid = strdup("alice@example.org");
    strcpy(conn->nick, "alice");
    strcpy(conn->wanted_nick, "alice");
    conn->state = IRC_READY;
    conn->registered = conn->welcomed = 1;
    conn->casemap = IRC_CASE_RFC1459;
    strcpy(conn->chantypes, "#&");
    strcpy(conn->prefixes, "~&@%+");
    strcpy(conn->prefix_modes, "qaohv");
    irc->conns = conn;

    static const char *const both[] = {"alice@example.org/phone", "alice@example.org/laptop"};
    static const char *const one[] = {"alice@example.org/phone"};
    irc_room_t *chan = add_room(irc, conn, "#chan", 1, both, 2);
    chan->chan->leader = conn;
    chan->chan->synced = 1;
    irc_chan_add(chan->chan, "alice", "@", conn->casemap);
    irc_chan_add(chan->chan, "bob", "", conn->casemap);
    irc_chan_add(chan->chan, "carol", "+", conn->casemap);
    add_room(irc, conn, "&new", 0, one, 1);

    irc_linebuf_t lb = {0};
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (irc_linebuf_feed(&lb, (const char *)data + off, n, 4096, on_line, conn) < 0)
            break; /* the connection would be dropped: a line over the bound */
    }
    irc_linebuf_free(&lb);

    /* The user goes: every room is left with presences (checked too). */
    bridge_disconnect(conn, "fuzz over", 0);
    if (irc->chans)
        fuzz_fail("irc", "a channel outlived every room in it");
    free(conn->motd);
    free(conn->jid);
    free(conn);
    the_conn = NULL;
    free(irc);
    rows_clear();
    return 0;
}
