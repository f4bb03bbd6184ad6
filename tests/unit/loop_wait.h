/* loop_wait.h: bounded waiting on a unit test's libuv loop, for the tests
 * that run servers and clients on one loop (test_http.c, test_net.c).
 * Header-only: include it once per test program, after defining
 * `static uv_loop_t loop;`. */
#ifndef FERRY_TEST_LOOP_WAIT_H
#define FERRY_TEST_LOOP_WAIT_H

#include <stdint.h>

#include <uv.h>

static int guard_fired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
}

/* Runs the loop until *count reaches want, or ms pass. */
static int __attribute__((unused)) wait_for(const int *count, int want, uint64_t ms)
{
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    guard_fired = 0;
    uv_timer_start(&guard, on_guard, ms, 0);
    while (*count < want && !guard_fired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *count >= want;
}

/* Runs the loop for ms. */
static void __attribute__((unused)) sleep_loop(uint64_t ms)
{
    int never = 0;
    wait_for(&never, 1, ms);
}

#endif
