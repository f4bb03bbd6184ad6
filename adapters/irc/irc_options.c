/* irc_options.c: what a user chooses about the archive, persistence and a
 * channel's encodings, set with the biboumi-style ad-hoc forms
 * (irc_adhoc.c) and kept in the store: per user (namespace "irc-user", key
 * the bare JID: "record\nmax history\npersistent") and per channel
 * (namespace "irc-room", key "server\nchannel, rfc1459-folded\nbare JID":
 * "record\npersistent\nencoding_in\nencoding_out\nslot", record -1 when
 * the user's default applies, an encoding "" when the server's applies;
 * rows stored before encodings existed end after persistent, before slots
 * after encoding_out: slot 0).
 *
 * The slot is the one the user's stanzas came in on when the row was
 * written (several instances behind ejabberd's bare_source: always the
 * same for one user). A persistent channel is joined again by the
 * instance holding that slot, so its IRC connection is the one the user's
 * own joins and messages reach; on any other, the user would find their
 * nick held by a second connection they cannot reach. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "irc.h"

#define NS_USER "irc-user"
#define NS_ROOM "irc-room"

void irc_user_options_load(irc_t *irc, const char *bare, irc_user_options_t *o)
{
    o->record_history = irc->history;
    o->max_history = -1;
    o->persistent = 0;
    char *value = NULL;
    if (ferry_setting_get(irc->comp, NS_USER, bare, &value) != 0)
        return;
    int record = 1, max = -1, persistent = 0;
    if (sscanf(value, "%d\n%d\n%d", &record, &max, &persistent) >= 2) {
        o->record_history = irc->history && record;
        o->max_history = max;
        o->persistent = persistent;
    }
    free(value);
}

int irc_user_options_store(irc_t *irc, const char *bare, const irc_user_options_t *o)
{
    char value[64];
    snprintf(value, sizeof value, "%d\n%d\n%d", o->record_history, o->max_history, o->persistent);
    return ferry_setting_put(irc->comp, NS_USER, bare, value);
}

static void room_key(const char *server, const char *channel, const char *bare, char *buf,
                     size_t len)
{
    char folded[IRC_NAME_MAX];
    irc_casefold(IRC_CASE_RFC1459, channel, folded, sizeof folded);
    snprintf(buf, len, "%s\n%s\n%s", server, folded, bare);
}

void irc_room_options_load(irc_t *irc, const char *server, const char *channel, const char *bare,
                           irc_room_options_t *o)
{
    o->record_history = -1;
    o->persistent = 0;
    o->encoding_in[0] = o->encoding_out[0] = 0;
    char key[2 * IRC_NAME_MAX + 2200], *value = NULL;
    room_key(server, channel, bare, key, sizeof key);
    if (ferry_setting_get(irc->comp, NS_ROOM, key, &value) != 0)
        return;
    int record = -1, persistent = 0;
    if (sscanf(value, "%d\n%d", &record, &persistent) == 2) {
        o->record_history = record;
        o->persistent = persistent;
        /* the encodings: the third and fourth lines, when there */
        const char *in = strchr(value, '\n');
        in = in ? strchr(in + 1, '\n') : NULL;
        const char *out = in ? strchr(in + 1, '\n') : NULL;
        if (out) {
            snprintf(o->encoding_in, sizeof o->encoding_in, "%.*s",
                     (int)(out - in - 1), in + 1);
            snprintf(o->encoding_out, sizeof o->encoding_out, "%.*s",
                     (int)strcspn(out + 1, "\n"), out + 1);
        }
    }
    free(value);
}

int irc_room_options_store(irc_t *irc, const char *server, const char *channel, const char *bare,
                           const irc_room_options_t *o)
{
    char key[2 * IRC_NAME_MAX + 2200], value[128];
    room_key(server, channel, bare, key, sizeof key);
    snprintf(value, sizeof value, "%d\n%d\n%s\n%s\n%d", o->record_history, o->persistent,
             o->encoding_in, o->encoding_out, irc->slot > 0 ? irc->slot : 0);
    return ferry_setting_put(irc->comp, NS_ROOM, key, value);
}

void irc_room_effective(irc_t *irc, const char *server, const char *channel, const char *bare,
                        int *record, int *persistent)
{
    irc_user_options_t u;
    irc_room_options_t r;
    irc_user_options_load(irc, bare, &u);
    irc_room_options_load(irc, server, channel, bare, &r);
    *record = irc->history && (r.record_history >= 0 ? r.record_history : u.record_history);
    *persistent = r.persistent || u.persistent;
}

typedef struct persistent_list {
    int slot;
    char **keys;
    size_t n;
} persistent_list_t;

static void collect_persistent(void *arg, const char *key, const char *value)
{
    persistent_list_t *l = arg;
    int record, persistent = 0;
    if (sscanf(value, "%d\n%d", &record, &persistent) != 2 || !persistent)
        return;
    const char *p = value;
    for (int i = 0; i < 4 && p; i++)
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    if ((p ? atoi(p) : 0) != l->slot)
        return;
    l->keys = ferry_realloc(l->keys, (l->n + 1) * sizeof *l->keys);
    l->keys[l->n++] = ferry_strdup(key);
}

void irc_room_options_persistent(irc_t *irc, int slot,
                                 void (*cb)(irc_t *irc, const char *server, const char *channel,
                                            const char *bare))
{
    persistent_list_t l = {.slot = slot};
    ferry_setting_list(irc->comp, NS_ROOM, collect_persistent, &l);
    for (size_t i = 0; i < l.n; i++) {
        char *server = l.keys[i], *channel = strchr(server, '\n');
        char *bare = channel ? strchr(channel + 1, '\n') : NULL;
        if (bare) {
            *channel++ = 0;
            *bare++ = 0;
            cb(irc, server, channel, bare);
        }
        free(l.keys[i]);
    }
    free(l.keys);
}
