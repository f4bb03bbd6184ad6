"""XMPP -> webhook: what the receiver gets, and what the XMPP sender sees
(receipts, error messages). One Prosody, one ferry, one receiver for the
module; each test uses its own stanza ids."""

import datetime
import re
import time

import pytest

import harness as h
from harness import Reply, jbody

SECRET = "comp-secret-Q7x2"
SIGNING = h.new_signing_secret()
DOMAIN = "hooks.localhost"
ALERTS = "alerts@" + DOMAIN


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.prosody = tb.prosody(vhosts=("localhost", "other.localhost"), components={DOMAIN: SECRET},
                           users=[("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw"),
                                  ("mallory", "other.localhost", "mallorypw")])
    e.recv = tb.receiver()
    refused_port = h.free_port()   # nothing listens there

    def ep(i, **kw):
        d = {"token": "tok-%d-Zr81" % i, "deliver_to": ["alice@localhost"]}
        d.update(kw)
        return d

    endpoints = {
        "alerts": ep(1, url=e.recv.url("/alerts"), format="json", allow=["alice@localhost", "localhost"]),
        "slack": ep(2, url=e.recv.url("/slack"), format="slack", allow=["localhost"]),
        "signed": ep(3, url=e.recv.url("/signed"), format="json", signing_secret=SIGNING, allow=["localhost"]),
        "flaky": ep(4, url=e.recv.url("/flaky"), format="json", signing_secret=SIGNING, allow=["localhost"]),
        "refused": ep(5, url="http://127.0.0.1:%d/nothing" % refused_port, format="json", allow=["localhost"]),
        "strict": ep(6, url=e.recv.url("/strict"), format="json", allow=["alice@localhost"]),
        "nourl": ep(7, allow=["localhost"]),
        "closed": ep(8, url=e.recv.url("/closed"), format="json"),      # no allow: nobody
    }
    comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "max_attempts": 3,
            "retry_delay": 0.2, "retry_delay_max": 1.0, "timeout": 1.0, "endpoints": endpoints}
    e.ferry = tb.linked_ferry(e.prosody, {"hooks": comp})
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody)
    e.bob = tb.client("bob@localhost", "bobpw", e.prosody)
    e.mallory = tb.client("mallory@other.localhost", "mallorypw", e.prosody)
    return e


def with_id(mid):
    return lambda r: jbody(r).get("id") == mid


def error_for(client, mid, timeout=15):
    return client.wait_message(lambda s: s.id == mid and s.type == "error", timeout=timeout,
                               what="error reply to %s" % mid)


def receipt_for(client, mid, timeout=15):
    return client.wait_message(lambda s: s.receipt_id == mid, timeout=timeout, what="receipt for %s" % mid)


def assert_swapped(err, client, to):
    assert err.frm == to, err
    assert err.to == client.full_jid, err


def parse_rfc3339_utc(ts):
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00:00)$", ts)
    assert m, "not an RFC 3339 UTC timestamp: %r" % ts
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def verify_signature(req):
    wid = req.headers.get("webhook-id")
    wts = req.headers.get("webhook-timestamp")
    wsig = req.headers.get("webhook-signature")
    assert wid and wts and wsig, "missing Standard Webhooks headers: %r" % req.headers
    assert re.match(r"^\d+$", wts), wts
    assert abs(int(wts) - time.time()) < 120, wts
    expected = h.standard_webhooks_signature(SIGNING, wid, wts, req.body)
    assert expected in wsig.split(" "), "signature %r, expected %r" % (wsig, expected)
    return wid


# ------------------------------------------------------------------ formats


def test_json_post(env):
    text = "hello <json> & \"quotes\" \u00fcn\u00efcode \u2713 \U0001F600\nsecond line"
    mid = env.alice.send_message(ALERTS, text)
    [req] = env.recv.wait("/alerts", 1, pred=with_id(mid))
    assert req.method == "POST"
    assert req.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    doc = req.json()
    assert doc["from"] == env.alice.full_jid
    assert doc["to"] == ALERTS
    assert doc["id"] == mid
    assert doc["body"] == text
    ts = parse_rfc3339_utc(doc["timestamp"])
    assert abs((ts - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 120
    assert "webhook-signature" not in req.headers


def test_message_without_type_is_posted(env):
    mid = env.alice.send_message(ALERTS, "typeless", mtype=None)
    [req] = env.recv.wait("/alerts", 1, pred=with_id(mid))
    assert req.json()["body"] == "typeless"


def test_normal_type_is_posted(env):
    mid = env.alice.send_message(ALERTS, "normal one", mtype="normal")
    [req] = env.recv.wait("/alerts", 1, pred=with_id(mid))
    assert req.json()["body"] == "normal one"


def test_slack_format(env):
    text = "slack <text> & \u2713"
    env.bob.send_message("slack@" + DOMAIN, text)
    [req] = env.recv.wait("/slack", 1, pred=lambda r: jbody(r).get("text") == text)
    assert req.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    doc = req.json()
    assert doc["username"] == "bob@localhost"


def test_signed_request(env):
    mid = env.alice.send_message("signed@" + DOMAIN, "sign me")
    [req] = env.recv.wait("/signed", 1, pred=with_id(mid))
    verify_signature(req)
    assert req.json()["body"] == "sign me"


def test_chat_state_alone_is_not_posted(env):
    env.recv.clear("/alerts")
    sid = env.alice.send_message(ALERTS, None, extra="<composing xmlns='%s'/>" % h.NS_CHATSTATES)
    mid = env.alice.send_message(ALERTS, "after the chat state",
                                 extra="<active xmlns='%s'/>" % h.NS_CHATSTATES)
    env.recv.wait("/alerts", 1, pred=with_id(mid))
    time.sleep(0.3)  # bounded grace for a stray request to show up
    reqs = env.recv.requests("/alerts")
    assert [jbody(r).get("id") for r in reqs] == [mid], reqs
    assert not env.alice.messages(lambda s: s.id == sid)


# ------------------------------------------------------------------ results


def test_receipt_after_delivery(env):
    plain = env.alice.send_message(ALERTS, "no receipt asked")
    env.recv.wait("/alerts", 1, pred=with_id(plain))
    mid = env.alice.send_message(ALERTS, "receipt please", receipt=True)
    env.recv.wait("/alerts", 1, pred=with_id(mid))
    rec = receipt_for(env.alice, mid)
    assert rec.frm.split("/")[0] == ALERTS
    assert rec.to == env.alice.full_jid
    assert not env.alice.messages(lambda s: s.receipt_id == plain)
    assert not env.alice.messages(lambda s: s.id in (plain, mid) and s.type == "error")


@pytest.mark.parametrize("status", [400, 404, 410])
def test_4xx_is_a_permanent_failure(env, status):
    env.recv.script("/flaky", [Reply(status, body=b"nope")])
    mid = env.alice.send_message("flaky@" + DOMAIN, "doomed %d" % status, receipt=True)
    err = error_for(env.alice, mid)
    assert_swapped(err, env.alice, "flaky@" + DOMAIN)
    assert str(status) in (err.error_text or ""), err
    assert len(env.recv.requests("/flaky", pred=with_id(mid))) == 1
    assert not env.alice.messages(lambda s: s.receipt_id == mid)


def test_500_then_200_is_delivered_once(env):
    env.recv.script("/flaky", [Reply(500), Reply(200)])
    mid = env.alice.send_message("flaky@" + DOMAIN, "try again", receipt=True)
    receipt_for(env.alice, mid)
    reqs = env.recv.requests("/flaky", pred=with_id(mid))
    assert len(reqs) == 2, reqs
    ids = [verify_signature(r) for r in reqs]
    assert ids[0] == ids[1], "the retry must carry the same webhook-id: %r" % ids
    assert reqs[0].body == reqs[1].body
    assert len(env.alice.messages(lambda s: s.receipt_id == mid)) == 1
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error")


@pytest.mark.parametrize("status", [502, 503, 408, 429])
def test_transient_status_is_retried(env, status):
    env.recv.script("/flaky", [Reply(status), Reply(200)])
    mid = env.alice.send_message("flaky@" + DOMAIN, "transient %d" % status, receipt=True)
    receipt_for(env.alice, mid)
    assert len(env.recv.requests("/flaky", pred=with_id(mid))) == 2
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error")


def test_retry_after_is_honoured(env):
    env.recv.script("/flaky", [Reply(503, {"Retry-After": "2"}), Reply(200)])
    mid = env.alice.send_message("flaky@" + DOMAIN, "later please", receipt=True)
    receipt_for(env.alice, mid, timeout=20)
    first, second = env.recv.requests("/flaky", pred=with_id(mid))
    gap = second.time - first.time
    assert gap >= 1.8, "retried %.2f s after a 503 with Retry-After: 2" % gap


def test_retries_exhausted_gives_error(env):
    env.recv.script("/flaky", [Reply(500), Reply(500), Reply(500)])
    mid = env.alice.send_message("flaky@" + DOMAIN, "never works", receipt=True)
    err = error_for(env.alice, mid, timeout=20)
    assert_swapped(err, env.alice, "flaky@" + DOMAIN)
    assert len(env.recv.requests("/flaky", pred=with_id(mid))) == 3   # max_attempts
    assert not env.alice.messages(lambda s: s.receipt_id == mid)


def test_timeout_is_retried(env):
    env.recv.script("/flaky", [Reply(200, delay=2.5), Reply(200)])   # timeout = 1.0
    mid = env.alice.send_message("flaky@" + DOMAIN, "slow receiver", receipt=True)
    receipt_for(env.alice, mid, timeout=20)
    assert len(env.recv.requests("/flaky", pred=with_id(mid))) == 2
    assert len(env.alice.messages(lambda s: s.receipt_id == mid)) == 1


def test_connection_refused_gives_error_after_retries(env):
    mid = env.alice.send_message("refused@" + DOMAIN, "nobody listens", receipt=True)
    err = error_for(env.alice, mid, timeout=20)
    assert_swapped(err, env.alice, "refused@" + DOMAIN)


# ------------------------------------------------------------------ errors


def test_unknown_endpoint_is_item_not_found(env):
    mid = env.alice.send_message("nobody@" + DOMAIN, "anyone?")
    err = error_for(env.alice, mid)
    assert_swapped(err, env.alice, "nobody@" + DOMAIN)
    assert err.error_condition == "item-not-found", err
    assert err.error_type == "cancel", err
    assert not env.recv.requests(pred=with_id(mid))


def test_sender_from_other_host_is_forbidden(env):
    mid = env.mallory.send_message(ALERTS, "let me in")
    err = error_for(env.mallory, mid)
    assert_swapped(err, env.mallory, ALERTS)
    assert err.error_condition == "forbidden", err
    assert not env.recv.requests(pred=with_id(mid))


def test_sender_not_listed_is_forbidden(env):
    mid = env.bob.send_message("strict@" + DOMAIN, "me too")
    err = error_for(env.bob, mid)
    assert_swapped(err, env.bob, "strict@" + DOMAIN)
    assert err.error_condition == "forbidden", err
    ok = env.alice.send_message("strict@" + DOMAIN, "listed")
    env.recv.wait("/strict", 1, pred=with_id(ok))
    assert not env.recv.requests("/strict", pred=with_id(mid))


def test_endpoint_without_allow_admits_nobody(env):
    mid = env.alice.send_message("closed@" + DOMAIN, "closed door")
    err = error_for(env.alice, mid)
    assert err.error_condition == "forbidden", err
    assert not env.recv.requests("/closed")


def test_endpoint_without_url_is_service_unavailable(env):
    mid = env.alice.send_message("nourl@" + DOMAIN, "nowhere to go")
    err = error_for(env.alice, mid)
    assert_swapped(err, env.alice, "nourl@" + DOMAIN)
    assert err.error_condition == "service-unavailable", err


def test_no_error_in_reply_to_an_error(env):
    ids = []
    for to in (ALERTS, "nobody@" + DOMAIN, "closed@" + DOMAIN):
        ids.append(env.mallory.send_message(
            to, "bounce", mtype="error",
            extra="<error type='cancel'><item-not-found xmlns='%s'/></error>" % h.NS_STANZAS))
    # Stanzas travel in order: once the ping is answered, any reply to the
    # error messages would have arrived.
    assert env.mallory.iq(DOMAIN, "get", "<ping xmlns='urn:xmpp:ping'/>").type == "result"
    assert not env.mallory.messages(lambda s: s.id in ids)
    assert not env.recv.requests(pred=lambda r: jbody(r).get("id") in ids)
