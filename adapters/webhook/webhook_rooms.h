/* webhook_rooms.h: what the webhook adapter (webhook.c) and its group chat
 * side (webhook_rooms.c) say to each other. An endpoint with `rooms` joins
 * them as an occupant (XEP-0045), says what is POSTed to it there, stays
 * joined (rejoins, XEP-0410 self-pings) and may POST what is said there. */
#ifndef FERRY_WEBHOOK_ROOMS_H
#define FERRY_WEBHOOK_ROOMS_H

#include <stddef.h>

#include "ferry/ferry.h"

enum { ROOM_MESSAGES_NONE, ROOM_MESSAGES_MENTIONS, ROOM_MESSAGES_ALL };

/* An endpoint's room keys, as read from its table. */
typedef struct room_conf {
    char **rooms;     /* bare room JIDs; NULL when none */
    char *nick;       /* defaults to the endpoint's name */
    char *password;   /* room_password, NULL when none */
    int messages;     /* ROOM_MESSAGES_* */
} room_conf_t;

/* Reads rooms, nick, room_password and room_messages of endpoint NAME's
 * table T (errors reported with file and line). HAS_URL: the endpoint has a
 * url, which room_messages other than "none" needs. 0 or -1. */
int webhook_room_conf_read(const ferry_conf_t *t, const char *name, int has_url, room_conf_t *rc);
void webhook_room_conf_free(room_conf_t *rc);
int webhook_room_conf_any(const room_conf_t *rc);

typedef struct rooms rooms_t;

/* Called for a message said in a room that room_messages asks to POST:
 * ENDPOINT is the endpoint's name, ROOM the room's bare JID, NICK who said
 * it. */
typedef void (*rooms_post_cb)(void *arg, const char *endpoint, xmpp_stanza_t *st, const char *body,
                              const char *room, const char *nick);

rooms_t *webhook_rooms_new(ferry_component_t *comp, rooms_post_cb post, void *arg);
/* Frees everything (after webhook_rooms_stop when it was started). */
void webhook_rooms_free(rooms_t *r);
void webhook_rooms_start(rooms_t *r);
/* Leaves the rooms; messages waiting for a room stay pending in the store. */
void webhook_rooms_stop(rooms_t *r);

/* Configuration, at create and at each reload: begin, add each endpoint's
 * rooms, commit. Rooms kept stay joined; new ones are joined, removed ones
 * left; rooms given up on (a ban, a room destroyed) are tried again. */
void webhook_rooms_begin(rooms_t *r, double ping_interval);
void webhook_rooms_add(rooms_t *r, const char *endpoint, const room_conf_t *rc);
void webhook_rooms_commit(rooms_t *r);

void webhook_rooms_on_link(rooms_t *r, int up);
/* Each returns 1 when the stanza was a room's (handled), else 0. */
int webhook_rooms_on_message(rooms_t *r, xmpp_stanza_t *st);
int webhook_rooms_on_presence(rooms_t *r, xmpp_stanza_t *st);
int webhook_rooms_on_iq(rooms_t *r, xmpp_stanza_t *st);

/* Stores TEXT, POSTed to ENDPOINT, once per room of it (DEDUP_BASE: the
 * request's dedup key, NULL without one). Adds to *stored and *duplicates;
 * returns -1 when a store failed. */
int webhook_rooms_put(rooms_t *r, const char *endpoint, const char *text, const char *dedup_base,
              size_t *stored, size_t *duplicates);
/* The outbox's deliver and dead for a room's message: 1 when MSG was one
 * (handled), 0 when it is not a room's. */
int webhook_rooms_deliver(rooms_t *r, const ferry_msg_t *msg);
int webhook_rooms_dead(rooms_t *r, const ferry_msg_t *msg, const char *reason);

void webhook_rooms_metrics(rooms_t *r, ferry_metrics_t *m);

#endif
