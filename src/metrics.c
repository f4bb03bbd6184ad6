/* metrics.c: GET /metrics in the Prometheus text format (version 0.0.4).
 * Labels name components, adapters, kinds and status codes, never users:
 * the series count stays fixed however many people use the gateway. The
 * instance name is the label ferry_instance of ferry_build_info (an info
 * series, to join on), not a label of every series: Prometheus gives each
 * scraped target its own "instance" label already. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "ferry/ferry.h"
#include "http_server.h"
#include "metrics.h"

typedef struct buf {
    char *data;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 1;
        b->data = ferry_realloc(b->data, b->cap);
    }
}

static void family(buf_t *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const kinds[KIND_COUNT] = {"message", "presence", "iq", "other"};

static void link_metrics(buf_t *b, gateway_t *gw, const component_stats_t *snaps)
{
    family(b, "ferry_component_active", "gauge",
           "Whether this instance holds a slot of the component (1 always with SQLite).");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_component_active{component=\"%s\"} %d\n", gw->components[i]->name,
            snaps[i].slot >= 0);
    family(b, "ferry_link_up", "gauge", "Whether the component's XMPP link is up.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_link_up{component=\"%s\"} %d\n", gw->components[i]->name, snaps[i].link.up);
    family(b, "ferry_link_reconnects_total", "counter", "Connection attempts after the first.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_link_reconnects_total{component=\"%s\"} %llu\n", gw->components[i]->name,
            snaps[i].link.reconnects);
    family(b, "ferry_link_queued", "gauge", "Stanzas held in memory while the link is down.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_link_queued{component=\"%s\"} %zu\n", gw->components[i]->name,
            snaps[i].link.queued);
    family(b, "ferry_link_dropped_total", "counter", "Stanzas dropped over xmpp.queue_size.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_link_dropped_total{component=\"%s\"} %llu\n", gw->components[i]->name,
            snaps[i].link.dropped);
    family(b, "ferry_link_lost_bytes_total", "counter",
           "Bytes of stanzas written to a link that failed before the kernel took them.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_link_lost_bytes_total{component=\"%s\"} %llu\n", gw->components[i]->name,
            snaps[i].link.lost_bytes);
    family(b, "ferry_link_backlog_bytes", "gauge",
           "Bytes written to the link that the XMPP server has not received yet.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_link_backlog_bytes{component=\"%s\"} %llu\n", gw->components[i]->name,
            snaps[i].link.backlog);
    family(b, "ferry_stanzas_refused_total", "counter",
           "Stanzas not sent because they held bytes XML does not allow (a bug).");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_stanzas_refused_total{component=\"%s\"} %llu\n", gw->components[i]->name,
            snaps[i].refused_invalid);
    family(b, "ferry_stanzas_total", "counter", "Stanzas through the link by direction and kind.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        for (int k = 0; k < KIND_COUNT; k++)
            put(b,
                "ferry_stanzas_total{component=\"%s\",direction=\"in\",kind=\"%s\"} %llu\n"
                "ferry_stanzas_total{component=\"%s\",direction=\"out\",kind=\"%s\"} %llu\n",
                gw->components[i]->name, kinds[k], snaps[i].link.in[k], gw->components[i]->name,
                kinds[k], snaps[i].link.out[k]);
}

static void message_metrics(buf_t *b, gateway_t *gw, const component_stats_t *snaps)
{
    family(b, "ferry_messages_total", "counter",
           "Messages by outcome: delivered both ways; failed, retried, dead towards networks.");
    for (size_t i = 0; i < gw->ncomponents; i++) {
        const char *c = gw->components[i]->name, *a = gw->components[i]->adapter->name;
        const component_stats_t *s = &snaps[i];
        const struct {
            const char *direction, *outcome;
            unsigned long long n;
        } rows[] = {
            {"to_network", "delivered", s->to_network.delivered},
            {"to_network", "failed", s->to_network.failed},
            {"to_network", "retried", s->to_network.retried},
            {"to_network", "dead", s->to_network.dead},
            {"to_xmpp", "delivered", s->to_xmpp},
        };
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
            put(b,
                "ferry_messages_total{component=\"%s\",adapter=\"%s\",direction=\"%s\","
                "outcome=\"%s\"} %llu\n",
                c, a, rows[r].direction, rows[r].outcome, rows[r].n);
    }
    family(b, "ferry_outbox_pending", "gauge", "Messages waiting in the store, both directions.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_outbox_pending{component=\"%s\"} %lld\n", gw->components[i]->name,
            (long long)snaps[i].store.pending);
    family(b, "ferry_outbox_dead", "gauge", "Messages given up, kept for `ferry queue`.");
    for (size_t i = 0; i < gw->ncomponents; i++)
        put(b, "ferry_outbox_dead{component=\"%s\"} %lld\n", gw->components[i]->name,
            (long long)snaps[i].store.dead);
    family(b, "ferry_outbox_oldest_seconds", "gauge", "Age of the oldest pending message.");
    int64_t now = ferry__store_now_ms();
    for (size_t i = 0; i < gw->ncomponents; i++) {
        int64_t oldest = snaps[i].store.oldest_pending_ms;
        put(b, "ferry_outbox_oldest_seconds{component=\"%s\"} %.3f\n", gw->components[i]->name,
            oldest ? (double)(now - oldest) / 1000 : 0.0);
    }
}

static void http_metrics(buf_t *b, gateway_t *gw)
{
    family(b, "ferry_http_responses_total", "counter", "Inbound HTTP answers by status code.");
    const unsigned long long *answers = ferry__http_server_answers(gw->http_server);
    for (int code = 100; code < 600; code++)
        if (answers[code])
            put(b, "ferry_http_responses_total{code=\"%d\"} %llu\n", code, answers[code]);
}

/* Adapter values, gathered first so that each family is printed once with
 * all its components. */
struct ferry_metrics {
    const char *component, *adapter;
    struct adapter_value {
        char *name, *type, *help, *component, *adapter;
        double value;
    } *values;
    size_t n, cap;
};

void ferry_metric(ferry_metrics_t *m, const char *name, const char *type, const char *help,
                  double value)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->values = ferry_realloc(m->values, m->cap * sizeof *m->values);
    }
    m->values[m->n++] = (struct adapter_value){ferry_strdup(name), ferry_strdup(type), ferry_strdup(help),
                                               ferry_strdup(m->component), ferry_strdup(m->adapter), value};
}

static void adapter_metrics(buf_t *b, gateway_t *gw)
{
    ferry_metrics_t m = {0};
    for (size_t i = 0; i < gw->ncomponents; i++) {
        ferry_component_t *c = gw->components[i];
        if (!c->adapter->metrics)
            continue;
        m.component = c->name;
        m.adapter = c->adapter->name;
        c->adapter->metrics(c->self, &m);
    }
    for (size_t i = 0; i < m.n; i++) {
        struct adapter_value *v = &m.values[i];
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(m.values[j].name, v->name) != 0;
        if (first) {
            family(b, v->name, v->type, v->help);
            for (size_t j = i; j < m.n; j++)
                if (strcmp(m.values[j].name, v->name) == 0)
                    put(b, "%s{component=\"%s\",adapter=\"%s\"} %.17g\n", v->name,
                        m.values[j].component, m.values[j].adapter, m.values[j].value);
        }
    }
    for (size_t i = 0; i < m.n; i++) {
        free(m.values[i].name);
        free(m.values[i].type);
        free(m.values[i].help);
        free(m.values[i].component);
        free(m.values[i].adapter);
    }
    free(m.values);
}

static void on_metrics(void *arg, ferry_http_exchange_t *ex)
{
    gateway_t *gw = arg;
    buf_t b = {ferry_malloc(4096), 0, 4096};
    family(&b, "ferry_build_info", "gauge", "The running version and instance name.");
    put(&b, "ferry_build_info{version=\"%s\",ferry_instance=\"%s\"} 1\n", FERRY_VERSION,
        ferry__gateway_instance(gw)); /* [cluster] instance: no quote or backslash in it */
    component_stats_t *snaps = ferry_calloc(gw->ncomponents + 1, sizeof *snaps);
    for (size_t i = 0; i < gw->ncomponents; i++)
        ferry__component_stats(gw->components[i], &snaps[i]);
    link_metrics(&b, gw, snaps);
    message_metrics(&b, gw, snaps);
    http_metrics(&b, gw);
    adapter_metrics(&b, gw);
    free(snaps);
    ferry_http_exchange_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    free(b.data);
}

void ferry__metrics_register(gateway_t *gw)
{
    ferry_http_route_add(gw->http_server, "/metrics", 1024, on_metrics, gw);
}
