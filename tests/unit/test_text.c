/* test_text.c: the one rule for text from outside that goes into XML
 * (ferry_utf8_next, ferry_xml_text_valid, ferry_xml_text_clean_to) and the
 * XML escaper that applies it on the fan-out path. */
#include <stdlib.h>
#include <string.h>

#include "ferry/stanza.h"
#include "ferry/text.h"
#include "check.h"

#define FFFD "\xEF\xBF\xBD"

static void clean_is(const char *in, size_t len, const char *want)
{
    char *out = malloc(3 * len + 1);
    size_t n = ferry_xml_text_clean_to(out, in, len);
    CHECK(n == strlen(want) && memcmp(out, want, n) == 0 && out[n] == 0,
          "clean(%s) is %s, expected %s", check_quote(in), check_quote(out), check_quote(want));
    CHECK(ferry_xml_text_valid(out, n), "clean(%s) is not valid", check_quote(in));
    CHECK(ferry_xml_text_valid(in, len) == (strcmp(in, want) == 0 && strlen(in) == len),
          "valid(%s) disagrees with clean", check_quote(in));
    free(out);
}

#define CLEAN(in, want) clean_is(in, sizeof(in) - 1, want)

static void test_clean_keeps_valid_text(void)
{
    CLEAN("", "");
    CLEAN("hello, world", "hello, world");
    CLEAN("tab\there\r\nnew line", "tab\there\r\nnew line");
    CLEAN("<&>'\"", "<&>'\""); /* escaping is another job */
    CLEAN("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    CLEAN("\x7F", "\x7F");                       /* DEL: XML 1.0 allows it */
    CLEAN("\xC2\x80\xC2\x9F", "\xC2\x80\xC2\x9F"); /* C1 controls are Char too */
    CLEAN("\xED\x9F\xBF", "\xED\x9F\xBF");       /* U+D7FF */
    CLEAN("\xEE\x80\x80", "\xEE\x80\x80");       /* U+E000 */
    CLEAN("\xEF\xBF\xBD", "\xEF\xBF\xBD");       /* U+FFFD */
    CLEAN("\xF0\x90\x80\x80", "\xF0\x90\x80\x80"); /* U+10000 */
    CLEAN("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"); /* U+10FFFF */
}

static void test_clean_replaces_what_xml_forbids(void)
{
    CLEAN("bad \xEF\xBF\xBF", "bad " FFFD);      /* U+FFFF */
    CLEAN("bad \xEF\xBF\xBE!", "bad " FFFD "!"); /* U+FFFE */
    CLEAN("ev\x01il", "ev" FFFD "il");
    CLEAN("\x1bnick", FFFD "nick");
    CLEAN("a\x0b\x0c" "b", "a" FFFD FFFD "b");
    clean_is("a\0b", 3, "a" FFFD "b");          /* NUL inside a counted string */
}

static void test_clean_replaces_bad_utf8(void)
{
    CLEAN("\xED\xA0\x80", FFFD FFFD FFFD);         /* surrogate: ED then 2 strays */
    CLEAN("\xED\xBF\xBF", FFFD FFFD FFFD);
    CLEAN("\xC0\x80", FFFD FFFD);                 /* overlong NUL */
    CLEAN("\xC1\xBF", FFFD FFFD);
    CLEAN("\xE0\x80\xAF", FFFD FFFD FFFD);         /* overlong '/' */
    CLEAN("\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD);
    CLEAN("\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD); /* beyond U+10FFFF */
    CLEAN("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD);
    CLEAN("\xF6", FFFD);
    CLEAN("\xF7\xBF", FFFD FFFD);
    CLEAN("\xFE\xFF", FFFD FFFD);
    CLEAN("\x80x", FFFD "x");                     /* stray continuation */
    CLEAN("x\xF0", "x" FFFD);                     /* truncated at the end */
    CLEAN("x\xF0\x9F", "x" FFFD);                 /* maximal subpart: one FFFD */
    CLEAN("x\xF0\x9F\x98", "x" FFFD);
    CLEAN("x\xE2\x82y", "x" FFFD "y");
    CLEAN("x\xC3", "x" FFFD);
    CLEAN("\xC3(", FFFD "(");
    /* Unicode 3.9's example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 */
    CLEAN("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
          "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
}

static void test_next(void)
{
    uint32_t cp;
    CHECK_INT(ferry_utf8_next("\xE2\x82\xAC", 3, &cp), 3);
    CHECK_INT(cp, 0x20AC);
    CHECK_INT(ferry_utf8_next("\xF0\x9F\x98\x80", 4, &cp), 4);
    CHECK_INT(cp, 0x1F600);
    /* A buffer that ends inside a sequence is never read past. */
    CHECK_INT(ferry_utf8_next("\xF0\x9F\x98\x80", 2, &cp), 2);
    CHECK_INT(cp, FERRY_UTF8_INVALID);
    CHECK_INT(ferry_utf8_next("\xED\xA0\x80", 3, &cp), 1);
    CHECK_INT(cp, FERRY_UTF8_INVALID);
    CHECK(!ferry_xml_char_ok(0), "NUL is not a Char");
    CHECK(!ferry_xml_char_ok(0xD800), "surrogates are not Char");
    CHECK(!ferry_xml_char_ok(0x110000), "beyond U+10FFFF is not a Char");
    CHECK(ferry_xml_char_ok(0x10FFFF), "U+10FFFF is a Char");
}

/* Every position of the 8-byte fast path: one bad byte anywhere is found. */
static void test_valid_fast_path(void)
{
    char buf[40];
    for (size_t at = 0; at < 32; at++) {
        const unsigned char bad[] = {0x00, 0x01, 0x1F, 0x80, 0xFF, 0xC0};
        for (size_t k = 0; k < sizeof bad; k++) {
            memset(buf, 'a', sizeof buf);
            buf[at] = (char)bad[k];
            CHECK(!ferry_xml_text_valid(buf, 32), "byte %02x at %zu passed", bad[k], at);
        }
        memset(buf, ' ', sizeof buf);
        buf[at] = '\x7f';
        CHECK(ferry_xml_text_valid(buf, 32), "DEL at %zu refused", at);
    }
    /* The scan stops at LEN: what follows does not count. */
    CHECK(ferry_xml_text_valid("abcdefgh\x01", 8), "a byte past LEN was read");
}

/* Every 1- and 2-byte string and every 3-byte string starting E0..EF or
 * F0..F4 (with a few third bytes): clean output is always valid, and valid
 * input is kept as it is. */
static void test_exhaustive_short(void)
{
    int bad = 0;
    char out[16];
    unsigned char in[4];
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            in[0] = (unsigned char)a;
            in[1] = (unsigned char)b;
            for (size_t len = 1; len <= 2; len++) {
                size_t n = ferry_xml_text_clean_to(out, (char *)in, len);
                int valid = ferry_xml_text_valid((char *)in, len);
                if (!ferry_xml_text_valid(out, n) ||
                    (valid && (n != len || memcmp(out, in, len) != 0)))
                    bad++;
            }
            const unsigned char thirds[] = {0x00, 0x41, 0x80, 0x9F, 0xA0, 0xBF, 0xC0};
            for (size_t t = 0; t < sizeof thirds; t++) {
                in[2] = thirds[t];
                size_t n = ferry_xml_text_clean_to(out, (char *)in, 3);
                if (!ferry_xml_text_valid(out, n))
                    bad++;
            }
        }
    CHECK_INT(bad, 0);
}

static void escape_is(const char *in, const char *want)
{
    char out[256];
    size_t n = ferry_xml_escape(out, sizeof out, 0, in);
    CHECK(n == strlen(want) && strcmp(out, want) == 0, "escape(%s) is %s, expected %s",
          check_quote(in), check_quote(out), check_quote(want));
}

static void test_escape(void)
{
    escape_is("a<b>&'\"", "a&lt;b&gt;&amp;&apos;&quot;");
    escape_is("caf\xC3\xA9", "caf\xC3\xA9");
    escape_is("bad \xEF\xBF\xBF", "bad " FFFD);
    escape_is("ev\x01il", "ev" FFFD "il");
    escape_is("x\xF0", "x" FFFD);
    escape_is("\xC0\x80<", FFFD FFFD "&lt;");
    char small[8];
    CHECK_INT(ferry_xml_escape(small, sizeof small, 0, "\xEF\xBF\xBF\xEF\xBF\xBF\xEF\xBF\xBF"),
              sizeof small);
}

static void test_clean_in_place(void)
{
    char *s = strdup("fine");
    char *was = s;
    ferry_xml_text_clean(&s);
    CHECK(s == was, "a valid string was copied");
    CHECK_STR(s, "fine");
    free(s);
    s = strdup("x%\xF0");
    ferry_xml_text_clean(&s);
    CHECK_STR(s, "x%" FFFD);
    free(s);
    size_t n;
    char *d = ferry_xml_text_dup("a\xFF", 2, &n);
    CHECK_STR(d, "a" FFFD);
    CHECK_INT(n, 4);
    free(d);
}

int main(void)
{
    test_clean_keeps_valid_text();
    test_clean_replaces_what_xml_forbids();
    test_clean_replaces_bad_utf8();
    test_next();
    test_valid_fast_path();
    test_exhaustive_short();
    test_escape();
    test_clean_in_place();
    return check_summary();
}
