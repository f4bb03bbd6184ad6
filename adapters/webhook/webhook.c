/* webhook.c: the webhook adapter. Each [components.X.endpoints.NAME] is a
 * JID NAME@domain: messages to it are POSTed to its url (JSON or Slack
 * format, optionally signed per Standard Webhooks), and what is POSTed to
 * /hooks/X/NAME reaches its deliver_to JIDs as chat messages and is said in
 * its rooms (webhook_rooms.c), turned into text by webhook_source.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ferry/ferry.h"
#include "webhook_rooms.h"
#include "webhook_source.h"

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
    char *gitlab_token;      /* X-Gitlab-Token */
    char *gitea_secret;      /* X-Gitea-Signature / X-Forgejo-Signature key */
    webhook_source_t source;
    ferry_template_t *tmpl;  /* replaces the source's text when set */
    char **deliver_to;
    char **allow;
    room_conf_t rooms;
} endpoint_t;

typedef struct settings {
    endpoint_t *endpoints;
    size_t nendpoints;
    double timeout;
    double room_ping_interval; /* seconds between XEP-0410 self-pings */
} settings_t;

typedef struct webhook webhook_t;

/* A message as kept in the outbox: what each attempt needs, read back
 * without parsing XML. */
typedef struct stored {
    char *buf;               /* owns the strings below */
    const char *endpoint;
    const char *request;     /* the exact request body: retries send the same bytes */
    const char *msg_id;      /* webhook-id / Idempotency-Key, stable across retries */
    const char *from, *to;   /* of the original stanza */
    const char *id;          /* the original stanza id, "" when none */
    const char *text;        /* the original body, for an error reply */
    int receipt;             /* the sender asked for an XEP-0184 receipt */
    int groupchat;           /* said in a room: no receipt, no error reply */
} stored_t;

/* One attempt at posting a message from the outbox (the data of its
 * ferry_http_outbox_send()). */
typedef struct attempt {
    int64_t id;
    stored_t m;
} attempt_t;

struct webhook {
    ferry_component_t *comp;
    settings_t s;
    ferry_http_outbox_t *posts; /* under way */
    rooms_t *rooms;
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
    free(ep->gitlab_token);
    free(ep->gitea_secret);
    ferry_template_free(ep->tmpl);
    ferry_conf_strings_free(ep->deliver_to);
    ferry_conf_strings_free(ep->allow);
    webhook_room_conf_free(&ep->rooms);
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
    unsigned char *key = ferry_malloc(len / 4 * 3 + 3);
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

/* The template of the file PATH; NULL after an error at KEY. */
static ferry_template_t *template_from_file(const ferry_conf_t *t, const char *key, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ferry_conf_error(t, key, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = ferry_malloc(MAX_INBOUND_BODY + 1);
    size_t n = fread(text, 1, MAX_INBOUND_BODY + 1, f);
    int failed = ferror(f);
    fclose(f);
    ferry_template_t *tmpl = NULL;
    if (failed || n > MAX_INBOUND_BODY) {
        ferry_conf_error(t, key, "%s: %s", path, failed ? "read error" : "longer than 64 KiB");
    } else {
        int line;
        char err[300];
        tmpl = ferry_template_parse(text, n, &line, err, sizeof err);
        if (!tmpl)
            ferry_conf_error(t, key, "%s:%d: %s", path, line, err);
    }
    free(text);
    return tmpl;
}

/* template = "..." or template_file = "PATH": parsed now, so that a bad one
 * is a config error with its line. */
static int read_template(const ferry_conf_t *t, endpoint_t *ep)
{
    const char *text = NULL, *path = NULL;
    if (ferry_conf_string(t, "template", FERRY_CONF_OPTIONAL, &text) < 0 ||
        ferry_conf_string(t, "template_file", FERRY_CONF_OPTIONAL, &path) < 0)
        return -1;
    if (text && path) {
        ferry_conf_error(t, "template_file", "give either template or template_file, not both");
        return -1;
    }
    if (path) {
        ep->tmpl = template_from_file(t, "template_file", path);
        return ep->tmpl ? 0 : -1;
    }
    if (!text)
        return 0;
    int line;
    char err[300];
    ep->tmpl = ferry_template_parse(text, strlen(text), &line, err, sizeof err);
    if (!ep->tmpl) {
        ferry_conf_error(t, "template", "line %d of the template: %s", line, err);
        return -1;
    }
    return 0;
}

/* Some credential lets requests in. */
static int takes_inbound(const endpoint_t *ep)
{
    return ep->token || ep->github_secret || ep->gitlab_token || ep->gitea_secret;
}

static int read_endpoint(const ferry_conf_t *t, const char *name, endpoint_t *ep)
{
    int bad = 0;
    const char *url = NULL, *format = "json";
    ep->name = ferry_strdup(name);
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
    ep->url = url ? ferry_strdup(url) : NULL;
    bad |= ferry_conf_enum(t, "format", FERRY_CONF_OPTIONAL, formats, &format) < 0;
    ep->slack = strcmp(format, "slack") == 0;
    bad |= read_sign_key(t, ep) < 0;
    bad |= ferry_conf_secret(t, "token", FERRY_CONF_OPTIONAL, &ep->token) < 0;
    bad |= ferry_conf_secret(t, "github_secret", FERRY_CONF_OPTIONAL, &ep->github_secret) < 0;
    bad |= ferry_conf_secret(t, "gitlab_token", FERRY_CONF_OPTIONAL, &ep->gitlab_token) < 0;
    bad |= ferry_conf_secret(t, "gitea_secret", FERRY_CONF_OPTIONAL, &ep->gitea_secret) < 0;
    const char *source = "auto";
    bad |= ferry_conf_enum(t, "source", FERRY_CONF_OPTIONAL, webhook_source_names, &source) < 0;
    for (int i = 0; webhook_source_names[i]; i++)
        if (strcmp(source, webhook_source_names[i]) == 0)
            ep->source = (webhook_source_t)i;
    bad |= read_template(t, ep) < 0;
    bad |= ferry_conf_strings(t, "deliver_to", FERRY_CONF_OPTIONAL, &ep->deliver_to) < 0;
    bad |= ferry_conf_strings(t, "allow", FERRY_CONF_OPTIONAL, &ep->allow) < 0;
    bad |= check_jids(t, "deliver_to", ep->deliver_to) < 0;
    bad |= check_jids(t, "allow", ep->allow) < 0;
    bad |= webhook_room_conf_read(t, name, ep->url != NULL, &ep->rooms) < 0;
    if (takes_inbound(ep) && !(ep->deliver_to && ep->deliver_to[0]) && !webhook_room_conf_any(&ep->rooms)) {
        ferry_conf_error(t, NULL, "inbound messages need 'deliver_to' or 'rooms' (who receives them)");
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
    s->timeout = 10.0;
    bad |= read_number(conf, "timeout", &s->timeout, 0.1) < 0;
    s->room_ping_interval = 300.0;
    bad |= read_number(conf, "room_ping_interval", &s->room_ping_interval, 1) < 0;

    const ferry_conf_t *eps = NULL;
    int rc = ferry_conf_table(conf, "endpoints", FERRY_CONF_REQUIRED, &eps);
    if (rc != 0)
        return -1;
    size_t n = ferry_conf_count(eps);
    s->endpoints = ferry_calloc(n ? n : 1, sizeof *s->endpoints);
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
    char *out = ferry_malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static void endpoint_jid(webhook_t *wh, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s@%s", name, ferry_component_domain(wh->comp));
}

/* Stores a chat message for delivery to XMPP: 0, 1 duplicate, -1 error. */
static int put_chat(webhook_t *wh, const char *from, const char *to, const char *body,
                    const char *dedup)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    char *id = xmpp_uuid_gen(ctx);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", to, id);
    xmpp_stanza_set_from(msg, from);
    ferry_stanza_add_text(msg, "body", body);
    int rc = ferry_xmpp_put(wh->comp, dedup, msg);
    xmpp_stanza_release(msg);
    xmpp_free(ctx, id);
    return rc;
}

/* ---- outbound: XMPP -> HTTP ----
 *
 * A message from XMPP is put in the outbox as one small JSON record (see
 * stored_t); the outbox calls post() for each attempt. */

/* The record (ferry_record_pack) holds these fields in this order: cheap to
 * write, and to read back at every attempt. */
#define STORED_VERSION "w1"
#define STORED_FIELDS 9

static int stored_read(const ferry_msg_t *msg, stored_t *m)
{
    memset(m, 0, sizeof *m);
    /* The payload is not NUL-terminated past its last field: copy it. */
    m->buf = ferry_malloc(msg->payload_len + 1);
    memcpy(m->buf, msg->payload, msg->payload_len);
    const char *f[STORED_FIELDS];
    if (ferry_record_unpack(m->buf, msg->payload_len, f, STORED_FIELDS) != 0 ||
        strcmp(f[0], STORED_VERSION) != 0) {
        free(m->buf);
        m->buf = NULL;
        return -1;
    }
    m->endpoint = f[1];
    m->request = f[2];
    m->msg_id = f[3];
    m->from = f[4];
    m->to = f[5];
    m->id = f[6];
    m->text = f[7];
    m->receipt = f[8][0] == '1';
    m->groupchat = f[8][0] == 'g';
    return 0;
}

/* The original message, rebuilt for an error reply. */
static void reply_error(webhook_t *wh, const stored_t *m, const char *type, const char *condition,
                        const char *text)
{
    if (m->groupchat)
        return; /* a room could take an error from its occupant as a reason to kick it */
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    xmpp_stanza_t *orig = xmpp_message_new(ctx, "chat", m->to, *m->id ? m->id : NULL);
    xmpp_stanza_set_from(orig, m->from);
    ferry_stanza_add_text(orig, "body", m->text);
    ferry_component_reply_error(wh->comp, orig, type, condition, text);
    xmpp_stanza_release(orig);
}

/* The XEP-0184 receipt for message ID from FROM, sent by the endpoint TO. */
static void send_receipt(webhook_t *wh, const char *from, const char *to, const char *id)
{
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    char *rid = xmpp_uuid_gen(ctx);
    xmpp_stanza_t *msg = xmpp_message_new(ctx, NULL, from, rid);
    xmpp_stanza_set_from(msg, to);
    xmpp_stanza_set_id(ferry_stanza_add(msg, "received", NS_RECEIPTS), id);
    ferry_component_send_release(wh->comp, msg);
    xmpp_free(ctx, rid);
}

static void attempt_free(void *data)
{
    attempt_t *a = data;
    free(a->m.buf);
    free(a);
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

static void on_delivered(void *arg, void *data, const ferry_http_response_t *resp)
{
    webhook_t *wh = arg;
    attempt_t *a = data;
    ferry_log_debug(ferry_component_name(wh->comp),
                    "message %lld delivered to endpoint %s (HTTP %ld)", (long long)a->id,
                    a->m.endpoint, resp->status);
    if (a->m.receipt && *a->m.id)
        send_receipt(wh, a->m.from, a->m.to, a->m.id);
}

static void on_refused(void *arg, void *data, const ferry_http_response_t *resp, char *text,
                       size_t cap)
{
    webhook_t *wh = arg;
    attempt_t *a = data;
    snprintf(text, cap, "not delivered to the webhook: the receiver answered HTTP %ld",
             resp->status);
    ferry_log_warn(ferry_component_name(wh->comp), "message %lld to endpoint %s: %s",
                   (long long)a->id, a->m.endpoint, text);
    reply_error(wh, &a->m, "cancel", condition_for_status(resp->status), text);
}

static const ferry_http_outbox_handlers_t post_handlers = {
    .peer = "the receiver",
    .delivered = on_delivered,
    .refused = on_refused,
    .free = attempt_free,
};

static void sign(ferry_http_request_t *req, const endpoint_t *ep, const char *msg_id,
                 const char *body)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    size_t n = strlen(msg_id) + strlen(ts) + strlen(body) + 3;
    char *content = ferry_malloc(n);
    snprintf(content, n, "%s.%s.%s", msg_id, ts, body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), ep->sign_key, (int)ep->sign_key_len, (unsigned char *)content,
         strlen(content), mac, &mac_len);
    free(content);
    char *b64 = base64(mac, mac_len);
    char sig[128];
    snprintf(sig, sizeof sig, "v1,%s", b64);
    free(b64);
    ferry_http_request_header(req, "webhook-id", msg_id);
    ferry_http_request_header(req, "webhook-timestamp", ts);
    ferry_http_request_header(req, "webhook-signature", sig);
}

static void post(void *arg, const ferry_msg_t *msg)
{
    webhook_t *wh = arg;
    if (webhook_rooms_deliver(wh->rooms, msg))
        return;
    attempt_t *a = ferry_calloc(1, sizeof *a);
    a->id = msg->id;
    if (stored_read(msg, &a->m) != 0) {
        ferry_outbox_fail(wh->comp, msg->id, "unreadable stored message");
        free(a);
        return;
    }
    const endpoint_t *ep = find_endpoint(wh, a->m.endpoint);
    if (!ep || !ep->url) {
        const char *why = "the endpoint was removed from the configuration";
        reply_error(wh, &a->m, "cancel", "item-not-found", why);
        ferry_outbox_fail(wh->comp, msg->id, why);
        attempt_free(a);
        return;
    }
    ferry_http_request_t *req =
        ferry_http_request_new(ferry_component_http_client(wh->comp), "POST", ep->url);
    ferry_http_request_header(req, "Content-Type", "application/json");
    ferry_http_request_header(req, "User-Agent", "ferry/" FERRY_VERSION);
    ferry_http_request_header(req, "Idempotency-Key", a->m.msg_id);
    if (ep->sign_key)
        sign(req, ep, a->m.msg_id, a->m.request);
    ferry_http_request_body(req, a->m.request, strlen(a->m.request));
    ferry_http_request_timeout(req, (long)(wh->s.timeout * 1000));
    ferry_http_outbox_send(wh->posts, msg->id, req, a);
}

static void on_dead(void *arg, const ferry_msg_t *msg, const char *reason)
{
    webhook_t *wh = arg;
    stored_t m;
    if (webhook_rooms_dead(wh->rooms, msg, reason) || stored_read(msg, &m) != 0)
        return;
    char text[600];
    snprintf(text, sizeof text, "not delivered to the webhook: %s", reason);
    ferry_log_warn(ferry_component_name(wh->comp), "message %lld to endpoint %s: %s",
                   (long long)msg->id, m.endpoint, text);
    /* Given up for good: "cancel", so that clients do not retry it. */
    reply_error(wh, &m, "cancel", "remote-server-timeout", text);
    free(m.buf);
}

static const ferry_outbox_handlers_t outbox_handlers = {
    .deliver = post,
    .dead = on_dead,
};

/* ROOM and NICK: said in that room by that occupant (NULL for a direct
 * message). */
static char *make_body(const endpoint_t *ep, xmpp_stanza_t *st, const char *body, const char *room,
                       const char *nick)
{
    json_t *o;
    if (ep->slack) {
        char bare[2100];
        ferry_jid_bare_of(xmpp_stanza_get_from(st), bare, sizeof bare);
        o = json_pack("{s:s, s:s}", "text", body, "username", nick ? nick : bare);
    } else {
        char ts[32];
        rfc3339_now(ts, sizeof ts);
        const char *id = xmpp_stanza_get_id(st);
        o = json_pack("{s:s, s:s, s:o, s:s, s:s}", "from", xmpp_stanza_get_from(st), "to",
                      xmpp_stanza_get_to(st), "id", id ? json_string(id) : json_null(), "body",
                      body, "timestamp", ts);
        if (o && room)
            json_object_set_new(o, "room", json_string(room));
        if (o && nick)
            json_object_set_new(o, "nick", json_string(nick));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* What goes into the outbox (a stored_t record); NULL when the text is not
 * valid UTF-8. */
static char *make_stored(webhook_t *wh, const endpoint_t *ep, xmpp_stanza_t *st, const char *body,
                         const char *room, const char *nick, size_t *len)
{
    char *request_body = make_body(ep, st, body, room, nick);
    if (!request_body)
        return NULL;
    xmpp_ctx_t *ctx = ferry_component_xmpp(wh->comp);
    char *uuid = xmpp_uuid_gen(ctx);
    char msg_id[64];
    snprintf(msg_id, sizeof msg_id, "msg_%s", uuid);
    xmpp_free(ctx, uuid);
    const char *id = xmpp_stanza_get_id(st);
    int receipt = xmpp_stanza_get_child_by_name_and_ns(st, "request", NS_RECEIPTS) != NULL;
    const char *field[STORED_FIELDS] = {STORED_VERSION, ep->name, request_body, msg_id,
                                        xmpp_stanza_get_from(st), xmpp_stanza_get_to(st),
                                        id ? id : "", body, room ? "g" : receipt ? "1" : "0"};
    char *out = ferry_record_pack(field, STORED_FIELDS, len);
    free(request_body);
    return out;
}

static void accept_message(webhook_t *wh, const endpoint_t *ep, xmpp_stanza_t *st,
                           const char *body)
{
    size_t stored_len;
    char *stored = make_stored(wh, ep, st, body, NULL, NULL, &stored_len);
    if (!stored) {
        ferry_component_reply_error(wh->comp, st, "modify", "bad-request",
                                    "the message is not valid UTF-8");
        return;
    }
    ferry_jid_t from;
    char conversation[2200], dedup[2200];
    ferry_jid_parse(xmpp_stanza_get_from(st), &from);
    snprintf(conversation, sizeof conversation, "%s %s@%s", ep->name, from.local, from.domain);
    /* A resent stanza (same sender, same id) is the same message. */
    const char *id = xmpp_stanza_get_id(st);
    snprintf(dedup, sizeof dedup, "xmpp %s %s", xmpp_stanza_get_from(st), id ? id : "");
    int rc = ferry_outbox_put_or_hold(wh->comp, conversation, id ? dedup : NULL, stored,
                                      stored_len, NULL);
    if (rc == FERRY_OUTBOX_FULL)
        ferry_component_reply_error(wh->comp, st, "wait", "resource-constraint",
                                    "the gateway's store is unavailable and its memory for waiting"
                                    " messages is full; send it again later");
    else if (rc < 0)
        ferry_component_reply_error(wh->comp, st, "wait", "internal-server-error",
                                    "the gateway could not store the message");
    else if (rc == FERRY_DUP_DONE && xmpp_stanza_get_child_by_name_and_ns(st, "request", NS_RECEIPTS))
        send_receipt(wh, xmpp_stanza_get_from(st), xmpp_stanza_get_to(st), id); /* lost before */
    else if (rc == FERRY_DUP_DEAD)
        ferry_component_reply_error(wh->comp, st, "cancel", "remote-server-timeout",
                                    "not delivered to the webhook: given up earlier");
    free(stored);
}

/* A message said in ROOM, to POST (room_messages): in order per room, once
 * per room stanza id (XEP-0359) where the room gives one. */
static void accept_room_message(void *arg, const char *endpoint, xmpp_stanza_t *st,
                                const char *body, const char *room, const char *nick)
{
    webhook_t *wh = arg;
    const endpoint_t *ep = find_endpoint(wh, endpoint);
    size_t stored_len;
    char *stored = ep ? make_stored(wh, ep, st, body, room, nick, &stored_len) : NULL;
    if (!stored)
        return;
    char conversation[3200], dedup[4400];
    snprintf(conversation, sizeof conversation, "%s %s", ep->name, room);
    const char *sid = NULL;
    xmpp_stanza_t *el = xmpp_stanza_get_child_by_name_and_ns(st, "stanza-id", "urn:xmpp:sid:0");
    if (el && (sid = xmpp_stanza_get_attribute(el, "by")) && strcmp(sid, room) == 0)
        sid = xmpp_stanza_get_id(el);
    else
        sid = NULL;
    snprintf(dedup, sizeof dedup, "room %s %s %s", ep->name, room, sid ? sid : "");
    if (ferry_outbox_put_or_hold(wh->comp, conversation, sid ? dedup : NULL, stored, stored_len,
                                 NULL) < 0)
        ferry_log_error(ferry_component_name(wh->comp),
                        "a message said in %s could not be stored for endpoint %s", room, ep->name);
    free(stored);
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
    if (webhook_rooms_on_message(wh->rooms, st))
        return;
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
    else
        accept_message(wh, ep, st, body);
    xmpp_free(ferry_component_xmpp(wh->comp), body);
}

/* Endpoints show as online contacts; subscriptions from allowed JIDs are
 * approved. */
static void webhook_on_presence(void *self, xmpp_stanza_t *st)
{
    webhook_t *wh = self;
    if (webhook_rooms_on_presence(wh->rooms, st))
        return;
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
        ferry_component_send_release(wh->comp, p);
    }
    if (known && (strcmp(type, "subscribe") == 0 || strcmp(type, "probe") == 0)) {
        xmpp_stanza_t *p = xmpp_presence_new(ctx);
        xmpp_stanza_set_to(p, from);
        xmpp_stanza_set_from(p, xmpp_stanza_get_to(st));
        ferry_component_send_release(wh->comp, p);
    }
}

static int webhook_on_iq(void *self, xmpp_stanza_t *st)
{
    webhook_t *wh = self;
    return webhook_rooms_on_iq(wh->rooms, st);
}

static void webhook_on_link(void *self, int up)
{
    webhook_t *wh = self;
    webhook_rooms_on_link(wh->rooms, up);
}

static void webhook_metrics(void *self, ferry_metrics_t *m)
{
    webhook_t *wh = self;
    webhook_rooms_metrics(wh->rooms, m);
}

static void webhook_disco_info(void *self, xmpp_stanza_t *query)
{
    (void)self;
    xmpp_stanza_set_attribute(ferry_stanza_add(query, "feature", NULL), "var", NS_RECEIPTS);
}

/* ---- inbound: HTTP -> XMPP ---- */

static void respond(ferry_http_exchange_t *ex, unsigned status, const char *text)
{
    char body[600];
    snprintf(body, sizeof body, "%u %s\n", status, text);
    ferry_http_exchange_respond(ex, status, "text/plain; charset=utf-8", body, strlen(body));
}

/* Constant time: the loop runs over what the sender gave, without an early
 * exit, so timing tells nothing about the expected secret. */
static int same_secret(const char *given, size_t given_len, const char *expected)
{
    size_t n = strlen(expected);
    unsigned char diff = given_len != n || n == 0;
    for (size_t i = 0; i < given_len; i++)
        diff |= (unsigned char)(given[i] ^ expected[n ? i % n : 0]);
    return diff == 0;
}

/* KEY's HMAC-SHA256 of the body, in lowercase hex, must be GIVEN: GitHub's
 * X-Hub-Signature-256 (after "sha256=") and Gitea's X-Gitea-Signature. */
static int hmac_hex_ok(const char *key, const char *given, const char *body, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body, len, mac, &mac_len);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return same_secret(given, strlen(given), hex);
}

/* NULL when the request carries a configured credential that matches, else
 * why not. A credential header that is present decides; without one, the
 * bearer token is checked. */
static const char *unauthorized(const endpoint_t *ep, ferry_http_exchange_t *ex)
{
    size_t len;
    const char *body = ferry_http_exchange_body(ex, &len);
    const char *hub = ferry_http_exchange_header(ex, "X-Hub-Signature-256");
    if (ep->github_secret && hub)
        return strncmp(hub, "sha256=", 7) == 0 && hmac_hex_ok(ep->github_secret, hub + 7, body, len)
                   ? NULL
                   : "wrong X-Hub-Signature-256";
    const char *gitea = ep->gitea_secret ? ferry_http_exchange_header(ex, "X-Gitea-Signature") : NULL;
    if (ep->gitea_secret && !gitea)
        gitea = ferry_http_exchange_header(ex, "X-Forgejo-Signature");
    if (gitea)
        return hmac_hex_ok(ep->gitea_secret, gitea, body, len) ? NULL : "wrong X-Gitea-Signature";
    const char *gitlab = ep->gitlab_token ? ferry_http_exchange_header(ex, "X-Gitlab-Token") : NULL;
    if (gitlab)
        return same_secret(gitlab, strlen(gitlab), ep->gitlab_token) ? NULL : "wrong X-Gitlab-Token";
    const char *auth = ferry_http_exchange_header(ex, "Authorization");
    if (!ep->token || !auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return "missing or wrong token";
    return same_secret(auth + 7, strlen(auth + 7), ep->token) ? NULL : "missing or wrong token";
}

/* Returns the text to deliver, or NULL after answering the request. */
static char *inbound_text(const endpoint_t *ep, ferry_http_exchange_t *ex)
{
    webhook_inbound_t in = {
        .content_type = ferry_http_exchange_header(ex, "Content-Type"),
        .github_event = ferry_http_exchange_header(ex, "X-GitHub-Event"),
        .gitlab_event = ferry_http_exchange_header(ex, "X-Gitlab-Event"),
        .gitea_event = ferry_http_exchange_header(ex, "X-Gitea-Event"),
    };
    if (!in.gitea_event)
        in.gitea_event = ferry_http_exchange_header(ex, "X-Forgejo-Event");
    in.body = ferry_http_exchange_body(ex, &in.len);
    unsigned status = 400;
    char why[400];
    char *text = webhook_inbound_text(&in, ep->source, ep->tmpl, &status, why, sizeof why);
    if (!text)
        respond(ex, status, why);
    return text;
}

static void on_inbound_committed(void *arg, int ok)
{
    ferry_http_exchange_t *ex = arg;
    if (ok) {
        respond(ex, 202, "Accepted");
    } else {
        ferry_http_exchange_add_header(ex, "Retry-After", "30");
        respond(ex, 503, "Service Unavailable: the message could not be stored; retry later");
    }
}

static void on_inbound(void *arg, ferry_http_exchange_t *ex)
{
    webhook_t *wh = arg;
    const char *name = ferry_http_exchange_rest(ex);
    const endpoint_t *ep = name && !strchr(name, '/') ? find_endpoint(wh, name) : NULL;
    if (!ep) {
        respond(ex, 404, "Not Found: no such endpoint");
        return;
    }
    if (strcmp(ferry_http_exchange_method(ex), "POST") != 0) {
        ferry_http_exchange_add_header(ex, "Allow", "POST");
        respond(ex, 405, "Method Not Allowed: use POST");
        return;
    }
    if (!takes_inbound(ep)) {
        respond(ex, 403, "Forbidden: this endpoint takes no inbound messages");
        return;
    }
    const char *refused = unauthorized(ep, ex);
    if (refused) {
        char why[100];
        snprintf(why, sizeof why, "Unauthorized: %s", refused);
        ferry_http_exchange_add_header(ex, "WWW-Authenticate", "Bearer");
        respond(ex, 401, why);
        return;
    }
    char *text = inbound_text(ep, ex);
    if (!text)
        return;
    /* A sender's retry of the same request carries the same id: store it
     * once. */
    const char *request_id = ferry_http_exchange_header(ex, "webhook-id");
    if (!request_id)
        request_id = ferry_http_exchange_header(ex, "Idempotency-Key");
    if (!request_id)
        request_id = ferry_http_exchange_header(ex, "X-GitHub-Delivery");
    char from[1100], dedup[2400];
    endpoint_jid(wh, ep->name, from, sizeof from);
    size_t stored = 0, duplicates = 0;
    int failed = 0;
    for (char **to = ep->deliver_to; to && *to; to++) {
        snprintf(dedup, sizeof dedup, "http %s %s %s", ep->name, request_id ? request_id : "", *to);
        int rc = put_chat(wh, from, *to, text, request_id ? dedup : NULL);
        failed |= rc < 0;
        stored += rc == 0;
        duplicates += rc > 0;
    }
    snprintf(dedup, sizeof dedup, "http %s %s", ep->name, request_id ? request_id : "");
    failed |= webhook_rooms_put(wh->rooms, ep->name, text, request_id ? dedup : NULL, &stored,
                        &duplicates) < 0;
    free(text);
    if (failed) {
        ferry_http_exchange_add_header(ex, "Retry-After", "30");
        respond(ex, 503, "Service Unavailable: the message could not be stored; retry later");
        return;
    }
    ferry_log_info(ferry_component_name(wh->comp),
                   "inbound message on endpoint %s for %zu recipient(s) and room(s)%s", ep->name, stored,
                   duplicates ? " (a duplicate request: already stored)" : "");
    /* Answer only once the rows are committed: a 202 is a promise. */
    ferry_outbox_sync(wh->comp, on_inbound_committed, ex);
}

/* ---- lifetime ---- */

static void configure_rooms(webhook_t *wh)
{
    webhook_rooms_begin(wh->rooms, wh->s.room_ping_interval);
    for (size_t i = 0; i < wh->s.nendpoints; i++)
        webhook_rooms_add(wh->rooms, wh->s.endpoints[i].name, &wh->s.endpoints[i].rooms);
    webhook_rooms_commit(wh->rooms);
}

static void *webhook_create(ferry_component_t *comp, const ferry_conf_t *conf)
{
    webhook_t *wh = ferry_calloc(1, sizeof *wh);
    wh->comp = comp;
    if (read_settings(conf, &wh->s) != 0) {
        settings_free(&wh->s);
        free(wh);
        return NULL;
    }
    snprintf(wh->route, sizeof wh->route, "/hooks/%s/", ferry_component_name(comp));
    wh->rooms = webhook_rooms_new(comp, accept_room_message, wh);
    wh->posts = ferry_http_outbox_new(comp, &post_handlers, wh);
    configure_rooms(wh);
    return wh;
}

static int webhook_start(void *self)
{
    webhook_t *wh = self;
    webhook_rooms_start(wh->rooms);
    if (ferry_outbox_open(wh->comp, &outbox_handlers, wh) != 0)
        return -1;
    return ferry_http_route_add(ferry_component_http_server(wh->comp), wh->route,
                                MAX_INBOUND_BODY, on_inbound, wh);
}

/* Requests under way get the grace period; what does not finish stays
 * pending in the store for the next start. */
static void webhook_stop(void *self)
{
    webhook_t *wh = self;
    ferry_http_route_remove(ferry_component_http_server(wh->comp), wh->route);
    webhook_rooms_stop(wh->rooms);
    ferry_http_outbox_stop(wh->posts);
}

static void webhook_destroy(void *self)
{
    webhook_t *wh = self;
    /* Posts still under way are dropped with wh->posts: their rows stay
     * pending. */
    ferry_http_outbox_free(wh->posts);
    webhook_rooms_free(wh->rooms);
    settings_free(&wh->s);
    free(wh);
}

static int webhook_reload(void *self, const ferry_conf_t *conf, int apply)
{
    webhook_t *wh = self;
    settings_t fresh = {0};
    int rc = read_settings(conf, &fresh);
    if (rc != 0 || !apply) {
        settings_free(&fresh);
        return rc != 0 ? -1 : 0;
    }
    settings_free(&wh->s);
    wh->s = fresh;
    configure_rooms(wh);
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
    .on_iq = webhook_on_iq,
    .on_link = webhook_on_link,
    .metrics = webhook_metrics,
    .disco_info = webhook_disco_info,
    .reload = webhook_reload,
};
