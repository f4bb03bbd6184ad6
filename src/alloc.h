/* alloc.h: the core's side of the memory policy (ferry/alloc.h): the
 * allocator handed to libstrophe's context. */
#ifndef FERRY_SRC_ALLOC_H
#define FERRY_SRC_ALLOC_H

#include <strophe.h>

extern const xmpp_mem_t ferry__alloc_xmpp_mem;

#endif
