/* test_irc_proto.c: IRC lines parsed and written; nothing from XMPP
 * becomes a second IRC command, and nothing from IRC becomes text or a nick
 * that XML or a JID cannot carry. */
#include <stdlib.h>
#include <string.h>

#include "../../adapters/irc/irc_proto.h"
#include "ferry/text.h"
#include "check.h"

static void test_parse(void)
{
    const char *line = "@time=2026-11-21T12:00:00Z :nick!user@host privmsg #chan :hello world";
    irc_msg_t *m = irc_msg_parse(line, strlen(line));
    CHECK(m != NULL, "parsed");
    if (m) {
        CHECK_STR(m->tags, "time=2026-11-21T12:00:00Z");
        CHECK_STR(m->prefix, "nick!user@host");
        CHECK_STR(m->command, "PRIVMSG");
        CHECK_INT(m->nparams, 2);
        CHECK_STR(m->params[0], "#chan");
        CHECK_STR(m->params[1], "hello world");
        char nick[32];
        irc_prefix_nick(m->prefix, nick, sizeof nick);
        CHECK_STR(nick, "nick");
    }
    free(m);
    m = irc_msg_parse("PING :irc.example.net", 21);
    CHECK(m && strcmp(m->command, "PING") == 0 && m->nparams == 1, "PING");
    free(m);
    m = irc_msg_parse(":srv 353 me = #c :@op +voice plain", 34);
    CHECK(m && m->nparams == 4 && strcmp(m->params[3], "@op +voice plain") == 0, "353");
    free(m);
    m = irc_msg_parse(":srv 001 me", 11);
    CHECK(m && m->nparams == 1 && strcmp(m->params[0], "me") == 0, "no trailing");
    free(m);
    CHECK(irc_msg_parse(":only-prefix", 12) == NULL, "prefix only refused");
    CHECK(irc_msg_parse(" PRIVMSG #c :x", 14) == NULL, "a leading space: no command");
    CHECK(irc_msg_parse("", 0) == NULL, "empty refused");
}

static void test_casemap(void)
{
    CHECK(irc_casecmp(IRC_CASE_RFC1459, "Nick[A]", "nick{a}") == 0, "rfc1459 brackets");
    CHECK(irc_casecmp(IRC_CASE_RFC1459, "a~", "A^") == 0, "rfc1459 tilde");
    CHECK(irc_casecmp(IRC_CASE_STRICT_RFC1459, "a~", "A^") != 0, "strict: no tilde");
    CHECK(irc_casecmp(IRC_CASE_ASCII, "a[", "A{") != 0, "ascii: no brackets");
    CHECK(irc_casecmp(IRC_CASE_ASCII, "ABC", "abc") == 0, "ascii letters");
    char buf[32];
    irc_casefold(IRC_CASE_RFC1459, "#Ch[an]", buf, sizeof buf);
    CHECK_STR(buf, "#ch{an}");
}

static void test_format(void)
{
    char out[600];
    const char *p1[] = {"#chan", "hello there"};
    size_t n = irc_format(out, sizeof out, "PRIVMSG", p1, 2);
    CHECK(n > 0 && strcmp(out, "PRIVMSG #chan :hello there\r\n") == 0, "privmsg: %s", out);
    const char *p2[] = {"#chan", "evil\r\nQUIT :bye"};
    CHECK(irc_format(out, sizeof out, "PRIVMSG", p2, 2) == 0, "CR LF in text refused");
    const char *p3[] = {"#chan two", "x"};
    CHECK(irc_format(out, sizeof out, "PRIVMSG", p3, 2) == 0, "space in target refused");
    const char *p4[] = {"nick\n"};
    CHECK(irc_format(out, sizeof out, "NICK", p4, 1) == 0, "LF in nick refused");
    const char *p5[] = {":x", "y"};
    CHECK(irc_format(out, sizeof out, "JOIN", p5, 2) == 0, "leading colon in middle refused");
    const char *p6[] = {"#c", ""};
    n = irc_format(out, sizeof out, "TOPIC", p6, 2);
    CHECK(n > 0 && strcmp(out, "TOPIC #c :\r\n") == 0, "empty trailing: %s", out);
    CHECK(irc_valid_nick("alice") && !irc_valid_nick("al ice") && !irc_valid_nick("a\r") &&
              !irc_valid_nick("#x") && !irc_valid_nick(""),
          "nick validity");
    CHECK(irc_valid_channel("#chan", "#&") && !irc_valid_channel("chan", "#&") &&
              !irc_valid_channel("#a,b", "#&") && !irc_valid_channel("#a b", "#&"),
          "channel validity");
}

static void test_split(void)
{
    char **pieces;
    size_t n = irc_split_text("PRIVMSG", "#chan", "one\r\ntwo\n\nthree", &pieces);
    CHECK(n == 3 && strcmp(pieces[0], "one") == 0 && strcmp(pieces[1], "two") == 0 &&
              strcmp(pieces[2], "three") == 0,
          "newlines start new lines: %zu", n);
    irc_pieces_free(pieces, n);

    char big[2100] = "";
    while (strlen(big) < 2000)
        strcat(big, "\xc3\xa9t\xc3\xa9 "); /* 2-byte characters and spaces */
    n = irc_split_text("PRIVMSG", "#chan", big, &pieces);
    size_t total = 0;
    int ok = n >= 5;
    for (size_t i = 0; i < n; i++) {
        char line[600];
        const char *params[] = {"#chan", pieces[i]};
        ok &= irc_format(line, sizeof line, "PRIVMSG", params, 2) > 0;
        ok &= strlen(line) + 110 <= 512;
        /* never cut inside a character */
        ok &= ((unsigned char)pieces[i][0] & 0xC0) != 0x80;
        total += strlen(pieces[i]);
        ok &= strchr(pieces[i], '\r') == NULL && strchr(pieces[i], '\n') == NULL;
    }
    CHECK(ok, "2,000 bytes: %zu valid pieces", n);
    CHECK(total >= strlen(big) - n, "nothing lost: %zu of %zu bytes", total, strlen(big));
    irc_pieces_free(pieces, n);
}

static void test_text(void)
{
    char *t = irc_text_to_utf8("\x02" "bold\x02 \x03" "04,01red\x03 \x1Fu\x1F");
    CHECK_STR(t, "bold red u");
    free(t);
    t = irc_text_to_utf8("caf\xe9"); /* Latin-1 */
    CHECK_STR(t, "caf\xc3\xa9");
    free(t);
    t = irc_text_to_utf8("d\xc3\xa9j\xc3\xa0 vu"); /* UTF-8 stays */
    CHECK_STR(t, "d\xc3\xa9j\xc3\xa0 vu");
    free(t);
    t = irc_text_to_utf8("a\x01" "b");
    CHECK_STR(t, "ab");
    free(t);
}

/* What XML forbids never comes out: U+FFFE/U+FFFF as U+FFFD, sequences that
 * are not UTF-8 (surrogates, overlong forms, F5-F7, cut short) as Latin-1. */
static void text_is(const char *in, const char *want)
{
    char *t = irc_text_to_utf8(in);
    CHECK(strcmp(t, want) == 0 && ferry_xml_text_valid(t, strlen(t)), "text %s: got %s, want %s",
          check_quote(in), check_quote(t), check_quote(want));
    free(t);
    t = irc_text_to_styled(in);
    CHECK(ferry_xml_text_valid(t, strlen(t)), "styled %s is not XML text: %s", check_quote(in),
          check_quote(t));
    free(t);
}

static void test_text_xml_forbids(void)
{
    text_is("bad \xef\xbf\xbf", "bad \xef\xbf\xbd");
    text_is("\xef\xbf\xbe", "\xef\xbf\xbd");
    text_is("s \xed\xa0\x80", "s \xc3\xad\xc2\xa0\xc2\x80");
    text_is("o \xc0\x80", "o \xc3\x80\xc2\x80");
    text_is("\xf5\x80\x80\x80", "\xc3\xb5\xc2\x80\xc2\x80\xc2\x80");
    text_is("\xf6\xf7", "\xc3\xb6\xc3\xb7");
    text_is("cut \xe2\x82", "cut \xc3\xa2\xc2\x82");
    text_is("\x1b[1m esc \x7f", "[1m esc \x7f");
    text_is("\x02\xef\xbf\xbf\x02", "\xef\xbf\xbd");
}

static void test_nick_usable(void)
{
    CHECK(irc_nick_usable("alice"), "alice");
    CHECK(irc_nick_usable("[m]atrix|bot"), "specials");
    CHECK(irc_nick_usable("0AAAAAAAB"), "a UID after a collision");
    CHECK(irc_nick_usable("j\xc3\xa9r\xc3\xb4me"), "UTF-8");
    CHECK(!irc_nick_usable(""), "empty");
    CHECK(!irc_nick_usable("ev\x01il"), "control");
    CHECK(!irc_nick_usable("\x1bnick"), "escape");
    CHECK(!irc_nick_usable("a b"), "space");
    CHECK(!irc_nick_usable("caf\xe9"), "Latin-1");
    CHECK(!irc_nick_usable("x\xef\xbf\xbf"), "U+FFFF");
    CHECK(!irc_nick_usable("x\xef\xbf\xbd"), "U+FFFD: resourceprep forbids it");
    CHECK(!irc_nick_usable("x\xc2\x85"), "a C1 control");
    CHECK(!irc_valid_channel("#bad\x01", "#"), "channel with a control");
    CHECK(!irc_valid_channel("#caf\xe9", "#"), "Latin-1 channel");
    CHECK(irc_valid_channel("#caf\xc3\xa9", "#"), "UTF-8 channel");
}

static void styled(const char *irc, const char *want)
{
    char *t = irc_text_to_styled(irc);
    CHECK(strcmp(t, want) == 0, "styled %s: got %s, want %s", check_quote(irc), check_quote(t),
          check_quote(want));
    free(t);
}

/* IRC formatting codes, apart so that a following letter is not read as a
 * hex digit of the escape. */
#define BOLD "\x02"
#define ITAL "\x1d"
#define STRIKE "\x1e"
#define MONO "\x11"
#define RESET "\x0f"

static void test_styling(void)
{
    styled(BOLD "bold" BOLD " and " ITAL "italic" ITAL ", " STRIKE "strike" STRIKE " " MONO
           "mono" MONO ".",
           "*bold* and _italic_, ~strike~ `mono`.");
    styled("unterminated " BOLD "bold", "unterminated *bold*");
    styled(BOLD ITAL "both" ITAL BOLD " done", "*_both_* done");
    styled(BOLD "bold " ITAL "and italic" RESET " plain", "*bold _and italic_* plain");
    styled("\x03" "04red\x03 " BOLD "bold" BOLD, "red *bold*");
    /* what a client would not read back as the span: codes dropped */
    styled("mid" BOLD "word" BOLD "s", "midwords");
    styled(BOLD " spaced " BOLD, " spaced ");
    styled(BOLD BOLD "empty", "empty");
    styled(BOLD "a*b" BOLD, "a*b");
    styled(MONO "code " BOLD "x" BOLD MONO, "code *x*");
    styled(BOLD "a" ITAL "b" BOLD "c" ITAL, "abc");
    styled(BOLD "a " ITAL "b" BOLD " c" ITAL, "*a b* c"); /* spans that overlap: the first wins */
    styled("\x1f" "underline\x1f \x16" "reverse\x16", "underline reverse");
    styled("caf\xe9 " BOLD "ol\xe9" BOLD, "caf\xc3\xa9 *ol\xc3\xa9*");
}

typedef struct {
    int lines, bad;
    size_t bytes;
    int stop_after;
} lines_seen_t;

static int count_line(void *ctx, const char *line, size_t len)
{
    lines_seen_t *seen = ctx;
    if (len != 99 || memchr(line, '\r', len) || memchr(line, '\n', len) ||
        memcmp(line, "PRIVMSG", 7) != 0)
        seen->bad++;
    seen->lines++;
    seen->bytes += len;
    return seen->stop_after && seen->lines == seen->stop_after;
}

/* What one read brings is not bounded, only a line split across reads: a
 * full 64 KiB read after a partial line is 655 ordinary lines, not an
 * error (ferry dropped such a connection under load). */
static void test_linebuf(void)
{
    const size_t nlines = 2000, linelen = 101; /* 99 bytes, CR, LF */
    char *stream = malloc(nlines * linelen);
    for (size_t i = 0; i < nlines; i++) {
        char *l = stream + i * linelen;
        memset(l, 'x', 99);
        memcpy(l, "PRIVMSG #c :", 12);
        l[99] = '\r';
        l[100] = '\n';
    }
    irc_linebuf_t lb = {0};
    lines_seen_t seen = {0};
    size_t cuts[] = {150, 150 + 65536, 150 + 2 * 65536, nlines * linelen};
    size_t at = 0;
    for (size_t i = 0; i < 4; i++) {
        CHECK_INT(irc_linebuf_feed(&lb, stream + at, cuts[i] - at, 65536, count_line, &seen), 0);
        at = cuts[i];
    }
    CHECK_INT(seen.lines, (int)nlines);
    CHECK_INT(seen.bad, 0);
    CHECK_INT(lb.len, 0);
    CHECK(lb.cap <= 4096, "memory given back after the burst (%zu bytes kept)", lb.cap);

    /* a line that never ends is refused once it passes the bound */
    char *big = malloc(70000);
    memset(big, 'y', 70000);
    CHECK_INT(irc_linebuf_feed(&lb, big, 40000, 65536, count_line, &seen), 0);
    CHECK_INT(irc_linebuf_feed(&lb, big, 30000, 65536, count_line, &seen), -1);
    irc_linebuf_free(&lb);

    /* the reader can stop in the middle (its connection closed) */
    lines_seen_t stop = {.stop_after = 3};
    CHECK_INT(irc_linebuf_feed(&lb, stream, 10 * linelen, 65536, count_line, &stop), 1);
    CHECK_INT(stop.lines, 3);
    /* LF alone ends a line too; empty lines are skipped */
    lines_seen_t lf = {0};
    irc_linebuf_free(&lb);
    char two[202];
    memcpy(two, stream, 99);
    two[99] = '\n';
    two[100] = '\n';
    memcpy(two + 101, stream, 99);
    two[200] = '\r';
    two[201] = '\n';
    CHECK_INT(irc_linebuf_feed(&lb, two, sizeof two, 65536, count_line, &lf), 0);
    CHECK_INT(lf.lines, 2);
    CHECK_INT(lf.bad, 0);
    irc_linebuf_free(&lb);
    free(big);
    free(stream);
}

int main(void)
{
    test_styling();
    test_linebuf();
    test_parse();
    test_casemap();
    test_format();
    test_split();
    test_text();
    test_text_xml_forbids();
    test_nick_usable();
    return check_summary();
}
