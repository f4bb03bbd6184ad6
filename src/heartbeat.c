/* heartbeat.c: the instances' records (heartbeat.h), one row each in the
 * store's settings (component "", namespace "ferry.instances", key: the
 * instance name), so that any instance, and `ferry queue` later, can read
 * them without a table of their own. "Seen" is the writer's clock: hosts
 * sharing a store are expected to keep time (NTP). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/alloc.h"
#include "ferry/log.h"
#include "heartbeat.h"

#define NS "ferry.instances"
#define FORGET_MS (24 * 3600 * 1000) /* a record this old is deleted */

struct ferry__heartbeat {
    store_t *store;
    char *instance;
    char host[256];
    json_int_t pid;
    json_t *(*roles)(void *arg);
    void *arg;
    uv_timer_t timer;
    int wrote;       /* a record of ours is in the store */
    int listed;      /* the records have been read at least once */
    size_t waiting_seen; /* others alive and waiting for a slot, at the last reading */
    int warned_twin;
};

/* Another process writing under our name (two configs with the same
 * instance): the record we wrote last time has been overwritten since;
 * say so once. (Before our first write the record may be our own
 * predecessor's, killed a moment ago.) */
static void check_twin(ferry__heartbeat_t *hb)
{
    char *value = NULL;
    if (hb->warned_twin || !hb->wrote ||
        ferry__store_kv_get(hb->store, "", NS, hb->instance, &value) != 0)
        return;
    json_t *o = json_loads(value, 0, NULL);
    free(value);
    const char *host = json_string_value(json_object_get(o, "host"));
    json_int_t pid = json_integer_value(json_object_get(o, "pid"));
    if (host && (strcmp(host, hb->host) != 0 || pid != hb->pid) &&
        !json_is_true(json_object_get(o, "stopped"))) {
        ferry_log_warn("cluster", "another ferry (host %s, pid %lld) runs as instance \"%s\": "
                       "give each its own [cluster] instance", host, (long long)pid, hb->instance);
        hb->warned_twin = 1;
    }
    json_decref(o);
}

static void write_record(ferry__heartbeat_t *hb, int stopped)
{
    json_t *o = json_pack("{s:s, s:I, s:o, s:I, s:b}", "host", hb->host, "pid", hb->pid, "roles",
                          stopped ? json_object() : hb->roles(hb->arg), "seen_ms",
                          (json_int_t)ferry__store_now_ms(), "stopped", stopped);
    char *text = json_dumps(o, JSON_COMPACT);
    if (ferry__store_kv_put(hb->store, "", NS, hb->instance, text) != 0)
        ferry_log_debug("cluster", "heartbeat not written (the store is failing)");
    else
        hb->wrote = 1;
    free(text);
    json_decref(o);
}

/* Whether one of the roles in a record is not "active ...": that
 * instance waits for a slot (a standby, starting, or unreachable), so it
 * may take one that frees. */
static int waits_for_slot(json_t *roles)
{
    const char *name;
    json_t *role;
    json_object_foreach(roles, name, role) {
        const char *text = json_string_value(role);
        if (!text || strncmp(text, "active", 6) != 0)
            return 1;
    }
    return 0;
}

/* Each record on a beat: forgotten when a day old; counted when another
 * instance's is recent (within three beats), not stopped, and waiting
 * for a slot. */
static void look_at(void *arg, const char *key, const char *value)
{
    ferry__heartbeat_t *hb = arg;
    json_t *o = json_loads(value, 0, NULL);
    int64_t age = ferry__store_now_ms() - json_integer_value(json_object_get(o, "seen_ms"));
    int stopped = json_is_true(json_object_get(o, "stopped"));
    int waiting = waits_for_slot(json_object_get(o, "roles"));
    json_decref(o);
    if (strcmp(key, hb->instance) == 0)
        return;
    if (age > FORGET_MS)
        ferry__store_kv_del(hb->store, "", NS, key);
    else if (!stopped && waiting && age < 3 * FERRY_HEARTBEAT_MS)
        hb->waiting_seen++;
}

static void on_beat(uv_timer_t *t)
{
    ferry__heartbeat_t *hb = t->data;
    check_twin(hb);
    write_record(hb, 0);
    size_t before = hb->waiting_seen;
    hb->waiting_seen = 0;
    if (ferry__store_kv_list(hb->store, "", NS, look_at, hb) < 0)
        hb->waiting_seen = before; /* the store is away: what we knew */
    else
        hb->listed = 1;
}

int ferry__heartbeat_none_waiting(const ferry__heartbeat_t *hb)
{
    return hb->listed && !hb->waiting_seen;
}

ferry__heartbeat_t *ferry__heartbeat_start(uv_loop_t *loop, store_t *store, const char *instance,
                                           json_t *(*roles)(void *arg), void *arg)
{
    ferry__heartbeat_t *hb = ferry_calloc(1, sizeof *hb);
    hb->store = store;
    hb->instance = ferry_strdup(instance);
    if (gethostname(hb->host, sizeof hb->host - 1) != 0)
        strcpy(hb->host, "?");
    hb->pid = (json_int_t)getpid();
    hb->roles = roles;
    hb->arg = arg;
    uv_timer_init(loop, &hb->timer);
    hb->timer.data = hb;
    uv_timer_start(&hb->timer, on_beat, 0, FERRY_HEARTBEAT_MS);
    return hb;
}

void ferry__heartbeat_now(ferry__heartbeat_t *hb) { write_record(hb, 0); }

static void add_peer(void *arg, const char *key, const char *value)
{
    json_t *peers = arg;
    json_t *o = json_loads(value, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    int64_t age = ferry__store_now_ms() - json_integer_value(json_object_get(o, "seen_ms"));
    json_object_set_new(o, "seen_ago", json_real(age > 0 ? (double)age / 1000 : 0.0));
    json_object_del(o, "seen_ms");
    json_object_set_new(peers, key, o);
}

json_t *ferry__heartbeat_peers(ferry__heartbeat_t *hb)
{
    json_t *peers = json_object();
    if (ferry__store_kv_list(hb->store, "", NS, add_peer, peers) < 0) {
        json_decref(peers);
        return NULL;
    }
    json_object_del(peers, hb->instance);
    return peers;
}

static const char *str_or(const json_t *v, const char *fallback)
{
    return json_is_string(v) ? json_string_value(v) : fallback;
}

void ferry__heartbeat_describe(ferry__heartbeat_t *hb, const char *instance, char *buf,
                               size_t len)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    size_t n = (size_t)snprintf(buf, len, "%s (this one): host %s, pid %ld\n", instance, host,
                                (long)getpid());
    json_t *peers = hb ? ferry__heartbeat_peers(hb) : NULL;
    const char *name;
    json_t *p;
    json_object_foreach(peers, name, p) {
        if (n >= len)
            break;
        n += (size_t)snprintf(buf + n, len - n, "%s: host %s, pid %lld, %s %.0f s ago", name,
                              str_or(json_object_get(p, "host"), "?"),
                              (long long)json_integer_value(json_object_get(p, "pid")),
                              json_is_true(json_object_get(p, "stopped")) ? "stopped" : "seen",
                              json_real_value(json_object_get(p, "seen_ago")));
        const char *comp;
        json_t *role;
        json_object_foreach(json_object_get(p, "roles"), comp, role) {
            if (n < len)
                n += (size_t)snprintf(buf + n, len - n, "; %s %s", comp, str_or(role, "?"));
        }
        if (n < len)
            n += (size_t)snprintf(buf + n, len - n, "\n");
    }
    json_decref(peers);
}

static void on_timer_closed(uv_handle_t *h)
{
    ferry__heartbeat_t *hb = h->data;
    free(hb->instance);
    free(hb);
}

void ferry__heartbeat_stop(ferry__heartbeat_t *hb)
{
    write_record(hb, 1);
    uv_close((uv_handle_t *)&hb->timer, on_timer_closed);
}
