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
    char *h = malloc(cap);
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

void bridge_room_jid(irc_conn_t *conn, irc_room_t *room, const char *nick, char *buf, size_t len)
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

/* <presence from=room/nick to=resource>... with status codes (0-ended). */
static void occupant_presence(irc_conn_t *conn, irc_room_t *room, const char *nick,
                              const char *modes, const char *to, const char *type,
                              const char *new_nick, const int *codes, const char *status)
{
    out_t *o = &(out_t){0};
    char from[1400];
    bridge_room_jid(conn, room, nick, from, sizeof from);
    const char *affiliation, *role;
    roles(modes ? modes : "", &affiliation, &role);
    raw(o, "<presence");
    attr(o, "from", from);
    attr(o, "to", to);
    if (type) {
        attr(o, "type", type);
        role = "none";
    }
    raw(o, "><x xmlns='" NS_MUC_USER "'><item");
    attr(o, "affiliation", affiliation);
    attr(o, "role", role);
    if (new_nick)
        attr(o, "nick", new_nick);
    raw(o, "/>");
    for (const int *c = codes; c && *c; c++) {
        char code[48];
        snprintf(code, sizeof code, "<status code='%d'/>", *c);
        raw(o, code);
    }
    raw(o, "</x>");
    if (status) {
        element(o, "status", status);
    }
    raw(o, "</presence>");
    emit(conn->irc, o);
}

/* An occupant's presence to every resource of the user in the room. */
static void occupant_to_all(irc_conn_t *conn, irc_room_t *room, const char *nick,
                            const char *modes, const char *type, const char *new_nick,
                            const int *codes, const char *status)
{
    for (size_t i = 0; i < room->nresources; i++)
        occupant_presence(conn, room, nick, modes, room->resources[i], type, new_nick, codes,
                          status);
}

static void groupchat(irc_conn_t *conn, irc_room_t *room, const char *nick, const char *to,
                      const char *id, const char *body, const char *subject)
{
    out_t *o = &(out_t){0};
    char from[1400];
    bridge_room_jid(conn, room, nick, from, sizeof from);
    raw(o, "<message type='groupchat'");
    attr(o, "from", from);
    attr(o, "to", to);
    if (id)
        attr(o, "id", id);
    raw(o, ">");
    if (subject) {
        element(o, "subject", subject);
    }
    if (body) {
        element(o, "body", body);
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

/* A chat message from the server JID, which stands for the IRC server. */
static void server_says(irc_conn_t *conn, const char *text)
{
    char from[600];
    snprintf(from, sizeof from, "%s@%s", conn->server->name,
             ferry_component_domain(conn->irc->comp));
    chat_from(conn->irc, from, conn->jid, text);
}

/* A presence error for a join that failed. */
static void join_error(irc_conn_t *conn, irc_room_t *room, const char *to, const char *type,
                       const char *condition, const char *text)
{
    out_t *o = &(out_t){0};
    char from[1400];
    bridge_room_jid(conn, room, conn->wanted_nick, from, sizeof from);
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
    room->resources = realloc(room->resources, n * sizeof *room->resources);
    room->history_max = realloc(room->history_max, n * sizeof *room->history_max);
    room->history_since = realloc(room->history_since, n * sizeof *room->history_since);
    room->resources[room->nresources] = strdup(jid);
    room->history_max[room->nresources] = history_max;
    room->history_since[room->nresources] = history_since;
    room->nresources++;
}

static void remove_resource(irc_room_t *room, const char *jid)
{
    for (size_t i = 0; i < room->nresources; i++)
        if (strcmp(room->resources[i], jid) == 0) {
            free(room->resources[i]);
            size_t last = --room->nresources;
            room->resources[i] = room->resources[last];
            room->history_max[i] = room->history_max[last];
            room->history_since[i] = room->history_since[last];
            return;
        }
}

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
        if (room->joined)
            room->chan->joined--;
        irc_chan_release(conn->irc, room->chan);
    }
    for (size_t i = 0; i < room->nresources; i++)
        free(room->resources[i]);
    free(room->resources);
    free(room->history_max);
    free(room->history_since);
    free(room->name);
    free(room->asked_nick);
    free(room);
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

/* ---- IRC -> XMPP ---- */

/* Everything a resource needs on entering: occupants, itself, the subject. */
static void announce_to(irc_conn_t *conn, irc_room_t *room, size_t index)
{
    const char *resource = room->resources[index];
    irc_chan_t *chan = room->chan;
    irc_member_t *self = irc_chan_member(chan, conn->nick, conn->casemap);
    for (size_t i = 0; i < chan->nmembers; i++) {
        irc_member_t *m = &chan->members[i];
        if (m != self && !m->gone)
            occupant_presence(conn, room, m->nick, m->modes, resource, NULL, NULL, NULL, NULL);
    }
    const char *self_modes = self ? self->modes : "";
    int codes[3] = {110, 0, 0};
    if (irc_casecmp(conn->casemap, conn->nick, room->asked_nick) != 0 ||
        strcmp(conn->nick, room->asked_nick) != 0)
        codes[1] = 210; /* not the nick asked for: the server's, or the connection's */
    occupant_presence(conn, room, conn->nick, self_modes, resource, NULL, NULL, codes, NULL);
    history_replay(conn, room, index); /* XEP-0045: history, then the subject */
    /* Clients wait for the subject before they show the room as joined. */
    groupchat(conn, room, NULL, resource, NULL, NULL, chan->topic ? chan->topic : "");
}

static void announce(irc_conn_t *conn, irc_room_t *room)
{
    room->announced = 1;
    for (size_t i = 0; i < room->nresources; i++)
        announce_to(conn, room, i);
}

static void on_join(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    irc_room_t *room = m->nparams ? find_room(conn, m->params[0]) : NULL;
    if (!room)
        return;
    if (irc_casecmp(conn->casemap, nick, conn->nick) == 0) {
        if (!room->joined)
            room->chan->joined++;
        room->joined = 1;
        if (leads(conn, room)) {
            /* NAMES follows and fills the list afresh. */
            irc_chan_clear(room->chan);
            room->chan->synced = 0;
        } else if (room->chan->synced) {
            irc_chan_add(room->chan, nick, "", conn->casemap);
        }
        return;
    }
    if (!irc_chan_member(room->chan, nick, conn->casemap))
        irc_chan_add(room->chan, nick, "", conn->casemap);
    if (room->announced)
        occupant_to_all(conn, room, nick, "", NULL, NULL, NULL, NULL);
}

/* Applies a departure to the shared list: the first connection to see it
 * marks the member, the others acknowledge. MODES gets the member's modes. */
static int depart(irc_conn_t *conn, irc_chan_t *chan, const char *nick, char modes[8])
{
    irc_member_t *m = irc_chan_witness(chan, nick, conn->casemap);
    if (!m)
        return 0;
    snprintf(modes, 8, "%s", m->modes);
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
    char *names = strdup(m->params[3]);
    for (char *name = strtok(names, " "); name; name = strtok(NULL, " ")) {
        size_t np = strspn(name, conn->prefixes);
        char modes[8];
        snprintf(modes, sizeof modes, "%.*s", (int)(np < 7 ? np : 7), name);
        if (irc_nick_usable(name + np))
            irc_chan_add(room->chan, name + np, modes, conn->casemap);
    }
    free(names);
}

static void on_end_of_names(irc_conn_t *conn, irc_msg_t *m)
{
    irc_room_t *room = m->nparams >= 2 ? find_room(conn, m->params[1]) : NULL;
    if (!room)
        return;
    if (leads(conn, room))
        room->chan->synced = 1;
    if (room->joined && !room->announced)
        announce(conn, room);
}

static void on_part(irc_conn_t *conn, irc_msg_t *m, const char *nick, int kicked)
{
    /* PART #chan :reason / KICK #chan victim :reason */
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
    char modes[8] = "";
    if (irc_casecmp(conn->casemap, who, conn->nick) == 0) {
        irc_member_t *member = irc_chan_member(room->chan, who, conn->casemap);
        if (member)
            snprintf(modes, sizeof modes, "%s", member->modes);
        int codes[] = {110, kicked ? 307 : 0, 0};
        if (room->announced || kicked)
            occupant_to_all(conn, room, who, modes, "unavailable", NULL, codes, text);
        room_free(conn, room);
        free(text);
        maybe_quit(conn);
        return;
    }
    depart(conn, room->chan, who, modes);
    int codes[] = {kicked ? 307 : 0, 0};
    if (room->announced)
        occupant_to_all(conn, room, who, modes, "unavailable", NULL, codes, text);
    free(text);
}

static void on_quit(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    char *text = m->nparams ? irc_text_to_utf8(m->params[0]) : NULL;
    for (irc_room_t *room = conn->rooms; room; room = room->next) {
        char modes[8];
        if (depart(conn, room->chan, nick, modes) && room->announced)
            occupant_to_all(conn, room, nick, modes, "unavailable", NULL, NULL, text);
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
            int gone[] = {303, self ? 110 : 0, 0};
            int back[] = {self ? 110 : 0, 0};
            occupant_to_all(conn, room, nick, modes, "unavailable", new_nick, gone, NULL);
            occupant_to_all(conn, room, new_nick, modes, NULL, NULL, back, NULL);
        }
    }
    if (self) {
        snprintf(conn->nick, sizeof conn->nick, "%s", new_nick);
        snprintf(conn->wanted_nick, sizeof conn->wanted_nick, "%s", new_nick);
    }
}

static void on_mode(irc_conn_t *conn, irc_msg_t *m)
{
    if (m->nparams < 2)
        return;
    irc_room_t *room = find_room(conn, m->params[0]);
    if (!room)
        return;
    int adding = 1, arg = 2;
    for (const char *c = m->params[1]; *c; c++) {
        if (*c == '+' || *c == '-') {
            adding = *c == '+';
            continue;
        }
        const char *prefix = irc_conn_mode_prefix(conn, *c);
        if (!prefix) {
            /* Modes with an argument that are not prefixes still use one. */
            if (strchr("beIkfjl", *c) && (adding || *c != 'l') && arg < m->nparams)
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
            occupant_to_all(conn, room, who, modes, NULL, NULL, is_self ? self : NULL, NULL);
        }
    }
}

static void on_topic(irc_conn_t *conn, irc_msg_t *m, const char *nick, int numeric)
{
    /* 332 me #chan :topic / TOPIC #chan :topic */
    int ci = numeric ? 1 : 0;
    if (m->nparams < ci + 1)
        return;
    irc_room_t *room = find_room(conn, m->params[ci]);
    if (!room)
        return;
    char *topic = irc_text_to_utf8(m->nparams > ci + 1 ? m->params[ci + 1] : "");
    if (leads(conn, room) || numeric)
        irc_chan_set_topic(room->chan, topic);
    if (!numeric && room->announced)
        for (size_t i = 0; i < room->nresources; i++)
            groupchat(conn, room, nick, room->resources[i], NULL, NULL, topic);
    free(topic);
}

/* "\1ACTION waves\1" -> "/me waves"; other CTCP are not for people. */
static char *ctcp_text(const char *text)
{
    size_t n = strlen(text);
    if (text[0] != 1)
        return irc_text_to_styled(text);
    if (strncmp(text, "\1ACTION ", 8) != 0)
        return NULL;
    char *inner = strndup(text + 8, n - 8 - (text[n - 1] == 1));
    char *clean = irc_text_to_styled(inner);
    free(inner);
    char *out = malloc(strlen(clean) + 5);
    sprintf(out, "/me %s", clean);
    free(clean);
    return out;
}

static void on_privmsg(irc_conn_t *conn, irc_msg_t *m, const char *nick)
{
    if (m->nparams < 2)
        return;
    const char *target = m->params[0];
    char *text = ctcp_text(m->params[1]);
    if (!text)
        return;
    irc_t *irc = conn->irc;
    const char *domain = ferry_component_domain(irc->comp);
    if (strchr(conn->chantypes, target[0])) {
        irc_room_t *room = find_room(conn, target);
        if (room && room->joined)
            history_record(conn, room, nick, text);
        if (room && room->announced)
            for (size_t i = 0; i < room->nresources; i++)
                groupchat(conn, room, nick, room->resources[i], NULL, text, NULL);
    } else if (!m->prefix || !strchr(m->prefix, '!')) {
        server_says(conn, text); /* the server's own notices */
    } else {
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
    char *text = irc_text_to_utf8(m->nparams > 2 ? m->params[2] : "nickname in use");
    if (conn->state != IRC_READY) {
        finish_listings(conn, text);
        /* XEP-0045: joining with a taken nick is a conflict. */
        while (conn->rooms) {
            irc_room_t *room = conn->rooms;
            for (size_t i = 0; i < room->nresources; i++)
                join_error(conn, room, room->resources[i], "cancel", condition, text);
            room_free(conn, room);
        }
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

static void on_list_item(irc_conn_t *conn, irc_msg_t *m)
{
    if (m->nparams < 3 || !conn->listings || !irc_valid_channel(m->params[1], conn->chantypes))
        return;
    if (conn->nlisted == conn->listed_cap) {
        conn->listed_cap = conn->listed_cap ? conn->listed_cap * 2 : 64;
        conn->listed = realloc(conn->listed, conn->listed_cap * sizeof *conn->listed);
    }
    irc_listed_t *l = &conn->listed[conn->nlisted++];
    l->channel = strdup(m->params[1]);
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

static void answer_listing(irc_conn_t *conn, xmpp_stanza_t *iq)
{
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
    xmpp_ctx_t *ctx = ferry_component_xmpp(irc->comp);
    xmpp_stanza_t *res = xmpp_iq_new(ctx, "result", xmpp_stanza_get_id(iq));
    xmpp_stanza_set_to(res, xmpp_stanza_get_from(iq));
    xmpp_stanza_set_from(res, xmpp_stanza_get_to(iq));
    xmpp_stanza_t *out = ferry_stanza_add(res, "query", "http://jabber.org/protocol/disco#items");
    const char *domain = ferry_component_domain(irc->comp);
    size_t end = start;
    for (; end < conn->nlisted && end - start < (size_t)max; end++) {
        irc_listed_t *l = &conn->listed[end];
        char jid[1400], name[700];
        irc_jid_room(jid, sizeof jid, l->channel, conn->server->name, domain);
        snprintf(name, sizeof name, "%s (%ld)%s%s", l->channel, l->users, *l->topic ? ": " : "",
                 l->topic);
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
    ferry_component_send(irc->comp, res);
    xmpp_stanza_release(res);
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
    while (conn->listings) {
        irc_listing_t *l = conn->listings;
        conn->listings = l->next;
        if (error)
            ferry_component_reply_error(conn->irc->comp, l->iq, "cancel",
                                        "remote-server-not-found", error);
        else
            answer_listing(conn, l->iq);
        xmpp_stanza_release(l->iq);
        free(l);
    }
    listed_free(conn);
}

static void send_list(irc_conn_t *conn)
{
    if (conn->listings && !conn->list_sent && conn->state == IRC_READY) {
        conn->list_sent = 1;
        irc_conn_send(conn, "LIST", NULL, 0);
    }
}

/* ---- what the server says to the user: MOTD, replies, errors ---- */

static void on_motd_line(irc_conn_t *conn, irc_msg_t *m)
{
    const char *line = m->nparams >= 2 ? m->params[m->nparams - 1] : "";
    size_t have = conn->motd ? strlen(conn->motd) : 0, add = strlen(line);
    if (have + add > 8192)
        return; /* a MOTD that long is abuse, not news */
    conn->motd = realloc(conn->motd, have + add + 2);
    memcpy(conn->motd + have, line, add);
    memcpy(conn->motd + have + add, "\n", 2);
}

static void on_motd_end(irc_conn_t *conn)
{
    conn->welcomed = 1;
    if (!conn->motd)
        return;
    size_t n = strlen(conn->motd);
    if (n && conn->motd[n - 1] == '\n')
        conn->motd[n - 1] = 0;
    char *text = irc_text_to_utf8(conn->motd);
    server_says(conn, text);
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
    static const char *quiet[] = {"005", "315", "321", "324", "329", "333", "366"};
    if (!conn->welcomed || m->nparams < 2)
        return;
    for (size_t i = 0; i < sizeof quiet / sizeof *quiet; i++)
        if (strcmp(m->command, quiet[i]) == 0)
            return;
    char joined[IRC_LINE_MAX + 1] = "";
    size_t len = 0;
    for (int i = 1; i < m->nparams && len < sizeof joined - 1; i++)
        len += (size_t)snprintf(joined + len, sizeof joined - len, "%s%s", i > 1 ? " " : "",
                                m->params[i]);
    char *text = irc_text_to_utf8(joined);
    irc_room_t *room = m->nparams > 2 ? find_room(conn, m->params[1]) : NULL;
    if (room && room->announced) {
        for (size_t i = 0; i < room->nresources; i++)
            groupchat(conn, room, NULL, room->resources[i], NULL, text, NULL);
    } else {
        server_says(conn, text);
    }
    free(text);
}

static int is_numeric(const char *c)
{
    return c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' &&
           c[2] <= '9' && !c[3];
}

/* Whether M's sender becomes an address (room/nick or nick%server): all
 * but numerics and a server's own PRIVMSG or NOTICE to us without a prefix. */
static int names_sender(const irc_conn_t *conn, const irc_msg_t *m)
{
    const char *c = m->command;
    if (strcmp(c, "PRIVMSG") == 0 || strcmp(c, "NOTICE") == 0)
        return m->prefix || (m->nparams && strchr(conn->chantypes, m->params[0][0]));
    return strcmp(c, "JOIN") == 0 || strcmp(c, "PART") == 0 || strcmp(c, "KICK") == 0 ||
           strcmp(c, "QUIT") == 0 || strcmp(c, "NICK") == 0 || strcmp(c, "TOPIC") == 0 ||
           strcmp(c, "INVITE") == 0;
}

void bridge_on_line(irc_conn_t *conn, irc_msg_t *m)
{
    char nick[IRC_NICK_MAX];
    irc_prefix_nick(m->prefix, nick, sizeof nick);
    const char *c = m->command;
    if (!irc_nick_usable(nick) && names_sender(conn, m)) {
        ferry_log_debug(ferry_component_name(conn->irc->comp),
                        "ignored a %s whose sender cannot be a JID resource", c);
        return;
    }
    if (strcmp(c, "JOIN") == 0)
        on_join(conn, m, nick);
    else if (strcmp(c, "PART") == 0)
        on_part(conn, m, nick, 0);
    else if (strcmp(c, "KICK") == 0)
        on_part(conn, m, nick, 1);
    else if (strcmp(c, "QUIT") == 0)
        on_quit(conn, m, nick);
    else if (strcmp(c, "NICK") == 0)
        on_nick(conn, m, nick);
    else if (strcmp(c, "MODE") == 0)
        on_mode(conn, m);
    else if (strcmp(c, "TOPIC") == 0)
        on_topic(conn, m, nick, 0);
    else if (strcmp(c, "PRIVMSG") == 0 || strcmp(c, "NOTICE") == 0)
        on_privmsg(conn, m, nick);
    else if (strcmp(c, "INVITE") == 0)
        on_invite(conn, m, nick);
    else if (strcmp(c, "353") == 0)
        on_names(conn, m);
    else if (strcmp(c, "366") == 0)
        on_end_of_names(conn, m);
    else if (strcmp(c, "332") == 0)
        on_topic(conn, m, nick, 1);
    else if (strcmp(c, "433") == 0)
        on_nick_refused(conn, m, "conflict");
    else if (strcmp(c, "432") == 0)
        on_nick_refused(conn, m, "not-acceptable"); /* erroneous nickname */
    else if (strcmp(c, "471") == 0 || strcmp(c, "405") == 0)
        on_join_refused(conn, m, "service-unavailable");
    else if (strcmp(c, "473") == 0)
        on_join_refused(conn, m, "registration-required");
    else if (strcmp(c, "474") == 0)
        on_join_refused(conn, m, "forbidden");
    else if (strcmp(c, "475") == 0)
        on_join_refused(conn, m, "not-authorized");
    else if (strcmp(c, "403") == 0 || strcmp(c, "479") == 0)
        on_join_refused(conn, m, "item-not-found");
    else if (strcmp(c, "322") == 0 && conn->listings)
        on_list_item(conn, m);
    else if (strcmp(c, "323") == 0 && conn->listings) {
        finish_listings(conn, NULL);
        maybe_quit(conn);
    } else if (strcmp(c, "375") == 0) {
        free(conn->motd);
        conn->motd = NULL;
    } else if (strcmp(c, "372") == 0)
        on_motd_line(conn, m);
    else if (strcmp(c, "376") == 0 || strcmp(c, "422") == 0)
        on_motd_end(conn);
    else if (is_numeric(c))
        on_other_numeric(conn, m);
}

static void send_join(irc_conn_t *conn, irc_room_t *room)
{
    const char *p[] = {room->name};
    irc_conn_send(conn, "JOIN", p, 1);
}

void bridge_on_registered(irc_conn_t *conn)
{
    conn->welcomed = 0;
    ferry_log_info(ferry_component_name(conn->irc->comp), "connected to IRC server %s",
                   conn->server->name);
    for (irc_room_t *room = conn->rooms; room; room = room->next)
        send_join(conn, room);
    send_list(conn);
}

static void on_retry(uv_timer_t *t)
{
    irc_conn_t *conn = t->data;
    if (conn->rooms && !conn->irc->stopping)
        irc_conn_start(conn);
    else
        irc_conn_quit(conn, NULL);
}

void bridge_on_closed(irc_conn_t *conn, const char *reason)
{
    irc_t *irc = conn->irc;
    int was_ready = conn->registered;
    ferry_log_warn(ferry_component_name(irc->comp), "IRC connection to %s lost: %s",
                   conn->server->name, reason);
    finish_listings(conn, reason);
    if (!was_ready || irc->stopping || conn->closing) {
        /* Never got in: the joins fail. */
        while (conn->rooms) {
            irc_room_t *room = conn->rooms;
            for (size_t i = 0; i < room->nresources; i++)
                join_error(conn, room, room->resources[i], "cancel", "remote-server-not-found",
                           reason);
            room_free(conn, room);
        }
        irc_conn_quit(conn, NULL);
        return;
    }
    /* XEP-0045 status 332: the service went away. The rooms stay; we come
     * back and rejoin while the user is in them. */
    for (irc_room_t *room = conn->rooms; room; room = room->next) {
        int codes[] = {110, 332, 0};
        if (room->announced) /* once, not again at every failed reconnect */
            occupant_to_all(conn, room, conn->nick, "", "unavailable", NULL, codes, reason);
        if (room->joined)
            room->chan->joined--;
        room->joined = room->announced = 0;
        if (room->chan->leader == conn) {
            room->chan->leader = NULL;
            room->chan->synced = 0;
        }
    }
    uint64_t delay = 1000;
    for (unsigned i = 0; i < conn->attempt && delay < 60000; i++)
        delay *= 2;
    if (delay > 60000)
        delay = 60000;
    conn->attempt++;
    uv_timer_start(&conn->retry, on_retry, delay / 2 + (uint64_t)rand() % (delay / 2 + 1), 0);
}

void bridge_disconnect(irc_conn_t *conn, const char *reason, int code)
{
    while (conn->rooms) {
        irc_room_t *room = conn->rooms;
        int codes[] = {110, code, 0};
        occupant_to_all(conn, room, conn->nick, "", "unavailable", NULL, codes, reason);
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
        conn = irc_conn_new(irc, server, bare, nick);
        irc_conn_start(conn);
    }
    return conn;
}

static void leave(irc_t *irc, irc_conn_t *conn, irc_room_t *room, const char *resource,
                  const char *status)
{
    if (!has_resource(room, resource))
        return;
    int codes[] = {110, 0};
    occupant_presence(conn, room, conn->nick, "", resource, "unavailable", NULL, codes, NULL);
    remove_resource(room, resource);
    if (room->nresources)
        return;
    if (conn->state == IRC_READY) {
        char reason[400];
        snprintf(reason, sizeof reason, "%s", status && *status ? status : "Leaving");
        for (char *c = reason; *c; c++)
            if (*c == '\r' || *c == '\n')
                *c = ' '; /* a reason is one line */
        const char *p[] = {room->name, reason};
        if (irc_conn_send(conn, "PART", p, 2) != 0)
            irc_conn_send(conn, "PART", p, 1);
    }
    room_free(conn, room);
    maybe_quit(conn);
    (void)irc;
}

void bridge_presence(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to)
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
            leave(irc, conn, room, from, status);
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
    if (room && has_resource(room, from)) {
        if (irc_casecmp(conn->casemap, to->nick, conn->nick) != 0 && conn->state == IRC_READY) {
            const char *p[] = {to->nick};
            snprintf(conn->wanted_nick, sizeof conn->wanted_nick, "%s", to->nick);
            irc_conn_send(conn, "NICK", p, 1);
        }
        return;
    }
    int history_max;
    int64_t history_since;
    history_request(irc, st, &history_max, &history_since);
    conn = conn_for(irc, bare, server, to->nick);
    if (!room) {
        room = calloc(1, sizeof *room);
        room->name = strdup(to->channel);
        room->asked_nick = strdup(to->nick);
        room->short_jid = to->implicit_server;
        room->chan = irc_chan_get(irc, server->name, to->channel, conn->casemap);
        room->next = conn->rooms;
        conn->rooms = room;
        add_resource(room, from, history_max, history_since);
        if (conn->state == IRC_READY)
            send_join(conn, room);
        return;
    }
    add_resource(room, from, history_max, history_since);
    if (room->announced)
        announce_to(conn, room, room->nresources - 1); /* another resource of a user there */
}

/* Sends TEXT as PRIVMSG lines to TARGET ("/me " as a CTCP ACTION). */
static int send_text(irc_conn_t *conn, const char *target, const char *text)
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
    bridge_room_jid(conn, room, NULL, room_addr, sizeof room_addr);
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
    if (send_text(conn, room->name, body) != 0) {
        stanza_error(irc, st, "modify", "not-acceptable", "the message cannot be sent to IRC");
    } else {
        history_record(conn, room, conn->nick, body);
        /* IRC does not echo: reflect it to every resource, with its id. */
        const char *id = xmpp_stanza_get_id(st);
        for (size_t i = 0; i < room->nresources; i++)
            groupchat(conn, room, conn->nick, room->resources[i], id, body, NULL);
    }
    xmpp_free(ferry_component_xmpp(irc->comp), body);
}

void bridge_message(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to)
{
    const char *type = xmpp_stanza_get_type(st);
    if (type && strcmp(type, "error") == 0)
        return;
    const char *from = xmpp_stanza_get_from(st);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    const irc_server_t *server = irc_find_server(irc, to->server);
    if (!server) {
        stanza_error(irc, st, "cancel", "not-allowed", "this IRC server is not served here");
        return;
    }
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
        if (send_text(conn, nick, body) != 0)
            stanza_error(irc, st, "modify", "not-acceptable", "the message cannot be sent");
    }
    xmpp_free(ferry_component_xmpp(irc->comp), body);
}

/* XEP-0045 muc#admin: kicking (role none) and giving or taking operator
 * (moderator / participant) and voice (visitor takes it). IRC decides
 * whether the user may: its refusal comes back as a server notice. */
int bridge_admin(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
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
    xmpp_stanza_t *res = xmpp_iq_new(ferry_component_xmpp(irc->comp), "result",
                                     xmpp_stanza_get_id(iq));
    xmpp_stanza_set_to(res, from);
    xmpp_stanza_set_from(res, xmpp_stanza_get_to(iq));
    ferry_component_send(irc->comp, res);
    xmpp_stanza_release(res);
    return 1;
}

void bridge_list(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to)
{
    const irc_server_t *server = irc_find_server(irc, to->server);
    if (!server) {
        stanza_error(irc, iq, "cancel", "not-allowed", "this IRC server is not served here");
        return;
    }
    char bare[2100];
    ferry_jid_bare_of(xmpp_stanza_get_from(iq), bare, sizeof bare);
    irc_conn_t *conn = conn_for(irc, bare, server, NULL);
    irc_listing_t *l = calloc(1, sizeof *l);
    l->iq = xmpp_stanza_clone(iq);
    l->next = conn->listings;
    conn->listings = l;
    send_list(conn);
}
