"""webhook -> XMPP: what a script POSTing to ferry gets as an answer, and
what the XMPP users receive. One Prosody and one ferry for the module."""

import json

import pytest

import harness as h

SECRET = "comp-secret-Vb40"
DOMAIN = "hooks.localhost"
TOKEN = "tok-alerts-Kd93"
TOKEN_TEAM = "tok-team-P0q1"
TOKEN_GH = "tok-gh-Wm52"
GH_SECRET = "gh-secret-Hy66"


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.prosody = tb.prosody(components={DOMAIN: SECRET},
                           users=[("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw")])
    e.recv = tb.receiver()
    endpoints = {
        "alerts": {"url": e.recv.url("/alerts"), "format": "json", "token": TOKEN,
                   "deliver_to": ["alice@localhost"], "allow": ["localhost"]},
        "team": {"url": e.recv.url("/team"), "format": "json", "token": TOKEN_TEAM,
                 "deliver_to": ["alice@localhost", "bob@localhost"], "allow": ["localhost"]},
        "gh": {"url": e.recv.url("/gh"), "format": "json", "token": TOKEN_GH, "github_secret": GH_SECRET,
               "deliver_to": ["alice@localhost"], "allow": ["localhost"]},
    }
    comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": endpoints}
    e.ferry = tb.linked_ferry(e.prosody, {"hooks": comp})
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody)
    e.bob = tb.client("bob@localhost", "bobpw", e.prosody)
    return e


def post(env, path, body, content_type="application/json", token=TOKEN, headers=None, method="POST"):
    hdrs = {}
    if content_type:
        hdrs["Content-Type"] = content_type
    if token:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return h.http_request(method, env.ferry.url(path), body, hdrs)


def got_text(client, text, frm="alerts@" + DOMAIN, timeout=10):
    return client.wait_message(lambda s: s.body == text and s.type != "error", timeout=timeout,
                               what="message %r" % text[:60])


def assert_from(msg, frm):
    assert msg.frm.split("/")[0] == frm, msg


# ------------------------------------------------------------------ accepted


def test_json_text_is_delivered(env):
    text = "deploy finished \u2713"
    r = post(env, "/hooks/hooks/alerts", {"text": text})
    assert r.status == 202, r
    msg = got_text(env.alice, text)
    assert_from(msg, "alerts@" + DOMAIN)
    assert msg.type == "chat"
    assert msg.to.split("/")[0] == "alice@localhost"


def test_json_with_charset_is_delivered(env):
    text = "charset parameter"
    r = post(env, "/hooks/hooks/alerts", {"text": text}, content_type="application/json; charset=utf-8")
    assert r.status == 202, r
    got_text(env.alice, text)


def test_text_plain_is_delivered(env):
    text = "plain text body"
    r = post(env, "/hooks/hooks/alerts", text, content_type="text/plain")
    assert r.status == 202, r
    assert_from(got_text(env.alice, text), "alerts@" + DOMAIN)


def test_special_characters_survive(env):
    text = "line one\nline <two> & 'three' \"four\" \u00e9\u00e8 \U0001F680 ]]>"
    r = post(env, "/hooks/hooks/alerts", {"text": text})
    assert r.status == 202, r
    got_text(env.alice, text)


def test_every_recipient_gets_it(env):
    text = "for the whole team"
    r = post(env, "/hooks/hooks/team", {"text": text}, token=TOKEN_TEAM)
    assert r.status == 202, r
    for c in (env.alice, env.bob):
        assert_from(got_text(c, text), "team@" + DOMAIN)


def test_large_body_under_limit_is_delivered(env):
    text = "x" * 60000
    r = post(env, "/hooks/hooks/alerts", {"text": text})
    assert r.status == 202, r
    got_text(env.alice, text)


def test_messages_arrive_in_order(env):
    texts = ["ordered %d" % i for i in range(20)]
    for t in texts:
        assert post(env, "/hooks/hooks/alerts", {"text": t}).status == 202
    got_text(env.alice, texts[-1])
    seen = [s.body for s in env.alice.messages(lambda s: (s.body or "").startswith("ordered "))]
    assert seen == texts


def test_github_signature_is_accepted(env):
    """The signature alone lets a body in (GitHub's own payloads, recognised
    by X-GitHub-Event, are in test_sources.py)."""
    body = json.dumps({"text": "pushed to main"})
    r = post(env, "/hooks/hooks/gh", body, token=None,
             headers={"X-Hub-Signature-256": h.github_signature(GH_SECRET, body)})
    assert r.status == 202, r
    assert_from(got_text(env.alice, "pushed to main"), "gh@" + DOMAIN)


# ------------------------------------------------------------------ refused


def test_missing_token_is_401(env):
    r = post(env, "/hooks/hooks/alerts", {"text": "no token"}, token=None)
    assert r.status == 401, r


def test_wrong_token_is_401(env):
    r = post(env, "/hooks/hooks/alerts", {"text": "wrong token"}, token="tok-alerts-Kd94")
    assert r.status == 401, r


def test_other_endpoints_token_is_401(env):
    r = post(env, "/hooks/hooks/alerts", {"text": "team token"}, token=TOKEN_TEAM)
    assert r.status == 401, r


def test_token_in_other_scheme_is_401(env):
    r = post(env, "/hooks/hooks/alerts", {"text": "basic"}, token=None,
             headers={"Authorization": "Basic " + TOKEN})
    assert r.status == 401, r


def test_bad_github_signature_is_401(env):
    body = json.dumps({"text": "forged"})
    r = post(env, "/hooks/hooks/gh", body, token=None,
             headers={"X-Hub-Signature-256": h.github_signature("not-the-secret", body)})
    assert r.status == 401, r
    r = post(env, "/hooks/hooks/gh", body, token=None,
             headers={"X-Hub-Signature-256": h.github_signature(GH_SECRET, body + " ")})
    assert r.status == 401, r


@pytest.mark.parametrize("path", ["/hooks/hooks/nobody", "/hooks/nope/alerts", "/hooks/hooks/", "/hooks/x", "/nothing"])
def test_unknown_path_is_404(env, path):
    r = post(env, path, {"text": "lost"})
    assert r.status == 404, r


def test_get_is_405(env):
    r = post(env, "/hooks/hooks/alerts", None, content_type=None, method="GET")
    assert r.status == 405, r


def test_body_over_64k_is_413(env):
    r = post(env, "/hooks/hooks/alerts", {"text": "y" * 65536})
    assert r.status == 413, r


@pytest.mark.parametrize("body", ['{"text": "unterminated', '{"message": "no text key"}', "[1, 2, 3]", ""])
def test_bad_json_is_400(env, body):
    r = post(env, "/hooks/hooks/alerts", body)
    assert r.status == 400, r


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "application/xml", "image/png"])
def test_other_content_type_is_415(env, ctype):
    r = post(env, "/hooks/hooks/alerts", "text=hello", content_type=ctype)
    assert r.status == 415, r


def test_refused_requests_deliver_nothing(env):
    """Each refused request above carried a text; none reached Alice. A
    marker posted last proves delivery was working all along."""
    refused = [
        post(env, "/hooks/hooks/alerts", {"text": "refused-1"}, token=None),
        post(env, "/hooks/hooks/alerts", {"text": "refused-2"}, token="bad"),
        post(env, "/hooks/hooks/alerts", "refused-3", content_type="application/xml"),
        post(env, "/hooks/hooks/nobody", {"text": "refused-4"}),
        post(env, "/hooks/hooks/gh", {"text": "refused-5"}, token=None,
             headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}),
    ]
    assert all(r.status >= 400 for r in refused), refused
    assert post(env, "/hooks/hooks/alerts", {"text": "marker-after-refused"}).status == 202
    got_text(env.alice, "marker-after-refused")
    leaked = env.alice.messages(lambda s: (s.body or "").startswith("refused-"))
    assert not leaked, leaked
    for bad in ("no token", "wrong token", "team token", "basic", "forged", "lost"):
        assert not env.alice.messages(lambda s: s.body == bad)


# ------------------------------------------------------------------ health


def test_healthz(env):
    r = h.http_request("GET", env.ferry.url("/healthz"))
    assert r.status == 200, r
    assert r.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    assert r.json()["components"]["hooks"]["link"] == "up"
