/* sms.c: the SMS adapter: phones are JIDs (+15551234567@sms.example.org).
 * A chat message from a user to such a JID becomes one or more SMS sent
 * from the user's number through the provider's API (durably, with
 * retries); delivery reports become XEP-0184 receipts or error messages.
 * Incoming SMS are handled in sms_inbound.c, registration in
 * sms_register.c, the providers' APIs in provider_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ferry/alloc.h"
#include "sms.h"

/* The outbox record of one SMS part. */
enum { R_VERSION, R_SENDER, R_FROM, R_TO, R_BODY, R_MEDIA, R_ID, R_RECEIPT, R_FIELDS };
#define RECORD_VERSION "s1"

/* What one attempt at sending a part needs (the data of its
 * ferry_http_outbox_send()). */
typedef struct sms_attempt {
    int64_t id;
    char *buf;                 /* the record; f[] points into it */
    const char *f[R_FIELDS];
} sms_attempt_t;

struct rate_slot {
    rate_slot_t *next;
    char *jid;
    int64_t *times;            /* ring of the last rate_limit sends */
    size_t head, count;
};

/* ---- users ---- */

char *sms_number_of(sms_t *sms, const char *bare_jid)
{
    for (size_t i = 0; i < sms->nusers; i++)
        if (strcmp(sms->users[i].jid, bare_jid) == 0)
            return ferry_strdup(sms->users[i].number);
    char *number = NULL;
    return ferry_setting_get(sms->comp, "user", bare_jid, &number) == 0 ? number : NULL;
}

char *sms_owner_of(sms_t *sms, const char *number)
{
    for (size_t i = 0; i < sms->nusers; i++)
        if (strcmp(sms->users[i].number, number) == 0)
            return ferry_strdup(sms->users[i].jid);
    char *jid = NULL;
    return ferry_setting_get(sms->comp, "number", number, &jid) == 0 ? jid : NULL;
}

int sms_list_has_number(const void *json_list, const char *number)
{
    json_t *list = (json_t *)json_list;
    if (!json_is_array(list))
        return -1;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *n = json_string_value(json_object_get(json_array_get(list, i), "phone_number"));
        if (n && strcmp(n, number) == 0)
            return 1;
    }
    return 0;
}

void sms_number_jid(sms_t *sms, const char *number, char *buf, size_t len)
{
    snprintf(buf, len, "%s@%s", number, ferry_component_domain(sms->comp));
}

/* ---- rate limit ---- */

/* Records a send by JID; 0 when within the limit, -1 when over it. */
static int rate_take(sms_t *sms, const char *jid, int64_t now)
{
    if (sms->rate_limit <= 0)
        return 0;
    rate_slot_t *r = sms->rates;
    while (r && strcmp(r->jid, jid) != 0)
        r = r->next;
    if (!r) {
        r = ferry_calloc(1, sizeof *r);
        r->jid = ferry_strdup(jid);
        r->times = ferry_calloc((size_t)sms->rate_limit, sizeof *r->times);
        r->next = sms->rates;
        sms->rates = r;
    }
    size_t cap = (size_t)sms->rate_limit;
    while (r->count && now - r->times[r->head] >= 60000) {
        r->head = (r->head + 1) % cap;
        r->count--;
    }
    if (r->count >= cap)
        return -1;
    r->times[(r->head + r->count) % cap] = now;
    r->count++;
    return 0;
}

static void rates_free(sms_t *sms)
{
    while (sms->rates) {
        rate_slot_t *r = sms->rates;
        sms->rates = r->next;
        free(r->jid);
        free(r->times);
        free(r);
    }
}

/* ---- outbound: XMPP -> SMS ---- */

static void attempt_free(void *data)
{
    sms_attempt_t *a = data;
    free(a->buf);
    free(a);
}

/* The sender's original message, rebuilt for an error reply. */
static void reply_error(sms_t *sms, const char *const *f, const char *type, const char *condition,
                        const char *text)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(sms->comp);
    char to[PHONE_MAX + 1100];
    sms_number_jid(sms, f[R_TO], to, sizeof to);
    xmpp_stanza_t *orig = xmpp_message_new(ctx, "chat", to, *f[R_ID] ? f[R_ID] : NULL);
    xmpp_stanza_set_from(orig, f[R_SENDER]);
    ferry_stanza_add_text(orig, "body", f[R_BODY]);
    ferry_component_reply_error(sms->comp, orig, type, condition, text);
    xmpp_stanza_release(orig);
}

/* What an error code of the provider means for the sender. */
static const char *condition_for(long status, const char *code)
{
    static const struct { const char *code, *condition; } known[] = {
        {"21211", "item-not-found"},       /* twilio: invalid To */
        {"21614", "item-not-found"},       /* twilio: To is not a mobile number */
        {"40310", "item-not-found"},       /* telnyx: invalid to */
        {"21606", "not-allowed"},          /* twilio: From cannot send */
        {"21212", "not-allowed"},          /* twilio: invalid From */
        {"21608", "not-allowed"},          /* twilio: unverified number (trial) */
        {"40305", "not-allowed"},          /* telnyx: invalid from */
        {"21610", "recipient-unavailable"}, /* twilio: the phone opted out (STOP) */
        {"40300", "recipient-unavailable"}, /* telnyx: blocked as spam / opted out */
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(known[i].code, code) == 0)
            return known[i].condition;
    if (status == 401 || status == 403)
        return "internal-server-error"; /* the gateway's credentials, not the user's fault */
    if (status == 404)
        return "item-not-found";
    return "bad-request";
}

/* Remembers who to tell when the provider reports on ID. */
static void remember_report(sms_t *sms, const char *provider_id, const char *const *f)
{
    const char *fields[] = {f[R_SENDER], f[R_TO], f[R_ID], f[R_RECEIPT]};
    size_t len;
    char *rec = ferry_record_pack(fields, 4, &len);
    /* Settings hold text: NULs become newlines (none of the fields has one). */
    for (size_t i = 0; i + 1 < len; i++)
        if (!rec[i])
            rec[i] = '\n';
    ferry_setting_put(sms->comp, "report", provider_id, rec);
    free(rec);
}

/* The provider took the part: its id tells the report that comes later. */
static void on_sent(void *arg, void *data, const ferry_http_response_t *resp)
{
    sms_t *sms = arg;
    sms_attempt_t *a = data;
    sms_sent_t sent;
    sms->provider->sent(resp, &sent);
    if (sent.id[0]) {
        remember_report(sms, sent.id, a->f);
        sms_early_report(sms, sent.id);
    }
    sms->parts_sent++;
}

static void on_refused(void *arg, void *data, const ferry_http_response_t *resp, char *text,
                       size_t cap)
{
    sms_t *sms = arg;
    sms_attempt_t *a = data;
    sms_sent_t sent;
    sms->provider->sent(resp, &sent);
    snprintf(text, cap, "SMS not sent: %s refused it (HTTP %ld%s%s)%s%s", sms->provider->name,
             resp->status, sent.code[0] ? ", error " : "", sent.code, sent.text[0] ? ": " : "",
             sent.text);
    ferry_log_warn(ferry_component_name(sms->comp), "message %lld: %s", (long long)a->id, text);
    reply_error(sms, a->f, "cancel", condition_for(resp->status, sent.code), text);
}

static const ferry_http_outbox_handlers_t send_handlers = {
    .peer = "the provider",
    .delivered = on_sent,
    .refused = on_refused,
    .free = attempt_free,
};

static void deliver(void *arg, const ferry_msg_t *msg)
{
    sms_t *sms = arg;
    sms_attempt_t *a = ferry_calloc(1, sizeof *a);
    a->id = msg->id;
    a->buf = ferry_malloc(msg->payload_len + 1);
    memcpy(a->buf, msg->payload, msg->payload_len);
    if (ferry_record_unpack(a->buf, msg->payload_len, a->f, R_FIELDS) != 0 ||
        strcmp(a->f[R_VERSION], RECORD_VERSION) != 0) {
        ferry_outbox_fail(sms->comp, msg->id, "unreadable stored message");
        free(a->buf);
        free(a);
        return;
    }
    sms_out_t out = {.from = a->f[R_FROM], .to = a->f[R_TO], .body = a->f[R_BODY],
                     .status_url = sms->status_url};
    char *media = ferry_strdup(a->f[R_MEDIA]);
    for (char *url = strtok(media, "\n"); url && out.nmedia < SMS_MAX_MEDIA;
         url = strtok(NULL, "\n"))
        out.media[out.nmedia++] = url;
    ferry_http_request_t *req = sms->provider->send(sms, &out);
    free(media);
    if (req)
        ferry_http_request_timeout(req, (long)(sms->timeout * 1000));
    ferry_http_outbox_send(sms->sends, msg->id, req, a);
}

static void on_dead(void *arg, const ferry_msg_t *msg, const char *reason)
{
    sms_t *sms = arg;
    char *buf = ferry_malloc(msg->payload_len + 1);
    memcpy(buf, msg->payload, msg->payload_len);
    const char *f[R_FIELDS];
    if (ferry_record_unpack(buf, msg->payload_len, f, R_FIELDS) == 0) {
        char text[600];
        snprintf(text, sizeof text, "SMS not sent: %s", reason);
        reply_error(sms, f, "cancel", "remote-server-timeout", text);
    }
    free(buf);
}

static const ferry_outbox_handlers_t outbox_handlers = {
    .deliver = deliver,
    .dead = on_dead,
};

/* The first XEP-0066 URL of a message (as XEP-0363 uploads leave them). */
static const char *oob_url(xmpp_stanza_t *st)
{
    xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_OOB);
    xmpp_stanza_t *url = x ? xmpp_stanza_get_child_by_name(x, "url") : NULL;
    xmpp_stanza_t *text = url ? xmpp_stanza_get_children(url) : NULL;
    return text ? xmpp_stanza_get_text_ptr(text) : NULL;
}

static void log_segments(sms_t *sms, const char *body, size_t parts)
{
    int ucs2 = 0;
    unsigned segments = *body ? sms_segments(body, &ucs2) : 1;
    sms->segments += segments;
    ferry_log_info(ferry_component_name(sms->comp), "SMS accepted: %zu part(s), %u segment(s) (%s)",
                   parts, segments, ucs2 ? "UCS-2" : "GSM-7");
}

/* Stores (or holds) each part; 0, FERRY_OUTBOX_FULL, or -1 when the store
 * refused. A resend after an error stores the parts already in once (the
 * dedup key). */
static int queue_parts(sms_t *sms, xmpp_stanza_t *st, const char *from_number,
                       const char *to_number, const char *body, const char *media)
{
    char **parts;
    size_t n = sms_split(body, SMS_MAX_CHARS, &parts);
    log_segments(sms, body, n);
    const char *sender = xmpp_stanza_get_from(st);
    const char *id = xmpp_stanza_get_id(st);
    int receipt = xmpp_stanza_get_child_by_name_and_ns(st, "request", NS_RECEIPTS) != NULL;
    char bare[2100], conversation[2200], dedup[3200];
    ferry_jid_bare_of(sender, bare, sizeof bare);
    snprintf(conversation, sizeof conversation, "%s %s", bare, to_number);
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        /* Media go with the first part; the receipt waits for the last. */
        const char *f[R_FIELDS] = {RECORD_VERSION, sender, from_number, to_number, parts[i],
                                   i == 0 ? media : "", id ? id : "",
                                   receipt && i == n - 1 ? "1" : "0"};
        size_t len;
        char *rec = ferry_record_pack(f, R_FIELDS, &len);
        snprintf(dedup, sizeof dedup, "xmpp %s %s %zu", sender, id ? id : "", i);
        rc = ferry_outbox_put_or_hold(sms->comp, conversation, id ? dedup : NULL, rec, len, NULL);
        free(rec);
    }
    sms_parts_free(parts, n);
    return rc < 0 ? rc : 0;
}

static int is_error(xmpp_stanza_t *st)
{
    const char *type = xmpp_stanza_get_type(st);
    return type && strcmp(type, "error") == 0;
}

static void sms_on_message(void *self, xmpp_stanza_t *st)
{
    sms_t *sms = self;
    if (is_error(st))
        return;
    ferry_jid_t to;
    ferry_jid_parse(xmpp_stanza_get_to(st), &to);
    char bare[2100];
    ferry_jid_bare_of(xmpp_stanza_get_from(st), bare, sizeof bare);
    char *from_number = sms_number_of(sms, bare);
    if (!from_number) {
        ferry_component_reply_error(sms->comp, st, "auth", "registration-required",
                                    "register with this gateway (or be listed in its "
                                    "configuration) to send SMS");
        return;
    }
    char number[PHONE_MAX];
    const char *why = "address a phone number: +15551234567@domain";
    if (!to.local[0] || sms_phone_normalize(to.local, sms->country_code, number, &why) != 0) {
        ferry_component_reply_error(sms->comp, st, "cancel", "item-not-found", why);
        free(from_number);
        return;
    }
    char *body = xmpp_message_get_body(st);
    const char *url = oob_url(st);
    if (body || url) {
        if (rate_take(sms, bare, ferry_now_ms()) != 0) {
            char text[128];
            snprintf(text, sizeof text, "rate limit: at most %lld messages a minute",
                     (long long)sms->rate_limit);
            ferry_component_reply_error(sms->comp, st, "wait", "resource-constraint", text);
        } else {
            /* A body that is only the uploaded file's URL is not sent twice. */
            const char *text = body && !(url && strcmp(body, url) == 0) ? body : "";
            int rc = queue_parts(sms, st, from_number, number, text, url ? url : "");
            if (rc == FERRY_OUTBOX_FULL)
                ferry_component_reply_error(sms->comp, st, "wait", "resource-constraint",
                                            "the gateway's store is unavailable and its memory for"
                                            " waiting messages is full; send it again later");
            else if (rc != 0)
                ferry_component_reply_error(sms->comp, st, "wait", "internal-server-error",
                                            "the gateway could not store the message");
        }
    }
    /* Without body or URL it is a chat state: nothing to text. */
    if (body)
        xmpp_free(ferry_component_xmpp(sms->comp), body);
    free(from_number);
}

/* ---- presence and discovery ---- */

static void send_presence(sms_t *sms, const char *type, const char *to, const char *from)
{
    xmpp_stanza_t *p = xmpp_presence_new(ferry_component_xmpp(sms->comp));
    if (type)
        xmpp_stanza_set_type(p, type);
    xmpp_stanza_set_to(p, to);
    xmpp_stanza_set_from(p, from);
    ferry_component_send_release(sms->comp, p);
}

/* Phones show as online contacts of the gateway's users. */
static void sms_on_presence(void *self, xmpp_stanza_t *st)
{
    sms_t *sms = self;
    const char *type = xmpp_stanza_get_type(st);
    ferry_jid_t to;
    if (!type || ferry_jid_parse(xmpp_stanza_get_to(st), &to) != 0 || !to.local[0])
        return;
    const char *from = xmpp_stanza_get_from(st), *me = xmpp_stanza_get_to(st);
    char bare[2100];
    ferry_jid_bare_of(from, bare, sizeof bare);
    char *number = sms_number_of(sms, bare);
    int user = number != NULL;
    free(number);
    if (strcmp(type, "subscribe") == 0) {
        send_presence(sms, user ? "subscribed" : "unsubscribed", from, me);
        if (user)
            send_presence(sms, NULL, from, me);
    } else if (strcmp(type, "probe") == 0 && user) {
        send_presence(sms, NULL, from, me);
    } else if (strcmp(type, "unsubscribe") == 0) {
        send_presence(sms, "unsubscribed", from, me);
    }
}

static void sms_disco_info(void *self, xmpp_stanza_t *query)
{
    (void)self;
    ferry_disco_feature(query, NS_REGISTER);
    ferry_disco_feature(query, NS_GATEWAY);
    ferry_disco_feature(query, NS_RECEIPTS);
}

/* disco#info on a phone's JID: a client reached by SMS. */
static int answer_number_disco(sms_t *sms, xmpp_stanza_t *iq)
{
    xmpp_stanza_t *q;
    xmpp_stanza_t *res =
        ferry_iq_result(iq, "http://jabber.org/protocol/disco#info", &q);
    ferry_disco_identity(q, "client", "sms", NULL);
    ferry_disco_feature(q, "http://jabber.org/protocol/disco#info");
    ferry_disco_feature(q, NS_RECEIPTS);
    ferry_component_send_release(sms->comp, res);
    return 1;
}

static int sms_on_iq(void *self, xmpp_stanza_t *iq)
{
    sms_t *sms = self;
    const char *type = xmpp_stanza_get_type(iq);
    if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return 0;
    ferry_jid_t to;
    if (ferry_jid_parse(xmpp_stanza_get_to(iq), &to) != 0)
        return 0;
    if (!to.local[0])
        return sms_on_register_iq(sms, iq);
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(
        iq, "query", "http://jabber.org/protocol/disco#info");
    char number[PHONE_MAX];
    const char *why;
    if (q && strcmp(type, "get") == 0 &&
        sms_phone_normalize(to.local, sms->country_code, number, &why) == 0)
        return answer_number_disco(sms, iq);
    return 0;
}

/* ---- config ---- */

static int read_users(sms_t *sms, const ferry_conf_t *conf)
{
    const ferry_conf_t *list;
    int rc = ferry_conf_array(conf, "users", FERRY_CONF_OPTIONAL, &list);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    int bad = 0;
    size_t n = ferry_conf_count(list);
    sms->users = ferry_calloc(n ? n : 1, sizeof *sms->users);
    for (size_t i = 0; i < n; i++) {
        const ferry_conf_t *t = ferry_conf_value_at(list, i);
        const char *jid = NULL, *number = NULL;
        if (!ferry_conf_is_table(t)) {
            ferry_conf_error(conf, "users", "expected [[...users]] tables");
            return -1;
        }
        bad |= ferry_conf_string(t, "jid", FERRY_CONF_REQUIRED, &jid) != 0;
        bad |= ferry_conf_string(t, "number", FERRY_CONF_REQUIRED, &number) != 0;
        if (!jid || !number)
            continue;
        ferry_jid_t j;
        char e164[PHONE_MAX];
        const char *why;
        if (ferry_jid_parse(jid, &j) != 0 || !j.local[0] || j.resource[0]) {
            ferry_conf_error(t, "jid", "\"%s\" is not a bare JID", jid);
            bad = 1;
            continue;
        }
        if (sms_phone_normalize(number, NULL, e164, &why) != 0) {
            ferry_conf_error(t, "number", "\"%s\": %s", number, why);
            bad = 1;
            continue;
        }
        char bare[2100];
        ferry_jid_bare(&j, bare, sizeof bare);
        for (size_t k = 0; k < sms->nusers; k++)
            if (strcmp(sms->users[k].number, e164) == 0 || strcmp(sms->users[k].jid, bare) == 0) {
                ferry_conf_error(t, NULL, "%s / %s is listed twice", bare, e164);
                bad = 1;
            }
        sms->users[sms->nusers].jid = ferry_strdup(bare);
        sms->users[sms->nusers].number = ferry_strdup(e164);
        sms->nusers++;
    }
    return bad ? -1 : 0;
}

static int read_config(sms_t *sms, const ferry_conf_t *conf)
{
    static const char *const providers[] = {"twilio", "telnyx", NULL};
    const char *provider = NULL, *api_url = NULL, *cc = NULL;
    int bad = 0;
    if (ferry_conf_enum(conf, "provider", FERRY_CONF_REQUIRED, providers, &provider) != 0)
        return -1;
    sms->provider = strcmp(provider, "telnyx") == 0 ? &sms_telnyx : &sms_twilio;
    const char *default_url =
        sms->provider == &sms_twilio ? "https://api.twilio.com" : "https://api.telnyx.com";
    bad |= ferry_conf_string(conf, "api_url", FERRY_CONF_OPTIONAL, &api_url) < 0;
    if (api_url && strncmp(api_url, "http://", 7) != 0 && strncmp(api_url, "https://", 8) != 0) {
        ferry_conf_error(conf, "api_url", "must start with http:// or https://");
        bad = 1;
    }
    sms->api_url = ferry_strdup(api_url ? api_url : default_url);
    size_t n = strlen(sms->api_url);
    while (n > 0 && sms->api_url[n - 1] == '/')
        sms->api_url[--n] = 0;
    bad |= sms->provider->configure(sms, conf) != 0;
    if (ferry_conf_string(conf, "default_country_code", FERRY_CONF_OPTIONAL, &cc) == 0 &&
        (strspn(cc, "0123456789") != strlen(cc) || !*cc || strlen(cc) > 3)) {
        ferry_conf_error(conf, "default_country_code", "1 to 3 digits, without +");
        bad = 1;
    }
    sms->country_code = cc ? ferry_strdup(cc) : NULL;
    sms->rate_limit = 30;
    if (ferry_conf_int(conf, "rate_limit_per_minute", FERRY_CONF_OPTIONAL, &sms->rate_limit) == 0 &&
        (sms->rate_limit < 0 || sms->rate_limit > 100000)) {
        ferry_conf_error(conf, "rate_limit_per_minute", "0 (no limit) to 100000");
        bad = 1;
    }
    bad |= ferry_conf_bool(conf, "allow_registration", FERRY_CONF_OPTIONAL,
                           &sms->allow_registration) < 0;
    sms->timeout = 10.0;
    if (ferry_conf_number(conf, "timeout", FERRY_CONF_OPTIONAL, &sms->timeout) == 0 &&
        sms->timeout < 0.1) {
        ferry_conf_error(conf, "timeout", "must be at least 0.1");
        bad = 1;
    }
    bad |= read_users(sms, conf) != 0;
    return bad ? -1 : 0;
}

/* ---- lifetime ---- */

static void sms_free(sms_t *sms)
{
    if (sms->provider)
        sms->provider->unconfigure(sms);
    free(sms->api_url);
    free(sms->country_code);
    for (size_t i = 0; i < sms->nusers; i++) {
        free(sms->users[i].jid);
        free(sms->users[i].number);
    }
    free(sms->users);
    rates_free(sms);
    ferry_http_outbox_free(sms->sends);
    free(sms);
}

static void *sms_create(ferry_component_t *comp, const ferry_conf_t *conf)
{
    sms_t *sms = ferry_calloc(1, sizeof *sms);
    sms->comp = comp;
    ferry_list_init(&sms->lookups);
    if (read_config(sms, conf) != 0) {
        sms_free(sms);
        return NULL;
    }
    snprintf(sms->route, sizeof sms->route, "/sms/%s/", ferry_component_name(comp));
    sms->sends = ferry_http_outbox_new(comp, &send_handlers, sms);
    return sms;
}

static int sms_start(void *self)
{
    sms_t *sms = self;
    snprintf(sms->status_url, sizeof sms->status_url, "%s%sstatus",
             ferry_component_public_url(sms->comp), sms->route);
    if (ferry_outbox_open(sms->comp, &outbox_handlers, sms) != 0)
        return -1;
    return ferry_http_route_add(ferry_component_http_server(sms->comp), sms->route, 256 * 1024,
                                sms_on_webhook, sms);
}

/* Sends under way get the grace period; the rest stays in the store. */
static void sms_stop(void *self)
{
    sms_t *sms = self;
    ferry_http_route_remove(ferry_component_http_server(sms->comp), sms->route);
    sms_lookups_cancel(sms);
    ferry_http_outbox_stop(sms->sends);
}

static void sms_destroy(void *self)
{
    sms_t *sms = self;
    /* Sends still under way are dropped with sms->sends: their rows stay
     * pending. */
    sms_lookups_cancel(sms);
    sms_free(sms);
}

/* Swaps the settings of FRESH into SMS (and the old ones into FRESH, to be
 * freed); what is under way stays. */
static void swap_settings(sms_t *sms, sms_t *fresh)
{
    sms_t keep = *sms;
    sms->provider = fresh->provider;
    sms->api_url = fresh->api_url;
    sms->account_sid = fresh->account_sid;
    sms->auth_token = fresh->auth_token;
    sms->api_key = fresh->api_key;
    memcpy(sms->public_key, fresh->public_key, sizeof sms->public_key);
    sms->has_public_key = fresh->has_public_key;
    sms->country_code = fresh->country_code;
    sms->rate_limit = fresh->rate_limit;
    sms->allow_registration = fresh->allow_registration;
    sms->timeout = fresh->timeout;
    sms->users = fresh->users;
    sms->nusers = fresh->nusers;
    fresh->provider = keep.provider;
    fresh->api_url = keep.api_url;
    fresh->account_sid = keep.account_sid;
    fresh->auth_token = keep.auth_token;
    fresh->api_key = keep.api_key;
    fresh->country_code = keep.country_code;
    fresh->users = keep.users;
    fresh->nusers = keep.nusers;
    fresh->rates = sms->rates; /* the limit may have changed: start counting anew */
    sms->rates = NULL;
}

static int sms_reload(void *self, const ferry_conf_t *conf, int apply)
{
    sms_t *sms = self;
    sms_t *fresh = ferry_calloc(1, sizeof *fresh);
    fresh->comp = sms->comp;
    int rc = read_config(fresh, conf);
    if (rc == 0 && apply)
        swap_settings(sms, fresh);
    sms_free(fresh);
    return rc == 0 ? 0 : -1;
}

static void sms_metrics(void *self, ferry_metrics_t *m)
{
    sms_t *sms = self;
    ferry_metric(m, "ferry_sms_segments_total", "counter",
                 "SMS segments accepted for sending (GSM-7 153/160, UCS-2 67/70).",
                 (double)sms->segments);
    ferry_metric(m, "ferry_sms_parts_sent_total", "counter",
                 "Provider messages accepted by the provider.", (double)sms->parts_sent);
    ferry_metric(m, "ferry_sms_unknown_recipient_total", "counter",
                 "Incoming SMS to a number no user owns.", (double)sms->unknown_to);
    ferry_metric(m, "ferry_sms_forged_webhooks_total", "counter",
                 "Webhook requests refused for a bad signature.", (double)sms->forged);
}

const ferry_adapter_t ferry_adapter_sms = {
    .name = "sms",
    .gateway_type = "sms",
    .create = sms_create,
    .start = sms_start,
    .stop = sms_stop,
    .destroy = sms_destroy,
    .on_message = sms_on_message,
    .on_presence = sms_on_presence,
    .on_iq = sms_on_iq,
    .disco_info = sms_disco_info,
    .reload = sms_reload,
    .metrics = sms_metrics,
};
