/* irc_chan.c: one member list per (server, channel), shared by every local
 * user in the channel: a thousand bridged users cost one list, not a
 * thousand copies. Updated only from the events of the channel's leader
 * connection (every connection in the channel sees the same events). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

irc_chan_t *irc_chan_get(irc_t *irc, const char *server, const char *name, irc_casemap_t map)
{
    char folded[IRC_NAME_MAX];
    irc_casefold(map, name, folded, sizeof folded);
    ferry_list_t *pos;
    ferry_list_foreach(pos, &irc->chans) {
        irc_chan_t *c = ferry_list_entry(pos, irc_chan_t, link);
        if (strcmp(c->server, server) == 0 && strcmp(c->folded, folded) == 0) {
            c->users++;
            return c;
        }
    }
    irc_chan_t *c = ferry_calloc(1, sizeof *c);
    c->server = ferry_strdup(server);
    c->name = ferry_strdup(name);
    c->folded = ferry_strdup(folded);
    c->users = 1;
    ferry_list_insert_head(&irc->chans, &c->link);
    return c;
}

static void free_members(irc_chan_t *chan)
{
    for (size_t i = 0; i < chan->nmembers; i++) {
        free(chan->members[i].nick);
        free(chan->members[i].userhost);
        free(chan->members[i].old_nick);
    }
    chan->nmembers = 0;
}

void irc_chan_release(irc_chan_t *chan)
{
    if (--chan->users > 0)
        return;
    ferry_list_remove(&chan->link);
    irc_history_stop(chan);
    free_members(chan);
    free(chan->members);
    free(chan->buckets);
    free(chan->server);
    free(chan->name);
    free(chan->folded);
    free(chan->topic);
    free(chan->topic_setter);
    free(chan->said);
    free(chan);
}

/* ---- the index ---- */

enum table { BY_NICK, GONE, RENAMED };

static int listed(const irc_member_t *m, enum table t)
{
    switch (t) {
    case BY_NICK: return !m->gone;
    case GONE: return m->gone;
    default: return m->old_nick != NULL;
    }
}

static uint32_t key(const irc_member_t *m, enum table t)
{
    return t == RENAMED ? m->old_hash : m->hash;
}

static uint32_t *link_of(irc_member_t *m, enum table t)
{
    return t == RENAMED ? &m->old_next : &m->next;
}

static uint32_t *bucket(irc_chan_t *chan, enum table t, uint32_t hash)
{
    return &chan->buckets[(size_t)t * chan->nbuckets + (hash & (chan->nbuckets - 1))];
}

static void link_in(irc_chan_t *chan, size_t i, enum table t)
{
    irc_member_t *m = &chan->members[i];
    uint32_t *b = bucket(chan, t, key(m, t));
    *link_of(m, t) = *b;
    *b = (uint32_t)(i + 1);
}

/* The link that points at position I in table T. */
static uint32_t *link_to(irc_chan_t *chan, size_t i, enum table t)
{
    uint32_t *p = bucket(chan, t, key(&chan->members[i], t));
    while (*p && *p != i + 1)
        p = link_of(&chan->members[*p - 1], t);
    return p;
}

static void unlink_from(irc_chan_t *chan, size_t i, enum table t)
{
    uint32_t *p = link_to(chan, i, t);
    if (*p)
        *p = *link_of(&chan->members[i], t);
}

static void rehash(irc_chan_t *chan, size_t nbuckets)
{
    free(chan->buckets);
    chan->nbuckets = nbuckets;
    chan->buckets = ferry_calloc(3 * nbuckets, sizeof *chan->buckets);
    for (size_t i = 0; i < chan->nmembers; i++)
        for (enum table t = BY_NICK; t <= RENAMED; t++)
            if (listed(&chan->members[i], t))
                link_in(chan, i, t);
}

void irc_chan_clear(irc_chan_t *chan)
{
    free_members(chan);
    if (chan->buckets)
        memset(chan->buckets, 0, 3 * chan->nbuckets * sizeof *chan->buckets);
}

static irc_member_t *find(irc_chan_t *chan, enum table t, const char *nick, irc_casemap_t map)
{
    if (!chan->nbuckets)
        return NULL;
    uint32_t h = irc_casehash(nick);
    for (uint32_t p = *bucket(chan, t, h); p; p = *link_of(&chan->members[p - 1], t)) {
        irc_member_t *m = &chan->members[p - 1];
        if (key(m, t) == h && irc_casecmp(map, t == RENAMED ? m->old_nick : m->nick, nick) == 0)
            return m;
    }
    return NULL;
}

/* ---- members ---- */

irc_member_t *irc_chan_member(irc_chan_t *chan, const char *nick, irc_casemap_t map)
{
    return find(chan, BY_NICK, nick, map);
}

irc_member_t *irc_chan_witness(irc_chan_t *chan, const char *nick, irc_casemap_t map)
{
    irc_member_t *m = find(chan, GONE, nick, map);
    if (!m)
        m = find(chan, RENAMED, nick, map);
    return m ? m : irc_chan_member(chan, nick, map);
}

static void forget_old_nick(irc_chan_t *chan, irc_member_t *m)
{
    if (!m->old_nick)
        return;
    unlink_from(chan, (size_t)(m - chan->members), RENAMED);
    free(m->old_nick);
    m->old_nick = NULL;
}

/* Removes gone member M; the last entry takes its place. */
static void drop_member(irc_chan_t *chan, irc_member_t *m)
{
    size_t i = (size_t)(m - chan->members), last = chan->nmembers - 1;
    forget_old_nick(chan, m);
    unlink_from(chan, i, GONE);
    free(m->nick);
    free(m->userhost);
    if (i != last) {
        for (enum table t = BY_NICK; t <= RENAMED; t++)
            if (listed(&chan->members[last], t))
                *link_to(chan, last, t) = (uint32_t)(i + 1);
        *m = chan->members[last];
    }
    chan->nmembers--;
}

void irc_chan_seen(irc_chan_t *chan, irc_member_t *m)
{
    if (m->pending && --m->pending)
        return;
    if (m->gone)
        drop_member(chan, m);
    else
        forget_old_nick(chan, m);
}

irc_member_t *irc_chan_add(irc_chan_t *chan, const char *nick, const char *modes,
                           irc_casemap_t map)
{
    irc_member_t *m = irc_chan_member(chan, nick, map);
    if (!m && (m = find(chan, GONE, nick, map))) {
        /* back before everyone saw it leave */
        size_t i = (size_t)(m - chan->members);
        forget_old_nick(chan, m);
        unlink_from(chan, i, GONE);
        m->gone = 0;
        m->pending = 0;
        link_in(chan, i, BY_NICK);
    }
    if (!m) {
        if (chan->nmembers == chan->cap) {
            chan->cap = chan->cap ? chan->cap * 2 : 16;
            chan->members = ferry_realloc(chan->members, chan->cap * sizeof *chan->members);
        }
        size_t i = chan->nmembers++;
        m = &chan->members[i];
        memset(m, 0, sizeof *m);
        m->nick = ferry_strdup(nick);
        m->hash = irc_casehash(nick);
        if (chan->nmembers * 2 > chan->nbuckets)
            rehash(chan, chan->nbuckets ? chan->nbuckets * 2 : 32);
        else
            link_in(chan, i, BY_NICK);
    }
    snprintf(m->modes, sizeof m->modes, "%s", modes ? modes : "");
    return m;
}

/* The other local connections in the channel will see the same event. */
static size_t others(irc_chan_t *chan) { return chan->joined > 1 ? chan->joined - 1 : 0; }

void irc_chan_remove(irc_chan_t *chan, const char *nick, irc_casemap_t map)
{
    irc_member_t *m = irc_chan_member(chan, nick, map);
    if (!m)
        return;
    size_t i = (size_t)(m - chan->members);
    unlink_from(chan, i, BY_NICK);
    m->gone = 1;
    link_in(chan, i, GONE);
    m->pending = others(chan);
    if (!m->pending)
        drop_member(chan, m);
}

void irc_chan_rename(irc_chan_t *chan, const char *from, const char *to, irc_casemap_t map)
{
    irc_member_t *m = irc_chan_member(chan, from, map);
    if (!m)
        return;
    size_t i = (size_t)(m - chan->members);
    forget_old_nick(chan, m);
    unlink_from(chan, i, BY_NICK);
    m->old_nick = m->nick;
    m->old_hash = m->hash;
    m->nick = ferry_strdup(to);
    m->hash = irc_casehash(to);
    link_in(chan, i, BY_NICK);
    m->pending = others(chan);
    if (m->pending)
        link_in(chan, i, RENAMED);
    else {
        free(m->old_nick);
        m->old_nick = NULL;
    }
}

void irc_chan_set_topic(irc_chan_t *chan, const char *topic)
{
    free(chan->topic);
    chan->topic = ferry_strdup(topic ? topic : "");
}

void irc_chan_set_topic_setter(irc_chan_t *chan, const char *setter)
{
    free(chan->topic_setter);
    chan->topic_setter = setter && *setter ? ferry_strdup(setter) : NULL;
}

void irc_chan_set_userhost(irc_member_t *m, const char *userhost)
{
    if (!userhost || !*userhost || (m->userhost && strcmp(m->userhost, userhost) == 0))
        return;
    free(m->userhost);
    m->userhost = ferry_strdup(userhost);
}
