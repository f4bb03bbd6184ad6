/* ferry/stanza.h: small builders on top of libstrophe's stanza objects. */
#ifndef FERRY_STANZA_H
#define FERRY_STANZA_H

#include <strophe.h>

/* Appends <NAME xmlns=NS/> (NS may be NULL) to PARENT and returns it; PARENT
 * holds the only reference. */
xmpp_stanza_t *ferry_stanza_add(xmpp_stanza_t *parent, const char *name, const char *ns);
/* Appends <NAME>TEXT</NAME> and returns it; TEXT is cleaned first when XML
 * would not accept it (ferry_xml_text_clean_to). */
xmpp_stanza_t *ferry_stanza_add_text(xmpp_stanza_t *parent, const char *name, const char *text);

/* XEP-0004: the <field var=VAR/> of the data form X (may be NULL), and its
 * first value: NULL when the field is absent, "" when it has no value. */
xmpp_stanza_t *ferry_form_field(xmpp_stanza_t *x, const char *var);
const char *ferry_form_value(xmpp_stanza_t *x, const char *var);

/* Appends TEXT to OUT (capacity CAP, at LEN) escaped for XML text and
 * attribute values, with what XML forbids replaced by U+FFFD (the rule of
 * ferry_xml_text_clean_to); returns the new length, or CAP when it did not
 * fit. */
size_t ferry_xml_escape(char *out, size_t cap, size_t len, const char *text);

/* The RFC 6120 error reply to STANZA (see ferry_component_reply_error), to
 * send later or to store with ferry_xmpp_put(); NULL when STANZA is an error
 * or has no 'from'. Release it. */
xmpp_stanza_t *ferry_stanza_error_reply(xmpp_stanza_t *stanza, const char *type,
                                        const char *condition, const char *text);

#endif
