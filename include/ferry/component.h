/* ferry/component.h: what the core offers an adapter instance. A component
 * is one [components.NAME] table: its domain, its XEP-0114 link to the XMPP
 * server, and the adapter instance that serves it. */
#ifndef FERRY_COMPONENT_H
#define FERRY_COMPONENT_H

#include <stdint.h>

#include <strophe.h>
#include <uv.h>

#include "ferry/http_client.h"
#include "ferry/http_server.h"

typedef struct ferry_component ferry_component_t;

const char *ferry_component_name(const ferry_component_t *comp);
const char *ferry_component_domain(const ferry_component_t *comp);
uv_loop_t *ferry_component_loop(const ferry_component_t *comp);
/* The libstrophe context to build stanzas with (single-threaded, shared). */
xmpp_ctx_t *ferry_component_xmpp(const ferry_component_t *comp);
ferry_http_client_t *ferry_component_http_client(const ferry_component_t *comp);
ferry_http_server_t *ferry_component_http_server(const ferry_component_t *comp);
/* [http] public_url, without a trailing slash. */
const char *ferry_component_public_url(const ferry_component_t *comp);
int ferry_component_link_up(const ferry_component_t *comp);
/* The slot this instance holds for the component: 0 with SQLite (one
 * instance, always active); with a PostgreSQL store the slot taken
 * ([components.NAME] slots), -1 while it holds none (a standby, or before
 * the first is taken). It is known when on_link(up) is called: state that
 * belongs to a slot (a standby takes over a dead instance's slot) is
 * restored there, not at start. */
int ferry_component_slot(const ferry_component_t *comp);
/* Wall-clock milliseconds since the epoch. */
int64_t ferry_now_ms(void);

/* Sends a stanza from this component: serialised at once (the caller keeps
 * its reference) and written now, or queued while the link is down. A
 * stanza without 'from' gets the component's domain. */
void ferry_component_send(ferry_component_t *comp, xmpp_stanza_t *stanza);

/* ferry_component_send(), then the caller's reference released: for a
 * stanza built only to be sent. */
void ferry_component_send_release(ferry_component_t *comp, xmpp_stanza_t *stanza);

/* Sends a stanza the adapter serialised itself (hot paths that build XML
 * text directly; escape what goes in with ferry_xml_escape). 'from' must be
 * set. */
void ferry_component_send_xml(ferry_component_t *comp, const char *xml, size_t len);

/* Replies to STANZA with an RFC 6120 error: same id, to/from swapped, the
 * original children kept, <error type=TYPE><CONDITION/><text/></error>.
 * Does nothing when STANZA is itself an error (never an error to an error). */
void ferry_component_reply_error(ferry_component_t *comp, xmpp_stanza_t *stanza,
                                 const char *type, const char *condition, const char *text);

/* Whether JID (full or bare) is one of the [admin] jids. */
int ferry_component_is_admin(const ferry_component_t *comp, const char *jid);

/* Inside stop(): 1 when the operator stops ferry for good (SIGUSR1), 0 for
 * a stop that a start will follow (SIGTERM): users' sessions may be kept
 * in the store and resumed then, without telling them. */
int ferry_component_stopping_for_good(const ferry_component_t *comp);

/* An adapter that was asked to stop calls this once its work is finished
 * (requests done or cancelled, handles closed). */
void ferry_component_stopped(ferry_component_t *comp);

#endif
