/* irc_ids.c: stable ids for channel messages (XEP-0359 <stanza-id/>).
 *
 * A message's id is its archive id, so that a client catching up with MAM
 * after a reconnect finds exactly the messages it has not seen. Every local
 * connection in a channel reads the same PRIVMSG on its own socket: the
 * first to read it archives it and enters it in the channel's queue of
 * messages not read by all; the others find it there (matched by sender and
 * raw line, the first one they have not read yet: an IRC server sends a
 * channel's messages to everyone in the same order) and use the same id.
 * One id and at most one store write per IRC message, however many users
 * see it; nothing allocated per recipient.
 *
 * An entry leaves the queue once every joined connection has read it (or a
 * connection that had not leaves the channel). Connections read in turns of
 * up to a whole socket read (hundreds of lines), so the queue grows with
 * the lag between them, up to SAID_MAX entries; an entry some connection
 * never reads (its JOIN crossed the line) is dropped after SAID_KEEP_MS
 * once the queue is longer than SAID_MIN. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

#define SAID_MIN 64
#define SAID_MAX 8192
#define SAID_KEEP_MS 30000

uint64_t irc_ids_hash(const char *nick, const char *line)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)nick; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* no nick/line ambiguity */
    for (const unsigned char *p = (const unsigned char *)line; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* An id for a message that is not archived (history off, or the store
 * failed): unique across restarts, never a number the archive could hold. */
static void fresh_id(char *buf, size_t len)
{
    static int64_t boot;
    static uint64_t counter;
    if (!boot)
        boot = ferry_now_ms();
    snprintf(buf, len, "%" PRId64 "-%" PRIu64, boot, ++counter);
}

static void archive(irc_conn_t *conn, irc_room_t *room, const char *nick, const char *body,
                    char *id, size_t len)
{
    int64_t n = irc_history_record(conn, room, nick, body);
    if (n > 0)
        snprintf(id, len, "%" PRId64, n);
    else
        fresh_id(id, len);
}

/* ---- the queue ---- */

static irc_said_t *at(irc_chan_t *chan, uint64_t i)
{
    return &chan->said[i & (chan->said_cap - 1)];
}

/* Drops the entries at the head that everyone has read (or, once the queue
 * is long, that waited too long), and the ring with them once it is empty
 * and nobody shares the channel any more, or it grew for a burst. */
static void drop_read(irc_chan_t *chan)
{
    int64_t now = 0;
    while (chan->said_base < chan->nsaid) {
        irc_said_t *s = at(chan, chan->said_base);
        if (s->pending) {
            if (chan->nsaid - chan->said_base <= SAID_MIN)
                break; /* short: not worth a clock read per recipient */
            if (!now)
                now = ferry_now_ms();
            if (now - s->entered_ms < SAID_KEEP_MS)
                break;
        }
        chan->said_base++;
    }
    if (chan->said_base == chan->nsaid && chan->said &&
        (chan->joined < 2 || chan->said_cap > SAID_MIN)) { /* a burst's room back */
        free(chan->said);
        chan->said = NULL;
        chan->said_cap = 0;
    }
}

static irc_said_t *enter(irc_chan_t *chan, uint64_t hash, uint32_t pending)
{
    if (!chan->said) {
        chan->said_cap = SAID_MIN;
        chan->said = ferry_calloc(chan->said_cap, sizeof *chan->said);
    } else if (chan->nsaid - chan->said_base == chan->said_cap) {
        if (chan->said_cap < SAID_MAX) { /* a connection lags: room for the lag */
            size_t cap = chan->said_cap * 2;
            irc_said_t *ring = ferry_calloc(cap, sizeof *ring);
            for (uint64_t i = chan->said_base; i < chan->nsaid; i++)
                ring[i & (cap - 1)] = *at(chan, i);
            free(chan->said);
            chan->said = ring;
            chan->said_cap = cap;
        } else {
            chan->said_base++; /* one that far behind makes its own entries */
        }
    }
    irc_said_t *s = at(chan, chan->nsaid++);
    s->hash = hash;
    s->pending = pending;
    s->entered_ms = ferry_now_ms();
    return s;
}

/* ROOM's connection has read (or sent) entry I. said_seen is the first
 * entry it has not; said_mask the ones after it that it has (a user's own
 * lines are entered when sent, before their place in the server's order,
 * and the others read them later). */
static void consume(irc_room_t *room, uint64_t i)
{
    if (i < room->said_seen)
        return;
    if (i - room->said_seen >= 64) { /* too far behind: forget the oldest */
        uint64_t shift = i - room->said_seen - 63;
        room->said_mask = shift >= 64 ? 0 : room->said_mask >> shift;
        room->said_seen += shift;
    }
    room->said_mask |= 1ULL << (i - room->said_seen);
    while (room->said_mask & 1) {
        room->said_mask >>= 1;
        room->said_seen++;
    }
}

static int is_read(irc_room_t *room, uint64_t i)
{
    uint64_t k = i - room->said_seen;
    return i < room->said_seen || (k < 64 && (room->said_mask >> k & 1));
}

/* ---- ids ---- */

const char *irc_ids_from_irc(irc_conn_t *conn, irc_room_t *room, const char *nick,
                             const char *line, const char *body)
{
    static char id[32];
    irc_chan_t *chan = room->chan;
    if (chan->joined < 2 && chan->said_base == chan->nsaid) {
        archive(conn, room, nick, body, id, sizeof id); /* alone: nobody to share it with */
        return id;
    }
    uint64_t hash = irc_ids_hash(nick, line);
    uint64_t i = room->said_seen > chan->said_base ? room->said_seen : chan->said_base;
    for (; i < chan->nsaid; i++) {
        irc_said_t *s = at(chan, i);
        if (s->hash != hash || is_read(room, i))
            continue;
        consume(room, i);
        snprintf(id, sizeof id, "%s", s->id);
        if (s->pending)
            s->pending--;
        drop_read(chan);
        return id;
    }
    irc_said_t *s = enter(chan, hash, chan->joined > 0 ? (uint32_t)chan->joined - 1 : 0);
    archive(conn, room, nick, body, s->id, sizeof s->id);
    consume(room, chan->nsaid - 1);
    snprintf(id, sizeof id, "%s", s->id);
    drop_read(chan);
    return id;
}

const char *irc_ids_own(irc_conn_t *conn, irc_room_t *room, const char *body,
                        const irc_sent_lines_t *sent)
{
    static char id[24]; /* room for the ".k" of an entry's 32 */
    archive(conn, room, conn->nick, body, id, sizeof id);
    irc_chan_t *chan = room->chan;
    if (chan->joined < 2)
        return id;
    /* The others read it as these lines; a message split over several has
     * one archive entry, under the first line's id. The sender's
     * connection never reads them: they count as read for it. */
    for (size_t i = 0; i < sent->n; i++) {
        irc_said_t *s = enter(chan, sent->hash[i], (uint32_t)chan->joined - 1);
        if (i == 0)
            snprintf(s->id, sizeof s->id, "%s", id);
        else
            snprintf(s->id, sizeof s->id, "%s.%u", id, (unsigned)(i + 1) % 10);
        consume(room, chan->nsaid - 1);
    }
    return id;
}

void irc_ids_joined(irc_room_t *room)
{
    room->said_seen = room->chan->nsaid;
    room->said_mask = 0;
    if (room->record)
        room->chan->recorders++;
}

void irc_ids_left(irc_room_t *room)
{
    irc_chan_t *chan = room->chan;
    if (room->record && chan->recorders && --chan->recorders == 0)
        irc_history_stop(chan);
    /* What it was still to read, nobody waits for now. */
    uint64_t i = room->said_seen > chan->said_base ? room->said_seen : chan->said_base;
    for (; i < chan->nsaid; i++)
        if (!is_read(room, i) && at(chan, i)->pending)
            at(chan, i)->pending--;
    room->said_seen = chan->nsaid;
    room->said_mask = 0;
    drop_read(chan);
}

void irc_ids_record(irc_room_t *room, int record)
{
    if (room->joined && room->record != record) {
        if (record)
            room->chan->recorders++;
        else if (room->chan->recorders && --room->chan->recorders == 0)
            irc_history_stop(room->chan);
    }
    room->record = record;
}
