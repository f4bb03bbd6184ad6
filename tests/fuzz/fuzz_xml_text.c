/* fuzz_xml_text.c: the one rule for text from outside that goes into XML
 * (src/text.c, ferry/text.h) on any bytes: every IRC line, SMS body, media
 * URL and webhook text passes ferry_xml_text_valid() and the cleaners.
 * The ORACLE is a second, independent decoder (oracle.c): valid() agrees
 * with it on every input, from every starting offset (the 8-bytes-at-a-time
 * path sees every alignment); what the cleaners write is always valid, no
 * longer than 3 bytes a byte, and a valid text comes out unchanged. */
#include <stdlib.h>
#include <string.h>

#include "ferry/text.h"
#include "oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    for (size_t off = 0; off < 8 && off <= size; off++) {
        int mine = fuzz_xml_chars_ok(s + off, size - off);
        if (ferry_xml_text_valid(s + off, size - off) != mine)
            fuzz_fail("xml_text", "valid() says %d from offset %zu, the oracle %d",
                      !mine, off, mine);
    }
    size_t len;
    char *clean = ferry_xml_text_dup(s, size, &len);
    if (len > 3 * size || strlen(clean) != len)
        fuzz_fail("xml_text", "%zu bytes cleaned into %zu", size, len);
    if (!fuzz_xml_chars_ok(clean, len))
        fuzz_fail("xml_text", "the cleaned text is not XML 1.0");
    if (fuzz_xml_chars_ok(s, size) && (len != size || memcmp(clean, s, size) != 0))
        fuzz_fail("xml_text", "a valid text changed by cleaning");
    /* Cleaning twice changes nothing more. */
    size_t again_len;
    char *again = ferry_xml_text_dup(clean, len, &again_len);
    if (again_len != len || memcmp(again, clean, len) != 0)
        fuzz_fail("xml_text", "cleaning is not idempotent");
    free(again);
    /* In place, on the text up to its first NUL, as adapters call it. */
    char *copy = fuzz_cstr(data, size);
    size_t n = strlen(copy);
    int was_valid = fuzz_xml_chars_ok(copy, n);
    char *before = copy;
    ferry_xml_text_clean(&copy);
    if (!fuzz_xml_chars_ok(copy, strlen(copy)) || (was_valid && copy != before))
        fuzz_fail("xml_text", "clean() in place: invalid result, or a copy of valid text");
    free(copy);
    free(clean);
    return 0;
}
