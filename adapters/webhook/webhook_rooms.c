/* webhook_rooms.c: an endpoint's group chats (XEP-0045). The endpoint JID
 * ENDPOINT@domain/ferry joins each configured room as an occupant, says
 * there what is POSTed to the endpoint, and stays joined: it rejoins after a
 * link drop, a server restart or a kick (with backoff), takes NICK_ on a nick
 * conflict, and checks with XEP-0410 self-pings that it is still in. A ban
 * or a room that is gone is logged, counted and not retried until a reload.
 *
 * What is said goes through the network outbox (one conversation per room,
 * so in order): the outbox hands a message over; it is held until the room
 * is joined (the self-presence with status 110), then said, and marked done
 * only when the room reflects it back (every XEP-0045 room echoes a
 * groupchat message to its sender, with our origin-id): that echo is the
 * proof the room took it. A message said when the link dropped before its
 * echo is said again after the rejoin (at least once, as the outboxes are).
 *
 * One timer serves every room's deadlines (rejoin, join and echo timeouts,
 * self-pings) and runs only while some room has one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ferry/alloc.h"
#include "ferry/backoff.h"
#include "webhook_rooms.h"

#define RESOURCE "ferry"
#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_XDATA "jabber:x:data"
#define NS_PING "urn:xmpp:ping"
#define NS_DELAY "urn:xmpp:delay"
#define NS_SID "urn:xmpp:sid:0"
#define NS_REFERENCE "urn:xmpp:reference:0"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

#define JOIN_TIMEOUT_MS 30000
#define ECHO_TIMEOUT_MS 30000
#define PING_TIMEOUT_MS 30000
#define BACKOFF_MIN_MS 2000
#define BACKOFF_MAX_MS 300000
#define MAX_NICK_TRIES 4 /* NICK_ .. NICK____ before backing off */

/* A room message as kept in the outbox. */
#define ROOM_RECORD "r1"
#define ROOM_FIELDS 5 /* version, endpoint, room, stanza id, text */

static const char *const room_message_modes[] = {"none", "mentions", "all", NULL};

/* ---- config ---- */

static int valid_nick(const char *nick)
{
    if (!*nick || strlen(nick) > 1023)
        return 0;
    for (const char *p = nick; *p; p++)
        if ((unsigned char)*p < 0x20)
            return 0;
    return 1;
}

int webhook_room_conf_read(const ferry_conf_t *t, const char *name, int has_url, room_conf_t *rc)
{
    int bad = 0;
    const char *nick = name, *mode = "none";
    memset(rc, 0, sizeof *rc);
    bad |= ferry_conf_strings(t, "rooms", FERRY_CONF_OPTIONAL, &rc->rooms) < 0;
    ferry_jid_t j;
    for (char **p = rc->rooms; p && *p; p++) {
        if (ferry_jid_parse(*p, &j) != 0 || !j.local[0] || j.resource[0]) {
            ferry_conf_error(t, "rooms", "\"%s\" is not a room JID (room@service)", *p);
            bad = 1;
        }
    }
    if (ferry_conf_string(t, "nick", FERRY_CONF_OPTIONAL, &nick) < 0) {
        bad = 1;
    } else if (!valid_nick(nick)) {
        ferry_conf_error(t, "nick", "must be 1 to 1023 bytes without control characters");
        bad = 1;
    }
    rc->nick = ferry_strdup(nick);
    bad |= ferry_conf_secret(t, "room_password", FERRY_CONF_OPTIONAL, &rc->password) < 0;
    if (ferry_conf_enum(t, "room_messages", FERRY_CONF_OPTIONAL, room_message_modes, &mode) < 0)
        bad = 1;
    rc->messages = strcmp(mode, "all") == 0        ? ROOM_MESSAGES_ALL
                   : strcmp(mode, "mentions") == 0 ? ROOM_MESSAGES_MENTIONS
                                                   : ROOM_MESSAGES_NONE;
    if (rc->messages != ROOM_MESSAGES_NONE && !has_url) {
        ferry_conf_error(t, "room_messages", "needs 'url' (where room messages are POSTed)");
        bad = 1;
    }
    return bad ? -1 : 0;
}

void webhook_room_conf_free(room_conf_t *rc)
{
    ferry_conf_strings_free(rc->rooms);
    free(rc->nick);
    free(rc->password);
    memset(rc, 0, sizeof *rc);
}

int webhook_room_conf_any(const room_conf_t *rc) { return rc->rooms && rc->rooms[0]; }

/* ---- state ---- */

enum room_state {
    R_OFF,     /* link down, or not started */
    R_WAIT,    /* backing off before the next join */
    R_JOINING, /* join presence sent */
    R_JOINED,  /* the self-presence (110) arrived */
    R_GONE     /* banned, destroyed or refused: not retried until reload */
};

/* The message of a room's conversation the outbox handed over. */
typedef struct say {
    int64_t id;
    char *buf; /* the record; owns stanza_id and text */
    const char *stanza_id, *text;
    int sent;  /* written on the link; its echo is awaited */
    uint64_t echo_deadline;
} say_t;

typedef struct room {
    struct room *next;
    rooms_t *owner;
    char *endpoint, *jid, *nick, *password;
    int messages;
    char occupant[1100]; /* ENDPOINT@domain/ferry: who joins */
    char *cur_nick;      /* the nick in use or being tried */
    int nick_tries;
    enum room_state state;
    int joined_before;   /* a join now is a rejoin */
    int backoff;         /* removals since the last good self-ping */
    int mark;            /* reconfiguration: not seen yet */
    uint64_t rejoin_at, join_deadline, ping_at, ping_deadline;
    char ping_id[48];
    unsigned ping_seq;
    say_t *say;
} room_t;

struct rooms {
    ferry_component_t *comp;
    rooms_post_cb post;
    void *post_arg;
    room_t *rooms;
    uint64_t ping_interval_ms;
    uv_timer_t timer;
    int started, stopping, link_up;
    unsigned long long rejoins, said, lost, pings_ok;
};

static const char *scope(const rooms_t *r) { return ferry_component_name(r->comp); }
static uint64_t now_ms(const rooms_t *r) { return uv_now(ferry_component_loop(r->comp)); }
static xmpp_ctx_t *ctx_of(const rooms_t *r) { return ferry_component_xmpp(r->comp); }

static void set_nick(room_t *rm, const char *nick)
{
    free(rm->cur_nick);
    rm->cur_nick = ferry_strdup(nick);
}

static void occupant_jid(const room_t *rm, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", rm->jid, rm->cur_nick);
}

static void say_free(say_t *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

/* ---- the timer ---- */

static void on_timer(uv_timer_t *t);

static void consider(uint64_t *next, uint64_t at)
{
    if (at && (!*next || at < *next))
        *next = at;
}

/* Arms the timer for the earliest deadline of any room, or stops it. */
static void schedule(rooms_t *r)
{
    if (!r->started || r->stopping)
        return;
    uint64_t next = 0;
    for (room_t *rm = r->rooms; rm; rm = rm->next) {
        if (rm->state == R_WAIT)
            consider(&next, rm->rejoin_at);
        if (rm->state == R_JOINING)
            consider(&next, rm->join_deadline);
        if (rm->state == R_JOINED) {
            consider(&next, rm->ping_deadline ? rm->ping_deadline : rm->ping_at);
            if (rm->say && rm->say->sent)
                consider(&next, rm->say->echo_deadline);
        }
    }
    if (!next) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t now = now_ms(r);
    uv_timer_start(&r->timer, on_timer, next > now ? next - now : 0, 0);
}

/* ---- stanzas we send ---- */

static void send_join(room_t *rm)
{
    rooms_t *r = rm->owner;
    xmpp_ctx_t *ctx = ctx_of(r);
    char to[3200];
    occupant_jid(rm, to, sizeof to);
    xmpp_stanza_t *p = xmpp_presence_new(ctx);
    xmpp_stanza_set_from(p, rm->occupant);
    xmpp_stanza_set_to(p, to);
    xmpp_stanza_t *x = ferry_stanza_add(p, "x", NS_MUC);
    /* History is not ours to repeat: only what is said from now on. */
    xmpp_stanza_set_attribute(ferry_stanza_add(x, "history", NULL), "maxchars", "0");
    if (rm->password)
        ferry_stanza_add_text(x, "password", rm->password);
    ferry_component_send_release(r->comp, p);
    rm->state = R_JOINING;
    rm->join_deadline = now_ms(r) + JOIN_TIMEOUT_MS;
    rm->ping_deadline = 0;
    if (rm->say)
        rm->say->sent = 0;
    ferry_log_debug(scope(r), "joining %s as %s", rm->jid, rm->cur_nick);
}

static void send_leave(room_t *rm)
{
    rooms_t *r = rm->owner;
    if (!r->link_up || (rm->state != R_JOINED && rm->state != R_JOINING))
        return;
    char to[3200];
    occupant_jid(rm, to, sizeof to);
    xmpp_stanza_t *p = xmpp_presence_new(ctx_of(r));
    xmpp_stanza_set_type(p, "unavailable");
    xmpp_stanza_set_from(p, rm->occupant);
    xmpp_stanza_set_to(p, to);
    ferry_component_send_release(r->comp, p);
}

static void say_send(room_t *rm)
{
    rooms_t *r = rm->owner;
    say_t *s = rm->say;
    xmpp_stanza_t *msg = xmpp_message_new(ctx_of(r), "groupchat", rm->jid, s->stanza_id);
    xmpp_stanza_set_from(msg, rm->occupant);
    ferry_stanza_add_text(msg, "body", s->text);
    /* XEP-0359: the room keeps it in the echo, whatever it does to 'id'. */
    xmpp_stanza_set_id(ferry_stanza_add(msg, "origin-id", NS_SID), s->stanza_id);
    ferry_component_send_release(r->comp, msg);
    s->sent = 1;
    s->echo_deadline = now_ms(r) + ECHO_TIMEOUT_MS;
}

/* XEP-0045 §10.1.2: a room we created is locked until configured; accept
 * the default configuration ("instant room"). */
static void unlock_room(room_t *rm)
{
    rooms_t *r = rm->owner;
    xmpp_ctx_t *ctx = ctx_of(r);
    char *id = xmpp_uuid_gen(ctx);
    xmpp_stanza_t *iq = xmpp_iq_new(ctx, "set", id);
    xmpp_stanza_set_from(iq, rm->occupant);
    xmpp_stanza_set_to(iq, rm->jid);
    xmpp_stanza_t *q = ferry_stanza_add(iq, "query", NS_MUC_OWNER);
    xmpp_stanza_set_type(ferry_stanza_add(q, "x", NS_XDATA), "submit");
    ferry_component_send_release(r->comp, iq);
    xmpp_free(ctx, id);
}

static void send_self_ping(room_t *rm)
{
    rooms_t *r = rm->owner;
    char to[3200];
    occupant_jid(rm, to, sizeof to);
    snprintf(rm->ping_id, sizeof rm->ping_id, "ferry-selfping-%u", ++rm->ping_seq);
    xmpp_stanza_t *iq = xmpp_iq_new(ctx_of(r), "get", rm->ping_id);
    xmpp_stanza_set_from(iq, rm->occupant);
    xmpp_stanza_set_to(iq, to);
    ferry_stanza_add(iq, "ping", NS_PING);
    ferry_component_send_release(r->comp, iq);
    rm->ping_deadline = now_ms(r) + PING_TIMEOUT_MS;
}

/* ---- state changes ---- */

static void start_join(room_t *rm)
{
    set_nick(rm, rm->nick);
    rm->nick_tries = 0;
    send_join(rm);
}

static void joined(room_t *rm, const char *nick)
{
    rooms_t *r = rm->owner;
    set_nick(rm, nick); /* the service may have changed it (status 210) */
    rm->state = R_JOINED;
    rm->join_deadline = 0;
    rm->ping_deadline = 0;
    rm->ping_at = now_ms(r) + r->ping_interval_ms;
    if (rm->joined_before)
        r->rejoins++;
    ferry_log_info(scope(r), "%s %s as %s", rm->joined_before ? "rejoined" : "joined", rm->jid,
                   rm->cur_nick);
    rm->joined_before = 1;
    if (rm->say && !rm->say->sent)
        say_send(rm);
}

static void rejoin_later(room_t *rm, const char *why)
{
    rooms_t *r = rm->owner;
    /* The delays as they always were, without jitter. */
    uint64_t delay = ferry_backoff_ceiling_ms((unsigned)rm->backoff, BACKOFF_MIN_MS,
                                              BACKOFF_MAX_MS);
    rm->backoff++;
    rm->state = R_WAIT;
    rm->rejoin_at = now_ms(r) + delay;
    if (rm->say)
        rm->say->sent = 0;
    ferry_log_warn(scope(r), "out of %s (%s): joining again in %.0f s", rm->jid, why,
                   (double)delay / 1000);
}

static void fail_say(room_t *rm, const char *why)
{
    if (!rm->say)
        return;
    char text[600];
    snprintf(text, sizeof text, "not said in %s: %s", rm->jid, why);
    ferry_outbox_fail(rm->owner->comp, rm->say->id, text);
    say_free(rm->say);
    rm->say = NULL;
}

/* Banned, destroyed, refused: retrying cannot help until the configuration
 * changes. */
static void give_up(room_t *rm, const char *why)
{
    rooms_t *r = rm->owner;
    rm->state = R_GONE;
    r->lost++;
    ferry_log_error(scope(r), "left %s for good: %s (not retried until a reload)", rm->jid, why);
    fail_say(rm, why);
}

/* ---- reading stanzas ---- */

static xmpp_stanza_t *child_ns(xmpp_stanza_t *st, const char *name, const char *ns)
{
    return xmpp_stanza_get_child_by_name_and_ns(st, name, ns);
}

static int has_status(xmpp_stanza_t *x, const char *code)
{
    for (xmpp_stanza_t *c = x ? xmpp_stanza_get_children(x) : NULL; c; c = xmpp_stanza_get_next(c)) {
        const char *name = xmpp_stanza_get_name(c), *v = xmpp_stanza_get_attribute(c, "code");
        if (name && strcmp(name, "status") == 0 && v && strcmp(v, code) == 0)
            return 1;
    }
    return 0;
}

/* The defined condition of an error stanza ("" when none). */
static const char *error_condition(xmpp_stanza_t *st)
{
    xmpp_stanza_t *err = xmpp_stanza_get_child_by_name(st, "error");
    for (xmpp_stanza_t *c = err ? xmpp_stanza_get_children(err) : NULL; c; c = xmpp_stanza_get_next(c)) {
        const char *ns = xmpp_stanza_get_ns(c), *name = xmpp_stanza_get_name(c);
        if (name && ns && strcmp(ns, NS_STANZAS) == 0 && strcmp(name, "text") != 0)
            return name;
    }
    return "";
}

/* The room addressed by ST: its sender's bare JID, for the endpoint in its
 * 'to'; NICK gets the sender's resource. */
static room_t *room_of(rooms_t *r, xmpp_stanza_t *st, ferry_jid_t *from)
{
    ferry_jid_t to;
    if (!r->rooms || ferry_jid_parse(xmpp_stanza_get_to(st), &to) != 0 || !to.local[0] ||
        ferry_jid_parse(xmpp_stanza_get_from(st), from) != 0 || !from->local[0])
        return NULL;
    char bare[2100];
    ferry_jid_bare(from, bare, sizeof bare);
    for (room_t *rm = r->rooms; rm; rm = rm->next)
        if (strcmp(rm->endpoint, to.local) == 0 && strcmp(rm->jid, bare) == 0)
            return rm;
    return NULL;
}

/* The configured nick followed by nothing but the underscores a conflict
 * added: ferry itself, maybe under a nick of an earlier session. */
static int own_nick(const room_t *rm, const char *nick)
{
    size_t n = strlen(rm->nick);
    if (strncmp(nick, rm->nick, n) != 0)
        return 0;
    for (nick += n; *nick == '_'; nick++)
        ;
    return *nick == 0;
}

/* Said by ferry: by this endpoint or by another one in the same room. */
static int from_ferry(const rooms_t *r, const room_t *rm, const char *nick)
{
    for (const room_t *x = r->rooms; x; x = x->next)
        if ((x == rm || strcmp(x->jid, rm->jid) == 0) && own_nick(x, nick))
            return 1;
    return 0;
}

/* ---- presence ---- */

static void on_join_error(room_t *rm, xmpp_stanza_t *st)
{
    const char *cond = error_condition(st);
    if (strcmp(cond, "conflict") == 0) {
        if (++rm->nick_tries <= MAX_NICK_TRIES) {
            char nick[1100];
            snprintf(nick, sizeof nick, "%s%.*s", rm->nick, rm->nick_tries, "________");
            ferry_log_info(scope(rm->owner), "nick %s is taken in %s: trying %s", rm->cur_nick,
                           rm->jid, nick);
            set_nick(rm, nick);
            send_join(rm);
        } else {
            rejoin_later(rm, "every nick tried is taken");
        }
    } else if (strcmp(cond, "forbidden") == 0) {
        give_up(rm, "banned from the room (forbidden)");
    } else if (strcmp(cond, "item-not-found") == 0 || strcmp(cond, "gone") == 0) {
        give_up(rm, "the room does not exist (item-not-found)");
    } else if (strcmp(cond, "not-authorized") == 0) {
        give_up(rm, rm->password ? "wrong room_password (not-authorized)"
                                 : "the room needs a password: set room_password (not-authorized)");
    } else if (strcmp(cond, "registration-required") == 0) {
        give_up(rm, "the room is members-only (registration-required)");
    } else if (strcmp(cond, "not-allowed") == 0) {
        give_up(rm, "the room cannot be created by ferry (not-allowed)");
    } else if (strcmp(cond, "jid-malformed") == 0 || strcmp(cond, "not-acceptable") == 0) {
        give_up(rm, "the nick is refused by the room");
    } else {
        char why[200];
        snprintf(why, sizeof why, "join refused: %s", *cond ? cond : "no condition");
        rejoin_later(rm, why); /* service-unavailable (full room) and the like */
    }
}

static void on_self_unavailable(room_t *rm, xmpp_stanza_t *x)
{
    if (has_status(x, "303"))
        return; /* a nick change: the new nick's presence follows */
    if (x && xmpp_stanza_get_child_by_name(x, "destroy"))
        give_up(rm, "the room was destroyed");
    else if (has_status(x, "301"))
        give_up(rm, "banned from the room");
    else if (has_status(x, "307"))
        rejoin_later(rm, "kicked");
    else if (has_status(x, "332"))
        rejoin_later(rm, "the room service is shutting down");
    else
        rejoin_later(rm, "removed from the room");
}

int webhook_rooms_on_presence(rooms_t *r, xmpp_stanza_t *st)
{
    ferry_jid_t from;
    room_t *rm = room_of(r, st, &from);
    if (!rm)
        return 0;
    if (r->stopping || rm->state == R_GONE || rm->state == R_OFF)
        return 1;
    const char *type = xmpp_stanza_get_type(st);
    xmpp_stanza_t *x = child_ns(st, "x", NS_MUC_USER);
    int self = has_status(x, "110") || strcmp(from.resource, rm->cur_nick) == 0;
    if (type && strcmp(type, "error") == 0) {
        if (rm->state == R_JOINING)
            on_join_error(rm, st);
    } else if (!self) {
        /* other occupants: nothing to keep */
    } else if (type && strcmp(type, "unavailable") == 0) {
        if (rm->state == R_JOINED || rm->state == R_JOINING)
            on_self_unavailable(rm, x);
    } else if (!type && rm->state == R_JOINING) {
        if (has_status(x, "201"))
            unlock_room(rm);
        joined(rm, from.resource);
    }
    schedule(r);
    return 1;
}

/* ---- messages ---- */

static int is_echo(const say_t *s, xmpp_stanza_t *st)
{
    if (!s || !s->sent)
        return 0;
    const char *id = xmpp_stanza_get_id(st);
    if (id && strcmp(id, s->stanza_id) == 0)
        return 1;
    xmpp_stanza_t *origin = child_ns(st, "origin-id", NS_SID);
    id = origin ? xmpp_stanza_get_attribute(origin, "id") : NULL;
    return id && strcmp(id, s->stanza_id) == 0;
}

static void on_said(room_t *rm)
{
    rooms_t *r = rm->owner;
    ferry_outbox_done(r->comp, rm->say->id);
    r->said++;
    say_free(rm->say);
    rm->say = NULL;
}

/* Our message came back as an error. */
static void on_say_error(room_t *rm, xmpp_stanza_t *st)
{
    rooms_t *r = rm->owner;
    const char *cond = error_condition(st);
    if (strcmp(cond, "not-acceptable") == 0 || strcmp(cond, "item-not-found") == 0) {
        /* Not (or no longer) an occupant: join, then say it again. */
        ferry_log_warn(scope(r), "%s says ferry is not in it (%s): joining again", rm->jid, cond);
        start_join(rm);
    } else if (strcmp(cond, "forbidden") == 0) {
        ferry_log_warn(scope(r), "%s refused a message (forbidden: no voice?)", rm->jid);
        fail_say(rm, "the room refused it (forbidden)");
    } else {
        char text[200];
        snprintf(text, sizeof text, "the room answered %s", *cond ? cond : "an error");
        ferry_outbox_retry(r->comp, rm->say->id, text, -1);
        say_free(rm->say);
        rm->say = NULL;
    }
}

static int mentions(const room_t *rm, xmpp_stanza_t *st, const char *body)
{
    const char *nicks[2] = {rm->nick, rm->cur_nick};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(nicks[i]);
        if (strncasecmp(body, nicks[i], n) == 0 && (body[n] == ':' || body[n] == ','))
            return 1;
    }
    /* XEP-0372: a mention of the endpoint, or of its occupant JID. */
    char bare[1200], occ[3200];
    snprintf(bare, sizeof bare, "xmpp:%s", rm->occupant);
    char *slash = strrchr(bare, '/');
    if (slash)
        *slash = 0;
    snprintf(occ, sizeof occ, "xmpp:%s/%s", rm->jid, rm->cur_nick);
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c)) {
        const char *name = xmpp_stanza_get_name(c), *ns = xmpp_stanza_get_ns(c);
        if (!name || !ns || strcmp(name, "reference") != 0 || strcmp(ns, NS_REFERENCE) != 0)
            continue;
        const char *type = xmpp_stanza_get_type(c), *uri = xmpp_stanza_get_attribute(c, "uri");
        if (type && uri && strcmp(type, "mention") == 0 &&
            (strcasecmp(uri, bare) == 0 || strcmp(uri, occ) == 0))
            return 1;
    }
    return 0;
}

static void on_groupchat(room_t *rm, xmpp_stanza_t *st, const ferry_jid_t *from)
{
    rooms_t *r = rm->owner;
    if (is_echo(rm->say, st)) {
        on_said(rm);
        return;
    }
    /* Only what occupants say now: not the room's own notices, not history
     * (delayed), not ferry itself under any of its endpoints' nicks. */
    if (rm->messages == ROOM_MESSAGES_NONE || rm->state != R_JOINED || !from->resource[0] ||
        child_ns(st, "delay", NS_DELAY) || from_ferry(r, rm, from->resource))
        return;
    char *body = xmpp_message_get_body(st);
    if (body && *body && (rm->messages == ROOM_MESSAGES_ALL || mentions(rm, st, body)))
        r->post(r->post_arg, rm->endpoint, st, body, rm->jid, from->resource);
    xmpp_free(ctx_of(r), body);
}

/* Every message from a configured room is the room side's: a room's notices
 * or an occupant's private message must not reach the direct-message path
 * (whose error replies a room could take as a reason to kick). */
int webhook_rooms_on_message(rooms_t *r, xmpp_stanza_t *st)
{
    ferry_jid_t from;
    room_t *rm = room_of(r, st, &from);
    if (!rm)
        return 0;
    const char *type = xmpp_stanza_get_type(st);
    if (type && strcmp(type, "error") == 0) {
        const char *id = xmpp_stanza_get_id(st);
        if (rm->say && rm->say->sent && id && strcmp(id, rm->say->stanza_id) == 0)
            on_say_error(rm, st);
    } else if (type && strcmp(type, "groupchat") == 0) {
        on_groupchat(rm, st, &from);
    }
    schedule(r);
    return 1;
}

/* ---- self-ping answers (XEP-0410 §3.2) ---- */

int webhook_rooms_on_iq(rooms_t *r, xmpp_stanza_t *st)
{
    const char *type = xmpp_stanza_get_type(st), *id = xmpp_stanza_get_id(st);
    if (!type || !id || strncmp(id, "ferry-selfping-", 15) != 0 ||
        (strcmp(type, "result") != 0 && strcmp(type, "error") != 0))
        return 0;
    ferry_jid_t from;
    room_t *rm = room_of(r, st, &from);
    if (!rm || rm->state != R_JOINED || strcmp(id, rm->ping_id) != 0)
        return 1;
    rm->ping_deadline = 0;
    rm->ping_id[0] = 0;
    rm->ping_at = now_ms(r) + r->ping_interval_ms;
    const char *cond = strcmp(type, "error") == 0 ? error_condition(st) : NULL;
    if (!cond || strcmp(cond, "service-unavailable") == 0 ||
        strcmp(cond, "feature-not-implemented") == 0 || strcmp(cond, "item-not-found") == 0) {
        rm->backoff = 0; /* still joined: a kick from now on starts the backoff over */
        r->pings_ok++;
    } else if (strcmp(cond, "remote-server-not-found") == 0 ||
               strcmp(cond, "remote-server-timeout") == 0) {
        ferry_log_warn(scope(r), "%s is unreachable (%s): checking again later", rm->jid, cond);
    } else {
        ferry_log_warn(scope(r), "self-ping: no longer in %s (%s): joining again", rm->jid, cond);
        start_join(rm);
    }
    schedule(r);
    return 1;
}

/* ---- deadlines ---- */

static void room_deadlines(room_t *rm, uint64_t now)
{
    rooms_t *r = rm->owner;
    if (rm->state == R_WAIT && rm->rejoin_at <= now) {
        rm->rejoin_at = 0;
        start_join(rm);
    } else if (rm->state == R_JOINING && rm->join_deadline <= now) {
        rejoin_later(rm, "no answer to the join");
    } else if (rm->state == R_JOINED) {
        if (rm->say && rm->say->sent && rm->say->echo_deadline <= now) {
            ferry_log_warn(scope(r), "%s did not echo a message: joining again", rm->jid);
            start_join(rm);
        } else if (rm->ping_deadline && rm->ping_deadline <= now) {
            /* No answer: the service may be unreachable; ask again later. */
            rm->ping_deadline = 0;
            rm->ping_id[0] = 0;
            rm->ping_at = now + r->ping_interval_ms;
        } else if (!rm->ping_deadline && rm->ping_at <= now) {
            send_self_ping(rm);
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    rooms_t *r = t->data;
    if (!r->link_up)
        return;
    uint64_t now = now_ms(r);
    for (room_t *rm = r->rooms; rm; rm = rm->next)
        room_deadlines(rm, now);
    schedule(r);
}

/* ---- link ---- */

void webhook_rooms_on_link(rooms_t *r, int up)
{
    r->link_up = up;
    if (r->stopping)
        return;
    for (room_t *rm = r->rooms; rm; rm = rm->next) {
        if (rm->state == R_GONE)
            continue;
        if (up) {
            start_join(rm);
        } else {
            rm->state = R_OFF;
            rm->ping_deadline = 0;
            if (rm->say)
                rm->say->sent = 0; /* said again after the rejoin */
        }
    }
    if (up)
        schedule(r);
    else if (r->started)
        uv_timer_stop(&r->timer);
}

/* ---- the outbox ---- */

static room_t *find_room(rooms_t *r, const char *endpoint, const char *jid)
{
    for (room_t *rm = r->rooms; rm; rm = rm->next)
        if (strcmp(rm->endpoint, endpoint) == 0 && strcmp(rm->jid, jid) == 0)
            return rm;
    return NULL;
}

int webhook_rooms_put(rooms_t *r, const char *endpoint, const char *text, const char *dedup_base,
              size_t *stored, size_t *duplicates)
{
    xmpp_ctx_t *ctx = ctx_of(r);
    int failed = 0;
    for (room_t *rm = r->rooms; rm; rm = rm->next) {
        if (strcmp(rm->endpoint, endpoint) != 0)
            continue;
        char *uuid = xmpp_uuid_gen(ctx);
        const char *field[ROOM_FIELDS] = {ROOM_RECORD, endpoint, rm->jid, uuid, text};
        size_t len;
        char *rec = ferry_record_pack(field, ROOM_FIELDS, &len);
        xmpp_free(ctx, uuid);
        char conversation[3200], dedup[4400];
        snprintf(conversation, sizeof conversation, "say %s %s", endpoint, rm->jid);
        if (dedup_base)
            snprintf(dedup, sizeof dedup, "%s room %s", dedup_base, rm->jid);
        int rc = ferry_outbox_put(r->comp, conversation, dedup_base ? dedup : NULL, rec, len, NULL);
        free(rec);
        failed |= rc < 0;
        *stored += rc == 0;
        *duplicates += rc > 0;
    }
    return failed ? -1 : 0;
}

static say_t *say_read(const ferry_msg_t *msg, const char **endpoint, const char **room)
{
    const char *f[ROOM_FIELDS];
    if (msg->payload_len < 3 || memcmp(msg->payload, ROOM_RECORD, 3) != 0)
        return NULL;
    say_t *s = ferry_calloc(1, sizeof *s);
    s->buf = ferry_malloc(msg->payload_len + 1);
    memcpy(s->buf, msg->payload, msg->payload_len);
    if (ferry_record_unpack(s->buf, msg->payload_len, f, ROOM_FIELDS) != 0) {
        say_free(s);
        return NULL;
    }
    s->id = msg->id;
    *endpoint = f[1];
    *room = f[2];
    s->stanza_id = f[3];
    s->text = f[4];
    return s;
}

int webhook_rooms_deliver(rooms_t *r, const ferry_msg_t *msg)
{
    if (msg->payload_len < 3 || memcmp(msg->payload, ROOM_RECORD, 3) != 0)
        return 0;
    const char *endpoint, *room;
    say_t *s = say_read(msg, &endpoint, &room);
    if (!s) {
        ferry_outbox_fail(r->comp, msg->id, "unreadable stored room message");
        return 1;
    }
    room_t *rm = find_room(r, endpoint, room);
    if (!rm || rm->state == R_GONE || rm->say) {
        const char *why = !rm ? "the room was removed from the configuration"
                          : rm->say ? "another message of the room is under way"
                                    : "ferry gave up on the room (see the log)";
        ferry_log_warn(scope(r), "message %lld for %s: %s", (long long)msg->id, room, why);
        if (rm && rm->say)
            ferry_outbox_retry(r->comp, msg->id, why, -1);
        else
            ferry_outbox_fail(r->comp, msg->id, why);
        say_free(s);
        return 1;
    }
    rm->say = s; /* held until the room is joined */
    if (rm->state == R_JOINED && r->link_up) {
        say_send(rm);
        schedule(r);
    }
    return 1;
}

int webhook_rooms_dead(rooms_t *r, const ferry_msg_t *msg, const char *reason)
{
    const char *endpoint, *room;
    say_t *s = say_read(msg, &endpoint, &room);
    if (!s)
        return 0;
    ferry_log_warn(scope(r), "message %lld for %s (endpoint %s) given up: %s", (long long)msg->id,
                   room, endpoint, reason);
    say_free(s);
    return 1;
}

/* ---- configuration ---- */

static void room_free(room_t *rm)
{
    free(rm->endpoint);
    free(rm->jid);
    free(rm->nick);
    free(rm->password);
    free(rm->cur_nick);
    say_free(rm->say);
    free(rm);
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void webhook_rooms_begin(rooms_t *r, double ping_interval)
{
    r->ping_interval_ms = (uint64_t)(ping_interval * 1000);
    for (room_t *rm = r->rooms; rm; rm = rm->next)
        rm->mark = 1;
}

static void update_room(room_t *rm, const room_conf_t *rc)
{
    int renamed = strcmp(rm->nick, rc->nick) != 0;
    if (renamed || !same(rm->password, rc->password)) {
        free(rm->nick);
        free(rm->password);
        rm->nick = ferry_strdup(rc->nick);
        rm->password = rc->password ? ferry_strdup(rc->password) : NULL;
        if (renamed && rm->owner->link_up && rm->state == R_JOINED)
            start_join(rm); /* a nick change, in XEP-0045 terms */
    }
    rm->messages = rc->messages;
    if (rm->state == R_GONE) {
        rm->state = R_OFF;
        rm->backoff = 0;
        if (rm->owner->link_up && rm->owner->started)
            start_join(rm);
    }
}

void webhook_rooms_add(rooms_t *r, const char *endpoint, const room_conf_t *rc)
{
    for (char **p = rc->rooms; p && *p; p++) {
        ferry_jid_t j;
        char jid[2100];
        ferry_jid_parse(*p, &j); /* checked by webhook_room_conf_read */
        ferry_jid_bare(&j, jid, sizeof jid);
        room_t *rm = find_room(r, endpoint, jid);
        if (rm) {
            if (rm->mark) { /* listed twice: once is enough */
                rm->mark = 0;
                update_room(rm, rc);
            }
            continue;
        }
        rm = ferry_calloc(1, sizeof *rm);
        rm->owner = r;
        rm->endpoint = ferry_strdup(endpoint);
        rm->jid = ferry_strdup(jid);
        rm->nick = ferry_strdup(rc->nick);
        rm->password = rc->password ? ferry_strdup(rc->password) : NULL;
        rm->messages = rc->messages;
        rm->cur_nick = ferry_strdup(rc->nick);
        snprintf(rm->occupant, sizeof rm->occupant, "%s@%s/%s", endpoint,
                 ferry_component_domain(r->comp), RESOURCE);
        rm->next = r->rooms;
        r->rooms = rm;
        if (r->link_up && r->started && !r->stopping)
            start_join(rm);
    }
}

void webhook_rooms_commit(rooms_t *r)
{
    room_t **p = &r->rooms;
    while (*p) {
        room_t *rm = *p;
        if (!rm->mark) {
            p = &rm->next;
            continue;
        }
        send_leave(rm);
        fail_say(rm, "the room was removed from the configuration");
        *p = rm->next;
        room_free(rm);
    }
    schedule(r);
}

/* ---- lifetime ---- */

rooms_t *webhook_rooms_new(ferry_component_t *comp, rooms_post_cb post, void *arg)
{
    rooms_t *r = ferry_calloc(1, sizeof *r);
    r->comp = comp;
    r->post = post;
    r->post_arg = arg;
    r->ping_interval_ms = 300000;
    return r;
}

void webhook_rooms_start(rooms_t *r)
{
    uv_timer_init(ferry_component_loop(r->comp), &r->timer);
    r->timer.data = r;
    r->started = 1;
}

void webhook_rooms_stop(rooms_t *r)
{
    for (room_t *rm = r->rooms; rm; rm = rm->next) {
        send_leave(rm);
        if (rm->state != R_GONE)
            rm->state = R_OFF;
    }
    r->stopping = 1;
    if (r->started)
        uv_timer_stop(&r->timer);
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void webhook_rooms_free(rooms_t *r)
{
    while (r->rooms) {
        room_t *rm = r->rooms;
        r->rooms = rm->next;
        room_free(rm);
    }
    if (r->started)
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    else
        free(r);
}

void webhook_rooms_metrics(rooms_t *r, ferry_metrics_t *m)
{
    double joined = 0;
    for (room_t *rm = r->rooms; rm; rm = rm->next)
        joined += rm->state == R_JOINED;
    ferry_metric(m, "ferry_webhook_rooms_joined", "gauge",
                 "Rooms (XEP-0045) the endpoints are joined to now.", joined);
    ferry_metric(m, "ferry_webhook_room_rejoins_total", "counter",
                 "Joins of a room the endpoint had been in before (after a link drop, a kick...).",
                 (double)r->rejoins);
    ferry_metric(m, "ferry_webhook_room_messages_total", "counter",
                 "Messages said in rooms (echoed back by the room).", (double)r->said);
    ferry_metric(m, "ferry_webhook_room_self_pings_total", "counter",
                 "Self-pings (XEP-0410) that found the endpoint still in its room.",
                 (double)r->pings_ok);
    ferry_metric(m, "ferry_webhook_rooms_lost_total", "counter",
                 "Rooms given up on: banned, destroyed, or the join refused for good.",
                 (double)r->lost);
}
