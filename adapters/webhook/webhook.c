/* webhook.c: the webhook adapter. Each [components.X.endpoints.NAME] is a
 * JID NAME@domain: messages to it are POSTed to its url (JSON or Slack
 * format, optionally signed per Standard Webhooks), and what is POSTed to
 * /hooks/X/NAME reaches its deliver_to JIDs as chat messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ferry/ferry.h"

#define MAX_INBOUND_BODY (64 * 1024)
#define NS_RECEIPTS "urn:xmpp:receipts"

typedef struct endpoint {
    char *name;
    char *url;               /* NULL: takes no messages from XMPP */
    int slack;
    unsigned char *sign_key; /* Standard Webhooks key, NULL when unsigned */
    size_t sign_key_len;
    char *token;
    char *github_secret;
    char **deliver_to;
    char **allow;
} endpoint_t;

typedef struct settings {
    endpoint_t *endpoints;
    size_t nendpoints;
    int64_t max_attempts;
    double retry_delay, retry_delay_max, timeout;
} settings_t;

typedef struct webhook webhook_t;

/* One message from XMPP on its way to a receiver. */
typedef struct delivery {
    webhook_t *wh;
    struct delivery *prev, *next;
    xmpp_stanza_t *stanza;   /* the original, for the receipt or the error */
    char *endpoint;
    char *payload;           /* fixed at arrival: retries send the same bytes */
    char msg_id[64];         /* webhook-id, stable across retries */
    int attempts;
    ferry_http_request_t *req;
    uv_timer_t timer;
} delivery_t;

struct webhook {
    ferry_component_t *comp;
    settings_t s;
    delivery_t *deliveries;
    size_t in_flight;
    int stopping;
    char route[300];
};

static const char *const formats[] = {"json", "slack", NULL};

/* ---- config ---- */

static void endpoint_free(endpoint_t *ep)
{
    free(ep->name);
    free(ep->url);
    free(ep->sign_key);
    free(ep->token);
    free(ep->github_secret);
    ferry_conf_strings_free(ep->deliver_to);
    ferry_conf_strings_free(ep->allow);
}

static void settings_free(settings_t *s)
{
    for (size_t i = 0; i < s->nendpoints; i++)
        endpoint_free(&s->endpoints[i]);
    free(s->endpoints);
    memset(s, 0, sizeof *s);
}

/* "whsec_" + base64 is the Standard Webhooks form; anything else is used as
 * the raw key. */
static int read_sign_key(const ferry_conf_t *t, endpoint_t *ep)
{
    char *secret = NULL;
    int rc = ferry_conf_secret(t, "signing_secret", FERRY_CONF_OPTIONAL, &secret);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (strncmp(secret, "whsec_", 6) != 0) {
        ep->sign_key_len = strlen(secret);
        ep->sign_key = (unsigned char *)secret;
        return 0;
    }
    const char *b64 = secret + 6;
    size_t len = strlen(b64);
    unsigned char *key = malloc(len / 4 * 3 + 3);
    int n = len % 4 == 0 && len > 0 ? EVP_DecodeBlock(key, (const unsigned char *)b64, (int)len) : -1;
    if (n < 0) {
        free(secret);
        free(key);
        ferry_conf_error(t, "signing_secret", "not valid base64 after \"whsec_\"");
        return -1;
    }
    while (len > 0 && b64[--len] == '=')
        n--; /* EVP_DecodeBlock counts padding as zero bytes */
    free(secret);
    ep->sign_key = key;
    ep->sign_key_len = (size_t)n;
    return 0;
}

static int valid_local(const char *name)
{
    if (!*name || strlen(name) > 1023)
        return 0;
    for (const char *p = name; *p; p++)
        if (strchr("\"&'/:<>@ ", *p) || (unsigned char)*p < 0x21 || (*p >= 'A' && *p <= 'Z'))
            return 0;
    return 1;
}

static int check_jids(const ferry_conf_t *t, const char *key, char **list)
{
    ferry_jid_t j;
    for (char **p = list; p && *p; p++) {
        if (ferry_jid_parse(*p, &j) != 0 || j.resource[0]) {
            ferry_conf_error(t, key, "\"%s\" is not a bare JID or domain", *p);
            return -1;
        }
    }
    return 0;
}

static int read_endpoint(const ferry_conf_t *t, const char *name, endpoint_t *ep)
{
    int bad = 0;
    const char *url = NULL, *format = "json";
    ep->name = strdup(name);
    if (!valid_local(name)) {
        ferry_conf_error(t, NULL, "endpoint name \"%s\" cannot be a JID local part "
                                  "(lowercase, no spaces or \"&'/:<>@)", name);
        bad = 1;
    }
    if (ferry_conf_string(t, "url", FERRY_CONF_OPTIONAL, &url) < 0)
        bad = 1;
    else if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        ferry_conf_error(t, "url", "must start with http:// or https://");
        bad = 1;
    }
    ep->url = url ? strdup(url) : NULL;
    bad |= ferry_conf_enum(t, "format", FERRY_CONF_OPTIONAL, formats, &format) < 0;
    ep->slack = strcmp(format, "slack") == 0;
    bad |= read_sign_key(t, ep) < 0;
    bad |= ferry_conf_secret(t, "token", FERRY_CONF_OPTIONAL, &ep->token) < 0;
    bad |= ferry_conf_secret(t, "github_secret", FERRY_CONF_OPTIONAL, &ep->github_secret) < 0;
    bad |= ferry_conf_strings(t, "deliver_to", FERRY_CONF_OPTIONAL, &ep->deliver_to) < 0;
    bad |= ferry_conf_strings(t, "allow", FERRY_CONF_OPTIONAL, &ep->allow) < 0;
    bad |= check_jids(t, "deliver_to", ep->deliver_to) < 0;
    bad |= check_jids(t, "allow", ep->allow) < 0;
    if ((ep->token || ep->github_secret) && !(ep->deliver_to && ep->deliver_to[0])) {
        ferry_conf_error(t, NULL, "inbound messages need 'deliver_to' (who receives them)");
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int read_number(const ferry_conf_t *t, const char *key, double *out, double min)
{
    int rc = ferry_conf_number(t, key, FERRY_CONF_OPTIONAL, out);
    if (rc == 0 && *out < min) {
        ferry_conf_error(t, key, "must be at least %g", min);
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

static int read_settings(const ferry_conf_t *conf, settings_t *s)
{
    int bad = 0;
    s->max_attempts = 10;
    s->retry_delay = 1.0;
    s->retry_delay_max = 300.0;
    s->timeout = 10.0;
    if (ferry_conf_int(conf, "max_attempts", FERRY_CONF_OPTIONAL, &s->max_attempts) == 0 &&
        s->max_attempts < 1) {
        ferry_conf_error(conf, "max_attempts", "must be at least 1");
        bad = 1;
    }
    bad |= read_number(conf, "retry_delay", &s->retry_delay, 0.001) < 0;
    bad |= read_number(conf, "retry_delay_max", &s->retry_delay_max, 0.001) < 0;
    bad |= read_number(conf, "timeout", &s->timeout, 0.1) < 0;

    const ferry_conf_t *eps = NULL;
    int rc = ferry_conf_table(conf, "endpoints", FERRY_CONF_REQUIRED, &eps);
    if (rc != 0)
        return -1;
    size_t n = ferry_conf_count(eps);
    s->endpoints = calloc(n ? n : 1, sizeof *s->endpoints);
    for (size_t i = 0; i < n; i++) {
        const char *name = ferry_conf_key_at(eps, i);
        const ferry_conf_t *t = ferry_conf_value_at(eps, i);
        if (!ferry_conf_is_table(t)) {
            ferry_conf_error(eps, name, "expected a table [...endpoints.%s]", name);
            bad = 1;
            continue;
        }
        bad |= read_endpoint(t, name, &s->endpoints[s->nendpoints++]) < 0;
    }
    return bad ? -1 : 0;
}

static endpoint_t *find_endpoint(webhook_t *wh, const char *name)
{
    for (size_t i = 0; i < wh->s.nendpoints; i++)
        if (strcmp(wh->s.endpoints[i].name, name) == 0)
            return &wh->s.endpoints[i];
    return NULL;
}

/* ---- small helpers ---- */

static void rfc3339_now(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *base64(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static void endpoint_jid(webhook_t *wh, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s@%s", name, ferry_component_domain(wh->comp));
}

static xmpp_stanza_t *text_element(xmpp_ctx_t *ctx, const char *name, const char *text)
{
    xmpp_stanza_t *el = xmpp_stanza_new(ctx);
    xmpp_stanza_set_name(el, name);
    xmpp_stanza_t *t = xmpp_stanza_new(ctx);
    xmpp_stanza_set_text(t, text);
    xmpp_stanza_add_child_ex(el, t, 0);
    return el;
}

static void send_chat(webhook_t *wh, const char *from, const char *to, const char *body)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    char *id = xmpp_uuid_gen(ctx);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", to, id);
    xmpp_stanza_set_from(msg, from);
    xmpp_stanza_add_child_ex(msg, text_element(ctx, "body", body), 0);
    ferry_component_send(wh->comp, msg);
    xmpp_stanza_release(msg);
    xmpp_free(ctx, id);
}

/* ---- outbound: XMPP -> HTTP ---- */

static void attempt(delivery_t *d);

static void on_delivery_closed(uv_handle_t *h)
{
    delivery_t *d = h->data;
    xmpp_stanza_release(d->stanza);
    free(d->endpoint);
    free(d->payload);
    free(d);
}

static void delivery_free(delivery_t *d)
{
    webhook_t *wh = d->wh;
    if (d->prev)
        d->prev->next = d->next;
    else
        wh->deliveries = d->next;
    if (d->next)
        d->next->prev = d->prev;
    uv_close((uv_handle_t *)&d->timer, on_delivery_closed);
    if (wh->stopping && !wh->deliveries)
        ferry_component_stopped(wh->comp);
}

static void send_receipt(delivery_t *d)
{
    xmpp_stanza_t *st = d->stanza;
    const char *id = xmpp_stanza_get_id(st);
    if (!id || !xmpp_stanza_get_child_by_name_and_ns(st, "request", NS_RECEIPTS))
        return;
    xmpp_ctx_t *ctx = ferry_component_xmpp(d->wh->comp);
    char *rid = xmpp_uuid_gen(ctx);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, NULL, xmpp_stanza_get_from(st), rid);
    xmpp_stanza_set_from(msg, xmpp_stanza_get_to(st));
    xmpp_stanza_t *received = xmpp_stanza_new(ctx);
    xmpp_stanza_set_name(received, "received");
    xmpp_stanza_set_ns(received, NS_RECEIPTS);
    xmpp_stanza_set_id(received, id);
    xmpp_stanza_add_child_ex(msg, received, 0);
    ferry_component_send(d->wh->comp, msg);
    xmpp_stanza_release(msg);
    xmpp_free(ctx, rid);
}

static const char *condition_for_status(long status)
{
    switch (status) {
    case 400: case 422: return "bad-request";
    case 401: case 403: return "forbidden";
    case 404: case 410: return "item-not-found";
    case 413: return "policy-violation";
    default: return "undefined-condition";
    }
}

static int transient(long status)
{
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

static void fail_delivery(delivery_t *d, const ferry_http_response_t *resp, const char *why)
{
    char text[512];
    const char *type = "cancel", *condition;
    if (!resp) {
        condition = "remote-server-timeout";
        type = "wait";
        snprintf(text, sizeof text, "not delivered to the webhook: %s", why);
    } else if (resp->status == 0) {
        condition = "remote-server-timeout";
        type = "wait";
        snprintf(text, sizeof text, "not delivered to the webhook after %d attempt(s): %s",
                 d->attempts, resp->error ? resp->error : "no response");
    } else if (transient(resp->status)) {
        condition = "service-unavailable";
        type = "wait";
        snprintf(text, sizeof text,
                 "not delivered to the webhook after %d attempt(s): the receiver answered HTTP %ld",
                 d->attempts, resp->status);
    } else {
        condition = condition_for_status(resp->status);
        snprintf(text, sizeof text, "not delivered to the webhook: the receiver answered HTTP %ld",
                 resp->status);
    }
    ferry_log_warn(ferry_component_name(d->wh->comp), "message %s to endpoint %s failed: %s",
                   d->msg_id, d->endpoint, text);
    ferry_component_reply_error(d->wh->comp, d->stanza, type, condition, text);
    delivery_free(d);
}

static void on_retry_timer(uv_timer_t *t) { attempt(t->data); }

static uint64_t retry_delay_ms(const settings_t *s, int attempts, long retry_after)
{
    double delay = s->retry_delay;
    for (int i = 1; i < attempts && delay < s->retry_delay_max; i++)
        delay *= 2;
    if (delay > s->retry_delay_max)
        delay = s->retry_delay_max;
    delay = delay / 2 + (delay / 2) * ((double)rand() / RAND_MAX);
    if (retry_after >= 0 && (double)retry_after > delay)
        delay = (double)retry_after; /* the receiver said when: not sooner */
    return (uint64_t)(delay * 1000);
}

static void on_response(void *arg, const ferry_http_response_t *resp)
{
    delivery_t *d = arg;
    webhook_t *wh = d->wh;
    const char *scope = ferry_component_name(wh->comp);
    d->req = NULL;
    wh->in_flight--;
    if (resp->status >= 200 && resp->status < 300) {
        ferry_log_info(scope, "message %s delivered to endpoint %s (HTTP %ld, attempt %d)",
                       d->msg_id, d->endpoint, resp->status, d->attempts);
        send_receipt(d);
        delivery_free(d);
        return;
    }
    if (!transient(resp->status) || d->attempts >= wh->s.max_attempts) {
        fail_delivery(d, resp, NULL);
        return;
    }
    if (wh->stopping) {
        fail_delivery(d, NULL, "the gateway is shutting down");
        return;
    }
    uint64_t delay = retry_delay_ms(&wh->s, d->attempts, resp->retry_after);
    if (resp->status)
        ferry_log_info(scope, "message %s to endpoint %s: HTTP %ld, retry %d in %.1f s",
                       d->msg_id, d->endpoint, resp->status, d->attempts + 1,
                       (double)delay / 1000);
    else
        ferry_log_info(scope, "message %s to endpoint %s: %s, retry %d in %.1f s", d->msg_id,
                       d->endpoint, resp->error ? resp->error : "no response", d->attempts + 1,
                       (double)delay / 1000);
    uv_timer_start(&d->timer, on_retry_timer, delay, 0);
}

static void sign(ferry_http_request_t *req, const endpoint_t *ep, const delivery_t *d)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    size_t n = strlen(d->msg_id) + strlen(ts) + strlen(d->payload) + 3;
    char *content = malloc(n);
    snprintf(content, n, "%s.%s.%s", d->msg_id, ts, d->payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), ep->sign_key, (int)ep->sign_key_len, (unsigned char *)content,
         strlen(content), mac, &mac_len);
    free(content);
    char *b64 = base64(mac, mac_len);
    char sig[128];
    snprintf(sig, sizeof sig, "v1,%s", b64);
    free(b64);
    ferry_http_request_header(req, "webhook-id", d->msg_id);
    ferry_http_request_header(req, "webhook-timestamp", ts);
    ferry_http_request_header(req, "webhook-signature", sig);
}

static void attempt(delivery_t *d)
{
    webhook_t *wh = d->wh;
    const endpoint_t *ep = find_endpoint(wh, d->endpoint);
    if (!ep || !ep->url) {
        fail_delivery(d, NULL, "the endpoint was removed from the configuration");
        return;
    }
    d->attempts++;
    ferry_http_request_t *req =
        ferry_http_request_new(ferry_component_http_client(wh->comp), "POST", ep->url);
    ferry_http_request_header(req, "Content-Type", "application/json");
    ferry_http_request_header(req, "User-Agent", "ferry/" FERRY_VERSION);
    if (ep->sign_key)
        sign(req, ep, d);
    ferry_http_request_body(req, d->payload, strlen(d->payload));
    ferry_http_request_timeout(req, (long)(wh->s.timeout * 1000));
    if (ferry_http_request_send(req, on_response, d) != 0) {
        fail_delivery(d, NULL, "the HTTP request could not be started");
        return;
    }
    d->req = req;
    wh->in_flight++;
}

static char *make_payload(const endpoint_t *ep, xmpp_stanza_t *st, const char *body)
{
    json_t *o;
    if (ep->slack) {
        ferry_jid_t from;
        char bare[2100];
        ferry_jid_parse(xmpp_stanza_get_from(st), &from);
        ferry_jid_bare(&from, bare, sizeof bare);
        o = json_pack("{s:s, s:s}", "text", body, "username", bare);
    } else {
        char ts[32];
        rfc3339_now(ts, sizeof ts);
        const char *id = xmpp_stanza_get_id(st);
        o = json_pack("{s:s, s:s, s:o, s:s, s:s}", "from", xmpp_stanza_get_from(st), "to",
                      xmpp_stanza_get_to(st), "id", id ? json_string(id) : json_null(), "body",
                      body, "timestamp", ts);
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void deliver(webhook_t *wh, const endpoint_t *ep, xmpp_stanza_t *st, const char *body)
{
    char *payload = make_payload(ep, st, body);
    if (!payload) {
        ferry_component_reply_error(wh->comp, st, "modify", "bad-request",
                                    "the message is not valid UTF-8");
        return;
    }
    delivery_t *d = calloc(1, sizeof *d);
    d->wh = wh;
    d->stanza = xmpp_stanza_clone(st);
    d->endpoint = strdup(ep->name);
    d->payload = payload;
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    char *uuid = xmpp_uuid_gen(ctx);
    snprintf(d->msg_id, sizeof d->msg_id, "msg_%s", uuid);
    xmpp_free(ctx, uuid);
    uv_timer_init(ferry_component_loop(wh->comp), &d->timer);
    d->timer.data = d;
    d->next = wh->deliveries;
    if (wh->deliveries)
        wh->deliveries->prev = d;
    wh->deliveries = d;
    attempt(d);
}

static const endpoint_t *addressed_endpoint(webhook_t *wh, xmpp_stanza_t *st)
{
    ferry_jid_t to;
    if (ferry_jid_parse(xmpp_stanza_get_to(st), &to) != 0 || !to.local[0])
        return NULL;
    return find_endpoint(wh, to.local);
}

static void webhook_on_message(void *self, xmpp_stanza_t *st)
{
    webhook_t *wh = self;
    const char *type = xmpp_stanza_get_type(st);
    if (type && strcmp(type, "error") == 0)
        return;
    const endpoint_t *ep = addressed_endpoint(wh, st);
    if (!ep) {
        ferry_component_reply_error(wh->comp, st, "cancel", "item-not-found",
                                    "no such webhook endpoint");
        return;
    }
    if (!ferry_jid_allowed(ep->allow, xmpp_stanza_get_from(st))) {
        ferry_component_reply_error(wh->comp, st, "auth", "forbidden",
                                    "you may not send to this endpoint");
        return;
    }
    char *body = xmpp_message_get_body(st);
    if (!body)
        return; /* chat states and receipts carry no text to post */
    if (!ep->url)
        ferry_component_reply_error(wh->comp, st, "cancel", "service-unavailable",
                                    "this endpoint takes no messages from XMPP");
    else if (wh->stopping)
        ferry_component_reply_error(wh->comp, st, "wait", "service-unavailable",
                                    "the gateway is shutting down");
    else
        deliver(wh, ep, st, body);
    xmpp_free(ferry_component_xmpp(wh->comp), body);
}

/* Endpoints show as online contacts; subscriptions from allowed JIDs are
 * approved. */
static void webhook_on_presence(void *self, xmpp_stanza_t *st)
{
    webhook_t *wh = self;
    const char *type = xmpp_stanza_get_type(st);
    if (!type || strcmp(type, "error") == 0 || strcmp(type, "unavailable") == 0)
        return;
    const endpoint_t *ep = addressed_endpoint(wh, st);
    const char *from = xmpp_stanza_get_from(st);
    int known = ep && ferry_jid_allowed(ep->allow, from);
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    const char *answer = NULL;
    if (strcmp(type, "subscribe") == 0)
        answer = known ? "subscribed" : "unsubscribed";
    else if (strcmp(type, "unsubscribe") == 0)
        answer = "unsubscribed";
    if (answer) {
        xmpp_stanza_t *p = xmpp_presence_new(ctx);
        xmpp_stanza_set_type(p, answer);
        xmpp_stanza_set_to(p, from);
        xmpp_stanza_set_from(p, xmpp_stanza_get_to(st));
        ferry_component_send(wh->comp, p);
        xmpp_stanza_release(p);
    }
    if (known && (strcmp(type, "subscribe") == 0 || strcmp(type, "probe") == 0)) {
        xmpp_stanza_t *p = xmpp_presence_new(ctx);
        xmpp_stanza_set_to(p, from);
        xmpp_stanza_set_from(p, xmpp_stanza_get_to(st));
        ferry_component_send(wh->comp, p);
        xmpp_stanza_release(p);
    }
}

static void webhook_disco_info(void *self, xmpp_stanza_t *query)
{
    webhook_t *wh = self;
    xmpp_stanza_t *f = xmpp_stanza_new(ferry_component_xmpp(wh->comp));
    xmpp_stanza_set_name(f, "feature");
    xmpp_stanza_set_attribute(f, "var", NS_RECEIPTS);
    xmpp_stanza_add_child_ex(query, f, 0);
}

/* ---- inbound: HTTP -> XMPP ---- */

static void respond(ferry_http_exchange_t *ex, unsigned status, const char *text)
{
    char body[300];
    snprintf(body, sizeof body, "%u %s\n", status, text);
    ferry_http_exchange_respond(ex, status, "text/plain; charset=utf-8", body, strlen(body));
}

static int same_secret(const char *given, size_t given_len, const char *expected)
{
    /* Compare MACs of both, so that timing reveals neither content nor
     * length. */
    static const unsigned char key[] = "ferry-token-compare";
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned la = 0, lb = 0;
    HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)given, given_len, a, &la);
    HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)expected, strlen(expected), b, &lb);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static int github_signature_ok(const endpoint_t *ep, const char *header, const char *body,
                               size_t len)
{
    if (strncmp(header, "sha256=", 7) != 0)
        return 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), ep->github_secret, (int)strlen(ep->github_secret),
         (const unsigned char *)body, len, mac, &mac_len);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return same_secret(header + 7, strlen(header + 7), hex);
}

static int authorized(const endpoint_t *ep, ferry_http_exchange_t *ex)
{
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    const char *hub = ferry_http_exchange_header(ex, "X-Hub-Signature-256");
    if (ep->github_secret && hub)
        return github_signature_ok(ep, hub, body, len);
    const char *auth = ferry_http_exchange_header(ex, "Authorization");
    if (!ep->token || !auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    return same_secret(auth + 7, strlen(auth + 7), ep->token);
}

/* XML 1.0 cannot carry most control characters; refuse rather than mangle. */
static int xml_safe(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return 0;
    }
    return 1;
}

static int valid_utf8(const char *s, size_t len)
{
    json_t *probe = json_stringn(s, len);
    int ok = probe != NULL;
    json_decref(probe);
    return ok;
}

/* GitHub events carry no "text": say what happened in one line. */
static char *github_summary(ferry_http_exchange_t *ex, json_t *doc)
{
    const char *event = ferry_http_exchange_header(ex, "X-GitHub-Event");
    if (!event)
        return NULL;
    const char *repo = json_string_value(json_object_get(json_object_get(doc, "repository"), "full_name"));
    const char *who = json_string_value(json_object_get(json_object_get(doc, "sender"), "login"));
    const char *action = json_string_value(json_object_get(doc, "action"));
    char buf[512];
    snprintf(buf, sizeof buf, "GitHub %s%s%s%s%s%s%s", event, action ? " " : "", action ? action : "",
             repo ? " in " : "", repo ? repo : "", who ? " by " : "", who ? who : "");
    return strdup(buf);
}

/* Returns the text to deliver, or NULL after answering the request. */
static char *inbound_text(ferry_http_exchange_t *ex)
{
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    const char *ctype = ferry_http_exchange_header(ex, "Content-Type");
    if (!ctype) {
        respond(ex, 415, "Unsupported Media Type: send application/json or text/plain");
        return NULL;
    }
    size_t mlen = strcspn(ctype, "; \t");
    if (mlen == 10 && strncasecmp(ctype, "text/plain", 10) == 0) {
        if (!valid_utf8(body, len) || !xml_safe(body, len) || len == 0) {
            respond(ex, 400, "Bad Request: empty, or not UTF-8 text");
            return NULL;
        }
        return strndup(body, len);
    }
    if (mlen != 16 || strncasecmp(ctype, "application/json", 16) != 0) {
        respond(ex, 415, "Unsupported Media Type: send application/json or text/plain");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (!doc) {
        char msg[256];
        snprintf(msg, sizeof msg, "Bad Request: malformed JSON (%s)", jerr.text);
        respond(ex, 400, msg);
        return NULL;
    }
    json_t *text = json_object_get(doc, "text");
    char *out = NULL;
    if (json_is_string(text) && json_string_length(text) > 0)
        out = strndup(json_string_value(text), json_string_length(text));
    else
        out = github_summary(ex, doc);
    json_decref(doc);
    if (!out || strlen(out) == 0 || !xml_safe(out, strlen(out))) {
        free(out);
        respond(ex, 400, "Bad Request: the JSON needs a non-empty \"text\" string");
        return NULL;
    }
    return out;
}

static void on_inbound(void *arg, ferry_http_exchange_t *ex)
{
    webhook_t *wh = arg;
    const char *name = ferry_http_exchange_path(ex) + strlen(wh->route);
    const endpoint_t *ep = strchr(name, '/') ? NULL : find_endpoint(wh, name);
    if (!ep) {
        respond(ex, 404, "Not Found: no such endpoint");
        return;
    }
    if (strcmp(ferry_http_exchange_method(ex), "POST") != 0) {
        ferry_http_exchange_add_header(ex, "Allow", "POST");
        respond(ex, 405, "Method Not Allowed: use POST");
        return;
    }
    if (!ep->token && !ep->github_secret) {
        respond(ex, 403, "Forbidden: this endpoint takes no inbound messages");
        return;
    }
    if (!authorized(ep, ex)) {
        ferry_http_exchange_add_header(ex, "WWW-Authenticate", "Bearer");
        respond(ex, 401, "Unauthorized: missing or wrong token");
        return;
    }
    char *text = inbound_text(ex);
    if (!text)
        return;
    char from[1100];
    endpoint_jid(wh, ep->name, from, sizeof from);
    size_t n = 0;
    for (char **to = ep->deliver_to; to && *to; to++, n++)
        send_chat(wh, from, *to, text);
    ferry_log_info(ferry_component_name(wh->comp),
                   "inbound message on endpoint %s for %zu recipient(s)", ep->name, n);
    free(text);
    respond(ex, 202, "Accepted");
}

/* ---- lifetime ---- */

static void *webhook_create(ferry_component_t *comp, const ferry_conf_t *conf)
{
    webhook_t *wh = calloc(1, sizeof *wh);
    wh->comp = comp;
    if (read_settings(conf, &wh->s) != 0) {
        settings_free(&wh->s);
        free(wh);
        return NULL;
    }
    snprintf(wh->route, sizeof wh->route, "/hooks/%s/", ferry_component_name(comp));
    return wh;
}

static int webhook_start(void *self)
{
    webhook_t *wh = self;
    return ferry_http_route_add(ferry_component_http_server(wh->comp), wh->route,
                                MAX_INBOUND_BODY, on_inbound, wh);
}

static void webhook_stop(void *self)
{
    webhook_t *wh = self;
    ferry_http_route_remove(ferry_component_http_server(wh->comp), wh->route);
    /* Waiting retries would outlive the process: tell their senders now,
     * while the stream is still open. Requests in flight get the grace
     * period to finish. */
    delivery_t *d = wh->deliveries;
    while (d) {
        delivery_t *next = d->next;
        if (!d->req)
            fail_delivery(d, NULL, "the gateway is shutting down");
        d = next;
    }
    wh->stopping = 1;
    if (!wh->deliveries)
        ferry_component_stopped(wh->comp);
}

static void webhook_destroy(void *self)
{
    webhook_t *wh = self;
    while (wh->deliveries) {
        delivery_t *d = wh->deliveries;
        if (d->req)
            ferry_http_request_cancel(d->req);
        d->req = NULL;
        wh->stopping = 0; /* no stopped() callback from here */
        delivery_free(d);
    }
    settings_free(&wh->s);
    free(wh);
}

static int webhook_reload(void *self, const ferry_conf_t *conf)
{
    webhook_t *wh = self;
    settings_t fresh = {0};
    if (read_settings(conf, &fresh) != 0) {
        settings_free(&fresh);
        return -1;
    }
    settings_free(&wh->s);
    wh->s = fresh;
    return 0;
}

const ferry_adapter_t ferry_adapter_webhook = {
    .name = "webhook",
    .gateway_type = "http-ws",
    .create = webhook_create,
    .start = webhook_start,
    .stop = webhook_stop,
    .destroy = webhook_destroy,
    .on_message = webhook_on_message,
    .on_presence = webhook_on_presence,
    .disco_info = webhook_disco_info,
    .reload = webhook_reload,
};
