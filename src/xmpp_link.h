/* xmpp_link.h: one XEP-0114 component stream to the XMPP server, on libuv:
 * connect, handshake, keepalive and ping, reconnect with backoff, and a
 * bounded queue of outbound stanzas while the link is down. */
#ifndef FERRY_XMPP_LINK_H
#define FERRY_XMPP_LINK_H

#include <stddef.h>

#include <strophe.h>
#include <uv.h>

typedef struct ferry__xmpp_link ferry__xmpp_link_t;

typedef struct ferry__xmpp_link_options {
    const char *host;
    int port;
    const char *domain;
    const char *secret;
    const char *scope;          /* log scope: the component's name */
    size_t queue_size;
    size_t max_stanza_size;
    double ping_interval;       /* seconds */
    double ping_timeout;
    double keepalive_interval;
} ferry__xmpp_link_options_t;

typedef struct ferry__xmpp_link_handlers {
    void (*stanza)(void *arg, xmpp_stanza_t *stanza); /* released after the call */
    void (*state)(void *arg, int up);
    /* The server's answer to a ping this link did not send: another ferry
     * instance's on the same component (the server routes its answers to
     * any of them). Optional. */
    void (*foreign_answer)(void *arg, const char *id);
    /* 1 while answers to this link's pings may be lost on their way from
     * another instance (the store that passes them on is away): a ping
     * left unanswered then says nothing about the server. Optional. */
    int (*answers_away)(void *arg);
} ferry__xmpp_link_handlers_t;

enum { KIND_MESSAGE, KIND_PRESENCE, KIND_IQ, KIND_OTHER, KIND_COUNT };

typedef struct ferry__xmpp_link_stats {
    int up;
    unsigned long long in[KIND_COUNT];  /* stanzas by kind */
    unsigned long long out[KIND_COUNT];
    unsigned long long reconnects;
    unsigned long long dropped;     /* queued stanzas dropped over queue_size */
    unsigned long long lost_bytes;  /* written, not yet taken by the kernel when the link failed */
    unsigned long long backlog;     /* bytes written that the server's TCP has not acknowledged */
    size_t queued;
    char last_error[256];
} ferry__xmpp_link_stats_t;

ferry__xmpp_link_t *ferry__xmpp_link_new(uv_loop_t *loop, xmpp_ctx_t *ctx,
                                         const ferry__xmpp_link_options_t *opts,
                                         const ferry__xmpp_link_handlers_t *handlers, void *arg);
/* Connects (from idle; a started link reconnects by itself). */
void ferry__xmpp_link_start(ferry__xmpp_link_t *link);
/* Cuts the connection at once and stays idle (no retry) until started
 * again; REASON is logged and becomes last_error. Stanzas sent meanwhile
 * wait in the queue. */
void ferry__xmpp_link_stop(ferry__xmpp_link_t *link, const char *reason);
/* Writes a serialised stanza now, or queues it while the link is down. */
void ferry__xmpp_link_send_text(ferry__xmpp_link_t *link, const char *text, size_t len);
/* Writes already serialised stanzas; only while the link is up (-1 else). */
int ferry__xmpp_link_send_raw(ferry__xmpp_link_t *link, const char *text, size_t len);
/* Sends a ping to the server: CB(arg, 1) when its answer arrives, proving
 * the server has taken everything written before it; CB(arg, 0) when the
 * link goes down first. Only while the link is up (-1 else). */
int ferry__xmpp_link_barrier(ferry__xmpp_link_t *link, void (*cb)(void *arg, int ok), void *arg);
/* The server's answer to iq ID, as another instance received it: counts as
 * if it came on this link, when it is one of ours. */
void ferry__xmpp_link_answered(ferry__xmpp_link_t *link, const char *id);
int ferry__xmpp_link_is_up(const ferry__xmpp_link_t *link);
void ferry__xmpp_link_stats(const ferry__xmpp_link_t *link, ferry__xmpp_link_stats_t *out);
/* Closes the stream with </stream:stream> after pending writes, waits for
 * the server's close (bounded), then frees the link and calls done. */
void ferry__xmpp_link_close(ferry__xmpp_link_t *link, void (*done)(void *arg), void *arg);

#endif
