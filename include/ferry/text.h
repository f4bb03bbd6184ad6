/* ferry/text.h: small text helpers shared by the core and the adapters. */
#ifndef FERRY_TEXT_H
#define FERRY_TEXT_H

#include <stddef.h>

/* The value of a hexadecimal digit, or -1. */
int ferry_hex_digit(int c);
/* The length of the UTF-8 sequence that LEAD starts (1 for a stray byte). */
size_t ferry_utf8_seq_len(unsigned char lead);

#endif
