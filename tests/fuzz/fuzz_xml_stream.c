/* fuzz_xml_stream.c: src/xml_stream.c, the parser of everything the XMPP
 * server sends, on any bytes cut into reads of any size. Checks: each
 * stanza it hands over serialises back (as the router does when it answers
 * with an error that quotes the stanza) to well-formed XML 1.0, the error
 * reply too; an error names an RFC 6120 condition; nothing is handed over
 * after an error. First byte: bit 7 prepends a stream header, the rest is
 * the read size - 1. */
#include <string.h>

#include "ferry/stanza.h"
#include "oracle.h"
#include "xml_stream.h"

#define MAX_STANZA 4096

static const char header[] = "<stream:stream xmlns='jabber:component:accept' "
                             "xmlns:stream='http://etherx.jabber.org/streams' id='x' "
                             "from='example.org'>";

typedef struct state {
    int failed, closed;
    size_t stanzas;
} state_t;

static void on_open(void *arg, const char **attrs)
{
    (void)arg;
    for (int i = 0; attrs[i]; i += 2)
        if (!attrs[i + 1])
            fuzz_fail("xml_stream", "attribute %s without a value", attrs[i]);
}

static void on_stanza(void *arg, xmpp_stanza_t *st)
{
    state_t *s = arg;
    if (s->failed)
        fuzz_fail("xml_stream", "a stanza after an error");
    s->stanzas++;
    fuzz_check_stanza("xml_stream: stanza", st, 0);
    xmpp_stanza_t *reply = ferry_stanza_error_reply(st, "cancel", "service-unavailable",
                                                    "not here");
    if (reply) {
        fuzz_check_stanza("xml_stream: error reply", reply, 0);
        xmpp_stanza_release(reply);
    }
}

static void on_close(void *arg)
{
    ((state_t *)arg)->closed = 1;
}

static const xml_stream_handlers_t handlers = {on_open, on_stanza, on_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (data[0] & 0x7f) + 1;
    int with_header = data[0] & 0x80;
    data++, size--;
    state_t s = {0};
    xml_stream_t *x = ferry__xml_stream_new(fuzz_xmpp_ctx(), MAX_STANZA, &handlers, &s);
    if (with_header && ferry__xml_stream_feed(x, header, sizeof header - 1) != 0)
        fuzz_fail("xml_stream", "the stream header refused");
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (ferry__xml_stream_feed(x, (const char *)data + off, n) != 0) {
            const char *e = ferry__xml_stream_error(x);
            if (!e || (strcmp(e, "not-well-formed") != 0 && strcmp(e, "restricted-xml") != 0 &&
                       strcmp(e, "policy-violation") != 0 && strcmp(e, "invalid-namespace") != 0))
                fuzz_fail("xml_stream", "error condition '%s'", e ? e : "(none)");
            s.failed = 1;
            /* Feeding after an error must stay an error. */
            if (ferry__xml_stream_feed(x, "<a/>", 4) != -1)
                fuzz_fail("xml_stream", "fed again after an error");
            break;
        }
    }
    ferry__xml_stream_free(x);
    return 0;
}
