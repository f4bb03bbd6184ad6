/* ferry/backoff.h: how long to wait before trying again, written once for
 * everything that retries (the XMPP link, the outbox, IRC reconnects, room
 * rejoins): the delay doubles from base_ms at each attempt up to max_ms. */
#ifndef FERRY_BACKOFF_H
#define FERRY_BACKOFF_H

#include <stdint.h>

/* base_ms doubled ATTEMPT times (attempt 0: base_ms), at most max_ms. */
uint64_t ferry_backoff_ceiling_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms);

/* The ceiling with jitter: a delay in [ceiling/2, ceiling], so that many
 * clients that failed together (a server restart) do not retry in lockstep.
 * Draws from rand(), which main() seeds. */
uint64_t ferry_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms);

#endif
