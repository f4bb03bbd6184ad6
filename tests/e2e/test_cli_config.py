"""Command line and configuration: what a user sees from `ferry --version`,
`--help`, `--check-config` and from the log format."""

import json
import re

import pytest

import harness as h

FULL_CONFIG = """\
[xmpp]
host = "127.0.0.1"
port = 5347                   # Prosody's component port
queue_size = 10000
ping_interval = 60
ping_timeout = 30
keepalive_interval = 30
max_stanza_size = 262144

[http]
listen = "127.0.0.1:8480"
public_url = "http://127.0.0.1:8480"

[log]
level = "info"
format = "text"

[components.hooks]
adapter = "webhook"
domain = "hooks.localhost"
secret = "s3cret"
max_attempts = 10
retry_delay = 1.0
retry_delay_max = 300.0
timeout = 10.0

[components.hooks.endpoints.alerts]
url = "http://127.0.0.1:9000/incoming"
format = "json"
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
token = "t0ken"
github_secret = "gh-secret"
deliver_to = ["alice@localhost"]
allow = ["alice@localhost", "localhost"]

[components.hooks.endpoints.chat]
format = "slack"
token = "t0ken2"
deliver_to = ["alice@localhost", "bob@localhost"]
allow = ["localhost"]
"""

MINIMAL_CONFIG = """\
[xmpp]
host = "127.0.0.1"
port = 5347

[http]
listen = "127.0.0.1:8480"
public_url = "http://127.0.0.1:8480"

[log]
level = "info"

[components.hooks]
adapter = "webhook"
domain = "hooks.localhost"
secret = "s3cret"

[components.hooks.endpoints.alerts]
url = "http://127.0.0.1:9000/incoming"
format = "json"
token = "t0ken"
deliver_to = ["alice@localhost"]
allow = ["alice@localhost", "localhost"]
"""


def write(tmp_path, text, name="gateway.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def check(path, ferry_bin):
    r = h.run_ferry_cli(["--check-config", "-c", path], binary=ferry_bin)
    assert not h.sanitizer_reports(r.stderr), r.stderr
    assert r.returncode >= 0, "ferry --check-config died by signal %d; stderr:\n%s" % (-r.returncode, r.stderr)
    return r


def line_of(text, needle, nth=1):
    """1-based number of the line holding the nth occurrence of needle."""
    count = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            count += 1
            if count == nth:
                return i
    raise ValueError(needle)


def error_lines(stderr, path):
    """The `FILE:LINE: message` lines, as (line, message)."""
    rx = re.compile(r"^" + re.escape(path) + r":(\d+): (.+)$")
    out = []
    for line in stderr.splitlines():
        m = rx.match(line.strip())
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def assert_error(r, path, key, line=None):
    assert r.returncode != 0, "check-config accepted a bad config:\nstdout: %s\nstderr: %s" % (r.stdout, r.stderr)
    errs = error_lines(r.stderr, path)
    assert errs, "no `%s:LINE: message` line on stderr:\n%s" % (path, r.stderr)
    hits = [(n, m) for n, m in errs if key in m]
    assert hits, "no error names %r:\n%s" % (key, r.stderr)
    if line is not None:
        assert any(n == line for n, _ in hits), "error for %r not at line %d:\n%s" % (key, line, r.stderr)


# ------------------------------------------------------------------ CLI


def test_version(ferry_bin):
    r = h.run_ferry_cli(["--version"], binary=ferry_bin)
    assert r.returncode == 0
    assert r.stdout.strip() == "ferry " + h.project_version()


def test_help(ferry_bin):
    r = h.run_ferry_cli(["--help"], binary=ferry_bin)
    assert r.returncode == 0
    out = r.stdout + r.stderr
    assert "--check-config" in out and "-c" in out


def test_unknown_option_fails(ferry_bin):
    r = h.run_ferry_cli(["--no-such-option"], binary=ferry_bin)
    assert r.returncode != 0
    assert r.stderr.strip()


def test_missing_config_file(ferry_bin, tmp_path):
    path = str(tmp_path / "missing.toml")
    r = h.run_ferry_cli(["--check-config", "-c", path], binary=ferry_bin)
    assert r.returncode != 0
    assert path in r.stderr


# ------------------------------------------------------------------ --check-config, case by case
#
# Each case: a config (MINIMAL_CONFIG or FULL_CONFIG, edited) and what
# `ferry --check-config` must say about it: VALID, an ERROR naming KEY (at
# the line holding NEEDLE, when given), or its FIRST error at NEEDLE's line.
# SECRET_FILE in an edit stands for a readable secret file.

SECRET_FILE = "@SECRET_FILE@"

OTHER_COMPONENT = """
[components.other]
adapter = "webhook"
domain = "other.localhost"
secret = "s3cret2"

[components.other.endpoints.ops]
url = "http://127.0.0.1:9001/ops"
format = "slack"
token = "t0ken3"
deliver_to = ["bob@localhost"]
allow = ["localhost"]
"""


def replace(old, new):
    def edit(text):
        assert old in text, "the case edits text the config does not have: %r" % old
        return text.replace(old, new)
    return edit


def append(extra):
    return lambda text: text + extra


VALID = ("valid",)


def ERROR(key, needle=None):
    return ("error", key, needle)


def FIRST(needle):
    return ("first error at", needle)


CHECK_CONFIG_CASES = [
    # valid configs
    pytest.param(FULL_CONFIG, [], VALID, id="full_documented_config_is_valid"),
    pytest.param(MINIMAL_CONFIG, [], VALID, id="minimal_config_is_valid"),
    pytest.param(MINIMAL_CONFIG, [replace('secret = "s3cret"', 'secret_file = "%s"' % SECRET_FILE)],
                 VALID, id="secret_file_is_valid"),
    pytest.param(MINIMAL_CONFIG, [append(OTHER_COMPONENT)], VALID,
                 id="several_components_are_valid"),
    pytest.param(MINIMAL_CONFIG, [replace('level = "info"', 'level = "debug"\nformat = "json"')],
                 VALID, id="log_format_json_is_valid"),
    # invalid configs: the error names the key, at its line where it has one
    pytest.param(MINIMAL_CONFIG, [replace("port = 5347\n", "port = 5347\nprot = 5348\n")],
                 ERROR("prot", "prot = 5348"), id="unknown_key_in_xmpp"),
    pytest.param(MINIMAL_CONFIG, [replace('format = "json"\n', 'format = "json"\ncolour = "blue"\n')],
                 ERROR("colour", "colour ="), id="unknown_key_in_endpoint"),
    pytest.param(MINIMAL_CONFIG, [replace('adapter = "webhook"\n', 'adapter = "webhook"\nretries = 3\n')],
                 ERROR("retries", "retries ="), id="unknown_key_in_component"),
    pytest.param(MINIMAL_CONFIG, [append('\n[metrics]\nenabled = true\n')], ERROR("metrics"),
                 id="unknown_top_level_table"),
    pytest.param(MINIMAL_CONFIG, [replace('domain = "hooks.localhost"\n', "")], ERROR("domain"),
                 id="missing_domain"),
    pytest.param(MINIMAL_CONFIG, [replace('secret = "s3cret"\n', "")], ERROR("secret"),
                 id="missing_secret"),
    pytest.param(MINIMAL_CONFIG,
                 [replace('secret = "s3cret"\n', 'secret = "s3cret"\nsecret_file = "%s"\n' % SECRET_FILE)],
                 ERROR("secret"), id="secret_and_secret_file_both"),
    pytest.param(MINIMAL_CONFIG, [replace("port = 5347", 'port = "5347"')],
                 ERROR("port", 'port = "5347"'), id="wrong_type_port"),
] + [
    pytest.param(MINIMAL_CONFIG,
                 [replace('listen = "127.0.0.1:8480"\n', 'listen = "127.0.0.1:8480"\n%s = %s\n' % (key, value))],
                 ERROR(key, "%s =" % key), id="bad_http_limit-%s=%s" % (key, value))
    for key, value in [
        ("max_connections", "0"), ("max_connections", '"many"'), ("max_connections", "2000000"),
        ("max_connections_per_ip", "0"), ("max_connections_per_ip", "1.5"),
        ("request_timeout", "0"), ("request_timeout", "-1"), ("request_timeout", '"30s"'),
    ]
] + [
    pytest.param(MINIMAL_CONFIG,
                 [replace('deliver_to = ["alice@localhost"]', 'deliver_to = "alice@localhost"')],
                 ERROR("deliver_to", "deliver_to ="), id="wrong_type_deliver_to"),
    pytest.param(MINIMAL_CONFIG,
                 [replace('adapter = "webhook"\n', 'adapter = "webhook"\nmax_attempts = "ten"\n')],
                 ERROR("max_attempts", "max_attempts ="), id="wrong_type_max_attempts"),
    pytest.param(MINIMAL_CONFIG, [replace('format = "json"', 'format = "xml"')],
                 ERROR("format", 'format = "xml"'), id="bad_format_value"),
    pytest.param(MINIMAL_CONFIG, [replace('level = "info"', 'level = "loud"')],
                 ERROR("level", 'level = "loud"'), id="bad_log_level"),
    pytest.param(MINIMAL_CONFIG, [replace('adapter = "webhook"', 'adapter = "carrier-pigeon"')],
                 ERROR("adapter", "carrier-pigeon"), id="unknown_adapter"),
    pytest.param(MINIMAL_CONFIG, [append('\n[cluster]\ninstance = "web 1"\n')],
                 ERROR("instance", 'instance = "web 1"'), id="instance_name_with_a_space"),
    pytest.param(MINIMAL_CONFIG, [append('\n[cluster]\ninstance = ""\n')],
                 ERROR("instance", 'instance = ""'), id="empty_instance_name"),
    pytest.param(MINIMAL_CONFIG, [append('\n[cluster]\nslots = 0\n')],
                 ERROR("slots", "slots = 0"), id="zero_slots"),
    pytest.param(MINIMAL_CONFIG, [replace('adapter = "webhook"\n', 'adapter = "webhook"\nslots = 1001\n')],
                 ERROR("slots", "slots = 1001"), id="too_many_slots_for_a_component"),
    pytest.param(MINIMAL_CONFIG, [append('\n[cluster]\ninstance = "web-1.eu_west"\nslots = 2\n')],
                 VALID, id="cluster_instance_and_slots_are_valid"),
    # syntax errors: the first error is at the offending line
    pytest.param(MINIMAL_CONFIG,
                 [replace('public_url = "http://127.0.0.1:8480"', 'public_url = "http://127.0.0.1:8480')],
                 FIRST("public_url ="), id="toml_syntax_error_has_line"),
    pytest.param(MINIMAL_CONFIG, [replace('host = "127.0.0.1"\n', 'host = "127.0.0.1"\nhost = "127.0.0.2"\n')],
                 FIRST('host = "127.0.0.2"'), id="duplicate_key"),
]


@pytest.mark.parametrize("base,edits,expect", CHECK_CONFIG_CASES)
def test_check_config(ferry_bin, tmp_path, base, edits, expect):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    text = base
    for edit in edits:
        text = edit(text)
    text = text.replace(SECRET_FILE, str(secret))
    path = write(tmp_path, text)
    r = check(path, ferry_bin)
    if expect == VALID:
        assert r.returncode == 0, r.stderr
    elif expect[0] == "error":
        _, key, needle = expect
        assert_error(r, path, key, line_of(text, needle) if needle is not None else None)
    else:
        assert r.returncode != 0
        errs = error_lines(r.stderr, path)
        assert errs, r.stderr
        assert errs[0][0] == line_of(text, expect[1]), r.stderr


# ------------------------------------------------------------------ invalid configs, beyond one error


def test_all_errors_reported_at_once(ferry_bin, tmp_path):
    text = MINIMAL_CONFIG.replace("port = 5347\n", "port = 5347\nprot = 1\n") \
        .replace('format = "json"\n', 'format = "json"\ncolour = "blue"\n')
    path = write(tmp_path, text)
    r = check(path, ferry_bin)
    assert_error(r, path, "prot", line_of(text, "prot = 1"))
    assert_error(r, path, "colour", line_of(text, "colour ="))


def test_broken_component_with_bad_endpoint_does_not_crash(ferry_bin, tmp_path):
    text = """\
[xmpp]
host = "127.0.0.1"
port = 5347

[components.hooks]
adapter = "webhook"

[components.hooks.endpoints.alerts]
colour = 1
"""
    path = write(tmp_path, text)
    r = check(path, ferry_bin)
    assert_error(r, path, "domain")
    assert_error(r, path, "secret")


def test_run_refuses_bad_config(ferry_bin, tmp_path):
    """`ferry -c bad.toml` does not start: it prints the error and exits."""
    text = MINIMAL_CONFIG.replace("port = 5347\n", "port = 5347\nprot = 1\n")
    path = write(tmp_path, text)
    r = h.run_ferry_cli(["-c", path], binary=ferry_bin, timeout=10)
    assert not h.sanitizer_reports(r.stderr), r.stderr
    assert r.returncode > 0, r
    assert_error(r, path, "prot", line_of(text, "prot = 1"))


# ------------------------------------------------------------------ log format


def _run_briefly(testbed, ferry_bin, log, args=()):
    """Runs ferry (instance "tester-1") with nothing on its XMPP port (it
    logs connection failures), until it has logged a few lines, then
    SIGTERM."""
    http_port = h.free_port()
    cfg = h.ferry_config(h.free_port(), http_port, {"hooks": {
        "adapter": "webhook", "domain": "hooks.localhost", "secret": "s3cret",
        "endpoints": {"alerts": {"url": "http://127.0.0.1:9/x", "token": "t0ken",
                                 "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}}}, log=log,
                          cluster={"instance": "tester-1"})
    f = testbed.ferry(cfg, args=args, wait_up=False, http_port=http_port)
    h.wait_until(lambda: len(f.log_lines()) >= 3, 10, what="3 log lines")
    h.wait_until(lambda: f.healthz()[0] is not None, 10, what="/healthz answering")
    f.expect_exit = True
    rc = f.stop()
    assert rc == 0, f.report()
    return [l for l in f.log_lines() if l.strip()]


def test_text_log_lines(testbed, ferry_bin):
    lines = _run_briefly(testbed, ferry_bin, {"level": "debug", "format": "text"})
    bad = [l for l in lines if not h.LOG_LINE.match(l) or h.LOG_LINE.match(l).group(3) != "tester-1"]
    assert not bad, "lines not `TIMESTAMP LEVEL tester-1 [scope] message`:\n" + "\n".join(bad[:10])
    assert any(h.LOG_LINE.match(l).group(2).lower() == "debug" for l in lines)


def test_verbose_flag_means_debug(testbed, ferry_bin):
    lines = _run_briefly(testbed, ferry_bin, {"level": "error"}, args=["-v"])
    levels = {h.LOG_LINE.match(l).group(2).lower() for l in lines if h.LOG_LINE.match(l)}
    assert "debug" in levels, "\n".join(lines[:20])


def test_info_level_hides_debug(testbed, ferry_bin):
    lines = _run_briefly(testbed, ferry_bin, {"level": "info"})
    levels = {h.LOG_LINE.match(l).group(2).lower() for l in lines if h.LOG_LINE.match(l)}
    assert levels and "debug" not in levels, "\n".join(lines[:20])


def test_json_log_lines(testbed, ferry_bin):
    lines = _run_briefly(testbed, ferry_bin, {"level": "debug", "format": "json"})
    for l in lines:
        try:
            doc = json.loads(l)
        except ValueError:
            raise AssertionError("not a JSON log line: %r" % l)
        assert isinstance(doc, dict), l
        assert doc.get("instance") == "tester-1", l
