/* ferry/adapter.h: the contract between the core and an adapter.
 *
 * An adapter lives in adapters/NAME/ and exports one const ferry_adapter_t
 * called ferry_adapter_NAME; the build lists it and the core looks it up by
 * the component's `adapter = "NAME"`. The core calls the adapter only from
 * the loop thread.
 *
 * Lifetime: create() -> start() -> (stanzas, on_link, reload)* -> stop() ->
 * the adapter calls ferry_component_stopped() -> destroy(). */
#ifndef FERRY_ADAPTER_H
#define FERRY_ADAPTER_H

#include <strophe.h>

#include "ferry/component.h"
#include "ferry/config.h"
#include "ferry/metrics.h"

typedef struct ferry_adapter {
    const char *name;         /* `adapter = "..."` */
    const char *gateway_type; /* disco identity type under category "gateway" */

    /* Reads the component's table (domain and secret are the core's).
     * Returns the adapter's state, or NULL after reporting errors with
     * ferry_conf_error(). Must not touch the network. */
    void *(*create)(ferry_component_t *comp, const ferry_conf_t *conf);
    /* Registers routes, opens what it needs. 0 or -1. */
    int (*start)(void *self);
    /* Begins an orderly stop; call ferry_component_stopped() when done. */
    void (*stop)(void *self);
    void (*destroy)(void *self);

    /* Stanzas addressed to the component's domain or any JID under it.
     * Error stanzas are passed too (for bookkeeping); never answer them. */
    void (*on_message)(void *self, xmpp_stanza_t *stanza);
    void (*on_presence)(void *self, xmpp_stanza_t *stanza); /* may be NULL */
    /* Returns 1 when it answered, 0 to let the core answer (disco, ping,
     * version, else service-unavailable). May be NULL. */
    int (*on_iq)(void *self, xmpp_stanza_t *stanza);
    /* Adds <feature/>s to the domain's disco#info <query/>. May be NULL. */
    void (*disco_info)(void *self, xmpp_stanza_t *query);
    /* The component link went up (1) or down (0). May be NULL. */
    void (*on_link)(void *self, int up);
    /* SIGHUP, in two passes, so that a file with an error anywhere changes
     * nothing: first with apply = 0 to read and check CONF (report errors,
     * change nothing), then, only if the whole file is valid, with apply = 1
     * to switch to it without dropping links. Returns 0, or -1 after
     * reporting errors. May be NULL (a change then needs a restart). */
    int (*reload)(void *self, const ferry_conf_t *conf, int apply);
    /* For admins (XEP-0050): how many users have sessions (connections to
     * the far network), and closing those of one bare JID; returns how many
     * were closed. May be NULL when the adapter keeps no sessions. */
    size_t (*sessions)(void *self);
    size_t (*disconnect)(void *self, const char *bare_jid);
    /* Adds <item/>s to the domain's list of XEP-0050 commands for the
     * asker of IQ (the adapter runs them itself from on_iq). May be NULL. */
    void (*command_items)(void *self, xmpp_stanza_t *iq, xmpp_stanza_t *query);
    /* Adds the adapter's own values to GET /metrics. May be NULL. */
    void (*metrics)(void *self, ferry_metrics_t *m);
} ferry_adapter_t;

#endif
