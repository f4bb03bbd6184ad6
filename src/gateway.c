/* gateway.c: the whole process on one loop: builds components from the
 * config, starts the HTTP side and the links, reloads on SIGHUP and stops in
 * order (adapters, then streams, then HTTP). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ferry/alloc.h"
#include "alloc.h"
#include "component.h"
#include "config.h"
#include "ferry/log.h"
#include "gateway.h"
#include "health.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "metrics.h"

/* ---- what the admins' commands may do (adhoc.h) ---- */

static int admin_reload(void *arg) { return ferry__gateway_reload(arg); }

static ferry_component_t *admin_stats(void *arg, size_t i, component_stats_t *out)
{
    gateway_t *gw = arg;
    if (i >= gw->ncomponents)
        return NULL;
    ferry__component_stats(gw->components[i], out);
    return gw->components[i];
}

static int admin_messages(void *arg, store_row_cb cb, void *cb_arg)
{
    gateway_t *gw = arg;
    return gw->store ? ferry__store_msg_list(gw->store, cb, cb_arg) : -1;
}

static int admin_requeue(void *arg, int64_t id)
{
    gateway_t *gw = arg;
    return gw->store ? ferry__store_msg_requeue(gw->store, id) : -1;
}

/* This instance and the others sharing the store, one line each. */
static void admin_instances(void *arg, char *buf, size_t len)
{
    gateway_t *gw = arg;
    ferry__heartbeat_describe(gw->heartbeat, gw->instance, buf, len);
}

gateway_t *ferry__gateway_new(uv_loop_t *loop, config_t *config)
{
    gateway_t *gw = ferry_calloc(1, sizeof *gw);
    gw->loop = loop;
    gw->config = config;
    gw->instance = ferry_strdup(config->instance);
    gw->ctx = xmpp_ctx_new(&ferry__alloc_xmpp_mem, NULL); /* out of memory: abort (ferry/alloc.h) */
    gw->http_client = ferry__http_client_new(loop);
    gw->admin = (adhoc_ops_t){gw, admin_reload, admin_stats, admin_messages, admin_requeue,
                           admin_instances};
    gw->components = ferry_calloc(config->ncomponents + 1, sizeof *gw->components);
    for (size_t i = 0; i < config->ncomponents; i++) {
        ferry_component_t *comp = ferry__component_new(gw, &config->components[i]);
        if (comp)
            gw->components[gw->ncomponents++] = comp;
    }
    if (ferry__config_finish(config) > 0 || gw->ncomponents != config->ncomponents) {
        ferry__gateway_free(gw);
        return NULL;
    }
    return gw;
}

static void on_prune(uv_timer_t *t)
{
    gateway_t *gw = t->data;
    int64_t before = ferry__store_now_ms() - (int64_t)(gw->config->keep_done * 1000);
    int n = ferry__store_prune(gw->store, before);
    if (n > 0)
        ferry_log_info("store", "pruned %d delivered or dead message(s) past keep_done", n);
}

const char *ferry__gateway_instance(const gateway_t *gw) { return gw->instance; }

/* For the heartbeat: {component: role}. */
static json_t *component_roles(void *arg)
{
    gateway_t *gw = arg;
    json_t *roles = json_object();
    for (size_t i = 0; i < gw->ncomponents; i++) {
        char text[320];
        ferry__component_role(gw->components[i], NULL, NULL, text, sizeof text);
        json_object_set_new(roles, gw->components[i]->name, json_string(text));
    }
    return roles;
}

int ferry__gateway_none_waiting(const gateway_t *gw)
{
    return !gw->heartbeat || ferry__heartbeat_none_waiting(gw->heartbeat);
}

void ferry__gateway_role_changed(gateway_t *gw)
{
    if (gw->heartbeat)
        ferry__heartbeat_now(gw->heartbeat);
}

/* Slots need a store that several instances share. */
static void start_cluster(gateway_t *gw)
{
    const config_t *c = gw->config;
    if (c->store_url) {
        gw->heartbeat = ferry__heartbeat_start(gw->loop, gw->store, gw->instance,
                                               component_roles, gw);
        return;
    }
    for (size_t i = 0; i < c->ncomponents; i++)
        if (c->components[i].slots > 1)
            ferry_log_warn(c->components[i].name, "slots = %d applies with a PostgreSQL store "
                           "only (storage.url); one instance, always linked", c->components[i].slots);
}

int ferry__gateway_start(gateway_t *gw)
{
    char err[1024];
    const config_t *c = gw->config;
    gw->store = c->store_url ? ferry__store_open_pg(gw->loop, c->store_url, err, sizeof err)
                             : ferry__store_open(gw->loop, c->store_path, err, sizeof err);
    if (!gw->store) {
        ferry_log_error("store", "%s", err);
        return -1;
    }
    ferry__store_set_lease(gw->store, c->store_lease);
    /* The owner name in leases: the instance name ([cluster] instance) and
     * the HTTP listen address: the same after a restart (a restarted ferry
     * takes its conversations back at once rather than after their lease),
     * and different for two ferries on one host left with the default name
     * (the host's): they listen on different ports. */
    char *owner = ferry_asprintf("%s %s", ferry__gateway_instance(gw), c->http_listen);
    ferry__store_set_instance(gw->store, owner);
    free(owner);
    uv_timer_init(gw->loop, &gw->prune);
    gw->prune.data = gw;
    uv_timer_start(&gw->prune, on_prune, 60 * 1000, 3600 * 1000);
    start_cluster(gw);
    const http_server_limits_t limits = {
        .max_connections = (unsigned)gw->config->http_max_connections,
        .max_connections_per_ip = (unsigned)gw->config->http_max_connections_per_ip,
        .request_timeout = gw->config->http_request_timeout,
    };
    gw->http_server =
        ferry__http_server_new(gw->loop, gw->config->http_listen, &limits, err, sizeof err);
    if (!gw->http_server) {
        ferry_log_error("http", "%s", err);
        return -1;
    }
    ferry_log_info("http", "listening on %s (public URL %s)", gw->config->http_listen,
                   gw->config->public_url);
    ferry__health_register(gw);
    ferry__metrics_register(gw);
    for (size_t i = 0; i < gw->ncomponents; i++) {
        if (ferry__component_start(gw->components[i]) != 0) {
            ferry_log_error(gw->components[i]->name, "cannot start the %s adapter",
                            gw->components[i]->adapter->name);
            return -1;
        }
    }
    return 0;
}

/* ---- stopping ---- */

static void one_closed(gateway_t *gw)
{
    if (--gw->closing == 0 && gw->stopped)
        gw->stopped(gw);
}

static void on_http_closed(void *arg) { one_closed(arg); }

/* Every stream is closed: nothing can reach the HTTP side any more. */
static void close_http(gateway_t *gw)
{
    gw->closing = 1; /* held until both halves have been asked to close */
    if (gw->heartbeat) {
        ferry__heartbeat_stop(gw->heartbeat); /* "stopped", for the others */
        gw->heartbeat = NULL;
    }
    if (gw->store) {
        uv_close((uv_handle_t *)&gw->prune, NULL);
        ferry__store_close(gw->store);
        gw->store = NULL;
    }
    if (gw->http_server) {
        gw->closing++;
        ferry__http_server_close(gw->http_server, on_http_closed, gw);
        gw->http_server = NULL;
    }
    if (gw->http_client) {
        gw->closing++;
        ferry__http_client_close(gw->http_client, on_http_closed, gw);
        gw->http_client = NULL;
    }
    one_closed(gw);
}

static void on_component_closed(ferry_component_t *comp)
{
    gateway_t *gw = comp->gw;
    if (--gw->components_open == 0)
        close_http(gw);
}

void ferry__gateway_stop(gateway_t *gw, void (*stopped)(gateway_t *gw))
{
    if (gw->stopping)
        return;
    gw->stopping = 1;
    gw->stopped = stopped;
    gw->components_open = gw->ncomponents;
    ferry_log_info("core", "stopping");
    if (gw->ncomponents == 0) {
        close_http(gw);
        return;
    }
    for (size_t i = 0; i < gw->ncomponents; i++)
        ferry__component_stop(gw->components[i], on_component_closed);
}

void ferry__gateway_free(gateway_t *gw)
{
    for (size_t i = 0; i < gw->ncomponents; i++)
        ferry__component_free(gw->components[i]);
    free(gw->components);
    if (gw->http_client)
        ferry__http_client_close(gw->http_client, NULL, NULL);
    xmpp_ctx_free(gw->ctx);
    ferry__config_free(gw->config);
    free(gw->instance);
    free(gw);
}

/* ---- reloading ---- */

static const component_config_t *find_component(const config_t *c, const char *name)
{
    for (size_t i = 0; i < c->ncomponents; i++)
        if (strcmp(c->components[i].name, name) == 0)
            return &c->components[i];
    return NULL;
}

static void note_restart(const char *what)
{
    ferry_log_warn("core", "reload: %s changed; that takes effect after a restart", what);
}

static int same_or_null(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

static void compare_core(const config_t *old, const config_t *new)
{
    if (strcmp(old->xmpp_host, new->xmpp_host) != 0 || old->xmpp_port != new->xmpp_port)
        note_restart("[xmpp] host/port");
    if (old->queue_size != new->queue_size || old->max_stanza_size != new->max_stanza_size ||
        old->ping_interval != new->ping_interval || old->ping_timeout != new->ping_timeout ||
        old->keepalive_interval != new->keepalive_interval)
        note_restart("[xmpp] link settings");
    if (strcmp(old->http_listen, new->http_listen) != 0)
        note_restart("[http] listen");
    if (old->http_max_connections != new->http_max_connections ||
        old->http_max_connections_per_ip != new->http_max_connections_per_ip ||
        old->http_request_timeout != new->http_request_timeout)
        note_restart("[http] connection limits");
    if (!same_or_null(old->store_path, new->store_path) ||
        !same_or_null(old->store_url, new->store_url) || old->store_lease != new->store_lease)
        note_restart("[storage] path, url or lease");
    if (strcmp(old->instance, new->instance) != 0)
        note_restart("[cluster] instance");
    for (size_t i = 0; i < new->ncomponents; i++) {
        const component_config_t *cc = &new->components[i];
        const component_config_t *was = find_component(old, cc->name);
        char what[300];
        if (!was) {
            snprintf(what, sizeof what, "component '%s' (new)", cc->name);
            note_restart(what);
        } else if (strcmp(was->adapter, cc->adapter) != 0 || strcmp(was->domain, cc->domain) != 0 ||
                   strcmp(was->secret, cc->secret) != 0 || was->slots != cc->slots) {
            snprintf(what, sizeof what, "component '%s' adapter/domain/secret/slots", cc->name);
            note_restart(what);
        }
    }
    for (size_t i = 0; i < old->ncomponents; i++)
        if (!find_component(new, old->components[i].name)) {
            char what[300];
            snprintf(what, sizeof what, "component '%s' (removed)", old->components[i].name);
            note_restart(what);
        }
}

/* Pass APPLY = 0 reads and checks every adapter table; APPLY = 1 switches. */
static int reload_adapters(gateway_t *gw, const config_t *nc, int apply)
{
    int bad = 0;
    for (size_t i = 0; i < gw->ncomponents; i++) {
        ferry_component_t *comp = gw->components[i];
        const component_config_t *cc = find_component(nc, comp->name);
        if (!cc || strcmp(cc->adapter, comp->adapter->name) != 0) {
            if (cc)
                ferry__conf_mark_used((toml_node_t *)cc->table);
            continue;
        }
        if (!comp->adapter->reload) {
            ferry__conf_mark_used((toml_node_t *)cc->table);
            if (apply)
                note_restart(comp->name);
            continue;
        }
        bad |= comp->adapter->reload(comp->self, cc->table, apply) != 0;
        if (apply) {
            comp->policy = cc->policy;
            if (comp->net_outbox)
                ferry__net_outbox_set_policy(comp->net_outbox, &cc->policy);
        }
    }
    return bad ? -1 : 0;
}

int ferry__gateway_reload(gateway_t *gw)
{
    ferry_log_info("core", "reloading %s", gw->config->path);
    ferry__conf_use_log(1);
    config_t *nc = ferry__config_load(gw->config->path);
    int bad = !nc;
    if (nc) {
        bad = reload_adapters(gw, nc, 0) != 0;
        for (size_t i = 0; i < nc->ncomponents; i++)
            if (!find_component(gw->config, nc->components[i].name))
                ferry__conf_mark_used((toml_node_t *)nc->components[i].table); /* needs a restart */
        bad |= ferry__config_finish(nc) > 0;
    }
    ferry__conf_use_log(0);
    if (bad) {
        ferry_log_error("core", "reload refused: the config has errors (see above); nothing "
                                "changed");
        ferry__config_free(nc);
        return -1;
    }
    compare_core(gw->config, nc);
    reload_adapters(gw, nc, 1);
    ferry__log_set_level(nc->log_level);
    ferry__log_set_json(nc->log_json);
    /* The links keep the settings they were made with; public_url, admins,
     * keep_done and the adapters follow the new file. */
    config_t *old = gw->config;
    gw->config = nc;
    ferry__config_free(old);
    ferry_log_info("core", "reloaded");
    return 0;
}
