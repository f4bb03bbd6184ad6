/* router.h: where a stanza that entered through a component link goes. */
#ifndef FERRY_ROUTER_H
#define FERRY_ROUTER_H

#include <strophe.h>

#include "ferry/component.h"

void ferry__router_route(ferry_component_t *comp, xmpp_stanza_t *stanza);

#endif
