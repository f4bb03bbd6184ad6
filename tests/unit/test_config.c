/* test_config.c: gateway.toml validation as a user meets it. Most checks
 * run the built binary, `ferry --check-config -c FILE`, and compare its exit
 * status and its exact "FILE:LINE: key: message" lines (in any order) with
 * what the file deserves. Fixtures live in tests/unit/configs/; configs that
 * need temporary paths (secret files) are written to a mkdtemp() directory.
 * A few checks call ferry__config_load() + ferry__gateway_new() in a child process, the
 * way main.c does, to see that a checked config leaves nothing behind.
 *
 * The binary: $FERRY_BIN, else "ferry" next to this test executable (so the
 * sanitizer build checks its own binary), else build/ferry. Run from the
 * repository root (ctest does). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <strophe.h>
#include <uv.h>

#include "core_config.h"
#include "gateway.h"

#include "check.h"

#define CONFIGS "tests/unit/configs/"

static char ferry_bin[PATH_MAX];
static char tmpdir[64];

/* ---- small file helpers ---- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!CHECK(f != NULL, "cannot write %s: %s", path, strerror(errno)))
        return;
    fputs(text, f);
    fclose(f);
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* ---- running the binary ---- */

typedef struct result {
    int code;   /* exit code, or -1 when killed */
    int signal; /* the signal that killed it, or 0 */
    char *out, *err;
} result_t;

static void result_free(result_t *r)
{
    free(r->out);
    free(r->err);
}

static result_t run_ferry(const char *config)
{
    result_t r = {-1, 0, NULL, NULL};
    char out_path[128], err_path[128];
    tmp_path(out_path, sizeof out_path, "stdout");
    tmp_path(err_path, sizeof err_path, "stderr");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0)
            _exit(126);
        dup2(out, 1);
        dup2(err, 2);
        close(out);
        close(err);
        execl(ferry_bin, "ferry", "--check-config", "-c", config, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return r;
    if (WIFEXITED(status))
        r.code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r.signal = WTERMSIG(status);
    r.out = read_all(out_path);
    r.err = read_all(err_path);
    return r;
}

/* The first line of a sanitizer report in TEXT, or NULL. */
static const char *sanitizer_report(const char *text, char *buf, size_t len)
{
    const char *s = strstr(text, "SUMMARY: ");
    if (!s)
        s = strstr(text, "Sanitizer");
    if (!s)
        return NULL;
    size_t n = strcspn(s, "\n");
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), s);
    return buf;
}

/* Runs `ferry --check-config -c CONFIG` and compares.
 * WANT_OK: exit 0 and "CONFIG: ok" on stdout; else exit non-zero (not a
 * crash) with nothing on stdout. LINES: NULL-terminated; each is CONFIG
 * ":" + the entry; an entry ending in '*' matches any line that starts so.
 * stderr must hold exactly these lines, in any order. */
#define EXPECT(config, want_ok, ...)                                                            \
    expect_at(__FILE__, __LINE__, config, want_ok, (const char *const[]){__VA_ARGS__, NULL})
#define OK 1
#define FAILS 0
static void expect_at(const char *file, int line, const char *config, int want_ok,
                      const char *const *lines)
{
    result_t r = run_ferry(config);
    char what[160];
    snprintf(what, sizeof what, "ferry --check-config -c %s", config);

    if (r.signal)
        check_at(file, line, 0, "%s: killed by signal %d (%s)", what, r.signal, strsignal(r.signal));
    else if (want_ok)
        check_at(file, line, r.code == 0, "%s: exit status %d, expected 0", what, r.code);
    else
        check_at(file, line, r.code > 0 && r.code < 100, "%s: exit status %d, expected 1", what,
                 r.code);
    if (!r.out || !r.err) {
        check_at(file, line, 0, "%s: could not run %s", what, ferry_bin);
        return;
    }

    char want_out[PATH_MAX + 16];
    snprintf(want_out, sizeof want_out, "%s: ok\n", config);
    if (want_ok)
        check_at(file, line, strcmp(r.out, want_out) == 0, "%s: stdout %s, expected %s", what,
                 check_quote(r.out), check_quote(want_out));
    else
        check_at(file, line, r.out[0] == 0, "%s: stdout %s, expected nothing", what,
                 check_quote(r.out));

    char report[300];
    const char *sanitizer = sanitizer_report(r.err, report, sizeof report);
    check_at(file, line, sanitizer == NULL, "%s: %s", what, sanitizer ? sanitizer : "");

    /* every expected line is there */
    size_t nwant = 0;
    while (lines[nwant])
        nwant++;
    char **want = calloc(nwant + 1, sizeof *want);
    for (size_t i = 0; i < nwant; i++) {
        size_t len = strlen(config) + strlen(lines[i]) + 2;
        want[i] = malloc(len);
        snprintf(want[i], len, "%s:%s", config, lines[i]);
    }
    int *matched = calloc(nwant + 1, sizeof *matched);
    char *save = NULL;
    for (char *l = strtok_r(r.err, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int found = 0;
        for (size_t i = 0; i < nwant && !found; i++) {
            size_t wl = strlen(want[i]);
            int prefix = wl > 0 && want[i][wl - 1] == '*';
            if (matched[i])
                continue;
            if (prefix ? strncmp(l, want[i], wl - 1) == 0 : strcmp(l, want[i]) == 0)
                matched[i] = found = 1;
        }
        /* with a sanitizer report, its lines are summed up above */
        if (!sanitizer)
            check_at(file, line, found, "%s: unexpected line %s", what, check_quote(l));
    }
    for (size_t i = 0; i < nwant; i++) {
        check_at(file, line, matched[i], "%s: missing line %s", what, check_quote(want[i]));
        free(want[i]);
    }
    free(want);
    free(matched);
    result_free(&r);
}

/* ---- the checks, against fixtures ---- */

static void test_valid(void)
{
    EXPECT(CONFIGS "valid_full.toml", OK, NULL);
    EXPECT(CONFIGS "valid_minimal.toml", OK, NULL);
    EXPECT(CONFIGS "valid_signing.toml", OK, NULL);
    EXPECT("gateway.toml.example", OK, NULL);
}

static void test_unknown_keys(void)
{
    EXPECT(CONFIGS "unknown_keys.toml", FAILS,
           "2: colour: unknown key",
           "6: xmpp.prot: unknown key",
           "10: http.lisen: unknown key",
           "14: log.verbose: unknown key",
           "20: components.hooks.retries: unknown key",
           "25: components.hooks.endpoints.alerts.alow: unknown key",
           "26: components.hooks.endpoints.alerts.headers: unknown key",
           "28: extra: unknown key");
}

static void test_missing_keys(void)
{
    EXPECT(CONFIGS "missing_keys.toml", FAILS,
           "2: [components.a]: missing required key 'adapter'",
           "6: [components.b]: missing required key 'domain'",
           "13: [components.c]: missing required key 'endpoints'");
    EXPECT(CONFIGS "missing_secret.toml", FAILS,
           "2: [components.hooks]: missing required key 'secret' (or 'secret_file')");
    EXPECT(CONFIGS "empty_secret.toml", FAILS, "5: components.hooks.secret: must not be empty");
    EXPECT(CONFIGS "no_components.toml", FAILS, "1: missing required key 'components'");
    EXPECT(CONFIGS "empty_components.toml", FAILS, "4: [components]: no components configured");
}

static void test_wrong_types(void)
{
    EXPECT(CONFIGS "wrong_types.toml", FAILS,
           "2: log: expected table, found string",
           "5: xmpp.port: expected integer, found string",
           "6: xmpp.ping_interval: expected float, found string",
           "9: http.listen: expected string, found integer",
           "15: components.hooks.max_attempts: expected integer, found float",
           "19: components.hooks.endpoints.alerts.allow: expected array, found string",
           "20: components.hooks.endpoints.alerts.deliver_to: expected an array of strings "
           "(item 2 is integer)",
           "21: components.hooks.endpoints.alerts.token: expected string, found boolean",
           "24: components.hooks.endpoints.other.url: expected string, found array");
}

static void test_bad_values(void)
{
    EXPECT(CONFIGS "bad_values.toml", FAILS,
           "3: xmpp.port: must be between 1 and 65535",
           "4: xmpp.max_stanza_size: must be at least 4096",
           "5: xmpp.ping_timeout: must be greater than 0",
           "8: http.public_url: must start with http:// or https://",
           "11: log.level: unknown value \"verbose\" (expected one of: error, warn, info, debug)",
           "12: log.format: unknown value \"xml\" (expected one of: text, json)",
           "16: components.hooks.domain: not a valid domain: \"hooks localhost\"",
           "18: components.hooks.max_attempts: must be at least 1",
           "21: components.hooks.endpoints.alerts.url: must start with http:// or https://",
           "22: components.hooks.endpoints.alerts.format: unknown value \"yaml\" "
           "(expected one of: json, slack)",
           "23: components.hooks.endpoints.alerts.signing_secret: not valid base64 after \"whsec_\"",
           "24: components.hooks.endpoints.alerts.allow: \"alice@localhost/phone\" is not a bare "
           "JID or domain",
           "26: [components.hooks.endpoints.Bad]: endpoint name \"Bad\" cannot be a JID local part "
           "(lowercase, no spaces or \"&'/:<>@)",
           "29: [components.hooks.endpoints.inbound]: inbound messages need 'deliver_to' or 'rooms' "
           "(who receives them)");
    EXPECT(CONFIGS "bad_signing.toml", FAILS,
           "9: components.hooks.endpoints.a.signing_secret: not valid base64 after \"whsec_\"",
           "13: components.hooks.endpoints.b.signing_secret: not valid base64 after \"whsec_\"",
           "17: components.hooks.endpoints.c.signing_secret: not valid base64 after \"whsec_\"",
           "21: components.hooks.endpoints.d.signing_secret: not valid base64 after \"whsec_\"");
}

static void test_secrets_and_adapters(void)
{
    EXPECT(CONFIGS "both_secrets.toml", FAILS,
           "6: components.hooks.secret_file: give either secret or secret_file, not both",
           "10: components.hooks.endpoints.alerts.token_file: give either token or token_file, "
           "not both");
    EXPECT(CONFIGS "unknown_adapter.toml", FAILS,
           "4: components.hooks.adapter: unknown adapter \"webhok\" (known: irc, sms, webhook)",
           "11: [components.irc]: missing required key 'adapter'");
    EXPECT(CONFIGS "dup_domain.toml", FAILS,
           "10: components.two.domain: \"hooks.localhost\" is already the domain of component 'one'");
    EXPECT(CONFIGS "dup_domain_case.toml", FAILS, "10: components.two.domain: *");
}

static void test_syntax(void)
{
    /* the TOML parser's own words; the line is what matters */
    EXPECT(CONFIGS "syntax_unterminated.toml", FAILS, "7: *");
    EXPECT(CONFIGS "syntax_duplicate.toml", FAILS, "9: duplicate key 'domain'*");
    EXPECT(CONFIGS "syntax_table.toml", FAILS, "6: *");
}

static void test_many_errors(void)
{
    EXPECT(CONFIGS "many_errors.toml", FAILS,
           "3: xmpp.port: expected integer, found string",
           "4: xmpp.timeout: unknown key",
           "7: log.level: unknown value \"loud\" (expected one of: error, warn, info, debug)",
           "13: components.hooks.colour: unknown key",
           "16: components.hooks.endpoints.alerts.url: must start with http:// or https://",
           "17: components.hooks.endpoints.alerts.allow: expected array, found string",
           "18: components.hooks.endpoints.alerts.extra: unknown key",
           "20: [components.other]: missing required key 'domain'",
           "25: components.other.endpoints.x.format: unknown value \"xml\" "
           "(expected one of: json, slack)");
}

/* ---- configs that point at files ---- */

static const char secret_config[] =
    "[components.hooks]\n"                    /* 1 */
    "adapter = \"webhook\"\n"                 /* 2 */
    "domain = \"hooks.localhost\"\n"          /* 3 */
    "secret_file = \"%s\"\n"                  /* 4 */
    "\n"                                      /* 5 */
    "[components.hooks.endpoints.alerts]\n"   /* 6 */
    "url = \"http://127.0.0.1:9000/\"\n"      /* 7 */
    "token_file = \"%s\"\n"                   /* 8 */
    "signing_secret_file = \"%s\"\n"          /* 9 */
    "deliver_to = [\"alice@localhost\"]\n";   /* 10 */

static void write_secret_config(const char *config, const char *secret, const char *token,
                                const char *signing)
{
    char text[2048];
    snprintf(text, sizeof text, secret_config, secret, token, signing);
    write_file(config, text);
}

static void test_secret_files(void)
{
    char config[128], secret[128], token[128], signing[128], missing[128], empty[128], big[128];
    tmp_path(config, sizeof config, "gateway.toml");
    tmp_path(secret, sizeof secret, "hooks.secret");
    tmp_path(token, sizeof token, "alerts.token");
    tmp_path(signing, sizeof signing, "alerts.signing");
    tmp_path(missing, sizeof missing, "no-such-file");
    tmp_path(empty, sizeof empty, "empty.secret");
    tmp_path(big, sizeof big, "big.secret");
    write_file(secret, "s3cret\n");
    write_file(token, "t0ken");
    write_file(signing, "raw-signing-key\r\n");
    write_file(empty, "\n");
    char *huge = malloc(5001);
    memset(huge, 'k', 5000);
    huge[5000] = 0;
    write_file(big, huge);
    free(huge);

    char line[512];

    /* readable files: fine */
    write_secret_config(config, secret, token, signing);
    EXPECT(config, OK, NULL);

    /* the component's secret file cannot be read */
    write_secret_config(config, missing, token, signing);
    snprintf(line, sizeof line, "4: components.hooks.secret_file: cannot read %s: %s", missing,
             strerror(ENOENT));
    EXPECT(config, FAILS, line);

    /* a directory is not a secret file */
    write_secret_config(config, tmpdir, token, signing);
    snprintf(line, sizeof line, "4: components.hooks.secret_file: cannot read %s: %s", tmpdir,
             strerror(EISDIR));
    EXPECT(config, FAILS, line);

    /* an empty one (a lone newline) holds no secret */
    write_secret_config(config, empty, token, signing);
    snprintf(line, sizeof line, "4: components.hooks.secret_file: %s: empty secret or NUL byte",
             empty);
    EXPECT(config, FAILS, line);

    /* nor does a 5000-byte one */
    write_secret_config(config, big, token, signing);
    snprintf(line, sizeof line, "4: components.hooks.secret_file: %s: secret longer than 4095 bytes",
             big);
    EXPECT(config, FAILS, line);

    /* an endpoint's token file cannot be read */
    write_secret_config(config, secret, missing, signing);
    snprintf(line, sizeof line,
             "8: components.hooks.endpoints.alerts.token_file: cannot read %s: %s", missing,
             strerror(ENOENT));
    EXPECT(config, FAILS, line);

    /* nor can its signing secret file; both are reported */
    write_secret_config(config, secret, missing, missing);
    char line2[512];
    snprintf(line2, sizeof line2,
             "9: components.hooks.endpoints.alerts.signing_secret_file: cannot read %s: %s",
             missing, strerror(ENOENT));
    EXPECT(config, FAILS, line, line2);

    /* a file its owner cannot read (root reads anything: skipped then) */
    if (geteuid() != 0) {
        char locked[128];
        tmp_path(locked, sizeof locked, "locked.secret");
        write_file(locked, "s3cret");
        chmod(locked, 0);
        write_secret_config(config, locked, token, signing);
        snprintf(line, sizeof line, "4: components.hooks.secret_file: cannot read %s: %s", locked,
                 strerror(EACCES));
        EXPECT(config, FAILS, line);
        unlink(locked);
    }

    /* the config file itself is missing */
    snprintf(line, sizeof line, " %s", strerror(ENOENT));
    EXPECT(missing, FAILS, line);

    unlink(config);
    unlink(secret);
    unlink(token);
    unlink(signing);
    unlink(empty);
    unlink(big);
}

/* ---- in-process: ferry__config_load() + ferry__gateway_new(), as main.c calls them ---- */

typedef struct inproc {
    int loaded;     /* ferry__config_load() returned a config */
    int built;      /* ferry__gateway_new() returned a gateway */
    int loop_close; /* uv_loop_close() after ferry__gateway_free() and a last uv_run() */
} inproc_t;

/* Runs in a child, so that a crash or a sanitizer report in the code under
 * test is a failed check here rather than the end of this program. */
#define INPROC(config, want_built) inproc_at(__FILE__, __LINE__, config, want_built)
static void inproc_at(const char *file, int line, const char *config, int want_built)
{
    char err_path[128];
    tmp_path(err_path, sizeof err_path, "inproc.stderr");
    int fds[2];
    if (!check_at(file, line, pipe(fds) == 0, "pipe: %s", strerror(errno)))
        return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (err >= 0) {
            dup2(err, 2);
            close(err);
        }
        inproc_t r = {0, 0, 0};
        curl_global_init(CURL_GLOBAL_DEFAULT);
        xmpp_initialize();
        config_t *c = ferry__config_load(config);
        r.loaded = c != NULL;
        if (c) {
            uv_loop_t loop;
            uv_loop_init(&loop);
            gateway_t *gw = ferry__gateway_new(&loop, c); /* takes c */
            r.built = gw != NULL;
            if (gw)
                ferry__gateway_free(gw);
            uv_run(&loop, UV_RUN_DEFAULT);
            r.loop_close = uv_loop_close(&loop);
        }
        if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(125);
        close(fds[1]);
        xmpp_shutdown();
        curl_global_cleanup();
        exit(0);
    }
    close(fds[1]);
    inproc_t r;
    ssize_t n = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    char *err = read_all(err_path);
    char report[300];
    const char *sanitizer = sanitizer_report(err, report, sizeof report);

    if (!check_at(file, line, n == (ssize_t)sizeof r, "%s: the child died before reporting (%s)",
                  config, WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "no signal")) {
        free(err);
        return;
    }
    check_at(file, line, r.loaded == (want_built >= 0), "%s: config_load() %s", config,
             r.loaded ? "returned a config" : "returned NULL");
    if (r.loaded)
        check_at(file, line, r.built == (want_built > 0), "%s: gateway_new() %s", config,
                 r.built ? "returned a gateway" : "returned NULL");
    if (r.loaded)
        check_at(file, line, r.loop_close == 0,
                 "%s: uv_loop_close() after gateway_free() = %s: handles left open on the loop",
                 config, r.loop_close ? uv_err_name(r.loop_close) : "0");
    check_at(file, line, WIFEXITED(status) && WEXITSTATUS(status) == 0 && !sanitizer,
             "%s: the child exited with status %d%s%s", config,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1, sanitizer ? ": " : "",
             sanitizer ? sanitizer : "");
    free(err);
}

static void test_in_process(void)
{
    INPROC(CONFIGS "valid_full.toml", 1);
    INPROC(CONFIGS "valid_minimal.toml", 1);
    INPROC(CONFIGS "unknown_keys.toml", 0); /* the component is built, then refused */
    INPROC(CONFIGS "missing_keys.toml", 0);
    INPROC(CONFIGS "unknown_adapter.toml", 0);
    INPROC(CONFIGS "syntax_unterminated.toml", -1);
}

/* ---- setup ---- */

static int find_binary(void)
{
    const char *env = getenv("FERRY_BIN");
    if (env && *env) {
        snprintf(ferry_bin, sizeof ferry_bin, "%s", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = 0;
            snprintf(ferry_bin, sizeof ferry_bin, "%s/ferry", dirname(self));
        }
        if (n <= 0 || access(ferry_bin, X_OK) != 0)
            snprintf(ferry_bin, sizeof ferry_bin, "build/ferry");
    }
    return CHECK(access(ferry_bin, X_OK) == 0, "no ferry binary at %s (set FERRY_BIN)", ferry_bin);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ferry-test-config-XXXXXX");
    if (!CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno)))
        return check_summary();
    if (!CHECK(access(CONFIGS "valid_full.toml", R_OK) == 0,
               "fixtures not found: run from the repository root"))
        return check_summary();

    if (find_binary()) {
        test_valid();
        test_unknown_keys();
        test_missing_keys();
        test_wrong_types();
        test_bad_values();
        test_secrets_and_adapters();
        test_syntax();
        test_many_errors();
        test_secret_files();
    }
    test_in_process();

    char path[128];
    const char *leftovers[] = {"stdout", "stderr", "inproc.stderr"};
    for (size_t i = 0; i < sizeof leftovers / sizeof leftovers[0]; i++) {
        tmp_path(path, sizeof path, leftovers[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return check_summary();
}
