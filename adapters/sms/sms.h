/* sms.h: the SMS adapter's shared state, and the seam between the adapter
 * (XMPP side, store, rate limits) and a provider (its HTTP API and webhook
 * format). Everything provider-specific lives in provider_*.c. */
#ifndef FERRY_SMS_H
#define FERRY_SMS_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/ferry.h"
#include "phone.h"

#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_OOB "jabber:x:oob"
#define NS_REGISTER "jabber:iq:register"
#define NS_GATEWAY "jabber:iq:gateway"
#define SMS_MAX_MEDIA 10

typedef struct sms sms_t;

/* One message to a phone, as the provider needs it. */
typedef struct sms_out {
    const char *from;                  /* E.164 */
    const char *to;
    const char *body;                  /* "" when only media */
    const char *media[SMS_MAX_MEDIA];
    size_t nmedia;
    const char *status_url;            /* where delivery reports go */
} sms_out_t;

/* What a provider said to a send. */
typedef struct sms_sent {
    char id[128];          /* the provider's message id, when accepted */
    char code[32];         /* its error code, when refused */
    char text[512];        /* its error text */
} sms_sent_t;

/* A message from a phone. */
typedef struct sms_in {
    char id[128];          /* the provider's id: replays carry the same */
    char from[PHONE_MAX];
    char to[PHONE_MAX];
    char *text;            /* malloc'd, "" when only media */
    char *media[SMS_MAX_MEDIA];
    size_t nmedia;
} sms_in_t;

enum sms_report_state { SMS_REPORT_OTHER, SMS_REPORT_DELIVERED, SMS_REPORT_FAILED };

/* A delivery report. */
typedef struct sms_report {
    char id[128];
    enum sms_report_state state;
    char code[32];
    char text[256];
} sms_report_t;

enum sms_webhook_kind { SMS_HOOK_IGNORED, SMS_HOOK_MESSAGE, SMS_HOOK_REPORT };

typedef struct sms_provider {
    const char *name;
    /* Reads the provider's keys of the component table. 0 or -1. */
    int (*configure)(sms_t *sms, const ferry_conf_t *conf);
    void (*unconfigure)(sms_t *sms);
    ferry_http_request_t *(*send)(sms_t *sms, const sms_out_t *out);
    /* Fills SENT from a 2xx or 4xx answer to send(). */
    void (*sent)(const ferry_http_response_t *resp, sms_sent_t *sent);
    /* Asks whether the account owns NUMBER. */
    ferry_http_request_t *(*lookup)(sms_t *sms, const char *number);
    /* 1 when the answer lists NUMBER exactly (lookups match prefixes too),
     * 0 not, -1 no usable answer. */
    int (*owned)(const ferry_http_response_t *resp, const char *number);
    /* Whether the webhook request is really from the provider. */
    int (*authentic)(sms_t *sms, ferry_http_exchange_t *ex);
    /* What the webhook says; fills IN or REPORT. -1 malformed. */
    int (*webhook)(ferry_http_exchange_t *ex, sms_in_t *in, sms_report_t *report);
    /* The success answer the provider expects to a webhook. */
    void (*answer)(ferry_http_exchange_t *ex);
} sms_provider_t;

extern const sms_provider_t sms_twilio;
extern const sms_provider_t sms_telnyx;

typedef struct sms_user {
    char *jid;             /* bare */
    char *number;
} sms_user_t;

typedef struct rate_slot rate_slot_t;

struct sms {
    ferry_component_t *comp;
    const sms_provider_t *provider;
    char *api_url;
    /* twilio */
    char *account_sid, *auth_token;
    /* telnyx */
    char *api_key;
    unsigned char public_key[32];
    int has_public_key;

    char *country_code;
    int64_t rate_limit;    /* messages per minute and user */
    int allow_registration;
    double timeout;
    sms_user_t *users;     /* from the config */
    size_t nusers;

    char route[300];
    char status_url[1200];
    rate_slot_t *rates;
    ferry_http_outbox_t *sends;   /* parts under way to the provider */
    ferry_list_t lookups;         /* registrations waiting for the provider */

    unsigned long long segments, parts_sent, unknown_to, forged;
};

/* ---- shared between the adapter's files ---- */

/* The configured or registered number of a user (bare JID); malloc'd. */
char *sms_number_of(sms_t *sms, const char *bare_jid);
/* The bare JID that owns NUMBER; malloc'd, NULL when nobody. */
char *sms_owner_of(sms_t *sms, const char *number);
/* Makes "NUMBER@domain" into BUF. */
void sms_number_jid(sms_t *sms, const char *number, char *buf, size_t len);

/* Whether a provider's list of numbers (JSON objects with "phone_number")
 * holds NUMBER exactly: 1, 0, or -1 when LIST is not an array. */
int sms_list_has_number(const void *json_list, const char *number);

/* sms_inbound.c: POST /sms/COMPONENT/{inbound,status}. */
void sms_on_webhook(void *arg, ferry_http_exchange_t *ex);
/* The send of provider message ID was answered and its record stored: a
 * report that came before that answer is acted on now. */
void sms_early_report(sms_t *sms, const char *id);

/* sms_register.c: XEP-0077 and XEP-0100 on the domain. 1 when answered. */
int sms_on_register_iq(sms_t *sms, xmpp_stanza_t *iq);
void sms_lookups_cancel(sms_t *sms);

#endif
