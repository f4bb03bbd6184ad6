/* fuzz_webhook.c: POST /hooks/COMPONENT/ENDPOINT on any bytes, through the
 * real handler of adapters/webhook/webhook.c (included below so that its
 * static functions run as they are): the endpoint name taken from the path,
 * the method, the token or GitHub signature, the Content-Type, the JSON or
 * text body, and the chat message stored for each deliver_to JID.
 *
 * The ORACLE: the request gets exactly one answer, 202 if and only if a
 * message was stored, and only for an endpoint that takes messages; every
 * stanza stored (ferry_xmpp_put: sent to the XMPP server later, and again
 * after every restart until the server takes it) is, as the core stores it,
 * well-formed XML 1.0 with JIDs in 'from' and 'to'. A header
 * "X-Hub-Signature-256: auto" is replaced with the right signature of the
 * body, so that GitHub events get explored. */
#include <stdio.h>

#include "exchange.h"
#include "ferry/component.h"
#include "oracle.h"

int fuzz_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza);
void fuzz_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg);
#define ferry_xmpp_put fuzz_xmpp_put
#define ferry_outbox_sync fuzz_outbox_sync
/* The archive's webhook.o keeps the real name; this copy gets its own. */
#define ferry_adapter_webhook fuzz_adapter_webhook
#include "../../adapters/webhook/webhook.c"
#undef ferry_xmpp_put
#undef ferry_outbox_sync

#include "component.h"
#include "toml.h"

static const char config[] = "[endpoints.alerts]\n"
                             "token = \"s3cret\"\n"
                             "deliver_to = [\"alice@example.org\", \"ops.example.org\"]\n"
                             "[endpoints.github]\n"
                             "github_secret = \"gh-secret\"\n"
                             "deliver_to = [\"alice@example.org\"]\n"
                             "[endpoints.out]\n"
                             "url = \"http://127.0.0.1:9/\"\n";

static size_t stored;
static const char *request_path = "";

int fuzz_xmpp_put(ferry_component_t *comp, const char *dedup, xmpp_stanza_t *stanza)
{
    (void)comp;
    (void)dedup;
    fuzz_check_stored("webhook: stored chat", stanza);
    stored++;
    /* Only a request to an endpoint that takes messages stores one. */
    if (strcmp(request_path, "/hooks/main/alerts") != 0 &&
        strcmp(request_path, "/hooks/main/github") != 0)
        fuzz_fail("webhook", "a message stored for a request to %s", request_path);
    return 0;
}

void fuzz_outbox_sync(ferry_component_t *comp, void (*cb)(void *arg, int ok), void *arg)
{
    (void)comp;
    cb(arg, 1);
}

static webhook_t *instance(void)
{
    static webhook_t *wh;
    static gateway_t gw;
    static ferry_component_t comp;
    if (wh)
        return wh;
    gw.ctx = fuzz_xmpp_ctx();
    comp.gw = &gw;
    comp.name = "main";
    comp.domain = "hooks.example.org";
    char err[256];
    int line;
    static toml_node_t *conf; /* static: a leak check at exit must not count it */
    conf = ferry__toml_parse(config, sizeof config - 1, err, sizeof err, &line);
    wh = conf ? webhook_create(&comp, conf) : NULL;
    if (!wh)
        fuzz_fail("webhook", "the harness config is refused: %s", err);
    return wh;
}

static void sign_github(ferry_http_exchange_t *ex, const endpoint_t *ep)
{
    const char *given = fuzz_ex_header(ex, "X-Hub-Signature-256");
    if (!given || strcmp(given, "auto") != 0)
        return;
    size_t len;
    const char *body = fuzz_ex_body(ex, &len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), ep->github_secret, (int)strlen(ep->github_secret),
         (const unsigned char *)body, len, mac, &mac_len);
    char value[8 + 2 * EVP_MAX_MD_SIZE] = "sha256=";
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(value + 7 + 2 * i, 3, "%02x", mac[i]);
    fuzz_ex_set_header(ex, "X-Hub-Signature-256", value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    webhook_t *wh = instance();
    ferry_http_exchange_t *ex = fuzz_ex_new(data, size);
    if (!ex)
        return 0;
    /* The server hands the handler only what its route matches. */
    if (fuzz_route_matches(wh->route, fuzz_ex_path(ex))) {
        fuzz_ex_set_route(ex, wh->route);
        sign_github(ex, find_endpoint(wh, "github"));
        stored = 0;
        request_path = fuzz_ex_path(ex);
        on_inbound(wh, ex);
        unsigned status = fuzz_ex_status(ex);
        if (!status)
            fuzz_fail("webhook", "no answer");
        if (status == 202 && stored == 0)
            fuzz_fail("webhook", "202 Accepted with nothing stored");
        if (status != 202 && stored)
            fuzz_fail("webhook", "%u answered, yet %zu stored", status, stored);
    }
    fuzz_ex_free(ex);
    return 0;
}
