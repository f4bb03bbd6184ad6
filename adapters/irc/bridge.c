/* bridge.c: the only place that knows both XMPP and IRC. MUC presence and
 * groupchat messages become JOIN, PART, NICK, TOPIC and PRIVMSG; IRC events
 * become occupant presences (XEP-0045 status codes), subjects and messages.
 * Stanzas going out to many resources are written as text into one buffer,
 * without building stanza objects: the fan-out path allocates nothing. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc.h"

/* ---- writing stanzas ---- */

/* Most stanzas fit BUF, so the fan-out path allocates nothing; a longer one
 * (a long message reflected to its sender) moves to the heap, up to
 * OUT_MAX, far above what an XMPP server takes in one stanza. */
#define OUT_MAX (1 << 20)

typedef struct out {
    char buf[16384];
    char *heap; /* when not NULL, the text is here, CAP bytes */
    size_t len, cap;
    int full;
} out_t;

static char *out_text(out_t *o) { return o->heap ? o->heap : o->buf; }
static size_t out_cap(const out_t *o) { return o->heap ? o->cap : sizeof o->buf; }

/* Makes room for at least NEED more bytes and a NUL; 0 when over OUT_MAX. */
static int out_grow(out_t *o, size_t need)
{
    size_t cap = out_cap(o);
    while (cap <= o->len + need)
        cap *= 2;
    if (cap > OUT_MAX) {
        o->full = 1;
        return 0;
    }
    char *h = ferry_malloc(cap);
    memcpy(h, out_text(o), o->len + 1);
    free(o->heap);
    o->heap = h;
    o->cap = cap;
    return 1;
}

static void raw(out_t *o, const char *s)
{
    size_t n = strlen(s);
    if (o->full || (o->len + n >= out_cap(o) && !out_grow(o, n)))
        return;
    memcpy(out_text(o) + o->len, s, n + 1);
    o->len += n;
}

static void esc(out_t *o, const char *s)
{
    while (!o->full) {
        size_t n = ferry_xml_escape(out_text(o), out_cap(o), o->len, s);
        if (n != out_cap(o)) {
            o->len = n;
            return;
        }
        out_text(o)[o->len] = 0; /* the escaper stopped part way */
        out_grow(o, strlen(s) + 1);
    }
}

static void attr(out_t *o, const char *name, const char *value)
{
    raw(o, " ");
    raw(o, name);
    raw(o, "='");
    esc(o, value);
    raw(o, "'");
}

/* <NAME>text</NAME> */
static void element(out_t *o, const char *name, const char *text)
{
    raw(o, "<");
    raw(o, name);
    raw(o, ">");
    esc(o, text);
    raw(o, "</");
    raw(o, name);
    raw(o, ">");
}

static void emit(irc_t *irc, out_t *o)
{
    if (!o->full) {
        ferry_component_send_xml(irc->comp, out_text(o), o->len);
        irc->stanzas_out++;
    } else {
        ferry_log_warn(ferry_component_name(irc->comp), "a stanza over %d bytes was not sent",
                       OUT_MAX);
    }
    free(o->heap);
    o->heap = NULL;
    o->len = 0;
    o->full = 0;
}

void irc_bridge_room_jid(irc_conn_t *conn, irc_room_t *room, const char *nick, char *buf, size_t len)
{
    const char *domain = ferry_component_domain(conn->irc->comp);
    if (room->short_jid)
        irc_jid_room(buf, len, room->chan->name, NULL, domain); /* as the user wrote it */
    else
        irc_jid_room(buf, len, room->chan->name, conn->server->name, domain);
    if (nick) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "/%s", nick);
    }
}

/* Affiliation and role from IRC channel prefixes, as biboumi maps them. */
static void roles(const char *modes, const char **affiliation, const char **role)
{
    *affiliation = "none";
    *role = "participant";
    if (strchr(modes, '~')) {
        *affiliation = "owner";
        *role = "moderator";
    } else if (strchr(modes, '&') || strchr(modes, '@')) {
        *affiliation = "admin";
        *role = "moderator";
    } else if (strchr(modes, '%')) {
        *affiliation = "member";
        *role = "moderator";
    } else if (strchr(modes, '+')) {
        *affiliation = "member";
    }
}

/* One occupant's presence: who it is and what happened to it. */
typedef struct occupant {
    const char *nick;
    const char *modes;      /* IRC prefixes: affiliation and role */
    const char *userhost;   /* "user@host" when known */
    int self;               /* the user: its real JID is the resource's */
    const char *type;       /* NULL (available) or "unavailable" */
    const char *new_nick;   /* 303: renamed to */
    const int *codes;       /* status codes, 0-ended */
    const char *status;     /* <status/> text */
    const char *actor;      /* 307: the kicker's nick */
    const char *reason;     /* 307: why */
} occupant_t;

/* The real JID of an IRC occupant as biboumi writes it (the rooms are
 * non-anonymous): "nick%server@domain/user@host", without "%server" in a
 * room of the default server, without "/user@host" while unknown. */
static void occupant_jid(irc_conn_t *conn, irc_room_t *room, const char *nick,
                         const char *userhost, char *buf, size_t len)
{
    const char *domain = ferry_component_domain(conn->irc->comp);
    if (room->short_jid) {
        irc_jid_user(buf, len, nick, NULL, domain);
    } else {
        irc_jid_user(buf, len, nick, conn->server->name, domain);
    }
    if (userhost && *userhost) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "/%s", userhost);
    }
}

/* <presence from=room/nick to=resource>, with XEP-0045's muc#user item. */
static void occupant_presence(irc_conn_t *conn, irc_room_t *room, const occupant_t *oc,
                              const char *to)
{
    out_t *o = &(out_t){0};
    char from[1400], jid[1400];
    irc_bridge_room_jid(conn, room, oc->nick, from, sizeof from);
    if (oc->self)
        snprintf(jid, sizeof jid, "%s", to);
    else
        occupant_jid(conn, room, oc->nick, oc->userhost, jid, sizeof jid);
    const char *affiliation, *role;
    roles(oc->modes ? oc->modes : "", &affiliation, &role);
    raw(o, "<presence");
    attr(o, "from", from);
    attr(o, "to", to);
    if (oc->type) {
        attr(o, "type", oc->type);
        if (!oc->new_nick)
            role = "none"; /* gone; a renamed occupant keeps its role (7.6) */
    }
    raw(o, "><x xmlns='" NS_MUC_USER "'><item");
    attr(o, "affiliation", affiliation);
    attr(o, "role", role);
    attr(o, "jid", jid);
    if (oc->new_nick)
        attr(o, "nick", oc->new_nick);
    if (oc->actor || oc->reason) {
        raw(o, ">");
        if (oc->actor) {
            raw(o, "<actor");
            attr(o, "nick", oc->actor);
            raw(o, "/>");
        }
        if (oc->reason)
            element(o, "reason", oc->reason);
        raw(o, "</item>");
    } else {
        raw(o, "/>");
    }
    for (const int *c = oc->codes; c && *c; c++) {
        char code[48];
        snprintf(code, sizeof code, "<status code='%d'/>", *c);
        raw(o, code);
    }
    raw(o, "</x>");
    if (oc->status) {
        element(o, "status", oc->status);
    }
    raw(o, "</presence>");
    emit(conn->irc, o);
}

/* An occupant's presence to every resource of the user in the room. */
static void occupant_to_all(irc_conn_t *conn, irc_room_t *room, const occupant_t *oc)
{
    for (size_t i = 0; i < room->nresources; i++)
        occupant_presence(conn, room, oc, room->resources[i]);
}

#define NS_SID "urn:xmpp:sid:0"

/* A groupchat message to one resource. SID: the message's stable id
 * (XEP-0359 stanza-id, by the room), also its 'id' unless ID is given (a
 * reflection keeps the client's); ORIGIN: the client's origin-id, kept. */
static void groupchat(irc_conn_t *conn, irc_room_t *room, const char *nick, const char *to,
                      const char *id, const char *body, const char *subject, const char *sid,
                      const char *origin)
{
    out_t *o = &(out_t){0};
    char from[1400];
    irc_bridge_room_jid(conn, room, nick, from, sizeof from);
    raw(o, "<message type='groupchat'");
    attr(o, "from", from);
    attr(o, "to", to);
    if (id || sid)
        attr(o, "id", id ? id : sid);
    raw(o, ">");
    if (subject) {
        element(o, "subject", subject);
    }
    if (body) {
        element(o, "body", body);
    }
    if (sid) {
        char *slash = strchr(from, '/');
        if (slash)
            *slash = 0; /* by the room's bare JID */
        raw(o, "<stanza-id xmlns='" NS_SID "'");
        attr(o, "by", from);
        attr(o, "id", sid);
        raw(o, "/>");
    }
    if (origin) {
        raw(o, "<origin-id xmlns='" NS_SID "'");
        attr(o, "id", origin);
        raw(o, "/>");
    }
    raw(o, "</message>");
    emit(conn->irc, o);
}

static void chat_from(irc_t *irc, const char *from, const char *to, const char *body)
{
    out_t *o = &(out_t){0};
    raw(o, "<message type='chat'");
    attr(o, "from", from);
    attr(o, "to", to);
    raw(o, ">");
    element(o, "body", body);
    raw(o, "</message>");
    emit(irc, o);
}

/* A presence error for a join that failed. */
static void join_error(irc_conn_t *conn, irc_room_t *room, const char *to, const char *type,
                       const char *condition, const char *text)
{
    out_t *o = &(out_t){0};
    char from[1400];
    irc_bridge_room_jid(conn, room, conn->wanted_nick, from, sizeof from);
    raw(o, "<presence type='error'");
    attr(o, "from", from);
    attr(o, "to", to);
    raw(o, "><x xmlns='" NS_MUC "'/><error");
    attr(o, "type", type);
    raw(o, "><");
    raw(o, condition);
    raw(o, " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    if (text) {
        raw(o, "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>");
        esc(o, text);
        raw(o, "</text>");
    }
    raw(o, "</error></presence>");
    emit(conn->irc, o);
}

/* ---- rooms of a connection ---- */

static irc_room_t *find_room(irc_conn_t *conn, const char *channel)
{
    for (irc_room_t *r = conn->rooms; r; r = r->next)
        if (irc_casecmp(conn->casemap, r->name, channel) == 0)
            return r;
    return NULL;
}

static int has_resource(irc_room_t *room, const char *jid)
{
    for (size_t i = 0; i < room->nresources; i++)
        if (strcmp(room->resources[i], jid) == 0)
            return 1;
    return 0;
}

static void add_resource(irc_room_t *room, const char *jid, int history_max,
                         int64_t history_since)
{
    size_t n = room->nresources + 1;
    room->resources = ferry_realloc(room->resources, n * sizeof *room->resources);
    room->history_max = ferry_realloc(room->history_max, n * sizeof *room->history_max);
    room->history_since = ferry_realloc(room->history_since, n * sizeof *room->history_since);
    room->resources[room->nresources] = ferry_strdup(jid);
    room->history_max[room->nresources] = history_max;
    room->history_since[room->nresources] = history_since;
    room->nresources++;
}

static size_t resource_index(irc_room_t *room, const char *jid)
{
    size_t i = 0;
    while (i < room->nresources && strcmp(room->resources[i], jid) != 0)
        i++;
    return i;
}

static void set_asked_nick(irc_room_t *room, const char *nick)
{
    free(room->asked_nick);
    room->asked_nick = ferry_strdup(nick);
}

static void remove_resource(irc_conn_t *conn, irc_room_t *room, const char *jid)
{
    for (size_t i = 0; i < room->nresources; i++)
        if (strcmp(room->resources[i], jid) == 0) {
            irc_state_left(conn, room, jid);
            free(room->resources[i]);
            size_t last = --room->nresources;
            room->resources[i] = room->resources[last];
            room->history_max[i] = room->history_max[last];
            room->history_since[i] = room->history_since[last];
            return;
        }
}

/* ---- messages held while a join completes ---- */

/* At most this many messages wait for a join to complete (a WHO on a big
 * channel takes a round trip or two); past that the oldest are dropped. */
#define HELD_MAX 200

static void held_free_one(irc_held_t *h)
{
    free(h->nick);
    free(h->text);
    free(h->sid);
    free(h);
}

static void held_free(irc_room_t *room)
{
    ferry_list_t *pos, *tmp;
    ferry_list_foreach_safe(pos, tmp, &room->held) {
        ferry_list_remove(pos);
        held_free_one(ferry_list_entry(pos, irc_held_t, link));
    }
    room->nheld = 0;
}

static void hold(irc_conn_t *conn, irc_room_t *room, const char *nick, const char *text,
                 const char *sid)
{
    if (room->nheld == HELD_MAX) {
        irc_held_t *old = ferry_list_entry(ferry_list_first(&room->held), irc_held_t, link);
        ferry_list_remove(&old->link);
        room->nheld--;
        ferry_log_warn(ferry_component_name(conn->irc->comp),
                       "%s: more than %d messages while joining; the oldest not shown", room->name,
                       HELD_MAX);
        held_free_one(old);
    }
    irc_held_t *h = ferry_calloc(1, sizeof *h);
    h->nick = ferry_strdup(nick);
    h->text = ferry_strdup(text);
    h->sid = sid ? ferry_strdup(sid) : NULL;
    h->archived = conn->irc->history && room->chan->recorders;
    ferry_list_insert_tail(&room->held, &h->link);
    room->nheld++;
}

/* Says the held messages to resource INDEX after its occupant list; the
 * ones its history replay carried already are not said twice. */
static void held_say(irc_conn_t *conn, irc_room_t *room, size_t index)
{
    int replayed = conn->irc->history && room->history_max[index] > 0;
    ferry_list_t *pos;
    ferry_list_foreach(pos, &room->held) {
        irc_held_t *h = ferry_list_entry(pos, irc_held_t, link);
        if (!(h->archived && replayed))
            groupchat(conn, room, h->nick, room->resources[index], NULL, h->text, NULL, h->sid,
                      NULL);
    }
}

/* The one destructor of a room: out of CONN's list, its channel's counts
 * and the store (irc_state_left() keeps it there while ferry restarts). */
static void room_free(irc_conn_t *conn, irc_room_t *room)
{
    for (irc_room_t **p = &conn->rooms; *p; p = &(*p)->next)
        if (*p == room) {
            *p = room->next;
            break;
        }
    if (room->chan) {
        if (room->chan->leader == conn)
            room->chan->leader = NULL;
        if (room->joined) {
            room->chan->joined--;
            irc_ids_left(room);
        }
        irc_chan_release(room->chan);
    }
    for (size_t i = 0; i < room->nresources; i++) {
        irc_state_left(conn, room, room->resources[i]);
        free(room->resources[i]);
    }
    held_free(room);
    free(room->resources);
    free(room->history_max);
    free(room->history_since);
    free(room->name);
    free(room->asked_nick);
    free(room);
}

/* No join of CONN can succeed (CONDITION, TEXT): every resource is told,
 * and the rooms go. */
static void fail_joins(irc_conn_t *conn, const char *condition, const char *text)
{
    while (conn->rooms) {
        irc_room_t *room = conn->rooms;
        for (size_t i = 0; i < room->nresources; i++)
            join_error(conn, room, room->resources[i], "cancel", condition, text);
        room_free(conn, room);
    }
}

static int leads(irc_conn_t *conn, irc_room_t *room)
{
    if (!room->chan->leader)
        room->chan->leader = conn;
    return room->chan->leader == conn;
}

/* The user's connection has nothing left to do: QUIT. */
static void maybe_quit(irc_conn_t *conn)
{
    if (!conn->rooms)
        irc_conn_quit(conn, "Leaving");
}

static void finish_listings(irc_conn_t *conn, const char *error);
static void on_other_numeric(irc_conn_t *conn, irc_msg_t *m);

/* ---- IRC -> XMPP ---- */

static int is_numeric(const char *c)
{
    return c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' &&
           c[2] <= '9' && !c[3];
}

/* Appends M's parameters from the second on, space-separated, to BUF (SIZE
 * bytes, LEN in use): the new length, SIZE or more when cut short. */
static size_t join_params(const irc_msg_t *m, char *buf, size_t size, size_t len)
{
    for (int i = 1; i < m->nparams && len + 1 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i > 1 ? " " : "", m->params[i]);
    return len;
}

/* The room itself says TEXT (IRC's, any charset) to every resource in it. */
static void room_says(irc_conn_t *conn, irc_room_t *room, const char *text)
{
    char *utf8 = irc_text_to_utf8(text);
    for (size_t i = 0; i < room->nresources; i++)
        groupchat(conn, room, NULL, room->resources[i], NULL, utf8, NULL, NULL, NULL);
    free(utf8);
}

/* Everything a resource needs on entering: occupants, itself, the subject. */
static void announce_to(irc_conn_t *conn, irc_room_t *room, size_t index)
{
    const char *resource = room->resources[index];
    irc_chan_t *chan = room->chan;
    irc_member_t *self = irc_chan_member(chan, conn->nick, conn->casemap);
    for (size_t i = 0; i < chan->nmembers; i++) {
        irc_member_t *m = &chan->members[i];
        if (m != self && !m->gone)
            occupant_presence(conn, room,
                              &(occupant_t){.nick = m->nick, .modes = m->modes,
                                            .userhost = m->userhost},
                              resource);
    }
    /* 100: the room is non-anonymous (every item carries a jid). */
    int codes[4] = {100, 110, 0, 0};
    if (irc_casecmp(conn->casemap, conn->nick, room->asked_nick) != 0 ||
        strcmp(conn->nick, room->asked_nick) != 0)
        codes[2] = 210; /* not the nick asked for: the server's, or the connection's */
    occupant_presence(conn, room,
                      &(occupant_t){.nick = conn->nick, .modes = self ? self->modes : "",
                                    .self = 1, .codes = codes},
                      resource);
    irc_history_replay(conn, room, index); /* XEP-0045: history, then the subject */
    /* Clients wait for the subject before they show the room as joined;
     * it comes from whoever set it, when IRC said who. */
    groupchat(conn, room, chan->topic_setter, resource, NULL, NULL, chan->topic ? chan->topic : "",
              NULL, NULL);
}

static void announce(irc_conn_t *conn, irc_room_t *room)
{
    room->announced = 1;
    for (size_t i = 0; i < room->nresources; i++) {
        announce_to(conn, room, i);
        held_say(conn, room, i);
    }
    held_free(room);
}

/* "user@host" of a "nick!user@host" prefix; NULL without one. */
static const char *prefix_userhost(const char *prefix)
{
    const char *bang = prefix ? strchr(prefix, '!') : NULL;
    return bang && strchr(bang, '@') ? bang + 1 : NULL;
}

static void send_join(irc_conn_t *conn, irc_room_t *room);

/* A user@host from the server becomes a JID resource: only one that can
 * (the same rule as for nicks). */
static void take_userhost(irc_member_t *m, const char *userhost)
{
    if (userhost && strchr(userhost, '@') && irc_nick_usable(userhost))
        irc_chan_set_userhost(m, userhost);
}

/* Our own JOIN: the leader refreshes the shared member list (NAMES
 * follows) and, unless NAMES carries them (userhost-in-names), asks WHO
 * for everyone's user@host. A PING with the channel as its token follows:
 * its PONG ends the wait even when a server ignores WHO. */
static void joined_self(irc_conn_t *conn, irc_room_t *room, const char *nick)
{
    if (!room->joined) {
        room->chan->joined++;
        irc_ids_joined(room);
    }
    room->joined = 1;
    room->named = 0;
    if (leads(conn, room)) {
        irc_chan_clear(room->chan);
        room->chan->synced = 0;
        const char *p[] = {room->name};
        room->who_pending = !conn->uhnames && irc_conn_send(conn, "WHO", p, 1) == 0 &&
                            irc_conn_send(conn, "PING", p, 1) == 0;
    } else if (room->chan->synced) {
        irc_chan_add(room->chan, nick, "", conn->casemap);
    }
}

static void on_join(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    irc_room_t *room = m->nparams ? find_room(conn, m->params[0]) : NULL;
    if (!room)
        return;
    if (irc_casecmp(conn->casemap, nick, conn->nick) == 0) {
        joined_self(conn, room, nick);
        return;
    }
    irc_member_t *member = irc_chan_member(room->chan, nick, conn->casemap);
    if (!member)
        member = irc_chan_add(room->chan, nick, "", conn->casemap);
    take_userhost(member, prefix_userhost(m->prefix));
    if (room->announced)
        occupant_to_all(conn, room,
                        &(occupant_t){.nick = nick, .modes = "", .userhost = member->userhost});
}

/* What a departing member was, copied before the shared list forgets it. */
typedef struct departed {
    char modes[8];
    char userhost[IRC_NAME_MAX];
} departed_t;

/* Applies a departure to the shared list: the first connection to see it
 * marks the member, the others acknowledge. */
static int depart(irc_conn_t *conn, irc_chan_t *chan, const char *nick, departed_t *d)
{
    irc_member_t *m = irc_chan_witness(chan, nick, conn->casemap);
    if (!m)
        return 0;
    snprintf(d->modes, sizeof d->modes, "%s", m->modes);
    snprintf(d->userhost, sizeof d->userhost, "%s", m->userhost ? m->userhost : "");
    if (m->gone)
        irc_chan_seen(chan, m);
    else
        irc_chan_remove(chan, nick, conn->casemap);
    return 1;
}

static void on_names(irc_conn_t *conn, irc_msg_t *m)
{
    if (m->nparams < 4)
        return;
    irc_room_t *room = find_room(conn, m->params[2]);
    if (!room || !leads(conn, room) || room->chan->synced)
        return;
    char *names = ferry_strdup(m->params[3]);
    for (char *name = strtok(names, " "); name; name = strtok(NULL, " ")) {
        size_t np = strspn(name, conn->prefixes);
        char modes[8];
        snprintf(modes, sizeof modes, "%.*s", (int)(np < 7 ? np : 7), name);
        /* userhost-in-names: "nick!user@host" */
        char *bang = strchr(name + np, '!');
        if (bang)
            *bang = 0;
        if (!irc_nick_usable(name + np))
            continue;
        irc_member_t *member = irc_chan_add(room->chan, name + np, modes, conn->casemap);
        if (bang)
            take_userhost(member, bang + 1);
    }
    free(names);
}

/* The occupant list goes out once NAMES and our WHO have both ended. */
static void maybe_announce(irc_conn_t *conn, irc_room_t *room)
{
    if (room->joined && room->named && !room->who_pending && !room->announced && !room->parting)
        announce(conn, room);
}

static void on_end_of_names(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = m->nparams >= 2 ? find_room(conn, m->params[1]) : NULL;
    if (!room)
        return;
    if (leads(conn, room))
        room->chan->synced = 1;
    room->named = 1;
    maybe_announce(conn, room);
}

/* The room a WHO reply of at least MIN parameters is about, when the WHO
 * is ours; else NULL, and it answers one of the user's: shown as such. */
static irc_room_t *our_who(irc_conn_t *conn, irc_msg_t *m, int min)
{
    irc_room_t *room = m->nparams >= min ? find_room(conn, m->params[1]) : NULL;
    if (room && room->who_pending)
        return room;
    on_other_numeric(conn, m);
    return NULL;
}

/* 352 me #chan user host server nick flags :hops realname */
static void on_who_reply(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = our_who(conn, m, 6);
    if (!room)
        return;
    irc_member_t *member = irc_chan_member(room->chan, m->params[5], conn->casemap);
    if (member) {
        char userhost[IRC_NAME_MAX];
        snprintf(userhost, sizeof userhost, "%s@%s", m->params[2], m->params[3]);
        take_userhost(member, userhost);
    }
}

/* 315 me #chan :End of WHO list */
static void on_end_of_who(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = our_who(conn, m, 2);
    if (!room)
        return;
    room->who_pending = 0;
    maybe_announce(conn, room);
}

/* PONG :#chan, after our WHO #chan: whatever the server made of the WHO
 * (ended, refused, ignored), it is done with it. */
static void on_pong(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = m->nparams ? find_room(conn, m->params[m->nparams - 1]) : NULL;
    if (room && room->who_pending) {
        room->who_pending = 0;
        maybe_announce(conn, room);
    }
}

/* IRC confirmed the PART of a room nobody was in any more: forget it, or,
 * when a resource joined again meanwhile, join again for it. */
static void parted(irc_conn_t *conn, irc_room_t *room)
{
    if (!room->nresources) {
        room_free(conn, room);
        maybe_quit(conn);
        return;
    }
    room->parting = 0;
    if (room->joined)
        room->chan->joined--;
    room->joined = room->named = room->who_pending = room->announced = 0;
    held_free(room);
    if (room->chan->leader == conn) {
        room->chan->leader = NULL;
        room->chan->synced = 0;
    }
    send_join(conn, room);
}

static void on_part(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    /* PART #chan :reason / KICK #chan victim :reason */
    int kicked = m->command[0] == 'K';
    if (m->nparams < (kicked ? 2 : 1))
        return;
    irc_room_t *room = find_room(conn, m->params[0]);
    if (!room)
        return;
    const char *who = kicked ? m->params[1] : nick;
    if (!irc_nick_usable(who))
        return;
    const char *reason = m->nparams > (kicked ? 2 : 1) ? m->params[kicked ? 2 : 1] : NULL;
    char *text = reason ? irc_text_to_utf8(reason) : NULL;
    /* 307 (kicked): the kicker and the reason go in the item. */
    occupant_t oc = {.nick = who, .modes = "", .type = "unavailable",
                     .status = kicked ? NULL : text, .actor = kicked ? nick : NULL,
                     .reason = kicked ? text : NULL};
    if (irc_casecmp(conn->casemap, who, conn->nick) == 0) {
        if (room->parting && !kicked) {
            parted(conn, room);
            free(text);
            return;
        }
        irc_member_t *member = irc_chan_member(room->chan, who, conn->casemap);
        if (member)
            oc.modes = member->modes;
        int codes[] = {110, kicked ? 307 : 0, 0};
        oc.self = 1;
        oc.codes = codes;
        if (room->announced || kicked)
            occupant_to_all(conn, room, &oc);
        room_free(conn, room);
        free(text);
        maybe_quit(conn);
        return;
    }
    departed_t d;
    if (!depart(conn, room->chan, who, &d))
        d.modes[0] = d.userhost[0] = 0;
    int codes[] = {kicked ? 307 : 0, 0};
    oc.modes = d.modes;
    oc.userhost = d.userhost;
    oc.codes = codes;
    if (room->announced)
        occupant_to_all(conn, room, &oc);
    free(text);
}

static void on_quit(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    char *text = m->nparams ? irc_text_to_utf8(m->params[0]) : NULL;
    for (irc_room_t *room = conn->rooms; room; room = room->next) {
        departed_t d;
        if (depart(conn, room->chan, nick, &d) && room->announced)
            occupant_to_all(conn, room,
                            &(occupant_t){.nick = nick, .modes = d.modes, .userhost = d.userhost,
                                          .type = "unavailable", .status = text});
    }
    free(text);
}

static void on_nick(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    if (!m->nparams)
        return;
    const char *new_nick = m->params[0];
    if (!irc_nick_usable(new_nick))
        return;
    int self = irc_casecmp(conn->casemap, nick, conn->nick) == 0;
    for (irc_room_t *room = conn->rooms; room; room = room->next) {
        irc_member_t *member = irc_chan_witness(room->chan, nick, conn->casemap);
        if (!member && !self)
            continue;
        char modes[8] = "";
        if (member)
            snprintf(modes, sizeof modes, "%s", member->modes);
        /* The first connection to see it renames; the others acknowledge. */
        if (member && member->old_nick && irc_casecmp(conn->casemap, member->old_nick, nick) == 0)
            irc_chan_seen(room->chan, member);
        else if (member)
            irc_chan_rename(room->chan, nick, new_nick, conn->casemap);
        if (room->announced) {
            /* 7.6: unavailable with 303 and the new nick, then available. */
            int gone[] = {303, self ? 110 : 0, 0};
            int back[] = {self ? 110 : 0, 0};
            const char *userhost = member ? member->userhost : NULL;
            occupant_to_all(conn, room,
                            &(occupant_t){.nick = nick, .modes = modes, .userhost = userhost,
                                          .self = self, .type = "unavailable",
                                          .new_nick = new_nick, .codes = gone});
            occupant_to_all(conn, room,
                            &(occupant_t){.nick = new_nick, .modes = modes, .userhost = userhost,
                                          .self = self, .codes = back});
        }
    }
    if (self) {
        snprintf(conn->nick, sizeof conn->nick, "%s", new_nick);
        snprintf(conn->wanted_nick, sizeof conn->wanted_nick, "%s", new_nick);
        irc_state_renamed(conn);
    }
}

/* "Mode #chan [+k secret] by Nick" in the room, as biboumi says it. */
static void say_mode(irc_conn_t *conn, irc_room_t *room, irc_msg_t *m, const char *nick)
{
    char text[IRC_LINE_MAX + 64];
    size_t len = (size_t)snprintf(text, sizeof text, "Mode %s [", room->chan->name);
    len = join_params(m, text, sizeof text, len);
    if (len < sizeof text)
        snprintf(text + len, sizeof text - len, "] by %s", nick);
    room_says(conn, room, text);
}

static void on_mode(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    if (m->nparams < 2)
        return;
    irc_room_t *room = find_room(conn, m->params[0]);
    if (!room)
        return;
    if (room->announced)
        say_mode(conn, room, m, nick);
    int adding = 1, arg = 2;
    for (const char *c = m->params[1]; *c; c++) {
        if (*c == '+' || *c == '-') {
            adding = *c == '+';
            continue;
        }
        const char *prefix = irc_conn_mode_prefix(conn, *c);
        if (!prefix) {
            /* Modes with an argument that are not prefixes still use one
             * (CHANMODES types A and B; C only when set). */
            if ((strchr(conn->arg_modes, *c) || (adding && strchr(conn->set_arg_modes, *c))) &&
                arg < m->nparams)
                arg++;
            continue;
        }
        if (arg >= m->nparams)
            break;
        const char *who = m->params[arg++];
        irc_member_t *member = irc_chan_member(room->chan, who, conn->casemap);
        if (!member)
            continue;
        char modes[8];
        snprintf(modes, sizeof modes, "%s", member->modes);
        char *at = strchr(modes, prefix[0]);
        if (adding && !at && strlen(modes) < 7)
            strcat(modes, prefix);
        else if (!adding && at)
            memmove(at, at + 1, strlen(at));
        if (leads(conn, room))
            snprintf(member->modes, sizeof member->modes, "%s", modes);
        if (room->announced) {
            int self[] = {110, 0};
            int is_self = irc_casecmp(conn->casemap, who, conn->nick) == 0;
            occupant_to_all(conn, room,
                            &(occupant_t){.nick = who, .modes = modes,
                                          .userhost = member->userhost, .self = is_self,
                                          .codes = is_self ? self : NULL});
        }
    }
}

static void on_topic(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    /* 332 me #chan :topic / TOPIC #chan :topic */
    int numeric = is_numeric(m->command), ci = numeric ? 1 : 0;
    if (m->nparams < ci + 1)
        return;
    irc_room_t *room = find_room(conn, m->params[ci]);
    if (!room)
        return;
    char *topic = irc_text_to_utf8(m->nparams > ci + 1 ? m->params[ci + 1] : "");
    if (leads(conn, room) || numeric) {
        irc_chan_set_topic(room->chan, topic);
        /* 333 says who set it, after 332 */
        irc_chan_set_topic_setter(room->chan, numeric ? NULL : nick);
    }
    if (!numeric && room->announced)
        for (size_t i = 0; i < room->nresources; i++)
            groupchat(conn, room, nick, room->resources[i], NULL, NULL, topic, NULL, NULL);
    free(topic);
}

/* 333 me #chan setter time: who set the topic (a nick or a prefix). */
static void on_topic_setter(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = m->nparams >= 3 ? find_room(conn, m->params[1]) : NULL;
    if (!room)
        return;
    char nick[IRC_NICK_MAX];
    irc_prefix_nick(m->params[2], nick, sizeof nick);
    irc_chan_set_topic_setter(room->chan, irc_nick_usable(nick) ? nick : NULL);
}

/* "\1ACTION waves\1" -> "/me waves"; other CTCP are not for people. */
static char *ctcp_text(const char *text)
{
    size_t n = strlen(text);
    if (text[0] != 1)
        return irc_text_to_styled(text);
    if (strncmp(text, "\1ACTION ", 8) != 0)
        return NULL;
    char *inner = ferry_strndup(text + 8, n - 8 - (text[n - 1] == 1));
    char *clean = irc_text_to_styled(inner);
    free(inner);
    char *out = ferry_malloc(strlen(clean) + 5);
    sprintf(out, "/me %s", clean);
    free(clean);
    return out;
}

/* ---- private messages started from a room ---- */

/* A chat to room/Nick (a MUC private message) is answered from room/Nick:
 * the connection remembers through which room each nick was written to.
 * A chat to nick%server@domain forgets it, so that one stays there. */
static irc_pm_route_t *find_route(irc_conn_t *conn, const char *nick)
{
    ferry_list_t *pos;
    ferry_list_foreach(pos, &conn->pm_routes) {
        irc_pm_route_t *r = ferry_list_entry(pos, irc_pm_route_t, link);
        if (irc_casecmp(conn->casemap, r->nick, nick) == 0)
            return r;
    }
    return NULL;
}

static void route_pm(irc_conn_t *conn, const char *nick, const char *channel)
{
    irc_pm_route_t *r = find_route(conn, nick);
    if (!channel) {
        if (r) {
            ferry_list_remove(&r->link);
            free(r->nick);
            free(r->room);
            free(r);
        }
        return;
    }
    if (!r) {
        r = ferry_calloc(1, sizeof *r);
        r->nick = ferry_strdup(nick);
        ferry_list_insert_head(&conn->pm_routes, &r->link);
    }
    free(r->room);
    r->room = ferry_strdup(channel);
}

/* Sends TEXT from NICK as a MUC private message when the user wrote to
 * NICK through a room it is still in. 1 when sent. */
static int pm_via_room(irc_conn_t *conn, const char *nick, const char *text)
{
    irc_pm_route_t *r = find_route(conn, nick);
    irc_room_t *room = r ? find_room(conn, r->room) : NULL;
    if (!room || !room->nresources || room->parting)
        return 0;
    char from[1400];
    irc_bridge_room_jid(conn, room, nick, from, sizeof from);
    for (size_t i = 0; i < room->nresources; i++) {
        out_t *o = &(out_t){0};
        raw(o, "<message type='chat'");
        attr(o, "from", from);
        attr(o, "to", room->resources[i]);
        raw(o, ">");
        element(o, "body", text);
        raw(o, "<x xmlns='" NS_MUC_USER "'/></message>");
        emit(conn->irc, o);
    }
    return 1;
}

static void routes_free(irc_conn_t *conn)
{
    while (!ferry_list_empty(&conn->pm_routes))
        route_pm(conn, ferry_list_entry(ferry_list_first(&conn->pm_routes), irc_pm_route_t, link)->nick,
                 NULL);
}

static void on_privmsg(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    int notice = m->command[0] == 'N';
    if (m->nparams < 2)
        return;
    const char *target = m->params[0];
    if (m->params[1][0] == 1 && !strchr(conn->chantypes, target[0]) &&
        (notice ? irc_ctcp_on_reply(conn, nick, m->params[1]) : irc_ctcp_on_request(conn, nick, m->params[1])))
        return;
    char *text = ctcp_text(m->params[1]);
    if (!text)
        return;
    irc_t *irc = conn->irc;
    const char *domain = ferry_component_domain(irc->comp);
    if (strchr(conn->chantypes, target[0])) {
        irc_room_t *room = find_room(conn, target);
        const char *sid = room && room->joined
                              ? irc_ids_from_irc(conn, room, nick, m->params[1], text)
                              : NULL;
        if (room && room->announced)
            for (size_t i = 0; i < room->nresources; i++)
                groupchat(conn, room, nick, room->resources[i], NULL, text, NULL, sid, NULL);
        else if (room && room->joined && !room->parting)
            hold(conn, room, nick, text, sid);
    } else if (!m->prefix || !strchr(m->prefix, '!')) {
        irc_contact_says(conn, text); /* the server's own notices */
    } else if (!pm_via_room(conn, nick, text)) {
        char from[1400];
        irc_jid_user(from, sizeof from, nick, conn->server->name, domain);
        chat_from(irc, from, conn->jid, text);
    }
    free(text);
}

static void on_invite(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    if (m->nparams < 2 || !irc_valid_channel(m->params[1], conn->chantypes))
        return; /* a name that cannot be a room JID */
    irc_t *irc = conn->irc;
    const char *domain = ferry_component_domain(irc->comp);
    char room[1400], from[1400];
    irc_jid_room(room, sizeof room, m->params[1], conn->server->name, domain);
    irc_jid_user(from, sizeof from, nick, conn->server->name, domain);
    out_t *o = &(out_t){0};
    raw(o, "<message");
    attr(o, "from", room);
    attr(o, "to", conn->jid);
    raw(o, "><x xmlns='" NS_MUC_USER "'><invite");
    attr(o, "from", from);
    raw(o, "/></x></message>");
    emit(irc, o);
}

/* 341 me nick #chan: our INVITE went out; said in the room. */
static void on_inviting(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = m->nparams >= 3 ? find_room(conn, m->params[2]) : NULL;
    if (!room || !room->announced) {
        on_other_numeric(conn, m);
        return;
    }
    char text[IRC_LINE_MAX];
    snprintf(text, sizeof text, "%s has been invited to %s", m->params[1], room->chan->name);
    room_says(conn, room, text);
}

/* Numerics that refuse a JOIN, and what they mean in MUC. */
static void on_join_refused(irc_conn_t *conn, irc_msg_t *m, const char *condition)
{
    if (m->nparams < 2)
        return;
    irc_room_t *room = find_room(conn, m->params[1]);
    if (!room || room->joined)
        return;
    char *text = irc_text_to_utf8(m->nparams > 2 ? m->params[2] : "cannot join");
    for (size_t i = 0; i < room->nresources; i++)
        join_error(conn, room, room->resources[i], "auth", condition, text);
    free(text);
    room_free(conn, room);
    maybe_quit(conn);
}

static void on_nick_refused(irc_conn_t *conn, irc_msg_t *m, const char *condition)
{
    if (conn->state != IRC_READY && conn->restored && strlen(conn->wanted_nick) < 24) {
        /* Putting users back after a restart (maybe a crash, the old
         * connection not yet timed out): another nick, not a failed join;
         * the self-presence says it with 210. */
        strcat(conn->wanted_nick, "_");
        const char *p[] = {conn->wanted_nick};
        irc_conn_send_now(conn, "NICK", p, 1);
        return;
    }
    char *text = irc_text_to_utf8(m->nparams > 2 ? m->params[2] : "nickname in use");
    if (conn->state != IRC_READY) {
        finish_listings(conn, text);
        fail_joins(conn, condition, text); /* XEP-0045: a taken nick is a conflict */
        free(text);
        irc_conn_quit(conn, NULL);
        return;
    }
    for (irc_room_t *room = conn->rooms; room; room = room->next)
        for (size_t i = 0; i < room->nresources; i++)
            join_error(conn, room, room->resources[i], "cancel", condition, text);
    snprintf(conn->wanted_nick, sizeof conn->wanted_nick, "%s", conn->nick);
    free(text);
}

/* ---- LIST for disco#items ---- */

#define NS_RSM "http://jabber.org/protocol/rsm"
#define LIST_PAGE 100

/* 322 me #chan users :topic, while a disco#items waits (else the user's
 * own LIST). */
static void on_list_item(irc_conn_t *conn, irc_msg_t *m)
{
    if (ferry_list_empty(&conn->listings)) {
        on_other_numeric(conn, m);
        return;
    }
    if (m->nparams < 3 || !irc_valid_channel(m->params[1], conn->chantypes))
        return;
    if (conn->nlisted == conn->listed_cap) {
        conn->listed_cap = conn->listed_cap ? conn->listed_cap * 2 : 64;
        conn->listed = ferry_realloc(conn->listed, conn->listed_cap * sizeof *conn->listed);
    }
    irc_listed_t *l = &conn->listed[conn->nlisted++];
    l->channel = ferry_strdup(m->params[1]);
    l->users = strtol(m->params[2], NULL, 10);
    l->topic = irc_text_to_utf8(m->nparams > 3 ? m->params[3] : "");
}

static int by_channel(const void *a, const void *b)
{
    return strcmp(((const irc_listed_t *)a)->channel, ((const irc_listed_t *)b)->channel);
}

static const char *rsm_value(xmpp_stanza_t *set, const char *name)
{
    xmpp_stanza_t *el = set ? xmpp_stanza_get_child_by_name(set, name) : NULL;
    xmpp_stanza_t *t = el ? xmpp_stanza_get_children(el) : NULL;
    return t ? xmpp_stanza_get_text_ptr(t) : NULL;
}

static void answer_listing(irc_conn_t *conn, irc_listing_t *l)
{
    xmpp_stanza_t *iq = l->iq;
    irc_t *irc = conn->irc;
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(
        iq, "query", "http://jabber.org/protocol/disco#items");
    xmpp_stanza_t *set = q ? xmpp_stanza_get_child_by_name_and_ns(q, "set", NS_RSM) : NULL;
    const char *max_text = rsm_value(set, "max"), *after = rsm_value(set, "after");
    long max = max_text ? strtol(max_text, NULL, 10) : LIST_PAGE;
    if (max < 0 || max > LIST_PAGE)
        max = LIST_PAGE;
    size_t start = 0;
    while (after && start < conn->nlisted && strcmp(conn->listed[start].channel, after) <= 0)
        start++;
    xmpp_stanza_t *out;
    xmpp_stanza_t *res = ferry_iq_result(iq, "http://jabber.org/protocol/disco#items", &out);
    const char *domain = ferry_component_domain(irc->comp);
    size_t end = start;
    for (; end < conn->nlisted && end - start < (size_t)max; end++) {
        irc_listed_t *c = &conn->listed[end];
        char jid[1400], name[700];
        /* the JID escaped (XEP-0106) where needed; the name as IRC spells it */
        irc_jid_room(jid, sizeof jid, c->channel, l->short_jid ? NULL : conn->server->name,
                     domain);
        snprintf(name, sizeof name, "%s (%ld)%s%s", c->channel, c->users, *c->topic ? ": " : "",
                 c->topic);
        xmpp_stanza_t *item = ferry_stanza_add(out, "item", NULL);
        xmpp_stanza_set_attribute(item, "jid", jid);
        xmpp_stanza_set_attribute(item, "name", name);
    }
    xmpp_stanza_t *rset = ferry_stanza_add(out, "set", NS_RSM);
    if (end > start) {
        char index[32];
        snprintf(index, sizeof index, "%zu", start);
        xmpp_stanza_set_attribute(ferry_stanza_add_text(rset, "first", conn->listed[start].channel),
                                  "index", index);
        ferry_stanza_add_text(rset, "last", conn->listed[end - 1].channel);
    }
    char count[32];
    snprintf(count, sizeof count, "%zu", conn->nlisted);
    ferry_stanza_add_text(rset, "count", count);
    ferry_component_send_release(irc->comp, res);
}

static void listing_free(irc_listing_t *l)
{
    xmpp_stanza_release(l->iq);
    free(l);
}

static void listed_free(irc_conn_t *conn)
{
    for (size_t i = 0; i < conn->nlisted; i++) {
        free(conn->listed[i].channel);
        free(conn->listed[i].topic);
    }
    free(conn->listed);
    conn->listed = NULL;
    conn->nlisted = conn->listed_cap = 0;
    conn->list_sent = 0;
}

/* Answers every waiting disco#items: with the list, or with ERROR. */
static void finish_listings(irc_conn_t *conn, const char *error)
{
    if (conn->nlisted) /* qsort wants a real array, even for nothing */
        qsort(conn->listed, conn->nlisted, sizeof *conn->listed, by_channel);
    ferry_list_t *pos, *tmp;
    ferry_list_foreach_safe(pos, tmp, &conn->listings) {
        irc_listing_t *l = ferry_list_entry(pos, irc_listing_t, link);
        ferry_list_remove(&l->link);
        if (error)
            ferry_component_reply_error(conn->irc->comp, l->iq, "cancel",
                                        "remote-server-not-found", error);
        else
            answer_listing(conn, l);
        listing_free(l);
    }
    listed_free(conn);
}

/* 323: the LIST ended. */
static void on_list_end(irc_conn_t *conn, irc_msg_t *m)
{
    if (ferry_list_empty(&conn->listings)) {
        on_other_numeric(conn, m);
        return;
    }
    finish_listings(conn, NULL);
    maybe_quit(conn);
}

static void send_list(irc_conn_t *conn)
{
    if (!ferry_list_empty(&conn->listings) && !conn->list_sent && conn->state == IRC_READY) {
        conn->list_sent = 1;
        irc_conn_send(conn, "LIST", NULL, 0);
    }
}

/* ---- what the server says to the user: MOTD, replies, errors ---- */

static void on_motd_start(irc_conn_t *conn, irc_msg_t *m)
{
    (void)m;
    free(conn->motd);
    conn->motd = NULL;
}

static void on_motd_line(irc_conn_t *conn, irc_msg_t *m)
{
    const char *line = m->nparams >= 2 ? m->params[m->nparams - 1] : "";
    size_t have = conn->motd ? strlen(conn->motd) : 0, add = strlen(line);
    if (have + add > 8192)
        return; /* a MOTD that long is abuse, not news */
    conn->motd = ferry_realloc(conn->motd, have + add + 2);
    memcpy(conn->motd + have, line, add);
    memcpy(conn->motd + have + add, "\n", 2);
}

/* 376, or 422 (no MOTD) */
static void on_motd_end(irc_conn_t *conn, irc_msg_t *m)
{
    (void)m;
    conn->welcomed = 1;
    if (!conn->motd)
        return;
    size_t n = strlen(conn->motd);
    if (n && conn->motd[n - 1] == '\n')
        conn->motd[n - 1] = 0;
    char *text = irc_text_to_utf8(conn->motd);
    if (irc_state_motd_new(conn, text)) /* not again at every reconnect */
        irc_contact_says(conn, text);
    free(text);
    free(conn->motd);
    conn->motd = NULL;
}

/* Numerics nobody else handles, once registration is over: the answers to
 * raw commands and the refusals (482 not an operator, 401 no such nick...).
 * About a channel the user is in: said in the room; otherwise by the server
 * JID. */
static void on_other_numeric(irc_conn_t *conn, irc_msg_t *m)
{
    static const char *quiet[] = {"005", "321", "329", "366"};
    if (!conn->welcomed || m->nparams < 2)
        return;
    for (size_t i = 0; i < sizeof quiet / sizeof *quiet; i++)
        if (strcmp(m->command, quiet[i]) == 0)
            return;
    char joined[IRC_LINE_MAX + 1] = "";
    join_params(m, joined, sizeof joined, 0);
    irc_room_t *room = m->nparams > 2 ? find_room(conn, m->params[1]) : NULL;
    if (room && room->announced) {
        room_says(conn, room, joined);
        return;
    }
    char *text = irc_text_to_utf8(joined);
    irc_contact_says(conn, text);
    free(text);
}

/* What the bridge reads, by command or numeric; one handler set a row.
 * What is not here and is a numeric goes to on_other_numeric(). */
typedef struct command {
    const char *name;
    /* SENDER_ADDRESS: the sender becomes an address (room/nick or
     * nick%server), so it must be a nick a JID resource can hold, or the
     * line is ignored; SENDER_UNLESS_SERVER: so too, except for a server's
     * own PRIVMSG or NOTICE to us, without a prefix. */
    enum { SENDER_ANY, SENDER_ADDRESS, SENDER_UNLESS_SERVER } sender;
    void (*event)(irc_conn_t *conn, irc_msg_t *m, const char *nick); /* NICK: the sender's */
    void (*reply)(irc_conn_t *conn, irc_msg_t *m);
    /* a refusal, and the XMPP error condition it stands for */
    void (*refused)(irc_conn_t *conn, irc_msg_t *m, const char *condition);
    const char *condition;
} command_t;

/* The most frequent first: every line is looked up here. */
static const command_t commands[] = {
    {"PRIVMSG", SENDER_UNLESS_SERVER, .event = on_privmsg},
    {"NOTICE", SENDER_UNLESS_SERVER, .event = on_privmsg},
    {"JOIN", SENDER_ADDRESS, .event = on_join},
    {"PART", SENDER_ADDRESS, .event = on_part},
    {"QUIT", SENDER_ADDRESS, .event = on_quit},
    {"NICK", SENDER_ADDRESS, .event = on_nick},
    {"KICK", SENDER_ADDRESS, .event = on_part},
    {"MODE", SENDER_ANY, .event = on_mode},
    {"TOPIC", SENDER_ADDRESS, .event = on_topic},
    {"INVITE", SENDER_ADDRESS, .event = on_invite},
    {"PONG", SENDER_ANY, .reply = on_pong},
    {"353", SENDER_ANY, .reply = on_names},
    {"366", SENDER_ANY, .reply = on_end_of_names},
    {"332", SENDER_ANY, .event = on_topic},
    {"333", SENDER_ANY, .reply = on_topic_setter},
    {"352", SENDER_ANY, .reply = on_who_reply},
    {"315", SENDER_ANY, .reply = on_end_of_who},
    {"341", SENDER_ANY, .reply = on_inviting},
    {"433", SENDER_ANY, .refused = on_nick_refused, .condition = "conflict"},
    {"432", SENDER_ANY, .refused = on_nick_refused, .condition = "not-acceptable"}, /* erroneous */
    {"471", SENDER_ANY, .refused = on_join_refused, .condition = "service-unavailable"},
    {"405", SENDER_ANY, .refused = on_join_refused, .condition = "service-unavailable"},
    {"473", SENDER_ANY, .refused = on_join_refused, .condition = "registration-required"},
    {"474", SENDER_ANY, .refused = on_join_refused, .condition = "forbidden"},
    {"475", SENDER_ANY, .refused = on_join_refused, .condition = "not-authorized"},
    {"403", SENDER_ANY, .refused = on_join_refused, .condition = "item-not-found"},
    {"479", SENDER_ANY, .refused = on_join_refused, .condition = "item-not-found"},
    {"322", SENDER_ANY, .reply = on_list_item},
    {"323", SENDER_ANY, .reply = on_list_end},
    {"375", SENDER_ANY, .reply = on_motd_start},
    {"372", SENDER_ANY, .reply = on_motd_line},
    {"376", SENDER_ANY, .reply = on_motd_end},
    {"422", SENDER_ANY, .reply = on_motd_end},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command_t *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int names_sender(const irc_conn_t *conn, const command_t *c, const irc_msg_t *m)
{
    if (c->sender == SENDER_UNLESS_SERVER)
        return m->prefix || (m->nparams && strchr(conn->chantypes, m->params[0][0]));
    return c->sender == SENDER_ADDRESS;
}

static void on_line(void *arg, irc_conn_t *conn, irc_msg_t *m)
{
    (void)arg;
    const command_t *c = find_command(m->command);
    if (!c) {
        if (is_numeric(m->command))
            on_other_numeric(conn, m);
        return;
    }
    char nick[IRC_NICK_MAX];
    irc_prefix_nick(m->prefix, nick, sizeof nick);
    if (!irc_nick_usable(nick) && names_sender(conn, c, m)) {
        ferry_log_debug(ferry_component_name(conn->irc->comp),
                        "ignored a %s whose sender cannot be a JID resource", c->name);
        return;
    }
    if (c->event)
        c->event(conn, m, nick);
    else if (c->reply)
        c->reply(conn, m);
    else
        c->refused(conn, m, c->condition);
}

static void send_join(irc_conn_t *conn, irc_room_t *room)
{
    const char *p[] = {room->name};
    irc_conn_send(conn, "JOIN", p, 1);
}

/* The commands the user asked to send after connecting (NickServ,
 * modes...), before the JOINs; a line IRC cannot carry is skipped. */
static void after_connect(irc_conn_t *conn)
{
    char *commands = irc_settings_commands(conn->irc, conn->server->name, conn->jid);
    for (char *line = commands ? strtok(commands, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        irc_msg_t *m = irc_msg_parse(line, strlen(line));
        if (m)
            irc_conn_send(conn, m->command, (const char *const *)m->params, m->nparams);
        free(m);
    }
    free(commands);
}

/* ---- the connection's life, as the bridge sees it ---- */

static void registered(irc_conn_t *conn)
{
    conn->welcomed = 0;
    ferry_log_info(ferry_component_name(conn->irc->comp), "connected to IRC server %s",
                   conn->server->name);
    irc_contact_online(conn, 1);
    after_connect(conn);
    for (irc_room_t *room = conn->rooms; room; room = room->next)
        send_join(conn, room);
    send_list(conn);
}

static void on_state(void *arg, irc_conn_t *conn, enum irc_conn_state state)
{
    (void)arg;
    if (state == IRC_CONNECTING)
        irc_contact_connecting(conn);
    else if (state == IRC_REGISTERING)
        irc_contact_connected(conn);
    else if (state == IRC_READY)
        registered(conn);
}

/* The connection dropped (error, dead server, refused TLS...): the joins
 * fail when it never got in; else the rooms wait for it to come back (1). */
static int on_lost(void *arg, irc_conn_t *conn, const char *reason, int was_up)
{
    irc_t *irc = arg;
    ferry_log_warn(ferry_component_name(irc->comp), "IRC connection to %s lost: %s",
                   conn->server->name, reason);
    finish_listings(conn, reason);
    irc_contact_online(conn, 0);
    if (!irc->stopping)
        irc_contact_failed(conn, reason, was_up);
    if (!conn->registered || irc->stopping) {
        fail_joins(conn, "remote-server-not-found", reason); /* never got in */
        return 0;
    }
    /* A PART that IRC will never confirm now: done. */
    for (irc_room_t *room = conn->rooms, *next; room; room = next) {
        next = room->next;
        room->parting = 0;
        if (!room->nresources)
            room_free(conn, room);
    }
    if (!conn->rooms)
        return 0;
    /* XEP-0045 status 332: the service went away. The rooms stay; we come
     * back and rejoin while the user is in them. */
    for (irc_room_t *room = conn->rooms; room; room = room->next) {
        int codes[] = {110, 332, 0};
        if (room->announced) /* once, not again at every failed reconnect */
            occupant_to_all(conn, room,
                            &(occupant_t){.nick = conn->nick, .modes = "", .self = 1,
                                          .type = "unavailable", .codes = codes,
                                          .status = reason});
        if (room->joined) {
            room->chan->joined--;
            irc_ids_left(room);
        }
        room->joined = room->named = room->who_pending = room->announced = 0;
        held_free(room);
        if (room->chan->leader == conn) {
            room->chan->leader = NULL;
            room->chan->synced = 0;
        }
    }
    return 1;
}

/* The connection goes for good: out of the list, and what the bridge kept
 * on it is freed (rooms are left only when ferry stops to restart: they
 * stay stored). */
static void on_closed(void *arg, irc_conn_t *conn)
{
    irc_t *irc = arg;
    irc_conn_forget(irc, conn);
    irc_contact_online(conn, 0);
    while (conn->rooms)
        room_free(conn, conn->rooms);
    irc_ctcp_expire(conn, 0, 1);
    routes_free(conn);
    ferry_list_t *pos, *tmp;
    ferry_list_foreach_safe(pos, tmp, &conn->listings) {
        ferry_list_remove(pos);
        listing_free(ferry_list_entry(pos, irc_listing_t, link));
    }
    listed_free(conn);
    free(conn->motd);
    conn->motd = NULL;
}

static void on_freed(void *arg) { irc_conn_freed(arg); }

const irc_conn_handlers_t irc_bridge_conn_handlers = {
    .state = on_state,
    .line = on_line,
    .lost = on_lost,
    .closed = on_closed,
    .freed = on_freed,
};

void irc_bridge_disconnect(irc_conn_t *conn, const char *reason, int code)
{
    while (conn->rooms) {
        irc_room_t *room = conn->rooms;
        int codes[] = {110, code, 0};
        occupant_to_all(conn, room,
                        &(occupant_t){.nick = conn->nick, .modes = "", .self = 1,
                                      .type = "unavailable", .codes = codes, .status = reason});
        room_free(conn, room);
    }
    irc_conn_quit(conn, reason);
}

/* ---- XMPP -> IRC ---- */

static void stanza_error(irc_t *irc, xmpp_stanza_t *st, const char *type, const char *condition,
                         const char *text)
{
    ferry_component_reply_error(irc->comp, st, type, condition, text);
}

/* The user's connection to SERVER, opened if needed with NICK (or, when
 * NICK is NULL, the nick the user registered, else its local part). */
static irc_conn_t *conn_for(irc_t *irc, const char *bare, const irc_server_t *server,
                            const char *nick)
{
    irc_conn_t *conn = irc_find_conn(irc, bare, server->name);
    if (!conn) {
        irc_user_settings_t s;
        irc_settings_load(irc, server->name, bare, &s);
        char local[IRC_NICK_MAX];
        snprintf(local, sizeof local, "%.*s", (int)strcspn(bare, "@"), bare);
        if (!nick)
            nick = s.nick[0] ? s.nick : irc_valid_nick(local) ? local : "ferry";
        conn = irc_conn_new(irc, server, bare, nick, &irc_bridge_conn_handlers, irc);
        irc_conn_add(irc, conn);
        irc_conn_start(conn);
    }
    return conn;
}

static irc_room_t *room_new(irc_conn_t *conn, const irc_server_t *server, const char *channel,
                            const char *nick, int short_jid)
{
    irc_room_t *room = ferry_calloc(1, sizeof *room);
    ferry_list_init(&room->held);
    room->name = ferry_strdup(channel);
    room->asked_nick = ferry_strdup(nick);
    room->short_jid = short_jid;
    room->chan = irc_chan_get(conn->irc, server->name, channel, conn->casemap);
    irc_room_effective(conn->irc, server->name, channel, conn->jid, &room->record,
                       &room->persistent);
    /* at the end: joins are answered in the order they were sent */
    irc_room_t **end = &conn->rooms;
    while (*end)
        end = &(*end)->next;
    *end = room;
    return room;
}

/* RESOURCE leaves ROOM (told so unless it is gone); PART after the last. */
static void leave(irc_t *irc, irc_conn_t *conn, irc_room_t *room, const char *resource,
                  const char *status, int tell)
{
    if (!has_resource(room, resource))
        return;
    int codes[] = {110, 0};
    if (tell)
        occupant_presence(conn, room,
                          &(occupant_t){.nick = conn->nick, .modes = "", .self = 1,
                                        .type = "unavailable", .codes = codes},
                          resource);
    remove_resource(conn, room, resource);
    if (room->nresources || room->persistent)
        return; /* persistent: ferry stays in the channel and archives it */
    if (conn->state == IRC_READY && !room->parting) {
        char reason[400];
        snprintf(reason, sizeof reason, "%s", status && *status ? status : "Leaving");
        for (char *c = reason; *c; c++)
            if (*c == '\r' || *c == '\n')
                *c = ' '; /* a reason is one line */
        const char *p[] = {room->name, reason};
        if (irc_conn_send(conn, "PART", p, 2) != 0)
            irc_conn_send(conn, "PART", p, 1);
        /* Kept until IRC confirms: a join sent meanwhile (a client leaving
         * and joining again at once) is then a JOIN after that PART. */
        room->parting = 1;
        room->announced = 0;
        return;
    }
    if (room->parting)
        return;
    room_free(conn, room);
    maybe_quit(conn);
    (void)irc;
}

irc_room_t *irc_bridge_find_room(irc_conn_t *conn, const char *channel)
{
    return find_room(conn, channel);
}

int irc_bridge_in_room(irc_room_t *room, const char *jid)
{
    return room->announced && has_resource(room, jid);
}

/* The room of the user's connection a stanza to TO is about. */
static irc_room_t *room_of(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to,
                           irc_conn_t **conn_out)
{
    char bare[2100];
    ferry_jid_bare_of(xmpp_stanza_get_from(st), bare, sizeof bare);
    const irc_server_t *server = irc_find_server(irc, to->server);
    irc_conn_t *conn = server ? irc_find_conn(irc, bare, server->name) : NULL;
    *conn_out = conn;
    return conn && to->kind == IRC_JID_CHANNEL ? find_room(conn, to->channel) : NULL;
}

/* Errors that say a resource is gone, as Prosody's MUC reads them; others
 * (a full inbox, a policy) leave it in the room. */
static int says_gone(xmpp_stanza_t *st)
{
    static const char *gone[] = {"gone", "internal-server-error", "item-not-found",
                                 "jid-malformed", "recipient-unavailable", "redirect",
                                 "remote-server-not-found", "remote-server-timeout",
                                 "service-unavailable"};
    xmpp_stanza_t *error = xmpp_stanza_get_child_by_name(st, "error");
    xmpp_stanza_t *c = error ? xmpp_stanza_get_children(error) : NULL;
    while (c && !xmpp_stanza_is_tag(c))
        c = xmpp_stanza_get_next(c);
    if (!c)
        return 1; /* no condition: malformed, counts as gone */
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        if (strcmp(xmpp_stanza_get_name(c), gone[i]) == 0)
            return 1;
    return 0;
}

void irc_bridge_on_error(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to)
{
    irc_conn_t *conn;
    irc_room_t *room = room_of(irc, st, to, &conn);
    const char *name = xmpp_stanza_get_name(st);
    if (!room || (strcmp(name, "presence") != 0 && !says_gone(st)))
        return;
    /* no ghost occupant: that resource leaves, as biboumi does */
    leave(irc, conn, room, xmpp_stanza_get_from(st), "Error from the XMPP client", 0);
}

/* XEP-0410 self-ping, answered by the service (the "optimization"):
 * result while the resource is in the room; not-acceptable when it is not
 * (so it joins again); item-not-found for a nick nobody has (it was
 * renamed). Another occupant's nick: IRC users cannot answer XMPP pings, so
 * the service answers that they are there. */
int irc_bridge_ping(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    irc_conn_t *conn;
    irc_room_t *room = room_of(irc, iq, to, &conn);
    const char *from = xmpp_stanza_get_from(iq);
    const char *condition = NULL;
    if (!room || !irc_bridge_in_room(room, from))
        condition = "not-acceptable";
    else if (irc_casecmp(conn->casemap, to->nick, conn->nick) != 0 &&
             !irc_chan_member(room->chan, to->nick, conn->casemap))
        condition = "item-not-found";
    xmpp_stanza_t *res = ferry_iq_result(iq, NULL, NULL);
    if (condition) {
        xmpp_stanza_set_type(res, "error");
        char by[2100];
        ferry_jid_bare_of(xmpp_stanza_get_to(iq), by, sizeof by);
        xmpp_stanza_t *error = ferry_stanza_add(res, "error", NULL);
        xmpp_stanza_set_type(error, condition[0] == 'n' ? "modify" : "cancel");
        xmpp_stanza_set_attribute(error, "by", by); /* the room said so, not a server between */
        ferry_stanza_add(error, condition, "urn:ietf:params:xml:ns:xmpp-stanzas");
    }
    ferry_component_send_release(irc->comp, res);
    return 1;
}

void irc_bridge_presence(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to)
{
    const char *type = xmpp_stanza_get_type(st);
    const char *from = xmpp_stanza_get_from(st);
    if (to->kind != IRC_JID_CHANNEL)
        return;
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    const irc_server_t *server = irc_find_server(irc, to->server);
    irc_conn_t *conn = server ? irc_find_conn(irc, bare, server->name) : NULL;
    irc_room_t *room = conn ? find_room(conn, to->channel) : NULL;
    if (type && strcmp(type, "unavailable") == 0) {
        if (room) {
            xmpp_stanza_t *s = xmpp_stanza_get_child_by_name(st, "status");
            char *status = s ? xmpp_stanza_get_text(s) : NULL;
            leave(irc, conn, room, from, status, 1);
            if (status)
                xmpp_free(ferry_component_xmpp(irc->comp), status);
        }
        return;
    }
    if (type)
        return; /* subscriptions, probes, errors: nothing to do for a room */
    if (!server) {
        stanza_error(irc, st, "cancel", "not-allowed", "this IRC server is not served here");
        return;
    }
    if (!irc_valid_nick(to->nick)) {
        stanza_error(irc, st, "modify", "jid-malformed",
                     to->nick[0] ? "this nick cannot be used on IRC" : "a nick is required");
        return;
    }
    if (!irc_valid_channel(to->channel, "#&+!")) {
        stanza_error(irc, st, "modify", "not-acceptable", "not a valid IRC channel name");
        return;
    }
    int history_max;
    int64_t history_since;
    irc_history_request(irc, st, &history_max, &history_since);
    if (room && has_resource(room, from)) {
        if (xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_MUC)) {
            /* A join while joined (a client re-syncing after a blip): a
             * whole new join for this resource, not a nick change. */
            size_t i = resource_index(room, from);
            room->history_max[i] = history_max;
            room->history_since[i] = history_since;
            set_asked_nick(room, to->nick);
            if (room->announced)
                announce_to(conn, room, i);
            return;
        }
        /* 7.6: a presence to room/newnick without the muc <x/> */
        if (irc_casecmp(conn->casemap, to->nick, conn->nick) != 0 && conn->state == IRC_READY) {
            const char *p[] = {to->nick};
            snprintf(conn->wanted_nick, sizeof conn->wanted_nick, "%s", to->nick);
            irc_conn_send(conn, "NICK", p, 1);
        }
        return;
    }
    conn = conn_for(irc, bare, server, to->nick);
    if (!room) {
        room = room_new(conn, server, to->channel, to->nick, to->implicit_server);
        add_resource(room, from, history_max, history_since);
        irc_state_joined(conn, room, from);
        if (conn->state == IRC_READY)
            send_join(conn, room);
        return;
    }
    if (!room->nresources) /* a persistent room the user comes back to */
        room->short_jid = to->implicit_server;
    set_asked_nick(room, to->nick);
    add_resource(room, from, history_max, history_since);
    irc_state_joined(conn, room, from);
    if (room->announced)
        announce_to(conn, room, room->nresources - 1); /* another resource of a user there */
}

void irc_bridge_user_options_changed(irc_t *irc, const char *bare)
{
    ferry_list_t *pos, *tmp; /* leaving a room may close the connection */
    ferry_list_foreach_safe(pos, tmp, &irc->conns) {
        irc_conn_t *c = ferry_list_entry(pos, irc_conn_t, link);
        if (strcmp(c->jid, bare) != 0)
            continue;
        const irc_server_t *server = c->server;
        /* Names first: applying may free a room. */
        size_t n = 0;
        for (irc_room_t *r = c->rooms; r; r = r->next)
            n++;
        char **names = ferry_calloc(n ? n : 1, sizeof *names);
        n = 0;
        for (irc_room_t *r = c->rooms; r; r = r->next)
            names[n++] = ferry_strdup(r->name);
        for (size_t i = 0; i < n; i++) {
            irc_bridge_room_options_changed(irc, bare, server, names[i]);
            free(names[i]);
        }
        free(names);
    }
}

void irc_bridge_room_options_changed(irc_t *irc, const char *bare, const irc_server_t *server,
                                 const char *channel)
{
    irc_conn_t *conn = irc_find_conn(irc, bare, server->name);
    irc_room_t *room = conn ? find_room(conn, channel) : NULL;
    if (!room)
        return;
    int record;
    irc_room_effective(irc, server->name, room->name, bare, &record, &room->persistent);
    irc_ids_record(room, record);
    if (room->persistent || room->nresources)
        return;
    /* No longer persistent and nobody in it: leave now. */
    if (conn->state == IRC_READY) {
        const char *p[] = {room->name, "Leaving"};
        irc_conn_send(conn, "PART", p, 2);
    }
    room_free(conn, room);
    maybe_quit(conn);
}

void irc_bridge_restore(irc_t *irc, const irc_server_t *server, const char *channel,
                    const char *bare, const char *resource, const char *nick, int short_jid)
{
    irc_conn_t *conn = irc_find_conn(irc, bare, server->name);
    if (!conn) {
        conn = conn_for(irc, bare, server, nick);
        conn->restored = 1;
    }
    irc_room_t *room = find_room(conn, channel);
    if (!room) {
        room = room_new(conn, server, channel, nick ? nick : conn->nick, short_jid);
        if (conn->state == IRC_READY)
            send_join(conn, room);
    }
    if (resource && !has_resource(room, resource)) {
        add_resource(room, resource, 0, 0); /* it has the history it had */
        if (room->announced)
            announce_to(conn, room, room->nresources - 1);
    }
}

/* Sends TEXT as PRIVMSG lines to TARGET ("/me " as a CTCP ACTION); SENT
 * (may be NULL) gets the lines as others will read them. */
static int send_text(irc_conn_t *conn, const char *target, const char *text,
                     irc_sent_lines_t *sent)
{
    int action = strncmp(text, "/me ", 4) == 0;
    char **pieces;
    size_t n = irc_split_text("PRIVMSG", target, action ? text + 4 : text, &pieces);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char buf[IRC_LINE_MAX];
        const char *line = pieces[i];
        if (action) {
            snprintf(buf, sizeof buf, "\1ACTION %s\1", pieces[i]);
            line = buf;
        }
        const char *p[] = {target, line};
        rc = irc_conn_send(conn, "PRIVMSG", p, 2);
        if (rc == 0 && sent && sent->n < sizeof sent->hash / sizeof *sent->hash)
            sent->hash[sent->n++] = irc_ids_hash(conn->nick, line);
    }
    irc_pieces_free(pieces, n);
    return rc;
}

/* Text typed to the server JID: one IRC command per line, as biboumi does.
 * Each line is parsed and written again, so it stays one line; nothing is
 * sent unless every line can be. */
static void raw_commands(irc_t *irc, xmpp_stanza_t *st, irc_conn_t *conn, const char *bare,
                         const irc_server_t *server, const char *body)
{
    for (int sending = 0; sending < 2; sending++) {
        for (const char *p = body; *p; p += strspn(p, "\r\n")) {
            size_t n = strcspn(p, "\r\n");
            size_t blank = strspn(p, " \t");
            const char *line = p + blank;
            p += n;
            if (blank >= n)
                continue;
            irc_msg_t *m = irc_msg_parse(line, n - blank);
            char out[IRC_LINE_MAX + 1];
            const char *const *params = m ? (const char *const *)m->params : NULL;
            if (!m || !irc_format(out, sizeof out, m->command, params, m->nparams)) {
                stanza_error(irc, st, "modify", m ? "not-acceptable" : "bad-request",
                             m ? "IRC cannot carry this command" : "not an IRC command");
                free(m);
                return;
            }
            if (sending && !conn)
                conn = conn_for(irc, bare, server, NULL);
            if (sending)
                irc_conn_send(conn, m->command, params, m->nparams);
            free(m);
        }
    }
}

/* XEP-0045 mediated invitation: an IRC user gets INVITE, an XMPP user a
 * mediated invitation from the room. */
static void invite(irc_t *irc, xmpp_stanza_t *st, irc_conn_t *conn, irc_room_t *room,
                   const char *target, const char *from)
{
    irc_jid_t who;
    const char *domain = ferry_component_domain(irc->comp);
    ferry_jid_t tj;
    if (target && !strpbrk(target, "@/")) {
        /* a bare nick, as clients offer for IRC rooms: INVITE it; 341
         * then says so in the room */
        if (!irc_valid_nick(target)) {
            stanza_error(irc, st, "modify", "jid-malformed", "not an IRC nick");
            return;
        }
        const char *p[] = {target, room->name};
        irc_conn_send(conn, "INVITE", p, 2);
        return;
    }
    if (!target || ferry_jid_parse(target, &tj) != 0) {
        stanza_error(irc, st, "modify", "jid-malformed", "invite whom?");
        return;
    }
    if (strcmp(tj.domain, domain) == 0) {
        if (irc_jid_parse(target, irc->default_server, conn->chantypes, &who) != 0 ||
            who.kind != IRC_JID_USER || strcasecmp(who.server, conn->server->name) != 0 ||
            !irc_valid_nick(who.nick)) {
            stanza_error(irc, st, "modify", "jid-malformed", "not a user of this IRC server");
            return;
        }
        const char *p[] = {who.nick, room->name};
        irc_conn_send(conn, "INVITE", p, 2);
        return;
    }
    char room_addr[1400];
    irc_bridge_room_jid(conn, room, NULL, room_addr, sizeof room_addr);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    out_t *o = &(out_t){0};
    raw(o, "<message");
    attr(o, "from", room_addr);
    attr(o, "to", target);
    raw(o, "><x xmlns='" NS_MUC_USER "'><invite");
    attr(o, "from", bare);
    raw(o, "/></x></message>");
    emit(irc, o);
}

/* "/mode +k secret" typed in a room: MODE #chan +k secret ("/mode" alone
 * asks the channel's modes). The change comes back as a MODE, said in the
 * room. */
static void room_mode(irc_t *irc, xmpp_stanza_t *st, irc_conn_t *conn, irc_room_t *room,
                      const char *args)
{
    char buf[IRC_LINE_MAX];
    const char *p[16] = {room->name};
    int n = 1;
    snprintf(buf, sizeof buf, "%s", args);
    for (char *w = strtok(buf, " \t"); w && n < 16; w = strtok(NULL, " \t"))
        p[n++] = w;
    if (strpbrk(args, "\r\n") || irc_conn_send(conn, "MODE", p, n) != 0)
        stanza_error(irc, st, "modify", "not-acceptable", "IRC cannot carry this MODE");
}

static void to_channel(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to, irc_conn_t *conn,
                       const char *from)
{
    irc_room_t *room = conn ? find_room(conn, to->channel) : NULL;
    if (!room || !has_resource(room, from) || !room->joined) {
        stanza_error(irc, st, "modify", "not-acceptable", "join the room first");
        return;
    }
    xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_MUC_USER);
    xmpp_stanza_t *inv = x ? xmpp_stanza_get_child_by_name(x, "invite") : NULL;
    if (inv) {
        invite(irc, st, conn, room, xmpp_stanza_get_attribute(inv, "to"), from);
        return;
    }
    xmpp_stanza_t *subject = xmpp_stanza_get_child_by_name(st, "subject");
    if (subject) {
        char *text = xmpp_stanza_get_text(subject);
        const char *p[] = {room->name, text ? text : ""};
        for (char *c = text; c && *c; c++)
            if (*c == '\r' || *c == '\n')
                *c = ' '; /* one line: a topic has no newlines */
        irc_conn_send(conn, "TOPIC", p, 2);
        if (text)
            xmpp_free(ferry_component_xmpp(irc->comp), text);
    }
    char *body = xmpp_message_get_body(st);
    if (!body)
        return;
    irc_sent_lines_t sent = {0};
    if (strncmp(body, "/mode", 5) == 0 && (body[5] == ' ' || !body[5])) {
        room_mode(irc, st, conn, room, body + 5);
    } else if (send_text(conn, room->name, body, &sent) != 0) {
        stanza_error(irc, st, "modify", "not-acceptable", "the message cannot be sent to IRC");
    } else {
        const char *sid = irc_ids_own(conn, room, body, &sent);
        /* IRC does not echo: reflect it to every resource, with the
         * client's id and origin-id (XEP-0359) and the archive's. */
        const char *id = xmpp_stanza_get_id(st);
        xmpp_stanza_t *origin = xmpp_stanza_get_child_by_name_and_ns(st, "origin-id", NS_SID);
        const char *origin_id = origin ? xmpp_stanza_get_attribute(origin, "id") : NULL;
        for (size_t i = 0; i < room->nresources; i++)
            groupchat(conn, room, conn->nick, room->resources[i], id, body, NULL, sid, origin_id);
    }
    xmpp_free(ferry_component_xmpp(irc->comp), body);
}

void irc_bridge_message(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to)
{
    const char *type = xmpp_stanza_get_type(st);
    if (type && strcmp(type, "error") == 0)
        return;
    const char *from = xmpp_stanza_get_from(st);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    const irc_server_t *server = irc_served_server(irc, st, to->server, NULL, 0);
    if (!server)
        return;
    irc_conn_t *conn = irc_find_conn(irc, bare, server->name);
    if (to->kind == IRC_JID_CHANNEL && !to->nick[0]) {
        to_channel(irc, st, to, conn, from);
        return;
    }
    /* A private message: to "nick%server" or to "#chan%server/nick". */
    char *body = xmpp_message_get_body(st);
    if (!body)
        return;
    const char *nick = to->nick;
    if (to->kind == IRC_JID_SERVER) {
        raw_commands(irc, st, conn, bare, server, body);
    } else if (!irc_valid_nick(nick)) {
        stanza_error(irc, st, "modify", "jid-malformed", "not an IRC nick");
    } else {
        if (!conn)
            conn = conn_for(irc, bare, server, NULL);
        if (send_text(conn, nick, body, NULL) != 0)
            stanza_error(irc, st, "modify", "not-acceptable", "the message cannot be sent");
        else /* answers come back where this was written */
            route_pm(conn, nick, to->kind == IRC_JID_CHANNEL ? to->channel : NULL);
    }
    xmpp_free(ferry_component_xmpp(irc->comp), body);
}

/* XEP-0045 muc#admin: kicking (role none) and giving or taking operator
 * (moderator / participant) and voice (visitor takes it). IRC decides
 * whether the user may: its refusal comes back as a server notice. */
int irc_bridge_admin(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(
        iq, "query", "http://jabber.org/protocol/muc#admin");
    const char *type = xmpp_stanza_get_type(iq);
    if (!q || !type || strcmp(type, "set") != 0 || to->kind != IRC_JID_CHANNEL || to->nick[0])
        return 0;
    const char *from = xmpp_stanza_get_from(iq);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    const irc_server_t *server = irc_find_server(irc, to->server);
    irc_conn_t *conn = server ? irc_find_conn(irc, bare, server->name) : NULL;
    irc_room_t *room = conn ? find_room(conn, to->channel) : NULL;
    if (!room || !has_resource(room, from) || !room->joined) {
        stanza_error(irc, iq, "modify", "not-acceptable", "join the room first");
        return 1;
    }
    for (xmpp_stanza_t *item = xmpp_stanza_get_children(q); item;
         item = xmpp_stanza_get_next(item)) {
        const char *name = xmpp_stanza_get_name(item);
        const char *nick = xmpp_stanza_get_attribute(item, "nick");
        const char *role = xmpp_stanza_get_attribute(item, "role");
        if (!name || strcmp(name, "item") != 0)
            continue;
        if (!nick || !role || !irc_valid_nick(nick)) {
            stanza_error(irc, iq, "modify", "bad-request", "an item needs a nick and a role");
            return 1;
        }
        int ok;
        if (strcmp(role, "none") == 0) {
            xmpp_stanza_t *r = xmpp_stanza_get_child_by_name(item, "reason");
            char *reason = r ? xmpp_stanza_get_text(r) : NULL;
            for (char *c = reason; c && *c; c++)
                if (*c == '\r' || *c == '\n')
                    *c = ' ';
            const char *p[] = {room->name, nick, reason && *reason ? reason : "Kicked"};
            ok = irc_conn_send(conn, "KICK", p, 3) == 0;
            if (reason)
                xmpp_free(ferry_component_xmpp(irc->comp), reason);
        } else {
            const char *mode = strcmp(role, "moderator") == 0     ? "+o"
                               : strcmp(role, "participant") == 0 ? "-o"
                               : strcmp(role, "visitor") == 0     ? "-v"
                                                                  : NULL;
            if (!mode) {
                stanza_error(irc, iq, "cancel", "feature-not-implemented", "unknown role");
                return 1;
            }
            const char *p[] = {room->name, mode, nick};
            ok = irc_conn_send(conn, "MODE", p, 3) == 0;
        }
        if (!ok) {
            stanza_error(irc, iq, "modify", "not-acceptable", "cannot be sent to IRC");
            return 1;
        }
    }
    ferry_component_send_release(irc->comp, ferry_iq_result(iq, NULL, NULL));
    return 1;
}

void irc_bridge_list(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    char bare[2100];
    const irc_server_t *server = irc_served_server(irc, iq, to->server, bare, sizeof bare);
    if (!server)
        return;
    irc_conn_t *conn = conn_for(irc, bare, server, NULL);
    irc_listing_t *l = ferry_calloc(1, sizeof *l);
    l->iq = xmpp_stanza_clone(iq);
    l->short_jid = to->implicit_server;
    ferry_list_insert_head(&conn->listings, &l->link);
    send_list(conn);
}
