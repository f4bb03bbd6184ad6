/* test_irc_chan.c: the shared member list of a channel: departures and
 * renames kept until every local connection saw them, and its hash index
 * agreeing with a plain scan after thousands of random events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../adapters/irc/irc.h"
#include "check.h"

static irc_t *irc_new(void)
{
    irc_t *irc = calloc(1, sizeof(irc_t));
    ferry_list_init(&irc->chans);
    return irc;
}

/* What the index must answer, found the slow way. */
static irc_member_t *scan_present(irc_chan_t *c, const char *nick, irc_casemap_t map)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (!c->members[i].gone && irc_casecmp(map, c->members[i].nick, nick) == 0)
            return &c->members[i];
    return NULL;
}

static int scan_pending(irc_chan_t *c, const char *nick, irc_casemap_t map)
{
    for (size_t i = 0; i < c->nmembers; i++) {
        irc_member_t *m = &c->members[i];
        if ((m->gone && irc_casecmp(map, m->nick, nick) == 0) ||
            (m->old_nick && irc_casecmp(map, m->old_nick, nick) == 0))
            return 1;
    }
    return 0;
}

static void test_shared_departures(void)
{
    irc_t *irc = irc_new();
    irc_chan_t *c = irc_chan_get(irc, "irc.example.net", "#Chan", IRC_CASE_RFC1459);
    CHECK(irc_chan_get(irc, "irc.example.net", "#chan", IRC_CASE_RFC1459) == c,
          "one list per channel whatever the case");
    c->joined = 3; /* three local connections see every event */
    irc_chan_add(c, "alice", "@", IRC_CASE_RFC1459);
    irc_chan_add(c, "bob[1]", "", IRC_CASE_RFC1459);
    irc_chan_add(c, "carol", "+", IRC_CASE_RFC1459);
    irc_member_t *m = irc_chan_member(c, "BOB{1}", IRC_CASE_RFC1459);
    CHECK(m && strcmp(m->nick, "bob[1]") == 0, "rfc1459: [] and {} are one case");
    CHECK(irc_chan_member(c, "BOB{1}", IRC_CASE_ASCII) == NULL, "ascii: they are not");

    irc_chan_remove(c, "alice", IRC_CASE_RFC1459);
    CHECK(irc_chan_member(c, "alice", IRC_CASE_RFC1459) == NULL, "gone for lookups");
    m = irc_chan_witness(c, "Alice", IRC_CASE_RFC1459);
    CHECK(m && m->gone && m->pending == 2, "kept for the two others");
    irc_chan_seen(c, m);
    m = irc_chan_witness(c, "alice", IRC_CASE_RFC1459);
    CHECK(m && m->gone && m->pending == 1, "one left to see it");
    irc_chan_seen(c, m);
    CHECK(irc_chan_witness(c, "alice", IRC_CASE_RFC1459) == NULL, "forgotten when all saw it");
    CHECK_INT(c->nmembers, 2);

    irc_chan_rename(c, "carol", "caroline", IRC_CASE_RFC1459);
    m = irc_chan_witness(c, "carol", IRC_CASE_RFC1459);
    CHECK(m && strcmp(m->nick, "caroline") == 0 && strcmp(m->modes, "+") == 0,
          "the old nick leads to the renamed member, modes kept");
    CHECK(irc_chan_member(c, "caroline", IRC_CASE_RFC1459) == m, "found by the new nick");
    irc_chan_seen(c, m);
    irc_chan_seen(c, m);
    CHECK(m->old_nick == NULL, "old nick forgotten when all saw it");
    CHECK(irc_chan_witness(c, "carol", IRC_CASE_RFC1459) == NULL, "and no longer found");

    irc_chan_remove(c, "bob[1]", IRC_CASE_RFC1459);
    m = irc_chan_add(c, "bob[1]", "+", IRC_CASE_RFC1459);
    CHECK(m && !m->gone && m->pending == 0, "back before everyone saw it leave");
    CHECK_INT(c->nmembers, 2);

    irc_chan_clear(c);
    CHECK_INT(c->nmembers, 0);
    CHECK(irc_chan_member(c, "caroline", IRC_CASE_RFC1459) == NULL, "cleared");
    irc_chan_add(c, "dave", "", IRC_CASE_RFC1459);
    CHECK(irc_chan_member(c, "DAVE", IRC_CASE_RFC1459) != NULL, "usable after clearing");
    irc_chan_release(c);
    irc_chan_release(c);
    CHECK(ferry_list_empty(&irc->chans), "released by its last user");
    free(irc);
}

/* Random joins, parts, renames and acknowledgements over a small nick space
 * (so that names collide and come back), checked against a scan. */
static void test_index_matches_scan(void)
{
    irc_t *irc = irc_new();
    irc_chan_t *c = irc_chan_get(irc, "s", "#c", IRC_CASE_RFC1459);
    c->joined = 3;
    unsigned seed = 12345;
    char nick[16];
    int mismatches = 0;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        snprintf(nick, sizeof nick, "%c%u", (r & 1) ? 'N' : 'n', (r >> 1) % 300);
        switch ((r >> 12) % 5) {
        case 0:
        case 1:
            irc_chan_add(c, nick, "", IRC_CASE_RFC1459);
            break;
        case 2:
            irc_chan_remove(c, nick, IRC_CASE_RFC1459);
            break;
        case 3: {
            char to[16];
            snprintf(to, sizeof to, "n%u", (r >> 16) % 300);
            if (!irc_chan_member(c, to, IRC_CASE_RFC1459))
                irc_chan_rename(c, nick, to, IRC_CASE_RFC1459);
            break;
        }
        default: {
            irc_member_t *m = irc_chan_witness(c, nick, IRC_CASE_RFC1459);
            if (m && (m->gone || m->old_nick))
                irc_chan_seen(c, m);
        }
        }
        for (unsigned k = 0; k < 300; k += 7) {
            snprintf(nick, sizeof nick, "N%u", k);
            if (irc_chan_member(c, nick, IRC_CASE_RFC1459) != scan_present(c, nick, IRC_CASE_RFC1459))
                mismatches++;
            irc_member_t *w = irc_chan_witness(c, nick, IRC_CASE_RFC1459);
            int pending = w && (w->gone || (w->old_nick && irc_casecmp(IRC_CASE_RFC1459,
                                                                       w->old_nick, nick) == 0));
            if (pending != scan_pending(c, nick, IRC_CASE_RFC1459))
                mismatches++;
        }
    }
    CHECK(c->nmembers > 50, "the list grew (%zu members)", c->nmembers);
    CHECK_INT(mismatches, 0);
    irc_chan_release(c);
    free(irc);
}

int main(void)
{
    test_shared_departures();
    test_index_matches_scan();
    return check_summary();
}
