/* test_xml_stream.c: the incremental parser of the component stream. A
 * recorded server stream must give the same stanzas however the bytes are
 * cut (one chunk, byte by byte, random sizes); restricted XML, oversized
 * stanzas, bad nesting and a wrong first element must end the stream with
 * the right RFC 6120 condition, without buffering without bound. */
#include <stdlib.h>
#include <string.h>

#include <strophe.h>

#include "xml_stream.h"

#include "check.h"

static xmpp_ctx_t *ctx;

/* ---- what the handlers saw ---- */

#define MAX_SEEN 16

typedef struct seen {
    char *id;                       /* the stream header's id */
    int opens, closes;
    int nstanzas;
    xmpp_stanza_t *stanzas[MAX_SEEN]; /* references taken with xmpp_stanza_clone() */
} seen_t;

static void on_open(void *arg, const char **attrs)
{
    seen_t *s = arg;
    s->opens++;
    for (int i = 0; attrs && attrs[i]; i += 2)
        if (strcmp(attrs[i], "id") == 0) {
            free(s->id);
            s->id = strdup(attrs[i + 1]);
        }
}

static void on_stanza(void *arg, xmpp_stanza_t *st)
{
    seen_t *s = arg;
    if (s->nstanzas < MAX_SEEN)
        s->stanzas[s->nstanzas] = xmpp_stanza_clone(st);
    s->nstanzas++;
}

static void on_close(void *arg) { ((seen_t *)arg)->closes++; }

static const xml_stream_handlers_t handlers = {on_open, on_stanza, on_close};

static void seen_free(seen_t *s)
{
    for (int i = 0; i < s->nstanzas && i < MAX_SEEN; i++)
        xmpp_stanza_release(s->stanzas[i]);
    free(s->id);
    memset(s, 0, sizeof *s);
}

/* ---- feeding ---- */

enum { ONE_CHUNK, BYTE_BY_BYTE, RANDOM_CHUNKS, FIXED_CHUNKS };
static const char *const mode_names[] = {"one chunk", "byte by byte", "random chunks", "fixed chunks"};

typedef struct fed {
    int rc;           /* 0, or -1 from the first failing feed */
    size_t fed;       /* bytes handed over up to and including the failing feed */
    const char *error;    /* a condition name (a string constant) */
    char error_text[160]; /* copied: the stream may be gone */
} fed_t;

static unsigned rng_state;
static unsigned rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 16) & 0x7fff;
}

/* Feeds DATA in the given way (CHUNK: fixed size, or the random maximum);
 * stops at the first -1. The stream is left for the caller to inspect. */
static fed_t feed(xml_stream_t *xs, const char *data, size_t len, int mode, size_t chunk)
{
    fed_t r = {0, 0, NULL, ""};
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (mode == BYTE_BY_BYTE)
            n = 1;
        else if (mode == RANDOM_CHUNKS)
            n = 1 + rng() % chunk;
        else if (mode == FIXED_CHUNKS)
            n = chunk;
        if (n > len - off)
            n = len - off;
        r.fed = off + n;
        if (ferry__xml_stream_feed(xs, data + off, n) != 0) {
            r.rc = -1;
            break;
        }
        off += n;
    }
    r.error = ferry__xml_stream_error(xs);
    const char *text = ferry__xml_stream_error_text(xs);
    snprintf(r.error_text, sizeof r.error_text, "%s", text ? text : "");
    return r;
}

/* Runs a whole document through a new stream with limit MAX. */
static fed_t run(const char *data, size_t len, size_t max, int mode, size_t chunk, seen_t *seen)
{
    xml_stream_t *xs = ferry__xml_stream_new(ctx, max, &handlers, seen);
    fed_t r = feed(xs, data, len, mode, chunk);
    ferry__xml_stream_free(xs);
    return r;
}

static char *to_text(xmpp_stanza_t *st)
{
    char *buf = NULL;
    size_t len = 0;
    if (!st || xmpp_stanza_to_text(st, &buf, &len) != XMPP_EOK)
        return NULL;
    return buf;
}

static char *text_of(xmpp_stanza_t *st) { return st ? xmpp_stanza_get_text(st) : NULL; }

/* ---- the recorded stream ---- */

#define HEADER                                                                                 \
    "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "    \
    "xmlns='jabber:component:accept' from='hooks.localhost' id='c2s-5f1e&amp;9a'>"

static const char recorded[] =
    HEADER
    "<handshake/>"
    " "
    "<message from='alice@localhost/phone' to='alerts@hooks.localhost' type='chat' id='m&amp;1' "
    "xml:lang='en'>"
    "<body>Fish &amp; chips &lt;3 &gt; &apos;q&apos; &quot;d&quot; &#x263A;&#233;&#65;</body>"
    "<x xmlns='jabber:x:oob' note=\"a &amp; b &lt;c&gt; &apos;d&apos; &quot;e&quot; &#x41;&#10;\">"
    "<url>http://example.org/?a=1&amp;b=2</url>"
    "<![CDATA[<raw> & ]]]]><![CDATA[> stuff]]></x>"
    "<request xmlns='urn:xmpp:receipts'/>"
    "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    "<p>one <b>two</b> three</p></body></html>"
    "</message>"
    "\n\n\t  \r\n "
    "<iq type='get' id='ping-1' from='localhost' to='hooks.localhost'>\n"
    "  <ping xmlns='urn:xmpp:ping'/>\n"
    "</iq>"
    "  "
    "<presence from='bob@localhost/pc' to='alerts@hooks.localhost'><show>dnd</show></presence>"
    " "
    "</stream:stream>";

/* What a run of the recorded stream must give, whatever the chunking. */
static void check_recorded(seen_t *s, fed_t r, const char *how)
{
    CHECK(r.rc == 0, "%s: feed failed: %s (%s)", how, check_quote(r.error), check_quote(r.error_text));
    CHECK(r.error == NULL, "%s: error %s set", how, check_quote(r.error));
    CHECK(s->opens == 1, "%s: %d open callbacks", how, s->opens);
    CHECK(s->id && strcmp(s->id, "c2s-5f1e&9a") == 0, "%s: stream id %s", how, check_quote(s->id));
    CHECK(s->closes == 1, "%s: %d close callbacks, expected 1", how, s->closes);
    if (!CHECK(s->nstanzas == 4, "%s: %d stanzas, expected 4", how, s->nstanzas))
        return;

    xmpp_stanza_t *hs = s->stanzas[0];
    CHECK_STR(xmpp_stanza_get_name(hs), "handshake");
    CHECK(xmpp_stanza_get_children(hs) == NULL, "%s: <handshake/> has children", how);

    xmpp_stanza_t *m = s->stanzas[1];
    CHECK_STR(xmpp_stanza_get_name(m), "message");
    CHECK_STR(xmpp_stanza_get_from(m), "alice@localhost/phone");
    CHECK_STR(xmpp_stanza_get_to(m), "alerts@hooks.localhost");
    CHECK_STR(xmpp_stanza_get_type(m), "chat");
    CHECK_STR(xmpp_stanza_get_id(m), "m&1");
    CHECK_STR(xmpp_stanza_get_attribute(m, "xml:lang"), "en");
    CHECK_INT(xmpp_stanza_get_attribute_count(m), 5);
    char *body = text_of(xmpp_stanza_get_child_by_name(m, "body"));
    CHECK_STR(body, "Fish & chips <3 > 'q' \"d\" \xe2\x98\xba\xc3\xa9" "A");
    xmpp_free(ctx, body);
    xmpp_stanza_t *x = xmpp_stanza_get_child_by_name(m, "x");
    if (CHECK(x != NULL, "%s: <x/> missing", how)) {
        CHECK_STR(xmpp_stanza_get_ns(x), "jabber:x:oob");
        CHECK_STR(xmpp_stanza_get_attribute(x, "note"), "a & b <c> 'd' \"e\" A\n");
        char *url = text_of(xmpp_stanza_get_child_by_name(x, "url"));
        CHECK_STR(url, "http://example.org/?a=1&b=2");
        xmpp_free(ctx, url);
        /* the CDATA sections are the text after <url/> */
        xmpp_stanza_t *after = xmpp_stanza_get_next(xmpp_stanza_get_child_by_name(x, "url"));
        CHECK(after && xmpp_stanza_is_text(after), "%s: no text after <url/>", how);
        char *cdata = text_of(after);
        CHECK_STR(cdata, "<raw> & ]]> stuff");
        xmpp_free(ctx, cdata);
        CHECK(after && xmpp_stanza_get_next(after) == NULL, "%s: the CDATA text is split", how);
    }
    CHECK(xmpp_stanza_get_child_by_name_and_ns(m, "request", "urn:xmpp:receipts") != NULL,
          "%s: <request/> missing", how);
    xmpp_stanza_t *html = xmpp_stanza_get_child_by_name(m, "html");
    xmpp_stanza_t *hb = html ? xmpp_stanza_get_child_by_name(html, "body") : NULL;
    xmpp_stanza_t *p = hb ? xmpp_stanza_get_child_by_name(hb, "p") : NULL;
    if (CHECK(p != NULL, "%s: <html><body><p> missing", how)) {
        CHECK_STR(xmpp_stanza_get_ns(hb), "http://www.w3.org/1999/xhtml");
        char *ptext = text_of(p);
        /* get_text joins the text children of <p/>: "one " and " three" */
        CHECK_STR(ptext, "one  three");
        xmpp_free(ctx, ptext);
        char *b = text_of(xmpp_stanza_get_child_by_name(p, "b"));
        CHECK_STR(b, "two");
        xmpp_free(ctx, b);
    }

    xmpp_stanza_t *iq = s->stanzas[2];
    CHECK_STR(xmpp_stanza_get_name(iq), "iq");
    CHECK_STR(xmpp_stanza_get_id(iq), "ping-1");
    CHECK_STR(xmpp_stanza_get_type(iq), "get");
    CHECK(xmpp_stanza_get_child_by_name_and_ns(iq, "ping", "urn:xmpp:ping") != NULL,
          "%s: <ping/> missing", how);

    xmpp_stanza_t *pres = s->stanzas[3];
    CHECK_STR(xmpp_stanza_get_name(pres), "presence");
    char *show = text_of(xmpp_stanza_get_child_by_name(pres, "show"));
    CHECK_STR(show, "dnd");
    xmpp_free(ctx, show);
}

static void test_recorded(void)
{
    size_t len = sizeof recorded - 1;
    seen_t ref = {0};
    fed_t r = run(recorded, len, 4096, ONE_CHUNK, 0, &ref);
    check_recorded(&ref, r, "one chunk");

    /* every other way of cutting the bytes gives exactly the same stanzas */
    struct { int mode; size_t chunk; unsigned seed; } ways[] = {
        {BYTE_BY_BYTE, 1, 0},   {RANDOM_CHUNKS, 7, 1},  {RANDOM_CHUNKS, 7, 2},
        {RANDOM_CHUNKS, 31, 3}, {RANDOM_CHUNKS, 31, 4}, {RANDOM_CHUNKS, 200, 5},
        {FIXED_CHUNKS, 2, 0},   {FIXED_CHUNKS, 3, 0},   {FIXED_CHUNKS, 64, 0},
    };
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        char how[64];
        snprintf(how, sizeof how, "%s (max %zu, seed %u)", mode_names[ways[w].mode], ways[w].chunk,
                 ways[w].seed);
        rng_state = ways[w].seed;
        seen_t s = {0};
        r = run(recorded, len, 4096, ways[w].mode, ways[w].chunk, &s);
        check_recorded(&s, r, how);
        for (int i = 0; i < s.nstanzas && i < ref.nstanzas && i < MAX_SEEN; i++) {
            char *a = to_text(ref.stanzas[i]), *b = to_text(s.stanzas[i]);
            CHECK(a && b && strcmp(a, b) == 0, "%s: stanza %d serialises as %s, in one chunk as %s",
                  how, i, check_quote(b), check_quote(a));
            xmpp_free(ctx, a);
            xmpp_free(ctx, b);
        }
        seen_free(&s);
    }

    seen_free(&ref);
}

/* A stanza handler may keep stanzas; a stream may also end without
 * </stream:stream> (connection dropped): freeing it mid-stanza is clean. */
static void test_free_midway(void)
{
    seen_t s = {0};
    xml_stream_t *xs = ferry__xml_stream_new(ctx, 4096, &handlers, &s);
    const char *part = HEADER "<message to='a@b'><body>half";
    CHECK(ferry__xml_stream_feed(xs, part, strlen(part)) == 0, "feed failed");
    CHECK_INT(s.nstanzas, 0);
    CHECK_INT(s.closes, 0);
    ferry__xml_stream_free(xs);
    seen_free(&s);
}

/* ---- rejections ---- */

/* DOC must end the stream with CONDITION, in every way of feeding it, and
 * no stanza after the offending point may come out. */
#define REJECT(doc, max, condition, stanzas_before) \
    reject_at(__FILE__, __LINE__, doc, strlen(doc), max, condition, stanzas_before)
static void reject_at(const char *file, int line, const char *doc, size_t len, size_t max,
                      const char *condition, int stanzas_before)
{
    int modes[] = {ONE_CHUNK, BYTE_BY_BYTE, RANDOM_CHUNKS};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        seen_t s = {0};
        rng_state = 42;
        xml_stream_t *xs = ferry__xml_stream_new(ctx, max, &handlers, &s);
        fed_t r = feed(xs, doc, len, modes[m], 13);
        check_at(file, line,
                 r.rc == -1 && r.error && strcmp(r.error, condition) == 0 && *r.error_text,
                 "%s: rc %d, error %s (%s), expected -1 and %s", mode_names[modes[m]], r.rc,
                 check_quote(r.error), check_quote(r.error_text), condition);
        check_at(file, line, s.nstanzas == stanzas_before, "%s: %d stanza(s) came out, expected %d",
                 mode_names[modes[m]], s.nstanzas, stanzas_before);
        /* the error is final */
        if (r.rc == -1)
            check_at(file, line, ferry__xml_stream_feed(xs, " ", 1) == -1,
                     "%s: feeding after the error succeeded", mode_names[modes[m]]);
        ferry__xml_stream_free(xs);
        seen_free(&s);
    }
}

static void test_restricted(void)
{
    /* RFC 6120 section 11.1: no DTD, entity declarations, comments or PIs */
    REJECT("<?xml version='1.0'?><!DOCTYPE stream:stream>"
           "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='1'>",
           4096, "restricted-xml", 0);
    REJECT("<?xml version='1.0'?><!DOCTYPE stream:stream SYSTEM 'http://example.org/x.dtd'>"
           "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='1'>",
           4096, "restricted-xml", 0);
    REJECT("<!DOCTYPE stream:stream [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>"
           "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
           "<message><body>&lol2;</body></message>",
           4096, "restricted-xml", 0);
    REJECT("<!DOCTYPE x [<!ENTITY % p 'x'>]><stream:stream xmlns:stream='s' id='1'>", 4096,
           "restricted-xml", 0);
    REJECT("<!-- hello --><stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='1'>",
           4096, "restricted-xml", 0);
    REJECT(HEADER "<handshake/><!-- a comment between stanzas --><message/>", 4096,
           "restricted-xml", 1);
    REJECT(HEADER "<message><body>a<!-- inside -->b</body></message>", 4096, "restricted-xml", 0);
    REJECT(HEADER "<?php echo 1; ?><message/>", 4096, "restricted-xml", 0);
    REJECT(HEADER "<handshake/><message><?pi data?></message>", 4096, "restricted-xml", 1);
    REJECT("<?xml-stylesheet href='x'?><stream:stream xmlns:stream='s' id='1'>", 4096,
           "restricted-xml", 0);
}

static void test_not_well_formed(void)
{
    REJECT(HEADER "<message><body>hi</message>", 4096, "not-well-formed", 0);
    REJECT(HEADER "<handshake/><message><body>hi</body></iq>", 4096, "not-well-formed", 1);
    REJECT(HEADER "<message to='a'b'/>", 4096, "not-well-formed", 0);
    REJECT(HEADER "<message><body>&undefined;</body></message>", 4096, "not-well-formed", 0);
    REJECT(HEADER "<message><body>a & b</body></message>", 4096, "not-well-formed", 0);
    REJECT(HEADER "<message a='1' a='2'/>", 4096, "not-well-formed", 0);
    REJECT(HEADER "<message><body>\xff\xfe</body></message>", 4096, "not-well-formed", 0);
    REJECT(HEADER "<message/></stream:stream><message/>", 4096, "not-well-formed", 1);
    REJECT(HEADER "</stream>", 4096, "not-well-formed", 0);
}

static void test_first_element(void)
{
    static const char *const docs[] = {
        "<message from='a@b' to='c@d'><body>hi</body></message>",
        "<?xml version='1.0'?><stream xmlns='http://etherx.jabber.org/streams' id='1'>"
        "<message/>",
        "<handshake/>",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        int modes[] = {ONE_CHUNK, BYTE_BY_BYTE};
        for (size_t m = 0; m < 2; m++) {
            seen_t s = {0};
            xml_stream_t *xs = ferry__xml_stream_new(ctx, 4096, &handlers, &s);
            fed_t r = feed(xs, docs[i], strlen(docs[i]), modes[m], 0);
            CHECK(r.rc == -1, "%s: %s accepted as a stream", mode_names[modes[m]], check_quote(docs[i]));
            CHECK(r.error != NULL, "%s: no error condition for %s", mode_names[modes[m]],
                  check_quote(docs[i]));
            CHECK(s.opens == 0 && s.nstanzas == 0 && s.closes == 0,
                  "%s: %s gave %d open, %d stanza, %d close callback(s); expected none",
                  mode_names[modes[m]], check_quote(docs[i]), s.opens, s.nstanzas, s.closes);
            ferry__xml_stream_free(xs);
            seen_free(&s);
        }
    }
}

static char *build(const char *prefix, char fill, size_t n, const char *suffix, size_t *len)
{
    size_t a = strlen(prefix), c = suffix ? strlen(suffix) : 0;
    char *doc = malloc(a + n + c + 1);
    memcpy(doc, prefix, a);
    memset(doc + a, fill, n);
    if (c)
        memcpy(doc + a + n, suffix, c);
    doc[a + n + c] = 0;
    *len = a + n + c;
    return doc;
}

static void test_size_limit(void)
{
    size_t len;
    const size_t max = 4096;

    /* a 10 KB body, in 1 KB chunks and in one chunk */
    char *doc = build(HEADER "<handshake/><message to='a@b'><body>", 'x', 10 * 1024,
                      "</body></message><message/>", &len);
    struct { int mode; size_t chunk; } ways[] = {
        {FIXED_CHUNKS, 1024}, {ONE_CHUNK, 0}, {FIXED_CHUNKS, 100}, {BYTE_BY_BYTE, 1}};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        seen_t s = {0};
        fed_t r = run(doc, len, max, ways[w].mode, ways[w].chunk, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "10 KB body, %s of %zu: rc %d error %s, expected policy-violation",
              mode_names[ways[w].mode], ways[w].chunk, r.rc, check_quote(r.error));
        CHECK(s.nstanzas == 1, "10 KB body, %s of %zu: %d stanza(s) came out, expected only "
              "the handshake", mode_names[ways[w].mode], ways[w].chunk, s.nstanzas);
        seen_free(&s);
    }
    free(doc);

    /* a 10 KB attribute value, complete, in one chunk and in 1 KB chunks */
    doc = build(HEADER "<handshake/><message to='a@b' data='", 'y', 10 * 1024, "'/><message/>", &len);
    for (size_t w = 0; w < 2; w++) {
        seen_t s = {0};
        fed_t r = run(doc, len, max, ways[w].mode, ways[w].chunk, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "10 KB attribute, %s: rc %d error %s, expected policy-violation",
              mode_names[ways[w].mode], r.rc, check_quote(r.error));
        CHECK(s.nstanzas == 1, "10 KB attribute, %s: %d stanza(s) came out, expected only the "
              "handshake", mode_names[ways[w].mode], s.nstanzas);
        seen_free(&s);
    }
    free(doc);

    /* an oversized start tag followed by a child: the partial stanza must
     * not be handed over when the limit is hit */
    doc = build(HEADER "<message to='a@b' data='", 'z', 6000, "'><x/><y/></message>", &len);
    for (size_t w = 0; w < 2; w++) {
        seen_t s = {0};
        fed_t r = run(doc, len, max, ways[w].mode, ways[w].chunk, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "6 KB start tag + child, %s: rc %d error %s, expected policy-violation",
              mode_names[ways[w].mode], r.rc, check_quote(r.error));
        CHECK(s.nstanzas == 0, "6 KB start tag + child, %s: %d stanza(s) handed over, expected 0",
              mode_names[ways[w].mode], s.nstanzas);
        seen_free(&s);
    }
    free(doc);

    /* many small children: the total counts, not each element */
    {
        char *big = malloc(64 * 1024);
        size_t o = (size_t)sprintf(big, "%s<message to='a@b'>", HEADER);
        for (int i = 0; i < 2000; i++)
            o += (size_t)sprintf(big + o, "<i n='%d'/>", i);
        o += (size_t)sprintf(big + o, "</message>");
        seen_t s = {0};
        fed_t r = run(big, o, max, FIXED_CHUNKS, 512, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "2000 children: rc %d error %s, expected policy-violation", r.rc, check_quote(r.error));
        CHECK_INT(s.nstanzas, 0);
        seen_free(&s);
        free(big);
    }

    /* an attribute value that never ends, fed in 1 KB chunks: refused
     * before much more than the limit is buffered */
    doc = build(HEADER "<handshake/><message to='a@b' data='", 'q', 1024 * 1024, NULL, &len);
    {
        seen_t s = {0};
        fed_t r = run(doc, len, max, FIXED_CHUNKS, 1024, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "endless attribute: rc %d error %s, expected policy-violation", r.rc,
              check_quote(r.error));
        size_t header = strlen(HEADER "<handshake/>");
        CHECK(r.fed <= header + 2 * max + 1024,
              "endless attribute: refused only after %zu bytes (limit %zu)", r.fed - header, max);
        CHECK_INT(s.nstanzas, 1);
        seen_free(&s);
    }
    /* ... and the same for text, and for an endless start tag name */
    free(doc);
    doc = build(HEADER "<message><body>", 'q', 1024 * 1024, NULL, &len);
    {
        seen_t s = {0};
        fed_t r = run(doc, len, max, FIXED_CHUNKS, 1024, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "endless body: rc %d error %s", r.rc, check_quote(r.error));
        CHECK(r.fed <= strlen(HEADER) + 2 * max + 1024, "endless body: refused only after %zu bytes",
              r.fed);
        seen_free(&s);
    }
    free(doc);
    doc = build(HEADER "<m", 'n', 1024 * 1024, NULL, &len);
    {
        seen_t s = {0};
        fed_t r = run(doc, len, max, FIXED_CHUNKS, 1024, &s);
        CHECK(r.rc == -1 && r.error && strcmp(r.error, "policy-violation") == 0,
              "endless element name: rc %d error %s", r.rc, check_quote(r.error));
        CHECK(r.fed <= strlen(HEADER) + 2 * max + 1024,
              "endless element name: refused only after %zu bytes", r.fed);
        seen_free(&s);
    }
    free(doc);

    /* a stanza just under the limit passes, however it is cut */
    doc = build(HEADER "<message to='a@b'><body>", 'k', max - 100, "</body></message>", &len);
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        seen_t s = {0};
        fed_t r = run(doc, len, max, ways[w].mode, ways[w].chunk, &s);
        CHECK(r.rc == 0, "stanza under the limit, %s of %zu: %s (%s)", mode_names[ways[w].mode],
              ways[w].chunk, check_quote(r.error), check_quote(r.error_text));
        CHECK(s.nstanzas == 1, "stanza under the limit, %s of %zu: %d stanzas, expected 1",
              mode_names[ways[w].mode], ways[w].chunk, s.nstanzas);
        seen_free(&s);
    }
    free(doc);

    /* many stanzas, each under the limit, add up to far more: fine */
    {
        size_t cap = 600 * 1024;
        char *many = malloc(cap);
        size_t o = (size_t)sprintf(many, "%s", HEADER);
        for (int i = 0; i < 200; i++) {
            o += (size_t)sprintf(many + o, "<message id='%d'><body>", i);
            memset(many + o, 'b', 3000);
            o += 3000;
            o += (size_t)sprintf(many + o, "</body></message>");
        }
        seen_t s = {0};
        fed_t r = run(many, o, max, FIXED_CHUNKS, 1000, &s);
        CHECK(r.rc == 0, "200 stanzas of 3 KB: %s (%s)", check_quote(r.error), check_quote(r.error_text));
        CHECK_INT(s.nstanzas, 200);
        seen_free(&s);
        rng_state = 9;
        r = run(many, o, max, RANDOM_CHUNKS, 5000, &s);
        CHECK(r.rc == 0, "200 stanzas of 3 KB, random chunks: %s (%s)", check_quote(r.error),
              check_quote(r.error_text));
        CHECK_INT(s.nstanzas, 200);
        seen_free(&s);
        free(many);
    }
}

static void test_keepalives(void)
{
    const size_t max = 4096;
    size_t spaces = 1024 * 1024, len;
    /* 1 MB of whitespace keepalives between two stanzas */
    char *doc = build(HEADER "<handshake/>", ' ', spaces, "<message id='after'/></stream:stream>", &len);
    for (int n = 0; n < 1024; n++)
        doc[strlen(HEADER "<handshake/>") + (size_t)n * 1024] = n % 3 ? '\n' : '\t';
    struct { int mode; size_t chunk; } ways[] = {
        {ONE_CHUNK, 0}, {FIXED_CHUNKS, 1}, {FIXED_CHUNKS, 1024}, {FIXED_CHUNKS, 4096},
        {FIXED_CHUNKS, 65536}, {RANDOM_CHUNKS, 9000}};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        seen_t s = {0};
        rng_state = 3;
        fed_t r = run(doc, len, max, ways[w].mode, ways[w].chunk, &s);
        CHECK(r.rc == 0, "1 MB of keepalives, %s of %zu: %s (%s)", mode_names[ways[w].mode],
              ways[w].chunk, check_quote(r.error), check_quote(r.error_text));
        CHECK(s.nstanzas == 2 && s.closes == 1,
              "1 MB of keepalives, %s of %zu: %d stanzas and %d close(s), expected 2 and 1",
              mode_names[ways[w].mode], ways[w].chunk, s.nstanzas, s.closes);
        seen_free(&s);
    }
    free(doc);

    /* keepalives before the first stanza, right after the header */
    doc = build(HEADER, ' ', spaces, "<handshake/>", &len);
    seen_t s = {0};
    fed_t r = run(doc, len, max, FIXED_CHUNKS, 1500, &s);
    CHECK(r.rc == 0, "1 MB of keepalives after the header: %s", check_quote(r.error));
    CHECK_INT(s.nstanzas, 1);
    seen_free(&s);
    free(doc);

    /* a keepalive after each of many stanzas, one byte at a time */
    size_t cap = 300 * 1024, o;
    char *many = malloc(cap);
    o = (size_t)sprintf(many, "%s", HEADER);
    for (int i = 0; i < 3000; i++)
        o += (size_t)sprintf(many + o, "<message id='%d'><body>x</body></message>  \n", i);
    r = run(many, o, max, BYTE_BY_BYTE, 1, &s);
    CHECK(r.rc == 0, "3000 small stanzas byte by byte: %s", check_quote(r.error));
    CHECK_INT(s.nstanzas, 3000);
    seen_free(&s);
    free(many);
}

static void test_nesting(void)
{
    /* 1000 levels deep: refused, no crash, nothing handed over */
    size_t cap = 16 * 1024, o;
    char *doc = malloc(cap);
    o = (size_t)sprintf(doc, "%s<message>", HEADER);
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(doc + o, "<a>");
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(doc + o, "</a>");
    o += (size_t)sprintf(doc + o, "</message>");
    int modes[] = {ONE_CHUNK, BYTE_BY_BYTE};
    for (size_t m = 0; m < 2; m++) {
        seen_t s = {0};
        fed_t r = run(doc, o, 1024 * 1024, modes[m], 1, &s);
        CHECK(r.rc == -1 && r.error != NULL, "1000 levels, %s: rc %d error %s, expected an error",
              mode_names[modes[m]], r.rc, check_quote(r.error));
        CHECK(s.nstanzas == 0, "1000 levels, %s: %d stanza(s) handed over", mode_names[modes[m]],
              s.nstanzas);
        seen_free(&s);
    }

    /* the same with an empty element at the bottom */
    o = (size_t)sprintf(doc, "%s<message>", HEADER);
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(doc + o, "<a>");
    o += (size_t)sprintf(doc + o, "<leaf/>");
    seen_t s = {0};
    fed_t r = run(doc, o, 1024 * 1024, ONE_CHUNK, 0, &s);
    CHECK(r.rc == -1 && r.error != NULL, "1000 levels + leaf: rc %d error %s", r.rc,
          check_quote(r.error));
    CHECK_INT(s.nstanzas, 0);
    seen_free(&s);

    /* real stanzas are a dozen levels deep at most: 20 is fine */
    o = (size_t)sprintf(doc, "%s<message>", HEADER);
    for (int i = 0; i < 20; i++)
        o += (size_t)sprintf(doc + o, "<a n='%d'>", i);
    o += (size_t)sprintf(doc + o, "deep");
    for (int i = 0; i < 20; i++)
        o += (size_t)sprintf(doc + o, "</a>");
    o += (size_t)sprintf(doc + o, "</message>");
    r = run(doc, o, 4096, BYTE_BY_BYTE, 1, &s);
    CHECK(r.rc == 0, "20 levels: %s (%s)", check_quote(r.error), check_quote(r.error_text));
    if (CHECK(s.nstanzas == 1, "20 levels: %d stanzas", s.nstanzas)) {
        xmpp_stanza_t *e = s.stanzas[0];
        for (int i = 0; i < 20 && e; i++)
            e = xmpp_stanza_get_child_by_name(e, "a");
        char *t = text_of(e);
        CHECK_STR(t, "deep");
        xmpp_free(ctx, t);
    }
    seen_free(&s);
    free(doc);
}

/* ferry__xml_stream_stop() from a handler: parsing stops, no error, nothing more. */
static void on_stanza_stop(void *arg, xmpp_stanza_t *st);
static xml_stream_t *stopping;
static void on_stanza_stop(void *arg, xmpp_stanza_t *st)
{
    on_stanza(arg, st);
    ferry__xml_stream_stop(stopping);
}

static void test_stop(void)
{
    static const xml_stream_handlers_t h = {on_open, on_stanza_stop, on_close};
    seen_t s = {0};
    stopping = ferry__xml_stream_new(ctx, 4096, &h, &s);
    const char *doc = HEADER "<message id='1'/><message id='2'/><message id='3'/>";
    CHECK(ferry__xml_stream_feed(stopping, doc, strlen(doc)) == 0, "feed after stop reported an error");
    CHECK(ferry__xml_stream_error(stopping) == NULL, "stop set error %s",
          check_quote(ferry__xml_stream_error(stopping)));
    CHECK_INT(s.nstanzas, 1);
    CHECK(ferry__xml_stream_feed(stopping, "<message/>", 10) == 0, "feed after stop failed");
    CHECK_INT(s.nstanzas, 1);
    ferry__xml_stream_free(stopping);
    seen_free(&s);
}

/* expat 2.6 may defer reparsing a token that is still incomplete until the
 * buffered bytes have grown enough; the stream turns that off where the
 * function exists (older expat never defers). A start tag of 24 KiB that
 * comes in 1 KiB reads, ending with a small one, is the case deferral would
 * hold back: the stanza must still be out when its last read is fed. */
static void test_prompt_delivery_large_token(void)
{
    enum { ATTR = 24 * 1024 };
    size_t cap = ATTR + 256;
    char *big = malloc(cap);
    int n = snprintf(big, cap, "<message to='a@localhost' id='");
    memset(big + n, 'x', ATTR);
    n += ATTR;
    n += snprintf(big + n, cap - n, "'><body>late</body></message>");
    size_t len = (size_t)n;
    seen_t s = {0};
    xml_stream_t *xs = ferry__xml_stream_new(ctx, 64 * 1024, &handlers, &s);
    ferry__xml_stream_feed(xs, HEADER, strlen(HEADER));
    size_t off = 0;
    int early = 0;
    while (len - off > 40) {
        size_t step = len - off - 40 < 1024 ? len - off - 40 : 1024;
        ferry__xml_stream_feed(xs, big + off, step);
        off += step;
        early += s.nstanzas;
    }
    CHECK(early == 0, "the stanza was out before its last bytes");
    int rc = ferry__xml_stream_feed(xs, big + off, len - off);
    CHECK(rc == 0 && s.nstanzas == 1,
          "a stanza with a 24 KiB start tag fed in 1 KiB reads was not handed over when its last "
          "40 bytes were fed (rc %d, %d stanza(s) out)",
          rc, s.nstanzas);
    ferry__xml_stream_free(xs);
    seen_free(&s);
    free(big);
}

/* A stanza is handed over as soon as its last byte has been fed, wherever
 * the network cut it: nothing may wait for bytes that belong to the next
 * stanza (or a keepalive that comes 30 s later). */
static void test_prompt_delivery(void)
{
    static const char stanza[] =
        "<message from='alice@localhost/phone' to='alerts@hooks.localhost' type='chat' "
        "id='a3f9c2d1-5b7e-4c1a-9e8f-0d2b6a4c8e13' xml:lang='en'><body>disk full</body>"
        "<request xmlns='urn:xmpp:receipts'/></message>";
    size_t len = sizeof stanza - 1;
    int bad = 0;
    size_t first_bad = 0;
    for (size_t k = 1; k < len; k++) {
        seen_t s = {0};
        xml_stream_t *xs = ferry__xml_stream_new(ctx, 4096, &handlers, &s);
        int rc = ferry__xml_stream_feed(xs, HEADER, strlen(HEADER));
        rc |= ferry__xml_stream_feed(xs, stanza, k);
        rc |= ferry__xml_stream_feed(xs, stanza + k, len - k);
        if (rc != 0 || s.nstanzas != 1) {
            if (!bad++)
                first_bad = k;
        }
        ferry__xml_stream_free(xs);
        seen_free(&s);
    }
    CHECK(bad == 0,
          "a stanza cut in two pieces was not handed over after its last byte at %d of %zu cut "
          "points (the first: after %zu bytes)",
          bad, len - 1, first_bad);

    /* three stanzas, each sent in two writes: each one is out when its
     * second write has been fed */
    seen_t s = {0};
    xml_stream_t *xs = ferry__xml_stream_new(ctx, 4096, &handlers, &s);
    ferry__xml_stream_feed(xs, HEADER, strlen(HEADER));
    for (int i = 0; i < 3; i++) {
        ferry__xml_stream_feed(xs, stanza, 150);
        ferry__xml_stream_feed(xs, stanza + 150, len - 150);
        CHECK(s.nstanzas == i + 1, "after the second half of stanza %d: %d stanza(s) out", i + 1,
              s.nstanzas);
    }
    ferry__xml_stream_free(xs);
    seen_free(&s);
    test_prompt_delivery_large_token();
}

int main(void)
{
    xmpp_initialize();
    ctx = xmpp_ctx_new(NULL, NULL);
    test_recorded();
    test_free_midway();
    test_prompt_delivery();
    test_restricted();
    test_not_well_formed();
    test_first_element();
    test_size_limit();
    test_keepalives();
    test_nesting();
    test_stop();
    xmpp_ctx_free(ctx);
    xmpp_shutdown();
    return check_summary();
}
