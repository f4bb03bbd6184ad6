/* ferry/text.h: small text helpers shared by the core and the adapters, and
 * the one rule for text from outside that goes into XML (IRC lines, SMS
 * bodies, webhook payloads, provider answers): it must be UTF-8 that XML 1.0
 * accepts as character data, or one byte of it drops the component's link. */
#ifndef FERRY_TEXT_H
#define FERRY_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The value of a hexadecimal digit, or -1. */
int ferry_hex_digit(int c);
/* The length of the UTF-8 sequence that LEAD starts (1 for a stray byte).
 * Says nothing about validity: for cutting text that is known valid. */
size_t ferry_utf8_seq_len(unsigned char lead);

/* Set in *CP by ferry_utf8_next for bytes that are not UTF-8. */
#define FERRY_UTF8_INVALID 0x110000u

/* Decodes the sequence at S (AVAIL > 0 bytes) and returns how many bytes it
 * takes (1 to 4). *CP gets its code point, or FERRY_UTF8_INVALID when the
 * bytes are not well-formed UTF-8 (Unicode table 3-7: overlong forms,
 * surrogates, beyond U+10FFFF, lead bytes C0, C1, F5-FF, stray continuation
 * bytes, sequences cut short): the return value is then the maximal invalid
 * subpart, which Unicode's best practice replaces with one U+FFFD. */
size_t ferry_utf8_next(const char *s, size_t avail, uint32_t *cp);

/* Whether XML 1.0 allows code point CP in character data: tab, LF, CR,
 * U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF. */
int ferry_xml_char_ok(uint32_t cp);

/* Whether LEN bytes at S are UTF-8 made only of characters XML 1.0 allows
 * (a NUL byte is not allowed). Fast for ASCII: checks 8 bytes at a time. */
int ferry_xml_text_valid(const char *s, size_t len);

/* Writes IN (LEN bytes) to OUT as valid XML 1.0 character data in UTF-8,
 * NUL-terminated: every character XML forbids (C0 controls but tab, LF and
 * CR; NUL; U+FFFE, U+FFFF) and every maximal invalid UTF-8 subpart becomes
 * U+FFFD, visibly, so that "ev\1il" never reads as "evil". OUT must hold
 * 3 * LEN + 1 bytes (IN and OUT must not overlap). Returns the length. */
size_t ferry_xml_text_clean_to(char *out, const char *in, size_t len);

/* A malloc'd cleaned copy of LEN bytes at S (see ferry_xml_text_clean_to);
 * *OUT_LEN (may be NULL) gets its length. */
char *ferry_xml_text_dup(const char *s, size_t len, size_t *out_len);

/* Cleans the malloc'd NUL-terminated string *S in place: a no-op (no copy)
 * when it is valid already, else *S is replaced by a cleaned copy and the
 * old one freed. Returns *S. */
char *ferry_xml_text_clean(char **s);

#endif
