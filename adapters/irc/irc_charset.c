/* irc_charset.c: the encodings a user set for a server (biboumi's
 * encoding_in / encoding_out on the server's configure form), with glibc's
 * iconv: what the server sends is read from encoding_in into UTF-8 before
 * it is parsed, and what ferry sends is written in encoding_out. Only
 * encodings that keep ASCII as it is are accepted (the IRC syntax, CR and
 * LF must stay those bytes), and a line that would hold a CR, LF or NUL
 * after conversion is not sent. Without a setting nothing is converted
 * (UTF-8, with Latin-1 read where UTF-8 is invalid). */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc.h"

/* Converts IN (LEN bytes) with CD into OUT (CAP bytes); bytes that cannot
 * be converted become '?'. Returns the length written. */
static size_t convert(iconv_t cd, const char *in, size_t len, char *out, size_t cap)
{
    char *ip = (char *)in, *op = out;
    size_t il = len, ol = cap;
    iconv(cd, NULL, NULL, NULL, NULL); /* a fresh state per line */
    while (il && ol) {
        if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1)
            break;
        if (errno == E2BIG)
            break;
        /* EILSEQ or EINVAL: one byte we cannot read */
        ip++;
        il--;
        *op++ = '?';
        ol--;
    }
    if (ol) /* the end of a stateful encoding's last shift */
        iconv(cd, NULL, NULL, &op, &ol);
    return (size_t)(op - out);
}

int irc_charset_valid(const char *name)
{
    if (!name || !*name || strlen(name) >= 32)
        return 0;
    iconv_t to = iconv_open(name, "UTF-8"), from = iconv_open("UTF-8", name);
    int ok = to != (iconv_t)-1 && from != (iconv_t)-1;
    if (ok) { /* ASCII, CR and LF stay the same bytes both ways */
        char a[16], b[16];
        static const char sample[] = "PING :x\r\n";
        size_t n = convert(to, sample, sizeof sample - 1, a, sizeof a);
        size_t m = convert(from, sample, sizeof sample - 1, b, sizeof b);
        ok = n == sizeof sample - 1 && memcmp(a, sample, n) == 0 && m == n &&
             memcmp(b, sample, m) == 0;
    }
    if (to != (iconv_t)-1)
        iconv_close(to);
    if (from != (iconv_t)-1)
        iconv_close(from);
    return ok;
}

void irc_charset_close(irc_conn_t *conn)
{
    if (conn->enc_in != (iconv_t)-1 && conn->enc_in)
        iconv_close(conn->enc_in);
    if (conn->enc_out != (iconv_t)-1 && conn->enc_out)
        iconv_close(conn->enc_out);
    conn->enc_in = conn->enc_out = NULL;
}

void irc_charset_open(irc_conn_t *conn)
{
    irc_charset_close(conn);
    const irc_user_settings_t *s = &conn->settings;
    if (s->encoding_in[0] && irc_charset_valid(s->encoding_in))
        conn->enc_in = iconv_open("UTF-8", s->encoding_in);
    if (s->encoding_out[0] && irc_charset_valid(s->encoding_out))
        conn->enc_out = iconv_open(s->encoding_out, "UTF-8");
    if (conn->enc_in == (iconv_t)-1)
        conn->enc_in = NULL;
    if (conn->enc_out == (iconv_t)-1)
        conn->enc_out = NULL;
}

size_t irc_charset_in(irc_conn_t *conn, const char *line, size_t len, char *out, size_t cap)
{
    if (!conn->enc_in)
        return 0;
    size_t n = convert(conn->enc_in, line, len, out, cap);
    for (size_t i = 0; i < n; i++)
        if (out[i] == 0)
            out[i] = '?'; /* a line is a C string from here on */
    return n;
}

size_t irc_charset_out(irc_conn_t *conn, const char *line, size_t len, char *out, size_t cap)
{
    if (!conn->enc_out)
        return 0;
    size_t n = convert(conn->enc_out, line, len, out, cap);
    /* Nothing but the final CR LF may end a line. */
    for (size_t i = 0; i + 2 < n; i++)
        if (out[i] == 0 || out[i] == '\r' || out[i] == '\n')
            return (size_t)-1;
    return n;
}
