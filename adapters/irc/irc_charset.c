/* irc_charset.c: the encodings a user set for a server and for a channel
 * (biboumi's encoding_in / encoding_out on the server's and the room's
 * configure forms), with glibc's iconv: what the server sends is read from
 * encoding_in into UTF-8 before it is parsed, and what ferry sends is
 * written in encoding_out. A line about a channel (PRIVMSG, NOTICE, TOPIC,
 * PART, KICK, the topic on join) takes that channel's encoding
 * when the user set one, else the server's: the channel is read from the
 * raw line, whose syntax is ASCII in every encoding accepted. Only
 * encodings that keep ASCII as it is are accepted (the IRC syntax, CR and
 * LF must stay those bytes), and a line that would hold a CR, LF or NUL
 * after conversion is not sent. Without a setting nothing is converted
 * (UTF-8, with Latin-1 read where UTF-8 is invalid). */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "irc.h"

/* Converts IN (LEN bytes) with CD into OUT (CAP bytes); what cannot be
 * converted becomes '?': a byte, or when IN is UTF-8 (FROM_UTF8) a whole
 * character the target encoding has no letter for. Returns the length
 * written. */
static size_t convert(iconv_t cd, const char *in, size_t len, char *out, size_t cap,
                      int from_utf8)
{
    char *ip = (char *)in, *op = out;
    size_t il = len, ol = cap;
    iconv(cd, NULL, NULL, NULL, NULL); /* a fresh state per line */
    while (il && ol) {
        if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1)
            break;
        if (errno == E2BIG)
            break;
        /* EILSEQ or EINVAL: one byte (or character) we cannot convert */
        do {
            ip++;
            il--;
        } while (from_utf8 && il && ((unsigned char)*ip & 0xc0) == 0x80);
        *op++ = '?';
        ol--;
    }
    if (ol) /* the end of a stateful encoding's last shift */
        iconv(cd, NULL, NULL, &op, &ol);
    return (size_t)(op - out);
}

int irc_charset_valid(const char *name)
{
    if (!name || !*name || strlen(name) >= IRC_CHARSET_MAX)
        return 0;
    for (const char *c = name; *c; c++) /* one word: stored one a line */
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return 0;
    iconv_t to = iconv_open(name, "UTF-8"), from = iconv_open("UTF-8", name);
    int ok = to != (iconv_t)-1 && from != (iconv_t)-1;
    if (ok) { /* ASCII, CR and LF stay the same bytes both ways */
        char a[16], b[16];
        static const char sample[] = "PING :x\r\n";
        size_t n = convert(to, sample, sizeof sample - 1, a, sizeof a, 1);
        size_t m = convert(from, sample, sizeof sample - 1, b, sizeof b, 0);
        ok = n == sizeof sample - 1 && memcmp(a, sample, n) == 0 && m == n &&
             memcmp(b, sample, m) == 0;
    }
    if (to != (iconv_t)-1)
        iconv_close(to);
    if (from != (iconv_t)-1)
        iconv_close(from);
    return ok;
}

/* ---- the channel a line is about ---- */

/* The next space-separated word of [*P, END), without a leading ':'. */
static size_t word(const char **p, const char *end, const char **start)
{
    while (*p < end && **p == ' ')
        (*p)++;
    if (*p < end && **p == ':')
        (*p)++;
    *start = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    return (size_t)(*p - *start);
}

static int is_command(const char *w, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(w, name, n) == 0;
}

/* The channel LINE is about, folded into FOLDED; 0 when it is about none
 * (or is not one of the commands whose text a channel's encoding is for).
 * Tags and a prefix are skipped: the line may be read or written. */
static int line_channel(const irc_conn_t *conn, const char *line, size_t len, char *folded,
                        size_t cap)
{
    const char *p = line, *end = line + len, *w;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n'))
        end--;
    if (p < end && *p == '@')
        word(&p, end, &w);
    if (p < end && *p == ':')
        word(&p, end, &w);
    size_t n = word(&p, end, &w);
    /* (Not LIST's 322: a channel the user has not set would cost each of
     * thousands of listed channels a look in the store.) */
    if (is_command(w, n, "332"))
        word(&p, end, &w); /* our nick, then the channel */
    else if (!is_command(w, n, "PRIVMSG") && !is_command(w, n, "NOTICE") &&
             !is_command(w, n, "TOPIC") && !is_command(w, n, "PART") &&
             !is_command(w, n, "KICK"))
        return 0;
    n = word(&p, end, &w);
    /* "@#chan": to its operators ('&' may also start a channel) */
    while (n && *w && strchr(conn->prefixes, *w) && !strchr(conn->chantypes, *w)) {
        w++;
        n--;
    }
    for (size_t i = 0; i < n; i++)
        if (w[i] == ',')
            n = i; /* the first of a list */
    if (!n || n >= IRC_NAME_MAX || !*w || !strchr(conn->chantypes, *w))
        return 0;
    char name[IRC_NAME_MAX];
    memcpy(name, w, n);
    name[n] = 0;
    irc_casefold(IRC_CASE_RFC1459, name, folded, cap);
    return 1;
}

/* ---- converters per channel ---- */

/* Entries kept per connection: its channels, a few more that it wrote to. */
#define CHAN_CHARSETS_MAX 64

static void close_cd(iconv_t cd)
{
    if (cd && cd != (iconv_t)-1)
        iconv_close(cd);
}

static iconv_t open_cd(const char *to, const char *from)
{
    iconv_t cd = iconv_open(to, from);
    return cd == (iconv_t)-1 ? NULL : cd;
}

static void chan_charset_free(irc_chan_charset_t *c)
{
    close_cd(c->in);
    close_cd(c->out);
    free(c);
}

/* The entry of the channel FOLDED, read from the room options when the
 * connection has none yet (moved to the front: the busy channels stay near
 * it). */
static irc_chan_charset_t *chan_charset(irc_conn_t *conn, const char *folded)
{
    irc_chan_charset_t **link = &conn->chan_charsets, *c;
    size_t n = 0;
    for (; (c = *link); link = &c->next, n++)
        if (strcmp(c->folded, folded) == 0) {
            *link = c->next;
            break;
        }
    if (!c) {
        if (n >= CHAN_CHARSETS_MAX) { /* full: the one least recently used goes */
            for (link = &conn->chan_charsets; (*link)->next; link = &(*link)->next)
                ;
            chan_charset_free(*link);
            *link = NULL;
        }
        irc_room_options_t o;
        irc_room_options_load(conn->irc, conn->server->name, folded, conn->jid, &o);
        size_t len = strlen(folded) + 1;
        c = ferry_calloc(1, sizeof *c + len);
        memcpy(c->folded, folded, len);
        if (irc_charset_valid(o.encoding_in))
            c->in = open_cd("UTF-8", o.encoding_in);
        if (irc_charset_valid(o.encoding_out))
            c->out = open_cd(o.encoding_out, "UTF-8");
    }
    c->next = conn->chan_charsets;
    conn->chan_charsets = c;
    return c;
}

void irc_charset_forget(irc_conn_t *conn, const char *channel)
{
    char folded[IRC_NAME_MAX];
    irc_casefold(IRC_CASE_RFC1459, channel, folded, sizeof folded);
    for (irc_chan_charset_t **link = &conn->chan_charsets, *c; (c = *link); link = &c->next)
        if (strcmp(c->folded, folded) == 0) {
            *link = c->next;
            chan_charset_free(c);
            return;
        }
}

/* ---- the connection's ---- */

void irc_charset_close(irc_conn_t *conn)
{
    close_cd(conn->enc_in);
    close_cd(conn->enc_out);
    conn->enc_in = conn->enc_out = NULL;
    while (conn->chan_charsets) {
        irc_chan_charset_t *c = conn->chan_charsets;
        conn->chan_charsets = c->next;
        chan_charset_free(c);
    }
}

void irc_charset_open(irc_conn_t *conn)
{
    irc_charset_close(conn);
    const irc_user_settings_t *s = &conn->settings;
    if (irc_charset_valid(s->encoding_in))
        conn->enc_in = open_cd("UTF-8", s->encoding_in);
    if (irc_charset_valid(s->encoding_out))
        conn->enc_out = open_cd(s->encoding_out, "UTF-8");
}

/* The converter for LINE: its channel's, else the server's (IN: reading). */
static iconv_t converter(irc_conn_t *conn, const char *line, size_t len, int in)
{
    char folded[IRC_NAME_MAX];
    irc_chan_charset_t *c =
        line_channel(conn, line, len, folded, sizeof folded) ? chan_charset(conn, folded) : NULL;
    iconv_t cd = c ? (in ? c->in : c->out) : NULL;
    return cd ? cd : in ? conn->enc_in : conn->enc_out;
}

size_t irc_charset_in(irc_conn_t *conn, const char *line, size_t len, char *out, size_t cap)
{
    iconv_t cd = converter(conn, line, len, 1);
    if (!cd)
        return 0;
    size_t n = convert(cd, line, len, out, cap, 0);
    for (size_t i = 0; i < n; i++)
        if (out[i] == 0)
            out[i] = '?'; /* a line is a C string from here on */
    return n;
}

size_t irc_charset_out(irc_conn_t *conn, const char *line, size_t len, char *out, size_t cap)
{
    iconv_t cd = converter(conn, line, len, 0);
    if (!cd)
        return 0;
    size_t n = convert(cd, line, len, out, cap, 1);
    /* Nothing but the final CR LF may end a line. */
    for (size_t i = 0; i + 2 < n; i++)
        if (out[i] == 0 || out[i] == '\r' || out[i] == '\n')
            return (size_t)-1;
    return n;
}
