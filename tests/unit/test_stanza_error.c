/* test_stanza_error.c: ferry__stanza_error_new() builds the RFC 6120 section 8.3
 * error reply the sender of a message, iq or presence gets back. */
#include <stdlib.h>
#include <string.h>

#include <strophe.h>

#include "stanza_error.h"

#include "check.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

static xmpp_ctx_t *ctx;

static xmpp_stanza_t *parse(const char *xml)
{
    xmpp_stanza_t *st = xmpp_stanza_new_from_string(ctx, xml);
    CHECK(st != NULL, "xmpp_stanza_new_from_string(%s) failed", check_quote(xml));
    return st;
}

/* The first child element (text nodes skipped). */
static xmpp_stanza_t *first_element(xmpp_stanza_t *st)
{
    for (xmpp_stanza_t *c = st ? xmpp_stanza_get_children(st) : NULL; c; c = xmpp_stanza_get_next(c))
        if (!xmpp_stanza_is_text(c))
            return c;
    return NULL;
}

static int count_elements(xmpp_stanza_t *st, const char *name)
{
    int n = 0;
    for (xmpp_stanza_t *c = st ? xmpp_stanza_get_children(st) : NULL; c; c = xmpp_stanza_get_next(c))
        if (!xmpp_stanza_is_text(c) && strcmp(xmpp_stanza_get_name(c), name) == 0)
            n++;
    return n;
}

static char *text_of(xmpp_stanza_t *st) { return st ? xmpp_stanza_get_text(st) : NULL; }

/* Checks the <error/> child of REPLY: its type, its condition (first,
 * namespaced), and the optional <text/>; nothing else in it. */
#define CHECK_ERROR(reply, type, condition, text) \
    check_error_at(__FILE__, __LINE__, reply, type, condition, text)
static void check_error_at(const char *file, int line, xmpp_stanza_t *reply, const char *type,
                           const char *condition, const char *text)
{
    xmpp_stanza_t *err = xmpp_stanza_get_child_by_name(reply, "error");
    if (!check_at(file, line, err != NULL, "reply has no <error/> child"))
        return;
    check_at(file, line, count_elements(reply, "error") == 1, "reply has %d <error/> children",
             count_elements(reply, "error"));
    const char *ns = xmpp_stanza_get_ns(err);
    check_at(file, line, ns == NULL || strcmp(ns, "jabber:component:accept") == 0,
             "<error/> is in namespace %s, expected the stream's", check_quote(ns));
    const char *etype = xmpp_stanza_get_type(err);
    check_at(file, line, etype && strcmp(etype, type) == 0, "<error type=%s>, expected %s",
             check_quote(etype), check_quote(type));

    xmpp_stanza_t *cond = first_element(err);
    if (check_at(file, line, cond != NULL, "<error/> has no condition element")) {
        check_at(file, line, strcmp(xmpp_stanza_get_name(cond), condition) == 0,
                 "condition <%s/>, expected <%s/>", xmpp_stanza_get_name(cond), condition);
        const char *cns = xmpp_stanza_get_ns(cond);
        check_at(file, line, cns && strcmp(cns, NS_STANZAS) == 0,
                 "condition in namespace %s, expected %s", check_quote(cns), NS_STANZAS);
        check_at(file, line, xmpp_stanza_get_children(cond) == NULL,
                 "the condition element should be empty");
    }

    xmpp_stanza_t *t = xmpp_stanza_get_child_by_name(err, "text");
    int elements = 0;
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(err); c; c = xmpp_stanza_get_next(c))
        elements += !xmpp_stanza_is_text(c);
    if (!text) {
        check_at(file, line, t == NULL, "<text/> present although no text was given");
        check_at(file, line, elements == 1, "<error/> has %d child elements, expected 1", elements);
        return;
    }
    check_at(file, line, elements == 2, "<error/> has %d child elements, expected 2", elements);
    if (!check_at(file, line, t != NULL, "<error/> has no <text/>"))
        return;
    const char *tns = xmpp_stanza_get_ns(t);
    check_at(file, line, tns && strcmp(tns, NS_STANZAS) == 0, "<text/> in namespace %s, expected %s",
             check_quote(tns), NS_STANZAS);
    char *got = xmpp_stanza_get_text(t);
    check_at(file, line, got && strcmp(got, text) == 0, "<text/> is %s, expected %s",
             check_quote(got), check_quote(text));
    xmpp_free(ctx, got);
}

static void test_message(void)
{
    xmpp_stanza_t *msg = parse("<message from='alice@localhost/phone' to='alerts@hooks.localhost' "
                               "type='chat' id='m-1'><body>disk &amp; full</body>"
                               "<request xmlns='urn:xmpp:receipts'/></message>");
    xmpp_stanza_t *reply = ferry__stanza_error_new(msg, "cancel", "item-not-found", "no such endpoint");
    if (CHECK(reply != NULL, "no error reply to a message")) {
        CHECK_STR(xmpp_stanza_get_name(reply), "message");
        CHECK_STR(xmpp_stanza_get_to(reply), "alice@localhost/phone");
        CHECK_STR(xmpp_stanza_get_from(reply), "alerts@hooks.localhost");
        CHECK_STR(xmpp_stanza_get_id(reply), "m-1");
        CHECK_STR(xmpp_stanza_get_type(reply), "error");
        CHECK_ERROR(reply, "cancel", "item-not-found", "no such endpoint");
        /* the original payload comes back, so the sender sees what failed */
        char *body = text_of(xmpp_stanza_get_child_by_name(reply, "body"));
        CHECK_STR(body, "disk & full");
        xmpp_free(ctx, body);
        CHECK(xmpp_stanza_get_child_by_name_and_ns(reply, "request", "urn:xmpp:receipts") != NULL,
              "the <request/> payload was dropped");
        /* the error goes last, after the payload */
        xmpp_stanza_t *last = NULL;
        for (xmpp_stanza_t *c = xmpp_stanza_get_children(reply); c; c = xmpp_stanza_get_next(c))
            last = c;
        CHECK(last && !xmpp_stanza_is_text(last) && strcmp(xmpp_stanza_get_name(last), "error") == 0,
              "<error/> is not the last child");
        /* it serialises */
        char *buf = NULL;
        size_t len = 0;
        CHECK(xmpp_stanza_to_text(reply, &buf, &len) == XMPP_EOK, "xmpp_stanza_to_text failed");
        CHECK(buf && strstr(buf, "<item-not-found xmlns=\"" NS_STANZAS "\"/>") != NULL,
              "serialised reply %s lacks the condition", check_quote(buf));
        xmpp_free(ctx, buf);
        xmpp_stanza_release(reply);
    }
    /* the stanza it answers is left as it was */
    CHECK_STR(xmpp_stanza_get_to(msg), "alerts@hooks.localhost");
    CHECK_STR(xmpp_stanza_get_from(msg), "alice@localhost/phone");
    CHECK_STR(xmpp_stanza_get_type(msg), "chat");
    CHECK(xmpp_stanza_get_child_by_name(msg, "error") == NULL, "the original got an <error/>");
    xmpp_stanza_release(msg);

    /* a message without a type, and without text in the error */
    msg = parse("<message from='bob@example.org' to='x@hooks.localhost' id='m-2'>"
                "<body>hi</body></message>");
    reply = ferry__stanza_error_new(msg, "auth", "forbidden", NULL);
    if (CHECK(reply != NULL, "no error reply to a message without type")) {
        CHECK_STR(xmpp_stanza_get_type(reply), "error");
        CHECK_STR(xmpp_stanza_get_to(reply), "bob@example.org");
        CHECK_STR(xmpp_stanza_get_from(reply), "x@hooks.localhost");
        CHECK_STR(xmpp_stanza_get_id(reply), "m-2");
        CHECK_ERROR(reply, "auth", "forbidden", NULL);
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(msg);

    /* no 'to' on the original: the reply has no 'from' (the server fills it) */
    msg = parse("<message from='bob@example.org/r' id='m-3'><body>hi</body></message>");
    reply = ferry__stanza_error_new(msg, "modify", "jid-malformed", "no address");
    if (CHECK(reply != NULL, "no error reply to a message without 'to'")) {
        CHECK_STR(xmpp_stanza_get_to(reply), "bob@example.org/r");
        CHECK_STR(xmpp_stanza_get_from(reply), NULL);
        CHECK_ERROR(reply, "modify", "jid-malformed", "no address");
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(msg);

    /* no id on the original: none invented */
    msg = parse("<message from='bob@example.org' to='x@hooks.localhost'><body>hi</body></message>");
    reply = ferry__stanza_error_new(msg, "cancel", "service-unavailable", NULL);
    if (CHECK(reply != NULL, "no error reply to a message without id")) {
        CHECK_STR(xmpp_stanza_get_id(reply), NULL);
        CHECK_ERROR(reply, "cancel", "service-unavailable", NULL);
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(msg);

    /* text with markup characters survives serialisation */
    msg = parse("<message from='bob@example.org' to='x@hooks.localhost' id='m-4'/>");
    reply = ferry__stanza_error_new(msg, "wait", "resource-constraint", "HTTP 503 <Service & \"Unavailable\">");
    if (CHECK(reply != NULL, "no error reply")) {
        CHECK_ERROR(reply, "wait", "resource-constraint", "HTTP 503 <Service & \"Unavailable\">");
        char *buf = NULL;
        size_t len = 0;
        xmpp_stanza_to_text(reply, &buf, &len);
        xmpp_stanza_t *back = buf ? xmpp_stanza_new_from_string(ctx, buf) : NULL;
        CHECK(back != NULL, "the serialised reply %s does not parse", check_quote(buf));
        if (back) {
            xmpp_stanza_t *err = xmpp_stanza_get_child_by_name(back, "error");
            char *t = text_of(err ? xmpp_stanza_get_child_by_name(err, "text") : NULL);
            CHECK_STR(t, "HTTP 503 <Service & \"Unavailable\">");
            xmpp_free(ctx, t);
            xmpp_stanza_release(back);
        }
        xmpp_free(ctx, buf);
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(msg);
}

static void test_iq(void)
{
    xmpp_stanza_t *iq = parse("<iq type='set' id='q7' from='alice@localhost/phone' "
                              "to='hooks.localhost'><query xmlns='urn:example:unknown'>"
                              "<item n='1'/></query></iq>");
    xmpp_stanza_t *reply = ferry__stanza_error_new(iq, "cancel", "service-unavailable", NULL);
    if (CHECK(reply != NULL, "no error reply to an iq")) {
        CHECK_STR(xmpp_stanza_get_name(reply), "iq");
        CHECK_STR(xmpp_stanza_get_type(reply), "error");
        CHECK_STR(xmpp_stanza_get_id(reply), "q7");
        CHECK_STR(xmpp_stanza_get_to(reply), "alice@localhost/phone");
        CHECK_STR(xmpp_stanza_get_from(reply), "hooks.localhost");
        CHECK_ERROR(reply, "cancel", "service-unavailable", NULL);
        xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(reply, "query", "urn:example:unknown");
        CHECK(q != NULL, "the <query/> payload was dropped");
        CHECK(q && xmpp_stanza_get_child_by_name(q, "item") != NULL, "the <query/> lost its child");
        xmpp_stanza_release(reply);
    }
    CHECK_STR(xmpp_stanza_get_type(iq), "set");
    xmpp_stanza_release(iq);

    iq = parse("<iq type='get' id='v1' from='localhost' to='hooks.localhost'>"
               "<query xmlns='jabber:iq:version'/></iq>");
    reply = ferry__stanza_error_new(iq, "modify", "bad-request", "try again");
    if (CHECK(reply != NULL, "no error reply to an iq get")) {
        CHECK_STR(xmpp_stanza_get_type(reply), "error");
        CHECK_STR(xmpp_stanza_get_id(reply), "v1");
        CHECK_STR(xmpp_stanza_get_to(reply), "localhost");
        CHECK_STR(xmpp_stanza_get_from(reply), "hooks.localhost");
        CHECK_ERROR(reply, "modify", "bad-request", "try again");
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(iq);
}

static void test_presence(void)
{
    /* an available presence has no type; its reply has type='error' */
    xmpp_stanza_t *pres = parse("<presence from='alice@localhost/phone' to='room@hooks.localhost/alice' "
                                "id='p1'><show>away</show><status>lunch</status></presence>");
    xmpp_stanza_t *reply = ferry__stanza_error_new(pres, "cancel", "not-allowed", "no presence here");
    if (CHECK(reply != NULL, "no error reply to a presence")) {
        CHECK_STR(xmpp_stanza_get_name(reply), "presence");
        CHECK_STR(xmpp_stanza_get_type(reply), "error");
        CHECK_STR(xmpp_stanza_get_id(reply), "p1");
        CHECK_STR(xmpp_stanza_get_to(reply), "alice@localhost/phone");
        CHECK_STR(xmpp_stanza_get_from(reply), "room@hooks.localhost/alice");
        CHECK_ERROR(reply, "cancel", "not-allowed", "no presence here");
        char *status = text_of(xmpp_stanza_get_child_by_name(reply, "status"));
        CHECK_STR(status, "lunch");
        xmpp_free(ctx, status);
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(pres);

    pres = parse("<presence type='subscribe' from='bob@example.org' to='alerts@hooks.localhost'/>");
    reply = ferry__stanza_error_new(pres, "auth", "forbidden", NULL);
    if (CHECK(reply != NULL, "no error reply to a subscribe")) {
        CHECK_STR(xmpp_stanza_get_type(reply), "error");
        CHECK_STR(xmpp_stanza_get_to(reply), "bob@example.org");
        CHECK_STR(xmpp_stanza_get_from(reply), "alerts@hooks.localhost");
        CHECK_ERROR(reply, "auth", "forbidden", NULL);
        xmpp_stanza_release(reply);
    }
    xmpp_stanza_release(pres);
}

static void test_no_reply(void)
{
    static const char *const none[] = {
        /* never an error in reply to an error */
        "<message type='error' from='alice@localhost' to='x@hooks.localhost' id='e1'>"
        "<error type='cancel'><item-not-found xmlns='" NS_STANZAS "'/></error></message>",
        "<iq type='error' from='localhost' to='hooks.localhost' id='e2'>"
        "<error type='cancel'><service-unavailable xmlns='" NS_STANZAS "'/></error></iq>",
        "<presence type='error' from='alice@localhost' to='x@hooks.localhost'/>",
        /* nobody to answer */
        "<message to='x@hooks.localhost' id='n1'><body>hi</body></message>",
        "<iq type='get' to='hooks.localhost' id='n2'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<presence to='x@hooks.localhost'/>",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        xmpp_stanza_t *st = parse(none[i]);
        if (!st)
            continue;
        xmpp_stanza_t *reply = ferry__stanza_error_new(st, "cancel", "service-unavailable", "x");
        CHECK(reply == NULL, "stanza_error_new answered %s", check_quote(none[i]));
        if (reply)
            xmpp_stanza_release(reply);
        xmpp_stanza_release(st);
    }
}

int main(void)
{
    xmpp_initialize();
    ctx = xmpp_ctx_new(NULL, NULL);
    test_message();
    test_iq();
    test_presence();
    test_no_reply();
    xmpp_ctx_free(ctx);
    xmpp_shutdown();
    return check_summary();
}
