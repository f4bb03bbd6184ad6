/* ferry/history.h: a message archive per group chat, kept in the store:
 * for history on join (XEP-0045) and MAM (XEP-0313). Writes are batched
 * with everything else the store writes. */
#ifndef FERRY_HISTORY_H
#define FERRY_HISTORY_H

#include <stdint.h>

#include "ferry/component.h"

typedef struct ferry_history_query {
    int64_t after_id, before_id;   /* archive ids; 0: no bound */
    int64_t start_ms, end_ms;      /* wall clock; 0: no bound */
    int64_t limit;
    int newest_first;              /* for "the last N" and paging backwards */
} ferry_history_query_t;

typedef void (*ferry_history_cb)(void *arg, int64_t id, int64_t ts_ms, const char *nick,
                                 const char *body);

/* Archives one message of ROOM (any stable name the adapter chooses); NICK
 * and BODY are stored cleaned (ferry_xml_text_clean_to). 0 and *id (may be
 * NULL), or -1. */
int ferry_history_add(ferry_component_t *comp, const char *room, int64_t ts_ms, const char *nick,
                      const char *body, int64_t *id);
/* Calls CB for each matching message (nick and body cleaned, also in rows
 * stored before they were cleaned on the way in); returns how many, or -1. */
int ferry_history_query(ferry_component_t *comp, const char *room, const ferry_history_query_t *q,
                        ferry_history_cb cb, void *arg);
/* ---- one archive per room across instances ----
 * With several instances on one store, users of each may sit in the same
 * room and every instance sees its messages. A room an instance sees is
 * archived by one of them, the holder of the room's lease (renewed every
 * third of storage.lease, not per message). The others keep what they saw
 * for two leases: when one takes the lease (the holder let it go or died
 * and its lease ran out), it archives the kept messages the archive lacks
 * (matched by nick and body against the archive's newest rows), so that
 * nothing is lost and nothing archived twice. With SQLite (one process)
 * the lease is always this instance's. */
typedef struct ferry_history_room ferry_history_room_t;

/* ROOM (as for ferry_history_add), seen by this instance from now on. */
ferry_history_room_t *ferry_history_room_open(ferry_component_t *comp, const char *room);
/* A message of the room: 1 archived (*id, may be NULL, its archive id), 0
 * another instance archives it (kept as said above), -1 error. */
int ferry_history_room_add(ferry_history_room_t *r, int64_t ts_ms, const char *nick,
                           const char *body, int64_t *id);
/* This instance no longer sees the room: once what it archived is
 * committed, its lease goes, and another instance takes it at its next
 * message. Frees R (NULL: nothing). */
void ferry_history_room_close(ferry_history_room_t *r);

/* Drops what is older than BEFORE_MS (all rooms of the component's store). */
int ferry_history_prune(ferry_component_t *comp, int64_t before_ms);

#endif
