/* ferry/stanza.h: small builders on top of libstrophe's stanza objects. */
#ifndef FERRY_STANZA_H
#define FERRY_STANZA_H

#include <strophe.h>

/* Appends <NAME xmlns=NS/> (NS may be NULL) to PARENT and returns it; PARENT
 * holds the only reference. */
xmpp_stanza_t *ferry_stanza_add(xmpp_stanza_t *parent, const char *name, const char *ns);
/* Appends <NAME>TEXT</NAME> and returns it. */
xmpp_stanza_t *ferry_stanza_add_text(xmpp_stanza_t *parent, const char *name, const char *text);

#endif
