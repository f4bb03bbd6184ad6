/* test_component_send.c: the last check on the way out. A stanza holding a
 * byte XML forbids is never handed to the link (it would make the server
 * close the stream for every user of the component): it is counted and
 * dropped; valid ones go (here: queued, the link never being started). */
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "ferry/stanza.h"
#include "gateway.h"
#include "xmpp_link.h"
#include "check.h"

static size_t queued(ferry_component_t *comp)
{
    ferry__xmpp_link_stats_t st;
    ferry__xmpp_link_stats(comp->link, &st);
    return st.queued;
}

static void on_closed(void *arg) { (void)arg; }

int main(void)
{
    uv_loop_t *loop = uv_default_loop();
    xmpp_initialize();
    xmpp_ctx_t *ctx = xmpp_ctx_new(NULL, NULL);
    gateway_t gw = {.loop = loop, .ctx = ctx};
    ferry_component_t comp = {.gw = &gw, .name = "t", .domain = "t.localhost"};
    ferry__xmpp_link_options_t o = {.host = "127.0.0.1", .port = 9, .domain = "t.localhost",
                             .secret = "s", .scope = "t", .queue_size = 100};
    ferry__xmpp_link_handlers_t h = {0};
    comp.link = ferry__xmpp_link_new(loop, ctx, &o, &h, &comp);

    const char ok[] = "<message to='a@b' from='t.localhost'><body>caf\xc3\xa9</body></message>";
    ferry_component_send_xml(&comp, ok, sizeof ok - 1);
    CHECK_INT(queued(&comp), 1);
    const char bad[] = "<message to='a@b' from='t.localhost'><body>bad \xef\xbf\xbf</body></message>";
    ferry_component_send_xml(&comp, bad, sizeof bad - 1);
    const char ctl[] = "<message to='a@b' from='t.localhost/ev\x01il'/>";
    ferry_component_send_xml(&comp, ctl, sizeof ctl - 1);
    CHECK_INT(queued(&comp), 1);
    CHECK_INT(comp.refused_invalid, 2);

    /* A stanza object whose text was set without the cleaner (a bug). */
    xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", "a@b", "id1");
    xmpp_stanza_t *body = xmpp_stanza_new(ctx), *text = xmpp_stanza_new(ctx);
    xmpp_stanza_set_name(body, "body");
    xmpp_stanza_set_text(text, "x \xed\xa0\x80");
    xmpp_stanza_add_child_ex(body, text, 0);
    xmpp_stanza_add_child_ex(msg, body, 0);
    ferry_component_send(&comp, msg);
    CHECK_INT(queued(&comp), 1);
    CHECK_INT(comp.refused_invalid, 3);
    xmpp_stanza_release(msg);
    /* The same through the builder: cleaned, so it goes. */
    msg = xmpp_message_new(ctx, "chat", "a@b", "id2");
    ferry_stanza_add_text(msg, "body", "x \xed\xa0\x80");
    ferry_component_send(&comp, msg);
    CHECK_INT(queued(&comp), 2);
    CHECK_INT(comp.refused_invalid, 3);
    xmpp_stanza_release(msg);

    ferry__xmpp_link_close(comp.link, on_closed, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    xmpp_ctx_free(ctx);
    xmpp_shutdown();
    return check_summary();
}
