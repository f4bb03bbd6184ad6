/* xml_stream.h: an incremental parser for one XMPP stream that hands over
 * each top-level element as a libstrophe stanza. */
#ifndef FERRY_XML_STREAM_H
#define FERRY_XML_STREAM_H

#include <stddef.h>

#include <strophe.h>

typedef struct xml_stream xml_stream_t;

typedef struct xml_stream_handlers {
    /* The stream header: attributes as expat gives them (name, value, ...). */
    void (*open)(void *arg, const char **attrs);
    /* A complete top-level element; it is released after the call (take a
     * reference with xmpp_stanza_clone() to keep it). */
    void (*stanza)(void *arg, xmpp_stanza_t *stanza);
    /* </stream:stream> */
    void (*close)(void *arg);
} xml_stream_handlers_t;

xml_stream_t *ferry__xml_stream_new(xmpp_ctx_t *ctx, size_t max_stanza,
                             const xml_stream_handlers_t *handlers, void *arg);
void ferry__xml_stream_free(xml_stream_t *stream);

/* Feeds bytes. Returns 0, or -1 on an error that ends the stream; then
 * ferry__xml_stream_error() names the RFC 6120 stream error condition
 * ("not-well-formed", "restricted-xml", "policy-violation") and
 * ferry__xml_stream_error_text() says what happened. Handlers may call nothing on
 * the stream but ferry__xml_stream_stop(). */
int ferry__xml_stream_feed(xml_stream_t *stream, const char *data, size_t len);
/* Stops parsing after the current handler (the link is closing). */
void ferry__xml_stream_stop(xml_stream_t *stream);
const char *ferry__xml_stream_error(const xml_stream_t *stream);
const char *ferry__xml_stream_error_text(const xml_stream_t *stream);

#endif
