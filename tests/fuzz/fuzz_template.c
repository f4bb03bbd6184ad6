/* fuzz_template.c: src/template.c, the Mustache-style templates of
 * webhook endpoints, on any bytes. The input is a template, optionally
 * followed by a line "%%" and a JSON document to render it over (else a
 * fixed one). Checks: an error names a line within the template and says
 * why; a parsed template renders to at most FERRY_TEMPLATE_MAX_OUTPUT bytes
 * of valid UTF-8 (the template and JSON strings are UTF-8, and the limit
 * never cuts a character) and is freed. */
#include <stdlib.h>
#include <string.h>

#include "ferry/template.h"
#include "oracle.h"

static const char fixed_doc[] =
    "{\"status\": \"firing\", \"alerts\": [{\"labels\": {\"alertname\": \"A\"}, \"values\": {\"B\": 1.5}},"
    " {\"labels\": {\"alertname\": \"\\u00e9\"}}], \"commits\": [\"x\", {\"id\": 1}], \"yes\": true,"
    " \"n\": 0, \"s\": \"text\", \"nested\": {\"a\": {\"b\": [[], {}, null]}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t tlen = size;
    const char *sep = memmem(text, size, "\n%%\n", 4);
    json_t *doc = NULL;
    if (sep) {
        tlen = (size_t)(sep - text);
        doc = json_loadb(sep + 4, size - tlen - 4, 0, NULL);
    }
    if (!doc)
        doc = json_loads(fixed_doc, 0, NULL);
    int lines = 1;
    for (size_t i = 0; i < tlen; i++)
        lines += text[i] == '\n';
    int line = 0;
    char err[300] = "";
    ferry_template_t *t = ferry_template_parse(text, tlen, &line, err, sizeof err);
    if (!t) {
        if (line < 1 || line > lines || !*err)
            fuzz_fail("template", "error at line %d of %d: '%s'", line, lines, err);
        json_decref(doc);
        return 0;
    }
    char *out = ferry_template_render(t, doc);
    if (!out)
        fuzz_fail("template", "rendered nothing (NULL)");
    size_t n = strlen(out);
    if (n > FERRY_TEMPLATE_MAX_OUTPUT)
        fuzz_fail("template", "%zu bytes rendered, over the limit", n);
    json_t *probe = json_stringn(out, n);
    if (!probe)
        fuzz_fail("template", "rendered text is not UTF-8");
    json_decref(probe);
    free(out);
    ferry_template_free(t);
    json_decref(doc);
    return 0;
}
