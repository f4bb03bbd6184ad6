/* component.h: the core's side of a component: its link, its adapter
 * instance, and the order in which they start and stop. */
#ifndef FERRY_SRC_COMPONENT_H
#define FERRY_SRC_COMPONENT_H

#include "ferry/adapter.h"
#include "gateway.h"
#include "outbox.h"
#include "xmpp_link.h"

struct ferry_component {
    gateway_t *gw;
    char *name;
    char *domain;
    const ferry_adapter_t *adapter;
    void *self;
    xmpp_link_t *link;
    outbox_policy_t policy;
    net_outbox_t *net_outbox;   /* when the adapter opened it */
    xmpp_outbox_t *xmpp_outbox;
    int started;
    int adapter_stopped;
    unsigned long long refused_invalid; /* stanzas the last check kept back */
    uv_timer_t grace; /* bounds how long the adapter may take to stop */
    void (*closed)(ferry_component_t *comp);
    const component_config_t *cc; /* until start() */
};

/* NULL after reporting config errors. */
ferry_component_t *component_new(gateway_t *gw, const component_config_t *cc);
int component_start(ferry_component_t *comp);
/* Stops the adapter (bounded by GRACE_MS), closes the stream, then calls
 * CLOSED; the component may then be freed. */
void component_stop(ferry_component_t *comp, void (*closed)(ferry_component_t *comp));
void component_free(ferry_component_t *comp);

#endif
