/* test_template.c: the Mustache-style template engine (ferry/template.h) on
 * its own: variables, dotted names, sections over arrays and values,
 * inverted sections, standalone lines, the limits, and the parse errors with
 * their lines. */
#include <stdlib.h>
#include <string.h>

#include "ferry/template.h"
#include "check.h"

static const char *DOC =
    "{\"a\": {\"b\": {\"c\": \"deep\"}}, \"name\": \"ops\", \"n\": 3, \"pi\": 3.5, \"yes\": true,"
    " \"no\": false, \"none\": null, \"empty\": \"\", \"zero\": 0, \"list\": [\"x\", \"y\", \"z\"],"
    " \"nolist\": [], \"obj\": {\"k\": 1},"
    " \"commits\": [{\"id\": \"abc\", \"msg\": \"first\"}, {\"id\": \"def\", \"msg\": \"second\"}],"
    " \"esc\": \"<b>&'\\\"</b>\", \"nul\": \"be\\u0000fore\"}";

/* Renders TEMPLATE over DOC; the result must be WANT. */
static void renders(const char *tmpl, const char *want)
{
    json_error_t jerr;
    json_t *doc = json_loads(DOC, JSON_ALLOW_NUL, &jerr);
    int line = 0;
    char err[300] = "";
    ferry_template_t *t = ferry_template_parse(tmpl, strlen(tmpl), &line, err, sizeof err);
    if (!CHECK(t != NULL, "%s: parse failed at line %d: %s", check_quote(tmpl), line, err)) {
        json_decref(doc);
        return;
    }
    char *got = ferry_template_render(t, doc);
    CHECK(got && strcmp(got, want) == 0, "%s renders %s, expected %s", check_quote(tmpl),
          check_quote(got), check_quote(want));
    free(got);
    ferry_template_free(t);
    json_decref(doc);
}

/* TEMPLATE must not parse; the error must be on LINE and contain WHAT. */
static void refused(const char *tmpl, int want_line, const char *what)
{
    int line = 0;
    char err[300] = "";
    ferry_template_t *t = ferry_template_parse(tmpl, strlen(tmpl), &line, err, sizeof err);
    CHECK(t == NULL, "%s parsed, expected an error", check_quote(tmpl));
    ferry_template_free(t);
    CHECK(line == want_line, "%s: error on line %d, expected %d (%s)", check_quote(tmpl), line,
          want_line, err);
    CHECK(strstr(err, what) != NULL, "%s: error %s, expected it to say %s", check_quote(tmpl),
          check_quote(err), check_quote(what));
}

static void test_variables(void)
{
    renders("", "");
    renders("plain text", "plain text");
    renders("hello {{name}}!", "hello ops!");
    renders("{{ name }}", "ops");
    renders("{{a.b.c}}", "deep");
    renders("[{{missing}}] [{{a.missing.c}}] [{{name.x}}]", "[] [] []");
    renders("{{n}} {{pi}} {{yes}} {{no}} [{{none}}]", "3 3.5 true false []");
    renders("{{obj}} {{list}}", "{\"k\":1} [\"x\",\"y\",\"z\"]");
    renders("{{list.1}} {{commits.1.msg}} [{{list.9}}]", "y second []");
    renders("{{esc}}", "<b>&'\"</b>");    /* no HTML escaping */
    renders("{{{esc}}} {{&esc}}", "<b>&'\"</b> <b>&'\"</b>");
    renders("{{nul}}", "be");              /* an embedded NUL ends the string */
    renders("a {{! a comment }}b", "a b");
    renders("single { brace } and }} alone", "single { brace } and }} alone");
}

static void test_sections(void)
{
    renders("{{#list}}<{{.}}>{{/list}}", "<x><y><z>");
    renders("{{#commits}}{{id}}:{{msg}} {{/commits}}", "abc:first def:second ");
    renders("{{#commits}}{{name}}/{{id}} {{/commits}}", "ops/abc ops/def ");  /* outer names */
    renders("{{#a}}{{b.c}}{{/a}}", "deep");
    renders("{{#a.b}}{{c}}{{/a.b}}", "deep");
    renders("{{#yes}}shown{{/yes}}{{#no}}hidden{{/no}}", "shown");
    renders("{{#none}}a{{/none}}{{#empty}}b{{/empty}}{{#zero}}c{{/zero}}{{#nolist}}d{{/nolist}}"
            "{{#missing}}e{{/missing}}{{#obj}}f{{/obj}}", "f");
    renders("{{^none}}a{{/none}}{{^empty}}b{{/empty}}{{^zero}}c{{/zero}}{{^nolist}}d{{/nolist}}"
            "{{^missing}}e{{/missing}}{{^obj}}f{{/obj}}{{^list}}g{{/list}}", "abcde");
    renders("{{#list}}{{#commits}}{{.}}{{/commits}}{{/list}}",
            "{\"id\":\"abc\",\"msg\":\"first\"}{\"id\":\"def\",\"msg\":\"second\"}"
            "{\"id\":\"abc\",\"msg\":\"first\"}{\"id\":\"def\",\"msg\":\"second\"}"
            "{\"id\":\"abc\",\"msg\":\"first\"}{\"id\":\"def\",\"msg\":\"second\"}");
    renders("{{#name}}[{{.}}]{{/name}}", "[ops]");
}

/* Section tags alone on their lines leave no blank lines behind. */
static void test_standalone_lines(void)
{
    renders("Commits:\n{{#commits}}\n- {{msg}}\n{{/commits}}\nend\n",
            "Commits:\n- first\n- second\nend\n");
    renders("  {{#yes}}  \r\nyes\n  {{/yes}}\n", "yes\n");
    renders("{{! note }}\nafter", "after");
    renders("x {{#yes}}\ny{{/yes}}", "x \ny");   /* not alone: kept as written */
    renders("{{name}}\n{{name}}", "ops\nops");    /* variables are never standalone */
}

static void test_errors(void)
{
    refused("{{#list}}x", 1, "{{#list}} is not closed");
    refused("a\nb\n{{^x}}\n", 3, "{{^x}} is not closed");
    refused("{{/list}}", 1, "closes no section");
    refused("line1\n{{#a}}\n{{#b}}\n{{/a}}\n{{/b}}", 4, "{{/a}} does not close {{#b}} (opened on line 3)");
    refused("one\ntwo {{name", 2, "without a closing \"}}\"");
    refused("{{{name}}", 1, "without a closing \"}}}\"");
    refused("{{}}", 1, "one name");
    refused("x\n\n{{a b}}", 3, "one name");
    refused("{{#}}{{/}}", 1, "one name");
    refused("ok\nstill ok\nbad \xff byte", 3, "not UTF-8 text");
    refused("ok\n\xc3", 2, "not UTF-8 text");
    static const char nul[] = "a\nb\nc\0d";
    int line = 0;
    char err[100];
    CHECK(ferry_template_parse(nul, sizeof nul - 1, &line, err, sizeof err) == NULL && line == 3,
          "a NUL byte is refused on its line (got line %d)", line);
    char deep[400] = "";
    for (int i = 0; i <= FERRY_TEMPLATE_MAX_DEPTH; i++)
        strcat(deep, "{{#a}}");
    refused(deep, 1, "nested deeper");
}

/* A small template over a large document stops at the output limit. */
static void test_limits(void)
{
    json_t *doc = json_array();
    for (int i = 0; i < 4000; i++)
        json_array_append_new(doc, json_string("0123456789abcdef\xc3\xa9"));
    const char *tmpl = "{{#.}}{{#.}}{{.}}{{/.}}{{/.}}";
    int line;
    char err[200];
    ferry_template_t *t = ferry_template_parse(tmpl, strlen(tmpl), &line, err, sizeof err);
    CHECK(t != NULL, "parse: %s", err);
    char *got = t ? ferry_template_render(t, doc) : NULL;
    CHECK(got && strlen(got) <= FERRY_TEMPLATE_MAX_OUTPUT && strlen(got) > FERRY_TEMPLATE_MAX_OUTPUT - 20,
          "output of %zu bytes, expected just under %d", got ? strlen(got) : 0, FERRY_TEMPLATE_MAX_OUTPUT);
    /* cut at a character boundary: no lone continuation byte at the end */
    if (got && strlen(got) > 0) {
        size_t n = strlen(got);
        unsigned char last = (unsigned char)got[n - 1];
        CHECK(last < 0x80 || (last & 0xC0) == 0x80, "ends in the middle of a character");
        json_t *probe = json_stringn(got, n);
        CHECK(probe != NULL, "output is valid UTF-8");
        json_decref(probe);
    }
    free(got);
    ferry_template_free(t);
    json_decref(doc);

    /* many cheap steps (3 x 2000 x 2000 without output): the step budget ends
     * it early; here we see that it returns */
    json_t *big = json_array();
    for (int i = 0; i < 2000; i++)
        json_array_append_new(big, json_integer(i));
    const char *nested = "{{#.}}{{#big}}{{#big}}{{^x}}{{/x}}{{/big}}{{/big}}{{/.}}";
    json_t *wrap = json_pack("{s:o}", "big", big);
    json_t *outer = json_pack("[o,o,o]", json_incref(wrap), json_incref(wrap), json_incref(wrap));
    t = ferry_template_parse(nested, strlen(nested), &line, err, sizeof err);
    got = t ? ferry_template_render(t, outer) : NULL;
    CHECK(got != NULL && strlen(got) == 0, "step-bounded render returns (empty) text");
    free(got);
    ferry_template_free(t);
    json_decref(outer);
    json_decref(wrap);
}

int main(void)
{
    test_variables();
    test_sections();
    test_standalone_lines();
    test_errors();
    test_limits();
    return check_summary();
}
