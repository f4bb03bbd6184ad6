"""Interop: the core and webhook scenarios against ejabberd 23.01 (Debian's
package) instead of Prosody.

One ejabberd for the module (its own config, spool and log folders, loopback
ports; about 1.5 s to start, 0.4 s per registered user), one ferry linked to
it as hooks.localhost, one webhook receiver. The restart test runs last: it
stops and starts the shared ejabberd.

If ejabberd is not installed, every test here fails and says so:
scripts/deps.sh installs it."""

import datetime
import re
import time

import pytest

import harness as h

DOMAIN = "hooks.localhost"
DOMAIN2 = "hooks2.localhost"      # configured in ejabberd; only the wrong-secret test uses it
ALERTS = "alerts@" + DOMAIN
SECRET = "ej-comp-secret-Ka71"
SECRET2 = "ej-comp-secret-Vb09"
TOKEN = "ej-tok-Rt55"

PING_INTERVAL = 1
PING_TIMEOUT = 2
EJ_AUTH_OK = "Accepted external component handshake authentication for " + DOMAIN


def component(recv, domain=DOMAIN, secret=SECRET, **extra):
    comp = {"adapter": "webhook", "domain": domain, "secret": secret, "retry_delay": 0.2,
            "retry_delay_max": 1.0, "timeout": 3.0,
            "endpoints": {"alerts": {"url": recv.url("/alerts"), "format": "json", "token": TOKEN,
                                     "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}}
    comp.update(extra)
    return comp


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    why = h.ejabberd_missing()
    if why:
        pytest.fail("cannot run the ejabberd interop tests: " + why, pytrace=False)
    tb = module_testbed
    e = h.Env()
    e.tb = tb
    e.ejabberd = tb.ejabberd(components={DOMAIN: SECRET, DOMAIN2: SECRET2}, offline=True,
                             users=[("alice", "localhost", "alicepw")])
    e.recv = tb.receiver()
    # Short pings: over the module, ejabberd must answer ferry's XEP-0199
    # pings (to its parent domain) or the link would be dropped.
    e.ferry = tb.linked_ferry(e.ejabberd, {"hooks": component(e.recv)},
                              xmpp={"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT}, timeout=30)
    e.started = time.monotonic()
    e.alice = tb.client("alice@localhost", "alicepw", e.ejabberd)
    return e


def post_text(ferry, text, token=TOKEN):
    return h.post_json(ferry.url("/hooks/hooks/alerts"), {"text": text}, token)


def children(el, ns, tag):
    return [c for c in el if c.tag == "{%s}%s" % (ns, tag)]


def assert_result(reply, client):
    assert reply.type == "result", reply
    assert reply.frm == DOMAIN, reply
    assert reply.to == client.full_jid, reply


# ------------------------------------------------------------------ link


def test_ferry_links_to_ejabberd(env):
    status, doc = env.ferry.healthz()
    assert status == 200, doc
    assert doc["components"]["hooks"]["link"] == "up", doc
    # ejabberd's logger writes a moment after the handshake: wait for it
    env.ejabberd.wait_log(EJ_AUTH_OK, timeout=5)


# ------------------------------------------------------------------ messages both ways


def test_xmpp_to_webhook(env):
    mid = env.alice.send_message(ALERTS, "hello from ejabberd", receipt=True)
    [req] = env.recv.wait("/alerts", 1, timeout=10, pred=lambda r: r.json().get("id") == mid)
    assert req.method == "POST"
    assert req.headers.get("content-type", "").startswith("application/json"), req.headers
    doc = req.json()
    assert doc["from"] == env.alice.full_jid, doc
    assert doc["to"] == ALERTS, doc
    assert doc["body"] == "hello from ejabberd", doc
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["timestamp"]), doc
    ts = datetime.datetime.strptime(doc["timestamp"][:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - ts).total_seconds()) < 60, doc
    receipt = env.alice.wait_message(lambda s: s.receipt_id == mid, timeout=10, what="receipt")
    assert receipt.frm.split("/")[0] == ALERTS, receipt


def test_webhook_to_xmpp(env):
    r = post_text(env.ferry, "hello to ejabberd")
    assert r.status == 202, r
    msg = env.alice.wait_message(lambda s: s.body == "hello to ejabberd", timeout=10)
    assert msg.frm.split("/")[0] == ALERTS, msg
    assert msg.type == "chat", msg
    assert post_text(env.ferry, "x", token="wrong").status == 401


def test_unknown_endpoint_item_not_found(env):
    mid = env.alice.send_message("nobody@" + DOMAIN, "anyone?")
    err = env.alice.wait_message(lambda s: s.id == mid and s.type == "error", timeout=10)
    assert err.error_condition == "item-not-found", err
    assert err.frm == "nobody@" + DOMAIN, err


# ------------------------------------------------------------------ what the core answers


def test_disco_info(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % h.NS_DISCO_INFO)
    assert_result(r, env.alice)
    q = r.find(h.NS_DISCO_INFO, "query")
    assert q is not None, r
    idents = [(i.get("category"), i.get("type")) for i in children(q, h.NS_DISCO_INFO, "identity")]
    assert ("gateway", "http-ws") in idents, r
    features = {f.get("var") for f in children(q, h.NS_DISCO_INFO, "feature")}
    for f in (h.NS_DISCO_INFO, h.NS_PING, h.NS_VERSION):
        assert f in features, (f, r)


def test_ping(env):
    assert_result(env.alice.iq(DOMAIN, "get", "<ping xmlns='%s'/>" % h.NS_PING), env.alice)


def test_version(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % h.NS_VERSION)
    assert_result(r, env.alice)
    q = r.find(h.NS_VERSION, "query")
    assert q is not None, r
    name = children(q, h.NS_VERSION, "name")
    assert name and name[0].text == "ferry", r


def test_unknown_iq_service_unavailable(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='urn:example:no-such-thing'/>")
    assert r.type == "error" and r.error_condition == "service-unavailable", r


# ------------------------------------------------------------------ wrong secret


def test_wrong_secret_logged_and_keeps_running(env):
    tb = env.tb
    f = tb.linked_ferry(env.ejabberd, {"second": component(env.recv, domain=DOMAIN2, secret="not-the-secret")},
                        wait_up=False, name="wrong-secret")
    f.wait_log("not-authorized", timeout=15)
    # ejabberd closes the socket after the stream error: ferry tries again
    # (backoff 1 s, then 2 s) and logs the reason again, without crashing.
    h.wait_until(lambda: len(re.findall("not-authorized", f.stderr(), re.I)) >= 2, 15,
                 what="a second not-authorized attempt")
    assert f.running(), f.report()
    status, doc = f.healthz()
    assert status == 503, doc
    assert doc["components"]["second"]["link"] != "up", doc
    f.stop()
    # the shared link was not disturbed
    assert env.ferry.healthz()[0] == 200


# ------------------------------------------------------------------ keepalive pings


def test_pings_answered_link_stays_up(env):
    """ferry pings every second and reconnects when an answer takes over
    2 s: after a few intervals the link is still the first one."""
    window = PING_INTERVAL * 2 + PING_TIMEOUT + 0.5
    remaining = window - (time.monotonic() - env.started)
    if remaining > 0:
        time.sleep(remaining)   # the observation window, not a wait for an event
    r, samples, _, _ = env.ferry.metrics()
    assert r.status == 200, r
    assert h.metric_value(samples, "ferry_link_up", component="hooks") == 1
    assert h.metric_value(samples, "ferry_link_reconnects_total", component="hooks") == 0, \
        env.ferry.report()
    assert env.ferry.healthz()[0] == 200


# ------------------------------------------------------------------ ejabberd restart (keep last)


def test_ejabberd_restart_reconnects_and_delivers_queued(env):
    ej, f = env.ejabberd, env.ferry
    # what was delivered before is acknowledged (ferry's ping barrier,
    # answered by ejabberd): it must not come again after the restart
    h.wait_until(lambda: f.healthz()[1]["components"]["hooks"]["pending"] == 0, 10,
                 what="nothing pending before the restart")
    before = {s.body for s in env.alice.messages(lambda s: s.body)}
    assert "hello to ejabberd" in before, before
    env.alice.close()
    ej.stop()
    f.wait_healthz(503, timeout=20)
    queued = ["ej queued %d" % i for i in range(1, 6)]
    for t in queued:
        r = post_text(f, t)
        assert r.status == 202, r
    off = ej.log_offset()
    ej.start()
    f.wait_healthz(200, timeout=40)
    ej.wait_log(EJ_AUTH_OK, timeout=5, offset=off)
    # alice logs in after the restart: what ferry sent before she was online
    # comes from ejabberd's offline storage, the rest live; in order either way.
    alice = env.tb.client("alice@localhost", "alicepw", ej)
    env.alice = alice
    alice.wait_message(lambda s: s.body == queued[-1], timeout=20, what="last queued message")
    got = [s.body for s in alice.messages(lambda s: (s.body or "").startswith("ej queued "))]
    assert got == queued
    again = [s.body for s in alice.messages(lambda s: s.body in before)]
    assert not again, "delivered again after the restart: %r" % again
    # and both directions work on the new link
    mid = alice.send_message(ALERTS, "after the restart")
    env.recv.wait("/alerts", 1, timeout=10, pred=lambda r: r.json().get("id") == mid)
    assert post_text(f, "inbound after the restart").status == 202
    alice.wait_message(lambda s: s.body == "inbound after the restart", timeout=10)
