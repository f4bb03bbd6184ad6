/* irc_history.c: channel archives: recorded once per channel message
 * however many local users see it (irc_ids.c decides who records, and the
 * archive id is the message's XEP-0359 stanza-id) and however many
 * instances have users in it (ferry_history_room_add()), replayed on join as
 * XEP-0045 asks (<history maxstanzas seconds since/>), and served to MAM
 * queries (XEP-0313) with XEP-0059 paging. Writes go into the store's
 * batched transactions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/alloc.h"
#include "irc.h"

#define NS_MAM "urn:xmpp:mam:2"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_DATA "jabber:x:data"
#define MAM_PAGE 100
#define PRUNE_EVERY 1000

/* ---- times (XEP-0082) ---- */

static void stamp(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* "2026-11-21T12:00:00Z", with optional fraction and offset; 0 when bad. */
static int64_t parse_stamp(const char *s)
{
    struct tm tm = {0};
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return 0;
    int64_t ms = (int64_t)timegm(&tm) * 1000;
    if (*rest == '.') {
        int64_t frac = 0, scale = 1000;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
            if (scale > 1) {
                scale /= 10;
                frac += (*rest - '0') * scale;
            }
        }
        ms += frac;
    }
    if ((*rest == '+' || *rest == '-') && strlen(rest) >= 6) {
        int h = (rest[1] - '0') * 10 + (rest[2] - '0'), m = (rest[4] - '0') * 10 + (rest[5] - '0');
        int64_t off = ((int64_t)h * 60 + m) * 60000;
        ms += *rest == '+' ? -off : off;
    }
    return ms;
}

/* ---- recording ---- */

/* Folded with rfc1459 always, so that a MAM query, which may come with no
 * connection to ask the server's CASEMAPPING, finds the same key. */
static void room_key(const char *server, const char *channel, char *buf, size_t len)
{
    char folded[IRC_NAME_MAX];
    irc_casefold(IRC_CASE_RFC1459, channel, folded, sizeof folded);
    snprintf(buf, len, "%s %s", server, folded);
}

void irc_history_stop(irc_chan_t *chan)
{
    ferry_history_room_close(chan->archive);
    chan->archive = NULL;
}

void irc_history_room_key(irc_conn_t *conn, irc_room_t *room, char *buf, size_t len)
{
    room_key(conn->server->name, room->chan->name, buf, len);
}

int64_t irc_history_record(irc_conn_t *conn, irc_room_t *room, const char *nick, const char *body)
{
    irc_t *irc = conn->irc;
    irc_chan_t *chan = room->chan;
    /* One archive per channel, shared by its local users: kept while one
     * of them records it (record_history), and by one instance of several
     * (ferry/history.h): elsewhere, the message has no archive id. */
    if (!irc->history || !chan->recorders)
        return 0;
    if (!chan->archive) {
        char key[IRC_NAME_MAX * 2];
        irc_history_room_key(conn, room, key, sizeof key);
        chan->archive = ferry_history_room_open(irc->comp, key);
    }
    int64_t now = ferry_now_ms(), id = 0;
    if (ferry_history_room_add(chan->archive, now, nick, body, &id) != 1)
        return 0;
    if (++irc->archived >= PRUNE_EVERY) {
        irc->archived = 0;
        ferry_history_prune(irc->comp, now - irc->history_days * 86400000);
    }
    return id;
}

/* ---- history on join ---- */

void irc_history_request(irc_t *irc, xmpp_stanza_t *presence, int *max, int64_t *since)
{
    irc_user_options_t u;
    char bare[2100];
    ferry_jid_bare_of(xmpp_stanza_get_from(presence), bare, sizeof bare);
    irc_user_options_load(irc, bare, &u); /* max_history_length of the configure form */
    if (!irc->history)
        *max = 0;
    else if (u.max_history >= 0)
        *max = u.max_history > MAM_PAGE ? MAM_PAGE : u.max_history;
    else
        *max = (int)irc->history_on_join;
    *since = 0;
    xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(presence, "x", NS_MUC);
    xmpp_stanza_t *h = x ? xmpp_stanza_get_child_by_name(x, "history") : NULL;
    if (!h)
        return;
    const char *maxstanzas = xmpp_stanza_get_attribute(h, "maxstanzas");
    const char *maxchars = xmpp_stanza_get_attribute(h, "maxchars");
    const char *seconds = xmpp_stanza_get_attribute(h, "seconds");
    const char *since_text = xmpp_stanza_get_attribute(h, "since");
    if (maxstanzas) {
        long n = strtol(maxstanzas, NULL, 10);
        *max = n < 0 ? 0 : n > MAM_PAGE ? MAM_PAGE : (int)n;
    }
    if (maxchars && strtol(maxchars, NULL, 10) == 0)
        *max = 0; /* XEP-0045: maxchars='0' means no history */
    if (seconds)
        *since = ferry_now_ms() - strtol(seconds, NULL, 10) * 1000;
    if (since_text) {
        int64_t t = parse_stamp(since_text);
        if (t > *since)
            *since = t;
    }
}

typedef struct rows {
    int64_t *id, *ts;
    char **nick, **body;
    size_t n, cap;
} rows_t;

static void collect(void *arg, int64_t id, int64_t ts, const char *nick, const char *body)
{
    rows_t *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->id = ferry_realloc(r->id, r->cap * sizeof *r->id);
        r->ts = ferry_realloc(r->ts, r->cap * sizeof *r->ts);
        r->nick = ferry_realloc(r->nick, r->cap * sizeof *r->nick);
        r->body = ferry_realloc(r->body, r->cap * sizeof *r->body);
    }
    r->id[r->n] = id;
    r->ts[r->n] = ts;
    r->nick[r->n] = ferry_strdup(nick);
    r->body[r->n] = ferry_strdup(body);
    r->n++;
}

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->nick[i]);
        free(r->body[i]);
    }
    free(r->id);
    free(r->ts);
    free(r->nick);
    free(r->body);
}

/* Row I of R, oldest first whatever order it was read in. */
static size_t chrono(const rows_t *r, size_t i, int newest_first)
{
    return newest_first ? r->n - 1 - i : i;
}

/* An archived message; with TO, addressed and with its XEP-0203 delay (as
 * history on join sends it), without, bare (as MAM forwards it). */
static xmpp_stanza_t *archived_message(irc_t *irc, const char *room_jid, int64_t id,
                                       const char *nick, int64_t ts, const char *body,
                                       const char *to)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(irc->comp);
    char from[1500], when[40], sid[32];
    /* A row whose nick cannot be a resource (empty, or with controls,
     * stored before such lines were ignored) comes from the room itself:
     * "room/" is no JID, and the server would drop the link over it. */
    if (irc_nick_usable(nick))
        snprintf(from, sizeof from, "%s/%s", room_jid, nick);
    else
        snprintf(from, sizeof from, "%s", room_jid);
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, "groupchat", to, sid);
    xmpp_stanza_set_from(msg, from);
    ferry_stanza_add_text(msg, "body", body);
    /* The id it had when it was live (XEP-0359): clients drop what they
     * already have. */
    xmpp_stanza_t *stanza_id = ferry_stanza_add(msg, "stanza-id", "urn:xmpp:sid:0");
    xmpp_stanza_set_attribute(stanza_id, "by", room_jid);
    xmpp_stanza_set_attribute(stanza_id, "id", sid);
    if (!to)
        return msg;
    stamp(ts, when, sizeof when);
    xmpp_stanza_t *delay = ferry_stanza_add(msg, "delay", "urn:xmpp:delay");
    xmpp_stanza_set_attribute(delay, "from", room_jid);
    xmpp_stanza_set_attribute(delay, "stamp", when);
    return msg;
}

void irc_history_replay(irc_conn_t *conn, irc_room_t *room, size_t resource)
{
    irc_t *irc = conn->irc;
    int max = room->history_max[resource];
    if (!irc->history || max <= 0)
        return;
    char key[IRC_NAME_MAX * 2], room_addr[1400];
    irc_history_room_key(conn, room, key, sizeof key);
    irc_bridge_room_jid(conn, room, NULL, room_addr, sizeof room_addr);
    ferry_history_query_t q = {.start_ms = room->history_since[resource], .limit = max,
                               .newest_first = 1};
    rows_t r = {0};
    ferry_history_query(irc->comp, key, &q, collect, &r);
    for (size_t i = 0; i < r.n; i++) {
        size_t k = chrono(&r, i, 1);
        xmpp_stanza_t *msg = archived_message(irc, room_addr, r.id[k], r.nick[k], r.ts[k],
                                              r.body[k], room->resources[resource]);
        ferry_component_send_release(irc->comp, msg);
    }
    rows_free(&r);
}

/* ---- MAM (XEP-0313) ---- */

static const char *child_text(xmpp_stanza_t *parent, const char *name)
{
    xmpp_stanza_t *el = parent ? xmpp_stanza_get_child_by_name(parent, name) : NULL;
    xmpp_stanza_t *t = el ? xmpp_stanza_get_children(el) : NULL;
    return t ? xmpp_stanza_get_text_ptr(t) : el ? "" : NULL;
}

static void send_result(irc_t *irc, xmpp_stanza_t *iq, const char *queryid, const char *room_jid,
                        int64_t id, int64_t ts, const char *nick, const char *body)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(irc->comp);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, NULL, xmpp_stanza_get_from(iq), NULL);
    xmpp_stanza_set_from(msg, room_jid);
    xmpp_stanza_t *result = ferry_stanza_add(msg, "result", NS_MAM);
    if (queryid)
        xmpp_stanza_set_attribute(result, "queryid", queryid);
    xmpp_stanza_set_id(result, idtext);
    xmpp_stanza_t *fwd = ferry_stanza_add(result, "forwarded", "urn:xmpp:forward:0");
    /* The delay goes on <forwarded/>, not on the archived message. */
    char when[40];
    stamp(ts, when, sizeof when);
    xmpp_stanza_set_attribute(ferry_stanza_add(fwd, "delay", "urn:xmpp:delay"), "stamp", when);
    xmpp_stanza_t *inner = archived_message(irc, room_jid, id, nick, ts, body, NULL);
    xmpp_stanza_set_ns(inner, "jabber:client"); /* XEP-0297: not the forward namespace */
    xmpp_stanza_add_child_ex(fwd, inner, 0);
    ferry_component_send_release(irc->comp, msg);
}

static void send_fin(irc_t *irc, xmpp_stanza_t *iq, const rows_t *r, int newest_first,
                     int complete)
{
    xmpp_stanza_t *res = ferry_iq_result(iq, NULL, NULL);
    xmpp_stanza_t *fin = ferry_stanza_add(res, "fin", NS_MAM);
    if (complete)
        xmpp_stanza_set_attribute(fin, "complete", "true");
    xmpp_stanza_t *set = ferry_stanza_add(fin, "set", NS_RSM);
    if (r->n) {
        char first[32], last[32];
        snprintf(first, sizeof first, "%lld", (long long)r->id[chrono(r, 0, newest_first)]);
        snprintf(last, sizeof last, "%lld", (long long)r->id[chrono(r, r->n - 1, newest_first)]);
        ferry_stanza_add_text(set, "first", first);
        ferry_stanza_add_text(set, "last", last);
    }
    ferry_component_send_release(irc->comp, res);
}

/* Whether the archive of KEY holds the message ID (as a stanza-id gave it:
 * "N", or "N.k" for the k-th line of a message IRC got split). */
static int archive_has(irc_t *irc, const char *key, const char *id, int64_t *out)
{
    char *end;
    long long n = strtoll(id, &end, 10);
    if (end == id || n <= 0 || (*end && *end != '.'))
        return 0;
    ferry_history_query_t q = {.after_id = n - 1, .before_id = n + 1, .limit = 1};
    rows_t r = {0};
    int found = ferry_history_query(irc->comp, key, &q, collect, &r) == 1;
    rows_free(&r);
    *out = n;
    return found;
}

int irc_history_mam(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_MAM);
    const char *type = xmpp_stanza_get_type(iq);
    if (!q || !type || to->kind != IRC_JID_CHANNEL || to->nick[0])
        return 0;
    if (strcmp(type, "get") == 0) { /* the form of fields we filter on */
        xmpp_stanza_t *out;
        xmpp_stanza_t *res = ferry_iq_result(iq, NS_MAM, &out);
        xmpp_stanza_t *x = ferry_stanza_add(out, "x", NS_DATA);
        xmpp_stanza_set_type(x, "form");
        static const char *const vars[] = {"FORM_TYPE", "start", "end"};
        for (size_t i = 0; i < 3; i++)
            ferry_form_add_field(x, vars[i], i ? "text-single" : "hidden", NULL, i ? NULL : NS_MAM);
        ferry_component_send_release(irc->comp, res);
        return 1;
    }
    if (!irc->history) {
        ferry_component_reply_error(irc->comp, iq, "cancel", "feature-not-implemented",
                                    "this gateway keeps no channel history");
        return 1;
    }
    const irc_server_t *server = irc_find_server(irc, to->server);
    if (!server) {
        ferry_component_reply_error(irc->comp, iq, "cancel", "not-allowed",
                                    "this IRC server is not served here");
        return 1;
    }
    xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(q, "x", NS_DATA);
    xmpp_stanza_t *set = xmpp_stanza_get_child_by_name_and_ns(q, "set", NS_RSM);
    const char *max = child_text(set, "max"), *after = child_text(set, "after");
    const char *before = child_text(set, "before");
    char key[IRC_NAME_MAX * 2], room_addr[1400];
    room_key(server->name, to->channel, key, sizeof key);
    ferry_history_query_t hq = {
        .start_ms = parse_stamp(ferry_form_value(x, "start")),
        .end_ms = parse_stamp(ferry_form_value(x, "end")),
        /* Without <max/>, a page of MAM_PAGE: never the whole archive. */
        .limit = max ? strtoll(max, NULL, 10) : MAM_PAGE,
        /* <before/> (empty or not) pages backwards: the newest first. */
        .newest_first = before != NULL,
    };
    if ((after && *after && !archive_has(irc, key, after, &hq.after_id)) ||
        (before && *before && !archive_has(irc, key, before, &hq.before_id))) {
        /* XEP-0313 section 6.2: paging from an id the archive lacks. */
        ferry_component_reply_error(irc->comp, iq, "cancel", "item-not-found",
                                    "no message with this id in the archive");
        return 1;
    }
    if (hq.limit < 0 || hq.limit > MAM_PAGE)
        hq.limit = MAM_PAGE;
    if (to->implicit_server)
        irc_jid_room(room_addr, sizeof room_addr, to->channel, NULL,
                     ferry_component_domain(irc->comp));
    else
        irc_jid_room(room_addr, sizeof room_addr, to->channel, server->name,
                     ferry_component_domain(irc->comp));
    /* One more than asked tells whether the page is the last. */
    int64_t asked = hq.limit;
    hq.limit = asked + 1;
    rows_t r = {0};
    if (ferry_history_query(irc->comp, key, &hq, collect, &r) < 0) {
        ferry_component_reply_error(irc->comp, iq, "wait", "internal-server-error",
                                    "the archive could not be read");
        return 1;
    }
    int complete = (int64_t)r.n <= asked;
    if (!complete) { /* drop the extra row, which is the farthest from the start */
        r.n--;
        free(r.nick[r.n]);
        free(r.body[r.n]);
    }
    const char *queryid = xmpp_stanza_get_attribute(q, "queryid");
    for (size_t i = 0; i < r.n; i++) {
        size_t k = chrono(&r, i, hq.newest_first);
        send_result(irc, iq, queryid, room_addr, r.id[k], r.ts[k], r.nick[k], r.body[k]);
    }
    send_fin(irc, iq, &r, hq.newest_first, complete);
    rows_free(&r);
    return 1;
}
