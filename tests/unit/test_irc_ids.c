/* test_irc_ids.c: the XEP-0359 ids of channel messages when several local
 * connections read the same channel: each IRC line gets one id whatever
 * connection reads it first and in whatever interleaving, the same text
 * said twice is two messages, a user's own message (split in lines) is
 * found by the others, a connection that joins later never matches older
 * lines, a connection thousands of lines behind still finds them, and the
 * queue empties once everyone has read (or left). (History off: the ids
 * are the non-archive kind.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../adapters/irc/irc.h"
#include "check.h"

#define NCONN 3

typedef struct world {
    irc_t irc;
    irc_conn_t conns[NCONN];
    irc_room_t rooms[NCONN];
    irc_chan_t *chan;
} world_t;

static world_t *world_new(void)
{
    world_t *w = calloc(1, sizeof *w);
    w->irc.history = 0;
    ferry_list_init(&w->irc.chans);
    w->chan = irc_chan_get(&w->irc, "irc.example.net", "#c", IRC_CASE_RFC1459);
    for (int i = 0; i < NCONN; i++) {
        w->conns[i].irc = &w->irc;
        snprintf(w->conns[i].nick, sizeof w->conns[i].nick, "user%d", i);
        w->rooms[i].chan = w->chan;
        w->chan->joined++;
        irc_ids_joined(&w->rooms[i]);
    }
    return w;
}

/* Connection I reads LINE from NICK: its id (copied). */
static void got(world_t *w, int i, const char *nick, const char *line, char *id)
{
    snprintf(id, 32, "%s", irc_ids_from_irc(&w->conns[i], &w->rooms[i], nick, line, line));
}

static void test_one_id_per_line_any_order(void)
{
    world_t *w = world_new();
    char a[NCONN][3][32];
    const char *lines[3] = {"hello", "hello", "bye"}; /* the same text twice: two messages */
    /* connection 2 reads ahead, 0 next, 1 last, interleaved */
    got(w, 2, "ivan", lines[0], a[2][0]);
    got(w, 2, "ivan", lines[1], a[2][1]);
    got(w, 0, "ivan", lines[0], a[0][0]);
    got(w, 2, "ivan", lines[2], a[2][2]);
    got(w, 1, "ivan", lines[0], a[1][0]);
    got(w, 0, "ivan", lines[1], a[0][1]);
    got(w, 1, "ivan", lines[1], a[1][1]);
    got(w, 1, "ivan", lines[2], a[1][2]);
    got(w, 0, "ivan", lines[2], a[0][2]);
    for (int m = 0; m < 3; m++)
        for (int i = 1; i < NCONN; i++)
            CHECK(strcmp(a[i][m], a[0][m]) == 0, "message %d: %s on one connection, %s on another",
                  m, a[0][m], a[i][m]);
    CHECK(strcmp(a[0][0], a[0][1]) != 0, "the same text twice got one id");
    CHECK(strcmp(a[0][1], a[0][2]) != 0 && strcmp(a[0][0], a[0][2]) != 0, "ids repeat");
    CHECK(w->chan->nsaid == 3, "3 messages entered, not %llu", (unsigned long long)w->chan->nsaid);
    irc_chan_release(w->chan);
    free(w);
}

static void test_own_message_found_by_the_others(void)
{
    world_t *w = world_new();
    irc_sent_lines_t sent = {0};
    sent.hash[sent.n++] = irc_ids_hash("user0", "first half");
    sent.hash[sent.n++] = irc_ids_hash("user0", "second half");
    char own[32], seen1[32], seen2[32], other[32], other0[32];
    snprintf(own, sizeof own, "%s", irc_ids_own(&w->conns[0], &w->rooms[0], "first half second half",
                                                 &sent));
    got(w, 1, "ivan", "meanwhile", other); /* said before ours reached connection 1 */
    got(w, 1, "user0", "first half", seen1);
    got(w, 1, "user0", "second half", seen2);
    CHECK(strcmp(seen1, own) == 0, "the others read %s for the sender's %s", seen1, own);
    char expect[40];
    snprintf(expect, sizeof expect, "%s.2", own);
    CHECK(strcmp(seen2, expect) == 0, "the second line is %s, not %s", seen2, expect);
    got(w, 0, "ivan", "meanwhile", other0); /* the sender's connection still finds it */
    CHECK(strcmp(other, other0) == 0, "%s and %s for one line", other, other0);
    irc_chan_release(w->chan);
    free(w);
}

static void test_late_joiner_and_one_connection(void)
{
    world_t *w = world_new();
    char a[32], b[32], c[32];
    got(w, 0, "ivan", "before", a);
    irc_ids_joined(&w->rooms[2]); /* connection 2 joins again: older lines are not its own */
    got(w, 2, "ivan", "before", b);
    CHECK(strcmp(a, b) != 0, "a connection that joined later matched an older line");
    w->chan->joined = 1; /* alone: no ring needed, every line is new */
    got(w, 1, "ivan", "x", a);
    got(w, 1, "ivan", "x", c);
    CHECK(strcmp(a, c) != 0, "alone, the same text twice got one id");
    irc_chan_release(w->chan);
    free(w);
}

/* A random conversation: connection 0's user speaks now and then (its
 * lines entered when sent, some time before the server relays them), the
 * others read the server's order at their own pace. Every connection must
 * give every line the id the first reader gave it. */
static void test_random_interleavings(void)
{
    enum { LINES = 400 };
    srand(7);
    for (int round = 0; round < 20; round++) {
        world_t *w = world_new();
        static char ids[NCONN][LINES][32];
        static char text[LINES][16];
        int own[LINES], next[NCONN] = {0}, sent_upto = 0;
        for (int m = 0; m < LINES; m++) {
            own[m] = rand() % 4 == 0;
            snprintf(text[m], sizeof text[m], "t%d", rand() % 5); /* texts repeat */
        }
        int done = 0;
        for (int step = 0; step < 100000 && done < NCONN; step++) {
            int c = rand() % NCONN;
            if (c == 0 && sent_upto < LINES && rand() % 2) {
                /* the user sends its next own line a little before the server
                 * relays it: it may be ahead of what connection 0 read */
                while (sent_upto < LINES && (!own[sent_upto] || sent_upto < next[0]))
                    sent_upto++;
                if (sent_upto < LINES && sent_upto - next[0] < 5) {
                    irc_sent_lines_t sent = {.n = 1};
                    sent.hash[0] = irc_ids_hash("user0", text[sent_upto]);
                    snprintf(ids[0][sent_upto], 32, "%s",
                             irc_ids_own(&w->conns[0], &w->rooms[0], text[sent_upto], &sent));
                    sent_upto++;
                }
                continue;
            }
            if (next[c] >= LINES)
                continue;
            int m = next[c];
            if (own[m] && (c == 0 || m >= sent_upto || !ids[0][m][0])) {
                if (c == 0 && ids[0][m][0])
                    next[c]++; /* the sender never reads its own line back */
                continue;
            }
            got(w, c, own[m] ? "user0" : "ivan", text[m], ids[c][m]);
            if (++next[c] == LINES)
                done++;
        }
        int bad = 0;
        for (int m = 0; m < LINES; m++)
            for (int c = 1; c < NCONN; c++)
                bad += ids[c][m][0] && ids[0][m][0] && strcmp(ids[c][m], ids[0][m]) != 0;
        CHECK(bad == 0, "round %d: %d lines with different ids on different connections", round,
              bad);
        memset(ids, 0, sizeof ids);
        irc_chan_release(w->chan);
        free(w);
    }
}

static void test_long_lag_and_draining(void)
{
    enum { LINES = 3000 };
    world_t *w = world_new();
    static char first[LINES][32];
    char id[32], text[32];
    for (int m = 0; m < LINES; m++) { /* connection 0 reads a whole burst first */
        snprintf(text, sizeof text, "burst %d", m % 7);
        got(w, 0, "ivan", text, first[m]);
    }
    CHECK(w->chan->nsaid - w->chan->said_base == LINES, "%llu lines waiting, not %d",
          (unsigned long long)(w->chan->nsaid - w->chan->said_base), LINES);
    int bad = 0;
    for (int m = 0; m < LINES; m++) {
        snprintf(text, sizeof text, "burst %d", m % 7);
        got(w, 1, "ivan", text, id);
        bad += strcmp(id, first[m]) != 0;
    }
    CHECK(bad == 0, "%d of %d lines got another id 3000 lines behind", bad, LINES);
    /* connection 2 leaves without reading: nobody waits for it */
    w->chan->joined = 2; /* as the bridge counts it before telling irc_ids */
    irc_ids_left(&w->rooms[2]);
    CHECK(w->chan->said_base == w->chan->nsaid,
          "the queue kept %llu lines nobody will read",
          (unsigned long long)(w->chan->nsaid - w->chan->said_base));
    w->chan->joined = 1; /* alone now: the ring goes */
    irc_ids_left(&w->rooms[1]);
    CHECK(!w->chan->said, "a ring kept for a channel nobody shares");
    irc_chan_release(w->chan);
    free(w);
}

int main(void)
{
    test_long_lag_and_draining();
    test_random_interleavings();
    test_one_id_per_line_any_order();
    test_own_message_found_by_the_others();
    test_late_joiner_and_one_connection();
    return check_summary();
}
