/* component.h: the core's side of a component: its link, its adapter
 * instance, and the order in which they start and stop. */
#ifndef FERRY_SRC_COMPONENT_H
#define FERRY_SRC_COMPONENT_H

#include "ferry/adapter.h"
#include "gateway.h"
#include "outbox.h"
#include "slots.h"
#include "xmpp_link.h"

struct ferry_component {
    gateway_t *gw;
    char *name;
    char *domain;
    const ferry_adapter_t *adapter;
    void *self;
    ferry__xmpp_link_t *link;
    int nslots;                 /* [components.NAME] slots */
    ferry__slots_t *slots;      /* with a PostgreSQL store: the link waits for a slot */
    uint64_t answers_away_until; /* loop time: see on_answers_away() */
    outbox_policy_t policy;
    net_outbox_t *net_outbox;   /* when the adapter opened it */
    outbox_hold_t *hold;        /* with it: XMPP messages held while the store is away */
    ferry__xmpp_outbox_t *xmpp_outbox;
    int started;
    int adapter_stopped;
    unsigned long long refused_invalid; /* stanzas the last check kept back */
    uv_timer_t grace; /* bounds how long the adapter may take to stop */
    void (*closed)(ferry_component_t *comp);
    const component_config_t *cc; /* until start() */
};

/* NULL after reporting config errors. */
ferry_component_t *ferry__component_new(gateway_t *gw, const component_config_t *cc);
int ferry__component_start(ferry_component_t *comp);
/* Stops the adapter (bounded by GRACE_MS), closes the stream, then calls
 * CLOSED; the component may then be freed. */
void ferry__component_stop(ferry_component_t *comp, void (*closed)(ferry_component_t *comp));
void ferry__component_free(ferry_component_t *comp);

/* One component's numbers at one moment, taken once for each reader: GET
 * /metrics, GET /healthz and the admins' status command. Zero where the
 * component has no such part (no link yet, no outbox, no store). */
typedef struct ferry__component_stats {
    ferry__xmpp_link_stats_t link;
    outbox_stats_t to_network;        /* the adapter's outbox, when it opened one */
    unsigned long long to_xmpp;       /* stanzas the XMPP outbox delivered */
    unsigned long long refused_invalid;
    store_counts_t store;             /* pending and dead rows, oldest pending */
    const char *role;                 /* "active" (always with SQLite), "standby", "unreachable" */
    int slot;                         /* the slot held, -1 when none (0 with SQLite) */
    char role_text[320];              /* the role in words, with the slot */
    size_t held;                      /* XMPP messages held while the store is away */
} component_stats_t;

void ferry__component_stats(const ferry_component_t *comp, component_stats_t *out);
/* Its role alone (as in the stats): ROLE and SLOT when not NULL, and TEXT. */
void ferry__component_role(const ferry_component_t *comp, const char **role, int *slot, char *text,
                           size_t len);

#endif
