/* oracle.h: what the fuzz targets check besides "no sanitizer report": that
 * every byte ferry would send to the XMPP server is well-formed XML 1.0
 * (RFC 6120 section 11: the server closes the stream otherwise, for every
 * user of the component). A failed check aborts with what was wrong, so
 * libFuzzer keeps the input as a crasher. */
#ifndef FERRY_FUZZ_ORACLE_H
#define FERRY_FUZZ_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include <strophe.h>

/* The entry point every target defines (libFuzzer's, and replay.c's). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints WHAT and the formatted reason to stderr and aborts. */
void fuzz_fail(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* DATA as a NUL-terminated malloc'd string (cut at the first NUL). */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* LEN bytes are valid UTF-8 and each character is an XML 1.0 Char
 * (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]):
 * no other control, no U+FFFE/U+FFFF, no surrogate, no overlong form. */
int fuzz_xml_chars_ok(const char *s, size_t len);

/* XML is exactly one well-formed element (a stanza as ferry writes it),
 * accepted by expat and made of XML Chars only; with JIDS, its 'from' and
 * 'to' attributes (when present) are JIDs that parse. Aborts otherwise. */
void fuzz_check_stanza_text(const char *what, const char *xml, size_t len, int jids);
/* The same for a stanza object, serialised as ferry serialises it. */
void fuzz_check_stanza(const char *what, xmpp_stanza_t *stanza, int jids);

/* A stanza an adapter stores with ferry_xmpp_put(), checked as the core
 * stores it (component.c): serialised, then cleaned with the core's one
 * rule (ferry/text.h) when XML would refuse a character of it. */
void fuzz_check_stored(const char *what, xmpp_stanza_t *stanza);

/* One libstrophe context for the whole run (stanzas are built with it). */
xmpp_ctx_t *fuzz_xmpp_ctx(void);

#endif
