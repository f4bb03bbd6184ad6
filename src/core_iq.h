/* core_iq.h: the iqs the core answers itself on every component's domain. */
#ifndef FERRY_SRC_CORE_IQ_H
#define FERRY_SRC_CORE_IQ_H

#include <strophe.h>

#include "ferry/component.h"

/* Answers what every component answers on its domain (disco, ping,
 * version). Returns 1 when it answered. */
int ferry__core_iq_answer(ferry_component_t *comp, xmpp_stanza_t *iq);

#endif
