/* stanza_error.h: RFC 6120 section 8.3 error replies. */
#ifndef FERRY_STANZA_ERROR_H
#define FERRY_STANZA_ERROR_H

#include <strophe.h>

/* The error reply to STANZA: a copy of it (payload kept, so the sender sees
 * what failed) with to/from swapped, type='error', the same id, and
 * <error type=TYPE><CONDITION xmlns=stanzas/><text>TEXT</text></error>.
 * NULL when STANZA is itself an error or has no 'from': never an error in
 * reply to an error, and nobody to answer. */
xmpp_stanza_t *ferry__stanza_error_new(xmpp_stanza_t *stanza, const char *type, const char *condition,
                                const char *text);

#endif
