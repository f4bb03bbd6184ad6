"""SMS adapter (issue 4): XMPP <-> SMS through Twilio or Telnyx, against
local stand-ins of both providers (fake_providers.py).

Part 1, no ferry needed: the fakes themselves (Twilio's published signature
example, authentication, documented JSON, failure scripting, webhook
signatures).

Part 2, end to end: a real Prosody, ferry with an [components.sms] table, a
fake provider and slixmpp clients. The module's env fixture runs each test
once per provider (twilio, telnyx); tests that need another configuration
(rate limit) start their own. Every test uses its own destination numbers,
so that one test's retries never hold up another's conversation.

Evidence on failure: ferry's and Prosody's log tails (conftest), and the
fake's last requests (in the assertion messages)."""

import itertools
import json
import os
import re
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import pytest

import fake_providers as fp
import harness as h

DOMAIN = "sms.localhost"
SECRET = "s3cret"
COMPONENT = "sms"

ALICE_NUM = "+15550001111"     # configured for alice@localhost
BOB_NUM = "+15550001112"       # configured for bob@localhost
DAVE_NUM = "+15550002222"      # owned by the account, free: dave registers it
SPARE_NUM = "+15550002299"     # owned by the account, free
NOT_OWNED = "+15550003333"     # not the account's
OWNED = [ALICE_NUM, BOB_NUM, DAVE_NUM, SPARE_NUM]

NS_REGISTER = "jabber:iq:register"
NS_GATEWAY = "jabber:iq:gateway"
NS_DATA = "jabber:x:data"
NS_OOB = "jabber:x:oob"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"

USERS = ["alice", "bob", "carol", "dave", "erin"]

_dest = itertools.count(1)


def new_dest():
    """A fresh destination number: its own conversation in the outbox."""
    return "+1555%07d" % (2000000 + next(_dest))


def num_jid(number):
    return "%s@%s" % (number, DOMAIN)


def bare(jid):
    return (jid or "").split("/")[0]


def new_tag():
    return "t%s" % uuid.uuid4().hex[:10]


# ================================================================ part 1: the fakes alone


TWILIO_DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
                     "From": "+12349013030", "To": "+18005551212"}
TWILIO_DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="   # Twilio's "Webhooks security" example


def test_fake_twilio_signature_matches_documented_example():
    assert fp.twilio_signature("12345", TWILIO_DOC_URL, TWILIO_DOC_PARAMS) == TWILIO_DOC_SIGNATURE
    # Order of the parameters as given does not matter (they are sorted)...
    shuffled = list(reversed(list(TWILIO_DOC_PARAMS.items())))
    assert fp.twilio_signature("12345", TWILIO_DOC_URL, shuffled) == TWILIO_DOC_SIGNATURE
    # ... but every part of the input does.
    assert fp.twilio_signature("12346", TWILIO_DOC_URL, TWILIO_DOC_PARAMS) != TWILIO_DOC_SIGNATURE
    assert fp.twilio_signature("12345", TWILIO_DOC_URL.replace("bar=2", "bar=3"),
                               TWILIO_DOC_PARAMS) != TWILIO_DOC_SIGNATURE
    assert fp.twilio_signature("12345", TWILIO_DOC_URL, dict(TWILIO_DOC_PARAMS, Digits="9")) \
        != TWILIO_DOC_SIGNATURE


@pytest.fixture
def fake_twilio():
    f = fp.FakeTwilio(numbers=[ALICE_NUM, DAVE_NUM])
    yield f
    f.close()


@pytest.fixture
def fake_telnyx():
    f = fp.FakeTelnyx(numbers=[ALICE_NUM, DAVE_NUM])
    yield f
    f.close()


def twilio_post(f, form, auth=None):
    return h.http_request("POST", f.url + "/2010-04-01/Accounts/%s/Messages.json" % f.account_sid,
                          urllib.parse.urlencode(form),
                          {"Content-Type": "application/x-www-form-urlencoded",
                           **({"Authorization": auth} if auth else {})})


def test_fake_twilio_send_auth_and_json(fake_twilio):
    f = fake_twilio
    form = [("To", "+15551234567"), ("From", ALICE_NUM), ("Body", "hi & bye"),
            ("StatusCallback", "http://127.0.0.1:9/sms/sms/status")]
    for auth in (None, f.basic_auth(token="wrong"), "Bearer " + f.auth_token):
        r = twilio_post(f, form, auth)
        assert r.status == 401, r
        assert r.json() == {"code": 20003, "message": "Authenticate",
                            "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}
    r = twilio_post(f, form, f.basic_auth())
    assert r.status == 201, r
    doc = r.json()
    assert re.match(r"^SM[0-9a-f]{32}$", doc["sid"]), doc
    assert doc["status"] == "queued" and doc["to"] == "+15551234567" and doc["from"] == ALICE_NUM
    assert doc["body"] == "hi & bye" and doc["account_sid"] == f.account_sid
    assert doc["direction"] == "outbound-api" and doc["api_version"] == "2010-04-01"
    assert doc["uri"] == "/2010-04-01/Accounts/%s/Messages/%s.json" % (f.account_sid, doc["sid"])
    [req] = f.sends(lambda r: r.status == 201)
    assert req.field("Body") == "hi & bye" and f.message(doc["sid"])["_status_callback"].endswith("/status")
    # MMS: repeatable MediaUrl, MM sid
    r = twilio_post(f, [("To", "+15551234567"), ("From", ALICE_NUM), ("MediaUrl", "https://e.x/a.jpg"),
                        ("MediaUrl", "https://e.x/b.jpg")], f.basic_auth())
    assert r.status == 201 and r.json()["sid"].startswith("MM") and r.json()["num_media"] == "2", r
    # Twilio's validation
    for form, code in [([("To", "5551234567"), ("From", ALICE_NUM), ("Body", "x")], 21211),
                       ([("To", "+15551234567"), ("From", NOT_OWNED), ("Body", "x")], 21606),
                       ([("To", "+15551234567"), ("From", ALICE_NUM)], 21602),
                       ([("From", ALICE_NUM), ("Body", "x")], 21604),
                       ([("To", "+15551234567"), ("From", ALICE_NUM), ("Body", "x" * 1601)], 21617)]:
        r = twilio_post(f, form, f.basic_auth())
        assert r.status == 400 and r.json()["code"] == code and r.json()["status"] == 400, (form, r)


def test_fake_twilio_incoming_numbers(fake_twilio):
    f = fake_twilio
    base = f.url + "/2010-04-01/Accounts/%s/IncomingPhoneNumbers.json" % f.account_sid

    def get(q, auth=True):
        return h.http_request("GET", base + "?" + q, headers={"Authorization": f.basic_auth()} if auth else {})

    assert get("PhoneNumber=%2B15550002222", auth=False).status == 401
    r = get("PhoneNumber=%2B15550002222")
    assert r.status == 200, r
    doc = r.json()
    assert [n["phone_number"] for n in doc["incoming_phone_numbers"]] == [DAVE_NUM]
    assert doc["page"] == 0 and doc["next_page_uri"] is None and "uri" in doc
    assert doc["incoming_phone_numbers"][0]["sid"].startswith("PN")
    assert get("PhoneNumber=%2B15550003333").json()["incoming_phone_numbers"] == []
    # Twilio matches partial numbers: a prefix finds the longer number.
    assert [n["phone_number"] for n in get("PhoneNumber=%2B1555000222").json()["incoming_phone_numbers"]] \
        == [DAVE_NUM]
    [req] = f.requests(kind="numbers", pred=lambda r: r.query.get("PhoneNumber") == ["+15550003333"])
    assert req.status == 200


def test_fake_failure_script(fake_twilio):
    f = fake_twilio
    form = [("To", "+15551234567"), ("From", ALICE_NUM), ("Body", "x")]
    f.fail_next(503)
    f.fail_next(429, retry_after=7)
    f.fail_next(400, code=21211, message="The 'To' number +15551234567 is not a valid phone number.")
    f.fail_next(500, count=2, match=lambda r: r.field("Body") == "only me")
    r = twilio_post(f, form, f.basic_auth())
    assert r.status == 503 and r.json()["code"] == 20503, r
    r = twilio_post(f, form, f.basic_auth())
    assert r.status == 429 and r.headers.get("retry-after") == "7" and r.json()["code"] == 20429, r
    r = twilio_post(f, form, f.basic_auth())
    assert r.status == 400 and r.json() == {
        "code": 21211, "message": "The 'To' number +15551234567 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}, r
    assert twilio_post(f, form, f.basic_auth()).status == 201       # not matched by "only me"
    for _ in range(2):
        assert twilio_post(f, [("To", "+15551234567"), ("From", ALICE_NUM), ("Body", "only me")],
                           f.basic_auth()).status == 500
    assert twilio_post(f, form, f.basic_auth()).status == 201
    assert f.faults_pending() == 0
    # A hang: the client gives up first; the fake still records the send.
    f.hang_next(1.5, then_status=503)
    t = time.monotonic()
    with pytest.raises(OSError):
        h.http_request("POST", f.url + "/2010-04-01/Accounts/%s/Messages.json" % f.account_sid,
                       urllib.parse.urlencode(form),
                       {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f.basic_auth()},
                       timeout=0.5)
    assert time.monotonic() - t < 1.4
    f.wait_sends(lambda r: r.status == 503, count=2, timeout=5)
    assert [r.status for r in f.sends()] == [503, 429, 400, 201, 500, 500, 201, 503]


def test_fake_twilio_webhooks_are_signed():
    f = fp.FakeTwilio(numbers=[ALICE_NUM])
    recv = h.Receiver()
    try:
        url = recv.url("/sms/sms/inbound?x=1")
        f.inbound_url = url
        ans, sid = f.send_inbound("+15557654321", ALICE_NUM, "hi + there & \u00fc",
                                  media=[(f.media_url(), "image/jpeg")])
        assert ans.status == 200
        ans2, _ = f.send_inbound("+15557654321", ALICE_NUM, "forged", forge=True)
        [good, forged] = recv.wait("/sms/sms/inbound", 2)
        params = urllib.parse.parse_qsl(good.body.decode(), keep_blank_values=True)
        d = dict(params)
        assert d["MessageSid"] == sid and d["Body"] == "hi + there & \u00fc" and d["NumMedia"] == "1"
        assert d["MediaUrl0"] == f.media_url() and d["MediaContentType0"] == "image/jpeg"
        assert good.headers["x-twilio-signature"] == fp.twilio_signature(f.auth_token, url, params)
        fparams = urllib.parse.parse_qsl(forged.body.decode(), keep_blank_values=True)
        assert forged.headers["x-twilio-signature"] != fp.twilio_signature(f.auth_token, url, fparams)
        # status callback to the StatusCallback given at send time
        r = twilio_post(f, [("To", "+15551234567"), ("From", ALICE_NUM), ("Body", "x"),
                            ("StatusCallback", recv.url("/sms/sms/status"))], f.basic_auth())
        msid = r.json()["sid"]
        f.send_status(msid, "undelivered", error_code=30003)
        [st] = recv.wait("/sms/sms/status", 1)
        sp = urllib.parse.parse_qsl(st.body.decode())
        assert dict(sp)["MessageStatus"] == "undelivered" and dict(sp)["ErrorCode"] == "30003"
        assert dict(sp)["MessageSid"] == msid and dict(sp)["AccountSid"] == f.account_sid
        assert st.headers["x-twilio-signature"] == fp.twilio_signature(
            f.auth_token, recv.url("/sms/sms/status"), sp)
    finally:
        recv.close()
        f.close()


def test_fake_telnyx_api(fake_telnyx):
    f = fake_telnyx

    def post(doc, key=None, ctype="application/json"):
        hdrs = {"Content-Type": ctype}
        if key:
            hdrs["Authorization"] = "Bearer " + key
        return h.http_request("POST", f.url + "/v2/messages", json.dumps(doc), hdrs)

    doc = {"from": ALICE_NUM, "to": "+15551234567", "text": "hello", "webhook_url": "http://127.0.0.1:9/x"}
    for key in (None, "KEYwrong"):
        r = post(doc, key)
        assert r.status == 401, r
        [err] = r.json()["errors"]
        assert err["code"] == "10009" and err["title"] == "Authentication failed" and err["detail"]
    r = post(doc, f.api_key)
    assert r.status == 200, r
    data = r.json()["data"]
    uuid.UUID(data["id"])
    assert data["record_type"] == "message" and data["direction"] == "outbound"
    assert data["to"] == [{"phone_number": "+15551234567", "status": "queued",
                           "carrier": "T-MOBILE USA, INC.", "line_type": "Wireless"}]
    assert data["from"]["phone_number"] == ALICE_NUM and data["text"] == "hello"
    assert data["webhook_url"] == "http://127.0.0.1:9/x" and data["type"] == "SMS"
    r = post(dict(doc, media_urls=["https://e.x/a.jpg"], text=None), f.api_key)
    assert r.status == 200 and r.json()["data"]["type"] == "MMS", r
    r = post(dict(doc, to="5551234567"), f.api_key)
    assert r.status == 400 and r.json()["errors"][0]["code"] == "40310", r
    r = post(dict(doc, **{"from": NOT_OWNED}), f.api_key)
    assert r.status == 400 and r.json()["errors"][0]["code"] == "40305", r
    f.fail_next(429, retry_after=3)
    r = post(doc, f.api_key)
    assert r.status == 429 and r.headers["retry-after"] == "3" and r.json()["errors"][0]["code"] == "10011"
    # phone numbers
    hdr = {"Authorization": "Bearer " + f.api_key}
    r = h.http_request("GET", f.url + "/v2/phone_numbers?filter%5Bphone_number%5D=%2B15550002222", headers=hdr)
    assert r.status == 200 and [d["phone_number"] for d in r.json()["data"]] == [DAVE_NUM], r
    assert r.json()["meta"]["total_results"] == 1
    r = h.http_request("GET", f.url + "/v2/phone_numbers?filter[phone_number]=%2B15550003333", headers=hdr)
    assert r.status == 200 and r.json()["data"] == [], r
    r = h.http_request("GET", f.url + "/v2/phone_numbers?filter[phone_number]=%2B15550002222")
    assert r.status == 401


def test_fake_telnyx_webhooks_are_signed():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    f = fp.FakeTelnyx(numbers=[ALICE_NUM])
    recv = h.Receiver()
    try:
        f.inbound_url = recv.url("/sms/sms/inbound")
        ans, eid = f.send_inbound("+15557654321", ALICE_NUM, "hi", media=[(f.media_url(), "image/jpeg")])
        assert ans.status == 200
        f.send_inbound("+15557654321", ALICE_NUM, "forged", forge=True)
        f.send_inbound("+15557654321", ALICE_NUM, "stale", timestamp=time.time() - 400)
        good, forged, stale = recv.wait("/sms/sms/inbound", 3)
        pub = Ed25519PublicKey.from_public_bytes(fp.base64.b64decode(f.public_key))
        for req, ok in ((good, True), (forged, False), (stale, True)):
            sig = fp.base64.b64decode(req.headers["telnyx-signature-ed25519"])
            signed = req.headers["telnyx-timestamp"].encode() + b"|" + req.body
            try:
                pub.verify(sig, signed)
                verified = True
            except Exception:  # noqa: InvalidSignature
                verified = False
            assert verified == ok, req
        assert abs(int(good.headers["telnyx-timestamp"]) - time.time()) < 10
        assert time.time() - int(stale.headers["telnyx-timestamp"]) > 300
        ev = json.loads(good.body)["data"]
        assert ev["event_type"] == "message.received" and ev["id"] == eid and ev["record_type"] == "event"
        p = ev["payload"]
        assert p["from"]["phone_number"] == "+15557654321" and p["to"][0]["phone_number"] == ALICE_NUM
        assert p["text"] == "hi" and p["media"][0]["url"] == f.media_url() and p["direction"] == "inbound"
    finally:
        recv.close()
        f.close()


# ================================================================ part 2: end to end


class Env:
    """One Prosody, one fake provider, one ferry, the XMPP users."""

    def __init__(self, provider):
        self.provider = provider

    # -- provider-neutral views of a send the fake got

    def to_of(self, req):
        if self.provider == "twilio":
            return req.field("To")
        to = (req.json or {}).get("to")
        return to[0] if isinstance(to, list) and to else to

    def from_of(self, req):
        return req.field("From") if self.provider == "twilio" else (req.json or {}).get("from")

    def text_of(self, req):
        return req.text()

    def media_of(self, req):
        if self.provider == "twilio":
            return req.fields("MediaUrl")
        return list((req.json or {}).get("media_urls") or [])

    def callback_of(self, req):
        return req.field("StatusCallback") if self.provider == "twilio" else (req.json or {}).get("webhook_url")

    def expected_auth(self):
        return self.fake.basic_auth() if self.provider == "twilio" else "Bearer " + self.fake.api_key

    # -- waiting for sends

    def sends_to(self, number, accepted=None):
        return self.fake.sends(lambda r: self.to_of(r) == number
                               and (accepted is None or (r.status in (200, 201)) == accepted))

    def wait_sends_to(self, number, count=1, timeout=10, accepted=None):
        return self.fake.wait_sends(lambda r: self.to_of(r) == number
                                    and (accepted is None or (r.status in (200, 201)) == accepted),
                                    count=count, timeout=timeout, what="send(s) to %s" % number)

    # -- provider webhooks

    def inbound(self, frm, to, text, media=(), replay_of=None, **kw):
        """An inbound SMS posted to ferry. Returns (answer, id to replay)."""
        if self.provider == "twilio":
            return self.fake.send_inbound(frm, to, text, media=media, message_sid=replay_of, **kw)
        if replay_of:
            eid, mid = replay_of
        else:
            eid, mid = str(uuid.uuid4()), str(uuid.uuid4())
        ans, eid = self.fake.send_inbound(frm, to, text, media=media, event_id=eid, message_id=mid, **kw)
        return ans, (eid, mid)

    def status(self, req, outcome, **kw):
        """The provider's delivery report for the message of send REQ:
        outcome sent (intermediate), delivered, undelivered or failed.
        Returns (ferry's answer, the provider error code reported)."""
        sid = self.fake.sid_of(req)
        assert sid, "the fake did not accept %r" % req
        if outcome == "sent":
            if self.provider == "twilio":
                return self.fake.send_status(sid, "sent", **kw), None
            ans, _ = self.fake.send_update(sid, "message.sent", "sent", **kw)
            return ans, None
        if self.provider == "twilio":
            code = {"delivered": None, "undelivered": 30003, "failed": 30007}[outcome]
            return self.fake.send_status(sid, outcome, error_code=code, **kw), code
        status, code, title = {"delivered": ("delivered", None, None),
                               "undelivered": ("delivery_failed", 40008, "Undeliverable"),
                               "failed": ("sending_failed", 40001, "Not routable")}[outcome]
        ans, _ = self.fake.send_finalized(sid, status, error_code=code, error_title=title, **kw)
        return ans, code

    def evidence(self):
        return "fake %s, last requests:\n%s" % (self.provider, self.fake.summary())


def sms_component(provider, fake, **overrides):
    comp = {
        "adapter": "sms",
        "domain": DOMAIN,
        "secret": SECRET,
        "provider": provider,
        "api_url": fake.url,
        "default_country_code": "1",
        "rate_limit_per_minute": 600,
        "allow_registration": True,
        "timeout": 3.0,
        "max_attempts": 10,
        "retry_delay": 0.2,
    }
    if provider == "twilio":
        comp.update(account_sid=fake.account_sid, auth_token=fake.auth_token)
    else:
        comp.update(api_key=fake.api_key, public_key=fake.public_key)
    comp.update(overrides)
    return comp


def sms_config(prosody, http_port, comp, users, store_path, public_url=None):
    """gateway.toml: the harness's ferry_config for the tables, and
    [[components.sms.users]] written out (it has no arrays of tables)."""
    text = h.ferry_config(prosody.component_port, http_port, {COMPONENT: comp}, log={"level": "debug"},
                          http={"public_url": public_url} if public_url else None,
                          storage={"path": store_path})
    for jid, number in users:
        text += "\n[[components.%s.users]]\njid = %s\nnumber = %s\n" % (
            COMPONENT, h.toml_value(jid), h.toml_value(number))
    return text


def start_env(tb, provider, users=(("alice@localhost", ALICE_NUM), ("bob@localhost", BOB_NUM)),
              clients=USERS, public_url=None, **overrides):
    e = Env(provider)
    e.prosody = tb.prosody(components={DOMAIN: SECRET},
                           users=[(u, "localhost", u + "pw") for u in USERS])
    e.fake = fp.FakeTwilio(numbers=OWNED) if provider == "twilio" else fp.FakeTelnyx(numbers=OWNED)
    tb.fakes = getattr(tb, "fakes", []) + [e.fake]
    e.http_port = h.free_port()
    e.local_url = "http://127.0.0.1:%d" % e.http_port       # where ferry listens
    e.public_url = public_url or e.local_url                # what the provider is told
    e.status_url = e.public_url + "/sms/%s/status" % COMPONENT
    e.inbound_url = e.local_url + "/sms/%s/inbound" % COMPONENT
    e.fake.inbound_url = e.inbound_url
    e.comp = sms_component(provider, e.fake, **overrides)
    e.store = os.path.join(tb.subdir("store"), "ferry.db")
    e.ferry = tb.ferry(sms_config(e.prosody, e.http_port, e.comp, users, e.store, public_url=public_url),
                       http_port=e.http_port)
    for u in clients:
        setattr(e, u, tb.client("%s@localhost" % u, u + "pw", e.prosody))
    wait_linked(e)
    return e


def wait_linked(e):
    """The component link is up when its domain answers disco."""
    def linked():
        try:
            return e.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % NS_DISCO_INFO, timeout=2).type == "result"
        except TimeoutError:
            return False
    h.wait_until(linked, 20, interval=0.2, what="sms.localhost answering disco#info")


def finish_testbed(tb):
    problems = tb.finish()
    for f in getattr(tb, "fakes", []):
        f.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="module", params=["twilio", "telnyx"])
def env(request, tmp_path_factory, ferry_bin):
    tb = h.Testbed(str(tmp_path_factory.mktemp("sms-" + request.param)))
    try:
        e = start_env(tb, request.param)
    except BaseException:
        finish_testbed(tb)
        raise
    yield e
    finish_testbed(tb)


@pytest.fixture
def own_testbed(tmp_path_factory, request):
    tb = h.Testbed(str(tmp_path_factory.mktemp(request.node.name[:40])))
    yield tb
    finish_testbed(tb)


# ---------------------------------------------------------------- XMPP helpers


def error_for(client, mid, timeout=10):
    return client.wait_message(lambda s: s.id == mid and s.type == "error", timeout=timeout,
                               what="error reply to %s" % mid)


def receipt_for(client, mid, timeout=10):
    return client.wait_message(lambda s: s.receipt_id == mid, timeout=timeout, what="receipt for %s" % mid)


def chats_from(client, number, pred=None):
    return client.messages(lambda s: bare(s.frm) == num_jid(number) and s.type != "error"
                           and s.body is not None and (pred is None or pred(s)))


def oob_urls(stanza):
    out = []
    for x in stanza.el:
        if x.tag == "{%s}x" % NS_OOB:
            for u in x:
                if u.tag == "{%s}url" % NS_OOB:
                    out.append((u.text or "").strip())
    return out


def oob(url):
    return "<x xmlns='%s'><url>%s</url></x>" % (NS_OOB, xml_escape(url))


def children(el, ns, tag):
    return [c for c in el if c.tag == "{%s}%s" % (ns, tag)]


def settle(seconds=0.5):
    """A short pause before asserting that something did NOT happen (used
    after a barrier that already proved the pipeline moved past it)."""
    time.sleep(seconds)


def barrier_inbound(env, client, frm, to):
    """A valid inbound SMS in the same conversation, waited for: what was
    posted before it has been handled by then."""
    text = "barrier " + new_tag()
    ans, _ = env.inbound(frm, to, text)
    assert 200 <= ans.status < 300, ans
    client.wait_message(lambda s: s.body == text, timeout=10, what="barrier message")


def barrier_outbound(env, client, number):
    """A message in the same conversation, waited for at the fake."""
    text = "barrier " + new_tag()
    client.send_message(num_jid(number), text)
    env.fake.wait_sends(lambda r: env.to_of(r) == number and env.text_of(r) == text, timeout=15,
                        what="barrier send")


def assert_accepted(ans, what="webhook"):
    assert 200 <= ans.status < 300, "%s answered %r" % (what, ans)


# ---------------------------------------------------------------- disco


def test_disco_info_on_domain(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % NS_DISCO_INFO)
    assert r.type == "result", r
    q = r.find(NS_DISCO_INFO, "query")
    ids = [(i.get("category"), i.get("type")) for i in children(q, NS_DISCO_INFO, "identity")]
    feats = {f.get("var") for f in children(q, NS_DISCO_INFO, "feature")}
    assert ("gateway", "sms") in ids, r
    for f in ("jabber:iq:register", "jabber:iq:gateway", "urn:xmpp:receipts", NS_DISCO_INFO):
        assert f in feats, "missing feature %s: %r" % (f, r)


def test_disco_info_on_number(env):
    r = env.alice.iq(num_jid("+15551234567"), "get", "<query xmlns='%s'/>" % NS_DISCO_INFO)
    assert r.type == "result", r
    q = r.find(NS_DISCO_INFO, "query")
    ids = [(i.get("category"), i.get("type")) for i in children(q, NS_DISCO_INFO, "identity")]
    assert ("client", "sms") in ids, r


# ---------------------------------------------------------------- outbound


def test_send(env):
    dest = new_dest()
    text = "hello %s & <b>bold</b> = 100%% + \u00fcn\u00efcode \u2713 'q' \"qq\"" % new_tag()
    mid = env.alice.send_message(num_jid(dest), text, receipt=True)
    [req] = env.wait_sends_to(dest)
    assert req.method == "POST"
    assert req.headers.get("authorization") == env.expected_auth(), req.headers
    if env.provider == "twilio":
        assert req.path == "/2010-04-01/Accounts/%s/Messages.json" % env.fake.account_sid
        assert req.content_type == "application/x-www-form-urlencoded", req.headers
    else:
        assert req.path == "/v2/messages"
        assert req.content_type == "application/json", req.headers
    assert req.status in (200, 201), "%r\n%s" % (req, env.evidence())
    assert env.to_of(req) == dest
    assert env.from_of(req) == ALICE_NUM
    assert env.text_of(req) == text
    assert env.media_of(req) == []
    assert env.callback_of(req) == env.status_url
    # Accepted by the provider: nothing for the sender yet (no receipt, no error).
    settle(0.7)
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error"), env.alice.messages()
    assert not env.alice.messages(lambda s: s.receipt_id == mid)


def test_chat_state_alone_is_not_sent(env):
    dest = new_dest()
    env.alice.send_message(num_jid(dest), None, extra="<composing xmlns='%s'/>" % NS_CHATSTATES)
    env.alice.send_message(num_jid(dest), None, extra="<active xmlns='%s'/>" % NS_CHATSTATES)
    text = "after states " + new_tag()
    env.alice.send_message(num_jid(dest), text, extra="<active xmlns='%s'/>" % NS_CHATSTATES)
    env.wait_sends_to(dest)
    settle(0.3)
    sends = env.sends_to(dest)
    assert [env.text_of(r) for r in sends] == [text], sends


@pytest.mark.parametrize("local", [
    "+1\\20(555)\\20123-4567",     # "+1 (555) 123-4567", spaces escaped per XEP-0106
    "(555)\\20123-4567",           # no "+": default_country_code
    "5551234567",
    "+1.555.123.4567",
    "+1-555-123-4567",
])
def test_number_normalisation(env, local):
    text = "norm %s %s" % (local, new_tag())
    env.alice.send_message("%s@%s" % (local, DOMAIN), text)
    [req] = env.fake.wait_sends(lambda r: env.text_of(r) == text, timeout=10, what="send of %r" % text)
    assert env.to_of(req) == "+15551234567", req


@pytest.mark.parametrize("local", ["hello", "555-CALL-NOW", "+1555123456789012345"])
def test_bad_number_is_item_not_found(env, local):
    text = "bad %s" % new_tag()
    to = "%s@%s" % (local, DOMAIN)
    mid = env.alice.send_message(to, text)
    err = error_for(env.alice, mid)
    assert err.error_condition == "item-not-found", err
    assert err.error_text, "no explaining text: %r" % err
    settle(0.3)
    assert not env.fake.sends(lambda r: env.text_of(r) == text), env.evidence()


def test_long_message_is_split_at_words(env):
    dest = new_dest()
    words = ["w%04d" % i for i in range(334)]
    text = " ".join(words)
    assert 1990 <= len(text) <= 2010
    env.alice.send_message(num_jid(dest), text)
    sends = env.wait_sends_to(dest, count=2, timeout=15)
    settle(0.5)
    sends = env.sends_to(dest)
    parts = [env.text_of(r) for r in sends]
    assert len(parts) == 2, parts
    assert all(r.status in (200, 201) for r in sends), env.evidence()
    assert all(0 < len(p) <= 1600 for p in parts), [len(p) for p in parts]
    assert " ".join(parts).split() == words, "words lost, changed or reordered"
    # split at a word boundary: the first part is a whole-word prefix
    first = parts[0].rstrip()
    assert text.startswith(first) and text[len(first)] == " ", (first[-20:], parts[1][:20])


def test_send_mms_url_only(env):
    """Body equal to the OOB URL (an XEP-0363 upload): media, no text."""
    dest = new_dest()
    url = "https://upload.example.org/%s/photo.jpg" % new_tag()
    env.alice.send_message(num_jid(dest), url, extra=oob(url))
    [req] = env.wait_sends_to(dest)
    assert env.media_of(req) == [url], req
    assert not env.text_of(req), "the URL was sent again as text: %r" % env.text_of(req)
    assert req.status in (200, 201), env.evidence()


def test_send_mms_with_text(env):
    dest = new_dest()
    url = "https://upload.example.org/%s/cat.png" % new_tag()
    text = "look at this " + new_tag()
    env.alice.send_message(num_jid(dest), text, extra=oob(url))
    [req] = env.wait_sends_to(dest)
    assert env.media_of(req) == [url], req
    assert env.text_of(req) == text, req


# ---------------------------------------------------------------- receipts


def test_receipt_on_delivered(env):
    dest = new_dest()
    mid = env.alice.send_message(num_jid(dest), "receipt please " + new_tag(), receipt=True)
    [req] = env.wait_sends_to(dest)
    settle(0.5)
    assert not env.alice.messages(lambda s: s.receipt_id == mid), "receipt before the provider reported"
    # queued -> sent -> delivered: "sent" is not a delivery.
    ans, _ = env.status(req, "sent")
    assert_accepted(ans, "'sent' status callback")
    settle(0.5)
    assert not env.alice.messages(lambda s: s.receipt_id == mid), "receipt on 'sent'"
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error"), "error on 'sent'"
    ans, _ = env.status(req, "delivered")
    assert_accepted(ans, "status callback")
    r = receipt_for(env.alice, mid)
    assert bare(r.frm) == num_jid(dest), r
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error")


@pytest.mark.parametrize("outcome", ["undelivered", "failed"])
def test_delivery_failure_is_an_error(env, outcome):
    dest = new_dest()
    mid = env.alice.send_message(num_jid(dest), "doomed " + new_tag(), receipt=True)
    [req] = env.wait_sends_to(dest)
    settle(0.5)     # ferry has the provider's answer (see test_early_status_callback_is_not_lost)
    ans, code = env.status(req, outcome)
    assert_accepted(ans, "status callback")
    err = error_for(env.alice, mid)
    assert bare(err.frm) == num_jid(dest), err
    assert err.error_condition == "recipient-unavailable", err
    assert str(code) in (err.error_text or ""), "provider error code %s not in %r" % (code, err.error_text)
    assert not env.alice.messages(lambda s: s.receipt_id == mid)


@pytest.mark.parametrize("outcome", ["delivered", "undelivered"])
def test_early_status_callback_is_not_lost(env, outcome):
    """The provider's delivery report can reach ferry before the API's
    answer to the send does (the answer is slow on the network; a 'failed'
    report comes within milliseconds). Here the fake holds its 201/200 for
    1 s and sends the report meanwhile. The report must not be lost: kept
    until the send's answer is in, or refused with a non-2xx so that the
    provider tries again (Telnyx retries webhooks; Twilio does not retry
    status callbacks, so for Twilio only keeping it works)."""
    dest = new_dest()
    env.fake.delay_next(1.0, match=lambda r: env.to_of(r) == dest)
    mid = env.alice.send_message(num_jid(dest), "early report " + new_tag(), receipt=True)
    [req] = env.wait_sends_to(dest)
    answers = []
    for attempt in range(4 if env.provider == "telnyx" else 1):
        ans, code = env.status(req, outcome)
        answers.append(ans.status)
        if 200 <= ans.status < 300:
            break
        time.sleep(1.0)
    try:
        if outcome == "delivered":
            receipt_for(env.alice, mid, timeout=10)
        else:
            err = error_for(env.alice, mid, timeout=10)
            assert err.error_condition == "recipient-unavailable", err
    except TimeoutError:
        raise AssertionError("the %s report sent while the API answer was on its way was lost; ferry "
                             "answered it %s" % (outcome, answers)) from None


# ---------------------------------------------------------------- provider failures


def test_provider_4xx_is_an_error_at_once(env):
    dest = new_dest()
    if env.provider == "twilio":
        code, text = 21211, "The 'To' number %s is not a valid phone number." % dest
    else:
        code, text = 40310, "The 'to' address should be a single valid number."
    env.fake.fail_next(400, code=code, message=text, match=lambda r: env.to_of(r) == dest)
    t0 = time.monotonic()
    mid = env.alice.send_message(num_jid(dest), "will fail " + new_tag())
    err = error_for(env.alice, mid)
    took = time.monotonic() - t0
    assert err.error_condition in ("item-not-found", "bad-request", "not-acceptable", "jid-malformed",
                                   "recipient-unavailable"), err
    assert text in (err.error_text or ""), "provider text missing: %r" % err.error_text
    assert took < 5, "error after %.1f s" % took
    barrier_outbound(env, env.alice, dest)
    assert len(env.sends_to(dest)) == 2, "a 4xx was retried:\n" + env.evidence()


def test_provider_401_is_an_error_not_retried(env):
    """Rejected credentials are a 4xx like the others (the issue: 4xx -> an
    error message at once); retrying cannot help until the operator fixes
    the config."""
    dest = new_dest()
    env.fake.fail_next(401, match=lambda r: env.to_of(r) == dest)
    t0 = time.monotonic()
    mid = env.alice.send_message(num_jid(dest), "bad credentials " + new_tag())
    err = error_for(env.alice, mid, timeout=8)
    assert time.monotonic() - t0 < 5
    assert err.error_condition and err.error_text, err
    barrier_outbound(env, env.alice, dest)
    assert len(env.sends_to(dest)) == 2, "a 401 was retried:\n" + env.evidence()


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_then_success_is_delivered_once(env, status):
    dest = new_dest()
    env.fake.fail_next(status, match=lambda r: env.to_of(r) == dest)
    text = "retry me %s" % new_tag()
    mid = env.alice.send_message(num_jid(dest), text, receipt=True)
    sends = env.wait_sends_to(dest, count=2, timeout=15)
    assert [r.status for r in sends[:2]] == [status, 200 if env.provider == "telnyx" else 201], env.evidence()
    assert all(env.text_of(r) == text for r in sends)
    settle(1.0)
    assert len(env.sends_to(dest)) == 2, env.evidence()
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error"), env.alice.messages()
    ans, _ = env.status(sends[1], "delivered")
    assert_accepted(ans)
    receipt_for(env.alice, mid)


def test_429_waits_for_retry_after(env):
    dest = new_dest()
    env.fake.fail_next(429, retry_after=2, match=lambda r: env.to_of(r) == dest)
    mid = env.alice.send_message(num_jid(dest), "slow down " + new_tag())
    first, second = env.wait_sends_to(dest, count=2, timeout=15)
    gap = second.time - first.time
    assert first.status == 429 and second.status in (200, 201), env.evidence()
    assert gap >= 1.8, "retried %.2f s after a 429 with Retry-After: 2" % gap
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error")


def test_timeout_then_success(env):
    dest = new_dest()
    # The first try hangs past the adapter's timeout (3 s), then fails anyway.
    env.fake.hang_next(env.comp["timeout"] + 2.0, then_status=503, match=lambda r: env.to_of(r) == dest)
    mid = env.alice.send_message(num_jid(dest), "hang on " + new_tag())
    sends = env.fake.wait_sends(lambda r: env.to_of(r) == dest and r.status in (200, 201), timeout=20,
                                what="a successful retry after the timeout")
    assert len(sends) == 1
    allsends = env.sends_to(dest)
    assert len(allsends) == 2, allsends
    assert not env.alice.messages(lambda s: s.id == mid and s.type == "error")


# ---------------------------------------------------------------- inbound


def test_receive(env):
    frm = new_dest()
    text = "hi from a phone %s \u00fc & <tag> + plus" % new_tag()
    ans, _ = env.inbound(frm, ALICE_NUM, text)
    assert_accepted(ans, "inbound")
    msg = env.alice.wait_message(lambda s: s.body == text, what="inbound SMS")
    assert bare(msg.frm) == num_jid(frm), msg
    assert msg.type == "chat", msg
    assert bare(msg.to) == "alice@localhost"
    assert not env.bob.messages(lambda s: s.body == text)


def test_receive_to_second_user(env):
    frm = new_dest()
    text = "for bob " + new_tag()
    ans, _ = env.inbound(frm, BOB_NUM, text)
    assert_accepted(ans, "inbound")
    msg = env.bob.wait_message(lambda s: s.body == text, what="inbound SMS for bob")
    assert bare(msg.frm) == num_jid(frm)
    settle(0.3)
    assert not env.alice.messages(lambda s: s.body == text)


def test_receive_mms(env):
    frm = new_dest()
    url = env.fake.media_url("%s.jpg" % new_tag())
    text = "picture " + new_tag()
    ans, _ = env.inbound(frm, ALICE_NUM, text, media=[(url, "image/jpeg")])
    assert_accepted(ans, "inbound")
    msg = env.alice.wait_message(lambda s: bare(s.frm) == num_jid(frm) and s.body and text in s.body,
                                 what="inbound MMS")
    assert url in msg.body, msg
    assert oob_urls(msg) == [url], msg


def test_receive_mms_without_text(env):
    frm = new_dest()
    url = env.fake.media_url("%s.jpg" % new_tag())
    ans, _ = env.inbound(frm, ALICE_NUM, "", media=[(url, "image/jpeg")])
    assert_accepted(ans, "inbound")
    msg = env.alice.wait_message(lambda s: bare(s.frm) == num_jid(frm) and s.body is not None,
                                 what="inbound MMS without text")
    assert msg.body.strip() == url, msg
    assert oob_urls(msg) == [url], msg


def test_forged_inbound_is_refused(env):
    frm = new_dest()
    forged = "forged " + new_tag()
    attempts = [("bad signature", {"forge": True}), ("no signature", {"omit_signature": True})]
    if env.provider == "twilio":
        # signed for another URL (e.g. a proxy that changed the scheme)
        attempts.append(("other URL", {"sign_url": env.inbound_url.replace("http:", "https:")}))
    else:
        attempts.append(("body changed after signing", {"tamper": True}))
    for what, kw in attempts:
        ans, _ = env.inbound(frm, ALICE_NUM, forged, **kw)
        assert ans.status == 403, "%s: %r" % (what, ans)
    barrier_inbound(env, env.alice, frm, ALICE_NUM)
    settle(0.3)
    assert not env.alice.messages(lambda s: s.body and forged in s.body), "a forged SMS was delivered"


def test_telnyx_stale_timestamp_is_refused(env):
    if env.provider != "telnyx":
        pytest.skip("Telnyx only (Twilio signatures carry no timestamp)")
    frm = new_dest()
    stale = "stale " + new_tag()
    ans, _ = env.inbound(frm, ALICE_NUM, stale, timestamp=time.time() - 6 * 60)
    assert 400 <= ans.status < 500, "a correctly signed event 6 minutes old was accepted: %r" % ans
    assert ans.status == 403, ans
    future = "future " + new_tag()
    ans, _ = env.inbound(frm, ALICE_NUM, future, timestamp=time.time() + 6 * 60)
    assert ans.status == 403, "an event signed 6 minutes in the future: %r" % ans
    # within tolerance: accepted
    ok = "recent " + new_tag()
    ans, _ = env.inbound(frm, ALICE_NUM, ok, timestamp=time.time() - 60)
    assert_accepted(ans)
    env.alice.wait_message(lambda s: s.body == ok)
    barrier_inbound(env, env.alice, frm, ALICE_NUM)
    assert not env.alice.messages(lambda s: s.body and (stale in s.body or future in s.body))


def test_hostile_webhooks(env):
    """Malformed signatures, timestamps and bodies: refused (4xx) or
    ignored, never delivered, never a crash (conftest checks ferry's life and
    sanitizer reports)."""
    frm = new_dest()
    tag = new_tag()
    url = env.inbound_url
    bad = []          # (what, status, body) refused wrongly
    if env.provider == "twilio":
        params = env.fake.inbound_params(frm, ALICE_NUM, "hostile " + tag)[1]
        body = urllib.parse.urlencode(params)
        good_sig = env.fake.sign(url, params)
        ctype = {"Content-Type": "application/x-www-form-urlencoded"}
        cases = [
            ("empty signature", body, dict(ctype, **{"X-Twilio-Signature": ""})),
            ("not base64", body, dict(ctype, **{"X-Twilio-Signature": "!!!***%%%"})),
            ("signature one char short", body, dict(ctype, **{"X-Twilio-Signature": good_sig[:-1]})),
            ("signature with a char more", body, dict(ctype, **{"X-Twilio-Signature": good_sig + "A"})),
            ("8 KB signature", body, dict(ctype, **{"X-Twilio-Signature": "A" * 8192})),
            ("signed, malformed escape", body + "&Body=%ZZ", dict(ctype, **{"X-Twilio-Signature": good_sig})),
            ("signed, body cut short", body[:len(body) // 2], dict(ctype, **{"X-Twilio-Signature": good_sig})),
        ]
        # Correctly signed, but not a message: no From/To/MessageSid.
        junk = [("Foo", "bar " + tag)]
        cases.append(("signed junk form", urllib.parse.urlencode(junk),
                      dict(ctype, **{"X-Twilio-Signature": env.fake.sign(url, junk)})))
        signed_ok = {"signed junk form"}
    else:
        payload = env.fake.inbound_payload(frm, ALICE_NUM, "hostile " + tag)
        ts = int(time.time())
        doc = {"data": {"event_type": "message.received", "id": str(uuid.uuid4()), "occurred_at": fp.iso8601(),
                        "payload": payload, "record_type": "event"}, "meta": {"attempt": 1}}
        body = json.dumps(doc)
        sig = env.fake.sign(body, ts)

        def hdr(sig, ts):
            return {"Content-Type": "application/json", "telnyx-signature-ed25519": sig, "telnyx-timestamp": str(ts)}

        def signed(b, ts=ts):
            return hdr(env.fake.sign(b, ts), ts)

        def variant(**data):
            d = json.loads(body)
            d["data"].update(data)
            d["data"]["id"] = str(uuid.uuid4())
            return json.dumps(d)

        def payload_variant(**p):
            d = json.loads(body)
            d["data"]["payload"].update(p)
            d["data"]["id"] = str(uuid.uuid4())
            return json.dumps(d)
        cases = [
            ("empty signature", body, hdr("", ts)),
            ("not base64", body, hdr("!!!***", ts)),
            ("10-byte signature", body, hdr(fp.base64.b64encode(b"0123456789").decode(), ts)),
            ("8 KB signature", body, hdr("A" * 8192, ts)),
            ("timestamp not a number", body, hdr(sig, "abc")),
            ("timestamp with junk after it", body, hdr(env.fake.sign(body, "%dx" % ts), "%dx" % ts)),
            ("huge timestamp", body, signed(body, ts="99999999999999999999999999")),
            ("negative timestamp", body, signed(body, ts=-1)),
            ("signed, not JSON", "{not json", signed("{not json")),
            ("signed, JSON array", "[1,2]", signed("[1,2]")),
            ("signed, no payload", variant(payload=None), signed(variant(payload=None))),
        ]
        b = payload_variant(to=[])
        cases.append(("signed, empty to", b, signed(b)))
        b = payload_variant(text=None, media="nope")
        cases.append(("signed, text null and media not a list", b, signed(b)))
        b = payload_variant(**{"from": {"phone_number": None}})
        cases.append(("signed, from null", b, signed(b)))
        b = variant(event_type="message.unknown_kind")
        cases.append(("signed, unknown event type", b, signed(b)))
        signed_ok = {"signed, unknown event type", "signed, no payload", "signed, empty to",
                     "signed, text null and media not a list", "signed, from null", "signed, JSON array"}
    for what, b, hdrs in cases:
        ans = h.http_request("POST", url, b, hdrs)
        ok = (200 <= ans.status < 300 or 400 <= ans.status < 500) if what in signed_ok \
            else 400 <= ans.status < 500
        if not ok:
            bad.append((what, ans.status, ans.body[:120]))
    assert env.ferry.running(), env.ferry.report()
    barrier_inbound(env, env.alice, frm, ALICE_NUM)
    settle(0.3)
    assert not env.alice.messages(lambda s: s.body and tag in s.body), "a hostile webhook was delivered"
    assert not bad, "answers: %r" % bad


def test_forged_status_callback_is_refused(env):
    dest = new_dest()
    mid = env.alice.send_message(num_jid(dest), "forged receipt " + new_tag(), receipt=True)
    [req] = env.wait_sends_to(dest)
    ans, _ = env.status(req, "delivered", forge=True)
    assert ans.status == 403, ans
    settle(0.7)
    assert not env.alice.messages(lambda s: s.receipt_id == mid), "receipt from a forged callback"
    ans, _ = env.status(req, "delivered")
    assert_accepted(ans)
    receipt_for(env.alice, mid)


def test_replayed_inbound_is_delivered_once(env):
    frm = new_dest()
    text = "only once " + new_tag()
    ans, rid = env.inbound(frm, ALICE_NUM, text)
    assert_accepted(ans)
    env.alice.wait_message(lambda s: s.body == text)
    for _ in range(2):
        ans, _ = env.inbound(frm, ALICE_NUM, text, replay_of=rid)
        assert_accepted(ans, "replay")
    barrier_inbound(env, env.alice, frm, ALICE_NUM)
    settle(0.3)
    got = env.alice.messages(lambda s: s.body == text)
    assert len(got) == 1, "delivered %d times" % len(got)


def test_unknown_to_is_answered_200_and_dropped(env):
    frm = new_dest()
    text = "to nobody " + new_tag()
    ans, _ = env.inbound(frm, "+15559990000", text)
    assert ans.status == 200, ans
    barrier_inbound(env, env.alice, frm, ALICE_NUM)
    settle(0.3)
    for c in (env.alice, env.bob, env.carol, env.dave, env.erin):
        assert not c.messages(lambda s: s.body and text in s.body), c.jid


def test_signed_url_with_query_string(env):
    """Twilio signs the URL as configured on the number, query string
    included."""
    if env.provider != "twilio":
        pytest.skip("Twilio only (Telnyx signatures do not cover the URL)")
    frm = new_dest()
    text = "with query " + new_tag()
    url = env.inbound_url + "?src=twilio&n=1"
    ans, _ = env.fake.send_inbound(frm, ALICE_NUM, text, url=url)
    assert_accepted(ans, "inbound to a URL with a query string")
    env.alice.wait_message(lambda s: s.body == text)
    # the same request signed without the query string is not authentic
    forged = "query dropped " + new_tag()
    ans, _ = env.fake.send_inbound(frm, ALICE_NUM, forged, url=url, sign_url=env.inbound_url)
    assert ans.status == 403, ans


def metrics(env):
    r = h.http_request("GET", env.ferry.url("/metrics"))
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        m = re.match(r'^(ferry_sms_\w+)\{([^}]*)\} (\S+)$', line)
        if m and 'component="%s"' % COMPONENT in m.group(2):
            out[m.group(1)] = float(m.group(3))
    return out


def metric(values, word):
    names = [n for n in values if word in n]
    assert len(names) == 1, "one ferry_sms_* metric with %r in its name expected: %r" % (word, values)
    return values[names[0]]


def test_counters(env):
    """Segments (GSM-7 160/153 with extension characters counting twice,
    UCS-2 70/67 in UTF-16 units), unknown recipients and forged webhooks are
    counted."""
    before = metrics(env)
    dest = new_dest()
    bodies = [
        ("a" * 160, 1),                   # GSM-7, exactly one segment
        ("b" * 155 + "{[]", 2),           # 155 + 3 x 2 septets = 161: two
        ("\U0001F600" * 36, 2),           # 72 UTF-16 units: two UCS-2 segments
        ("\u00e9" * 70, 1),               # e-acute is GSM-7: one
    ]
    for body, _ in bodies:
        env.alice.send_message(num_jid(dest), body)
    env.wait_sends_to(dest, count=len(bodies))
    frm = new_dest()
    ans, _ = env.inbound(frm, "+15559990001", "nobody " + new_tag())
    assert ans.status == 200
    ans, _ = env.inbound(frm, ALICE_NUM, "forged " + new_tag(), forge=True)
    assert ans.status == 403
    want_segments = sum(n for _, n in bodies)

    def reached():
        m = metrics(env)
        return (metric(m, "segment") - metric(before, "segment") >= want_segments
                and metric(m, "unknown") - metric(before, "unknown") >= 1
                and metric(m, "forged") - metric(before, "forged") >= 1) and m
    try:
        after = h.wait_until(reached, 5, interval=0.2, what="counters")
    except TimeoutError:
        after = metrics(env)
    got = {w: metric(after, w) - metric(before, w) for w in ("segment", "unknown", "forged")}
    assert got == {"segment": want_segments, "unknown": 1, "forged": 1}, \
        "counter increases %r; segments by body: %r" % (got, [(b[:8], n) for b, n in bodies])


# ---------------------------------------------------------------- presence


def test_presence_subscription_to_number(env):
    number = new_dest()
    jid = num_jid(number)
    # Prosody passes an inbound 'subscribed' (and roster pushes) only to
    # "interested" resources, those that fetched the roster, as clients do.
    r = env.alice.iq("alice@localhost", "get", "<query xmlns='jabber:iq:roster'/>")
    assert r.type == "result", r
    env.alice.send_raw("<presence to='%s' type='subscribe'/>" % jid)
    env.alice.wait(lambda s: s.name == "presence" and bare(s.frm) == jid and s.type == "subscribed",
                   timeout=10, what="subscribed from %s" % jid)

    def pushed_to():
        for s in env.alice.stanzas(lambda s: s.name == "iq" and s.type == "set"):
            q = s.find("jabber:iq:roster", "query")
            for item in (q if q is not None else []):
                if item.get("jid") == jid and item.get("subscription") in ("to", "both"):
                    return True
        return False
    h.wait_until(pushed_to, 10, what="roster push: subscribed to %s" % jid)
    env.alice.wait(lambda s: s.name == "presence" and bare(s.frm) == jid and s.type in (None, "available"),
                   timeout=10, what="available presence from %s" % jid)


def test_presence_probe_answered_available(env):
    number = new_dest()
    jid = num_jid(number)
    env.alice.send_raw("<presence to='%s' type='probe'/>" % jid)
    env.alice.wait(lambda s: s.name == "presence" and bare(s.frm) == jid and s.type in (None, "available"),
                   timeout=10, what="available presence from %s" % jid)


# ---------------------------------------------------------------- XEP-0100


def test_gateway_prompt(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % NS_GATEWAY)
    assert r.type == "result", r
    q = r.find(NS_GATEWAY, "query")
    assert q is not None and children(q, NS_GATEWAY, "prompt"), r
    for typed, want in [("+1 (555) 123-4567", "+15551234567"), ("555.123.4567", "+15551234567"),
                        ("+44 20 7946 0018", "+442079460018")]:
        r = env.alice.iq(DOMAIN, "set", "<query xmlns='%s'><prompt>%s</prompt></query>"
                         % (NS_GATEWAY, xml_escape(typed)))
        assert r.type == "result", (typed, r)
        q = r.find(NS_GATEWAY, "query")
        jids = [j.text for j in children(q, NS_GATEWAY, "jid")]
        assert jids == [num_jid(want)], (typed, r)
    r = env.alice.iq(DOMAIN, "set", "<query xmlns='%s'><prompt>not a number</prompt></query>" % NS_GATEWAY)
    assert r.type == "error" and r.error_condition == "not-acceptable", r


# ---------------------------------------------------------------- membership and registration


def test_non_member_gets_registration_required(env):
    dest = new_dest()
    mid = env.carol.send_message(num_jid(dest), "let me in " + new_tag())
    err = error_for(env.carol, mid)
    assert err.error_condition == "registration-required", err
    settle(0.3)
    assert not env.sends_to(dest), env.evidence()


def register_form(client):
    r = client.iq(DOMAIN, "get", "<query xmlns='%s'/>" % NS_REGISTER)
    assert r.type == "result", r
    q = r.find(NS_REGISTER, "query")
    assert q is not None, r
    return r, q


def register_payload(q, number):
    """What to send back for the form in Q: the data form when there is one
    (XEP-0077 section 4), else the legacy <phone/> field."""
    x = None
    for c in q:
        if c.tag == "{%s}x" % NS_DATA:
            x = c
    if x is None:
        assert children(q, NS_REGISTER, "phone") or children(q, NS_REGISTER, "username"), \
            "no phone field in the registration form: %s" % ET.tostring(q, encoding="unicode")
        name = "phone" if children(q, NS_REGISTER, "phone") else "username"
        return "<query xmlns='%s'><%s>%s</%s></query>" % (NS_REGISTER, name, xml_escape(number), name)
    fields = []
    target = None
    for f in children(x, NS_DATA, "field"):
        var = f.get("var") or ""
        if var == "FORM_TYPE":
            vals = children(f, NS_DATA, "value")
            fields.append((var, vals[0].text if vals else ""))
        elif target is None and re.search(r"phone|number|msisdn", var, re.I):
            target = var
    if target is None:
        cand = [f.get("var") for f in children(x, NS_DATA, "field")
                if f.get("type") in (None, "text-single") and f.get("var") != "FORM_TYPE"]
        assert cand, "no text field in the registration form: %s" % ET.tostring(q, encoding="unicode")
        target = cand[0]
    fields.append((target, number))
    inner = "".join("<field var=%s><value>%s</value></field>" % (quoteattr(v), xml_escape(val or ""))
                    for v, val in fields)
    return "<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>" % (NS_REGISTER, NS_DATA, inner)


def register(client, number):
    _, q = register_form(client)
    return client.iq(DOMAIN, "set", register_payload(q, number))


def test_registration_lifecycle(env):
    fake = env.fake
    dest = new_dest()

    # Not registered yet: registration-required.
    mid = env.dave.send_message(num_jid(dest), "before " + new_tag())
    assert error_for(env.dave, mid).error_condition == "registration-required"

    # The form asks for a phone number and says dave is not registered.
    r, q = register_form(env.dave)
    assert not children(q, NS_REGISTER, "registered"), r
    text = ET.tostring(q, encoding="unicode").lower()
    assert "phone" in text or "number" in text, r

    # A number the account does not own: refused after asking the provider.
    n_lookups = len(fake.requests(kind="numbers"))
    r = register(env.erin, NOT_OWNED)
    assert r.type == "error", r
    assert r.error_condition == "not-acceptable", r
    lookups = fake.requests(kind="numbers")[n_lookups:]
    assert lookups, "the provider's numbers API was not asked:\n" + env.evidence()
    req = lookups[-1]
    assert req.headers.get("authorization") == env.expected_auth()
    if env.provider == "twilio":
        assert req.path == "/2010-04-01/Accounts/%s/IncomingPhoneNumbers.json" % fake.account_sid
        assert req.query.get("PhoneNumber") == [NOT_OWNED], \
            "PhoneNumber filter %r (a '+' must be sent as %%2B)" % req.query_string
    else:
        assert req.path == "/v2/phone_numbers"
        assert req.query.get("filter[phone_number]") in ([NOT_OWNED], [NOT_OWNED[1:]]), req.query_string

    # A prefix of an owned number: the provider's partial match finds the
    # longer number, which is not the one asked for. (Checked last, so that
    # the rest of the lifecycle runs even when this is accepted.)
    problems = []
    r = register(env.erin, DAVE_NUM[:-1])
    if r.type != "error":
        problems.append("registered %s, a number the account does not own, because the provider's "
                        "partial match returned %s: %r" % (DAVE_NUM[:-1], DAVE_NUM, r))
        r = env.erin.iq(DOMAIN, "set", "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
        assert r.type == "result", r

    # A number bound to another JID (alice's, from the config): conflict.
    r = register(env.erin, ALICE_NUM)
    assert r.type == "error" and r.error_condition == "conflict", r

    # dave registers a number the account owns (typed the way people do).
    r = register(env.dave, "+1 (555) 000-2222")
    assert r.type == "result", "%r\n%s" % (r, env.evidence())
    r, q = register_form(env.dave)
    assert children(q, NS_REGISTER, "registered"), "no <registered/> after registering: %r" % r
    assert DAVE_NUM in ET.tostring(q, encoding="unicode"), r

    # Messages from dave now go out from his number...
    text = "dave speaking " + new_tag()
    mid = env.dave.send_message(num_jid(dest), text)
    [req] = fake.wait_sends(lambda r: env.text_of(r) == text, what="dave's send")
    assert env.from_of(req) == DAVE_NUM and env.to_of(req) == dest, req
    assert req.status in (200, 201), env.evidence()
    # ... and SMS to his number reach him.
    frm = new_dest()
    itext = "hi dave " + new_tag()
    ans, _ = env.inbound(frm, DAVE_NUM, itext)
    assert_accepted(ans)
    msg = env.dave.wait_message(lambda s: s.body == itext)
    assert bare(msg.frm) == num_jid(frm)

    # Someone else cannot take dave's number now.
    r = register(env.erin, DAVE_NUM)
    assert r.type == "error" and r.error_condition == "conflict", r

    # Unregister: removed; messages get registration-required again.
    r = env.dave.iq(DOMAIN, "set", "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
    assert r.type == "result", r
    r, q = register_form(env.dave)
    assert not children(q, NS_REGISTER, "registered"), "still registered after <remove/>: %r" % r
    mid = env.dave.send_message(num_jid(dest), "after remove " + new_tag())
    assert error_for(env.dave, mid).error_condition == "registration-required"
    # SMS to the number no longer reach dave (unknown To: 200, dropped).
    gone = "gone " + new_tag()
    ans, _ = env.inbound(frm, DAVE_NUM, gone)
    assert ans.status == 200, ans
    barrier_inbound(env, env.alice, frm, ALICE_NUM)
    settle(0.3)
    assert not env.dave.messages(lambda s: s.body == gone)

    # The number is free again: erin may have it now.
    r = register(env.erin, DAVE_NUM)
    assert r.type == "result", r
    r = env.erin.iq(DOMAIN, "set", "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
    assert r.type == "result", r
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- rate limit (own ferry)


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
def test_rate_limit_and_closed_registration(own_testbed, ferry_bin, provider):
    e = start_env(own_testbed, provider, clients=("alice", "carol"), rate_limit_per_minute=3,
                  allow_registration=False)
    dest = new_dest()
    mids = [e.alice.send_message(num_jid(dest), "msg %d %s" % (i, new_tag())) for i in range(4)]
    err = error_for(e.alice, mids[3])
    assert err.error_condition == "resource-constraint", err
    assert err.error_type == "wait", err
    e.wait_sends_to(dest, count=3)
    settle(0.7)
    assert len(e.sends_to(dest)) == 3, e.evidence()
    for mid in mids[:3]:
        assert not e.alice.messages(lambda s: s.id == mid and s.type == "error")
    # allow_registration = false: a stranger stays a stranger.
    mid = e.carol.send_message(num_jid(dest), "hello? " + new_tag())
    assert error_for(e.carol, mid).error_condition == "registration-required"
    r = e.carol.iq(DOMAIN, "set", "<query xmlns='%s'><phone>%s</phone></query>" % (NS_REGISTER, SPARE_NUM))
    assert r.type == "error", "registration accepted with allow_registration = false: %r" % r


# ---------------------------------------------------------------- behind a proxy (own ferry)


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
def test_public_url_behind_a_proxy(own_testbed, ferry_bin, provider):
    """public_url is what the provider is told and what Twilio signs; ferry
    itself listens on 127.0.0.1 (a TLS proxy in front). Signatures are
    checked against public_url, not against what the socket saw."""
    public = "https://sms-gw.example.test"
    e = start_env(own_testbed, provider, clients=("alice",), public_url=public)
    dest = new_dest()
    mid = e.alice.send_message(num_jid(dest), "via proxy " + new_tag(), receipt=True)
    [req] = e.wait_sends_to(dest)
    assert e.callback_of(req) == public + "/sms/sms/status", req
    settle(0.5)
    local_status = e.local_url + "/sms/sms/status"
    if provider == "twilio":
        # posted to the listener, signed over the public URL, as Twilio does
        ans, _ = e.status(req, "delivered", url=local_status, sign_url=public + "/sms/sms/status")
    else:
        ans, _ = e.status(req, "delivered", url=local_status)
    assert_accepted(ans, "status callback through the proxy")
    receipt_for(e.alice, mid)
    frm = new_dest()
    text = "through the proxy " + new_tag()
    if provider == "twilio":
        ans, _ = e.fake.send_inbound(frm, ALICE_NUM, text, sign_url=public + "/sms/sms/inbound")
        assert_accepted(ans, "inbound signed over public_url")
        e.alice.wait_message(lambda s: s.body == text)
        forged = "signed over the local URL " + new_tag()
        ans, _ = e.fake.send_inbound(frm, ALICE_NUM, forged)     # signed over http://127.0.0.1:...
        assert ans.status == 403, ans
    else:
        ans, _ = e.inbound(frm, ALICE_NUM, text)
        assert_accepted(ans)
        e.alice.wait_message(lambda s: s.body == text)


# ---------------------------------------------------------------- restart (own ferry)


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
def test_state_survives_restart(own_testbed, ferry_bin, provider):
    """Registrations and what a pending delivery report needs are in the
    store: both survive a restart of ferry."""
    e = start_env(own_testbed, provider, clients=("alice", "dave"))
    r = register(e.dave, DAVE_NUM)
    assert r.type == "result", r
    dest = new_dest()
    mid = e.alice.send_message(num_jid(dest), "before restart " + new_tag(), receipt=True)
    [req] = e.wait_sends_to(dest)
    settle(0.5)
    e.ferry.stop()
    e.ferry.start()
    e.ferry.wait_healthz(200, timeout=20)
    wait_linked(e)
    ans, _ = e.status(req, "delivered")
    assert_accepted(ans, "status callback after the restart")
    receipt_for(e.alice, mid)
    text = "dave after restart " + new_tag()
    e.dave.send_message(num_jid(dest), text)
    [req] = e.fake.wait_sends(lambda r: e.text_of(r) == text)
    assert e.from_of(req) == DAVE_NUM, req
    r, q = register_form(e.dave)
    assert children(q, NS_REGISTER, "registered"), r
