/* fuzz_toml.c: src/toml.c, the strict TOML 1.0 parser, on any bytes.
 * Checks: an error names a line within the text; a parsed tree is walked
 * whole (every string NUL-terminated at its length, every line number in
 * range) and freed. */
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "toml.h"

static void walk(const toml_node_t *n, int lines, int depth)
{
    if (depth > 10000)
        fuzz_fail("toml", "tree deeper than the text");
    if (n->line < 0 || n->line > lines)
        fuzz_fail("toml", "line %d outside the text's %d lines", n->line, lines);
    switch (n->type) {
    case TOML_STRING:
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL:
        if (n->u.str.s[n->u.str.len] != 0)
            fuzz_fail("toml", "string not NUL-terminated at its length");
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < n->u.arr.n; i++)
            walk(n->u.arr.items[i], lines, depth + 1);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < n->u.tab.n; i++) {
            if (ferry__toml_table_get(n, n->u.tab.keys[i]) == NULL)
                fuzz_fail("toml", "key '%s' not found in its own table", n->u.tab.keys[i]);
            walk(n->u.tab.vals[i], lines, depth + 1);
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parser takes a length: give it exactly the fuzzer's bytes. */
    int lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    char err[256];
    int line = 0;
    toml_node_t *root = ferry__toml_parse((const char *)data, size, err, sizeof err, &line);
    if (!root) {
        if (line < 0 || line > lines)
            fuzz_fail("toml", "error at line %d of %d: %s", line, lines, err);
        return 0;
    }
    walk(root, lines, 0);
    ferry__toml_free(root);
    return 0;
}
