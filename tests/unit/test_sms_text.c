/* test_sms_text.c: phone number normalisation, body splitting, segment
 * counting and form encoding of the SMS adapter. */
#include <stdlib.h>
#include <string.h>

#include "../../adapters/sms/form.h"
#include "../../adapters/sms/phone.h"
#include "check.h"

static void normalize_ok(const char *in, const char *cc, const char *want)
{
    char out[PHONE_MAX] = "";
    const char *why = NULL;
    int rc = sms_phone_normalize(in, cc, out, &why);
    CHECK(rc == 0 && strcmp(out, want) == 0, "%s (cc %s) -> %s, want %s (%s)", in,
          cc ? cc : "-", rc == 0 ? out : "error", want, why ? why : "");
}

static void normalize_bad(const char *in, const char *cc)
{
    char out[PHONE_MAX];
    const char *why = NULL;
    int rc = sms_phone_normalize(in, cc, out, &why);
    CHECK(rc != 0 && why && *why, "%s should be refused with a reason", in);
}

static void test_normalize(void)
{
    normalize_ok("+15551234567", NULL, "+15551234567");
    normalize_ok("+1 (555) 123-4567", NULL, "+15551234567");
    normalize_ok("+1.555.123.4567", "1", "+15551234567");
    normalize_ok("+1\\20555\\20123\\204567", NULL, "+15551234567");
    normalize_ok("5551234567", "1", "+15551234567");
    normalize_ok("(555) 123-4567", "1", "+15551234567");
    normalize_ok("+447700900123", "1", "+447700900123");
    normalize_bad("5551234567", NULL);
    normalize_bad("+1555abc4567", NULL);
    normalize_bad("+12", NULL);
    normalize_bad("+1234567890123456", NULL);
    normalize_bad("", "1");
    normalize_bad("1+5551234567", NULL);
}

static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void test_split(void)
{
    char **parts;
    size_t n = sms_split("short", 1600, &parts);
    CHECK(n == 1 && strcmp(parts[0], "short") == 0, "short body: %zu parts", n);
    sms_parts_free(parts, n);

    /* 2,000 characters of words: two parts, cut at a space, nothing lost. */
    char body[2100] = "";
    while (strlen(body) < 2000)
        strcat(body, "word ");
    n = sms_split(body, 1600, &parts);
    CHECK(n == 2, "2,000 chars: %zu parts", n);
    if (n == 2) {
        CHECK(chars(parts[0]) <= 1600 && chars(parts[1]) <= 1600, "parts within 1600");
        CHECK(parts[0][strlen(parts[0]) - 1] == 'd' && parts[1][0] == 'w',
              "cut at a word boundary: ...%s | %.8s...", parts[0] + strlen(parts[0]) - 4,
              parts[1]);
        size_t words = 0;
        for (size_t i = 0; i < n; i++)
            for (const char *p = parts[i]; (p = strstr(p, "word")); p += 4)
                words++;
        CHECK(words == 400, "all 400 words kept: %zu", words);
    }
    sms_parts_free(parts, n);

    /* No spaces at all: a hard cut at a character boundary (2-byte chars). */
    char wide[4001] = "";
    for (int i = 0; i < 2000; i++)
        strcat(wide, "\xc3\xa9");
    n = sms_split(wide, 1600, &parts);
    CHECK(n == 2 && chars(parts[0]) == 1600 && chars(parts[1]) == 400,
          "hard split: %zu parts", n);
    sms_parts_free(parts, n);
}

static void test_segments(void)
{
    int ucs2;
    char text[400];
    memset(text, 'a', 160);
    text[160] = 0;
    CHECK(sms_segments(text, &ucs2) == 1 && !ucs2, "160 GSM chars: 1 segment");
    text[160] = 'a';
    text[161] = 0;
    CHECK(sms_segments(text, &ucs2) == 2 && !ucs2, "161 GSM chars: 2 segments");
    memset(text, 'a', 306);
    text[306] = 0;
    CHECK(sms_segments(text, &ucs2) == 2, "306 GSM chars: 2 segments");
    text[306] = 'a';
    text[307] = 0;
    CHECK(sms_segments(text, &ucs2) == 3, "307 GSM chars: 3 segments");
    memset(text, '^', 80);
    text[80] = 0;
    CHECK(sms_segments(text, &ucs2) == 1 && !ucs2, "80 extension chars = 160 septets: 1");
    text[80] = '^';
    text[81] = 0;
    CHECK(sms_segments(text, &ucs2) == 2, "81 extension chars: 2 segments");
    CHECK(sms_segments("caf\xc3\xa9 \xe2\x82\xac", &ucs2) == 1 && !ucs2, "e-acute, euro are GSM");
    CHECK(sms_segments("hi \xf0\x9f\x98\x80", &ucs2) == 1 && ucs2, "emoji: UCS-2");
    char u[300] = "";
    for (int i = 0; i < 71; i++)
        strcat(u, "\xd0\x96"); /* Cyrillic: UCS-2 */
    CHECK(sms_segments(u, &ucs2) == 2 && ucs2, "71 UCS-2 chars: 2 segments");
}

static void test_form(void)
{
    form_t f;
    const char *body = "To=%2B15551234567&Body=hello+world%21&Empty=&Media=a&Media=b";
    CHECK(sms_form_parse(&f, body, strlen(body)) == 0, "parse");
    CHECK_STR(sms_form_get(&f, "To"), "+15551234567");
    CHECK_STR(sms_form_get(&f, "Body"), "hello world!");
    CHECK_STR(sms_form_get(&f, "Empty"), "");
    CHECK_STR(sms_form_get(&f, "Media"), "a");
    CHECK(f.n == 5, "5 fields: %zu", f.n);
    char *enc = sms_form_encode(&f);
    CHECK_STR(enc, "To=%2B15551234567&Body=hello%20world%21&Empty=&Media=a&Media=b");
    free(enc);
    sms_form_free(&f);
    CHECK(sms_form_parse(&f, "a=%zz", 5) == -1, "bad escape refused");
    CHECK(sms_form_parse(&f, "a=%2", 4) == -1, "short escape refused");
}

int main(void)
{
    test_normalize();
    test_split();
    test_segments();
    test_form();
    return check_summary();
}
