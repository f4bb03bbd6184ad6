"""Webhook endpoints in group chats against ejabberd 23.01's mod_muc (the
Prosody side is test_webhook_rooms.py): said in a room and to a JID, a nick
conflict, XEP-0410 self-pings answered while joined, rejoins after a kick and
after the server restarts, room_messages, a password-protected room, a ban. One ejabberd for the module (about
1.5 s to start); the restart test runs last.

If ejabberd is not installed, every test here fails and says so:
scripts/deps.sh installs it."""

import json
import time

import pytest

import harness as h
import rooms_helpers as R

DOMAIN = "hooks.localhost"
MUC = "conference.localhost"
SECRET = "ej-rooms-secret-Pz44"
TOKEN = "ej-rooms-tok-Ab12"
ALERTS_JID = "alerts@" + DOMAIN
OPS = "ops@" + MUC
CHAT = "chat@" + MUC
CROWD = "crowd@" + MUC
KICKY = "kicky@" + MUC
LOCKED = "locked@" + MUC
BANNY = "banny@" + MUC


def post(ferry, name, text):
    return h.http_request("POST", ferry.url("/hooks/hooks/" + name), json.dumps({"text": text}),
                          {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN})


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    why = h.ejabberd_missing()
    if why:
        pytest.fail("cannot run the ejabberd room tests: " + why, pytrace=False)
    tb = module_testbed
    e = h.Env()
    e.tb = tb
    e.ejabberd = tb.ejabberd(components={DOMAIN: SECRET}, muc=MUC,
                             users=[("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw")])
    e.recv = tb.receiver()
    e.alice = tb.client("alice@localhost", "alicepw", e.ejabberd)
    e.bob = tb.client("bob@localhost", "bobpw", e.ejabberd)
    for room in (OPS, CHAT, CROWD, KICKY, BANNY):
        R.join(e.alice, room, "alice")
    R.join(e.alice, LOCKED, "alice", config={"muc#roomconfig_passwordprotectedroom": "1",
                                             "muc#roomconfig_roomsecret": "sesame"})
    R.join(e.bob, CROWD, "alerts")      # taken before ferry comes
    R.join(e.bob, CHAT, "bob")

    def ep(path, **extra):
        d = {"url": e.recv.url(path), "format": "json", "token": TOKEN, "allow": ["localhost"]}
        d.update(extra)
        return d
    endpoints = {
        "alerts": ep("/alerts", deliver_to=["alice@localhost"], rooms=[OPS, CROWD]),
        "kicky": ep("/kicky", rooms=[KICKY], nick="alerts"),
        "all": ep("/all", rooms=[CHAT], nick="listener", room_messages="all"),
        "locked": ep("/locked", rooms=[LOCKED], nick="alerts", room_password="sesame"),
        "banny": ep("/banny", rooms=[BANNY], nick="alerts"),
    }
    comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": endpoints,
            "retry_delay": 0.2, "retry_delay_max": 1.0, "room_ping_interval": 1}
    e.ferry = tb.linked_ferry(e.ejabberd, {"hooks": comp}, xmpp={"ping_interval": 2, "ping_timeout": 3},
                              timeout=30)
    R.occupant_present(e.alice, OPS, "alerts", timeout=15)
    R.occupant_present(e.alice, CROWD, "alerts_", timeout=15)
    R.occupant_present(e.alice, KICKY, "alerts", timeout=15)
    R.occupant_present(e.alice, CHAT, "listener", timeout=15)
    R.occupant_present(e.alice, LOCKED, "alerts", timeout=15)
    R.occupant_present(e.alice, BANNY, "alerts", timeout=15)
    return e


def test_post_is_said_in_rooms_and_sent_to_the_jid(env):
    text = "ejabberd: disk full"
    assert post(env.ferry, "alerts", text).status == 202
    R.said(env.alice, OPS, "alerts", text)
    # The nick conflict in crowd: said there as alerts_.
    R.said(env.alice, CROWD, "alerts_", text)
    env.alice.wait_message(lambda s: s.type == "chat" and s.body == text
                           and s.frm.split("/")[0] == ALERTS_JID)


def test_self_pings_keep_it_joined(env):
    # room_ping_interval is 1 s: ejabberd answers every self-ping as joined.
    before = R.room_metrics(env.ferry)["ferry_webhook_room_self_pings_total"]
    h.wait_until(lambda: R.room_metrics(env.ferry)["ferry_webhook_room_self_pings_total"] >= before + 8,
                 10, what="self-pings in the rooms")
    assert "self-ping: no longer in" not in env.ferry.stderr()
    m = R.room_metrics(env.ferry)
    assert m["ferry_webhook_rooms_joined"] == 6 and m["ferry_webhook_room_rejoins_total"] == 0, m


def test_room_messages_all(env):
    assert post(env.ferry, "all", "own words").status == 202
    R.said(env.bob, CHAT, "listener", "own words")
    R.say(env.bob, CHAT, "bob speaking")
    reqs = env.recv.wait("/all", pred=lambda r: r.json().get("body") == "bob speaking")
    d = reqs[0].json()
    assert d["room"] == CHAT and d["nick"] == "bob" and d["from"] == CHAT + "/bob"
    assert [r.json()["body"] for r in env.recv.requests("/all")] == ["bob speaking"]


def test_rejoins_after_a_kick(env):
    at = R.mark(env.alice)
    R.kick(env.alice, KICKY, "alerts")
    R.occupant_gone(env.alice, KICKY, "alerts", after=at)
    assert post(env.ferry, "kicky", "posted while kicked").status == 202
    R.occupant_present(env.alice, KICKY, "alerts", after=at, timeout=15)
    R.said(env.alice, KICKY, "alerts", "posted while kicked", timeout=15)
    time.sleep(1)
    assert R.said_count(env.alice, KICKY, "alerts", "posted while kicked") == 1


def test_password_protected_room(env):
    assert post(env.ferry, "locked", "behind a password").status == 202
    R.said(env.alice, LOCKED, "alerts", "behind a password")


def test_ban_is_logged_counted_and_not_retried(env):
    before = R.room_metrics(env.ferry)["ferry_webhook_rooms_lost_total"]
    at = R.mark(env.alice)
    R.ban(env.alice, BANNY, "banny@" + DOMAIN)
    env.ferry.wait_log(r"left %s for good: banned" % BANNY)
    time.sleep(3)   # past the first backoff: no join attempt
    assert not env.alice.stanzas(lambda s: s.seq > at and s.name == "presence"
                                 and s.frm == BANNY + "/alerts" and s.type is None)
    assert R.room_metrics(env.ferry)["ferry_webhook_rooms_lost_total"] == before + 1


def test_rejoins_after_the_server_restarts(env):
    """Last: restarts the module's ejabberd."""
    for c in (env.alice, env.bob):
        c.close()
    env.ejabberd.stop()
    env.ferry.wait_log(r"link to \S+ lost", timeout=15)
    assert post(env.ferry, "alerts", "posted while ejabberd was down").status == 202
    env.ejabberd.start()
    env.ferry.wait_log(r"rejoined %s as alerts" % OPS, timeout=40)
    alice = env.tb.client("alice@localhost", "alicepw", env.ejabberd)
    R.join(alice, OPS, "alice")
    # Said before alice came back: in the room's history for her.
    alice.wait_message(lambda s: s.type == "groupchat" and s.frm == OPS + "/alerts"
                       and s.body == "posted while ejabberd was down", timeout=15)
    assert post(env.ferry, "alerts", "after the ejabberd restart").status == 202
    R.said(alice, OPS, "alerts", "after the ejabberd restart")
    assert len(alice.messages(lambda s: s.body == "posted while ejabberd was down")) == 1
