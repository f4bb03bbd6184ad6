/* adhoc.h: XEP-0050 commands every component offers its admins. */
#ifndef FERRY_ADHOC_H
#define FERRY_ADHOC_H

#include <stddef.h>
#include <stdint.h>

#include <strophe.h>

#include "ferry/component.h"
#include "ferry/form.h"
#include "store.h"

struct ferry__component_stats;

/* What the admin commands may do beyond their own component, and nothing
 * more of the gateway: gateway.c fills it in, ARG is passed back. */
typedef struct adhoc_ops {
    void *arg;
    /* Re-reads the config as SIGHUP does: 0, or -1 when it has errors and
     * nothing changed. */
    int (*reload)(void *arg);
    /* Component I (config order) with its snapshot in OUT; NULL past the
     * last. */
    ferry_component_t *(*stats)(void *arg, size_t i, struct ferry__component_stats *out);
    /* Every pending and dead message of the store, as ferry__store_msg_list(): the
     * number passed to CB, or -1. */
    int (*messages)(void *arg, store_row_cb cb, void *cb_arg);
    /* Makes a message pending again (ferry__store_msg_requeue()): 0, else there is
     * no such message. */
    int (*requeue)(void *arg, int64_t id);
    /* This instance, then the others sharing the store (heartbeat.h), one
     * line each, into BUF. */
    void (*instances)(void *arg, char *buf, size_t len);
} adhoc_ops_t;

/* disco#items with node=commands: the commands the asker may run. */
void ferry__adhoc_items(ferry_component_t *comp, xmpp_stanza_t *iq);
/* disco#info on a command node (XEP-0050 section 2.3); 0 when NODE is not
 * a command. */
int ferry__adhoc_info(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node);
/* An iq set holding <command/>: runs it with OPS, or answers forbidden. */
void ferry__adhoc_execute(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                   xmpp_stanza_t *cmd);

#endif
