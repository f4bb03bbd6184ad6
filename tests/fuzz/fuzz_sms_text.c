/* fuzz_sms_text.c: the SMS adapter's text parsers on any bytes:
 * application/x-www-form-urlencoded (adapters/sms/form.c, every Twilio
 * webhook body), phone numbers (adapters/sms/phone.c: JID local parts and
 * form fields), body splitting and segment counting. First byte picks the
 * split size. Checks: a parsed form encodes and parses back to the same
 * fields; a normalised number is "+" and 7 to 15 digits and normalises to
 * itself; the split parts, joined, keep every non-space byte in order and
 * none is longer than asked or cuts a UTF-8 sequence of a valid text. */
#include <stdlib.h>
#include <string.h>

#include "../../adapters/sms/form.h"
#include "../../adapters/sms/phone.h"
#include "oracle.h"

static void check_form(const uint8_t *data, size_t size)
{
    form_t f, again;
    if (sms_form_parse(&f, (const char *)data, size) != 0)
        return;
    char *enc = sms_form_encode(&f);
    if (sms_form_parse(&again, enc, strlen(enc)) != 0)
        fuzz_fail("form", "its own encoding '%s' does not parse", enc);
    /* Names and values holding NUL (from %00) are cut there by strdup: the
     * encoding carries what the parse kept. */
    if (again.n != f.n)
        fuzz_fail("form", "%zu fields, %zu after a round trip", f.n, again.n);
    for (size_t i = 0; i < f.n; i++)
        if (strcmp(f.fields[i].name, again.fields[i].name) != 0 ||
            strcmp(f.fields[i].value, again.fields[i].value) != 0)
            fuzz_fail("form", "field %zu changed in a round trip", i);
    if (f.n && sms_form_get(&f, f.fields[0].name) != f.fields[0].value)
        fuzz_fail("form", "form_get misses the first field");
    free(enc);
    sms_form_free(&again);
    sms_form_free(&f);
}

static void check_phone(const char *s)
{
    char out[PHONE_MAX], again[PHONE_MAX];
    const char *why = NULL;
    static const char *const ccs[] = {NULL, "1", "44", "1234"};
    for (size_t i = 0; i < sizeof ccs / sizeof *ccs; i++) {
        if (sms_phone_normalize(s, ccs[i], out, &why) != 0) {
            if (!why)
                fuzz_fail("phone", "refused without a reason");
            continue;
        }
        size_t n = strlen(out);
        if (out[0] != '+' || n < 8 || n > 16 || strspn(out + 1, "0123456789") != n - 1)
            fuzz_fail("phone", "'%s' normalised to '%s'", s, out);
        if (sms_phone_normalize(out, NULL, again, &why) != 0 || strcmp(out, again) != 0)
            fuzz_fail("phone", "'%s' does not normalise to itself", out);
    }
}

static void check_split(const char *s, size_t max)
{
    char **parts;
    size_t n = sms_split(s, max, &parts);
    int valid = fuzz_xml_chars_ok(s, strlen(s));
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        size_t chars = 0;
        for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++)
            chars += (*c & 0xC0) != 0x80;
        if (valid && chars > max)
            fuzz_fail("sms_split", "a part of %zu characters, max %zu", chars, max);
        if (valid && !fuzz_xml_chars_ok(parts[i], strlen(parts[i])))
            fuzz_fail("sms_split", "a part cuts a UTF-8 sequence");
        for (const char *c = parts[i]; *c; c++) {
            while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
                p++;
            if (*c == ' ' || *c == '\n' || *c == '\t' || *c == '\r')
                continue;
            if (*c != *p)
                fuzz_fail("sms_split", "the parts do not keep the text");
            p++;
        }
    }
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    if (*p)
        fuzz_fail("sms_split", "text lost after the last part");
    sms_parts_free(parts, n);
    int ucs2;
    if (sms_segments(s, &ucs2) < 1)
        fuzz_fail("sms_segments", "no segment");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = data[0] % 200 + 1;
    data++, size--;
    check_form(data, size);
    char *s = fuzz_cstr(data, size);
    check_phone(s);
    check_split(s, max);
    free(s);
    return 0;
}
