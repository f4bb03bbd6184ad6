/* irc_chan.c: one member list per (server, channel), shared by every local
 * user in the channel: a thousand bridged users cost one list, not a
 * thousand copies. Updated only from the events of the channel's leader
 * connection (every connection in the channel sees the same events). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc.h"

irc_chan_t *irc_chan_get(irc_t *irc, const char *server, const char *name, irc_casemap_t map)
{
    char folded[IRC_NAME_MAX];
    irc_casefold(map, name, folded, sizeof folded);
    for (irc_chan_t *c = irc->chans; c; c = c->next)
        if (strcmp(c->server, server) == 0 && strcmp(c->folded, folded) == 0) {
            c->users++;
            return c;
        }
    irc_chan_t *c = calloc(1, sizeof *c);
    c->server = strdup(server);
    c->name = strdup(name);
    c->folded = strdup(folded);
    c->users = 1;
    c->next = irc->chans;
    irc->chans = c;
    return c;
}

void irc_chan_release(irc_t *irc, irc_chan_t *chan)
{
    if (--chan->users > 0)
        return;
    for (irc_chan_t **p = &irc->chans; *p; p = &(*p)->next)
        if (*p == chan) {
            *p = chan->next;
            break;
        }
    for (size_t i = 0; i < chan->nmembers; i++) {
        free(chan->members[i].nick);
        free(chan->members[i].old_nick);
    }
    free(chan->members);
    free(chan->server);
    free(chan->name);
    free(chan->folded);
    free(chan->topic);
    free(chan);
}

irc_member_t *irc_chan_member(irc_chan_t *chan, const char *nick, irc_casemap_t map)
{
    for (size_t i = 0; i < chan->nmembers; i++)
        if (!chan->members[i].gone && irc_casecmp(map, chan->members[i].nick, nick) == 0)
            return &chan->members[i];
    return NULL;
}

irc_member_t *irc_chan_witness(irc_chan_t *chan, const char *nick, irc_casemap_t map)
{
    for (size_t i = 0; i < chan->nmembers; i++) {
        irc_member_t *m = &chan->members[i];
        if (m->pending && ((m->gone && irc_casecmp(map, m->nick, nick) == 0) ||
                           (m->old_nick && irc_casecmp(map, m->old_nick, nick) == 0)))
            return m;
    }
    return irc_chan_member(chan, nick, map);
}

static void drop_member(irc_chan_t *chan, irc_member_t *m)
{
    free(m->nick);
    free(m->old_nick);
    *m = chan->members[--chan->nmembers];
}

void irc_chan_seen(irc_chan_t *chan, irc_member_t *m)
{
    if (m->pending && --m->pending)
        return;
    if (m->gone) {
        drop_member(chan, m);
    } else {
        free(m->old_nick);
        m->old_nick = NULL;
    }
}

irc_member_t *irc_chan_add(irc_chan_t *chan, const char *nick, const char *modes,
                           irc_casemap_t map)
{
    irc_member_t *m = irc_chan_member(chan, nick, map);
    for (size_t i = 0; !m && i < chan->nmembers; i++)
        if (chan->members[i].gone && irc_casecmp(map, chan->members[i].nick, nick) == 0) {
            m = &chan->members[i]; /* back before everyone saw it leave */
            m->gone = 0;
            m->pending = 0;
        }
    if (!m) {
        if (chan->nmembers == chan->cap) {
            chan->cap = chan->cap ? chan->cap * 2 : 16;
            chan->members = realloc(chan->members, chan->cap * sizeof *chan->members);
        }
        m = &chan->members[chan->nmembers++];
        memset(m, 0, sizeof *m);
        m->nick = strdup(nick);
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
    m->gone = 1;
    m->pending = others(chan);
    if (!m->pending)
        drop_member(chan, m);
}

void irc_chan_rename(irc_chan_t *chan, const char *from, const char *to, irc_casemap_t map)
{
    irc_member_t *m = irc_chan_member(chan, from, map);
    if (!m)
        return;
    free(m->old_nick);
    m->old_nick = m->nick;
    m->nick = strdup(to);
    m->pending = others(chan);
    if (!m->pending) {
        free(m->old_nick);
        m->old_nick = NULL;
    }
}

void irc_chan_set_topic(irc_chan_t *chan, const char *topic)
{
    free(chan->topic);
    chan->topic = strdup(topic ? topic : "");
}
