"""The component link and the process: wrong secret, unknown domain,
Prosody down/restarted/frozen, durable inbound vs. the bounded in-memory
queue, signals, reload, many descriptors,
oversized stanzas, secrets kept out of the log.

Tests that leave Prosody running share one (debug log, to see how streams
end); tests that stop or freeze Prosody get their own."""

import json
import os
import re
import resource
import signal
import threading
import time

import pytest

import harness as h
from harness import Reply

DOMAIN = "hooks.localhost"
DOMAIN2 = "hooks2.localhost"
ALERTS = "alerts@" + DOMAIN
SECRET = "comp-secret-Nf31-zq"
SECRET2 = "comp-secret-Jp82-xk"
TOKEN = "tok-alerts-Ub27-mv"
GH_SECRET = "gh-secret-Ws64-ty"
SIGNING = h.new_signing_secret()

AUTH_OK = "External component successfully authenticated"
COMPONENT_CONN = "Incoming Jabber component connection"


@pytest.fixture(scope="module")
def shared(module_testbed):
    return module_testbed.prosody(components={DOMAIN: SECRET, DOMAIN2: SECRET2}, log_level="debug",
                                  users=[("alice", "localhost", "alicepw")])


def component(recv, secret=SECRET, domain=DOMAIN, url_path="/alerts", **extra):
    alerts = {"url": recv.url(url_path), "format": "json", "token": TOKEN,
              "deliver_to": ["alice@localhost"], "allow": ["localhost"]}
    comp = {"adapter": "webhook", "domain": domain, "secret": secret, "retry_delay": 0.2,
            "retry_delay_max": 1.0, "timeout": 2.0, "endpoints": {"alerts": alerts}}
    comp.update(extra)
    return comp


def config(prosody, http_port, comps, **kw):
    return h.ferry_config(prosody.component_port, http_port, comps, **kw)


def post_text(ferry, text, token=TOKEN, path="/hooks/hooks/alerts"):
    return h.post_json(ferry.url(path), {"text": text}, token)


def outbound(alice, recv, text, path="/alerts", timeout=10):
    mid = alice.send_message(ALERTS, text)
    recv.wait(path, 1, timeout=timeout, pred=lambda r: r.json().get("id") == mid)
    return mid


def inbound(ferry, alice, text, timeout=10):
    r = post_text(ferry, text)
    assert r.status == 202, r
    alice.wait_message(lambda s: s.body == text, timeout=timeout, what="inbound %r" % text)


def round_trip(ferry, alice, recv, tag):
    outbound(alice, recv, "out " + tag)
    inbound(ferry, alice, "in " + tag)


def index_after(text, needle, start=0):
    i = text.find(needle, start)
    return None if i < 0 else i


# ------------------------------------------------------------------ bad link


def test_wrong_secret_keeps_running_without_spinning(testbed, shared):
    recv = testbed.receiver()
    off = shared.log_offset()
    f = testbed.linked_ferry(shared, {"hooks": component(recv, secret="not-the-secret")}, wait_up=False)
    f.wait_log("not-authorized", timeout=10)
    time.sleep(5)   # the observation window: count attempts over ~5 s
    attempts = shared.log_count(COMPONENT_CONN, off)
    assert 1 <= attempts <= 10, "%d connection attempts in ~5 s" % attempts
    assert shared.log_count(AUTH_OK, off) == 0
    assert f.running(), f.report()
    assert f.healthz()[0] == 503


def test_unknown_domain_logs_host_unknown(testbed, shared):
    recv = testbed.receiver()
    f = testbed.linked_ferry(shared, {"hooks": component(recv, domain="nowhere.localhost")}, wait_up=False)
    f.wait_log("host-unknown", timeout=10)
    assert f.running(), f.report()
    assert f.healthz()[0] == 503


def test_one_component_down_other_works(testbed, shared):
    recv = testbed.receiver()
    comps = {"hooks": component(recv),
             "second": component(recv, secret="wrong-one", domain=DOMAIN2, url_path="/second")}
    f = testbed.linked_ferry(shared, comps, wait_up=False)
    f.wait_log("not-authorized", timeout=10)
    h.wait_until(lambda: (f.healthz()[1] or {}).get("components", {}).get("hooks", {}).get("link") == "up",
                 10, what="component hooks up in /healthz")
    status, doc = f.healthz()
    assert status == 503, doc
    assert doc["components"]["second"]["link"] != "up", doc
    alice = testbed.client("alice@localhost", "alicepw", shared)
    round_trip(f, alice, recv, "one-down")


def test_healthz_503_until_prosody_is_up(testbed):
    p = testbed.prosody(start=False, components={DOMAIN: SECRET}, users=[("alice", "localhost", "alicepw")])
    recv = testbed.receiver()
    f = testbed.linked_ferry(p, {"hooks": component(recv)}, wait_up=False)
    t0 = time.monotonic()
    h.wait_until(lambda: f.healthz()[0] is not None, 10, what="/healthz answering")
    assert f.healthz()[0] == 503
    f.wait_log("refused", timeout=10)
    time.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
    refused = [l for l in f.log_lines() if re.search("refused", l, re.I)]
    assert 2 <= len(refused) <= 6, "connection attempts in the first 4 s (backoff from 1 s):\n" + "\n".join(refused)
    assert f.healthz()[0] == 503
    p.start()
    f.wait_healthz(200, timeout=30)
    assert f.healthz()[1]["components"]["hooks"]["link"] == "up"
    alice = testbed.client("alice@localhost", "alicepw", p)
    round_trip(f, alice, recv, "late-prosody")


# ------------------------------------------------------------------ Prosody restarts


def _stop_prosody_and_wait_down(p, f):
    p.stop()
    f.wait_healthz(503, timeout=15)


def test_prosody_restart_delivers_queued_in_order(testbed):
    p = testbed.prosody(components={DOMAIN: SECRET}, offline=True, users=[("alice", "localhost", "alicepw")])
    recv = testbed.receiver()
    f = testbed.linked_ferry(p, {"hooks": component(recv)})
    alice = testbed.client("alice@localhost", "alicepw", p)
    round_trip(f, alice, recv, "before")
    alice.close()
    _stop_prosody_and_wait_down(p, f)
    queued = ["queued %d" % i for i in range(1, 6)]
    for t in queued:
        r = post_text(f, t)
        assert r.status == 202, r
    off = p.log_offset()
    p.start()
    f.wait_healthz(200, timeout=30)
    assert AUTH_OK in p.log_text(off)
    alice = testbed.client("alice@localhost", "alicepw", p)
    alice.wait_message(lambda s: s.body == queued[-1], timeout=15, what="last queued message")
    got = [s.body for s in alice.messages(lambda s: (s.body or "").startswith("queued "))]
    assert got == queued
    round_trip(f, alice, recv, "after")
    assert f.running()


def _metric(f, name, **labels):
    r, samples, _, _ = f.metrics()
    assert r.status == 200, r
    vals = h.metric_values(samples, name, **labels)
    return vals[0] if len(vals) == 1 else None


def test_inbound_while_down_is_durable_beyond_queue_size(testbed):
    """What is POSTed while Prosody is down is stored (202), never dropped
    (even far beyond xmpp.queue_size, which bounds only the in-memory queue),
    and arrives in order once Prosody is back."""
    p = testbed.prosody(components={DOMAIN: SECRET}, offline=True, users=[("alice", "localhost", "alicepw")])
    recv = testbed.receiver()
    f = testbed.linked_ferry(p, {"hooks": component(recv)}, xmpp={"queue_size": 2})
    _stop_prosody_and_wait_down(p, f)
    off = f.stderr_offset()
    posted = ["durable %d" % i for i in range(1, 9)]
    for t in posted:
        r = post_text(f, t)
        assert r.status == 202, r
    assert f.healthz()[1]["components"]["hooks"]["pending"] == len(posted)
    p.start()
    f.wait_healthz(200, timeout=30)
    # All of them acknowledged by Prosody (ping barrier) before alice logs
    # in: she gets them from offline storage, in order.
    h.wait_until(lambda: _metric(f, "ferry_messages_total", component="hooks", direction="to_xmpp",
                                 outcome="delivered") == len(posted), 15,
                 what="%d messages delivered to XMPP" % len(posted))
    alice = testbed.client("alice@localhost", "alicepw", p)
    alice.wait_message(lambda s: s.body == posted[-1], timeout=15, what="last posted message")
    got = [s.body for s in alice.messages(lambda s: (s.body or "").startswith("durable "))]
    assert got == posted
    assert _metric(f, "ferry_link_dropped_total", component="hooks") == 0
    assert not re.search("drop", f.stderr(off), re.I), f.stderr(off)
    assert f.healthz()[1]["components"]["hooks"]["pending"] == 0


def test_queue_size_bounds_non_durable_stanzas(testbed):
    """xmpp.queue_size bounds the in-memory queue of what is not stored
    (receipts, error replies, presence answers) while the link is down: the
    oldest are dropped, counted and logged. Here: 4 messages asking for
    receipts, their deliveries finish while Prosody is down, queue_size = 2:
    alice gets the receipts of the newest 2 only.

    The receiver holds its answers until Prosody is down (a gate, not a
    timed delay), so every receipt is produced while the link is down."""
    p = testbed.prosody(components={DOMAIN: SECRET}, offline=True, users=[("alice", "localhost", "alicepw")])
    recv = testbed.receiver()
    gate = threading.Event()
    recv.script("/alerts", [Reply(200, body=b'{"ok":true}', gate=gate, gate_timeout=60)] * 4)
    f = testbed.linked_ferry(p, {"hooks": component(recv, timeout=90.0)}, xmpp={"queue_size": 2})
    try:
        alice = testbed.client("alice@localhost", "alicepw", p)
        mids = [alice.send_message(ALERTS, "wants a receipt %d" % i, receipt=True) for i in range(1, 5)]
        recv.wait("/alerts", 1, pred=lambda r: r.json().get("id") == mids[0])   # held at the gate
        h.wait_until(lambda: (f.healthz()[1] or {}).get("components", {}).get("hooks", {}).get("pending") == 4,
                     10, what="all 4 messages stored")
        alice.close()
        _stop_prosody_and_wait_down(p, f)
        off = f.stderr_offset()
    finally:
        gate.set()
    reqs = recv.wait("/alerts", 4, timeout=15, pred=lambda r: r.json().get("id") in mids)
    assert [r.json()["id"] for r in reqs] == mids, "delivered out of order"
    h.wait_until(lambda: _metric(f, "ferry_link_dropped_total", component="hooks") == 2
                 and _metric(f, "ferry_link_queued", component="hooks") == 2, 10,
                 what="2 receipts dropped, 2 queued")
    assert f.healthz()[0] == 503, "the link came back too early: the test did not test anything"
    drops = re.findall(r".*drop.*", f.stderr(off), re.I)
    assert len(drops) >= 1 and any("oldest" in l for l in drops), f.stderr(off)

    p.start()
    f.wait_healthz(200, timeout=30)
    h.wait_until(lambda: _metric(f, "ferry_link_queued", component="hooks") == 0, 10,
                 what="the queue flushed after the handshake")
    # A durable message written after the flush: Prosody handles a
    # component's stanzas in order, so once alice has it, any receipt that
    # was going to reach her is here.
    assert post_text(f, "marker after the flush").status == 202
    alice = testbed.client("alice@localhost", "alicepw", p)
    alice.wait_message(lambda s: s.body == "marker after the flush", timeout=15, what="marker")
    for mid in mids[2:]:
        alice.wait_message(lambda s, mid=mid: s.receipt_id == mid, timeout=5, what="receipt for %s" % mid)
    receipts = [s.receipt_id for s in alice.messages(lambda s: s.receipt_id in mids)]
    assert receipts == mids[2:], receipts
    assert f.running()


@pytest.mark.parametrize("interval,timeout", [(2, 1), (1, 2)], ids=["timeout<interval", "timeout>interval"])
def test_frozen_server_detected_by_ping(testbed, interval, timeout):
    """A server that stops answering (SIGSTOP) is noticed: no answer to a
    ping within ping_timeout seconds => link down, then reconnect."""
    p = testbed.prosody(components={DOMAIN: SECRET}, users=[("alice", "localhost", "alicepw")])
    recv = testbed.receiver()
    f = testbed.linked_ferry(p, {"hooks": component(recv)},
                             xmpp={"ping_interval": interval, "ping_timeout": timeout, "keepalive_interval": 1})
    p.pause()
    try:
        t0 = time.monotonic()
        f.wait_healthz(503, timeout=interval + timeout + 5)
        assert time.monotonic() - t0 < interval + timeout + 3
    finally:
        p.resume()
    f.wait_healthz(200, timeout=30)
    alice = testbed.client("alice@localhost", "alicepw", p)
    round_trip(f, alice, recv, "after-freeze")


# ------------------------------------------------------------------ signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop(testbed, shared, sig):
    recv = testbed.receiver()
    f = testbed.linked_ferry(shared, {"hooks": component(recv)})
    alice = testbed.client("alice@localhost", "alicepw", shared)
    off = shared.log_offset()
    text = "last words %s" % sig.name
    assert post_text(f, text).status == 202
    f.expect_exit = True
    t0 = time.monotonic()
    f.signal(sig)
    rc = f.wait_exit(5.0)
    elapsed = time.monotonic() - t0
    assert rc is not None, "ferry still running 5 s after %s" % sig.name
    assert rc == 0, "exit status %s after %s" % (rc, sig.name)
    assert elapsed < 5.0
    alice.wait_message(lambda s: s.body == text, timeout=5, what="message accepted before the signal")
    shared.wait_log("component disconnected: " + DOMAIN, timeout=5, offset=off)
    assert "Received </stream:stream>" in shared.log_text(off), "no </stream:stream> from ferry:\n" + \
        h.tail_text(shared.log_text(off), 20)


def test_sighup_reloads_without_dropping_link(testbed, shared):
    recv = testbed.receiver()
    f = testbed.linked_ferry(shared, {"hooks": component(recv, url_path="/old")})
    alice = testbed.client("alice@localhost", "alicepw", shared)
    outbound(alice, recv, "to the old url", path="/old")
    debug_before = [l for l in f.log_lines() if (h.LOG_LINE.match(l) or [None] * 3)[2] in ("debug", "DEBUG")]
    assert not debug_before, "debug lines at level info:\n" + "\n".join(debug_before[:5])

    poff = shared.log_offset()
    foff = f.stderr_offset()
    f.write_config(config(shared, f.http_port, {"hooks": component(recv, url_path="/new")}, log={"level": "debug"}))
    f.signal(signal.SIGHUP)
    switched = None
    deadline = time.monotonic() + 10
    for _ in range(20):
        mid = alice.send_message(ALERTS, "which url?")
        reqs = recv.wait(None, 1, timeout=3, pred=lambda r, mid=mid: r.json().get("id") == mid)
        if reqs[0].path == "/new":
            switched = mid
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert switched, "messages still go to the old url after SIGHUP:\n" + f.stderr(foff)
    mid = outbound(alice, recv, "after reload", path="/new")
    assert not recv.requests("/old", pred=lambda r: r.json().get("id") == mid)
    inbound(f, alice, "inbound after reload")

    after = f.log_lines(foff)
    assert any((h.LOG_LINE.match(l) or [None] * 3)[2] in ("debug", "DEBUG") for l in after), \
        "no debug lines after reloading with level = debug:\n" + "\n".join(after[:20])
    plog = shared.log_text(poff)
    assert COMPONENT_CONN not in plog and "component disconnected" not in plog, \
        "the link was dropped by the reload:\n" + h.tail_text(plog, 20)
    assert f.healthz()[0] == 200
    assert f.running()


def test_sighup_with_broken_config_keeps_running(testbed, shared):
    recv = testbed.receiver()
    f = testbed.linked_ferry(shared, {"hooks": component(recv, url_path="/old")})
    alice = testbed.client("alice@localhost", "alicepw", shared)
    outbound(alice, recv, "before the broken reload", path="/old")
    poff = shared.log_offset()
    foff = f.stderr_offset()
    broken = config(shared, f.http_port, {"hooks": component(recv, url_path="/new")}).replace(
        'format = "json"', 'format = "json"\ncolour = "blue"')
    f.write_config(broken)
    f.signal(signal.SIGHUP)
    f.wait_log(re.escape(f.config_path) + r":\d+: .*colour", timeout=10, offset=foff)
    assert f.running(), f.report()
    outbound(alice, recv, "still the old url", path="/old")
    inbound(f, alice, "inbound after the broken reload")
    plog = shared.log_text(poff)
    assert COMPONENT_CONN not in plog and "component disconnected" not in plog, h.tail_text(plog, 20)
    assert not recv.requests("/new")


# ------------------------------------------------------------------ limits


def test_more_than_1024_descriptors(testbed, shared):
    recv = testbed.receiver()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    assert want > 1200, "RLIMIT_NOFILE hard limit too low for this test: %s" % hard

    def raise_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))   # to open 1100 here
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        f = testbed.linked_ferry(shared, {"hooks": component(recv)}, pass_fds=fds, preexec_fn=raise_limit)
    finally:
        for fd in fds:
            os.close(fd)
    alice = testbed.client("alice@localhost", "alicepw", shared)
    round_trip(f, alice, recv, "many-fds")

    def high_sockets():
        out = []
        for name in os.listdir("/proc/%d/fd" % f.pid):
            try:
                if int(name) > 1024 and os.readlink("/proc/%d/fd/%s" % (f.pid, name)).startswith("socket:"):
                    out.append(int(name))
            except OSError:
                pass
        return out

    assert high_sockets(), "ferry has no socket above descriptor 1024: the test did not test anything"
    for i in range(3):
        round_trip(f, alice, recv, "many-fds-%d" % i)
    assert f.healthz()[0] == 200


def test_oversized_stanza_does_not_crash(testbed, shared):
    recv = testbed.receiver()
    f = testbed.linked_ferry(shared, {"hooks": component(recv)}, xmpp={"max_stanza_size": 4096})
    alice = testbed.client("alice@localhost", "alicepw", shared)
    outbound(alice, recv, "small before")
    off = shared.log_offset()
    big = alice.send_message(ALERTS, "B" * 10000)
    shared.wait_log("policy-violation", timeout=10, offset=off)
    pv = shared.log_text(off).find("policy-violation")
    h.wait_until(lambda: AUTH_OK in shared.log_text(off)[pv:], 20, what="ferry to link again")
    assert f.running(), f.report()
    # A small message goes through once the link is back (ones sent before
    # that bounce with an error from Prosody, so try again, bounded).
    delivered = False
    for i in range(20):
        mid = alice.send_message(ALERTS, "small after %d" % i)
        try:
            recv.wait("/alerts", 1, timeout=2, pred=lambda r, mid=mid: r.json().get("id") == mid)
            delivered = True
            break
        except TimeoutError:
            continue
    assert delivered, f.report()
    assert not recv.requests(pred=lambda r: r.json().get("id") == big)
    f.wait_healthz(200, timeout=10)


# ------------------------------------------------------------------ secrets


def test_secrets_never_logged(testbed, shared):
    recv = testbed.receiver()
    comp = component(recv)
    comp["endpoints"]["alerts"].update({"signing_secret": SIGNING, "github_secret": GH_SECRET})
    f = testbed.linked_ferry(shared, {"hooks": comp}, args=["-v"])
    alice = testbed.client("alice@localhost", "alicepw", shared)
    round_trip(f, alice, recv, "secret-check")
    mid = alice.send_message(ALERTS, "signed", receipt=True)
    alice.wait_message(lambda s: s.receipt_id == mid, what="receipt")
    body = json.dumps({"text": "from github"})
    r = h.http_request("POST", f.url("/hooks/hooks/alerts"), body,
                       {"Content-Type": "application/json", "X-Hub-Signature-256": h.github_signature(GH_SECRET, body)})
    assert r.status == 202, r
    alice.wait_message(lambda s: s.body == "from github")
    assert post_text(f, "bad", token=TOKEN + "x").status == 401
    f.signal(signal.SIGHUP)
    inbound(f, alice, "after hup")
    f.stop()
    log = f.stderr()
    assert any((h.LOG_LINE.match(l) or [None] * 3)[2] in ("debug", "DEBUG") for l in log.splitlines()), \
        "-v gave no debug lines"
    for name, value in [("component secret", SECRET), ("token", TOKEN), ("signing secret", SIGNING),
                        ("signing key", SIGNING[len("whsec_"):]), ("github secret", GH_SECRET)]:
        assert value not in log, "the %s appears in ferry's log" % name
