/* form.h: application/x-www-form-urlencoded both ways, as Twilio speaks it. */
#ifndef FERRY_SMS_FORM_H
#define FERRY_SMS_FORM_H

#include <stddef.h>

typedef struct form_field {
    char *name;
    char *value;
} form_field_t;

typedef struct form {
    form_field_t *fields;
    size_t n, cap;
} form_t;

/* Parses BODY (LEN bytes); names and values are percent- and plus-decoded.
 * Returns 0, or -1 on a malformed escape. */
int sms_form_parse(form_t *form, const char *body, size_t len);
/* The first value of NAME, or NULL. */
const char *sms_form_get(const form_t *form, const char *name);
void sms_form_add(form_t *form, const char *name, const char *value);
/* NAME=VALUE&... with RFC 3986 unreserved characters left as they are; malloc'd. */
char *sms_form_encode(const form_t *form);
void sms_form_free(form_t *form);

#endif
