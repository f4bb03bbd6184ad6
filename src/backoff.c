/* backoff.c: exponential backoff with jitter (ferry/backoff.h). It was
 * written four times, with the same doubling and the same jitter, before it
 * lived here. */
#include <stdlib.h>

#include "ferry/backoff.h"

uint64_t ferry_backoff_ceiling_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms)
{
    uint64_t ms = base_ms;
    for (unsigned i = 0; i < attempt && ms && ms < max_ms; i++)
        ms *= 2;
    return ms > max_ms ? max_ms : ms;
}

uint64_t ferry_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms)
{
    uint64_t ms = ferry_backoff_ceiling_ms(attempt, base_ms, max_ms);
    return ms / 2 + (uint64_t)rand() % (ms / 2 + 1);
}
