/* bench_text.c: what the last check on the way out costs (ferry_xml_text_valid
 * on every stanza ferry_component_send* writes) next to the escaping the IRC
 * fan-out already does per stanza, on stanzas of the fan-out's shape.
 *
 *     build/bench_text [ITERATIONS]
 *
 * Prints CPU nanoseconds per stanza and GB/s for an ASCII groupchat message (64-
 * and 1000-byte bodies) and one with non-ASCII text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/stanza.h"
#include "ferry/text.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A groupchat message as bridge.c writes it, with BODY. */
static size_t stanza(char *out, size_t cap, const char *body)
{
    size_t len = (size_t)snprintf(out, cap,
                                  "<message type='groupchat' from='#bench%%irc.localhost@irc.localhost/"
                                  "ircbench' to='u123@localhost/res-0123456789'><body>");
    len = ferry_xml_escape(out, cap, len, body);
    len += (size_t)snprintf(out + len, cap - len, "</body></message>");
    return len;
}

static void run(const char *name, const char *body, long iterations)
{
    static char buf[65536];
    size_t len = stanza(buf, sizeof buf, body);
    volatile int sink = 0;
    double t0 = now_s();
    for (long i = 0; i < iterations; i++)
        sink += ferry_xml_text_valid(buf, len);
    double check = now_s() - t0;
    static char esc[65536];
    t0 = now_s();
    for (long i = 0; i < iterations; i++)
        sink += (int)ferry_xml_escape(esc, sizeof esc, 0, body);
    double escape = now_s() - t0;
    if (sink != (int)(iterations * (1 + (long)strlen(esc))) && sink == -1)
        puts("");
    printf("%-28s %5zu B  check %7.1f ns/stanza (%5.2f GB/s)   escape body %7.1f ns\n", name, len,
           check * 1e9 / (double)iterations, (double)len * (double)iterations / check / 1e9,
           escape * 1e9 / (double)iterations);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    char body64[65], body1k[1001], mixed[1001];
    memset(body64, 'x', 64);
    body64[64] = 0;
    for (int i = 0; i < 1000; i++)
        body1k[i] = (char)('a' + i % 26);
    body1k[1000] = 0;
    size_t m = 0;
    while (m + 12 < sizeof mixed) {
        memcpy(mixed + m, "caf\xc3\xa9 \xe2\x82\xac ok ", 12);
        m += 12;
    }
    mixed[m] = 0;
    run("ascii, 64-byte body", body64, n);
    run("ascii, 1000-byte body", body1k, n / 10);
    run("non-ascii, 996-byte body", mixed, n / 10);
    return 0;
}
