"""The demo a new user runs first: `scripts/demo.sh --check` with the ferry under test
(FERRY_BIN) starts Prosody, the webhook receiver, ngircd with the IRC bot, the SMS sandbox and
ferry, sends one message each way through each adapter, and stops everything; it must exit 0
with one "check ok:" line per adapter and direction, and leave no process behind."""

import os
import re
import signal
import subprocess

import harness as h

DEMO = os.path.join(h.REPO_ROOT, "scripts", "demo.sh")

CHECKS = [
    ("webhook", "XMPP -> HTTP receiver"),
    ("webhook", "HTTP POST -> XMPP user"),
    ("irc", "XMPP -> IRC channel (bot saw it)"),
    ("irc", "IRC bot -> XMPP room occupant"),
    ("sms", "XMPP -> SMS sandbox"),
    ("sms", "inbound SMS -> XMPP user"),
]


def run_demo(env):
    """Runs `scripts/demo.sh --check --no-build` in a session of its own (bounded); returns
    (exit status, output, pids left in that session)."""
    proc = subprocess.Popen(["bash", DEMO, "--check", "--no-build"], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            h.stop_process(proc)
    left = session_members(proc.pid)
    for pid in left:          # what the demo failed to stop: stopped here, then reported
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, out, left


def session_members(sid):
    """Pids of the processes in session SID (field 6 of /proc/PID/stat)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            found.append(int(pid))
    return found


def test_demo_check_passes_for_all_three_adapters(ferry_bin, tmp_path):
    rc, out, left = run_demo(dict(os.environ, FERRY=ferry_bin, TMPDIR=str(tmp_path)))
    assert rc == 0, "demo.sh --check failed (exit %d):\n%s" % (rc, h.tail_text(out, 80))
    for adapter, what in CHECKS:
        line = re.compile(r"^check ok:\s+%s\s+%s" % (re.escape(adapter), re.escape(what)), re.M)
        assert line.search(out), "no 'check ok: %s %s' line:\n%s" % (adapter, what, out)
    assert "check FAIL" not in out
    assert "ferry stopped cleanly on SIGTERM" in out
    assert "check passed: webhook, IRC and SMS" in out
    # Everything it started is stopped, and its temp dir is gone after a success.
    assert left == [], "processes left running by the demo: %r" % left
    assert [p for p in os.listdir(str(tmp_path)) if p.startswith("ferry-demo-check")] == []


WRONG_ACCOUNT = """#!/bin/bash
# ferry, with a gateway.toml whose Twilio account SID the demo's sandbox does not know
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ ${args[i]} == -c ]]; then
        sed 's/^account_sid = "AC/account_sid = "AC0000/' "${args[i+1]}" >"${args[i+1]}.wrong"
        args[i+1]=${args[i+1]}.wrong
    fi
done
exec %s "${args[@]}"
"""


def test_demo_check_fails_when_a_check_fails(ferry_bin, tmp_path):
    """A ferry whose SMS account the sandbox refuses (401): the SMS check fails with the error
    alice got, the other checks still pass, the exit status is not 0, the logs are kept."""
    wrapper = tmp_path / "ferry-wrong-account"
    wrapper.write_text(WRONG_ACCOUNT % ferry_bin)
    wrapper.chmod(0o755)
    rc, out, left = run_demo(dict(os.environ, FERRY=str(wrapper), TMPDIR=str(tmp_path)))
    assert rc != 0, out
    fail = re.search(r"^check FAIL: sms\s+XMPP -> SMS sandbox: .*", out, re.M)
    assert fail, out
    assert "20003" in fail.group(0) or "Authenticate" in fail.group(0), fail.group(0)
    for adapter, what in CHECKS:
        if (adapter, what) != ("sms", "XMPP -> SMS sandbox"):
            assert re.search(r"^check ok:\s+%s\s+%s" % (re.escape(adapter), re.escape(what)), out, re.M), out
    assert "logs kept in" in out
    assert left == [], "processes left running by the demo: %r" % left
