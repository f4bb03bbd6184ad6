/* gateway.h: the process: one loop, the shared HTTP client and server, and
 * the components built from the config. */
#ifndef FERRY_GATEWAY_H
#define FERRY_GATEWAY_H

#include <strophe.h>
#include <uv.h>

#include "adhoc.h"
#include "core_config.h"
#include "ferry/component.h"
#include "ferry/http_client.h"
#include "ferry/http_server.h"
#include "heartbeat.h"
#include "store.h"

typedef struct gateway {
    uv_loop_t *loop;
    xmpp_ctx_t *ctx;
    config_t *config;
    ferry_http_client_t *http_client;
    ferry_http_server_t *http_server;
    store_t *store;
    char *instance;              /* [cluster] instance as started (a reload does not rename) */
    ferry__heartbeat_t *heartbeat; /* with a PostgreSQL store */
    uv_timer_t prune;
    adhoc_ops_t admin; /* what the admins' ad-hoc commands may do */
    ferry_component_t **components;
    size_t ncomponents;
    int stopping;
    int for_good;           /* SIGUSR1: not a restart (adapters forget sessions) */
    size_t components_open; /* components not yet closed while stopping */
    size_t closing;         /* HTTP halves still closing */
    void (*stopped)(struct gateway *gw);
} gateway_t;

/* Builds the components of CONFIG (the adapters read their tables). Returns
 * NULL when the config has errors (printed). Takes CONFIG. */
gateway_t *ferry__gateway_new(uv_loop_t *loop, config_t *config);
/* Opens the HTTP listener and the component links. -1 on failure (logged). */
int ferry__gateway_start(gateway_t *gw);
/* Orderly stop: adapters finish (bounded), streams are closed with
 * </stream:stream>, handles closed; then STOPPED is called. */
void ferry__gateway_stop(gateway_t *gw, void (*stopped)(gateway_t *gw));
/* SIGHUP: re-reads the config file and applies what can change live; a
 * file with any error changes nothing (-1). */
int ferry__gateway_reload(gateway_t *gw);
void ferry__gateway_free(gateway_t *gw);
/* This process's instance name ([cluster] instance, default the host
 * name), as logged and as the store's leases and heartbeats know it. */
const char *ferry__gateway_instance(const gateway_t *gw);
/* Whether no other instance sharing the store waits for a slot (none
 * could take one that frees), as far as the heartbeats last said (1 with
 * SQLite). */
int ferry__gateway_none_waiting(const gateway_t *gw);
/* A component took or lost its slot: the heartbeat says so now. */
void ferry__gateway_role_changed(gateway_t *gw);

#endif
