/* store_fixture.h: what the store and outbox unit tests share: the store
 * backends to run against (a table: SQLite, and PostgreSQL when the
 * environment gives one; one more row, not a copy of every test), a
 * scratch directory removed at exit, and a bounded way to run a libuv loop
 * until something happened. Header-only, like check.h: include it in
 * exactly one file per test program, after check.h. */
#ifndef FERRY_TEST_STORE_FIXTURE_H
#define FERRY_TEST_STORE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <uv.h>

#include "store.h"

/* ---- scratch directory ---- */

static char fixture_dir_[64];

/* Removes the scratch directory and what the tests left in it. */
static void fixture_cleanup_(void)
{
    DIR *d = opendir(fixture_dir_);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", fixture_dir_, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(fixture_dir_);
}

/* Makes the scratch directory (once); exits when it cannot. */
static __attribute__((unused)) const char *fixture_dir(void)
{
    if (!fixture_dir_[0]) {
        snprintf(fixture_dir_, sizeof fixture_dir_, "/tmp/ferry-unit-XXXXXX");
        if (!mkdtemp(fixture_dir_)) {
            perror("mkdtemp");
            exit(2);
        }
        atexit(fixture_cleanup_);
    }
    return fixture_dir_;
}

/* ---- backends ---- */

/* One way to keep a store. WHERE names one store: opening it again finds
 * what was committed there. */
typedef struct store_backend {
    const char *name;
    /* A new, empty place for a store (malloc'd). */
    char *(*fresh)(void);
    store_t *(*open)(uv_loop_t *loop, const char *where, char *err, size_t errlen);
    /* Without a loop, as `ferry queue` does; it may run beside an open
     * store and sees only what that one has committed. */
    store_t *(*open_offline)(const char *where, char *err, size_t errlen);
} store_backend_t;

static char *sqlite_fresh_(void)
{
    static int n;
    char *path = malloc(600);
    snprintf(path, 600, "%s/store-%d.db", fixture_dir(), ++n);
    return path;
}

/* PostgreSQL, when FERRY_TEST_PG_URL names a database (ctest's
 * test_store_pg starts a throwaway server: tests/e2e/pg_helpers.py): each
 * fresh store is a new schema there, put first on the search path. */
static char *pg_fresh_(void)
{
    static int n;
    const char *base = getenv("FERRY_TEST_PG_URL");
    char schema[64], sql[128];
    snprintf(schema, sizeof schema, "s%d_%d", (int)getpid(), ++n);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    PGconn *c = PQconnectdb(base);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pg fixture: %s: %s", sql, PQerrorMessage(c));
        exit(2);
    }
    PQclear(r);
    PQfinish(c);
    size_t len = strlen(base) + 64;
    char *url = malloc(len);
    snprintf(url, len, "%s%coptions=-csearch_path%%3D%s", base, strchr(base, '?') ? '&' : '?',
             schema);
    return url;
}

static __attribute__((unused)) const store_backend_t store_backends[] = {
    {"sqlite", sqlite_fresh_, ferry__store_open, ferry__store_open_offline},
    {"postgresql", pg_fresh_, ferry__store_open_pg, ferry__store_open_pg_offline},
};

/* Whether backend I can run here. */
static __attribute__((unused)) int store_backend_available(size_t i)
{
    return strcmp(store_backends[i].name, "postgresql") != 0 || getenv("FERRY_TEST_PG_URL");
}

/* ---- running the loop ---- */

static void fixture_tick_(uv_timer_t *t) { (void)t; }
static void fixture_closed_(uv_handle_t *h) { *(int *)h->data = 1; }

/* Runs LOOP until DONE(ARG) or MS milliseconds of wall time have passed;
 * returns DONE(ARG). A ticking timer keeps the loop from blocking past the
 * deadline when nothing else is due. */
static __attribute__((unused)) int run_until(uv_loop_t *loop, int (*done)(void *), void *arg,
                                             int64_t ms)
{
    int64_t end = ferry__store_now_ms() + ms;
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, fixture_tick_, 5, 5);
    while (!done(arg) && ferry__store_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    int closed = 0;
    tick.data = &closed;
    uv_close((uv_handle_t *)&tick, fixture_closed_);
    while (!closed)
        uv_run(loop, UV_RUN_NOWAIT);
    return done(arg);
}

/* Runs LOOP for MS milliseconds of wall time. */
static int fixture_never_(void *arg) { (void)arg; return 0; }
static __attribute__((unused)) void run_for(uv_loop_t *loop, int64_t ms)
{
    run_until(loop, fixture_never_, NULL, ms);
}

#endif
