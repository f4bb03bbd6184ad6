/* health.c: GET /healthz, for load balancers and humans: 200 while every
 * component link is up and the store can take writes, 503 otherwise, with
 * each link's state (and the store's trouble) as JSON. A standby (its
 * links down because other instances hold the slots) is healthy: it takes
 * HTTP and stands ready; its status says "standby". With a PostgreSQL
 * store, the other instances sharing it are listed with when they were
 * last seen. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "component.h"
#include "health.h"
#include "http_server.h"

static json_t *component_health(ferry_component_t *comp)
{
    component_stats_t st;
    ferry__component_stats(comp, &st);
    const ferry__xmpp_link_stats_t *s = &st.link;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "domain", comp->domain, "adapter",
                          comp->adapter->name, "link", s->up ? "up" : "down", "queued",
                          (json_int_t)s->queued, "dropped", (json_int_t)s->dropped, "reconnects",
                          (json_int_t)s->reconnects);
    json_object_set_new(o, "role", json_string(st.role));
    if (st.slot >= 0)
        json_object_set_new(o, "slot", json_integer(st.slot));
    json_object_set_new(o, "pending", json_integer(st.store.pending));
    json_object_set_new(o, "dead", json_integer(st.store.dead));
    if (st.store.oldest_pending_ms)
        json_object_set_new(o, "oldest_pending_age",
                            json_integer((ferry__store_now_ms() - st.store.oldest_pending_ms) / 1000));
    if (st.held) /* not stored yet: the store is away */
        json_object_set_new(o, "held", json_integer((json_int_t)st.held));
    if (!s->up && s->last_error[0])
        json_object_set_new(o, "last_error", json_string(s->last_error));
    return o;
}

static void on_healthz(void *arg, ferry_http_exchange_t *ex)
{
    gateway_t *gw = arg;
    if (strcmp(ferry_http_exchange_method(ex), "GET") != 0 &&
        strcmp(ferry_http_exchange_method(ex), "HEAD") != 0) {
        ferry_http_exchange_add_header(ex, "Allow", "GET, HEAD");
        const char *msg = "405 Method Not Allowed: use GET\n";
        ferry_http_exchange_respond(ex, 405, "text/plain", msg, strlen(msg));
        return;
    }
    int all_up = 1, standby = 0;
    json_t *components = json_object();
    for (size_t i = 0; i < gw->ncomponents; i++) {
        json_t *c = component_health(gw->components[i]);
        if (strcmp(json_string_value(json_object_get(c, "role")), "standby") == 0)
            standby = 1; /* its link is down on purpose */
        else if (strcmp(json_string_value(json_object_get(c, "link")), "up") != 0)
            all_up = 0;
        json_object_set_new(components, gw->components[i]->name, c);
    }
    char why[300] = "";
    if (gw->store && !ferry__store_healthy(gw->store, why, sizeof why))
        all_up = 0;
    json_t *root = json_pack("{s:s, s:s, s:o}", "status",
                             !all_up ? "degraded" : standby ? "standby" : "ok", "instance",
                             ferry__gateway_instance(gw), "components", components);
    if (why[0])
        json_object_set_new(root, "store_error", json_string(why));
    json_t *peers = gw->heartbeat ? ferry__heartbeat_peers(gw->heartbeat) : NULL;
    if (peers)
        json_object_set_new(root, "instances", peers);
    char *body = json_dumps(root, JSON_COMPACT);
    ferry_http_exchange_respond(ex, all_up ? 200 : 503, "application/json", body, strlen(body));
    free(body);
    json_decref(root);
}

void ferry__health_register(gateway_t *gw)
{
    ferry_http_route_add(gw->http_server, "/healthz", 1024, on_healthz, gw);
    /* A monitor must see ferry alive even while clients hold every slot. */
    ferry__http_server_route_exempt(gw->http_server, "/healthz");
}
