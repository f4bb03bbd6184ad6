"""Webhook endpoints in group chats (XEP-0045) against Prosody's MUC
component: what is POSTed is said in the rooms (and sent to deliver_to);
ferry stays in its rooms through nick conflicts, kicks, server restarts and
occupants removed behind its back (XEP-0410 self-ping); room_messages POSTs
what occupants say. The occupants here are slixmpp clients.

The module's Prosody and ferry serve the tests that leave the rooms as they
found them; tests that kick, ban, restart or destroy start their own."""

import json
import signal
import time

import pytest

import harness as h
import rooms_helpers as R

SECRET = "rooms-secret-Qe81"
DOMAIN = "hooks.localhost"
MUC = "conference.localhost"
TOKEN = "tok-rooms-Hx20"
OPS = "ops@" + MUC
CHAT = "chat@" + MUC
ALERTS_JID = "alerts@" + DOMAIN


def users():
    return [("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw")]


def endpoint(recv, path, **extra):
    ep = {"url": recv.url(path), "format": "json", "token": TOKEN, "allow": ["localhost"]}
    ep.update(extra)
    return ep


def component(endpoints, **extra):
    comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": endpoints,
            "retry_delay": 0.2, "retry_delay_max": 1.0}
    comp.update(extra)
    return comp


def post(ferry, name, text, headers=None):
    hdrs = {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN}
    hdrs.update(headers or {})
    return h.http_request("POST", ferry.url("/hooks/hooks/" + name), json.dumps({"text": text}), hdrs)


def posted(recv, path, pred=None):
    return [r.json() for r in recv.requests(path) if pred is None or pred(r.json())]


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.prosody = tb.prosody(components={DOMAIN: SECRET}, muc=MUC, users=users())
    e.recv = tb.receiver()
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody)
    e.bob = tb.client("bob@localhost", "bobpw", e.prosody)
    # The rooms exist before ferry comes: alice created them (owner).
    R.join(e.alice, OPS, "alice")
    R.join(e.alice, CHAT, "alice")
    R.join(e.bob, OPS, "bob")
    R.join(e.bob, CHAT, "bob")
    R.say(e.bob, CHAT, "said before ferry joined")
    R.said(e.alice, CHAT, "bob", "said before ferry joined")
    endpoints = {
        "alerts": endpoint(e.recv, "/alerts", deliver_to=["alice@localhost"], rooms=[OPS],
                           room_messages="mentions"),
        "quiet": endpoint(e.recv, "/quiet", rooms=[OPS], nick="quietbot"),
        "all": endpoint(e.recv, "/all", rooms=[CHAT], nick="listener", room_messages="all", format="slack"),
        "chatter": endpoint(e.recv, "/chatter", rooms=[CHAT], nick="chatterbot"),
    }
    e.ferry = tb.linked_ferry(e.prosody, {"hooks": component(endpoints)})
    for room, nick in ((OPS, "alerts"), (OPS, "quietbot"), (CHAT, "listener"), (CHAT, "chatterbot")):
        R.occupant_present(e.alice, room, nick)
    return e


# ------------------------------------------------------------------ saying


def test_post_is_said_in_the_room_and_sent_to_the_jid(env):
    text = "disk full on db1 \u26a0"
    r = post(env.ferry, "alerts", text)
    assert r.status == 202, r
    msg = R.said(env.bob, OPS, "alerts", text)
    assert msg.type == "groupchat"
    direct = env.alice.wait_message(lambda s: s.body == text and s.type == "chat", what="direct copy")
    assert direct.frm.split("/")[0] == ALERTS_JID
    R.said(env.alice, OPS, "alerts", text)
    # Counted when the room's echo reaches ferry (maybe just after the occupants saw it).
    h.wait_until(lambda: R.room_metrics(env.ferry)["ferry_webhook_room_messages_total"] >= 1, 5,
                 what="the said message counted")
    assert R.room_metrics(env.ferry)["ferry_webhook_rooms_joined"] == 4


def test_rooms_only_endpoint_needs_no_deliver_to(env):
    text = "rooms only, no deliver_to"
    r = post(env.ferry, "quiet", text)
    assert r.status == 202, r
    R.said(env.alice, OPS, "quietbot", text)
    assert not env.alice.messages(lambda s: s.body == text and s.type == "chat")


def test_posts_are_said_in_order_once(env):
    texts = ["ordered %d" % i for i in range(20)]
    for t in texts:
        assert post(env.ferry, "quiet", t).status == 202
    R.said(env.bob, OPS, "quietbot", texts[-1], timeout=20)
    got = [s.body for s in env.bob.messages(lambda s: s.type == "groupchat" and s.frm == OPS + "/quietbot"
                                            and (s.body or "").startswith("ordered "))]
    assert got == texts


def test_a_retried_request_is_said_once(env):
    text = "retried request"
    hdrs = {"Idempotency-Key": h.new_id("idem")}
    assert post(env.ferry, "quiet", text, hdrs).status == 202
    assert post(env.ferry, "quiet", text, hdrs).status == 202
    R.said(env.bob, OPS, "quietbot", text)
    assert post(env.ferry, "quiet", "after retried").status == 202
    R.said(env.bob, OPS, "quietbot", "after retried")
    assert R.said_count(env.bob, OPS, "quietbot", text) == 1


# ------------------------------------------------------------------ room_messages


def test_room_messages_all_posts_what_occupants_say(env):
    R.say(env.bob, CHAT, "hello everyone")
    reqs = env.recv.wait("/all", pred=lambda r: r.json().get("text") == "hello everyone")
    # Slack format: the occupant's nick as the username.
    assert reqs[0].json() == {"text": "hello everyone", "username": "bob"}


def test_room_messages_all_skips_own_messages_and_history(env):
    assert post(env.ferry, "all", "said by ferry itself").status == 202
    R.said(env.bob, CHAT, "listener", "said by ferry itself")
    # Another endpoint of the same ferry in the room: ferry too.
    assert post(env.ferry, "chatter", "said by another endpoint").status == 202
    R.said(env.bob, CHAT, "chatterbot", "said by another endpoint")
    R.say(env.bob, CHAT, "sentinel after own")
    env.recv.wait("/all", pred=lambda r: r.json().get("text") == "sentinel after own")
    texts = [d.get("text") for d in posted(env.recv, "/all")]
    assert "said by ferry itself" not in texts
    assert "said by another endpoint" not in texts
    assert "said before ferry joined" not in texts


def test_room_messages_mentions(env):
    R.say(env.bob, OPS, "just chatting")
    R.say(env.bob, OPS, "alerts: what is firing?")
    R.say(env.bob, OPS, "ALERTS, ack please")
    ref = ("<reference xmlns='urn:xmpp:reference:0' begin='0' end='6' type='mention' uri='xmpp:%s'/>"
           % ALERTS_JID)
    R.say(env.bob, OPS, "hey there, see above", extra=ref)
    R.say(env.bob, OPS, "quietbot: not posted, quiet has room_messages none")
    R.say(env.bob, OPS, "alerts: sentinel")
    env.recv.wait("/alerts", pred=lambda r: r.json().get("body") == "alerts: sentinel")
    got = posted(env.recv, "/alerts", lambda d: d.get("room") == OPS)
    assert [d["body"] for d in got] == ["alerts: what is firing?", "ALERTS, ack please",
                                        "hey there, see above", "alerts: sentinel"]
    d = got[0]
    assert d["nick"] == "bob" and d["from"] == OPS + "/bob" and d["room"] == OPS
    assert d["to"].split("/")[0] == ALERTS_JID
    assert not env.recv.requests("/quiet")


# ------------------------------------------------------------------ config


def test_config_errors_name_file_and_line(ferry_bin, tmp_path):
    text = h.ferry_config(5347, 8080, {"hooks": component({
        "a": {"token": "t", "rooms": ["not a jid/with resource"]},
        "b": {"token": "t", "rooms": [OPS], "room_messages": "some"},
        "c": {"token": "t", "rooms": [OPS], "room_messages": "all"},
        "d": {"token": "t"},
    })})
    path = str(tmp_path / "gateway.toml")
    with open(path, "w") as f:
        f.write(text)
    r = h.run_ferry_cli(["--check-config", "-c", path], binary=ferry_bin)
    assert r.returncode != 0
    err = r.stderr
    lines = text.splitlines()

    def line_no(needle, after=0):
        for i, line in enumerate(lines[after:], after + 1):
            if needle in line:
                return i
        raise ValueError(needle)
    assert "%s:%d:" % (path, line_no("rooms = [\"not a jid")) in err and "not a room JID" in err, err
    assert "%s:%d:" % (path, line_no('room_messages = "some"')) in err, err
    assert "%s:%d:" % (path, line_no('room_messages = "all"')) in err and "needs 'url'" in err, err
    assert "'deliver_to' or 'rooms'" in err, err


# ------------------------------------------------------------------ staying in


def one_room_ferry(tb, prosody, recv, room, extra=None, comp_extra=None):
    ep = endpoint(recv, "/alerts", rooms=[room], nick="alerts")
    ep.update(extra or {})
    return tb.linked_ferry(prosody, {"hooks": component({"alerts": ep}, **(comp_extra or {}))})


@pytest.fixture
def own(testbed, ferry_bin):
    """A Prosody of the test's own, with alice and bob logged in."""
    e = h.Env()
    e.tb = testbed
    e.prosody = testbed.prosody(components={DOMAIN: SECRET}, muc=MUC, users=users(), admin_shell=True)
    e.recv = testbed.receiver()
    e.alice = testbed.client("alice@localhost", "alicepw", e.prosody)
    e.bob = testbed.client("bob@localhost", "bobpw", e.prosody)
    return e


def test_nick_conflict_takes_another_nick(own):
    room = "crowd@" + MUC
    R.join(own.alice, room, "alice")
    R.join(own.bob, room, "alerts")          # the nick ferry wants is taken
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room)
    R.occupant_present(own.alice, room, "alerts_")
    assert post(ferry, "alerts", "as alerts_").status == 202
    R.said(own.alice, room, "alerts_", "as alerts_")
    ferry.wait_log(r"nick alerts is taken in %s: trying alerts_" % room)


def test_rejoins_after_a_kick_with_nothing_lost(own):
    room = "kicky@" + MUC
    R.join(own.alice, room, "alice")
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room)
    R.occupant_present(own.alice, room, "alerts")
    at = R.mark(own.alice)
    R.kick(own.alice, room, "alerts")
    R.occupant_gone(own.alice, room, "alerts", after=at)
    # Said while out: held until the rejoin, then said once.
    assert post(ferry, "alerts", "posted while kicked").status == 202
    R.occupant_present(own.alice, room, "alerts", after=at, timeout=15)
    R.said(own.alice, room, "alerts", "posted while kicked", timeout=15)
    ferry.wait_log(r"out of %s \(kicked\)" % room)
    m = R.room_metrics(ferry)
    assert m["ferry_webhook_room_rejoins_total"] == 1 and m["ferry_webhook_rooms_joined"] == 1, m
    time.sleep(1)
    assert R.said_count(own.alice, room, "alerts", "posted while kicked") == 1


def test_rejoins_after_the_server_restarts_with_nothing_lost(own):
    room = "restart@" + MUC
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room)
    R.join(own.alice, room, "alice")
    R.occupant_present(own.alice, room, "alerts")
    own.alice.close()
    own.bob.close()
    own.prosody.stop()
    ferry.wait_log(r"link to \S+ lost", timeout=10)
    # Accepted while the XMPP server is down: kept in the store.
    assert post(ferry, "alerts", "posted while the server was down").status == 202
    own.prosody.start()
    # The room was not persistent: ferry makes it again when it rejoins.
    ferry.wait_log(r"rejoined %s as alerts" % room, timeout=30)
    alice = own.tb.client("alice@localhost", "alicepw", own.prosody)
    R.join(alice, room, "alice")
    # In the room's history for whoever joins after it was said.
    alice.wait_message(lambda s: s.type == "groupchat" and s.frm == room + "/alerts"
                       and s.body == "posted while the server was down", timeout=15)
    assert post(ferry, "alerts", "after the restart").status == 202
    R.said(alice, room, "alerts", "after the restart")
    assert len(alice.messages(lambda s: s.body == "posted while the server was down")) == 1
    m = R.room_metrics(ferry)
    assert m["ferry_webhook_room_rejoins_total"] == 1, m


def test_rejoins_after_the_link_drops_with_nothing_lost(own):
    room = "frozen@" + MUC
    R.join(own.alice, room, "alice")
    ep = endpoint(own.recv, "/alerts", rooms=[room], nick="alerts")
    ferry = own.tb.linked_ferry(own.prosody, {"hooks": component({"alerts": ep})},
                                xmpp={"ping_interval": 1, "ping_timeout": 2, "keepalive_interval": 1})
    R.occupant_present(own.alice, room, "alerts")
    own.prosody.pause()     # ferry's pings go unanswered: it drops the link
    try:
        ferry.wait_log(r"link to \S+ lost", timeout=15)
        assert post(ferry, "alerts", "posted while the link was down").status == 202
    finally:
        own.prosody.resume()
    # The room still holds ferry's occupant: the join is a presence update
    # (status 110 again, no conflict), and the message follows it.
    ferry.wait_log(r"rejoined %s as alerts" % room, timeout=20)
    R.said(own.alice, room, "alerts", "posted while the link was down", timeout=15)
    assert post(ferry, "alerts", "after the link came back").status == 202
    R.said(own.alice, room, "alerts", "after the link came back")
    assert R.said_count(own.alice, room, "alerts", "posted while the link was down") == 1


def test_held_message_survives_a_ferry_restart(own):
    room = "durable@" + MUC
    R.join(own.alice, room, "alice")
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room)
    R.occupant_present(own.alice, room, "alerts")
    at = R.mark(own.alice)
    R.kick(own.alice, room, "alerts")
    R.occupant_gone(own.alice, room, "alerts", after=at)
    assert post(ferry, "alerts", "held across a restart").status == 202
    ferry.stop()            # before the rejoin: the message is still held
    at = R.mark(own.alice)
    ferry.start()
    R.occupant_present(own.alice, room, "alerts", after=at)
    R.said(own.alice, room, "alerts", "held across a restart")
    time.sleep(1)
    assert R.said_count(own.alice, room, "alerts", "held across a restart") == 1


PROSODY_FORGET = ('> local r = prosody.hosts["%s"].modules.muc.get_room_from_jid("%s"); '
                  'local o = r:get_occupant_by_nick("%s/%s"); o.role = nil; r:save_occupant(o); '
                  'return "forgotten"')


def test_self_ping_finds_it_was_removed_and_rejoins(own):
    room = "ghost@" + MUC
    R.join(own.alice, room, "alice")
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room, comp_extra={"room_ping_interval": 1})
    R.occupant_present(own.alice, room, "alerts")
    h.wait_until(lambda: R.room_metrics(ferry)["ferry_webhook_room_self_pings_total"] >= 2, 10,
                 what="self-pings answered while joined")
    # The room forgets ferry without telling it (what a MUC restart behind a
    # live link does): only a self-ping can find out.
    out = own.prosody.shell(PROSODY_FORGET % (MUC, room, room, "alerts"))
    assert "forgotten" in out, out
    ferry.wait_log(r"self-ping: no longer in %s" % room, timeout=15)
    ferry.wait_log(r"rejoined %s as alerts" % room, timeout=15)
    assert post(ferry, "alerts", "after the self-ping").status == 202
    R.said(own.alice, room, "alerts", "after the self-ping")


def test_ban_is_logged_counted_and_not_retried(own):
    room = "banny@" + MUC
    R.join(own.alice, room, "alice")
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room)
    R.occupant_present(own.alice, room, "alerts")
    at = R.mark(own.alice)
    R.ban(own.alice, room, ALERTS_JID)
    ferry.wait_log(r"left %s for good: banned" % room)
    time.sleep(3)   # past the first backoff: no join attempt
    assert not own.alice.stanzas(lambda s: s.seq > at and s.name == "presence"
                                 and s.frm == room + "/alerts" and s.type is None)
    m = R.room_metrics(ferry)
    assert m["ferry_webhook_rooms_lost_total"] == 1 and m["ferry_webhook_rooms_joined"] == 0, m


def test_destroyed_room_is_logged_and_counted(own):
    room = "doomed@" + MUC
    R.join(own.alice, room, "alice")
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room)
    R.occupant_present(own.alice, room, "alerts")
    R.destroy(own.alice, room)
    ferry.wait_log(r"left %s for good: the room was destroyed" % room)
    assert R.room_metrics(ferry)["ferry_webhook_rooms_lost_total"] == 1


def test_password_protected_room(own):
    room = "secret@" + MUC
    R.join(own.alice, room, "alice", config={"muc#roomconfig_passwordprotectedroom": "1",
                                             "muc#roomconfig_roomsecret": "sesame"})
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room, extra={"room_password": "sesame"})
    R.occupant_present(own.alice, room, "alerts")
    assert post(ferry, "alerts", "behind a password").status == 202
    R.said(own.alice, room, "alerts", "behind a password")


def test_wrong_password_is_logged_and_not_retried(own):
    room = "secret2@" + MUC
    R.join(own.alice, room, "alice", config={"muc#roomconfig_passwordprotectedroom": "1",
                                             "muc#roomconfig_roomsecret": "sesame"})
    ferry = one_room_ferry(own.tb, own.prosody, own.recv, room, extra={"room_password": "wrong"})
    ferry.wait_log(r"left %s for good: wrong room_password" % room)
    assert R.room_metrics(ferry)["ferry_webhook_rooms_lost_total"] == 1


def test_reload_moves_rooms_and_retries_a_ban(own):
    room_a, room_b = "before@" + MUC, "after@" + MUC
    R.join(own.alice, room_a, "alice")
    R.join(own.alice, room_b, "alice")
    ep = endpoint(own.recv, "/alerts", rooms=[room_a], nick="alerts")
    ferry = own.tb.linked_ferry(own.prosody, {"hooks": component({"alerts": ep})})
    R.occupant_present(own.alice, room_a, "alerts")
    at = R.mark(own.alice)
    # SIGHUP with room_a replaced by room_b: leaves one, joins the other,
    # without dropping the link.
    ep["rooms"] = [room_b]
    ferry.write_config(h.ferry_config(own.prosody.component_port, ferry.http_port,
                                      {"hooks": component({"alerts": ep})}))
    ferry.signal(signal.SIGHUP)
    R.occupant_gone(own.alice, room_a, "alerts", after=at)
    R.occupant_present(own.alice, room_b, "alerts", after=at)
    assert post(ferry, "alerts", "said after the reload").status == 202
    R.said(own.alice, room_b, "alerts", "said after the reload")
    assert not R.said_count(own.alice, room_a, "alerts", "said after the reload")
    assert "rejoined" not in ferry.stderr()    # the link stayed up: no rejoin of room_b
    # A ban is given up on until the next reload, which tries again.
    R.ban(own.alice, room_b, ALERTS_JID)
    ferry.wait_log(r"left %s for good: banned" % room_b)
    ferry.signal(signal.SIGHUP)
    ferry.wait_log(r"left %s for good: banned from the room \(forbidden\)" % room_b)
    assert R.room_metrics(ferry)["ferry_webhook_rooms_lost_total"] == 2
