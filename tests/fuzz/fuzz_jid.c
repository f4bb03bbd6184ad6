/* fuzz_jid.c: src/jid.c on any bytes (a stanza's 'from' and 'to', config
 * allow lists). Checks: parsed parts are bounded, free of controls and
 * lowercased where promised; the bare JID of a parsed JID parses again to
 * the same parts; bare_of never overflows its buffer. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/jid.h"
#include "oracle.h"

static void check_part(const char *part, int lower)
{
    for (const unsigned char *p = (const unsigned char *)part; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fuzz_fail("jid", "control character 0x%02x in a part", *p);
        if (lower && isupper(*p))
            fuzz_fail("jid", "upper case left in '%s'", part);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    ferry_jid_t *j = malloc(sizeof *j), *again = malloc(sizeof *again);
    if (ferry_jid_parse(s, j) == 0) {
        if (!j->domain[0])
            fuzz_fail("jid", "parsed with an empty domain: '%s'", s);
        check_part(j->local, 1);
        check_part(j->domain, 1);
        check_part(j->resource, 0);
        char bare[2100];
        ferry_jid_bare(j, bare, sizeof bare);
        if (ferry_jid_parse(bare, again) != 0 || strcmp(again->local, j->local) != 0 ||
            strcmp(again->domain, j->domain) != 0 || again->resource[0])
            fuzz_fail("jid", "bare '%s' of '%s' does not parse back", bare, s);
        char *list[] = {bare, NULL};
        if (!ferry_jid_allowed(list, s))
            fuzz_fail("jid", "'%s' not allowed by its own bare JID", s);
    }
    /* The bare JID of anything, into buffers of every small size. */
    for (size_t len = 1; len < 8; len++) {
        char *buf = malloc(len);
        ferry_jid_bare_of(s, buf, len);
        if (strlen(buf) >= len)
            fuzz_fail("jid", "bare_of overran %zu bytes", len);
        free(buf);
    }
    /* The input as an allow list of lines, matched against a fixed sender. */
    char *copy = strdup(s), *items[9];
    size_t n = 0;
    for (char *line = strtok(copy, "\n"); line && n < 8; line = strtok(NULL, "\n"))
        items[n++] = line;
    items[n] = NULL;
    ferry_jid_allowed(items, "alice@example.org/phone");
    free(copy);
    free(again);
    free(j);
    free(s);
    return 0;
}
