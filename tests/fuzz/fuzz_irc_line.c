/* fuzz_irc_line.c: what an IRC server (or anyone on a channel) sends, on
 * any bytes: the real connection code (adapters/irc/irc_conn.c, included
 * below so that its static functions run as they are: PING and its PONG
 * budget, 001, ISUPPORT, SASL) reading lines cut by irc_proto.c, then the
 * real bridge (bridge.c, irc_chan.c, irc_history.c) turning them into
 * presences, messages, subjects, invitations and history replays for a
 * user who is in two rooms. First byte: bit 0 starts the connection still
 * registering with SASL, the rest is the read size.
 *
 * The ORACLE: every stanza the bridge sends is well-formed XML 1.0 with
 * JIDs that parse in 'from' and 'to' (RFC 6120: anything else and the
 * server drops the component for everyone), and every write to the IRC
 * server is whole lines of at most 512 bytes. The core's side of the
 * component, the connection (ferry/net.h), the timers and the store are
 * replaced below by stand-ins that check instead of sending; these
 * definitions take the place of component.c and irc.c, which are then not
 * linked. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Opening and closing connections stay the stand-ins' below (irc.h then
 * declares the included file's own under these names). */
#define irc_conn_new fuzz_unused_irc_conn_new
#define irc_conn_start fuzz_unused_irc_conn_start
#define irc_conn_quit fuzz_unused_irc_conn_quit
#define irc_conn_check fuzz_unused_irc_conn_check
#include "../../adapters/irc/irc.h"
#include "ferry/stanza.h"
#include "oracle.h"

/* The connection and the timers: written lines are checked, timers never
 * fire. */
static int fuzz_net_write(ferry_net_t *net, const void *data, size_t len);
static int fuzz_uv_timer_start(uv_timer_t *handle, uv_timer_cb cb, uint64_t timeout,
                               uint64_t repeat);
static uint64_t fuzz_uv_now(const uv_loop_t *loop);
#define ferry_net_write fuzz_net_write
#define uv_timer_start fuzz_uv_timer_start
#define uv_now fuzz_uv_now
#include "../../adapters/irc/irc_conn.c"
#undef ferry_net_write
#undef uv_timer_start
#undef uv_now
#undef irc_conn_new
#undef irc_conn_start
#undef irc_conn_quit
#undef irc_conn_check

static int fuzz_net_write(ferry_net_t *net, const void *data, size_t len)
{
    (void)net;
    const char *p = data, *end = p + len;
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "to IRC: %.*s", (int)len, p);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (!nl || n < 2 || p[n - 2] != '\r' || memchr(p, '\r', n - 2) || memchr(p, 0, n) ||
            n > IRC_LINE_MAX)
            fuzz_fail("irc: write to IRC", "not whole lines: %.*s", (int)(end - p), p);
        p += n;
    }
    return 0;
}

static int fuzz_uv_timer_start(uv_timer_t *handle, uv_timer_cb cb, uint64_t timeout,
                               uint64_t repeat)
{
    (void)handle, (void)cb, (void)timeout, (void)repeat;
    return 0;
}

static uint64_t clock_ms;

static uint64_t fuzz_uv_now(const uv_loop_t *loop)
{
    (void)loop;
    return clock_ms += 10; /* time moves a little at every look */
}

#define DOMAIN "irc.example.org"

static irc_server_t server = {.name = "irc.example.net", .host = "127.0.0.1", .port = 6667,
                              .realname = "ferry", .throttle_burst = 5, .throttle_rate = 2};
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

uv_loop_t *ferry_component_loop(const ferry_component_t *comp)
{
    (void)comp;
    return NULL; /* only passed to uv_now, replaced above */
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

void ferry_component_send_release(ferry_component_t *comp, xmpp_stanza_t *stanza)
{
    ferry_component_send(comp, stanza);
    xmpp_stanza_release(stanza);
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

/* One instance: every room is archived here. */
struct ferry_history_room {
    ferry_component_t *comp;
    char *room;
};

ferry_history_room_t *ferry_history_room_open(ferry_component_t *comp, const char *room)
{
    ferry_history_room_t *r = malloc(sizeof *r);
    *r = (ferry_history_room_t){comp, strdup(room)};
    return r;
}

int ferry_history_room_add(ferry_history_room_t *r, int64_t ts_ms, const char *nick,
                           const char *body, int64_t *id)
{
    return ferry_history_add(r->comp, r->room, ts_ms, nick, body, id) == 0 ? 1 : -1;
}

void ferry_history_room_close(ferry_history_room_t *r)
{
    if (r)
        free(r->room);
    free(r);
}

int ferry_history_prune(ferry_component_t *comp, int64_t before_ms)
{
    (void)comp;
    (void)before_ms;
    return 0;
}

/* Settings (ferry/settings.h): nothing stored but #chan's encodings (its
 * lines are read in Latin-1 and written in KOI8-R: irc_charset.c), so
 * every other lookup misses. */
int ferry_setting_get(ferry_component_t *comp, const char *ns, const char *key, char **value)
{
    (void)comp;
    static const char chan[] = "irc.example.net\n#chan\n"; /* the key's start: server, channel */
    if (strcmp(ns, "irc-room") == 0 && strncmp(key, chan, sizeof chan - 1) == 0) {
        *value = strdup("-1\n0\nISO-8859-1\nKOI8-R");
        return 0;
    }
    return -1;
}

int ferry_setting_put(ferry_component_t *comp, const char *ns, const char *key, const char *value)
{
    (void)comp, (void)ns, (void)key, (void)value;
    return 0;
}

int ferry_setting_del(ferry_component_t *comp, const char *ns, const char *key)
{
    (void)comp, (void)ns, (void)key;
    return 0;
}

int ferry_setting_list(ferry_component_t *comp, const char *ns, ferry_setting_cb cb, void *arg)
{
    (void)comp, (void)ns, (void)cb, (void)arg;
    return 0;
}

void ferry_setting_flush(ferry_component_t *comp) { (void)comp; }

/* Nobody is an admin, and a stop is never for good. */
int ferry_component_is_admin(const ferry_component_t *comp, const char *jid)
{
    (void)comp, (void)jid;
    return 0;
}

int ferry_component_stopping_for_good(const ferry_component_t *comp)
{
    (void)comp;
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

/* ---- the adapter's own plumbing (irc.c; irc_register.c is linked as it is, over the settings above) ---- */

const irc_server_t *irc_find_server(irc_t *irc, const char *name)
{
    (void)irc;
    return name && strcasecmp(name, server.name) == 0 ? &server : NULL;
}

/* irc.c's, over the stand-in above. */
const irc_server_t *irc_served_server(irc_t *irc, xmpp_stanza_t *st, const char *name,
                                      char *bare, size_t bare_len)
{
    if (!irc_find_server(irc, name)) {
        ferry_component_reply_error(irc->comp, st, "cancel", "not-allowed", "not served here");
        return NULL;
    }
    if (bare)
        ferry_jid_bare_of(xmpp_stanza_get_from(st), bare, bare_len);
    return &server;
}

irc_conn_t *irc_find_conn(irc_t *irc, const char *jid, const char *server_name)
{
    (void)irc;
    return the_conn && strcmp(jid, the_conn->jid) == 0 &&
                   strcasecmp(server_name, server.name) == 0
               ? the_conn
               : NULL;
}

irc_conn_t *irc_conn_new(irc_t *irc, const irc_server_t *srv, const char *jid, const char *nick,
                         const irc_conn_handlers_t *handlers, void *arg)
{
    (void)irc, (void)srv, (void)jid, (void)nick, (void)handlers, (void)arg;
    fuzz_fail("irc", "a line from IRC opened a new connection");
}

void irc_conn_start(irc_conn_t *conn) { (void)conn; }

void irc_conn_quit(irc_conn_t *conn, const char *reason)
{
    (void)reason;
    conn->closing = 1;
}

void irc_conn_add(irc_t *irc, irc_conn_t *conn) { (void)irc, (void)conn; }
void irc_conn_forget(irc_t *irc, irc_conn_t *conn) { (void)irc, (void)conn; }
void irc_conn_freed(irc_t *irc) { (void)irc; }

/* ---- the scene: alice is in #chan (announced, two resources) and is
 * joining &new (history on join wanted) ---- */

static irc_room_t *add_room(irc_t *irc, irc_conn_t *conn, const char *name, int joined,
                            const char *const *resources, size_t n)
{
    irc_room_t *room = calloc(1, sizeof *room);
    ferry_list_init(&room->held);
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

/* Each line once through the parser alone (its contract), then as the
 * connection reads it. */
static int read_line(void *ctx, const char *line, size_t len)
{
    irc_msg_t *m = irc_msg_parse(line, len);
    if (m && (m->nparams > IRC_MAX_PARAMS || !m->command[0]))
        fuzz_fail("irc_msg_parse", "%d parameters, command '%s'", m->nparams, m->command);
    free(m);
    return line_read(ctx, line, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int registering = data[0] & 1;
    size_t chunk = (data[0] >> 1) + 1u;
    data++, size--;

    irc_t *irc = calloc(1, sizeof *irc);
    irc->comp = (ferry_component_t *)irc; /* never looked into: the stand-ins above */
    ferry_list_init(&irc->chans);
    irc->history = 1;
    irc->history_on_join = 20;
    irc->history_days = 7;
    irc_conn_t *conn = calloc(1, sizeof *conn);
    the_conn = conn;
    conn->irc = irc;
    conn->handlers = &irc_bridge_conn_handlers; /* the bridge's, as bridge.c opens it */
    conn->arg = irc;
    conn->server = &server;
    conn->jid = strdup("alice@example.org");
    ferry_list_init(&conn->ctcp_waits);
    ferry_list_init(&conn->listings);
    ferry_list_init(&conn->pm_routes);
    ferry_list_init(&conn->chan_charsets);
    strcpy(conn->nick, "alice");
    strcpy(conn->wanted_nick, "alice");
    conn->net = (ferry_net_t *)conn; /* never looked into: writes reach fuzz_net_write */
    irc_settings_route(&server, &conn->settings, &conn->route); /* as irc_conn_start() */
    conn->tokens = conn->route.burst;
    if (registering) { /* 001 to come, SASL PLAIN under way */
        conn->state = IRC_REGISTERING;
        conn->sasl = 1;
        strcpy(conn->settings.username, "alice");
        strcpy(conn->settings.password, "pencil");
    } else {
        conn->state = IRC_READY;
        conn->registered = conn->welcomed = 1;
    }
    conn->casemap = IRC_CASE_RFC1459;
    strcpy(conn->chantypes, "#&");
    strcpy(conn->prefixes, "~&@%+");
    strcpy(conn->prefix_modes, "qaohv");
    ferry_list_init(&irc->conns);
    ferry_list_insert_head(&irc->conns, &conn->link);

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
        if (irc_linebuf_feed(&lb, (const char *)data + off, n, 4096, read_line, conn) != 0)
            break; /* a line over the bound drops the connection; or it closed */
    }
    irc_linebuf_free(&lb);

    /* The user goes: every room is left with presences (checked too). */
    irc_bridge_disconnect(conn, "fuzz over", 0);
    conn->net = NULL;
    drop_socket(conn); /* frees what waits in the flood control queue */
    free(conn->queue);
    irc_charset_close(conn);
    if (!ferry_list_empty(&irc->chans))
        fuzz_fail("irc", "a channel outlived every room in it");
    free(conn->motd);
    free(conn->jid);
    free(conn);
    the_conn = NULL;
    free(irc);
    rows_clear();
    return 0;
}
