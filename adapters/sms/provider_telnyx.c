/* provider_telnyx.c: Telnyx's Messaging API v2: JSON with a bearer key;
 * webhooks are JSON events signed with Ed25519 over "timestamp|body"
 * (headers telnyx-signature-ed25519 and telnyx-timestamp), accepted within
 * five minutes of their timestamp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ferry/alloc.h"
#include "form.h"
#include "sms.h"

#define TOLERANCE_S 300

static int decode_base64(const char *in, unsigned char *out, size_t cap, size_t *len)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 || n / 4 * 3 > cap + 2)
        return -1;
    unsigned char *buf = ferry_malloc(n / 4 * 3 + 1);
    int got = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (got < 0) {
        free(buf);
        return -1;
    }
    while (n > 0 && in[--n] == '=')
        got--; /* EVP_DecodeBlock counts padding as zero bytes */
    if ((size_t)got > cap) {
        free(buf);
        return -1;
    }
    memcpy(out, buf, (size_t)got);
    *len = (size_t)got;
    free(buf);
    return 0;
}

static int telnyx_configure(sms_t *sms, const ferry_conf_t *conf)
{
    int bad = ferry_conf_secret(conf, "api_key", FERRY_CONF_REQUIRED, &sms->api_key) != 0;
    const char *pk = NULL;
    if (ferry_conf_string(conf, "public_key", FERRY_CONF_REQUIRED, &pk) != 0) {
        bad = 1;
    } else {
        size_t len = 0;
        if (decode_base64(pk, sms->public_key, sizeof sms->public_key, &len) != 0 || len != 32) {
            ferry_conf_error(conf, "public_key", "expected the base64 of a 32-byte Ed25519 key");
            bad = 1;
        } else {
            sms->has_public_key = 1;
        }
    }
    return bad ? -1 : 0;
}

static void telnyx_unconfigure(sms_t *sms) { free(sms->api_key); }

static void bearer(ferry_http_request_t *req, const char *key)
{
    char auth[1100];
    snprintf(auth, sizeof auth, "Bearer %s", key);
    ferry_http_request_header(req, "Authorization", auth);
}

static ferry_http_request_t *telnyx_send(sms_t *sms, const sms_out_t *out)
{
    char url[1200];
    snprintf(url, sizeof url, "%s/v2/messages", sms->api_url);
    ferry_http_request_t *req =
        ferry_http_request_new(ferry_component_http_client(sms->comp), "POST", url);
    if (!req)
        return NULL;
    json_t *doc = json_pack("{s:s, s:s, s:s}", "from", out->from, "to", out->to, "webhook_url",
                            out->status_url);
    if (*out->body || out->nmedia == 0)
        json_object_set_new(doc, "text", json_string(out->body));
    if (out->nmedia) {
        json_t *media = json_array();
        for (size_t i = 0; i < out->nmedia; i++)
            json_array_append_new(media, json_string(out->media[i]));
        json_object_set_new(doc, "media_urls", media);
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    bearer(req, sms->api_key);
    ferry_http_request_header(req, "Content-Type", "application/json");
    ferry_http_request_body(req, body, strlen(body));
    free(body);
    return req;
}

static void telnyx_sent(const ferry_http_response_t *resp, sms_sent_t *sent)
{
    memset(sent, 0, sizeof *sent);
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(json_object_get(doc, "data"), "id"));
    if (resp->status >= 200 && resp->status < 300 && id)
        snprintf(sent->id, sizeof sent->id, "%s", id);
    json_t *err = json_array_get(json_object_get(doc, "errors"), 0);
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *title = json_string_value(json_object_get(err, "title"));
    const char *detail = json_string_value(json_object_get(err, "detail"));
    snprintf(sent->code, sizeof sent->code, "%s", code ? code : "");
    snprintf(sent->text, sizeof sent->text, "%s%s%s", title ? title : "",
             title && detail ? ": " : "", detail ? detail : "");
    json_decref(doc);
}

static ferry_http_request_t *telnyx_lookup(sms_t *sms, const char *number)
{
    form_t f = {0};
    /* Telnyx's filter takes digits only ("+" would match nothing). */
    sms_form_add(&f, "filter[phone_number]", number[0] == '+' ? number + 1 : number);
    char *query = sms_form_encode(&f);
    sms_form_free(&f);
    char url[1600];
    snprintf(url, sizeof url, "%s/v2/phone_numbers?%s", sms->api_url, query);
    free(query);
    ferry_http_request_t *req =
        ferry_http_request_new(ferry_component_http_client(sms->comp), "GET", url);
    if (req)
        bearer(req, sms->api_key);
    return req;
}

static int telnyx_owned(const ferry_http_response_t *resp, const char *number)
{
    if (resp->status != 200)
        return -1;
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    int rc = sms_list_has_number(json_object_get(doc, "data"), number);
    json_decref(doc);
    return rc;
}

static int telnyx_authentic(sms_t *sms, ferry_http_exchange_t *ex)
{
    const char *sig64 = ferry_http_exchange_header(ex, "telnyx-signature-ed25519");
    const char *ts = ferry_http_exchange_header(ex, "telnyx-timestamp");
    if (!sig64 || !ts || !sms->has_public_key)
        return 0;
    char *end;
    long long when = strtoll(ts, &end, 10);
    long long now = (long long)time(NULL);
    if (*end || *ts == 0 || when < now - TOLERANCE_S || when > now + TOLERANCE_S)
        return 0; /* stale or from the future: a replay */
    unsigned char sig[64];
    size_t sig_len = 0;
    if (decode_base64(sig64, sig, sizeof sig, &sig_len) != 0 || sig_len != 64)
        return 0;
    size_t body_len;
    const char *body = ferry_http_exchange_body(ex, &body_len);
    size_t ts_len = strlen(ts);
    unsigned char *signed_data = ferry_malloc(ts_len + 1 + body_len);
    memcpy(signed_data, ts, ts_len);
    signed_data[ts_len] = '|';
    memcpy(signed_data + ts_len + 1, body, body_len);
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sms->public_key, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = key && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(md, sig, 64, signed_data, ts_len + 1 + body_len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    free(signed_data);
    return ok;
}

static void copy_phone(char *dst, size_t cap, json_t *party)
{
    const char *n = json_string_value(json_object_get(party, "phone_number"));
    snprintf(dst, cap, "%s", n ? n : "");
}

static int telnyx_webhook(ferry_http_exchange_t *ex, sms_in_t *in, sms_report_t *report)
{
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *data = json_object_get(doc, "data");
    const char *type = json_string_value(json_object_get(data, "event_type"));
    json_t *payload = json_object_get(data, "payload");
    const char *id = json_string_value(json_object_get(payload, "id"));
    int kind = SMS_HOOK_IGNORED;
    if (!type || !id) {
        kind = -1;
    } else if (strcmp(type, "message.received") == 0) {
        kind = SMS_HOOK_MESSAGE;
        snprintf(in->id, sizeof in->id, "%s", id);
        copy_phone(in->from, sizeof in->from, json_object_get(payload, "from"));
        copy_phone(in->to, sizeof in->to, json_array_get(json_object_get(payload, "to"), 0));
        const char *text = json_string_value(json_object_get(payload, "text"));
        in->text = ferry_strdup(text ? text : "");
        json_t *media = json_object_get(payload, "media");
        for (size_t i = 0; i < json_array_size(media) && in->nmedia < SMS_MAX_MEDIA; i++) {
            const char *url = json_string_value(json_object_get(json_array_get(media, i), "url"));
            if (url)
                in->media[in->nmedia++] = ferry_strdup(url);
        }
    } else if (strcmp(type, "message.finalized") == 0 || strcmp(type, "message.sent") == 0) {
        kind = SMS_HOOK_REPORT;
        snprintf(report->id, sizeof report->id, "%s", id);
        json_t *to = json_array_get(json_object_get(payload, "to"), 0);
        const char *status = json_string_value(json_object_get(to, "status"));
        if (!status)
            status = "";
        report->state = strcmp(status, "delivered") == 0 ? SMS_REPORT_DELIVERED
                        : strstr(status, "failed") || strcmp(status, "delivery_unconfirmed") == 0
                            ? SMS_REPORT_FAILED
                            : SMS_REPORT_OTHER;
        json_t *err = json_array_get(json_object_get(payload, "errors"), 0);
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *title = json_string_value(json_object_get(err, "title"));
        snprintf(report->code, sizeof report->code, "%s", code ? code : "");
        snprintf(report->text, sizeof report->text, "%s", title ? title : status);
    }
    json_decref(doc);
    return kind;
}

static void telnyx_answer(ferry_http_exchange_t *ex)
{
    ferry_http_exchange_respond(ex, 200, "text/plain", "", 0);
}

const sms_provider_t sms_telnyx = {
    .name = "telnyx",
    .configure = telnyx_configure,
    .unconfigure = telnyx_unconfigure,
    .send = telnyx_send,
    .sent = telnyx_sent,
    .lookup = telnyx_lookup,
    .owned = telnyx_owned,
    .authentic = telnyx_authentic,
    .webhook = telnyx_webhook,
    .answer = telnyx_answer,
};
