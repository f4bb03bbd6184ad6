/* form.c: form encoding and decoding for the Twilio API and its webhooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "form.h"
#include "ferry/text.h"

static char *decode(const char *s, size_t len)
{
    char *out = ferry_malloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len || ferry_hex_digit(s[i + 1]) < 0 || ferry_hex_digit(s[i + 2]) < 0) {
                free(out);
                return NULL;
            }
            *o++ = (char)(ferry_hex_digit(s[i + 1]) * 16 + ferry_hex_digit(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

void sms_form_add(form_t *form, const char *name, const char *value)
{
    if (form->n == form->cap) {
        form->cap = form->cap ? form->cap * 2 : 8;
        form->fields = ferry_realloc(form->fields, form->cap * sizeof *form->fields);
    }
    form->fields[form->n].name = ferry_strdup(name);
    form->fields[form->n].value = ferry_strdup(value);
    form->n++;
}

int sms_form_parse(form_t *form, const char *body, size_t len)
{
    memset(form, 0, sizeof *form);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (stop > p) {
            char *name = decode(p, (size_t)((eq ? eq : stop) - p));
            char *value = eq ? decode(eq + 1, (size_t)(stop - eq - 1)) : ferry_strdup("");
            if (!name || !value) {
                free(name);
                free(value);
                sms_form_free(form);
                return -1;
            }
            sms_form_add(form, name, value);
            free(name);
            free(value);
        }
        p = stop + 1;
    }
    return 0;
}

const char *sms_form_get(const form_t *form, const char *name)
{
    for (size_t i = 0; i < form->n; i++)
        if (strcmp(form->fields[i].name, name) == 0)
            return form->fields[i].value;
    return NULL;
}

static size_t encode_into(char *out, const char *s)
{
    size_t len = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            out[len++] = (char)c;
        else
            len += (size_t)sprintf(out + len, "%%%02X", c);
    }
    return len;
}

char *sms_form_encode(const form_t *form)
{
    size_t cap = 1;
    for (size_t i = 0; i < form->n; i++)
        cap += 3 * (strlen(form->fields[i].name) + strlen(form->fields[i].value)) + 2;
    char *out = ferry_malloc(cap);
    size_t len = 0;
    for (size_t i = 0; i < form->n; i++) {
        if (i)
            out[len++] = '&';
        len += encode_into(out + len, form->fields[i].name);
        out[len++] = '=';
        len += encode_into(out + len, form->fields[i].value);
    }
    out[len] = 0;
    return out;
}

void sms_form_free(form_t *form)
{
    for (size_t i = 0; i < form->n; i++) {
        free(form->fields[i].name);
        free(form->fields[i].value);
    }
    free(form->fields);
    memset(form, 0, sizeof *form);
}
