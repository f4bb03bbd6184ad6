/* phone.c: E.164 normalisation, body splitting and segment counting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "phone.h"
#include "ferry/text.h"

int sms_phone_normalize(const char *in, const char *country_code, char out[PHONE_MAX],
                    const char **why)
{
    char digits[64];
    size_t n = 0;
    int plus = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        /* XEP-0106: clients write a space in a local part as \20. */
        if (c == '\\' && ferry_hex_digit(p[1]) >= 0 && ferry_hex_digit(p[2]) >= 0) {
            c = (char)(ferry_hex_digit(p[1]) * 16 + ferry_hex_digit(p[2]));
            p += 2;
        }
        if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')')
            continue;
        if (c == '+' && n == 0 && !plus) {
            plus = 1;
            continue;
        }
        if (c < '0' || c > '9') {
            *why = "a phone number holds only digits, with an optional leading +";
            return -1;
        }
        if (n >= sizeof digits - 1) {
            *why = "too many digits for a phone number";
            return -1;
        }
        digits[n++] = c;
    }
    digits[n] = 0;
    if (n == 0) {
        *why = "no phone number given";
        return -1;
    }
    const char *cc = "";
    if (!plus) {
        if (!country_code || !*country_code) {
            *why = "give the number in international form, starting with + and the country code";
            return -1;
        }
        cc = country_code;
    }
    size_t total = strlen(cc) + n;
    if (total < 7 || total > 15) {
        *why = "an international phone number has 7 to 15 digits";
        return -1;
    }
    out[0] = '+';
    strcpy(out + 1, cc);
    strcat(out, digits);
    return 0;
}

/* ---- splitting ---- */

static int is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

size_t sms_split(const char *text, size_t max_chars, char ***parts)
{
    size_t cap = 4, n = 0;
    *parts = ferry_malloc(cap * sizeof **parts);
    const char *p = text;
    while (*p) {
        /* Walk at most max_chars characters; remember the last space. */
        const char *q = p, *cut = NULL;
        size_t chars = 0;
        while (*q && chars < max_chars) {
            if (is_space((unsigned char)*q))
                cut = q;
            size_t l = ferry_utf8_seq_len((unsigned char)*q);
            for (size_t i = 0; i < l && *q; i++)
                q++;
            chars++;
        }
        const char *end = *q == 0 ? q : (cut && cut > p ? cut : q);
        if (n == cap)
            *parts = ferry_realloc(*parts, (cap *= 2) * sizeof **parts);
        (*parts)[n++] = ferry_strndup(p, (size_t)(end - p));
        p = end;
        while (*p && is_space((unsigned char)*p) && end != q)
            p++; /* the space we cut at is not part of either message */
    }
    if (n == 0)
        (*parts)[n++] = ferry_strdup("");
    return n;
}

void sms_parts_free(char **parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(parts[i]);
    free(parts);
}

/* ---- segments ---- */

/* The GSM 03.38 basic character set (as Unicode code points). */
static const char *const gsm_basic =
    "@$\n\r _!\"#%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "abcdefghijklmnopqrstuvwxyz";
static const uint32_t gsm_basic_extra[] = {0xA3, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7,
                                           0xD8, 0xF8, 0xC5, 0xE5, 0x394, 0x3A6, 0x393, 0x39B,
                                           0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6,
                                           0xDF, 0xC9, 0xA4, 0xA1, 0xC4, 0xD6, 0xD1, 0xDC,
                                           0xA7, 0xBF, 0xE4, 0xF6, 0xF1, 0xFC, 0xE0};
/* The extension table: two septets each. */
static const char *const gsm_ext = "^{}\\[~]|";

static uint32_t next_cp(const unsigned char **p)
{
    const unsigned char *s = *p;
    size_t l = ferry_utf8_seq_len(*s);
    uint32_t cp = l == 1 ? *s : (uint32_t)(*s & (0xFF >> (l + 1)));
    for (size_t i = 1; i < l && s[i]; i++)
        cp = (cp << 6) | (s[i] & 0x3F);
    size_t i = 0;
    while (i < l && s[i])
        i++;
    *p = s + i;
    return cp;
}

/* Septets for CP in GSM-7, or 0 when it is not in the alphabet. */
static unsigned gsm_septets(uint32_t cp)
{
    if (cp < 0x80 && cp && strchr(gsm_basic, (int)cp))
        return 1;
    if (cp < 0x80 && cp && strchr(gsm_ext, (int)cp))
        return 2;
    if (cp == 0x20AC)
        return 2; /* the euro sign lives in the extension table */
    for (size_t i = 0; i < sizeof gsm_basic_extra / sizeof gsm_basic_extra[0]; i++)
        if (gsm_basic_extra[i] == cp)
            return 1;
    return 0;
}

unsigned sms_segments(const char *text, int *ucs2)
{
    unsigned septets = 0, units = 0;
    int gsm = 1;
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        uint32_t cp = next_cp(&p);
        unsigned s = gsm_septets(cp);
        if (!s)
            gsm = 0;
        septets += s;
        units += cp > 0xFFFF ? 2 : 1; /* UTF-16 code units */
    }
    *ucs2 = !gsm;
    if (gsm)
        return septets <= 160 ? 1 : (septets + 152) / 153;
    return units <= 70 ? 1 : (units + 66) / 67;
}
