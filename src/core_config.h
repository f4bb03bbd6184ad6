/* core_config.h: gateway.toml as the core sees it. Adapter tables stay as TOML
 * nodes; their adapters read them. */
#ifndef FERRY_SRC_CORE_CONFIG_H
#define FERRY_SRC_CORE_CONFIG_H

#include <stddef.h>

#include "outbox.h"
#include "toml.h"

typedef struct component_config {
    char *name;            /* NAME of [components.NAME] */
    char *adapter;
    char *domain;
    char *secret;
    outbox_policy_t policy;
    int slots;             /* slot locks for its link (PostgreSQL store): slots.h */
    const toml_node_t *table;
} component_config_t;

typedef struct config {
    char *path;
    toml_node_t *root;

    char *xmpp_host;
    int xmpp_port;
    size_t queue_size;
    double ping_interval;
    double ping_timeout;
    double keepalive_interval;
    size_t max_stanza_size;

    char *http_listen;
    char *public_url;
    size_t http_max_connections;        /* [http] limits, see http_server_limits_t */
    size_t http_max_connections_per_ip;
    double http_request_timeout;

    char *store_path;       /* SQLite; NULL when store_url is set */
    char *store_url;        /* PostgreSQL (storage.url or url_file), or NULL */
    double keep_done;       /* seconds done and dead messages are kept */
    double store_lease;     /* seconds a conversation lease lasts (several instances) */
    size_t hold_messages;   /* per component: XMPP messages held while the store is down */
    size_t hold_bytes;      /* and their bytes (outbox_hold.c) */

    char **admins;          /* [admin] jids: bare JIDs or domains */

    char *instance;         /* [cluster] instance: this process's name (default: host name) */
    int slots;              /* [cluster] slots: the components' default */

    int log_level;
    int log_json;

    component_config_t *components;
    size_t ncomponents;
} config_t;

/* Reads and checks the core's part of PATH. Returns NULL after printing
 * "FILE:LINE: message" lines to stderr. Adapter tables are checked by
 * ferry__config_finish() once the adapters have read them. */
config_t *ferry__config_load(const char *path);
/* Reports unknown keys anywhere in the file; returns the total error count
 * since ferry__config_load(). */
int ferry__config_finish(config_t *config);
void ferry__config_free(config_t *config);

#endif
