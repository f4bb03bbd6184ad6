/* heartbeat.h: what the instances sharing a PostgreSQL store know of each
 * other. Each writes a record (host, pid, each component's role, when)
 * into the store's settings every few seconds; /healthz and the admins'
 * status command list the others and how long ago they were seen. */
#ifndef FERRY_HEARTBEAT_H
#define FERRY_HEARTBEAT_H

#include <jansson.h>
#include <uv.h>

#include "store.h"

#define FERRY_HEARTBEAT_MS 5000

typedef struct ferry__heartbeat ferry__heartbeat_t;

/* ROLES(arg) returns a new JSON object {component: role text}. STORE must
 * outlive the heartbeat. Writes the first record now. */
ferry__heartbeat_t *ferry__heartbeat_start(uv_loop_t *loop, store_t *store, const char *instance,
                                           json_t *(*roles)(void *arg), void *arg);
/* Writes the record now (a role changed). */
void ferry__heartbeat_now(ferry__heartbeat_t *hb);
/* The other instances' records, new: {name: {host, pid, roles, seen_ago
 * (seconds), stopped}}, or NULL when the store cannot be read. */
json_t *ferry__heartbeat_peers(ferry__heartbeat_t *hb);
/* 1 when the last reading of the records found no other instance alive
 * (seen within three beats, not stopped) that waits for a slot (a role
 * other than active); 0 before the first reading. */
int ferry__heartbeat_none_waiting(const ferry__heartbeat_t *hb);
/* For the status command: "INSTANCE (this one): host H, pid P", then
 * "NAME: host H, pid P, seen S s ago; component role; ..." for each other
 * instance, one a line, into BUF. HB may be NULL (SQLite: no others). */
void ferry__heartbeat_describe(ferry__heartbeat_t *hb, const char *instance, char *buf,
                               size_t len);
/* Marks the record stopped and frees HB. */
void ferry__heartbeat_stop(ferry__heartbeat_t *hb);

#endif
