/* component.c: one [components.NAME]: builds its adapter, owns its link, and
 * implements the ferry_component_* API that adapters call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "component.h"
#include "config.h"
#include "ferry/log.h"
#include "router.h"
#include "ferry/jid.h"
#include "ferry/stanza.h"
#include "ferry/text.h"

/* After the store is back, how long answers passed between instances may
 * still be lost (the store's listening connection retries every 2 s). */
#define ANSWERS_SETTLE_MS 5000

/* How long an adapter may take to finish in-flight work at shutdown; the
 * rest of the 5 s budget closes the streams. */
#define GRACE_MS 3000

extern const ferry_adapter_t *const ferry__adapters[];

static const ferry_adapter_t *find_adapter(const char *name)
{
    for (size_t i = 0; ferry__adapters[i]; i++)
        if (strcmp(ferry__adapters[i]->name, name) == 0)
            return ferry__adapters[i];
    return NULL;
}

static void on_link_stanza(void *arg, xmpp_stanza_t *st) { ferry__router_route(arg, st); }

static void on_link_state(void *arg, int up)
{
    ferry_component_t *comp = arg;
    if (up) {
        ferry__xmpp_outbox_link_up(comp->xmpp_outbox);
    } else {
        ferry__xmpp_link_stats_t st;
        ferry__xmpp_link_stats(comp->link, &st);
        ferry__xmpp_outbox_link_down(comp->xmpp_outbox, st.last_error);
    }
    if (comp->adapter->on_link)
        comp->adapter->on_link(comp->self, up);
}

/* Several instances: the server's answers to pings reach any of them; the
 * one that gets another's answer passes it on through the store. */
static void on_foreign_answer(void *arg, const char *id)
{
    ferry_component_t *comp = arg;
    ferry__store_relay_answer(comp->gw->store, id);
}

static void on_store_event(void *arg, int event, const char *text)
{
    ferry_component_t *comp = arg;
    if (event == STORE_EV_ANSWER && comp->link)
        ferry__xmpp_link_answered(comp->link, text);
}

/* With slots the server's answers to our pings may reach another
 * instance and come through the store: while it is away, and a moment
 * after (its listening connection comes back on its own), they may be
 * lost. */
static int on_answers_away(void *arg)
{
    ferry_component_t *comp = arg;
    char why[8];
    uint64_t now = uv_now(comp->gw->loop);
    if (!comp->slots)
        return 0;
    if (!ferry__store_healthy(comp->gw->store, why, sizeof why))
        comp->answers_away_until = now + ANSWERS_SETTLE_MS;
    return now < comp->answers_away_until;
}

static const ferry__xmpp_link_handlers_t link_handlers = {
    .stanza = on_link_stanza,
    .state = on_link_state,
    .foreign_answer = on_foreign_answer,
    .answers_away = on_answers_away,
};

/* ---- slots (PostgreSQL store): the link is up only while one is held ---- */

static void on_slot_acquired(void *arg, int slot)
{
    (void)slot;
    ferry_component_t *comp = arg;
    if (comp->closed)
        return; /* stopping: the link is closing */
    ferry__xmpp_link_start(comp->link);
    ferry__gateway_role_changed(comp->gw);
}

/* The lock's connection is gone: an instance waiting for a slot may take
 * this one, so the link goes at once, unless none was seen waiting (the
 * database restarting under active instances only, or a lone one: cutting
 * the link would have ejabberd drop the slot's stanzas silently until it
 * is back, so the link stays, messages wait in memory meanwhile, and a
 * slot found held elsewhere on the way back cuts it). */
static void on_slot_lost(void *arg, const char *why)
{
    ferry_component_t *comp = arg;
    if (comp->link && !ferry__gateway_none_waiting(comp->gw))
        ferry__xmpp_link_stop(comp->link, why);
    else if (comp->link)
        ferry_log_warn(comp->name, "keeping the link while the slot's lock is away: no other "
                       "instance was seen waiting for a slot");
    ferry__gateway_role_changed(comp->gw);
}

static void on_slot_standby(void *arg)
{
    ferry_component_t *comp = arg;
    if (comp->link)
        ferry__xmpp_link_stop(comp->link, "the slot is held by another instance");
    ferry__gateway_role_changed(comp->gw);
}

static const ferry__slots_handlers_t slot_handlers = {
    .acquired = on_slot_acquired,
    .lost = on_slot_lost,
    .standby = on_slot_standby,
};

static void start_slots(ferry_component_t *comp)
{
    const ferry__slots_options_t o = {
        .url = comp->gw->config->store_url,
        .domain = comp->domain,
        .scope = comp->name,
        .slots = comp->nslots,
    };
    comp->slots = ferry__slots_start(comp->gw->loop, &o, &slot_handlers, comp);
}

ferry_component_t *ferry__component_new(gateway_t *gw, const component_config_t *cc)
{
    const ferry_adapter_t *adapter = find_adapter(cc->adapter);
    if (!adapter) {
        if (*cc->adapter) {
            char known[256] = "";
            for (size_t i = 0; ferry__adapters[i]; i++) {
                strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
                strncat(known, ferry__adapters[i]->name, sizeof known - strlen(known) - 1);
            }
            ferry_conf_error(cc->table, "adapter", "unknown adapter \"%s\" (known: %s)",
                             cc->adapter, known);
        }
        ferry__conf_mark_used((toml_node_t *)cc->table);
        return NULL;
    }
    ferry_component_t *comp = ferry_calloc(1, sizeof *comp);
    comp->gw = gw;
    comp->name = ferry_strdup(cc->name);
    comp->domain = ferry_strdup(cc->domain);
    comp->adapter = adapter;
    comp->policy = cc->policy;
    comp->self = adapter->create(comp, cc->table);
    if (!comp->self) {
        ferry__component_free(comp);
        return NULL;
    }
    comp->cc = cc;
    return comp;
}

static void make_link(ferry_component_t *comp)
{
    gateway_t *gw = comp->gw;
    const component_config_t *cc = comp->cc;
    const config_t *c = gw->config;
    ferry__xmpp_link_options_t opts = {
        .host = c->xmpp_host,
        .port = c->xmpp_port,
        .domain = cc->domain,
        .secret = cc->secret,
        .scope = cc->name,
        .queue_size = c->queue_size,
        .max_stanza_size = c->max_stanza_size,
        .ping_interval = c->ping_interval,
        .ping_timeout = c->ping_timeout,
        .keepalive_interval = c->keepalive_interval,
    };
    comp->link = ferry__xmpp_link_new(gw->loop, gw->ctx, &opts, &link_handlers, comp);
    comp->nslots = cc->slots;
    comp->cc = NULL; /* the config may be replaced by a reload */
    comp->xmpp_outbox = ferry__xmpp_outbox_new(gw->loop, gw->store, comp->name, comp->link);
    ferry__store_watch(gw->store, on_store_event, comp);
    uv_timer_init(gw->loop, &comp->grace);
    comp->grace.data = comp;
}

int ferry__component_start(ferry_component_t *comp)
{
    make_link(comp);
    if (comp->adapter->start(comp->self) != 0)
        return -1;
    comp->started = 1;
    if (comp->gw->config->store_url)
        start_slots(comp); /* links when it holds a slot */
    else
        ferry__xmpp_link_start(comp->link); /* SQLite: one instance, always active */
    return 0;
}

static void on_grace_closed(uv_handle_t *h)
{
    ferry_component_t *comp = h->data;
    comp->closed(comp);
}

static void on_link_closed(void *arg)
{
    ferry_component_t *comp = arg;
    comp->link = NULL;
    if (comp->slots) { /* the stream is closed: a standby may take the slot */
        ferry__slots_close(comp->slots);
        comp->slots = NULL;
    }
    /* The store closes after the components: let go of it now. */
    if (comp->gw->store)
        ferry__store_unwatch(comp->gw->store, on_store_event, comp);
    ferry__xmpp_outbox_free(comp->xmpp_outbox);
    comp->xmpp_outbox = NULL;
    ferry__outbox_hold_free(comp->hold); /* before the outbox it puts into */
    comp->hold = NULL;
    if (comp->net_outbox) {
        ferry__net_outbox_free(comp->net_outbox);
        comp->net_outbox = NULL;
    }
    uv_close((uv_handle_t *)&comp->grace, on_grace_closed);
}

static void close_link(ferry_component_t *comp)
{
    uv_timer_stop(&comp->grace);
    if (comp->link)
        ferry__xmpp_link_close(comp->link, on_link_closed, comp);
}

static void on_grace_over(uv_timer_t *t)
{
    ferry_component_t *comp = t->data;
    ferry_log_warn(comp->name, "adapter did not finish within %d ms; closing anyway", GRACE_MS);
    close_link(comp);
}

void ferry_component_stopped(ferry_component_t *comp)
{
    if (comp->adapter_stopped)
        return;
    comp->adapter_stopped = 1;
    if (comp->closed)
        close_link(comp);
}

void ferry__component_stop(ferry_component_t *comp, void (*closed)(ferry_component_t *comp))
{
    comp->closed = closed;
    if (!comp->link) {
        closed(comp); /* never started: nothing to close */
        return;
    }
    if (!comp->started || comp->adapter_stopped) {
        close_link(comp);
        return;
    }
    uv_timer_start(&comp->grace, on_grace_over, GRACE_MS, 0);
    if (comp->net_outbox)
        ferry__net_outbox_pause(comp->net_outbox);
    comp->adapter->stop(comp->self);
}

void ferry__component_free(ferry_component_t *comp)
{
    if (comp->self)
        comp->adapter->destroy(comp->self);
    free(comp->name);
    free(comp->domain);
    free(comp);
}

void ferry__component_stats(const ferry_component_t *comp, component_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (comp->link)
        ferry__xmpp_link_stats(comp->link, &out->link);
    if (comp->net_outbox)
        ferry__net_outbox_stats(comp->net_outbox, &out->to_network);
    if (comp->xmpp_outbox)
        out->to_xmpp = ferry__xmpp_outbox_delivered(comp->xmpp_outbox);
    out->refused_invalid = comp->refused_invalid;
    ferry__component_role(comp, &out->role, &out->slot, out->role_text, sizeof out->role_text);
    out->held = ferry__outbox_hold_count(comp->hold);
    if (comp->gw->store)
        ferry__store_msg_counts(comp->gw->store, comp->name, &out->store);
}

void ferry__component_role(const ferry_component_t *comp, const char **role, int *slot, char *text,
                           size_t len)
{
    if (role)
        *role = comp->slots ? ferry__slots_role(comp->slots) : "active";
    if (slot)
        *slot = comp->slots ? ferry__slots_held(comp->slots) : 0;
    if (comp->slots)
        ferry__slots_describe(comp->slots, text, len);
    else
        snprintf(text, len, "active");
}

/* ---- the API adapters see ---- */

const char *ferry_component_name(const ferry_component_t *comp) { return comp->name; }
const char *ferry_component_domain(const ferry_component_t *comp) { return comp->domain; }
uv_loop_t *ferry_component_loop(const ferry_component_t *comp) { return comp->gw->loop; }
xmpp_ctx_t *ferry_component_xmpp(const ferry_component_t *comp) { return comp->gw->ctx; }

ferry_http_client_t *ferry_component_http_client(const ferry_component_t *comp)
{
    return comp->gw->http_client;
}

ferry_http_server_t *ferry_component_http_server(const ferry_component_t *comp)
{
    return comp->gw->http_server;
}

const char *ferry_component_public_url(const ferry_component_t *comp)
{
    return comp->gw->config->public_url;
}

int64_t ferry_now_ms(void) { return ferry__store_now_ms(); }

int ferry_component_is_admin(const ferry_component_t *comp, const char *jid)
{
    return ferry_jid_allowed(comp->gw->config->admins, jid);
}

int ferry_component_stopping_for_good(const ferry_component_t *comp)
{
    return comp->gw->for_good;
}

int ferry_component_slot(const ferry_component_t *comp)
{
    if (!comp->gw->config->store_url)
        return 0;
    return comp->slots ? ferry__slots_held(comp->slots) : -1;
}

int ferry_component_link_up(const ferry_component_t *comp)
{
    return comp->link && ferry__xmpp_link_is_up(comp->link);
}

/* The last check on the way out: one byte XML forbids makes the server close
 * the stream, for every user of the component. Text from outside is cleaned
 * where it comes in; a stanza that still fails this is a bug, and is logged
 * and dropped rather than sent. */
static int sendable(ferry_component_t *comp, const char *xml, size_t len)
{
    if (ferry_xml_text_valid(xml, len))
        return 1;
    comp->refused_invalid++;
    char start[48]; /* for the log: printable ASCII only */
    size_t n = 0;
    for (; n < len && n < sizeof start - 1; n++)
        start[n] = xml[n] >= 0x20 && xml[n] < 0x7F ? xml[n] : '?';
    start[n] = 0;
    ferry_log_error(comp->name, "not sent: a %zu-byte stanza holds bytes that XML does not "
                    "allow (%s...)", len, start);
    return 0;
}

void ferry_component_send(ferry_component_t *comp, xmpp_stanza_t *stanza)
{
    if (!comp->link)
        return;
    if (!xmpp_stanza_get_from(stanza))
        xmpp_stanza_set_from(stanza, comp->domain);
    char *text;
    size_t len;
    if (xmpp_stanza_to_text(stanza, &text, &len) != XMPP_EOK) {
        ferry_log_error(comp->name, "cannot serialise a stanza; not sent");
        return;
    }
    if (sendable(comp, text, len))
        ferry__xmpp_link_send_text(comp->link, text, len);
    xmpp_free(comp->gw->ctx, text);
}

void ferry_component_send_release(ferry_component_t *comp, xmpp_stanza_t *stanza)
{
    ferry_component_send(comp, stanza);
    xmpp_stanza_release(stanza);
}

void ferry_component_send_xml(ferry_component_t *comp, const char *xml, size_t len)
{
    if (comp->link && sendable(comp, xml, len))
        ferry__xmpp_link_send_text(comp->link, xml, len);
}

void ferry_component_reply_error(ferry_component_t *comp, xmpp_stanza_t *stanza,
                                 const char *type, const char *condition, const char *text)
{
    xmpp_stanza_t *reply = ferry_stanza_error_reply(stanza, type, condition, text);
    if (!reply)
        return;
    ferry_component_send_release(comp, reply);
}
