/* phone.h: phone numbers as JID local parts, and SMS text: normalisation to
 * E.164, splitting long bodies, and counting segments. */
#ifndef FERRY_SMS_PHONE_H
#define FERRY_SMS_PHONE_H

#include <stddef.h>

#define PHONE_MAX 20 /* "+" and at most 15 digits, with room */

/* Normalises what a user typed or put in a JID local part (XEP-0106 escapes
 * such as \20 undone; spaces, dashes, dots and parentheses dropped; without
 * "+", COUNTRY_CODE is put in front when it is set). Returns 0 with the
 * E.164 number in OUT, or -1 with the reason in *WHY. */
int sms_phone_normalize(const char *in, const char *country_code, char out[PHONE_MAX],
                    const char **why);

/* The longest body one provider message may carry (characters). */
#define SMS_MAX_CHARS 1600

/* Splits TEXT into parts of at most MAX_CHARS characters, at whitespace
 * where there is some. Returns the number of parts; *parts gets a
 * malloc'd array of malloc'd strings (free with sms_parts_free). */
size_t sms_split(const char *text, size_t max_chars, char ***parts);
void sms_parts_free(char **parts, size_t n);

/* How many SMS segments TEXT costs: GSM-7 (160, or 153 each when
 * concatenated; extension characters count twice) when every character is
 * in the GSM alphabet, else UCS-2 (70, or 67 each). *ucs2 says which. */
unsigned sms_segments(const char *text, int *ucs2);

#endif
