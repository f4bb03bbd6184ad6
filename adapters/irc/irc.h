/* irc.h: the IRC adapter's model, as biboumi splits it: a per-user IRC
 * client (irc_conn.c), channels whose member lists are shared by every
 * local user in them (irc_chan.c), and the bridge that translates between
 * MUC and IRC (bridge.c), the only file that knows both sides. irc.c reads
 * the config and routes stanzas; irc_jid.c is the JID convention. */
#ifndef FERRY_IRC_H
#define FERRY_IRC_H

#include <stddef.h>
#include <stdint.h>

#include <iconv.h>
#include <uv.h>

#include "ferry/ferry.h"
#include "ferry/net.h"
#include "irc_proto.h"

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define IRC_NICK_MAX 64
#define IRC_NAME_MAX 256
#define IRC_CHARSET_MAX 32 /* an iconv name, with its NUL */

typedef struct irc irc_t;
typedef struct irc_conn irc_conn_t;
typedef struct irc_chan irc_chan_t;

/* [components.X.servers."NAME"] */
typedef struct irc_server {
    char *name;             /* as users write it in JIDs */
    char *host;
    int port;
    int tls, verify_cert;
    char *realname;
    double throttle_burst, throttle_rate;
} irc_server_t;

/* ---- JIDs (irc_jid.c) ---- */

enum irc_jid_kind { IRC_JID_INVALID, IRC_JID_SERVER, IRC_JID_CHANNEL, IRC_JID_USER };

typedef struct irc_jid {
    enum irc_jid_kind kind;
    int implicit_server;        /* no "%server": the default server */
    char server[IRC_NAME_MAX];
    char channel[IRC_NAME_MAX]; /* with its prefix; "" unless CHANNEL */
    char nick[IRC_NICK_MAX];    /* USER: the nick; CHANNEL: the resource (occupant) */
} irc_jid_t;

/* Reads "#chan%server@gw/Nick", "nick%server@gw", "server@gw" (and without
 * "%server" when DEFAULT_SERVER is set); XEP-0106 escapes are undone. */
int irc_jid_parse(const char *jid, const char *default_server, const char *chantypes,
                  irc_jid_t *out);
/* The room JID "#chan%server@domain", or "#chan@domain" when SERVER is NULL
 * (the default server); XEP-0106-escaped where needed. */
void irc_jid_room(char *buf, size_t len, const char *channel, const char *server,
                  const char *domain);
/* "nick%server@domain", or "nick@domain" when SERVER is NULL. */
void irc_jid_user(char *buf, size_t len, const char *nick, const char *server,
                  const char *domain);

/* ---- channels (irc_chan.c) ---- */

/* A channel message one local connection has read and others have not yet:
 * they read the same line on their own connection and give it the same id
 * (irc_ids.c). */
typedef struct irc_said {
    uint64_t hash;          /* of the sender's nick and the raw line */
    int64_t entered_ms;
    uint32_t pending;       /* joined connections still to read it */
    char id[32];
} irc_said_t;

typedef struct irc_member {
    char *nick;
    char *userhost;         /* "user@host" from a prefix or WHO; NULL: unknown */
    char modes[8];          /* prefixes this member has: "@", "+", "~", ... */
    /* Every local connection in the channel sees the same QUIT, PART or
     * NICK; the first one applies it to the shared list, and the entry
     * remembers it until the others (pending) have seen it too. */
    int gone;               /* left; removed once pending reaches 0 */
    char *old_nick;         /* renamed from; forgotten once pending reaches 0 */
    size_t pending;
    /* Index links (irc_chan.c): position + 1 of the next entry in the same
     * bucket, 0 at the end. */
    uint32_t hash, next;        /* by nick: present, or gone */
    uint32_t old_hash, old_next;/* by old_nick */
} irc_member_t;

struct irc_chan {
    ferry_list_t link;      /* in the adapter's chans */
    char *server;
    char *name;             /* as the server spells it */
    char *folded;
    irc_member_t *members;
    size_t nmembers, cap;
    /* Hash buckets (position + 1 of the first entry, 0: empty), nbuckets
     * each: present members by nick, gone ones by nick, renamed ones by
     * old nick. Every event is looked up by each local connection in the
     * channel, so a scan would cost members x connections. */
    uint32_t *buckets;
    size_t nbuckets;
    char *topic;
    char *topic_setter;     /* nick, when TOPIC or 333 said who */
    int synced;             /* the member list is complete (NAMES ended) */
    size_t users;           /* local users in it */
    size_t joined;          /* local connections the server has joined to it */
    irc_conn_t *leader;     /* whose events keep the member list */
    /* Messages not yet read by every joined local connection, numbered
     * from 0 (said_base up to nsaid), in a ring of said_cap (a power of 2)
     * that exists only while several local connections share the channel. */
    irc_said_t *said;
    size_t said_cap;
    uint64_t said_base, nsaid;
    size_t recorders;       /* joined local rooms that record history: archive while > 0 */
    ferry_history_room_t *archive; /* while recorders > 0, from the first message */
};

irc_chan_t *irc_chan_get(irc_t *irc, const char *server, const char *name, irc_casemap_t map);
void irc_chan_release(irc_chan_t *chan);
/* Forgets every member (the leader's NAMES will fill the list afresh). */
void irc_chan_clear(irc_chan_t *chan);
/* A present member by nick (gone ones are not found). */
irc_member_t *irc_chan_member(irc_chan_t *chan, const char *nick, irc_casemap_t map);
/* The entry an event about NICK refers to for a connection that has not
 * seen it yet: present, gone, or renamed from NICK. */
irc_member_t *irc_chan_witness(irc_chan_t *chan, const char *nick, irc_casemap_t map);
/* This connection has seen the event that marked M: forget it when all
 * have. */
void irc_chan_seen(irc_chan_t *chan, irc_member_t *m);
irc_member_t *irc_chan_add(irc_chan_t *chan, const char *nick, const char *modes,
                           irc_casemap_t map);
void irc_chan_remove(irc_chan_t *chan, const char *nick, irc_casemap_t map);
void irc_chan_rename(irc_chan_t *chan, const char *from, const char *to, irc_casemap_t map);
void irc_chan_set_topic(irc_chan_t *chan, const char *topic);
/* SETTER: the nick that set the topic (NULL: unknown). */
void irc_chan_set_topic_setter(irc_chan_t *chan, const char *setter);
void irc_chan_set_userhost(irc_member_t *m, const char *userhost);

/* ---- connections (irc_conn.c) ---- */

enum irc_conn_state { IRC_CONNECTING, IRC_REGISTERING, IRC_READY, IRC_CLOSED };

/* A channel as one connection sees it, and which XMPP resources are in it. */
/* A channel message held until the room is announced (bridge.c). */
typedef struct irc_held {
    ferry_list_t link;      /* in the room's held */
    char *nick, *text, *sid;
    int archived; /* in the channel's archive: a history replay carries it */
} irc_held_t;

typedef struct irc_room {
    struct irc_room *next;
    irc_chan_t *chan;
    char *name;             /* as the user asked for it */
    char *asked_nick;       /* the nick the user asked for in this room */
    int short_jid;          /* addressed as #chan@domain (the default server) */
    char **resources;       /* full JIDs of the user in the room */
    int *history_max;       /* per resource: messages of history wanted on join */
    int64_t *history_since; /* per resource: not older than (ms), 0: any */
    size_t nresources;
    char **pending_ids;     /* presence ids to answer once joined */
    uint64_t said_seen;     /* the first channel message (of chan->nsaid) not read yet */
    uint64_t said_mask;     /* bit k: message said_seen + k read already */
    int record;             /* wants it archived (irc_room_effective); counted in
                             * chan->recorders while joined */
    int persistent;         /* stays joined with no resource (a bouncer) */
    int joined;             /* JOIN seen for us */
    int named;              /* NAMES ended since */
    int who_pending;        /* our WHO for everyone's user@host has not ended */
    int announced;          /* occupant list sent to XMPP */
    /* Channel messages that came after our JOIN but before the occupant
     * list could go out (NAMES or our WHO not ended): said right after it. */
    ferry_list_t held;      /* irc_held_t, oldest first */
    size_t nheld;
    /* The last resource left and PART is on its way: the room stays until
     * IRC confirms, so that a join sent meanwhile is not undone by it. */
    int parting;
} irc_room_t;

/* disco#items on the server JID waiting for a LIST to end. */
typedef struct irc_listing {
    ferry_list_t link;      /* in the connection's listings */
    xmpp_stanza_t *iq;
    int short_jid;          /* asked on the component: "#chan@domain" items */
} irc_listing_t;

typedef struct irc_listed {
    char *channel;
    char *topic;
    long users;
} irc_listed_t;

/* A nick the user wrote to through a room (room/Nick): its answers come
 * from there (bridge.c). */
typedef struct irc_pm_route {
    ferry_list_t link;      /* in the connection's pm_routes */
    char *nick;
    char *room;             /* the channel */
} irc_pm_route_t;

/* A version iq sent to an IRC user as CTCP VERSION (irc_ctcp.c). */
typedef struct irc_ctcp_wait {
    ferry_list_t link;      /* in the connection's ctcp_waits */
    char nick[IRC_NICK_MAX];
    xmpp_stanza_t *iq;
    uint64_t since;         /* loop time it was asked */
} irc_ctcp_wait_t;

/* What a user registered for a server (XEP-0077 on the server's JID). */
typedef struct irc_user_settings {
    char nick[IRC_NICK_MAX];
    char username[IRC_NICK_MAX];
    char realname[IRC_NAME_MAX];
    char password[IRC_NAME_MAX]; /* SASL PLAIN; "" when none */
    char pass[IRC_NAME_MAX];     /* server password (PASS); "" when none */
    char ports[64], tls_ports[64]; /* "6667,6668": the first is used; "" when none */
    int verify_cert;             /* -1: the server's */
    int throttle_limit;          /* lines a second; -1: the server's */
    char encoding_in[IRC_CHARSET_MAX], encoding_out[IRC_CHARSET_MAX]; /* "" for UTF-8 */
} irc_user_settings_t;

/* How one user's connection reaches a server: the config, with what the
 * user chose (ports, TLS ports, verify_cert, throttle_limit). */
typedef struct irc_route {
    int port, tls, verify_cert;
    double burst, rate;
} irc_route_t;
void irc_settings_route(const irc_server_t *server, const irc_user_settings_t *s,
                        irc_route_t *r);

/* 0 and S filled (empty fields when nothing is stored). */
int irc_settings_load(irc_t *irc, const char *server, const char *jid, irc_user_settings_t *s);
/* The commands to send after connecting, one a line (malloc'd), or NULL. */
char *irc_settings_commands(irc_t *irc, const char *server, const char *jid);
/* Stores S and COMMANDS (one a line; may be NULL). 0 or -1. */
int irc_settings_store(irc_t *irc, const char *server, const char *jid,
                       const irc_user_settings_t *s, const char *commands);
int irc_settings_forget(irc_t *irc, const char *server, const char *jid);

/* What a connection tells its owner (the bridge), as the core's XMPP link
 * tells its own; ARG is the one given to irc_conn_new(). */
typedef struct irc_conn_handlers {
    /* The connection entered STATE: IRC_CONNECTING (an attempt begins),
     * IRC_REGISTERING (connected, TLS done), IRC_READY (001: registered,
     * again after a reconnect; the queued lines go out after the call). */
    void (*state)(void *arg, irc_conn_t *conn, enum irc_conn_state state);
    /* Every line read, after the connection took what is its own (PING,
     * 001, 005, CAP and SASL). */
    void (*line)(void *arg, irc_conn_t *conn, irc_msg_t *m);
    /* The connection dropped (REASON). WAS_UP: it was registered until now
     * (not a reconnect that failed). Return 1 and the connection comes
     * back by itself, with backoff; 0 and it closes for good (closed
     * follows at once). */
    int (*lost)(void *arg, irc_conn_t *conn, const char *reason, int was_up);
    /* irc_conn_quit(): the connection goes for good. The owner forgets it
     * and frees what it keeps on it; only freed follows. */
    void (*closed)(void *arg, irc_conn_t *conn);
    /* Its handles are closed and CONN is freed: a stop may finish. */
    void (*freed)(void *arg);
} irc_conn_handlers_t;

struct irc_conn {
    ferry_list_t link;      /* in the adapter's conns (irc.c) */
    irc_t *irc;
    const irc_conn_handlers_t *handlers;
    void *arg;
    const irc_server_t *server;
    char *jid;              /* the bare JID this connection serves */
    char nick[IRC_NICK_MAX];
    char wanted_nick[IRC_NICK_MAX];
    irc_user_settings_t settings;
    int cap;                /* IRCv3 CAP: 1 negotiating, 2 done */
    int caps_offered;       /* what CAP LS listed that we use */
    int uhnames;            /* userhost-in-names acknowledged */
    irc_route_t route;      /* set at each connection attempt */
    iconv_t enc_in, enc_out;   /* the user's encodings (irc_charset.c); NULL: none */
    ferry_list_t chan_charsets; /* irc_chan_charset_t per channel, as read, the latest used
                                 * first (irc_charset.c) */
    int sasl;               /* 1 negotiating, 2 done */
    enum irc_conn_state state;
    int registered;         /* got 001 at least once */

    /* The bridge's (bridge.c): set and freed there (its closed handler). */
    int restored;           /* opened to put users back after a restart */
    irc_room_t *rooms;
    ferry_list_t listings;     /* irc_listing_t waiting for 323, the newest first */
    int list_sent;
    char *motd;             /* 372 lines so far, sent as one message at 376 */
    int welcomed;           /* the MOTD ended: numerics now answer the user */
    ferry_list_t pm_routes;    /* irc_pm_route_t */
    ferry_list_t ctcp_waits;   /* irc_ctcp_wait_t, oldest first */
    int server_online;      /* the server JID's available presence was sent */
    int contact_muted;      /* the user unsubscribed from the server JID */
    irc_listed_t *listed;      /* 322 replies so far */
    size_t nlisted, listed_cap;

    irc_casemap_t casemap;
    char chantypes[16];
    char prefixes[16];      /* ISUPPORT PREFIX symbols, highest first: "~&@%+" */
    char prefix_modes[16];  /* the mode letters in the same order: "qaohv" */
    /* ISUPPORT CHANMODES: modes that always take an argument (types A and
     * B), and those that take one only when set (type C). */
    char arg_modes[64];
    char set_arg_modes[32];

    ferry_net_t *net;       /* this attempt's connection; NULL between attempts */
    int nets_closing;       /* closed ones not yet freed: a quit waits for them */
    irc_linebuf_t partial;  /* a line split across reads, up to 64 KiB */

    char **queue;           /* lines waiting for the throttle */
    size_t qhead, qcount, qcap;
    double tokens;
    double reply_tokens;    /* PONGs' own budget (irc_conn.c, flood control) */
    int pong_waiting;       /* pong_token waits for reply_tokens */
    char pong_token[IRC_LINE_MAX + 1];
    uint64_t last_fill;
    uv_timer_t throttle;    /* runs only while lines wait */
    int throttle_open;

    uint64_t last_read;     /* for the adapter-wide liveness check */
    int ping_sent;
    unsigned attempt;       /* reconnects since the last 001: the backoff */
    uv_timer_t retry;       /* runs only while a reconnect waits (or a stall is reported) */
    int retry_open;
    int closing;
};

/* A connection of JID to SERVER as NICK, not started; HANDLERS (kept, not
 * copied) and ARG: what it tells its owner. */
irc_conn_t *irc_conn_new(irc_t *irc, const irc_server_t *server, const char *jid,
                         const char *nick, const irc_conn_handlers_t *handlers, void *arg);
/* Connects (again): resolve, TCP, TLS, registration. */
void irc_conn_start(irc_conn_t *conn);
/* Queues a command; -1 when a parameter would break the line. */
int irc_conn_send(irc_conn_t *conn, const char *command, const char *const *params, int n);
/* Writes at once, before 001 too (registration: NICK, USER, CAP). */
void irc_conn_send_now(irc_conn_t *conn, const char *command, const char *const *params, int n);
/* QUIT (with REASON, when not NULL and registered) and close for good: the
 * closed handler runs at once; once its handles are closed the connection
 * frees itself, and the freed handler runs. Idempotent. */
void irc_conn_quit(irc_conn_t *conn, const char *reason);
/* The adapter-wide liveness check calls this: PING when idle, drop when a
 * PING went unanswered. */
void irc_conn_check(irc_conn_t *conn, uint64_t now);
const char *irc_conn_mode_prefix(const irc_conn_t *conn, char mode);

/* ---- the bridge (bridge.c): events from IRC, requests from XMPP ---- */

/* What the bridge does with its connections' events (ARG: the irc_t). */
extern const irc_conn_handlers_t irc_bridge_conn_handlers;
/* Takes the user out of every room of CONN (unavailable presences with 110
 * and CODE, when not 0) and QUITs. */
void irc_bridge_disconnect(irc_conn_t *conn, const char *reason, int code);

void irc_bridge_presence(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to);
void irc_bridge_message(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to);
/* XEP-0077 on a server JID: nick, username, realname, password. 1 when
 * answered. */
int irc_bridge_register(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);
/* disco#items on a server JID: its channels (LIST), paged with XEP-0059. */
void irc_bridge_list(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);
/* muc#admin: kick, operator and voice. 1 when answered. */
int irc_bridge_admin(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);

/* The user's room of CONN by channel name (NULL: not in it). */
irc_room_t *irc_bridge_find_room(irc_conn_t *conn, const char *channel);
/* Whether the resource JID is in ROOM and the room is joined on IRC. */
int irc_bridge_in_room(irc_room_t *room, const char *jid);
/* An error stanza from a resource to a room: the resource leaves it. */
void irc_bridge_on_error(irc_t *irc, xmpp_stanza_t *st, const irc_jid_t *to);

/* ---- CTCP (irc_ctcp.c) ---- */

/* CTCP VERSION and PING sent to the user: answered for it. 1 when handled. */
int irc_ctcp_on_request(irc_conn_t *conn, const char *nick, const char *text);
/* A CTCP reply (NOTICE): the answer to a version iq. 1 when handled. */
int irc_ctcp_on_reply(irc_conn_t *conn, const char *nick, const char *text);
/* jabber:iq:version to an occupant or an IRC user: CTCP VERSION. */
void irc_ctcp_version_iq(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);
/* Answers what waited too long (NOW: loop time), or everything (FORCE). */
void irc_ctcp_expire(irc_conn_t *conn, uint64_t now, int force);

/* ---- the server JID as a contact (irc_contact.c) ---- */

/* "server@domain", or the domain itself for the default server. */
void irc_contact_server_jid(irc_conn_t *conn, char *buf, size_t len);
/* A chat message to the user from the server JID. */
void irc_contact_says(irc_conn_t *conn, const char *text);
/* "Connecting to host:port (encrypted)", "Connected to IRC server.",
 * "Connection failed: REASON" (or "closed", once it had been up). */
void irc_contact_connecting(irc_conn_t *conn);
void irc_contact_connected(irc_conn_t *conn);
void irc_contact_failed(irc_conn_t *conn, const char *reason, int was_connected);
/* The connection came up (1) or went down (0): the server JID's presence. */
void irc_contact_online(irc_conn_t *conn, int up);
/* Subscriptions and probes to the component or a server JID. 1 when it
 * was one. */
int irc_contact_presence(irc_t *irc, xmpp_stanza_t *st);

/* ---- disco (irc_disco.c) ---- */

/* disco#info and #items on rooms, server JIDs and (with a default server)
 * the component. 1 when answered. */
int irc_disco_iq(irc_t *irc, xmpp_stanza_t *iq);
void irc_disco_domain_info(irc_t *irc, xmpp_stanza_t *query);
/* XEP-0410 self-ping to an occupant JID. 1 when answered. */
int irc_bridge_ping(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);

/* The room's JID as the user addresses it, with "/NICK" when NICK is set. */
void irc_bridge_room_jid(irc_conn_t *conn, irc_room_t *room, const char *nick, char *buf, size_t len);

/* ---- history (irc_history.c) ---- */

/* The archive name of a channel: "server channel-folded". */
void irc_history_room_key(irc_conn_t *conn, irc_room_t *room, char *buf, size_t len);
/* Archives one channel message (irc_ids.c calls it once per message, not
 * per local user). The archive id, or 0 when not archived. */
int64_t irc_history_record(irc_conn_t *conn, irc_room_t *room, const char *nick, const char *body);
/* No local user records CHAN any more: its archive is another instance's
 * to keep (ferry_history_room_close()). */
void irc_history_stop(irc_chan_t *chan);
/* Sends the history a resource asked for when joining. */
void irc_history_replay(irc_conn_t *conn, irc_room_t *room, size_t resource);
/* Reads <x xmlns=muc><history .../></x> of a join presence. */
void irc_history_request(irc_t *irc, xmpp_stanza_t *presence, int *max, int64_t *since);
/* XEP-0313 on a room JID. 1 when answered. */
int irc_history_mam(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);

/* ---- stable message ids (irc_ids.c, XEP-0359) ---- */

/* The lines a message of the user went out as, for irc_ids_own(). */
typedef struct irc_sent_lines {
    uint64_t hash[8];
    size_t n;
} irc_sent_lines_t;

uint64_t irc_ids_hash(const char *nick, const char *line);
/* The id of a channel message that came from IRC as LINE (the raw
 * PRIVMSG text) from NICK; BODY is what the user reads. The first local
 * connection to see it archives it; the others get the same id. The
 * returned text lives until the next call. */
const char *irc_ids_from_irc(irc_conn_t *conn, irc_room_t *room, const char *nick,
                             const char *line, const char *body);
/* The id of the user's own message BODY, sent as the lines in SENT:
 * archived now, and the other local connections will find it. */
const char *irc_ids_own(irc_conn_t *conn, irc_room_t *room, const char *body,
                        const irc_sent_lines_t *sent);
/* The connection joined the channel (older messages are not its own) /
 * left it: counts the rooms that want the channel archived. */
void irc_ids_joined(irc_room_t *room);
void irc_ids_left(irc_room_t *room);
/* The room's record_history became RECORD. */
void irc_ids_record(irc_room_t *room, int record);

/* ---- encodings (irc_charset.c) ---- */

/* A channel's own encodings as one connection read them from the room
 * options (a cache: a channel with none has an entry too). */
typedef struct irc_chan_charset {
    ferry_list_t link;      /* in the connection's chan_charsets */
    iconv_t in, out;        /* NULL: the server's */
    char folded[];          /* the channel, rfc1459-folded */
} irc_chan_charset_t;

/* Whether iconv knows NAME and it keeps ASCII as it is. */
int irc_charset_valid(const char *name);
/* (Re)opens the converters of the connection's settings. */
void irc_charset_open(irc_conn_t *conn);
void irc_charset_close(irc_conn_t *conn);
/* A channel's encodings changed (irc_room_options_store): read again. */
void irc_charset_forget(irc_conn_t *conn, const char *channel);
/* A line read, into UTF-8 in OUT: its length, 0 when nothing is set. A
 * line about a channel (PRIVMSG, NOTICE, TOPIC, PART, KICK, the topic on
 * join) is read in that channel's encoding_in, else the server's. */
size_t irc_charset_in(irc_conn_t *conn, const char *line, size_t len, char *out, size_t cap);
/* A line to write (with its CR LF), into encoding_out in OUT (the
 * channel's, for those commands to a channel): its length, 0 when nothing
 * is set, (size_t)-1 when it cannot be sent so. */
size_t irc_charset_out(irc_conn_t *conn, const char *line, size_t len, char *out, size_t cap);

/* ---- what users choose (irc_options.c) ---- */

typedef struct irc_user_options {
    int record_history;     /* archive the channels I am in (default: [history]) */
    int max_history;        /* messages on join unless the client asks; -1: the config's */
    int persistent;         /* every channel persistent */
} irc_user_options_t;

typedef struct irc_room_options {
    int record_history;     /* -1: as the user's options say */
    int persistent;         /* stay on IRC while no resource is in the room */
    char encoding_in[IRC_CHARSET_MAX], encoding_out[IRC_CHARSET_MAX]; /* "": the server's */
} irc_room_options_t;

void irc_user_options_load(irc_t *irc, const char *bare, irc_user_options_t *o);
int irc_user_options_store(irc_t *irc, const char *bare, const irc_user_options_t *o);
void irc_room_options_load(irc_t *irc, const char *server, const char *channel, const char *bare,
                           irc_room_options_t *o);
int irc_room_options_store(irc_t *irc, const char *server, const char *channel, const char *bare,
                           const irc_room_options_t *o);
/* What applies to a room: the room's choice, else the user's. */
void irc_room_effective(irc_t *irc, const char *server, const char *channel, const char *bare,
                        int *record, int *persistent);
/* CB for every channel a user made persistent while their stanzas came in
 * on SLOT (restore when the slot is taken). */
void irc_room_options_persistent(irc_t *irc, int slot,
                                 void (*cb)(irc_t *irc, const char *server, const char *channel,
                                            const char *bare));

/* ---- ad-hoc commands and muc#owner (irc_adhoc.c) ---- */

/* XEP-0050 on the domain, a server JID or a room JID, and the command
 * lists of server and room JIDs. 1 when answered. */
int irc_adhoc(irc_t *irc, xmpp_stanza_t *iq);
/* The domain's own commands, for the core's list. */
void irc_adhoc_items(void *self, xmpp_stanza_t *iq, xmpp_stanza_t *query);
/* XEP-0045 muc#owner on a room: the room configure form. 1 when answered. */
int irc_owner(irc_t *irc, xmpp_stanza_t *iq, const irc_jid_t *to);
/* The user changed their options: applied to every room they are in. */
void irc_bridge_user_options_changed(irc_t *irc, const char *bare);
/* The user changed a room's options: applied to the room if joined. */
void irc_bridge_room_options_changed(irc_t *irc, const char *bare, const irc_server_t *server,
                                 const char *channel);
/* ---- what survives a restart (irc_state.c) ---- */

/* RESOURCE is in ROOM (stored with the connection's nick and committed:
 * call it before the JOIN goes to IRC). */
void irc_state_joined(irc_conn_t *conn, irc_room_t *room, const char *resource);
/* RESOURCE left ROOM for good (not when ferry stops for a restart);
 * committed: call it before the PART goes to IRC. */
void irc_state_left(irc_conn_t *conn, irc_room_t *room, const char *resource);
/* The connection's nick changed: every room of it is stored again. */
void irc_state_renamed(irc_conn_t *conn);
/* When SLOT is taken (at start with SQLite, else on the link coming up):
 * reconnects and rejoins for every resource stored under SLOT, and the
 * persistent channels with slot 0. */
void irc_state_restore(irc_t *irc, int slot);
/* 1 when MOTD was not the last one shown to this user on this server
 * (and remembers it as shown). */
int irc_state_motd_new(irc_conn_t *conn, const char *motd);

/* The bridge's half of a restore: RESOURCE (of BARE) is in CHANNEL of
 * SERVER again, as NICK; its room state is sent once the channel is
 * joined. RESOURCE NULL: a persistent channel nobody is in (NICK may be
 * NULL: the user's usual nick). */
void irc_bridge_restore(irc_t *irc, const irc_server_t *server, const char *channel,
                    const char *bare, const char *resource, const char *nick, int short_jid);

/* ---- the adapter (irc.c) ---- */

struct irc {
    ferry_component_t *comp;
    irc_server_t *servers;
    size_t nservers;
    char *default_server;
    char **allow;
    int history;            /* archive channel messages */
    int64_t history_on_join;/* messages replayed on join unless the client asks */
    int64_t history_days;   /* kept this long */
    uint64_t archived;      /* since the last prune */
    ferry_list_t conns;     /* irc_conn_t, the newest first */
    size_t live;            /* connections not yet freed (closing ones too) */
    ferry_list_t chans;     /* irc_chan_t */
    uv_timer_t liveness;    /* one timer for every connection */
    int liveness_open;
    int slot;               /* whose room records it restored and writes: -1 before */
    int stopping;
    int for_good;           /* stopping for good: users are told, rooms forgotten */
    ferry_net_tls_t *tls;   /* every connection's; verify_cert = false is per connection */
    unsigned long long lines_in, lines_out, stanzas_out;
};

const irc_server_t *irc_find_server(irc_t *irc, const char *name);
/* irc_find_server(), or NULL after answering ST not-allowed: a server this
 * component does not bridge. With BARE, the bare JID of ST's sender is
 * written there when the server is served. */
const irc_server_t *irc_served_server(irc_t *irc, xmpp_stanza_t *st, const char *name,
                                      char *bare, size_t bare_len);
irc_conn_t *irc_find_conn(irc_t *irc, const char *jid, const char *server);
/* Disconnects BARE from SERVER, or from every server when SERVER is NULL,
 * with irc_bridge_disconnect(REASON, STATUS); returns how many connections. */
size_t irc_disconnect_user(irc_t *irc, const char *bare, const char *server, const char *reason,
                           int status);
/* The list of connections (irc->conns) and the count of those not yet
 * freed (a stop waits for it): a connection joins the list when opened,
 * leaves it when it closes for good, and is counted until freed. */
void irc_conn_add(irc_t *irc, irc_conn_t *conn);
void irc_conn_forget(irc_t *irc, irc_conn_t *conn);
void irc_conn_freed(irc_t *irc);

#endif
