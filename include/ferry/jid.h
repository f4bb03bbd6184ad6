/* ferry/jid.h: JID splitting and the allow-list match used by adapters. */
#ifndef FERRY_JID_H
#define FERRY_JID_H

#include <stddef.h>

typedef struct ferry_jid {
    char local[1024];    /* "" when absent */
    char domain[1024];
    char resource[1024]; /* "" when absent */
} ferry_jid_t;

/* Splits "local@domain/resource". Returns 0, or -1 when the JID is malformed
 * (empty parts, over 1023 bytes per part, forbidden characters). Local part
 * and domain are lowercased (ASCII; enough for addresses the gateway owns). */
int ferry_jid_parse(const char *jid, ferry_jid_t *out);

/* Writes "local@domain" (or "domain") into buf. */
void ferry_jid_bare(const ferry_jid_t *jid, char *buf, size_t len);
/* The same from a JID string: the bare JID of a stanza's sender, or JID as
 * it is when it does not parse. */
void ferry_jid_bare_of(const char *jid, char *buf, size_t len);

/* Whether the sender's JID is covered by a NULL-terminated list of bare JIDs
 * and domains ("alice@example.org", "example.org"). NULL or empty list:
 * nobody. */
int ferry_jid_allowed(char *const *allow, const char *jid);

#endif
