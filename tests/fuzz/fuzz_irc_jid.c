/* fuzz_irc_jid.c: adapters/irc/irc_jid.c, biboumi's JIDs, on any bytes (the
 * 'to' of every stanza for the IRC component). Checks: what parses names a
 * server, channel or nick that fit their buffers, and writing a parsed
 * channel or nick back as a JID and parsing that gives the same name (the
 * XEP-0106 escapes go both ways). */
#include <stdlib.h>
#include <string.h>

#include "../../adapters/irc/irc.h"
#include "oracle.h"

static const char *const chantypes = "#&";

static void round_trip(const irc_jid_t *j, const char *jid)
{
    char back[2048];
    irc_jid_t again;
    if (j->kind == IRC_JID_CHANNEL) {
        if (strpbrk(j->server, "@/\\"))
            return; /* server names come from the config: none holds these (or an escape) */
        irc_jid_room(back, sizeof back, j->channel, j->server, "irc.example.org");
        if (irc_jid_parse(back, NULL, chantypes, &again) != 0 || again.kind != IRC_JID_CHANNEL ||
            strcmp(again.channel, j->channel) != 0 || strcmp(again.server, j->server) != 0)
            fuzz_fail("irc_jid", "room '%s' from '%s' does not parse back", back, jid);
    } else if (j->kind == IRC_JID_USER) {
        if (strpbrk(j->server, "@/\\"))
            return;
        irc_jid_user(back, sizeof back, j->nick, j->server, "irc.example.org");
        if (irc_jid_parse(back, NULL, chantypes, &again) != 0 || again.kind != IRC_JID_USER ||
            strcmp(again.nick, j->nick) != 0 || strcmp(again.server, j->server) != 0)
            fuzz_fail("irc_jid", "user '%s' from '%s' does not parse back", back, jid);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    irc_jid_t *j = malloc(sizeof *j);
    for (int with_default = 0; with_default < 2; with_default++) {
        if (irc_jid_parse(s, with_default ? "irc.example.net" : NULL, chantypes, j) != 0)
            continue;
        if (strlen(j->server) >= sizeof j->server || strlen(j->channel) >= sizeof j->channel ||
            strlen(j->nick) >= sizeof j->nick)
            fuzz_fail("irc_jid", "a part overran its buffer");
        if (j->kind == IRC_JID_CHANNEL && !strchr(chantypes, j->channel[0]))
            fuzz_fail("irc_jid", "channel '%s' without a channel prefix", j->channel);
        if (!with_default)
            round_trip(j, s);
    }
    free(j);
    free(s);
    return 0;
}
