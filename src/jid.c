/* jid.c: splitting JIDs and matching senders against allow lists. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ferry/jid.h"

static int copy_part(char *dst, size_t cap, const char *src, size_t len, int lower)
{
    if (len == 0 || len >= cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
        dst[i] = lower ? (char)tolower(c) : (char)c;
    }
    dst[len] = 0;
    return 0;
}

/* RFC 7622 forbids these in a localpart. */
static int local_ok(const char *s)
{
    return strpbrk(s, "\"&'/:<>@ ") == NULL;
}

int ferry_jid_parse(const char *jid, ferry_jid_t *out)
{
    memset(out, 0, sizeof *out);
    if (!jid)
        return -1;
    const char *slash = strchr(jid, '/');
    size_t bare_len = slash ? (size_t)(slash - jid) : strlen(jid);
    const char *at = memchr(jid, '@', bare_len);
    const char *domain = at ? at + 1 : jid;
    size_t domain_len = bare_len - (size_t)(domain - jid);
    if (domain_len > 0 && domain[domain_len - 1] == '.')
        domain_len--; /* a trailing dot names the same domain */
    if (domain_len > 0 && domain[domain_len - 1] == '.')
        return -1; /* but two make an empty label: no domain */
    if (at && copy_part(out->local, sizeof out->local, jid, (size_t)(at - jid), 1) != 0)
        return -1;
    if (at && !local_ok(out->local))
        return -1;
    if (copy_part(out->domain, sizeof out->domain, domain, domain_len, 1) != 0)
        return -1;
    if (strpbrk(out->domain, "@ ") != NULL)
        return -1;
    if (slash && copy_part(out->resource, sizeof out->resource, slash + 1, strlen(slash + 1), 0) != 0)
        return -1;
    return 0;
}

void ferry_jid_bare(const ferry_jid_t *jid, char *buf, size_t len)
{
    if (jid->local[0])
        snprintf(buf, len, "%s@%s", jid->local, jid->domain);
    else
        snprintf(buf, len, "%s", jid->domain);
}

void ferry_jid_bare_of(const char *jid, char *buf, size_t len)
{
    ferry_jid_t j;
    if (jid && ferry_jid_parse(jid, &j) == 0)
        ferry_jid_bare(&j, buf, len);
    else
        snprintf(buf, len, "%s", jid ? jid : "");
}

int ferry_jid_allowed(char *const *allow, const char *jid)
{
    ferry_jid_t j;
    if (!allow || ferry_jid_parse(jid, &j) != 0)
        return 0;
    char bare[2100];
    ferry_jid_bare(&j, bare, sizeof bare);
    for (char *const *a = allow; *a; a++) {
        ferry_jid_t e;
        if (ferry_jid_parse(*a, &e) != 0)
            continue;
        if (strcmp(e.domain, j.domain) != 0)
            continue;
        if (!e.local[0] || strcmp(e.local, j.local) == 0)
            return 1;
    }
    return 0;
}
