/* sms_register.c: who may use the gateway beyond the configured users.
 * XEP-0077 binds a JID to a number the provider account owns (checked with
 * the provider's API before it is stored); XEP-0100 turns what a user types
 * into a phone's JID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "sms.h"

typedef struct sms_lookup {
    sms_t *sms;
    ferry_list_t node; /* in sms->lookups */
    xmpp_stanza_t *iq;
    char jid[2100];
    char number[PHONE_MAX];
    ferry_http_request_t *req;
} sms_lookup_t;

static const char *child_text(xmpp_stanza_t *parent, const char *name)
{
    xmpp_stanza_t *el = xmpp_stanza_get_child_by_name(parent, name);
    xmpp_stanza_t *t = el ? xmpp_stanza_get_children(el) : NULL;
    return t ? xmpp_stanza_get_text_ptr(t) : el ? "" : NULL;
}

static int configured(sms_t *sms, const char *bare)
{
    for (size_t i = 0; i < sms->nusers; i++)
        if (strcmp(sms->users[i].jid, bare) == 0)
            return 1;
    return 0;
}

/* ---- XEP-0077 ---- */

static void register_form(sms_t *sms, xmpp_stanza_t *iq, const char *bare)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_REGISTER, &q);
    char *number = sms_number_of(sms, bare);
    ferry_stanza_add_text(q, "instructions",
                          "Enter the phone number (international form, e.g. +15551234567) "
                          "of the gateway's account that you will send from.");
    if (number) {
        ferry_stanza_add(q, "registered", NULL);
        ferry_stanza_add_text(q, "phone", number);
    } else {
        ferry_stanza_add(q, "phone", NULL);
    }
    free(number);
    ferry_component_send_release(sms->comp, res);
}

static void unregister(sms_t *sms, xmpp_stanza_t *iq, const char *bare)
{
    if (configured(sms, bare)) {
        ferry_component_reply_error(sms->comp, iq, "cancel", "not-allowed",
                                    "this user is configured in the gateway's configuration");
        return;
    }
    char *number = sms_number_of(sms, bare);
    if (!number) {
        ferry_component_reply_error(sms->comp, iq, "auth", "registration-required",
                                    "not registered");
        return;
    }
    ferry_setting_del(sms->comp, "user", bare);
    ferry_setting_del(sms->comp, "number", number);
    ferry_log_info(ferry_component_name(sms->comp), "a user unregistered");
    free(number);
    ferry_component_send_release(sms->comp, ferry_iq_result(iq, NULL, NULL));
}

static void lookup_free(sms_lookup_t *l)
{
    ferry_list_remove(&l->node);
    xmpp_stanza_release(l->iq);
    free(l);
}

static void bind_number(sms_t *sms, const char *bare, const char *number)
{
    char *old = sms_number_of(sms, bare);
    if (old)
        ferry_setting_del(sms->comp, "number", old);
    free(old);
    ferry_setting_put(sms->comp, "user", bare, number);
    ferry_setting_put(sms->comp, "number", number, bare);
}

static void on_lookup(void *arg, const ferry_http_response_t *resp)
{
    sms_lookup_t *l = arg;
    sms_t *sms = l->sms;
    l->req = NULL;
    int owned = sms->provider->owned(resp, l->number);
    char *owner = sms_owner_of(sms, l->number);
    if (owned == 1 && owner && strcmp(owner, l->jid) != 0) {
        /* Taken while we asked the provider. */
        ferry_component_reply_error(sms->comp, l->iq, "cancel", "conflict",
                                    "this number is registered to another user");
    } else if (owned == 1) {
        bind_number(sms, l->jid, l->number);
        ferry_log_info(ferry_component_name(sms->comp), "a user registered a number");
        ferry_component_send_release(sms->comp,
                                     ferry_iq_result(l->iq, NULL, NULL));
    } else if (owned == 0) {
        char text[200];
        snprintf(text, sizeof text, "the gateway's %s account does not own %s",
                 sms->provider->name, l->number);
        ferry_component_reply_error(sms->comp, l->iq, "modify", "not-acceptable", text);
    } else {
        ferry_component_reply_error(sms->comp, l->iq, "wait", "service-unavailable",
                                    "could not check the number with the provider; try again");
    }
    free(owner);
    lookup_free(l);
}

static void register_number(sms_t *sms, xmpp_stanza_t *iq, const char *bare, const char *phone)
{
    char number[PHONE_MAX];
    const char *why;
    if (sms_phone_normalize(phone, sms->country_code, number, &why) != 0) {
        ferry_component_reply_error(sms->comp, iq, "modify", "not-acceptable", why);
        return;
    }
    if (configured(sms, bare)) {
        ferry_component_reply_error(sms->comp, iq, "cancel", "not-allowed",
                                    "this user is configured in the gateway's configuration");
        return;
    }
    char *owner = sms_owner_of(sms, number);
    int taken = owner && strcmp(owner, bare) != 0;
    free(owner);
    if (taken) {
        ferry_component_reply_error(sms->comp, iq, "cancel", "conflict",
                                    "this number is registered to another user");
        return;
    }
    sms_lookup_t *l = ferry_calloc(1, sizeof *l);
    l->sms = sms;
    l->iq = xmpp_stanza_clone(iq);
    snprintf(l->jid, sizeof l->jid, "%s", bare);
    snprintf(l->number, sizeof l->number, "%s", number);
    l->req = sms->provider->lookup(sms, number);
    ferry_list_insert_head(&sms->lookups, &l->node);
    if (!l->req) {
        on_lookup(l, &(ferry_http_response_t){.status = 0, .error = "no request", .body = ""});
        return;
    }
    ferry_http_request_timeout(l->req, (long)(sms->timeout * 1000));
    if (ferry_http_request_send(l->req, on_lookup, l) != 0) {
        l->req = NULL;
        on_lookup(l, &(ferry_http_response_t){.status = 0, .error = "not sent", .body = ""});
    }
}

static int on_register(sms_t *sms, xmpp_stanza_t *iq, xmpp_stanza_t *q)
{
    if (!sms->allow_registration) {
        ferry_component_reply_error(sms->comp, iq, "cancel", "service-unavailable",
                                    "registration is closed on this gateway");
        return 1;
    }
    char bare[2100];
    ferry_jid_bare_of(xmpp_stanza_get_from(iq), bare, sizeof bare);
    if (strcmp(xmpp_stanza_get_type(iq), "get") == 0) {
        register_form(sms, iq, bare);
    } else if (xmpp_stanza_get_child_by_name(q, "remove")) {
        unregister(sms, iq, bare);
    } else {
        const char *phone = child_text(q, "phone");
        if (!phone || !*phone)
            ferry_component_reply_error(sms->comp, iq, "modify", "bad-request",
                                        "the <phone/> field is required");
        else
            register_number(sms, iq, bare, phone);
    }
    return 1;
}

void sms_lookups_cancel(sms_t *sms)
{
    ferry_list_t *first;
    while ((first = ferry_list_first(&sms->lookups))) {
        sms_lookup_t *l = ferry_list_entry(first, sms_lookup_t, node);
        if (l->req)
            ferry_http_request_cancel(l->req);
        l->req = NULL;
        ferry_component_reply_error(sms->comp, l->iq, "wait", "service-unavailable",
                                    "the gateway is shutting down");
        lookup_free(l);
    }
}

/* ---- XEP-0100 ---- */

static int on_gateway(sms_t *sms, xmpp_stanza_t *iq, xmpp_stanza_t *q)
{
    if (strcmp(xmpp_stanza_get_type(iq), "get") == 0) {
        xmpp_stanza_t *out;
        xmpp_stanza_t *res = ferry_iq_result(iq, NS_GATEWAY, &out);
        ferry_stanza_add_text(out, "desc",
                              "Enter a phone number, e.g. +15551234567, to get its address.");
        ferry_stanza_add_text(out, "prompt", "Phone number");
        ferry_component_send_release(sms->comp, res);
        return 1;
    }
    const char *prompt = child_text(q, "prompt");
    char number[PHONE_MAX], jid[PHONE_MAX + 1100];
    const char *why = "the <prompt/> field is required";
    if (!prompt || sms_phone_normalize(prompt, sms->country_code, number, &why) != 0) {
        ferry_component_reply_error(sms->comp, iq, "modify", "not-acceptable", why);
        return 1;
    }
    sms_number_jid(sms, number, jid, sizeof jid);
    xmpp_stanza_t *out;
    xmpp_stanza_t *res = ferry_iq_result(iq, NS_GATEWAY, &out);
    ferry_stanza_add_text(out, "jid", jid);
    ferry_stanza_add_text(out, "prompt", jid); /* what clients before XEP-0100 1.0 read */
    ferry_component_send_release(sms->comp, res);
    return 1;
}

int sms_on_register_iq(sms_t *sms, xmpp_stanza_t *iq)
{
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_REGISTER);
    if (q)
        return on_register(sms, iq, q);
    q = xmpp_stanza_get_child_by_name_and_ns(iq, "query", NS_GATEWAY);
    if (q)
        return on_gateway(sms, iq, q);
    return 0;
}
