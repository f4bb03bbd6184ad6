"""Hostile input (issue 11 items 1, 2, 4, 7, 8 and poison stanzas), as a user
sees it: bytes that XML 1.0 forbids, sent from every public side (an IRC
channel, a webhook, Twilio and Telnyx webhooks), arrive cleaned (U+FFFD, or
Latin-1 for IRC text that is not UTF-8), the component stays linked, and the
messages after them arrive. Real Prosody and ngircd.

ngircd relays message text, topics and KICK reasons byte for byte, but
refuses nicks with control characters, empty nicks, and channel names with
\\x01 or Latin-1; those tests use a small fake IRC server on a socket
(FakeIrcServer below), and only for those lines.

Item 7 (a user faking the batch acknowledgement) runs ferry through a TCP
proxy that holds back Prosody's answers to ferry's acknowledgement pings, so
that a user's iq can arrive while one is pending; the proxy changes nothing
else. Poison stanzas are written into the store file before ferry starts,
as a store from an older ferry would hold them."""

import os
import re
import socket
import sqlite3
import threading
import time
from xml.sax.saxutils import quoteattr

import pytest

import durable_helpers as d
import fake_providers as fp
import harness as h
from harness_procs import TcpListener
from irc_helpers import IrcClient, Ngircd, socket_lines

IRC_DOMAIN = "irc.localhost"
HOOKS = "hooks.localhost"
SMS_TW = "sms.localhost"
SMS_TX = "smst.localhost"
SECRET = "s3cret"
IRC = "irc.localhost"        # ngircd
FAKE = "fake.localhost"      # FakeIrcServer
TOKEN = "tok-hostile-Qz71"
ALICE_NUM = "+15550001111"
ALICE_NUM_TX = "+15550001113"
SENDER = "+15557654321"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_DELAY = "urn:xmpp:delay"
NS_OOB = "jabber:x:oob"
FFFD = "\ufffd"

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank"]


# ---------------------------------------------------------------- a fake IRC server


class FakeIrcServer:
    """Registers each client (001, 005, 376), answers JOIN with JOIN, NAMES
    (the names given) and end of NAMES, answers PING; inject() sends raw
    lines to every client. Only for lines a real ngircd would not relay."""

    def __init__(self, name=FAKE, names=b""):
        self.name = name
        self.names = names
        self.clients = []   # (socket, nick)
        self.lines = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads = []
        self._listener = TcpListener(self._on_accept, 16, "fake-irc")
        self.port = self._listener.port

    def _on_accept(self, c):
        c.settimeout(0.2)
        t = threading.Thread(target=self._serve, args=(c,), daemon=True, name="fake-irc-conn")
        self._threads.append(t)
        t.start()

    def _send(self, c, line):
        c.sendall(line + b"\r\n")

    def _serve(self, c):
        nick = b"*"
        with self._lock:
            self.clients.append([c, nick])
        for line in socket_lines(c, self._stop.is_set):
            with self._lock:
                self.lines.append(line)
                self._lock.notify_all()
            words = line.split(b" ")
            cmd = words[0].upper()
            srv = b":" + self.name.encode()
            try:
                if cmd == b"NICK":
                    nick = words[1]
                    with self._lock:
                        for entry in self.clients:
                            if entry[0] is c:
                                entry[1] = nick
                elif cmd == b"USER":
                    self._send(c, srv + b" 001 " + nick + b" :Welcome")
                    self._send(c, srv + b" 005 " + nick + b" CHANTYPES=# PREFIX=(ov)@+ CASEMAPPING=ascii :are supported")
                    self._send(c, srv + b" 376 " + nick + b" :End of MOTD")
                elif cmd == b"PING":
                    self._send(c, srv + b" PONG " + self.name.encode() + b" :" + words[-1].lstrip(b":"))
                elif cmd == b"JOIN":
                    chan = words[1]
                    self._send(c, b":" + nick + b"!u@h JOIN " + chan)
                    self._send(c, srv + b" 353 " + nick + b" = " + chan + b" :" + nick + b" " + self.names)
                    self._send(c, srv + b" 366 " + nick + b" " + chan + b" :End of NAMES")
                elif cmd == b"QUIT":
                    self._send(c, b"ERROR :bye")
                    c.close()
                    return
            except OSError:
                break
        try:
            c.close()
        except OSError:
            pass

    def wait_line(self, pred, timeout=10, what="line"):
        deadline = time.monotonic() + timeout
        with self._lock:
            for _ in range(100000):
                got = [l for l in self.lines if pred(l)]
                if got:
                    return got[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
        raise TimeoutError("fake IRC server: no %s within %.1f s; last lines %r" % (what, timeout, self.lines[-10:]))

    def inject(self, line):
        with self._lock:
            clients = [c for c, _ in self.clients]
        for c in clients:
            try:
                self._send(c, line)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(2)


# ---------------------------------------------------------------- the shared setup


def sms_users_toml(component, pairs):
    return "".join("\n[[components.%s.users]]\njid = %s\nnumber = %s\n" % (
        component, h.toml_value(j), h.toml_value(n)) for j, n in pairs)


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.ngircd = Ngircd(tb.subdir("ngircd"), name=IRC)
    e.fake_irc = FakeIrcServer(names=b"ev\x01il \x1bnick +fine")
    e.twilio = fp.FakeTwilio(numbers=[ALICE_NUM])
    e.telnyx = fp.FakeTelnyx(numbers=[ALICE_NUM_TX])
    tb.fakes = [e.twilio, e.telnyx]
    try:
        e.ngircd.start()
        e.prosody = tb.prosody(components={IRC_DOMAIN: SECRET, HOOKS: SECRET, SMS_TW: SECRET, SMS_TX: SECRET},
                               users=[(u, "localhost", u + "pw") for u in USERS])
        common = {"realname": "ferry user", "throttle_burst": 20, "throttle_rate": 5, "tls": False}
        irc = {"adapter": "irc", "domain": IRC_DOMAIN, "secret": SECRET, "allow": ["localhost"],
               "servers": {IRC: dict(host="127.0.0.1", port=e.ngircd.port, **common),
                           FAKE: dict(host="127.0.0.1", port=e.fake_irc.port, **common)}}
        hooks = {"adapter": "webhook", "domain": HOOKS, "secret": SECRET,
                 "endpoints": {"alerts": {"format": "json", "token": TOKEN, "url": "http://127.0.0.1:9/none",
                                          "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}}
        e.http_port = h.free_port()
        local = "http://127.0.0.1:%d" % e.http_port
        sms_tw = {"adapter": "sms", "domain": SMS_TW, "secret": SECRET, "provider": "twilio",
                  "api_url": e.twilio.url, "account_sid": e.twilio.account_sid,
                  "auth_token": e.twilio.auth_token, "default_country_code": "1"}
        sms_tx = {"adapter": "sms", "domain": SMS_TX, "secret": SECRET, "provider": "telnyx",
                  "api_url": e.telnyx.url, "api_key": e.telnyx.api_key, "public_key": e.telnyx.public_key,
                  "default_country_code": "1"}
        e.store = os.path.join(tb.subdir("store"), "ferry.db")
        text = h.ferry_config(e.prosody.component_port, e.http_port,
                              {"irc": irc, "hooks": hooks, "sms": sms_tw, "smst": sms_tx},
                              log={"level": "debug"}, storage={"path": e.store})
        text += sms_users_toml("sms", [("alice@localhost", ALICE_NUM)])
        text += sms_users_toml("smst", [("alice@localhost", ALICE_NUM_TX)])
        e.ferry = tb.ferry(text, http_port=e.http_port)
        e.twilio.inbound_url = local + "/sms/sms/inbound"
        e.telnyx.inbound_url = local + "/sms/smst/inbound"
        for comp in ("irc", "hooks", "sms", "smst"):
            h.wait_until(lambda comp=comp: link_state(e, comp)[0] == 1, 15, interval=0.1,
                         what="ferry's %s link" % comp)
        yield e
    finally:
        if getattr(e, "ferry", None) is not None:
            e.ferry.stop()
        e.ngircd.stop()
        e.ngircd.cleanup()
        e.fake_irc.close()


def link_state(e, comp):
    """(link up, reconnects so far) of a component, from /metrics."""
    try:
        _, samples, _, _ = e.ferry.metrics()
    except OSError:
        return (None, None)
    up = h.metric_values(samples, "ferry_link_up", component=comp)
    rc = h.metric_values(samples, "ferry_link_reconnects_total", component=comp)
    return (up[0] if up else None, rc[0] if rc else None)


class Linked:
    """`with Linked(env, comp):` asserts at the end that the component's link
    stayed up all along: up now, and no reconnect since the start."""

    def __init__(self, e, comp):
        self.e, self.comp = e, comp

    def __enter__(self):
        up, self.reconnects = link_state(self.e, self.comp)
        assert up == 1, "%s link down before the test" % self.comp
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            time.sleep(0.5)   # a stream error would arrive by now
            up, reconnects = link_state(self.e, self.comp)
            assert (up, reconnects) == (1, self.reconnects), \
                "%s link dropped: up=%s, reconnects %s -> %s" % (self.comp, up, self.reconnects, reconnects)
            # ...and it stayed up because the text was cleaned where it came
            # in, not because the last check on the way out dropped stanzas.
            _, samples, _, _ = self.e.ferry.metrics()
            assert h.metric_value(samples, "ferry_stanzas_refused_total", component=self.comp) == 0


@pytest.fixture
def xmpp(env):
    def make(user):
        return h.XmppClient("%s@localhost" % user, user + "pw", env.prosody.c2s_port)

    yield from h.closed_after(make, best_effort=True)


@pytest.fixture
def irc(env):
    def make(nick):
        return IrcClient(env.ngircd.port, nick)

    yield from h.closed_after(make)


def room(chan, server=IRC):
    return "%s%%%s@%s" % (chan, server, IRC_DOMAIN)


def codes(st):
    x = st.find(NS_MUC_USER, "x")
    return set() if x is None else {int(c.get("code")) for c in x if c.tag == "{%s}status" % NS_MUC_USER}


def child_text(st, name):
    c = st.find(h.NS_CLIENT, name)
    return None if c is None else (c.text or "")


def join(c, rj, nick, history=0, timeout=15):
    """Joins (asking for HISTORY stanzas); returns (all stanzas before the
    subject that are delayed groupchat messages, the subject message)."""
    seen = {id(s) for s in c.stanzas()}
    c.send_raw("<presence to=%s><x xmlns='%s'><history maxstanzas='%d'/></x></presence>" % (
        quoteattr(rj + "/" + nick), NS_MUC, history))
    subj = c.wait(lambda s: id(s) not in seen and s.name == "message" and s.type == "groupchat"
                  and child_text(s, "subject") is not None and (s.frm or "").split("/")[0] == rj,
                  timeout=timeout, what="subject of %s" % rj)
    delayed = [s for s in c.stanzas() if id(s) not in seen and s.name == "message"
               and s.find(NS_DELAY, "delay") is not None]
    return delayed, subj


def wait_groupchat(c, rj, nick, body, timeout=10):
    frm = rj + "/" + nick
    return c.wait(lambda s: s.name == "message" and s.type == "groupchat" and s.frm == frm and s.body == body,
                  timeout=timeout, what="groupchat %r from %s" % (body, frm))


# ---------------------------------------------------------------- item 1: IRC


# What an IRC user sends, and what an XMPP user must see: U+FFFE and U+FFFF
# become U+FFFD; bytes that are not UTF-8 read as Latin-1 (ferry's rule for
# IRC text), each byte one character.
IRC_TEXTS = [
    (b"bad \xef\xbf\xbf end", "bad \ufffd end"),
    (b"\xef\xbf\xbe fffe", "\ufffd fffe"),
    (b"surrogate \xed\xa0\x80", "surrogate \u00ed\u00a0\u0080"),
    (b"overlong \xc0\x80", "overlong \u00c0\u0080"),
    (b"f5 \xf5\x80\x80\x80 f6 \xf6 f7 \xf7", "f5 \u00f5\u0080\u0080\u0080 f6 \u00f6 f7 \u00f7"),
]


def test_irc_text_xml_forbids_arrives_cleaned_and_the_link_stays(env, xmpp, irc):
    """PRIVMSG, TOPIC and KICK reasons with U+FFFF, U+FFFE, a surrogate, an
    overlong form and lead bytes F5-F7 (ngircd relays them as they are)."""
    with Linked(env, "irc"):
        ivan = irc("hivan")
        victim = irc("hvictim")
        ivan.join("#hostile")
        victim.join("#hostile")
        alice = xmpp("alice")
        rj = room("#hostile")
        join(alice, rj, "alice")
        ivan.wait(lambda l: l.command == "JOIN" and l.nick == "alice", what="alice's JOIN")
        for raw, want in IRC_TEXTS:
            ivan.privmsg("#hostile", raw)
            wait_groupchat(alice, rj, "hivan", want)
        ivan.send(b"TOPIC #hostile :topic \xef\xbf\xbf \xed\xa0\x80")
        alice.wait(lambda s: s.name == "message" and child_text(s, "subject") == "topic \ufffd \u00ed\u00a0\u0080",
                   what="the new subject")
        ivan.send(b"KICK #hostile hvictim :reason \xef\xbf\xbe")
        gone = alice.wait(lambda s: s.name == "presence" and s.frm == rj + "/hvictim" and s.type == "unavailable",
                          what="hvictim's kick")
        # XEP-0045: a kick's reason is in the item
        reason = gone.el.find("{%s}x/{%s}item/{%s}reason" % ((NS_MUC_USER,) * 3))
        assert 307 in codes(gone) and reason is not None and reason.text == "reason \ufffd", gone
        ivan.privmsg("#hostile", "after the bad ones")
        wait_groupchat(alice, rj, "hivan", "after the bad ones")
        # The history a newcomer gets holds the same text, cleaned.
        bob = xmpp("bob")
        delayed, _ = join(bob, rj, "bob", history=20)
        bodies = [s.body for s in delayed]
        for _, want in IRC_TEXTS:
            assert want in bodies, bodies
        assert "after the bad ones" in bodies, bodies


def test_history_stored_before_the_fix_is_replayed_cleaned(env, xmpp, irc):
    """Rows an older ferry stored as they came (U+FFFF in a body, a control
    character in a nick, an empty nick) are cleaned when they are replayed,
    and the link stays up."""
    with Linked(env, "irc"):
        ivan = irc("hivan2")
        ivan.join("#hostile2")
        carol = xmpp("carol")
        rj = room("#hostile2")
        join(carol, rj, "carol")
        ivan.privmsg("#hostile2", "recorded live")
        wait_groupchat(carol, rj, "hivan2", "recorded live")
        con = sqlite3.connect(env.store, timeout=10)
        try:
            def recorded():
                return con.execute("SELECT room FROM history WHERE component = 'irc' AND body = 'recorded live'"
                                   ).fetchone()
            (key,) = h.wait_until(recorded, 10, what="the live message in the history table")
            now = int(time.time() * 1000)
            with con:
                for nick, body in [(b"ev\x01il", b"old \xef\xbf\xbf body"), (b"", b"no nick \xed\xa0\x80")]:
                    con.execute("INSERT INTO history (component, room, ts_ms, nick, body) VALUES (?, ?, ?, ?, ?)",
                                ("irc", key, now, nick.decode("latin-1"), body.decode("latin-1")))
                # Store them as the raw bytes an older ferry wrote.
                con.execute("UPDATE history SET nick = CAST(? AS TEXT), body = CAST(? AS TEXT) "
                            "WHERE component = 'irc' AND nick = ?", (b"ev\x01il", b"old \xef\xbf\xbf body",
                                                                      "ev\x01il"))
                con.execute("UPDATE history SET body = CAST(? AS TEXT) WHERE component = 'irc' AND nick = ''",
                            (b"no nick \xed\xa0\x80",))
        finally:
            con.close()
        dave = xmpp("dave")
        delayed, _ = join(dave, rj, "dave", history=20)
        got = {(s.frm, s.body) for s in delayed}
        assert (rj, "old " + FFFD + " body") in got, got   # the nick cannot be a resource
        assert (rj, "no nick " + FFFD * 3) in got, got
        assert (rj + "/hivan2", "recorded live") in got, got


def fake_room(chan):
    return room(chan, FAKE)


def test_nicks_and_channels_no_jid_can_carry_are_ignored(env, xmpp):
    """From a server that sends what ngircd never would: NAMES entries and a
    nick with control characters, an empty nick, INVITE to channel names
    with \\x01 or Latin-1. ferry ignores those lines (their sender cannot be
    a JID) and the link stays up; the lines around them arrive."""
    f = env.fake_irc
    with Linked(env, "irc"):
        erin = xmpp("erin")
        rj = fake_room("#fake")
        join(erin, rj, "erin")
        occupants = {s.frm for s in erin.stanzas() if s.name == "presence" and (s.frm or "").startswith(rj + "/")}
        assert rj + "/fine" in occupants, occupants
        assert all("\x01" not in o and "\x1b" not in o for o in occupants), occupants
        for line in [b":ev\x01il!u@h PRIVMSG #fake :from a control nick",
                     b":\x1bnick!u@h PRIVMSG #fake :from an escape nick",
                     b": PRIVMSG #fake :from an empty nick",
                     b":!u@h PRIVMSG #fake :from an empty nick too",
                     b":fine!u@h NICK :bad\x01nick",
                     b":fine!u@h KICK #fake ev\x01il :bye",
                     b":fine!u@h INVITE erin :#bad\x01chan",
                     b":fine!u@h INVITE erin :#caf\xe9",
                     b":fine!u@h PRIVMSG #fake :still here"]:
            f.inject(line)
        wait_groupchat(erin, rj, "fine", "still here")
        later = [s for s in erin.stanzas() if s.name == "message" and s.body and "nick" in s.body]
        assert later == [], later
        invites = [s for s in erin.stanzas() if s.name == "message" and s.find(NS_MUC_USER, "x") is not None]
        assert invites == [], invites
        # A good invite still arrives.
        f.inject(b":fine!u@h INVITE erin :#good")
        erin.wait(lambda s: s.name == "message" and s.frm == fake_room("#good"), what="the good invite")


# ---------------------------------------------------------------- item 2: webhooks and SMS


def post_hook(env, doc, content_type="application/json"):
    body = doc if isinstance(doc, (str, bytes)) else __import__("json").dumps(doc)
    return h.http_request("POST", env.ferry.url("/hooks/hooks/alerts"), body,
                          {"Content-Type": content_type, "Authorization": "Bearer " + TOKEN})


def test_webhook_text_xml_forbids_arrives_cleaned_and_later_ones_flow(env, xmpp):
    alice = xmpp("alice")
    with Linked(env, "hooks"):
        for text, want in [("bad \uffff", "bad " + FFFD), ("ctl \u0001 \u001b", "ctl %s %s" % (FFFD, FFFD))]:
            r = post_hook(env, {"text": text})
            assert r.status == 202, r
            alice.wait_message(lambda s: s.body == want, what="webhook text %r" % want)
        r = post_hook(env, b"plain \xef\xbf\xbe", content_type="text/plain; charset=utf-8")
        assert r.status == 202, r
        alice.wait_message(lambda s: s.body == "plain " + FFFD, what="the text/plain one")
        r = post_hook(env, {"text": "after the bad ones"})
        assert r.status == 202, r
        alice.wait_message(lambda s: s.body == "after the bad ones", what="the later webhook")
    assert env.ferry.healthz()[0] == 200


def twilio_post_raw(f, pairs):
    """Twilio's inbound form, with values as bytes (any byte, as a phone
    network might hand them on), signed over those bytes."""
    import base64
    import hashlib
    import hmac
    import urllib.parse
    body = "&".join("%s=%s" % (urllib.parse.quote_plus(k), urllib.parse.quote_plus(v)) for k, v in pairs)
    data = f.inbound_url.encode() + b"".join(k.encode() + (v if isinstance(v, bytes) else v.encode())
                                             for k, v in sorted(pairs, key=lambda kv: kv[0]))
    sig = base64.b64encode(hmac.new(f.auth_token.encode(), data, hashlib.sha1).digest()).decode()
    return h.http_request("POST", f.inbound_url, body,
                          {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                           "X-Twilio-Signature": sig})


def sms_from(domain):
    return "%s@%s" % (SENDER, domain)


def test_twilio_body_ending_in_a_lone_lead_byte(env, xmpp):
    """Item 4: a Body ending in a lone UTF-8 lead byte (x%F0) is read to its
    end and no further (the ASan build would report the over-read), and the
    user sees the byte as U+FFFD."""
    f = env.twilio
    alice = xmpp("alice")
    with Linked(env, "sms"):
        for body, want in [(b"x\xf0", "x" + FFFD), (b"y\xe2\x82", "y" + FFFD), (b"z\xc3", "z" + FFFD)]:
            _, params = f.inbound_params(SENDER, ALICE_NUM, "x", message_sid=fp.twilio_sid("SM"))
            r = twilio_post_raw(f, [(k, body if k == "Body" else v) for k, v in params])
            assert r.status == 200, r
            alice.wait_message(lambda s, want=want: s.body == want, what="the Body %r" % body)


def test_twilio_body_and_media_xml_forbids_arrive_cleaned(env, xmpp):
    """Item 2 for Twilio: U+FFFF in Body, \\x01 in a media URL."""
    f = env.twilio
    alice = xmpp("alice")
    with Linked(env, "sms"):
        ans, _ = f.send_inbound(SENDER, ALICE_NUM, "tw bad \uffff")
        assert ans.status == 200, ans
        alice.wait_message(lambda s: s.frm and s.frm.startswith(sms_from(SMS_TW)) and s.body == "tw bad " + FFFD,
                           what="the Twilio body")
        media = "https://media.example/a\u0001b.jpg"
        ans, _ = f.send_inbound(SENDER, ALICE_NUM, "tw media", media=[(media, "image/jpeg")])
        assert ans.status == 200, ans
        cleaned = "https://media.example/a%sb.jpg" % FFFD
        m = alice.wait_message(lambda s: s.body == "tw media\n" + cleaned, what="the Twilio MMS")
        oob = m.find(NS_OOB, "x")
        assert oob is not None and oob[0].text == cleaned, m
        ans, _ = f.send_inbound(SENDER, ALICE_NUM, "tw after")
        assert ans.status == 200, ans
        alice.wait_message(lambda s: s.body == "tw after", what="the later SMS")


def test_telnyx_text_and_media_xml_forbids_arrive_cleaned(env, xmpp):
    f = env.telnyx
    alice = xmpp("alice")
    with Linked(env, "smst"):
        ans, _ = f.send_inbound(SENDER, ALICE_NUM_TX, "tx bad \ufffe")
        assert ans.status == 200, ans
        alice.wait_message(lambda s: s.frm and s.frm.startswith(sms_from(SMS_TX)) and s.body == "tx bad " + FFFD,
                           what="the Telnyx text")
        media = "https://media.example/t\u0001.png"
        ans, _ = f.send_inbound(SENDER, ALICE_NUM_TX, "tx media", media=[(media, "image/png")])
        assert ans.status == 200, ans
        cleaned = "https://media.example/t%s.png" % FFFD
        alice.wait_message(lambda s: s.body == "tx media\n" + cleaned, what="the Telnyx MMS")
        ans, _ = f.send_inbound(SENDER, ALICE_NUM_TX, "tx after")
        assert ans.status == 200, ans
        alice.wait_message(lambda s: s.body == "tx after", what="the later SMS")


# ---------------------------------------------------------------- item 8: long reflections


def test_groupchat_over_16k_is_reflected_to_its_sender(env, xmpp, irc):
    with Linked(env, "irc"):
        ivan = irc("hivan3")
        ivan.join("#long")
        frank = xmpp("frank")
        rj = room("#long")
        join(frank, rj, "frank")
        ivan.wait(lambda l: l.command == "JOIN" and l.nick == "frank", what="frank's JOIN")
        # Over 16 KiB once escaped (Prosody's c2s takes few entity
        # references in one stanza, so mostly plain text).
        body = "<&> " + "long words " * 2000
        frank.send_message(rj, body, mtype="groupchat")
        wait_groupchat(frank, rj, "frank", body, timeout=20)
        ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "frank", what="the text on IRC")


# ---------------------------------------------------------------- item 7: the batch acknowledgement


class AckHoldingProxy:
    """A TCP proxy between ferry and the XMPP server's component port that,
    while hold is set, keeps back the server's answers to ferry's batch
    acknowledgement pings (self-closing <iq .../> with an id starting
    ferry-ack-) until release(); everything else passes unchanged."""

    ACK = re.compile(rb"<iq\b[^>]*\bid=(['\"])ferry-ack-[^'\"]*\1[^>]*/>")

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.hold = False
        self.held = []          # (ferry-side socket, answer bytes)
        self.seen = []          # every ack answer that came by
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._listener = TcpListener(self._on_accept, 4, "ack-proxy")
        self.port = self._listener.port

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True, name="ack-proxy")
        self._threads.append(t)
        t.start()

    def _on_accept(self, down):
        up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        for s in (down, up):
            s.settimeout(0.2)
        self._spawn(self._pump, down, up, False)
        self._spawn(self._pump, up, down, True)

    def _pump(self, src, dst, from_server):
        buf = b""
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if not from_server:
                dst.sendall(data)
                continue
            buf += data
            lt = buf.rfind(b"<")
            cut = len(buf) if lt < 0 or buf.find(b">", lt) >= 0 else lt
            chunk, buf = buf[:cut], buf[cut:]
            out = b""
            pos = 0
            for m in self.ACK.finditer(chunk):
                out += chunk[pos:m.start()]
                pos = m.end()
                with self._lock:
                    self.seen.append(m.group(0))
                    if self.hold:
                        self.held.append((dst, m.group(0)))
                        continue
                out += m.group(0)
            out += chunk[pos:]
            try:
                dst.sendall(out)
            except OSError:
                return

    def release(self):
        with self._lock:
            self.hold = False
            held, self.held = self.held, []
        for dst, data in held:
            dst.sendall(data)

    def close(self):
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(2)


def outbox_pending(ferry, comp):
    _, samples, _, _ = ferry.metrics()
    return h.metric_value(samples, "ferry_outbox_pending", component=comp)


def test_a_user_cannot_fake_the_batch_acknowledgement(testbed, ferry_bin):
    """A webhook message is stored, sent, and followed by a ping whose answer
    marks it done. While Prosody's answer is held back, a user sends the
    component iqs with the ids ferry used to use (ferry-ack-1...) and a
    result with the very id of the pending ping: none of them counts, the
    message stays pending; Prosody's own answer then does count."""
    tb = testbed
    prosody = tb.prosody(components={HOOKS: SECRET},
                         users=[("alice", "localhost", "alicepw"), ("mallory", "localhost", "mallorypw")])
    proxy = AckHoldingProxy(prosody.component_port)
    try:
        port = h.free_port()
        hooks = {"adapter": "webhook", "domain": HOOKS, "secret": SECRET,
                 "endpoints": {"alerts": {"format": "json", "token": TOKEN, "url": "http://127.0.0.1:9/none",
                                          "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}}
        text = h.ferry_config(proxy.port, port, {"hooks": hooks},
                              storage={"path": os.path.join(tb.subdir("store"), "ferry.db")})
        ferry = tb.ferry(text, http_port=port)
        alice = tb.client("alice@localhost", "alicepw", prosody)
        mallory = tb.client("mallory@localhost", "mallorypw", prosody)
        h.wait_until(lambda: outbox_pending(ferry, "hooks") == 0, 10, what="an empty outbox")
        proxy.hold = True
        r = h.post_json(ferry.url("/hooks/hooks/alerts"), {"text": "held ack"}, TOKEN)
        assert r.status == 202, r
        alice.wait_message(lambda s: s.body == "held ack", what="the webhook message")
        h.wait_until(lambda: proxy.held, 10, what="Prosody's answer to ferry's acknowledgement ping")
        (_, answer), = proxy.held
        real_id = re.search(rb"\bid=['\"]([^'\"]+)", answer).group(1).decode()
        assert outbox_pending(ferry, "hooks") == 1
        for n in range(1, 6):
            reply = mallory.iq(HOOKS, "get", "<ping xmlns='urn:xmpp:ping'/>", id="ferry-ack-%d" % n)
            assert reply.type in ("result", "error"), reply   # answered, not swallowed
        mallory.send_raw("<iq type='result' id=%s to='%s'/>" % (quoteattr(real_id), HOOKS))
        mallory.send_raw("<iq type='error' id=%s to='%s'/>" % (quoteattr(real_id), HOOKS))
        mallory.iq(HOOKS, "get", "<ping xmlns='urn:xmpp:ping'/>")   # all of the above has reached ferry
        time.sleep(0.3)   # a wrongly counted answer would show at the next commit
        assert outbox_pending(ferry, "hooks") == 1, "a user's iq was taken for the server's answer"
        proxy.release()
        h.wait_until(lambda: outbox_pending(ferry, "hooks") == 0, 10, what="the server's answer to count")
        # What made that hold: an id nobody can guess, answered from the
        # server's domain (Prosody answers from the domain pinged).
        assert re.fullmatch(r"ferry-ack-[0-9a-f]{32}-[0-9]+", real_id), real_id
        assert re.search(rb"\bfrom=['\"]localhost['\"]", answer), answer
    finally:
        proxy.close()


# ---------------------------------------------------------------- poison stanzas


def test_a_stored_stanza_the_server_refuses_goes_to_the_dead_list(testbed, ferry_bin):
    """A store written by an older ferry holds, between good messages, a
    stanza Prosody answers by closing the stream (a 'from' outside the
    component's domain) and one with U+FFFF. After a few drops the first goes
    to the dead list with the reason; the second is sent cleaned; the ones
    behind both arrive, and the link stays up."""
    tb = testbed
    prosody = tb.prosody(components={HOOKS: SECRET}, users=[("alice", "localhost", "alicepw")])
    store = os.path.join(tb.subdir("store"), "ferry.db")
    port = h.free_port()
    hooks = {"adapter": "webhook", "domain": HOOKS, "secret": SECRET,
             "endpoints": {"alerts": {"format": "json", "token": TOKEN, "url": "http://127.0.0.1:9/none",
                                      "deliver_to": ["alice@localhost"], "allow": ["localhost"]}}}
    text = h.ferry_config(prosody.component_port, port, {"hooks": hooks}, storage={"path": store})
    first = tb.ferry(text, http_port=port, name="ferry-first")   # creates the store
    first.stop()

    def msg(mid, body, frm="alerts@" + HOOKS):
        return (b"<message from='%s' to='alice@localhost' type='chat' id='%s'><body>%s</body></message>"
                % (frm.encode(), mid.encode(), body))

    rows = [("p1", msg("p1", b"before the poison")),
            ("p2", msg("p2", b"poison", frm="evil@elsewhere.localhost")),
            ("p3", msg("p3", b"stored \xef\xbf\xbf raw")),
            ("p4", msg("p4", b"after the poison"))]
    con = sqlite3.connect(store, timeout=10)
    try:
        now = int(time.time() * 1000)
        with con:
            for dedup, payload in rows:
                con.execute("INSERT INTO messages (component, direction, conversation, dedup, payload, "
                            "created_ms, next_ms, updated_ms) VALUES ('hooks', 1, '', ?, ?, ?, ?, ?)",
                            (dedup, payload, now, now, now))
    finally:
        con.close()
    alice = tb.client("alice@localhost", "alicepw", prosody)
    ferry = tb.ferry(text, http_port=port, wait_up=False)
    for body in ("before the poison", "stored \ufffd raw", "after the poison"):
        alice.wait_message(lambda s, body=body: s.body == body, timeout=30, what=body)
    assert not alice.messages(lambda s: s.body == "poison")
    h.wait_until(lambda: outbox_pending(ferry, "hooks") == 0, 10, what="nothing pending")
    _, samples, _, _ = ferry.metrics()
    assert h.metric_value(samples, "ferry_outbox_dead", component="hooks") == 1
    assert h.metric_value(samples, "ferry_link_up", component="hooks") == 1
    # Every message, in order, the poison excepted (at least once: what was
    # written before a drop and not acknowledged goes again).
    got = [s.body for s in alice.messages(lambda s: s.body)]
    assert list(dict.fromkeys(got)) == ["before the poison", "stored \ufffd raw", "after the poison"], got
    ferry.stop()
    [dead] = [r for r in d.queue_list(ferry.config_path, binary=ferry.binary) if r.state == "dead"]
    assert "invalid-from" in (dead.error or ""), dead
