/* oracle.c: the XML 1.0 check behind oracle.h: a strict UTF-8 decoder for
 * the Char production, and expat for well-formedness. Written apart from
 * the code under test so that a bug there cannot hide itself here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "ferry/jid.h"
#include "ferry/text.h"
#include "log.h"
#include "oracle.h"

/* Errors only: a line per input would slow the fuzzer down to the terminal. */
__attribute__((constructor)) static void quiet(void) { ferry__log_set_level(FERRY_LOG_ERROR); }

/* Where the sanitizers report: libFuzzer moves it when -close_fd_mask=2
 * silences what the code under test prints. Absent without a sanitizer. */
void __sanitizer_report_error_summary(const char *summary) __attribute__((weak));

void fuzz_fail(const char *what, const char *fmt, ...)
{
    char msg[2400];
    int n = snprintf(msg, sizeof msg, "FUZZ ORACLE (%s): ", what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", msg);
    if (__sanitizer_report_error_summary)
        __sanitizer_report_error_summary(msg);
    abort();
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    size_t n = strnlen((const char *)data, size);
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

static int is_xml_char(unsigned long c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

int fuzz_xml_chars_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned long c;
        size_t n;
        if (*p < 0x80) {
            c = *p;
            n = 1;
        } else if (*p >= 0xC2 && *p <= 0xDF) {
            c = *p & 0x1F;
            n = 2;
        } else if (*p >= 0xE0 && *p <= 0xEF) {
            c = *p & 0x0F;
            n = 3;
        } else if (*p >= 0xF0 && *p <= 0xF4) {
            c = *p & 0x07;
            n = 4;
        } else {
            return 0; /* continuation byte, C0/C1 overlong lead, F5-FF */
        }
        if ((size_t)(end - p) < n)
            return 0;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (p[i] & 0x3F);
        }
        static const unsigned long min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (c < min[n] || (c >= 0xD800 && c <= 0xDFFF) || !is_xml_char(c))
            return 0;
        p += n;
    }
    return 1;
}

typedef struct check {
    int jids;
    int depth, roots;
    const char *bad; /* a root attribute that is not a JID */
} check_t;

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
    check_t *c = arg;
    (void)name;
    if (c->depth == 0)
        c->roots++;
    if (c->depth++ == 0 && c->jids) {
        for (int i = 0; attrs[i]; i += 2) {
            ferry_jid_t j;
            if ((strcmp(attrs[i], "from") == 0 || strcmp(attrs[i], "to") == 0) &&
                ferry_jid_parse(attrs[i + 1], &j) != 0)
                c->bad = attrs[i][0] == 'f' ? "from" : "to"; /* expat frees attrs[i] */
        }
    }
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
    check_t *c = arg;
    (void)name;
    c->depth--;
}

void fuzz_check_stanza_text(const char *what, const char *xml, size_t len, int jids)
{
    if (!fuzz_xml_chars_ok(xml, len))
        fuzz_fail(what, "not XML 1.0 characters: %.*s", (int)(len > 2000 ? 2000 : len), xml);
    check_t c = {jids, 0, 0, NULL};
    XML_Parser p = XML_ParserCreate("UTF-8");
    XML_SetUserData(p, &c);
    XML_SetElementHandler(p, on_start, on_end);
    int ok = XML_Parse(p, xml, (int)len, XML_TRUE) == XML_STATUS_OK;
    const char *err = ok ? NULL : XML_ErrorString(XML_GetErrorCode(p));
    XML_ParserFree(p);
    if (!ok)
        fuzz_fail(what, "not well-formed (%s): %.*s", err, (int)(len > 2000 ? 2000 : len), xml);
    if (c.roots != 1)
        fuzz_fail(what, "%d root elements: %.*s", c.roots, (int)(len > 2000 ? 2000 : len), xml);
    if (c.bad)
        fuzz_fail(what, "'%s' is not a JID: %.*s", c.bad, (int)(len > 2000 ? 2000 : len), xml);
}

void fuzz_check_stanza(const char *what, xmpp_stanza_t *stanza, int jids)
{
    char *text;
    size_t len;
    if (xmpp_stanza_to_text(stanza, &text, &len) != XMPP_EOK)
        fuzz_fail(what, "the stanza cannot be serialised");
    fuzz_check_stanza_text(what, text, len, jids);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", what, text);
    xmpp_free(xmpp_stanza_get_context(stanza), text);
}

void fuzz_check_stored(const char *what, xmpp_stanza_t *stanza)
{
    char *text;
    size_t len;
    if (xmpp_stanza_to_text(stanza, &text, &len) != XMPP_EOK)
        fuzz_fail(what, "the stanza cannot be serialised");
    char *clean = ferry_xml_text_valid(text, len) ? NULL : ferry_xml_text_dup(text, len, &len);
    fuzz_check_stanza_text(what, clean ? clean : text, len, 1);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", what, clean ? clean : text);
    free(clean);
    xmpp_free(xmpp_stanza_get_context(stanza), text);
}

xmpp_ctx_t *fuzz_xmpp_ctx(void)
{
    static xmpp_ctx_t *ctx;
    if (!ctx)
        ctx = xmpp_ctx_new(NULL, NULL);
    return ctx;
}
