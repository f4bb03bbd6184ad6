/* form.c: XEP-0004 forms and XEP-0050 command answers (ferry/form.h). The
 * core's admin commands and the IRC adapter's settings each built these by
 * hand, alike to the line. */
#include <string.h>

#include "ferry/form.h"
#include "ferry/stanza.h"

xmpp_stanza_t *ferry_form_field(xmpp_stanza_t *x, const char *var)
{
    xmpp_stanza_t *f = x ? xmpp_stanza_get_children(x) : NULL;
    for (; f; f = xmpp_stanza_get_next(f)) {
        const char *name = xmpp_stanza_get_name(f), *v = xmpp_stanza_get_attribute(f, "var");
        if (name && strcmp(name, "field") == 0 && v && strcmp(v, var) == 0)
            return f;
    }
    return NULL;
}

const char *ferry_form_value(xmpp_stanza_t *x, const char *var)
{
    xmpp_stanza_t *f = ferry_form_field(x, var);
    xmpp_stanza_t *v = f ? xmpp_stanza_get_child_by_name(f, "value") : NULL;
    xmpp_stanza_t *t = v ? xmpp_stanza_get_children(v) : NULL;
    return t ? xmpp_stanza_get_text_ptr(t) : f ? "" : NULL;
}

xmpp_stanza_t *ferry_form_add(xmpp_stanza_t *parent, const char *type, const char *title)
{
    xmpp_stanza_t *x = ferry_stanza_add(parent, "x", FERRY_NS_DATA);
    xmpp_stanza_set_type(x, type);
    ferry_stanza_add_text(x, "title", title);
    return x;
}

xmpp_stanza_t *ferry_form_add_field(xmpp_stanza_t *x, const char *var, const char *type,
                                    const char *label, const char *value)
{
    xmpp_stanza_t *f = ferry_stanza_add(x, "field", NULL);
    xmpp_stanza_set_attribute(f, "var", var);
    xmpp_stanza_set_type(f, type);
    if (label)
        xmpp_stanza_set_attribute(f, "label", label);
    if (value)
        ferry_stanza_add_text(f, "value", value);
    return f;
}

xmpp_stanza_t *ferry_command_answer(xmpp_stanza_t *iq, const char *node, const char *status,
                                    xmpp_stanza_t **cmd_out)
{
    xmpp_ctx_t *ctx = xmpp_stanza_get_context(iq);
    xmpp_stanza_t *res = ferry_iq_result(iq, NULL, NULL);
    xmpp_stanza_t *cmd = ferry_stanza_add(res, "command", FERRY_NS_COMMANDS);
    xmpp_stanza_set_attribute(cmd, "node", node);
    xmpp_stanza_t *asked = xmpp_stanza_get_child_by_name_and_ns(iq, "command", FERRY_NS_COMMANDS);
    const char *given = asked ? xmpp_stanza_get_attribute(asked, "sessionid") : NULL;
    char *session = given ? NULL : xmpp_uuid_gen(ctx);
    xmpp_stanza_set_attribute(cmd, "sessionid", given ? given : session);
    if (session)
        xmpp_free(ctx, session);
    xmpp_stanza_set_attribute(cmd, "status", status);
    *cmd_out = cmd;
    return res;
}

xmpp_stanza_t *ferry_command_ask(xmpp_stanza_t *iq, const char *node, const char *title,
                                 const char *instructions, xmpp_stanza_t **x)
{
    xmpp_stanza_t *cmd;
    xmpp_stanza_t *res = ferry_command_answer(iq, node, "executing", &cmd);
    xmpp_stanza_t *actions = ferry_stanza_add(cmd, "actions", NULL);
    xmpp_stanza_set_attribute(actions, "execute", "complete");
    ferry_stanza_add(actions, "complete", NULL);
    *x = ferry_form_add(cmd, "form", title);
    if (instructions)
        ferry_stanza_add_text(*x, "instructions", instructions);
    return res;
}

void ferry_command_complete(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node,
                            const char *note_type, const char *text)
{
    xmpp_stanza_t *cmd;
    xmpp_stanza_t *res = ferry_command_answer(iq, node, "completed", &cmd);
    xmpp_stanza_set_type(ferry_stanza_add_text(cmd, "note", text), note_type);
    ferry_component_send_release(comp, res);
}

void ferry_command_info(ferry_component_t *comp, xmpp_stanza_t *iq, const char *node,
                        const char *name)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res =
        ferry_iq_result(iq, "http://jabber.org/protocol/disco#info", &q);
    xmpp_stanza_set_attribute(q, "node", node);
    ferry_disco_identity(q, "automation", "command-node", name);
    ferry_disco_feature(q, FERRY_NS_COMMANDS);
    ferry_disco_feature(q, FERRY_NS_DATA);
    ferry_component_send_release(comp, res);
}
