/* test_jid.c: ferry_jid_parse(), ferry_jid_bare() and ferry_jid_allowed() as
 * adapters use them: splitting sender and recipient addresses, and deciding
 * whether a sender is covered by an endpoint's `allow` list. */
#include <stdlib.h>
#include <string.h>

#include "ferry/jid.h"

#include "check.h"

/* A JID that must parse into these parts. */
#define GOOD(jid, l, d, r) good_at(__FILE__, __LINE__, jid, l, d, r)
static void good_at(const char *file, int line, const char *jid, const char *local,
                    const char *domain, const char *resource)
{
    ferry_jid_t j;
    memset(&j, 'x', sizeof j);
    int rc = ferry_jid_parse(jid, &j);
    if (!check_at(file, line, rc == 0, "ferry_jid_parse(%s) = %d, expected 0", check_quote(jid), rc))
        return;
    check_at(file, line,
             strcmp(j.local, local) == 0 && strcmp(j.domain, domain) == 0 &&
                 strcmp(j.resource, resource) == 0,
             "ferry_jid_parse(%s) gave local %s domain %s resource %s, expected %s %s %s",
             check_quote(jid), check_quote(j.local), check_quote(j.domain),
             check_quote(j.resource), check_quote(local), check_quote(domain),
             check_quote(resource));
}

/* A JID that must be refused. */
#define BAD(jid) bad_at(__FILE__, __LINE__, jid)
static void bad_at(const char *file, int line, const char *jid)
{
    ferry_jid_t j;
    int rc = ferry_jid_parse(jid, &j);
    check_at(file, line, rc == -1, "ferry_jid_parse(%s) = %d (domain %s), expected -1",
             check_quote(jid), rc, check_quote(rc == 0 ? j.domain : NULL));
}

#define ALLOWED(list, jid, want) allowed_at(__FILE__, __LINE__, list, #list, jid, want)
static void allowed_at(const char *file, int line, char *const *list, const char *list_name,
                       const char *jid, int want)
{
    int got = ferry_jid_allowed(list, jid);
    check_at(file, line, got == want, "ferry_jid_allowed(%s, %s) = %d, expected %d", list_name,
             check_quote(jid), got, want);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static void test_parse_good(void)
{
    GOOD("alice@example.org", "alice", "example.org", "");
    GOOD("alice@example.org/phone", "alice", "example.org", "phone");
    GOOD("example.org", "", "example.org", "");
    GOOD("example.org/res", "", "example.org", "res");
    GOOD("localhost", "", "localhost", "");
    /* local part and domain fold to lowercase; the resource keeps its case */
    GOOD("Alice@Example.ORG/Phone", "alice", "example.org", "Phone");
    GOOD("ALERTS@HOOKS.LOCALHOST", "alerts", "hooks.localhost", "");
    /* the resource is everything after the first '/', '/' and '@' included */
    GOOD("alice@example.org/a/b", "alice", "example.org", "a/b");
    GOOD("alice@example.org/bob@example.net", "alice", "example.org", "bob@example.net");
    GOOD("alice@example.org/x@y/z", "alice", "example.org", "x@y/z");
    GOOD("example.org/a@b", "", "example.org", "a@b");
    GOOD("alice@example.org/ spaces are fine ", "alice", "example.org", " spaces are fine ");
    /* a trailing dot names the same domain */
    GOOD("example.org.", "", "example.org", "");
    GOOD("alice@example.org.", "alice", "example.org", "");
    GOOD("alice@example.org./r", "alice", "example.org", "r");
    /* UTF-8 is passed through untouched */
    GOOD("j\xc3\xbcrgen@example.org", "j\xc3\xbcrgen", "example.org", "");
    GOOD("a.b-c_d+e@example.org", "a.b-c_d+e", "example.org", "");
    GOOD("[::1]", "", "[::1]", "");
    GOOD("alice@127.0.0.1", "alice", "127.0.0.1", "");
}

static void test_parse_bad(void)
{
    ferry_jid_t j;
    CHECK(ferry_jid_parse(NULL, &j) == -1, "ferry_jid_parse(NULL) must fail");
    BAD("");
    BAD("@example.org");        /* '@' without a local part */
    BAD("@example.org/r");
    BAD("alice@");              /* no domain */
    BAD("alice@/res");
    BAD("/res");
    BAD("alice@example.org/");  /* empty resource */
    BAD("example.org/");
    BAD(".");                   /* the domain is only the trailing dot */
    BAD("alice@.");
    BAD("..");                  /* two trailing dots: an empty label (its bare JID "." */
    BAD("alice@example.org.."); /* would not parse again) */
    BAD("alice@example.org@example.net"); /* second '@' in the domain */
    BAD("a@b@c");
    BAD("alice@exa mple.org");  /* space in the domain */
    BAD("alice@example.org\t");
    /* RFC 7622 section 3.3.1: " & ' / : < > @ and space are not allowed in a
     * localpart ('/' and '@' cannot even reach it: they split the JID) */
    BAD("al\"ice@example.org");
    BAD("al&ice@example.org");
    BAD("al'ice@example.org");
    BAD("al:ice@example.org");
    BAD("al<ice@example.org");
    BAD("al>ice@example.org");
    BAD("al ice@example.org");
    /* control characters anywhere */
    BAD("al\tice@example.org");
    BAD("alice@exam\nple.org");
    BAD("alice@example.org/r\x01");
    BAD("alice\x7f@example.org");
}

static void test_parse_lengths(void)
{
    char *p1023 = repeat('a', 1023), *p1024 = repeat('a', 1024);
    char *buf = malloc(4200);

    snprintf(buf, 4200, "%s@example.org/r", p1023);
    GOOD(buf, p1023, "example.org", "r");
    snprintf(buf, 4200, "%s@example.org/r", p1024);
    BAD(buf);

    snprintf(buf, 4200, "alice@%s/r", p1023);
    GOOD(buf, "alice", p1023, "r");
    snprintf(buf, 4200, "alice@%s/r", p1024);
    BAD(buf);
    snprintf(buf, 4200, "alice@%s./r", p1023); /* 1023 bytes once the dot is dropped */
    GOOD(buf, "alice", p1023, "r");

    snprintf(buf, 4200, "alice@example.org/%s", p1023);
    GOOD(buf, "alice", "example.org", p1023);
    snprintf(buf, 4200, "alice@example.org/%s", p1024);
    BAD(buf);

    snprintf(buf, 4200, "%s@%s/%s", p1023, p1023, p1023); /* all three at the limit */
    GOOD(buf, p1023, p1023, p1023);

    free(p1023);
    free(p1024);
    free(buf);
}

static void test_bare(void)
{
    ferry_jid_t j;
    char buf[64];

    ferry_jid_bare_of("Alice@Example.org/Phone", buf, sizeof buf);
    CHECK_STR(buf, "alice@example.org");
    ferry_jid_bare_of("@bad/", buf, sizeof buf); /* not a JID: kept as it is */
    CHECK_STR(buf, "@bad/");
    ferry_jid_bare_of(NULL, buf, sizeof buf);
    CHECK_STR(buf, "");

    CHECK(ferry_jid_parse("Alice@Example.org/Phone", &j) == 0, "parse failed");
    ferry_jid_bare(&j, buf, sizeof buf);
    CHECK_STR(buf, "alice@example.org");

    CHECK(ferry_jid_parse("example.org/res", &j) == 0, "parse failed");
    ferry_jid_bare(&j, buf, sizeof buf);
    CHECK_STR(buf, "example.org");

    CHECK(ferry_jid_parse("alice@example.org./r", &j) == 0, "parse failed");
    ferry_jid_bare(&j, buf, sizeof buf);
    CHECK_STR(buf, "alice@example.org");

    /* a short buffer is truncated, terminated, and not overrun */
    CHECK(ferry_jid_parse("alice@example.org", &j) == 0, "parse failed");
    memset(buf, '#', sizeof buf);
    ferry_jid_bare(&j, buf, 8);
    CHECK_STR(buf, "alice@e");
    CHECK(buf[8] == '#', "ferry_jid_bare wrote past the given length");
}

static void test_allowed(void)
{
    char *people[] = {"alice@example.org", "bob@localhost", NULL};
    char *domain[] = {"example.org", NULL};
    char *mixed[] = {"carol@example.net", "localhost", NULL};
    char *upper[] = {"Alice@Example.ORG", "LOCALHOST", NULL};
    char *dotted[] = {"alice@example.org.", "example.net.", NULL};
    char *empty[] = {NULL};

    /* bare JIDs: any resource of that account */
    ALLOWED(people, "alice@example.org", 1);
    ALLOWED(people, "alice@example.org/phone", 1);
    ALLOWED(people, "bob@localhost/x/y", 1);
    ALLOWED(people, "carol@example.org", 0);
    ALLOWED(people, "example.org", 0);         /* the server is not alice */
    ALLOWED(people, "alice@example.org.evil", 0);
    ALLOWED(people, "alice@sub.example.org", 0);
    ALLOWED(people, "xalice@example.org", 0);

    /* whole domains: every account there, and the domain itself */
    ALLOWED(domain, "anyone@example.org/r", 1);
    ALLOWED(domain, "example.org", 1);
    ALLOWED(domain, "example.org/res", 1);
    ALLOWED(domain, "anyone@example.org.", 1); /* trailing dot: the same domain */
    /* a subdomain is another domain */
    ALLOWED(domain, "anyone@sub.example.org", 0);
    ALLOWED(domain, "sub.example.org", 0);
    ALLOWED(domain, "anyone@notexample.org", 0);
    ALLOWED(domain, "anyone@example.org.evil.com", 0);
    ALLOWED(domain, "anyone@org", 0);
    /* the domain written as a resource or local part proves nothing */
    ALLOWED(domain, "evil.com/example.org", 0);
    ALLOWED(domain, "example.org@evil.com", 0);

    ALLOWED(mixed, "carol@example.net/r", 1);
    ALLOWED(mixed, "dave@localhost", 1);
    ALLOWED(mixed, "dave@example.net", 0);

    /* JIDs compare without regard to case (local part and domain) */
    ALLOWED(people, "ALICE@EXAMPLE.ORG/Phone", 1);
    ALLOWED(domain, "Bob@Example.Org", 1);
    ALLOWED(upper, "alice@example.org", 1);
    ALLOWED(upper, "dave@localhost", 1);
    ALLOWED(upper, "dave@example.org", 0);

    /* a list entry written with a trailing dot names the same account/domain */
    ALLOWED(dotted, "alice@example.org/r", 1);
    ALLOWED(dotted, "dave@example.net", 1);

    /* malformed senders are nobody */
    ALLOWED(domain, "@example.org", 0);
    ALLOWED(domain, "", 0);
    ALLOWED(domain, NULL, 0);
    ALLOWED(domain, "al ice@example.org", 0);

    /* missing or empty list: nobody */
    ALLOWED(NULL, "alice@example.org", 0);
    ALLOWED(empty, "alice@example.org", 0);
    ALLOWED(empty, "example.org", 0);
}

int main(void)
{
    test_parse_good();
    test_parse_bad();
    test_parse_lengths();
    test_bare();
    test_allowed();
    return check_summary();
}
