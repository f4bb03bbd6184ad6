/* ferry/template.h: a small Mustache-style template over a JSON document, so
 * that a user can say in gateway.toml what a JSON request becomes as text.
 *
 *   {{a.b.c}}            the value at that dotted path ("" when absent); a
 *                        number in the path indexes an array: {{commits.0.id}}
 *   {{.}}                the current item (inside a section)
 *   {{#x}}...{{/x}}      for each item of the array x, or once when x is
 *                        true (any other value than false, null, "", 0, [])
 *   {{^x}}...{{/x}}      once when x is false by the rule above
 *   {{! comment }}       nothing
 *
 * Names are looked up in the current item first, then in the enclosing ones
 * up to the document, as Mustache does. Values are written as they are (no
 * HTML escaping: the result is a chat message, not a page); {{{x}}} and
 * {{&x}} are accepted as the same as {{x}}. A string is written as is,
 * numbers and booleans as JSON writes them, objects and arrays as compact
 * JSON, null as nothing. */
#ifndef FERRY_TEMPLATE_H
#define FERRY_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

typedef struct ferry_template ferry_template_t;

/* Sections may nest this deep. */
#define FERRY_TEMPLATE_MAX_DEPTH 32
/* Rendering stops adding text past this many bytes (at a character
 * boundary), and stops after this many steps, so that a small template over
 * a large document cannot make a huge message or spin. */
#define FERRY_TEMPLATE_MAX_OUTPUT (60 * 1024)
#define FERRY_TEMPLATE_MAX_STEPS 200000

/* Parses TEXT (LEN bytes, UTF-8 without NUL bytes). On error returns NULL,
 * sets *line to the 1-based line of TEXT where it is and writes the reason
 * into ERR. */
ferry_template_t *ferry_template_parse(const char *text, size_t len, int *line, char *err,
                                       size_t errlen);
/* The text for DATA, malloc'd (the caller frees it). */
char *ferry_template_render(const ferry_template_t *t, const json_t *data);
void ferry_template_free(ferry_template_t *t);

#endif
