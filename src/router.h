/* router.h: where a stanza that entered through a component link goes. */
#ifndef FERRY_ROUTER_H
#define FERRY_ROUTER_H

#include <strophe.h>

#include "ferry/component.h"

void router_route(ferry_component_t *comp, xmpp_stanza_t *stanza);

/* Answers what every component answers on its domain (disco, ping,
 * version). Returns 1 when it answered. */
int core_iq_answer(ferry_component_t *comp, xmpp_stanza_t *iq);

#endif
