/* text.c: small text helpers shared by the core and the adapters, and the
 * one place that decides what text may go into XML (see ferry/text.h). */
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "ferry/text.h"

int ferry_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t ferry_utf8_seq_len(unsigned char lead)
{
    if (lead < 0x80)
        return 1;
    if ((lead & 0xE0) == 0xC0)
        return 2;
    if ((lead & 0xF0) == 0xE0)
        return 3;
    if ((lead & 0xF8) == 0xF0)
        return 4;
    return 1;
}

size_t ferry_utf8_next(const char *s, size_t avail, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    /* Table 3-7: the sequence length, and the range of the second byte,
     * which is where overlong forms, surrogates and values beyond U+10FFFF
     * are refused; the other continuation bytes are 80..BF. */
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *cp = FERRY_UTF8_INVALID; /* 80..C1, F5..FF */
        return 1;
    }
    size_t i = 1;
    for (; i < need; i++) {
        if (i >= avail || p[i] < lo || p[i] > hi) {
            *cp = FERRY_UTF8_INVALID; /* the maximal subpart ends here */
            return i;
        }
        v = (v << 6) | (p[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return need;
}

int ferry_xml_char_ok(uint32_t cp)
{
    if (cp < 0x20)
        return cp == '\t' || cp == '\n' || cp == '\r';
    if (cp < 0xD800)
        return 1;
    if (cp < 0xE000)
        return 0;
    if (cp < 0x10000)
        return cp != 0xFFFE && cp != 0xFFFF;
    return cp <= 0x10FFFF;
}

/* Whether the 8 bytes of W are all in 0x20..0x7F (printable ASCII or DEL). */
static int plain_ascii8(uint64_t w)
{
    const uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    /* A byte below 0x20 borrows through bit 7 of (byte - 0x20); a byte with
     * bit 7 set is caught by ~w's missing bit. */
    return ((w | ((w - ones * 0x20) & ~w)) & high) == 0;
}

int ferry_xml_text_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (plain_ascii8(w)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        i += ferry_utf8_next(s + i, len - i, &cp);
        if (!ferry_xml_char_ok(cp))
            return 0;
    }
    return 1;
}

size_t ferry_xml_text_clean_to(char *out, const char *in, size_t len)
{
    char *o = out;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = ferry_utf8_next(in + i, len - i, &cp);
        if (ferry_xml_char_ok(cp)) {
            memcpy(o, in + i, n);
            o += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD */
            o += 3;
        }
        i += n;
    }
    *o = 0;
    return (size_t)(o - out);
}

char *ferry_xml_text_dup(const char *s, size_t len, size_t *out_len)
{
    char *out = ferry_malloc(3 * len + 1);
    size_t n = ferry_xml_text_clean_to(out, s, len);
    if (out_len)
        *out_len = n;
    return out;
}

char *ferry_xml_text_clean(char **s)
{
    size_t len = strlen(*s);
    if (ferry_xml_text_valid(*s, len))
        return *s;
    char *clean = ferry_xml_text_dup(*s, len, NULL);
    free(*s);
    *s = clean;
    return clean;
}
