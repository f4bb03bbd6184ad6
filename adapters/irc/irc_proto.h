/* irc_proto.h: the IRC wire format (RFC 1459/2812 with IRCv3 tags): parsing
 * lines, writing them without letting text become protocol, case mapping,
 * and turning IRC text into clean UTF-8. */
#ifndef FERRY_IRC_PROTO_H
#define FERRY_IRC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define IRC_MAX_PARAMS 15
#define IRC_LINE_MAX 512 /* including CR LF */

typedef struct irc_msg {
    char *tags;                     /* raw, without '@'; NULL when none */
    char *prefix;                   /* without ':'; NULL when none */
    char *command;                  /* uppercased */
    char *params[IRC_MAX_PARAMS];
    int nparams;
    char buf[];                     /* the storage all the above point into */
} irc_msg_t;

/* The start of a line that a later read will finish. */
typedef struct irc_linebuf {
    char *buf;
    size_t len, cap;
} irc_linebuf_t;

/* Calls ON_LINE for each line DATA completes (LF or CR LF ends it; the CR
 * is not passed, empty lines are skipped), from DATA itself where it can,
 * and keeps what is left. Only that partial line is bounded by MAX: -1 when
 * it would be longer. 1 when ON_LINE returned nonzero (stop), else 0. */
int irc_linebuf_feed(irc_linebuf_t *lb, const char *data, size_t len, size_t max,
                     int (*on_line)(void *ctx, const char *line, size_t len), void *ctx);
void irc_linebuf_free(irc_linebuf_t *lb);

/* Parses one line (without CR LF). NULL when it holds no command. Free with
 * free(). */
irc_msg_t *irc_msg_parse(const char *line, size_t len);

/* The nick of a prefix "nick!user@host" into BUF. */
void irc_prefix_nick(const char *prefix, char *buf, size_t len);

/* Case mappings announced in ISUPPORT CASEMAPPING. */
typedef enum { IRC_CASE_RFC1459, IRC_CASE_STRICT_RFC1459, IRC_CASE_ASCII } irc_casemap_t;

irc_casemap_t irc_casemap_parse(const char *name);
/* Lowercases S into BUF under MAP. */
void irc_casefold(irc_casemap_t map, const char *s, char *buf, size_t len);
int irc_casecmp(irc_casemap_t map, const char *a, const char *b);
/* Strings equal under any of the mappings hash the same (rfc1459 folds the
 * most), so an index survives a CASEMAPPING learnt late. */
uint32_t irc_casehash(const char *s);

/* Whether S may be sent as a nick, a channel (with one of CHANTYPES first)
 * or a single middle parameter: no space, comma, CR, LF, NUL, BEL, and not
 * starting with ':'. */
int irc_valid_nick(const char *s);
int irc_valid_channel(const char *s, const char *chantypes);
/* Whether a nick from the server can be a JID resource: not empty, valid
 * UTF-8 that XML allows, no spaces, controls or U+FFF9-U+FFFD. A line naming
 * any other comes from a broken or hostile server and is ignored. */
int irc_nick_usable(const char *s);

/* Appends "COMMAND p1 p2 :last\r\n" to OUT (size CAP) and returns its length,
 * or 0 when a parameter would break the line (CR, LF or NUL anywhere, a
 * space or leading ':' in a middle parameter) or it exceeds IRC_LINE_MAX. */
size_t irc_format(char *out, size_t cap, const char *command, const char *const *params,
                  int nparams);

/* Splits TEXT into pieces whose "PRIVMSG target :piece\r\n" fits in
 * IRC_LINE_MAX - PREFIX_ROOM bytes (the server prepends our prefix when it
 * relays): at newlines, then at UTF-8 character boundaries, preferring
 * spaces. CR, LF and NUL never reach a piece. Returns the count; *pieces
 * gets a malloc'd array of malloc'd strings (free with irc_pieces_free). */
size_t irc_split_text(const char *command, const char *target, const char *text,
                      char ***pieces);
void irc_pieces_free(char **pieces, size_t n);

/* IRC text to clean UTF-8: formatting codes (bold, color, italics, ...)
 * removed; bytes that are not valid UTF-8 read as Latin-1, U+FFFE and U+FFFF
 * become U+FFFD: always XML 1.0 character data. Malloc'd. */
char *irc_text_to_utf8(const char *text);
/* The same, but bold, italics, strikethrough and monospace become XEP-0393
 * directives (*strong*, _emphasis_, ~strike~, `pre`) where a client will
 * read them back as that span and nothing else; elsewhere they are dropped. */
char *irc_text_to_styled(const char *text);

#endif
