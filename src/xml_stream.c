/* xml_stream.c: expat fed with whatever bytes arrive, building one stanza at
 * a time. Restricted XML (RFC 6120 section 11.1) is enforced: no DTD, no
 * entity declarations, no comments, no processing instructions; and no
 * element may grow past max_stanza bytes, so a peer cannot make us buffer
 * without bound. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "ferry/alloc.h"
#include "xml_stream.h"

/* Deeper nesting than any real stanza needs; a bound keeps memory bounded. */
#define MAX_DEPTH 64

struct xml_stream {
    XML_Parser parser;
    xmpp_ctx_t *ctx;
    size_t max_stanza;
    const xml_stream_handlers_t *h;
    void *arg;

    int depth;               /* open elements; 1 = inside <stream:stream> */
    xmpp_stanza_t *stanza;   /* the top-level element being built */
    xmpp_stanza_t *open[MAX_DEPTH]; /* its open elements, outermost first */
    char *text;              /* character data not yet attached */
    size_t text_len, text_cap;

    unsigned long long fed;  /* bytes fed so far */
    unsigned long long mark; /* stream offset where the current element began */
    const char *error;
    char error_text[160];
    int stopped;
};

static void fail(xml_stream_t *s, const char *condition, const char *text)
{
    if (!s->error) {
        s->error = condition;
        snprintf(s->error_text, sizeof s->error_text, "%s", text);
    }
    XML_StopParser(s->parser, XML_FALSE);
}

static int over_size(xml_stream_t *s)
{
    unsigned long long at = (unsigned long long)XML_GetCurrentByteIndex(s->parser) + (unsigned long long)XML_GetCurrentByteCount(s->parser);
    return at > s->mark && at - s->mark > s->max_stanza;
}

static void flush_text(xml_stream_t *s)
{
    if (!s->text_len)
        return;
    if (s->depth >= 2) {
        xmpp_stanza_t *t = xmpp_stanza_new(s->ctx);
        s->text[s->text_len] = 0;
        xmpp_stanza_set_text_with_size(t, s->text, s->text_len);
        xmpp_stanza_add_child_ex(s->open[s->depth - 2], t, 0);
    }
    s->text_len = 0;
}

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
    xml_stream_t *s = arg;
    if (s->error || s->stopped)
        return;
    if (s->depth == 0) {
        s->depth = 1;
        if (strcmp(name, "stream:stream") != 0) {
            fail(s, "invalid-namespace", "the stream must open with <stream:stream>");
            return;
        }
        s->mark = (unsigned long long)XML_GetCurrentByteIndex(s->parser) +
                  (unsigned long long)XML_GetCurrentByteCount(s->parser);
        if (s->h->open)
            s->h->open(s->arg, (const char **)attrs);
        return;
    }
    if (over_size(s)) {
        fail(s, "policy-violation", "stanza larger than max_stanza_size");
        return;
    }
    if (s->depth - 1 >= MAX_DEPTH) {
        fail(s, "policy-violation", "elements nested too deeply");
        return;
    }
    flush_text(s);
    xmpp_stanza_t *el = xmpp_stanza_new(s->ctx);
    xmpp_stanza_set_name(el, name);
    for (int i = 0; attrs[i]; i += 2)
        xmpp_stanza_set_attribute(el, attrs[i], attrs[i + 1]);
    if (s->depth == 1)
        s->stanza = el;
    else
        xmpp_stanza_add_child_ex(s->open[s->depth - 2], el, 0);
    s->open[s->depth - 1] = el;
    s->depth++;
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
    xml_stream_t *s = arg;
    (void)name;
    if (s->error || s->stopped)
        return;
    if (over_size(s)) {
        fail(s, "policy-violation", "stanza larger than max_stanza_size");
        return;
    }
    if (s->depth == 1) {
        s->depth = 0;
        if (s->h->close)
            s->h->close(s->arg);
        return;
    }
    flush_text(s);
    s->depth--;
    if (s->depth > 1)
        return;
    xmpp_stanza_t *done = s->stanza;
    s->stanza = NULL;
    s->mark = (unsigned long long)XML_GetCurrentByteIndex(s->parser) +
              (unsigned long long)XML_GetCurrentByteCount(s->parser);
    if (s->h->stanza)
        s->h->stanza(s->arg, done);
    xmpp_stanza_release(done);
}

static void XMLCALL on_text(void *arg, const XML_Char *data, int len)
{
    xml_stream_t *s = arg;
    if (s->depth < 2) {
        /* whitespace keepalives between stanzas: not part of any stanza */
        s->mark = (unsigned long long)XML_GetCurrentByteIndex(s->parser) + (unsigned long long)len;
        return;
    }
    if (over_size(s)) {
        fail(s, "policy-violation", "stanza larger than max_stanza_size");
        return;
    }
    if (s->text_len + (size_t)len + 1 > s->text_cap) {
        s->text_cap = (s->text_len + (size_t)len + 1) * 2;
        s->text = ferry_realloc(s->text, s->text_cap);
    }
    memcpy(s->text + s->text_len, data, (size_t)len);
    s->text_len += (size_t)len;
}

static void XMLCALL on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail(arg, "restricted-xml", "DTDs are not allowed in XMPP");
}

static void XMLCALL on_entity(void *arg, const XML_Char *name, int is_param, const XML_Char *value,
                              int value_len, const XML_Char *base, const XML_Char *sysid,
                              const XML_Char *pubid, const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid,
        (void)pubid, (void)notation;
    fail(arg, "restricted-xml", "entity declarations are not allowed in XMPP");
}

static void XMLCALL on_comment(void *arg, const XML_Char *data)
{
    (void)data;
    fail(arg, "restricted-xml", "comments are not allowed in XMPP");
}

static void XMLCALL on_pi(void *arg, const XML_Char *target, const XML_Char *data)
{
    (void)target, (void)data;
    fail(arg, "restricted-xml", "processing instructions are not allowed in XMPP");
}

/* expat 2.6 may hold back an unfinished token until more bytes come; a stanza
 * must be handled as soon as its last byte arrives, so deferral stays off.
 * Debian 12 got the function in a security update: where the header has it,
 * call it; where it does not, the library may still have been updated since
 * this was built, so ask the loaded library. Older expat never defers. */
static void no_reparse_deferral(XML_Parser p)
{
#ifdef FERRY_HAVE_XML_SETREPARSEDEFERRALENABLED
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
#else
    static XML_Bool (*set_deferral)(XML_Parser, XML_Bool);
    static int looked;
    if (!looked) {
        looked = 1;
        *(void **)&set_deferral = dlsym(RTLD_DEFAULT, "XML_SetReparseDeferralEnabled");
    }
    if (set_deferral)
        set_deferral(p, XML_FALSE);
#endif
}

xml_stream_t *ferry__xml_stream_new(xmpp_ctx_t *ctx, size_t max_stanza,
                             const xml_stream_handlers_t *handlers, void *arg)
{
    xml_stream_t *s = ferry_calloc(1, sizeof *s);
    s->parser = XML_ParserCreate("UTF-8");
    s->ctx = ctx;
    s->max_stanza = max_stanza;
    s->h = handlers;
    s->arg = arg;
    XML_SetUserData(s->parser, s);
    no_reparse_deferral(s->parser);
    XML_SetElementHandler(s->parser, on_start, on_end);
    XML_SetCharacterDataHandler(s->parser, on_text);
    XML_SetStartDoctypeDeclHandler(s->parser, on_doctype);
    XML_SetEntityDeclHandler(s->parser, on_entity);
    XML_SetCommentHandler(s->parser, on_comment);
    XML_SetProcessingInstructionHandler(s->parser, on_pi);
    return s;
}

void ferry__xml_stream_free(xml_stream_t *s)
{
    if (!s)
        return;
    if (s->stanza)
        xmpp_stanza_release(s->stanza);
    XML_ParserFree(s->parser);
    free(s->text);
    free(s);
}

void ferry__xml_stream_stop(xml_stream_t *s)
{
    s->stopped = 1;
    XML_StopParser(s->parser, XML_FALSE);
}

int ferry__xml_stream_feed(xml_stream_t *s, const char *data, size_t len)
{
    if (s->error)
        return -1;
    if (s->stopped)
        return 0;
    s->fed += len;
    if (XML_Parse(s->parser, data, (int)len, XML_FALSE) == XML_STATUS_ERROR) {
        if (s->stopped && !s->error)
            return 0;
        if (!s->error) {
            s->error = "not-well-formed";
            snprintf(s->error_text, sizeof s->error_text, "%s at byte %llu",
                     XML_ErrorString(XML_GetErrorCode(s->parser)),
                     (unsigned long long)XML_GetCurrentByteIndex(s->parser));
        }
        return -1;
    }
    /* expat holds an unfinished token until it completes: count it too. */
    if (s->fed - s->mark > s->max_stanza + 4096 && s->depth >= 1) {
        s->error = "policy-violation";
        snprintf(s->error_text, sizeof s->error_text, "stanza larger than max_stanza_size");
        return -1;
    }
    return 0;
}

const char *ferry__xml_stream_error(const xml_stream_t *s) { return s->error; }
const char *ferry__xml_stream_error_text(const xml_stream_t *s) { return s->error_text; }
