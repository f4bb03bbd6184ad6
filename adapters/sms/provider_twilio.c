/* provider_twilio.c: Twilio's Programmable Messaging API (2010-04-01):
 * sends as form posts with HTTP Basic auth, webhooks as form posts signed
 * with X-Twilio-Signature (HMAC-SHA1 of the URL and the sorted parameters,
 * keyed with the auth token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ferry/alloc.h"
#include "form.h"
#include "sms.h"

static int twilio_configure(sms_t *sms, const ferry_conf_t *conf)
{
    const char *sid = NULL;
    int bad = ferry_conf_string(conf, "account_sid", FERRY_CONF_REQUIRED, &sid) != 0;
    if (sid && (strncmp(sid, "AC", 2) != 0 || strpbrk(sid, "/?#&% "))) {
        ferry_conf_error(conf, "account_sid", "a Twilio account SID starts with AC");
        bad = 1;
    }
    bad |= ferry_conf_secret(conf, "auth_token", FERRY_CONF_REQUIRED, &sms->auth_token) != 0;
    sms->account_sid = sid ? ferry_strdup(sid) : NULL;
    return bad ? -1 : 0;
}

static void twilio_unconfigure(sms_t *sms)
{
    free(sms->account_sid);
    free(sms->auth_token);
}

static ferry_http_request_t *twilio_send(sms_t *sms, const sms_out_t *out)
{
    char url[1500];
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", sms->api_url,
             sms->account_sid);
    ferry_http_request_t *req =
        ferry_http_request_new(ferry_component_http_client(sms->comp), "POST", url);
    if (!req)
        return NULL;
    form_t f = {0};
    sms_form_add(&f, "To", out->to);
    sms_form_add(&f, "From", out->from);
    if (*out->body || out->nmedia == 0)
        sms_form_add(&f, "Body", out->body);
    for (size_t i = 0; i < out->nmedia; i++)
        sms_form_add(&f, "MediaUrl", out->media[i]);
    sms_form_add(&f, "StatusCallback", out->status_url);
    char *body = sms_form_encode(&f);
    sms_form_free(&f);
    ferry_http_request_basic_auth(req, sms->account_sid, sms->auth_token);
    ferry_http_request_header(req, "Content-Type", "application/x-www-form-urlencoded");
    ferry_http_request_body(req, body, strlen(body));
    free(body);
    return req;
}

static void twilio_sent(const ferry_http_response_t *resp, sms_sent_t *sent)
{
    memset(sent, 0, sizeof *sent);
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *sid = json_string_value(json_object_get(doc, "sid"));
    json_t *code = json_object_get(doc, "code");
    const char *message = json_string_value(json_object_get(doc, "message"));
    if (resp->status >= 200 && resp->status < 300 && sid)
        snprintf(sent->id, sizeof sent->id, "%s", sid);
    if (json_is_integer(code))
        snprintf(sent->code, sizeof sent->code, "%lld", (long long)json_integer_value(code));
    snprintf(sent->text, sizeof sent->text, "%s", message ? message : "");
    json_decref(doc);
}

static ferry_http_request_t *twilio_lookup(sms_t *sms, const char *number)
{
    form_t f = {0};
    sms_form_add(&f, "PhoneNumber", number);
    char *query = sms_form_encode(&f);
    sms_form_free(&f);
    char url[1600];
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/IncomingPhoneNumbers.json?%s",
             sms->api_url, sms->account_sid, query);
    free(query);
    ferry_http_request_t *req =
        ferry_http_request_new(ferry_component_http_client(sms->comp), "GET", url);
    if (req)
        ferry_http_request_basic_auth(req, sms->account_sid, sms->auth_token);
    return req;
}

static int twilio_owned(const ferry_http_response_t *resp, const char *number)
{
    if (resp->status != 200)
        return -1;
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    int rc = sms_list_has_number(json_object_get(doc, "incoming_phone_numbers"), number);
    json_decref(doc);
    return rc;
}

/* A stable sort by name (equal names keep their order): insertion sort,
 * for the few dozen parameters a webhook has. */
static void sort_by_name(form_t *f)
{
    for (size_t i = 1; i < f->n; i++) {
        form_field_t x = f->fields[i];
        size_t j = i;
        while (j > 0 && strcmp(f->fields[j - 1].name, x.name) > 0) {
            f->fields[j] = f->fields[j - 1];
            j--;
        }
        f->fields[j] = x;
    }
}

/* base64(HMAC-SHA1(token, url + name1 + value1 + ...)) over sorted names. */
static char *twilio_signature(const char *token, const char *url, form_t *f)
{
    sort_by_name(f);
    size_t len = strlen(url) + 1;
    for (size_t i = 0; i < f->n; i++)
        len += strlen(f->fields[i].name) + strlen(f->fields[i].value);
    char *data = ferry_malloc(len);
    strcpy(data, url);
    for (size_t i = 0; i < f->n; i++) {
        strcat(data, f->fields[i].name);
        strcat(data, f->fields[i].value);
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha1(), token, (int)strlen(token), (unsigned char *)data, strlen(data), mac,
         &mac_len);
    free(data);
    char *b64 = ferry_malloc(4 * ((mac_len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
    return b64;
}

static int twilio_authentic(sms_t *sms, ferry_http_exchange_t *ex)
{
    const char *given = ferry_http_exchange_header(ex, "X-Twilio-Signature");
    if (!given)
        return 0;
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    form_t f;
    if (sms_form_parse(&f, body, len) != 0)
        return 0;
    /* The URL Twilio called: the public one, as configured. */
    const char *query = ferry_http_exchange_query(ex);
    char url[2400];
    snprintf(url, sizeof url, "%s%s%s%s", ferry_component_public_url(sms->comp),
             ferry_http_exchange_path(ex), *query ? "?" : "", query);
    char *expected = twilio_signature(sms->auth_token, url, &f);
    sms_form_free(&f);
    size_t n = strlen(expected);
    int ok = strlen(given) == n && CRYPTO_memcmp(given, expected, n) == 0;
    free(expected);
    return ok;
}

static void copy_number(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int twilio_webhook(ferry_http_exchange_t *ex, sms_in_t *in, sms_report_t *report)
{
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    form_t f;
    if (sms_form_parse(&f, body, len) != 0)
        return -1;
    const char *sid = sms_form_get(&f, "MessageSid");
    if (!sid)
        sid = sms_form_get(&f, "SmsSid");
    const char *text = sms_form_get(&f, "Body");
    const char *status = sms_form_get(&f, "MessageStatus");
    int kind = SMS_HOOK_IGNORED;
    if (!sid) {
        kind = -1;
    } else if (text) {
        kind = SMS_HOOK_MESSAGE;
        snprintf(in->id, sizeof in->id, "%s", sid);
        copy_number(in->from, sizeof in->from, sms_form_get(&f, "From"));
        copy_number(in->to, sizeof in->to, sms_form_get(&f, "To"));
        in->text = ferry_strdup(text);
        const char *num = sms_form_get(&f, "NumMedia");
        long nmedia = num ? strtol(num, NULL, 10) : 0;
        /* MediaUrl0 up: only the first SMS_MAX_MEDIA are looked at, so that
         * a NumMedia of billions is not billions of lookups. */
        for (long i = 0; i < nmedia && i < SMS_MAX_MEDIA; i++) {
            char name[32];
            snprintf(name, sizeof name, "MediaUrl%ld", i);
            const char *url = sms_form_get(&f, name);
            if (url)
                in->media[in->nmedia++] = ferry_strdup(url);
        }
    } else if (status) {
        kind = SMS_HOOK_REPORT;
        snprintf(report->id, sizeof report->id, "%s", sid);
        report->state = strcmp(status, "delivered") == 0 ? SMS_REPORT_DELIVERED
                        : strcmp(status, "undelivered") == 0 || strcmp(status, "failed") == 0
                            ? SMS_REPORT_FAILED
                            : SMS_REPORT_OTHER;
        const char *code = sms_form_get(&f, "ErrorCode");
        const char *msg = sms_form_get(&f, "ErrorMessage");
        snprintf(report->code, sizeof report->code, "%s", code ? code : "");
        snprintf(report->text, sizeof report->text, "%s", msg ? msg : status);
    }
    sms_form_free(&f);
    return kind;
}

static void twilio_answer(ferry_http_exchange_t *ex)
{
    static const char twiml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";
    ferry_http_exchange_respond(ex, 200, "text/xml", twiml, sizeof twiml - 1);
}

const sms_provider_t sms_twilio = {
    .name = "twilio",
    .configure = twilio_configure,
    .unconfigure = twilio_unconfigure,
    .send = twilio_send,
    .sent = twilio_sent,
    .lookup = twilio_lookup,
    .owned = twilio_owned,
    .authentic = twilio_authentic,
    .webhook = twilio_webhook,
    .answer = twilio_answer,
};
