/* exchange.h: an HTTP exchange made from fuzz bytes, for the targets that
 * drive an adapter's webhook handler without a socket. Include it BEFORE
 * the adapter's .c file: the ferry_http_exchange_* calls in there then
 * reach these stand-ins, which keep the request the way http_server.c
 * does (target copied and cut at '?', body NUL-terminated at its length)
 * and check the answer (exactly one, a real status, no CR/LF in headers).
 *
 * The bytes read as a request:
 *   METHOD TARGET\n
 *   Name: value\n      (any number of header lines)
 *   \n
 *   body               (the rest, byte for byte) */
#ifndef FERRY_FUZZ_EXCHANGE_H
#define FERRY_FUZZ_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/http_server.h"

ferry_http_exchange_t *fuzz_ex_new(const uint8_t *data, size_t size);
void fuzz_ex_free(ferry_http_exchange_t *ex);
/* Sets (or replaces) a request header: for signatures the harness computes. */
void fuzz_ex_set_header(ferry_http_exchange_t *ex, const char *name, const char *value);
/* The route that took the request: sets what ferry_http_exchange_rest()
 * gives, as ferry/http_server.h says. Call it before the handler. */
void fuzz_ex_set_route(ferry_http_exchange_t *ex, const char *prefix);
/* The status answered, 0 while none. */
unsigned fuzz_ex_status(const ferry_http_exchange_t *ex);
/* Whether PATH is under PREFIX as ferry/http_server.h promises routes match:
 * whole segments, "/hooks/main/" matching "/hooks/main" and below. */
int fuzz_route_matches(const char *prefix, const char *path);

const char *fuzz_ex_method(const ferry_http_exchange_t *ex);
const char *fuzz_ex_path(const ferry_http_exchange_t *ex);
const char *fuzz_ex_query(const ferry_http_exchange_t *ex);
const char *fuzz_ex_rest(const ferry_http_exchange_t *ex);
const char *fuzz_ex_header(const ferry_http_exchange_t *ex, const char *name);
const char *fuzz_ex_body(const ferry_http_exchange_t *ex, size_t *len);
int fuzz_ex_add_header(ferry_http_exchange_t *ex, const char *name, const char *value);
void fuzz_ex_respond(ferry_http_exchange_t *ex, unsigned status, const char *content_type,
                     const char *body, size_t len);

#define ferry_http_exchange_method fuzz_ex_method
#define ferry_http_exchange_path fuzz_ex_path
#define ferry_http_exchange_query fuzz_ex_query
#define ferry_http_exchange_rest fuzz_ex_rest
#define ferry_http_exchange_header fuzz_ex_header
#define ferry_http_exchange_body fuzz_ex_body
#define ferry_http_exchange_add_header fuzz_ex_add_header
#define ferry_http_exchange_respond fuzz_ex_respond

#endif
