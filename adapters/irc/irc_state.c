/* irc_state.c: what the IRC adapter keeps in the store so that a restart
 * goes unnoticed: which resource is in which room with which nick (ferry
 * reconnects, rejoins and sends each resource its room again on start),
 * and which MOTD each user was last shown (shown once, not at every
 * reconnect), and the persistent channels (irc_options.c) are joined
 * again. Settings namespaces: "irc-rooms" (key "server\nchannel\n
 * resource", value "nick\nshort_jid") and "irc-motd" (key "server\nbare
 * JID", value a hash of the text).
 *
 * Several instances on one PostgreSQL store: a room record belongs to the
 * slot it was made under ("irc-rooms" for slot 0, so that a SQLite store
 * and a lone instance are as before; "irc-rooms/K" for slot K), and is
 * restored by the instance that takes that slot: at start when it is
 * active, or when a standby takes a dead instance's slot; never by an
 * instance holding another slot (its users' stanzas go elsewhere: a second
 * restore would open a second IRC connection under another nick). The
 * persistent channels are joined by the holder of the slot their user's
 * stanzas came in on (irc_options.c).
 *
 * A room record is committed before the bridge sends the JOIN (or PART)
 * that it stands for, not with the store's next batch: once IRC has seen
 * a user join a room, a crash (kill -9) does not forget the room, and
 * once IRC has seen them leave, a crash does not put them back. A join is
 * rare, so the extra commit costs nothing that matters; the MOTD record
 * stays batched (a crash at worst shows a MOTD again). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

#define NS_ROOMS "irc-rooms"
#define NS_MOTD "irc-motd"

/* The namespace of the room records of the slot held (irc->slot). */
static const char *rooms_ns(const irc_t *irc, char *buf, size_t len)
{
    if (irc->slot <= 0)
        return NS_ROOMS;
    snprintf(buf, len, "%s/%d", NS_ROOMS, irc->slot);
    return buf;
}

static int room_key(irc_conn_t *conn, irc_room_t *room, const char *resource, char *buf,
                    size_t len)
{
    int n = snprintf(buf, len, "%s\n%s\n%s", conn->server->name, room->name, resource);
    return n > 0 && (size_t)n < len;
}

static int may_forget(irc_t *irc)
{
    /* Stopping for a restart: the rooms are left as they are stored. */
    return !(irc->stopping && !irc->for_good);
}

/* Writes the record of RESOURCE in ROOM; the caller commits it. */
static void put_room(irc_conn_t *conn, irc_room_t *room, const char *resource)
{
    char key[2 * IRC_NAME_MAX + 2200], value[IRC_NICK_MAX + 4], ns[32];
    if (!room_key(conn, room, resource, key, sizeof key))
        return;
    snprintf(value, sizeof value, "%s\n%d", conn->nick[0] ? conn->nick : room->asked_nick,
             room->short_jid);
    ferry_setting_put(conn->irc->comp, rooms_ns(conn->irc, ns, sizeof ns), key, value);
}

void irc_state_joined(irc_conn_t *conn, irc_room_t *room, const char *resource)
{
    put_room(conn, room, resource);
    ferry_setting_flush(conn->irc->comp);
}

void irc_state_left(irc_conn_t *conn, irc_room_t *room, const char *resource)
{
    char key[2 * IRC_NAME_MAX + 2200], ns[32];
    if (may_forget(conn->irc) && room_key(conn, room, resource, key, sizeof key)) {
        ferry_setting_del(conn->irc->comp, rooms_ns(conn->irc, ns, sizeof ns), key);
        ferry_setting_flush(conn->irc->comp);
    }
}

void irc_state_renamed(irc_conn_t *conn)
{
    for (irc_room_t *room = conn->rooms; room; room = room->next)
        for (size_t i = 0; i < room->nresources; i++)
            put_room(conn, room, room->resources[i]);
    ferry_setting_flush(conn->irc->comp);
}

typedef struct stored {
    char **keys, **values;
    size_t n;
} stored_t;

static void collect(void *arg, const char *key, const char *value)
{
    stored_t *s = arg;
    s->keys = ferry_realloc(s->keys, (s->n + 1) * sizeof *s->keys);
    s->values = ferry_realloc(s->values, (s->n + 1) * sizeof *s->values);
    s->keys[s->n] = ferry_strdup(key);
    s->values[s->n] = ferry_strdup(value);
    s->n++;
}

/* Splits TEXT at its first N-1 newlines into F; 0 when it has fewer. */
static int split(char *text, char **f, int n)
{
    for (int i = 0; i < n; i++) {
        f[i] = text;
        text = i < n - 1 ? strchr(text, '\n') : NULL;
        if (i < n - 1 && !text)
            return 0;
        if (text)
            *text++ = 0;
    }
    return 1;
}

/* A persistent channel stays joined across restarts, people in it or not. */
static void restore_persistent(irc_t *irc, const char *server_name, const char *channel,
                               const char *bare)
{
    const irc_server_t *server = irc_find_server(irc, server_name);
    if (server && ferry_jid_allowed(irc->allow, bare))
        irc_bridge_restore(irc, server, channel, bare, NULL, NULL, 0);
}

void irc_state_restore(irc_t *irc, int slot)
{
    stored_t s = {0};
    char buf[32];
    irc->slot = slot;
    const char *ns = rooms_ns(irc, buf, sizeof buf);
    ferry_setting_list(irc->comp, ns, collect, &s);
    size_t restored = 0;
    for (size_t i = 0; i < s.n; i++) {
        char *k[3], *v[2], *key = ferry_strdup(s.keys[i]);
        const irc_server_t *server = NULL;
        int ok = split(key, k, 3) && split(s.values[i], v, 2) &&
                 (server = irc_find_server(irc, k[0])) && irc_valid_nick(v[0]) &&
                 ferry_jid_allowed(irc->allow, k[2]);
        if (ok) {
            char bare[2100];
            ferry_jid_bare_of(k[2], bare, sizeof bare);
            irc_bridge_restore(irc, server, k[1], bare, k[2], v[0], atoi(v[1]));
            restored++;
        } else {
            /* A server no longer served, a user no longer allowed. */
            ferry_setting_del(irc->comp, ns, s.keys[i]);
        }
        free(key);
        free(s.keys[i]);
        free(s.values[i]);
    }
    free(s.keys);
    free(s.values);
    if (restored)
        ferry_log_info(ferry_component_name(irc->comp),
                       "rejoining %zu room(s) for the users who were in them (slot %d)",
                       restored, slot);
    irc_room_options_persistent(irc, slot, restore_persistent);
}

int irc_state_motd_new(irc_conn_t *conn, const char *motd)
{
    char key[IRC_NAME_MAX + 2200], hash[24], *stored = NULL;
    snprintf(key, sizeof key, "%s\n%s", conn->server->name, conn->jid);
    snprintf(hash, sizeof hash, "%016" PRIx64, irc_ids_hash("motd", motd));
    int seen = ferry_setting_get(conn->irc->comp, NS_MOTD, key, &stored) == 0 &&
               strcmp(stored, hash) == 0;
    free(stored);
    if (!seen)
        ferry_setting_put(conn->irc->comp, NS_MOTD, key, hash);
    return !seen;
}
