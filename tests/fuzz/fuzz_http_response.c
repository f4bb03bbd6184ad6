/* fuzz_http_response.c: what an SMS provider or a webhook receiver answers,
 * on any bytes: the header lines and body as curl hands them to
 * src/http_client.c (included below so that its static callbacks run as
 * they are), Retry-After above all (delta seconds or an HTTP-date, RFC 9110
 * section 10.2.3). Checks: Retry-After is -1 or a delay of 0 or more; the
 * body kept is within its bound and NUL-terminated. Input: header lines
 * (LF or CR LF), an empty line, then the body. */
#include "../../src/http_client.c"

#include "oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ferry_http_request_t *r = calloc(1, sizeof *r);
    r->retry_after = -1;
    const char *p = (const char *)data, *end = p + size;
    int in_body = 0;
    while (p < end && !in_body) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        /* curl passes each header line with its line end, not NUL-ended:
         * an exact copy lets ASan see a read past it. */
        char *line = malloc(n ? n : 1);
        memcpy(line, p, n);
        if (on_header(line, 1, n, r) != n)
            fuzz_fail("http response", "header line not consumed");
        int blank = n <= 2 && (n == 1 || line[0] == '\r') && line[n - 1] == '\n';
        free(line);
        if (r->retry_after < -1)
            fuzz_fail("http response", "Retry-After %ld", r->retry_after);
        p += n;
        /* After a blank line: the body, unless another response follows
         * (after a 100 Continue). */
        in_body = blank && !((size_t)(end - p) >= 5 && memcmp(p, "HTTP/", 5) == 0);
    }
    /* The body in pieces of 1000, as curl may deliver it. */
    while (p < end) {
        size_t n = (size_t)(end - p) < 1000 ? (size_t)(end - p) : 1000;
        char *piece = malloc(n);
        memcpy(piece, p, n);
        if (on_body(piece, 1, n, r) != n)
            fuzz_fail("http response", "body piece not consumed");
        free(piece);
        p += n;
    }
    if (r->resp_len > HTTP_CLIENT_MAX_BODY || (r->resp && r->resp[r->resp_len] != 0))
        fuzz_fail("http response", "body of %zu bytes kept", r->resp_len);
    free(r->resp);
    free(r);
    return 0;
}
