"""What the core answers on every component's domain (disco, ping, version,
unknown iqs), with two components in one ferry (one reads its secret from
a file)."""

import pytest

import harness as h

DOMAIN = "hooks.localhost"
DOMAIN2 = "hooks2.localhost"
SECRET = "comp-secret-Lc55"
SECRET2 = "comp-secret-file-Rr07"


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.prosody = tb.prosody(components={DOMAIN: SECRET, DOMAIN2: SECRET2},
                           users=[("alice", "localhost", "alicepw")])
    e.recv = tb.receiver()
    secret_file = tb.subdir("secrets") + "/hooks2.secret"
    with open(secret_file, "w") as f:
        f.write(SECRET2 + "\n")
    comps = {
        "hooks": {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": {
            "alerts": {"url": e.recv.url("/alerts"), "format": "json", "token": "tok-a-1",
                       "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}},
        "second": {"adapter": "webhook", "domain": DOMAIN2, "secret_file": secret_file, "endpoints": {
            "ops": {"url": e.recv.url("/ops"), "format": "slack", "token": "tok-o-2",
                    "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}},
    }
    e.ferry = tb.linked_ferry(e.prosody, comps)
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody)
    return e


def children(el, ns, tag):
    return [c for c in el if c.tag == "{%s}%s" % (ns, tag)]


def query(stanza, ns):
    q = stanza.find(ns, "query")
    assert q is not None, stanza
    return q


def assert_result(reply, domain, client):
    assert reply.type == "result", reply
    assert reply.frm == domain, reply
    assert reply.to == client.full_jid, reply


@pytest.mark.parametrize("domain", [DOMAIN, DOMAIN2])
def test_disco_info(env, domain):
    r = env.alice.iq(domain, "get", "<query xmlns='%s'/>" % h.NS_DISCO_INFO)
    assert_result(r, domain, env.alice)
    q = query(r, h.NS_DISCO_INFO)
    idents = [(i.get("category"), i.get("type")) for i in children(q, h.NS_DISCO_INFO, "identity")]
    assert ("gateway", "http-ws") in idents, r
    features = {f.get("var") for f in children(q, h.NS_DISCO_INFO, "feature")}
    for f in (h.NS_DISCO_INFO, h.NS_PING, h.NS_VERSION):
        assert f in features, (f, r)


@pytest.mark.parametrize("domain", [DOMAIN, DOMAIN2])
def test_disco_items(env, domain):
    r = env.alice.iq(domain, "get", "<query xmlns='%s'/>" % h.NS_DISCO_ITEMS)
    assert_result(r, domain, env.alice)
    query(r, h.NS_DISCO_ITEMS)


@pytest.mark.parametrize("domain", [DOMAIN, DOMAIN2])
def test_ping(env, domain):
    r = env.alice.iq(domain, "get", "<ping xmlns='%s'/>" % h.NS_PING)
    assert_result(r, domain, env.alice)


def test_version(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % h.NS_VERSION)
    assert_result(r, DOMAIN, env.alice)
    q = query(r, h.NS_VERSION)
    name = children(q, h.NS_VERSION, "name")
    version = children(q, h.NS_VERSION, "version")
    assert name and name[0].text == "ferry", r
    assert version and version[0].text == h.project_version(), r


@pytest.mark.parametrize("itype", ["get", "set"])
def test_unknown_iq_is_service_unavailable(env, itype):
    iq_id = h.new_id("unk")
    r = env.alice.iq(DOMAIN, itype, "<query xmlns='urn:example:no-such-thing'/>", id=iq_id)
    assert r.type == "error", r
    assert r.id == iq_id
    assert r.frm == DOMAIN and r.to == env.alice.full_jid, r
    assert r.error_condition == "service-unavailable", r


def test_unknown_iq_on_second_component(env):
    r = env.alice.iq(DOMAIN2, "set", "<command xmlns='urn:example:nothing'/>")
    assert r.type == "error" and r.error_condition == "service-unavailable", r


def test_no_error_in_reply_to_iq_error_or_result(env):
    ids = []
    for itype in ("error", "result"):
        iq_id = h.new_id("noreply")
        ids.append(iq_id)
        env.alice.send_raw("<iq type='%s' to='%s' id='%s'><error type='cancel'>"
                           "<service-unavailable xmlns='%s'/></error></iq>"
                           % (itype, DOMAIN, iq_id, h.NS_STANZAS) if itype == "error" else
                           "<iq type='result' to='%s' id='%s'/>" % (DOMAIN, iq_id))
    mid = h.new_id("errmsg")
    env.alice.send_raw("<message type='error' to='%s' id='%s'><error type='cancel'>"
                       "<item-not-found xmlns='%s'/></error></message>" % (DOMAIN, mid, h.NS_STANZAS))
    ids.append(mid)
    # Stanzas are handled in order: when the ping is answered, a reply to the
    # stanzas above would already be here.
    assert env.alice.iq(DOMAIN, "get", "<ping xmlns='%s'/>" % h.NS_PING).type == "result"
    assert not env.alice.stanzas(lambda s: s.id in ids)


def test_both_components_carry_messages(env):
    m1 = env.alice.send_message("alerts@" + DOMAIN, "to the first")
    m2 = env.alice.send_message("ops@" + DOMAIN2, "to the second")
    [r1] = env.recv.wait("/alerts", 1, pred=lambda r: b"to the first" in r.body)
    [r2] = env.recv.wait("/ops", 1, pred=lambda r: b"to the second" in r.body)
    assert r1.json()["id"] == m1
    assert r2.json()["text"] == "to the second"
    assert r2.json()["username"] == "alice@localhost"
    assert not env.alice.messages(lambda s: s.id in (m1, m2) and s.type == "error")


def test_inbound_on_second_component(env):
    r = h.http_request("POST", env.ferry.url("/hooks/second/ops"), '{"text": "ops says hi"}',
                       {"Content-Type": "application/json", "Authorization": "Bearer tok-o-2"})
    assert r.status == 202, r
    msg = env.alice.wait_message(lambda s: s.body == "ops says hi")
    assert msg.frm.split("/")[0] == "ops@" + DOMAIN2
    # The first component's token does not open the second one.
    r = h.http_request("POST", env.ferry.url("/hooks/second/ops"), '{"text": "x"}',
                       {"Content-Type": "application/json", "Authorization": "Bearer tok-a-1"})
    assert r.status == 401, r


def test_healthz_lists_both_components(env):
    status, doc = env.ferry.healthz()
    assert status == 200, doc
    assert doc["components"]["hooks"]["link"] == "up"
    assert doc["components"]["second"]["link"] == "up"
