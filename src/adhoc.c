/* adhoc.c: XEP-0050 ad-hoc commands on every component domain, for the
 * admins of [admin] jids: status, reload, and the dead messages of the
 * component (list, retry), disconnecting a user. Everyone else is refused
 * with forbidden. The gateway is reached only through adhoc_ops_t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adhoc.h"
#include "component.h"
#include "ferry/ferry.h"

#define NS_COMMANDS FERRY_NS_COMMANDS
#define NS_DATA FERRY_NS_DATA
#define MAX_LISTED 50

typedef struct command {
    const char *node;
    const char *name;
    void (*run)(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                xmpp_stanza_t *cmd);
} command_t;

/* ---- building answers ---- */

/* A report, one line per field: "fixed" fields, which every client shows
 * as text and none offers to edit (a text-multi field in a result form is
 * an editable box in poezio, as if it were to be sent back). VAR-1,
 * VAR-2...; the first line has LABEL. */
static void add_lines_field(xmpp_stanza_t *x, const char *var, const char *label, char *text)
{
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        snprintf(name, sizeof name, "%s-%d", var, ++n);
        ferry_form_add_field(x, name, "fixed", n == 1 ? label : NULL, line);
    }
}

/* ---- status ---- */

static void cmd_status(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                       xmpp_stanza_t *in)
{
    (void)in;
    char text[8192] = "";
    size_t len = 0;
    component_stats_t st;
    ferry_component_t *c;
    for (size_t i = 0; len < sizeof text - 256 && (c = ops->stats(ops->arg, i, &st)); i++) {
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "%s (%s, %s): %s, link %s, %llu reconnects, %zu queued, "
                                "%lld pending, %lld dead",
                                c->name, c->adapter->name, c->domain, st.role_text,
                                st.link.up ? "up" : "down", st.link.reconnects, st.link.queued,
                                (long long)st.store.pending, (long long)st.store.dead);
        if (c->adapter->sessions)
            len += (size_t)snprintf(text + len, sizeof text - len, ", %zu user session(s)",
                                    c->adapter->sessions(c->self));
        len += (size_t)snprintf(text + len, sizeof text - len, "\n");
    }
    xmpp_stanza_t *cmd;
    xmpp_stanza_t *res = ferry_command_answer(iq, "status", "completed", &cmd);
    xmpp_stanza_t *x = ferry_form_add(cmd, "result", "ferry " FERRY_VERSION " status");
    char instances[4096];
    ops->instances(ops->arg, instances, sizeof instances);
    add_lines_field(x, "instances", "Instances", instances);
    add_lines_field(x, "components", "Components", text);
    ferry_component_send_release(comp, res);
}

/* ---- reload ---- */

static void cmd_reload(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                       xmpp_stanza_t *in)
{
    (void)in;
    if (ops->reload(ops->arg) == 0)
        ferry_command_complete(comp, iq, "reload", "info",
                               "Configuration reloaded; the log says what needs a restart.");
    else
        ferry_command_complete(comp, iq, "reload", "error",
                               "Reload refused: the configuration has errors (see the log); "
                               "nothing changed.");
}

/* ---- dead messages ---- */

typedef struct dead_list {
    const char *component;
    char text[8192];
    size_t len, count;
    int64_t ids[MAX_LISTED];
} dead_list_t;

static void collect_dead(void *arg, const store_row_t *r)
{
    dead_list_t *dl = arg;
    if (r->state != STORE_DEAD || strcmp(r->component, dl->component) != 0 ||
        dl->count >= MAX_LISTED)
        return;
    dl->ids[dl->count++] = r->id;
    if (dl->len < sizeof dl->text - 64)
        dl->len += (size_t)snprintf(dl->text + dl->len, sizeof dl->text - dl->len,
                                    "%lld %s: %s\n", (long long)r->id, r->conversation,
                                    r->error ? r->error : "");
}

static int list_dead(const adhoc_ops_t *ops, ferry_component_t *comp, dead_list_t *dl)
{
    memset(dl, 0, sizeof *dl);
    dl->component = comp->name;
    return ops->messages(ops->arg, collect_dead, dl);
}

/* The component's dead messages (the caller frees them), or NULL after
 * answering the command NODE "No dead messages.". */
static dead_list_t *list_dead_or_answer(const adhoc_ops_t *ops, ferry_component_t *comp,
                                        xmpp_stanza_t *iq, const char *node)
{
    dead_list_t *dl = ferry_malloc(sizeof *dl);
    if (list_dead(ops, comp, dl) < 0 || dl->count == 0) {
        ferry_command_complete(comp, iq, node, "info", "No dead messages.");
        free(dl);
        return NULL;
    }
    return dl;
}

static void cmd_dead_list(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                          xmpp_stanza_t *in)
{
    (void)in;
    dead_list_t *dl = list_dead_or_answer(ops, comp, iq, "dead-list");
    if (!dl)
        return;
    xmpp_stanza_t *cmd;
    xmpp_stanza_t *res = ferry_command_answer(iq, "dead-list", "completed", &cmd);
    xmpp_stanza_t *x = ferry_form_add(cmd, "result", "Dead messages (id, conversation, reason)");
    add_lines_field(x, "messages", "Messages", dl->text);
    ferry_component_send_release(comp, res);
    free(dl);
}

/* The value of the field VAR of the form in CMD; NULL when it is absent or
 * empty. */
static const char *submitted_value(xmpp_stanza_t *cmd, const char *var)
{
    const char *v = ferry_form_value(xmpp_stanza_get_child_by_name_and_ns(cmd, "x", NS_DATA), var);
    return v && *v ? v : NULL;
}

static void ask_which(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq)
{
    dead_list_t *dl = list_dead_or_answer(ops, comp, iq, "dead-retry");
    if (!dl)
        return;
    xmpp_stanza_t *x;
    xmpp_stanza_t *res = ferry_command_ask(iq, "dead-retry", "Retry a dead message", NULL, &x);
    xmpp_stanza_t *f = ferry_form_add_field(x, "id", "list-single", "Message", NULL);
    ferry_stanza_add(f, "required", NULL);
    char *line = strtok(dl->text, "\n");
    for (size_t i = 0; i < dl->count && line; i++, line = strtok(NULL, "\n")) {
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)dl->ids[i]);
        xmpp_stanza_t *opt = ferry_stanza_add(f, "option", NULL);
        xmpp_stanza_set_attribute(opt, "label", line);
        ferry_stanza_add_text(opt, "value", id);
    }
    ferry_component_send_release(comp, res);
    free(dl);
}

static void cmd_dead_retry(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                           xmpp_stanza_t *in)
{
    const char *value = submitted_value(in, "id");
    if (!value) {
        ask_which(ops, comp, iq);
        return;
    }
    char *end;
    long long id = strtoll(value, &end, 10);
    if (*end || id <= 0) {
        ferry_component_reply_error(comp, iq, "modify", "bad-request", "not a message id");
        return;
    }
    dead_list_t *dl = ferry_malloc(sizeof *dl);
    int ours = 0;
    if (list_dead(ops, comp, dl) >= 0)
        for (size_t i = 0; i < dl->count; i++)
            ours |= dl->ids[i] == id;
    free(dl);
    if (!ours || ops->requeue(ops->arg, id) != 0) {
        ferry_component_reply_error(comp, iq, "cancel", "item-not-found",
                                    "no such dead message on this component");
        return;
    }
    if (comp->net_outbox)
        ferry__net_outbox_rescan(comp->net_outbox);
    char note[96];
    snprintf(note, sizeof note, "Message %lld is pending again.", id);
    ferry_command_complete(comp, iq, "dead-retry", "info", note);
}

/* ---- disconnect a user ---- */

static void cmd_disconnect(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                           xmpp_stanza_t *in)
{
    (void)ops;
    if (!comp->adapter->disconnect) {
        ferry_command_complete(comp, iq, "disconnect", "info",
                               "This adapter keeps no user sessions.");
        return;
    }
    const char *value = submitted_value(in, "jid");
    if (!value) {
        xmpp_stanza_t *x;
        xmpp_stanza_t *res = ferry_command_ask(iq, "disconnect", "Disconnect a user", NULL, &x);
        xmpp_stanza_t *f = ferry_form_add_field(x, "jid", "jid-single", "User (bare JID)", NULL);
        ferry_stanza_add(f, "required", NULL);
        ferry_component_send_release(comp, res);
        return;
    }
    ferry_jid_t j;
    char bare[2100];
    if (ferry_jid_parse(value, &j) != 0 || !j.local[0]) {
        ferry_component_reply_error(comp, iq, "modify", "bad-request", "not a user's JID");
        return;
    }
    ferry_jid_bare(&j, bare, sizeof bare);
    size_t n = comp->adapter->disconnect(comp->self, bare);
    char note[2300];
    snprintf(note, sizeof note, "%zu session(s) of %s closed.", n, bare);
    ferry_command_complete(comp, iq, "disconnect", "info", note);
}

static const command_t commands[] = {
    {"status", "Gateway status", cmd_status},
    {"reload", "Reload the configuration", cmd_reload},
    {"dead-list", "List dead messages", cmd_dead_list},
    {"dead-retry", "Retry a dead message", cmd_dead_retry},
    {"disconnect", "Disconnect a user", cmd_disconnect},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- entry points ---- */

static int is_admin(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    return ferry_component_is_admin(comp, xmpp_stanza_get_from(iq));
}

void ferry__adhoc_items(ferry_component_t *comp, xmpp_stanza_t *iq)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res =
        ferry_iq_result(iq, "http://jabber.org/protocol/disco#items", &q);
    xmpp_stanza_set_attribute(q, "node", NS_COMMANDS);
    /* Only the commands the asker may run (XEP-0050 section 2.2). */
    for (size_t i = 0; is_admin(comp, iq) && i < NCOMMANDS; i++)
        ferry_disco_item(q, comp->domain, commands[i].node, commands[i].name);
    if (comp->adapter->command_items) /* the adapter's own, for users too */
        comp->adapter->command_items(comp->self, iq, q);
    ferry_component_send_release(comp, res);
}

int ferry__adhoc_info(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node)
{
    const command_t *c = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].node, node) == 0)
            c = &commands[i];
    if (!c)
        return 0;
    ferry_command_info(comp, iq, node, c->name);
    return 1;
}

void ferry__adhoc_execute(const adhoc_ops_t *ops, ferry_component_t *comp, xmpp_stanza_t *iq,
                   xmpp_stanza_t *cmd)
{
    if (!is_admin(comp, iq)) {
        ferry_component_reply_error(comp, iq, "auth", "forbidden",
                                    "ad-hoc commands are for the admins in [admin] jids");
        return;
    }
    const char *node = xmpp_stanza_get_attribute(cmd, "node");
    const char *action = xmpp_stanza_get_attribute(cmd, "action");
    const command_t *c = NULL;
    for (size_t i = 0; node && i < NCOMMANDS; i++)
        if (strcmp(commands[i].node, node) == 0)
            c = &commands[i];
    if (!c) {
        ferry_component_reply_error(comp, iq, "cancel", "item-not-found", "no such command");
        return;
    }
    if (action && strcmp(action, "cancel") == 0) {
        xmpp_stanza_t *out;
        ferry_component_send_release(comp, ferry_command_answer(iq, node, "canceled", &out));
        return;
    }
    c->run(ops, comp, iq, cmd);
}
