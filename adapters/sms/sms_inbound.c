/* sms_inbound.c: the provider's webhooks (POST /sms/COMPONENT/inbound and
 * /status): incoming SMS become chat messages to the user who owns the
 * number, delivery reports become receipts or error messages. Both are
 * stored before the provider gets its 200, and a replay of the same
 * message or report is stored once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "sms.h"

typedef struct pending_answer {
    sms_t *sms;
    ferry_http_exchange_t *ex;
} pending_answer_t;

static void respond_text(ferry_http_exchange_t *ex, unsigned status, const char *text)
{
    char body[256];
    snprintf(body, sizeof body, "%u %s\n", status, text);
    ferry_http_exchange_respond(ex, status, "text/plain; charset=utf-8", body, strlen(body));
}

static void on_committed(void *arg, int ok)
{
    pending_answer_t *pa = arg;
    if (ok) {
        pa->sms->provider->answer(pa->ex);
    } else {
        ferry_http_exchange_add_header(pa->ex, "Retry-After", "30");
        respond_text(pa->ex, 503, "Service Unavailable: could not store; retry later");
    }
    free(pa);
}

/* Answers once what was stored is committed, so that a 200 is a promise. */
static void answer_when_stored(sms_t *sms, ferry_http_exchange_t *ex)
{
    pending_answer_t *pa = ferry_malloc(sizeof *pa);
    pa->sms = sms;
    pa->ex = ex;
    ferry_outbox_sync(sms->comp, on_committed, pa);
}

/* A sender as a JID local part: E.164, or a short code / alphanumeric id. */
static int sender_local(const char *from, char out[PHONE_MAX])
{
    const char *why;
    if (sms_phone_normalize(from, NULL, out, &why) == 0)
        return 0;
    size_t n = strlen(from);
    if (n == 0 || n >= PHONE_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = from[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return -1;
    }
    memcpy(out, from, n + 1);
    return 0;
}

static xmpp_stanza_t *incoming_chat(sms_t *sms, const sms_in_t *in, const char *from_local,
                                    const char *owner)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(sms->comp);
    char from[PHONE_MAX + 1100], id[160];
    sms_number_jid(sms, from_local, from, sizeof from);
    snprintf(id, sizeof id, "sms-%s", in->id);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", owner, id);
    xmpp_stanza_set_from(msg, from);
    size_t len = strlen(in->text) + 1;
    for (size_t i = 0; i < in->nmedia; i++)
        len += strlen(in->media[i]) + 1;
    char *body = ferry_malloc(len);
    strcpy(body, in->text);
    for (size_t i = 0; i < in->nmedia; i++) {
        if (*body)
            strcat(body, "\n");
        strcat(body, in->media[i]);
    }
    ferry_stanza_add_text(msg, "body", body);
    free(body);
    if (in->nmedia) {
        xmpp_stanza_t *x = ferry_stanza_add(msg, "x", NS_OOB);
        ferry_stanza_add_text(x, "url", in->media[0]);
    }
    return msg;
}

static void on_message(sms_t *sms, ferry_http_exchange_t *ex, sms_in_t *in)
{
    const char *scope = ferry_component_name(sms->comp);
    char from[PHONE_MAX], to[PHONE_MAX];
    const char *why;
    char *owner = NULL;
    if (sender_local(in->from, from) != 0 || sms_phone_normalize(in->to, NULL, to, &why) != 0 ||
        !(owner = sms_owner_of(sms, to))) {
        /* Answer 200 all the same: the provider would retry forever. */
        sms->unknown_to++;
        ferry_log_warn(scope, "incoming SMS %s for a number no user owns; dropped", in->id);
        sms->provider->answer(ex);
        return;
    }
    /* The core's one rule for text from outside (ferry/text.h). */
    ferry_xml_text_clean(&in->text);
    for (size_t i = 0; i < in->nmedia; i++)
        ferry_xml_text_clean(&in->media[i]);
    xmpp_stanza_t *msg = incoming_chat(sms, in, from, owner);
    char dedup[200];
    snprintf(dedup, sizeof dedup, "sms %s", in->id);
    int rc = ferry_xmpp_put(sms->comp, dedup, msg);
    xmpp_stanza_release(msg);
    free(owner);
    if (rc < 0) {
        ferry_http_exchange_add_header(ex, "Retry-After", "30");
        respond_text(ex, 503, "Service Unavailable: could not store; retry later");
        return;
    }
    if (rc > 0)
        ferry_log_info(scope, "incoming SMS %s again (a replay): delivered once", in->id);
    answer_when_stored(sms, ex);
}

/* The report record: sender JID, number, original id, receipt flag. */
enum { P_SENDER, P_TO, P_ID, P_RECEIPT, P_FIELDS };

static int read_report_record(char *rec, const char **f)
{
    for (int i = 0; i < P_FIELDS; i++) {
        f[i] = rec;
        char *nl = strchr(rec, '\n');
        if (!nl)
            return i == P_FIELDS - 1 ? 0 : -1;
        *nl = 0;
        rec = nl + 1;
    }
    return 0;
}

static xmpp_stanza_t *report_stanza(sms_t *sms, const sms_report_t *report, const char **f)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(sms->comp);
    char number_jid[PHONE_MAX + 1100];
    sms_number_jid(sms, f[P_TO], number_jid, sizeof number_jid);
    if (report->state == SMS_REPORT_DELIVERED) {
        if (f[P_RECEIPT][0] != '1' || !*f[P_ID])
            return NULL;
        char *rid = xmpp_uuid_gen(ctx);
        xmpp_stanza_t *msg = xmpp_message_new(ctx, NULL, f[P_SENDER], rid);
        xmpp_free(ctx, rid);
        xmpp_stanza_set_from(msg, number_jid);
        xmpp_stanza_set_id(ferry_stanza_add(msg, "received", NS_RECEIPTS), f[P_ID]);
        return msg;
    }
    xmpp_stanza_t *orig = xmpp_message_new(ctx, "chat", number_jid, *f[P_ID] ? f[P_ID] : NULL);
    xmpp_stanza_set_from(orig, f[P_SENDER]);
    char text[512];
    snprintf(text, sizeof text, "SMS not delivered%s%s%s%s", report->code[0] ? ": provider error " : "",
             report->code, report->text[0] ? ": " : "", report->text);
    xmpp_stanza_t *err = ferry_stanza_error_reply(orig, "cancel", "recipient-unavailable", text);
    xmpp_stanza_release(orig);
    return err;
}

/* Acts on a final report whose send record is stored: 0 done (or nothing
 * to do), 1 no record yet, -1 store error. */
static int apply_report(sms_t *sms, const sms_report_t *report)
{
    char *rec = NULL;
    if (ferry_setting_get(sms->comp, "report", report->id, &rec) != 0)
        return 1;
    const char *f[P_FIELDS];
    xmpp_stanza_t *st = read_report_record(rec, f) == 0 ? report_stanza(sms, report, f) : NULL;
    int rc = 0;
    if (st) {
        char dedup[200];
        snprintf(dedup, sizeof dedup, "report %s %d", report->id, (int)report->state);
        rc = ferry_xmpp_put(sms->comp, dedup, st) < 0 ? -1 : 0;
        xmpp_stanza_release(st);
    }
    free(rec);
    if (rc == 0)
        ferry_setting_del(sms->comp, "report", report->id);
    return rc;
}

/* A report can overtake the answer to the send it reports on (the provider
 * sends both at once): keep it until the answer has stored the record. */
static void keep_early(sms_t *sms, const sms_report_t *report)
{
    char text[sizeof report->text], value[400];
    snprintf(text, sizeof text, "%s", report->text);
    for (char *p = text; *p; p++)
        if (*p == '\n')
            *p = ' '; /* fields are separated by newlines */
    snprintf(value, sizeof value, "%d\n%s\n%s", (int)report->state, report->code, text);
    ferry_setting_put(sms->comp, "early", report->id, value);
}

void sms_early_report(sms_t *sms, const char *id)
{
    char *value = NULL;
    if (ferry_setting_get(sms->comp, "early", id, &value) != 0)
        return;
    sms_report_t report = {0};
    snprintf(report.id, sizeof report.id, "%s", id);
    char *code = strchr(value, '\n');
    char *text = code ? strchr(code + 1, '\n') : NULL;
    if (code && text) {
        *code++ = 0;
        *text++ = 0;
        report.state = (enum sms_report_state)atoi(value);
        snprintf(report.code, sizeof report.code, "%s", code);
        snprintf(report.text, sizeof report.text, "%s", text);
        if (apply_report(sms, &report) == 0)
            ferry_setting_del(sms->comp, "early", id);
    }
    free(value);
}

static void on_report(sms_t *sms, ferry_http_exchange_t *ex, const sms_report_t *report)
{
    if (report->state == SMS_REPORT_OTHER) {
        sms->provider->answer(ex); /* queued, sent: nothing to tell yet */
        return;
    }
    int rc = apply_report(sms, report);
    if (rc < 0) {
        respond_text(ex, 503, "Service Unavailable: could not store; retry later");
        return;
    }
    if (rc == 1) {
        ferry_log_info(ferry_component_name(sms->comp),
                       "delivery report %s before the send's answer: kept", report->id);
        keep_early(sms, report);
    }
    answer_when_stored(sms, ex);
}

void sms_on_webhook(void *arg, ferry_http_exchange_t *ex)
{
    sms_t *sms = arg;
    const char *rest = ferry_http_exchange_rest(ex);
    if (!rest || (strcmp(rest, "inbound") != 0 && strcmp(rest, "status") != 0)) {
        respond_text(ex, 404, "Not Found: use .../inbound or .../status");
        return;
    }
    if (strcmp(ferry_http_exchange_method(ex), "POST") != 0) {
        ferry_http_exchange_add_header(ex, "Allow", "POST");
        respond_text(ex, 405, "Method Not Allowed: use POST");
        return;
    }
    if (!sms->provider->authentic(sms, ex)) {
        sms->forged++;
        ferry_log_warn(ferry_component_name(sms->comp), "webhook with a bad or missing %s "
                       "signature refused", sms->provider->name);
        respond_text(ex, 403, "Forbidden: bad signature");
        return;
    }
    sms_in_t in = {0};
    sms_report_t report = {0};
    int kind = sms->provider->webhook(ex, &in, &report);
    if (kind < 0)
        respond_text(ex, 400, "Bad Request: not a message or delivery report");
    else if (kind == SMS_HOOK_MESSAGE)
        on_message(sms, ex, &in);
    else if (kind == SMS_HOOK_REPORT)
        on_report(sms, ex, &report);
    else
        sms->provider->answer(ex);
    free(in.text);
    for (size_t i = 0; i < in.nmedia; i++)
        free(in.media[i]);
}
