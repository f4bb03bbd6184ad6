/* fuzz_sms_webhook.c: POST /sms/COMPONENT/inbound and /status on any bytes,
 * through the real handler (adapters/sms/sms_inbound.c) and the real
 * provider parsers (provider_twilio.c: form bodies and X-Twilio-Signature;
 * provider_telnyx.c: JSON events and Ed25519 signatures), all included
 * below so that their static functions run as they are. First byte: even
 * Twilio, odd Telnyx; the rest is a request as exchange.h reads it.
 *
 * The ORACLE: the provider gets exactly one answer; every stanza stored for
 * the user (the incoming SMS as a chat message, a receipt, an error for a
 * failed delivery) is, as the core stores it, well-formed XML 1.0 with JIDs
 * in 'from' and 'to'; a request that hangs (libFuzzer's -timeout) is a
 * finding too.
 * The signatures are real: a header "X-Twilio-Signature: auto" or
 * "telnyx-signature-ed25519: auto" (with "telnyx-timestamp: now") is
 * replaced by the right one, made with the harness's token or key. */
#include <openssl/evp.h>

#include "exchange.h"
#include "ferry/component.h"
#include "oracle.h"

int fuzz_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza);
void fuzz_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg);
int fuzz_setting_get(ferry_component_t *comp, const char *ns, const char *key, char **value);
int fuzz_setting_put(ferry_component_t *comp, const char *ns, const char *key, const char *value);
int fuzz_setting_del(ferry_component_t *comp, const char *ns, const char *key);
#define ferry_xmpp_put fuzz_xmpp_put
#define ferry_outbox_sync fuzz_outbox_sync
#define ferry_setting_get fuzz_setting_get
#define ferry_setting_put fuzz_setting_put
#define ferry_setting_del fuzz_setting_del
/* The archive's objects keep the real names; these copies get their own. */
#define sms_twilio fuzz_sms_twilio
#define sms_telnyx fuzz_sms_telnyx
#define sms_on_webhook fuzz_sms_on_webhook
#define sms_early_report fuzz_sms_early_report
#include "../../adapters/sms/provider_telnyx.c"
#include "../../adapters/sms/provider_twilio.c"
#include "../../adapters/sms/sms_inbound.c"
#undef ferry_xmpp_put
#undef ferry_outbox_sync
#undef ferry_setting_get
#undef ferry_setting_put
#undef ferry_setting_del

#include "component.h"

#define PUBLIC_URL "https://ferry.example.org"

static size_t stored;
static EVP_PKEY *telnyx_key;

int fuzz_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza)
{
    (void)comp;
    (void)dedup;
    fuzz_check_stored("sms: stored stanza", stanza);
    stored++;
    return 0;
}

void fuzz_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg)
{
    (void)comp;
    cb(arg, 1);
}

/* Every delivery report finds the record of a send (sender, number, id,
 * receipt wanted), as after a message alice sent. */
int fuzz_setting_get(ferry_component_t *comp, const char *ns, const char *key, char **value)
{
    (void)comp;
    (void)key;
    if (strcmp(ns, "report") != 0)
        return -1;
    *value = strdup("alice@example.org/phone\n+15559998888\nmsg-1\n1");
    return 0;
}

int fuzz_setting_put(ferry_component_t *comp, const char *ns, const char *key, const char *value)
{
    (void)comp, (void)ns, (void)key, (void)value;
    return 0;
}

int fuzz_setting_del(ferry_component_t *comp, const char *ns, const char *key)
{
    (void)comp, (void)ns, (void)key;
    return 0;
}

static sms_t *instance(int telnyx)
{
    static sms_t sms[2];
    static gateway_t gw;
    static config_t config;
    static ferry_component_t comp;
    static sms_user_t user = {"alice@example.org", "+15550001111"};
    if (!sms[0].comp) {
        config.public_url = PUBLIC_URL;
        gw.config = &config;
        gw.ctx = fuzz_xmpp_ctx();
        comp.gw = &gw;
        comp.name = "sms";
        comp.domain = "sms.example.org";
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        if (!kc || EVP_PKEY_keygen_init(kc) != 1 || EVP_PKEY_keygen(kc, &telnyx_key) != 1)
            fuzz_fail("sms", "no Ed25519 key");
        EVP_PKEY_CTX_free(kc);
        for (int i = 0; i < 2; i++) {
            sms[i].comp = &comp;
            sms[i].provider = i ? &fuzz_sms_telnyx : &fuzz_sms_twilio;
            sms[i].auth_token = "twilio-token";
            sms[i].users = &user;
            sms[i].nusers = 1;
            snprintf(sms[i].route, sizeof sms[i].route, "/sms/sms/");
        }
        size_t len = sizeof sms[1].public_key;
        if (EVP_PKEY_get_raw_public_key(telnyx_key, sms[1].public_key, &len) != 1)
            fuzz_fail("sms", "no Ed25519 public key");
        sms[1].has_public_key = 1;
    }
    return &sms[telnyx];
}

static void sign_twilio(sms_t *sms, ferry_http_exchange_t *ex)
{
    const char *given = fuzz_ex_header(ex, "X-Twilio-Signature");
    size_t len;
    const char *body = fuzz_ex_body(ex, &len);
    form_t f;
    if (!given || strcmp(given, "auto") != 0 || sms_form_parse(&f, body, len) != 0)
        return;
    const char *query = fuzz_ex_query(ex);
    char url[2400];
    snprintf(url, sizeof url, "%s%s%s%s", PUBLIC_URL, fuzz_ex_path(ex), *query ? "?" : "", query);
    char *sig = twilio_signature(sms->auth_token, url, &f);
    fuzz_ex_set_header(ex, "X-Twilio-Signature", sig);
    free(sig);
    sms_form_free(&f);
}

static void sign_telnyx(ferry_http_exchange_t *ex)
{
    const char *given = fuzz_ex_header(ex, "telnyx-signature-ed25519");
    const char *ts = fuzz_ex_header(ex, "telnyx-timestamp");
    if (!given || strcmp(given, "auto") != 0 || !ts)
        return;
    char now[32];
    if (strcmp(ts, "now") == 0) {
        snprintf(now, sizeof now, "%lld", (long long)time(NULL));
        fuzz_ex_set_header(ex, "telnyx-timestamp", now);
        ts = fuzz_ex_header(ex, "telnyx-timestamp");
    }
    size_t len, ts_len = strlen(ts), sig_len = 64;
    const char *body = fuzz_ex_body(ex, &len);
    unsigned char *msg = malloc(ts_len + 1 + len), sig[64];
    memcpy(msg, ts, ts_len);
    msg[ts_len] = '|';
    memcpy(msg + ts_len + 1, body, len);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, telnyx_key) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, msg, ts_len + 1 + len) != 1)
        fuzz_fail("sms", "cannot sign");
    EVP_MD_CTX_free(md);
    free(msg);
    char b64[100];
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)sig_len);
    fuzz_ex_set_header(ex, "telnyx-signature-ed25519", b64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sms_t *sms = instance(data[0] & 1);
    ferry_http_exchange_t *ex = fuzz_ex_new(data + 1, size - 1);
    if (!ex)
        return 0;
    /* The server hands the handler only what its route matches. */
    if (fuzz_route_matches(sms->route, fuzz_ex_path(ex))) {
        fuzz_ex_set_route(ex, sms->route);
        if (data[0] & 1)
            sign_telnyx(ex);
        else
            sign_twilio(sms, ex);
        stored = 0;
        fuzz_sms_on_webhook(sms, ex);
        unsigned status = fuzz_ex_status(ex);
        if (!status)
            fuzz_fail("sms", "no answer");
        if (status != 200 && stored)
            fuzz_fail("sms", "%u answered, yet %zu stored", status, stored);
    }
    fuzz_ex_free(ex);
    return 0;
}
