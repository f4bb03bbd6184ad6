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

/* The result to IQ: its id, to and from swapped. With NS, a <query
 * xmlns=NS/> in it, which *QUERY gets (QUERY may be NULL). The caller owns
 * the stanza: send it with ferry_component_send_release(). */
xmpp_stanza_t *ferry_iq_result(xmpp_stanza_t *iq, const char *ns, xmpp_stanza_t **query);

/* XEP-0030: in a disco#info QUERY, <identity category type name/> (NAME
 * may be NULL) and <feature var/>; in a disco#items QUERY, <item jid node
 * name/> (NODE and NAME may be NULL). */
void ferry_disco_identity(xmpp_stanza_t *query, const char *category, const char *type,
                          const char *name);
void ferry_disco_feature(xmpp_stanza_t *query, const char *var);
void ferry_disco_item(xmpp_stanza_t *query, const char *jid, const char *node, const char *name);

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
