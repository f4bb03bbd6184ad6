/* ferry/form.h: XEP-0004 data forms and the XEP-0050 command answers that
 * carry them, built once for the core's admin commands and the adapters'
 * own (the IRC adapter's biboumi-style settings).
 *
 * A command step is answered with a result holding <command node sessionid
 * status/>: the asker's session is kept, one is started when it has none. */
#ifndef FERRY_FORM_H
#define FERRY_FORM_H

#include <strophe.h>

#include "ferry/component.h"

#define FERRY_NS_COMMANDS "http://jabber.org/protocol/commands"
#define FERRY_NS_DATA "jabber:x:data"

/* The <field var=VAR/> of the data form X (may be NULL), and its first
 * value: NULL when the field is absent, "" when it has no value. */
xmpp_stanza_t *ferry_form_field(xmpp_stanza_t *x, const char *var);
const char *ferry_form_value(xmpp_stanza_t *x, const char *var);

/* Appends <x xmlns=jabber:x:data type=TYPE><title>TITLE</title></x> to
 * PARENT and returns it. */
xmpp_stanza_t *ferry_form_add(xmpp_stanza_t *parent, const char *type, const char *title);
/* Appends <field var type label><value/></field> to X (LABEL and VALUE
 * may be NULL) and returns it. */
xmpp_stanza_t *ferry_form_add_field(xmpp_stanza_t *x, const char *var, const char *type,
                                    const char *label, const char *value);

/* The result to the command IQ for NODE with STATUS; *CMD gets its
 * <command/> to add to. Send it with ferry_component_send_release(). */
xmpp_stanza_t *ferry_command_answer(xmpp_stanza_t *iq, const char *node, const char *status,
                                    xmpp_stanza_t **cmd);
/* A step that needs input: status executing, the one action complete, and
 * a form to fill (*X) with TITLE and INSTRUCTIONS (may be NULL). */
xmpp_stanza_t *ferry_command_ask(xmpp_stanza_t *iq, const char *node, const char *title,
                                 const char *instructions, xmpp_stanza_t **x);
/* Sends the last step: status completed with <note type=NOTE_TYPE>TEXT. */
void ferry_command_complete(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node,
                            const char *note_type, const char *text);
/* Sends the answer to disco#info on the command NODE named NAME. */
void ferry_command_info(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node,
                        const char *name);

#endif
