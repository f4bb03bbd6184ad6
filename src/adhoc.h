/* adhoc.h: XEP-0050 commands every component offers its admins. */
#ifndef FERRY_ADHOC_H
#define FERRY_ADHOC_H

#include <strophe.h>

#include "ferry/component.h"
#include "ferry/form.h"


/* disco#items with node=commands: the commands the asker may run. */
void adhoc_items(ferry_component_t *comp, xmpp_stanza_t *iq);
/* disco#info on a command node (XEP-0050 section 2.3); 0 when NODE is not
 * a command. */
int adhoc_info(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node);
/* An iq set holding <command/>: runs it, or answers forbidden. */
void adhoc_execute(ferry_component_t *comp, xmpp_stanza_t *iq, xmpp_stanza_t *cmd);

#endif
