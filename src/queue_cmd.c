/* queue_cmd.c: `ferry queue`: look at and act on pending and dead messages
 * in the store, beside a running ferry (SQLite WAL allows it). A running
 * ferry picks up a retried message within 30 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_config.h"
#include "store.h"

static const char *const state_names[] = {"pending", "done", "dead"};

static void print_row(void *arg, const store_row_t *r)
{
    int64_t *now = arg;
    printf("%-8lld %-7s %-10s %-12s %3d %8llds  %s%s%s\n", (long long)r->id,
           state_names[r->state], r->direction == STORE_TO_XMPP ? "to-xmpp" : "to-network",
           r->component, r->attempts, (long long)((*now - r->created_ms) / 1000),
           r->conversation[0] ? r->conversation : "-", r->error ? "  error: " : "",
           r->error ? r->error : "");
}

static int parse_id(const char *text, int64_t *id)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*text == 0 || *end != 0 || v <= 0) {
        fprintf(stderr, "ferry queue: '%s' is not a message id\n", text);
        return -1;
    }
    *id = v;
    return 0;
}

static int act(store_t *s, const char *verb, const char *arg)
{
    int64_t id;
    if (parse_id(arg, &id) != 0)
        return 2;
    int rc = strcmp(verb, "retry") == 0 ? ferry__store_msg_requeue(s, id) : ferry__store_msg_drop(s, id);
    if (rc < 0)
        return 1;
    if (rc == 1) {
        fprintf(stderr, "ferry queue: no message %lld\n", (long long)id);
        return 1;
    }
    printf("message %lld %s\n", (long long)id,
           strcmp(verb, "retry") == 0 ? "is pending again" : "dropped");
    return 0;
}

int ferry__queue_cmd(const char *config_path, int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "list") != 0 && argc != 2) ||
        (strcmp(argv[0], "list") == 0 && argc != 1)) {
        fprintf(stderr, "usage: ferry queue -c FILE list | retry ID | drop ID\n");
        return 2;
    }
    if (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "retry") != 0 &&
        strcmp(argv[0], "drop") != 0) {
        fprintf(stderr, "ferry queue: unknown action '%s' (list, retry, drop)\n", argv[0]);
        return 2;
    }
    config_t *config = ferry__config_load(config_path);
    if (!config)
        return 1;
    char err[1024];
    store_t *s = config->store_url ? ferry__store_open_pg_offline(config->store_url, err, sizeof err)
                                   : ferry__store_open_offline(config->store_path, err, sizeof err);
    ferry__config_free(config);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 0;
    if (strcmp(argv[0], "list") == 0) {
        int64_t now = ferry__store_now_ms();
        printf("%-8s %-7s %-10s %-12s %3s %9s  %s\n", "ID", "STATE", "DIRECTION", "COMPONENT",
               "TRY", "AGE", "CONVERSATION");
        rc = ferry__store_msg_list(s, print_row, &now) < 0;
    } else {
        rc = act(s, argv[0], argv[1]);
    }
    ferry__store_close(s);
    return rc;
}
