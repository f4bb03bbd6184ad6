"""IRC adapter end to end, as a user sees it: real Prosody, real ngircd,
ferry, slixmpp clients (with the xep_0045 plugin) and raw-socket IRC clients.

One Prosody, one ngircd (plain and TLS ports) and one ferry for the module;
a second ngircd for the restart tests, which stop and start it. Every test
uses its own XMPP accounts, IRC nicks and channels, so that the IRC
connections ferry keeps per (JID, server) never carry over between tests.
"""

import re
import signal
import time
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import pytest

import harness as h
from irc_fixtures import IrcEnv, irc, irc_component, users, wait_link_up, xmpp  # noqa: F401 (fixtures)
from irc_helpers import IrcClient, Ngircd, strip_nick_prefix

DOMAIN = "irc.localhost"          # the component
SECRET = "s3cret"
IRC = "irc.localhost"             # main ngircd: its name and the [servers] key
TLS = "tls.localhost"             # same ngircd's TLS port, verify_cert = true
TLS_NV = "tlsnv.localhost"        # same TLS port, verify_cert = false
IRC2 = "irc2.localhost"           # a second ngircd, stopped and restarted by tests
DEF_DOMAIN = "ircdef.localhost"   # a second component, for a ferry with default_server

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivy", "judy",
         "kim", "leo", "mia", "ned", "olga", "pete", "quin", "rita", "sam", "tina", "uma",
         "vera", "walt", "xena", "yuri", "zoe", "abe", "bea", "cal", "dee", "eli", "fay",
         "gus", "hal", "ida", "jon", "kat", "lou", "max", "nat", "oz", "pam", "ray", "sue",
         "hana", "iris", "jade", "kira", "lena", "mona", "nora", "opal", "pia", "ria", "sid",
         "tom", "una"]


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.ngircd = e.start_ngircd(IRC, tls=True)
        e.ngircd2 = e.start_ngircd(IRC2)
        e.prosody = tb.prosody(vhosts=("localhost", "other.localhost"),
                               components={DOMAIN: SECRET, DEF_DOMAIN: SECRET},
                               users=users(USERS) + users(["mallory"], "other.localhost"))
        common = {"realname": "ferry user", "throttle_burst": 10, "throttle_rate": 2}
        e.servers = {
            IRC: dict(host="127.0.0.1", port=e.ngircd.port, tls=False, verify_cert=True, **common),
            TLS: dict(host="127.0.0.1", port=e.ngircd.tls_port, tls=True, verify_cert=True, **common),
            TLS_NV: dict(host="127.0.0.1", port=e.ngircd.tls_port, tls=True, verify_cert=False, **common),
            IRC2: dict(host="127.0.0.1", port=e.ngircd2.port, tls=False, **common),
        }
        e.link({"irc": irc_component(DOMAIN, SECRET, e.servers)}, admin={"jids": ["ria@localhost"]})
        yield e


# ---------------------------------------------------------------- helpers


def room(chan, server=IRC):
    return "%s%%%s@%s" % (chan, server, DOMAIN)


def user_jid(nick, server=IRC):
    return "%s%%%s@%s" % (nick, server, DOMAIN)


def muc_x(st):
    return st.find(NS_MUC_USER, "x")


def codes(st):
    x = muc_x(st)
    if x is None:
        return set()
    return {int(c.get("code")) for c in x if c.tag == "{%s}status" % NS_MUC_USER}


def item(st):
    x = muc_x(st)
    if x is None:
        return None
    for c in x:
        if c.tag == "{%s}item" % NS_MUC_USER:
            return c
    return None


def subject_of(st):
    s = st.find(h.NS_CLIENT, "subject")
    return None if s is None else (s.text or "")


def status_text(st):
    s = st.find(h.NS_CLIENT, "status")
    return None if s is None else (s.text or "")


class Mark:
    """The stanzas a client has received so far; new(s) tells later ones."""

    def __init__(self, client):
        self.client = client
        self.seen = {id(s) for s in client.stanzas()}

    def new(self, s):
        return id(s) not in self.seen

    def wait(self, pred, timeout=10, what="stanza", count=1):
        return self.client.wait(lambda s: self.new(s) and pred(s), timeout=timeout, what=what, count=count)

    def all(self, pred=None):
        return [s for s in self.client.stanzas() if self.new(s) and (pred is None or pred(s))]


def is_presence_from(s, jid, type=None):
    return s.name == "presence" and s.frm == jid and s.type == type


def self_presence(room_jid):
    return lambda s: (s.name == "presence" and s.type is None and (s.frm or "").startswith(room_jid + "/")
                      and 110 in codes(s))


def join(c, room_jid, nick, timeout=15, expect_error=False):
    """Sends a MUC join (no history) and waits for the self-presence (110)
    and the subject, or for an error presence. Returns (mark, final stanza):
    the subject message, or the error presence."""
    m = Mark(c)
    pid = h.new_id("join")
    c.send_raw("<presence to=%s id=%s><x xmlns='%s'><history maxstanzas='0'/></x></presence>" % (
        quoteattr(room_jid + "/" + nick), quoteattr(pid), NS_MUC))
    first = m.wait(lambda s: s.name == "presence" and (s.frm or "").startswith(room_jid + "/")
                   and (s.type == "error" or (s.type is None and 110 in codes(s))),
                   timeout=timeout, what="self-presence or error for %s/%s" % (room_jid, nick))
    if first.type == "error":
        if not expect_error:
            raise AssertionError("join of %s/%s failed: %r" % (room_jid, nick, first))
        return m, first
    assert not expect_error, "join of %s/%s succeeded: %r" % (room_jid, nick, first)
    subj = m.wait(lambda s: s.name == "message" and s.type == "groupchat" and subject_of(s) is not None
                  and (s.frm or "").split("/")[0] == room_jid, timeout=timeout,
                  what="subject of %s" % room_jid)
    return m, subj


def leave(c, room_jid, nick, status=None, timeout=10):
    """Sends unavailable presence to the occupant JID and waits for our own
    unavailable presence (110)."""
    m = Mark(c)
    inner = "<status>%s</status>" % xml_escape(status) if status is not None else ""
    c.send_raw("<presence type='unavailable' to=%s>%s</presence>" % (quoteattr(room_jid + "/" + nick), inner))
    return m.wait(lambda s: s.name == "presence" and s.type == "unavailable"
                  and (s.frm or "").startswith(room_jid + "/") and 110 in codes(s), timeout=timeout,
                  what="own unavailable presence from %s" % room_jid)


def groupchat(c, room_jid, body, id=None, extra=""):
    return c.send_message(room_jid, body, id=id, mtype="groupchat", extra=extra)


def wait_groupchat(c, room_jid, nick, body, timeout=10, mark=None):
    frm = room_jid + "/" + nick
    pred = (lambda s: s.name == "message" and s.type == "groupchat" and s.frm == frm and s.body == body)
    if mark:
        return mark.wait(pred, timeout=timeout, what="groupchat %r from %s" % (body[:60], frm))
    return c.wait(pred, timeout=timeout, what="groupchat %r from %s" % (body[:60], frm))


def privmsgs(ircc, channel, nick, since=0):
    return [l for l in ircc.lines(since=since)
            if l.command == "PRIVMSG" and l.nick == nick and l.params and l.params[0].lower() == channel.lower()]


def wait_privmsg(ircc, channel, nick, text, since=0, timeout=10):
    return ircc.wait(lambda l: l.command == "PRIVMSG" and l.nick == nick and len(l.params) == 2
                     and l.params[0].lower() == channel.lower() and l.params[1] == text,
                     timeout=timeout, since=since, what="PRIVMSG %s %r from %s" % (channel, text[:60], nick))


def wait_gone_from_irc(ircc, nick, timeout=10):
    """Polls ISON until nick is no longer on the server (ferry QUIT)."""
    h.wait_until(lambda: nick not in ircc.ison(nick), timeout, interval=0.2,
                 what="%s to leave the IRC server" % nick)


def setup_room(irc, xmpp, op, channel, *users, room_server=IRC, ngircd=None, wait_join=True):
    """The usual start of a test: the IRC user `op` creates `channel` (on
    ngircd, default the main one); a client for each XMPP user joins its
    room (on room_server) with the user's name as nick, one after the other;
    unless wait_join is false, IRC has then seen the last one's JOIN.
    Returns (op's IrcClient, the room JID, the XMPP clients...)."""
    ivan = irc(op, server=ngircd)
    ivan.join(channel)
    clients = [xmpp(u) for u in users]
    rj = room(channel, room_server)
    for u, c in zip(users, clients):
        join(c, rj, u)
    if wait_join:
        ivan.wait(lambda l: l.command == "JOIN" and l.nick == users[-1])
    return (ivan, rj) + tuple(clients)


# ---------------------------------------------------------------- join / leave


def test_join_occupants_roles_self_presence_and_empty_subject(env, xmpp, irc):
    ivan = irc("ivan")
    assert "@ivan" in ivan.join("#welcome")
    pat = irc("pat")
    pat.join("#welcome")
    vic = irc("vic")
    vic.join("#welcome")
    m = ivan.mark()
    ivan.send("MODE #welcome +v vic")
    ivan.wait(r"MODE #welcome \+v vic", since=m)

    alice = xmpp("alice")
    rj = room("#welcome")
    mark = Mark(alice)
    pres, subject, _, _ = alice.call(
        lambda x: x.plugin["xep_0045"].join_muc_wait(rj, "alice", maxstanzas=0, timeout=15), timeout=20)
    assert pres["from"] == rj + "/alice"
    assert subject["subject"] == ""

    got = mark.all()
    presences = [s for s in got if s.name == "presence" and (s.frm or "").startswith(rj + "/")]
    by_nick = {s.frm.split("/", 1)[1]: s for s in presences}
    assert set(by_nick) == {"ivan", "pat", "vic", "alice"}, presences
    # the IRC channel creator is an op: moderator (admin, as biboumi maps @)
    assert item(by_nick["ivan"]).get("role") == "moderator", by_nick["ivan"]
    assert item(by_nick["ivan"]).get("affiliation") == "admin", by_nick["ivan"]
    assert item(by_nick["pat"]).get("role") == "participant", by_nick["pat"]
    assert item(by_nick["pat"]).get("affiliation") == "none", by_nick["pat"]
    assert item(by_nick["vic"]).get("role") == "participant", by_nick["vic"]
    assert item(by_nick["vic"]).get("affiliation") == "member", by_nick["vic"]
    me = by_nick["alice"]
    assert 110 in codes(me) and me.type is None
    assert item(me).get("role") == "participant"
    # XEP-0045 order: occupants, then self-presence, then the subject
    order = [s for s in got if s in presences or subject_of(s) is not None]
    assert order[-2] is me, order
    subj = order[-1]
    assert subj.name == "message" and subj.type == "groupchat" and subject_of(subj) == "", subj
    assert subj.body is None, subj
    for s in presences:
        assert s.type is None, s

    # the IRC side saw the JOIN
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "alice" and l.params[0] == "#welcome")
    assert "alice" in [strip_nick_prefix(n) for n in ivan.names("#welcome")]

    # a channel nobody is in: alice creates it and is its moderator
    rf = room("#fresh-alice")
    _, subj = join(alice, rf, "alice")
    me = alice.wait(lambda s: self_presence(rf)(s))
    assert item(me).get("role") == "moderator", me
    assert subject_of(subj) == ""
    assert [s for s in alice.stanzas(lambda s: s.name == "presence" and (s.frm or "").startswith(rf + "/"))] == [me]


def test_join_gets_topic_as_subject(env, xmpp, irc):
    ivan = irc("ivan2")
    ivan.join("#topical")
    m = ivan.mark()
    ivan.send("TOPIC #topical :Weekly release planning \u2013 bring notes")
    ivan.wait(lambda l: l.command == "TOPIC", since=m)
    bob = xmpp("bob")
    rj = room("#topical")
    _, subj = join(bob, rj, "bob")
    assert subject_of(subj) == "Weekly release planning \u2013 bring notes", subj
    assert subj.body is None


def test_leave_parts_on_irc_and_quits_after_last_room(env, xmpp, irc):
    ivan, rj, carol = setup_room(irc, xmpp, "ivan3", "#leaving", "carol")
    m = ivan.mark()
    unavailable = leave(carol, rj, "carol", status="see you")
    assert unavailable.type == "unavailable" and unavailable.frm == rj + "/carol"
    assert 110 in codes(unavailable), unavailable
    part = ivan.wait(lambda l: l.command == "PART" and l.nick == "carol", since=m, what="PART from carol")
    assert part.params[0] == "#leaving"
    assert part.params[1:] == ["see you"], part
    assert "carol" not in [strip_nick_prefix(n) for n in ivan.names("#leaving")]
    # the last room is left: the connection QUITs
    wait_gone_from_irc(ivan, "carol")


# ---------------------------------------------------------------- talking


def test_two_xmpp_users_and_one_irc_user_talk_all_ways(env, xmpp, irc):
    ivan = irc("ivan4")
    ivan.join("#talk")
    dave, erin = xmpp("dave"), xmpp("erin")
    rj = room("#talk")
    join(dave, rj, "dave")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "dave")
    me, _ = join(erin, rj, "erin")
    occupants = {s.frm.split("/", 1)[1]: s for s in me.all(lambda s: s.name == "presence" and s.type is None
                                                             and (s.frm or "").startswith(rj + "/"))}
    assert set(occupants) == {"ivan4", "dave", "erin"}, occupants
    assert item(occupants["dave"]).get("role") == "participant"
    # dave sees erin arrive
    dave.wait(lambda s: is_presence_from(s, rj + "/erin"), what="erin's presence")

    m = ivan.mark()
    md, me = Mark(dave), Mark(erin)
    mid = groupchat(dave, rj, "hello from dave \u00e9\u00e8")
    refl = wait_groupchat(dave, rj, "dave", "hello from dave \u00e9\u00e8", mark=md)
    assert refl.id == mid, "the reflection must keep the original id: %r" % refl
    wait_groupchat(erin, rj, "dave", "hello from dave \u00e9\u00e8", mark=me)
    wait_privmsg(ivan, "#talk", "dave", "hello from dave \u00e9\u00e8", since=m)

    eid = groupchat(erin, rj, "erin here")
    refl = wait_groupchat(erin, rj, "erin", "erin here", mark=me)
    assert refl.id == eid, refl
    wait_groupchat(dave, rj, "erin", "erin here", mark=md)
    wait_privmsg(ivan, "#talk", "erin", "erin here", since=m)

    ivan.privmsg("#talk", "hi both, from IRC")
    wait_groupchat(dave, rj, "ivan4", "hi both, from IRC", mark=md)
    wait_groupchat(erin, rj, "ivan4", "hi both, from IRC", mark=me)

    # nothing doubled: each message reached each client once
    time.sleep(0.5)
    for c, mk in ((dave, md), (erin, me)):
        bodies = [s.body for s in mk.all(lambda s: s.name == "message" and s.type == "groupchat" and s.body)]
        assert sorted(bodies) == sorted(["hello from dave \u00e9\u00e8", "erin here", "hi both, from IRC"]), \
            (c.jid, bodies)
    assert len(privmsgs(ivan, "#talk", "dave", m)) == 1
    assert len(privmsgs(ivan, "#talk", "erin", m)) == 1


# ---------------------------------------------------------------- nicks


def test_nick_change_from_irc(env, xmpp, irc):
    ivan, rj, frank = setup_room(irc, xmpp, "ivan5", "#nicks-irc", "frank", wait_join=False)
    m = Mark(frank)
    ivan.send("NICK ivan5_away")
    gone = m.wait(lambda s: is_presence_from(s, rj + "/ivan5", "unavailable"), what="ivan5 unavailable")
    assert 303 in codes(gone), gone
    assert item(gone).get("nick") == "ivan5_away", gone
    assert 110 not in codes(gone)
    back = m.wait(lambda s: is_presence_from(s, rj + "/ivan5_away"), what="ivan5_away available")
    got = m.all(lambda s: s.name == "presence")
    assert got.index(gone) < got.index(back)
    assert item(back).get("role") == "moderator", back   # still the op
    ivan.privmsg("#nicks-irc", "new name, same me")
    wait_groupchat(frank, rj, "ivan5_away", "new name, same me", mark=m)


def test_nick_change_from_xmpp(env, xmpp, irc):
    ivan, rj, grace = setup_room(irc, xmpp, "ivan6", "#nicks-xmpp", "grace")
    m, mi = Mark(grace), ivan.mark()
    grace.send_raw("<presence to=%s/>" % quoteattr(rj + "/grace_hopper"))
    nick = ivan.wait(lambda l: l.command == "NICK" and l.nick == "grace", since=mi, what="NICK from grace")
    assert nick.params == ["grace_hopper"], nick
    gone = m.wait(lambda s: is_presence_from(s, rj + "/grace", "unavailable"), what="own 303")
    assert {303, 110} <= codes(gone), gone
    assert item(gone).get("nick") == "grace_hopper"
    back = m.wait(lambda s: is_presence_from(s, rj + "/grace_hopper"), what="new self-presence")
    assert 110 in codes(back), back
    mid = groupchat(grace, rj, "renamed")
    refl = wait_groupchat(grace, rj, "grace_hopper", "renamed", mark=m)
    assert refl.id == mid
    wait_privmsg(ivan, "#nicks-xmpp", "grace_hopper", "renamed", since=mi)
    # a nick that is taken on IRC: conflict, and the old nick stays
    m = Mark(grace)
    grace.send_raw("<presence to=%s/>" % quoteattr(rj + "/ivan6"))
    err = m.wait(lambda s: s.name == "presence" and s.type == "error", what="conflict for a taken nick")
    assert err.error_condition == "conflict", err
    groupchat(grace, rj, "still grace_hopper")
    wait_privmsg(ivan, "#nicks-xmpp", "grace_hopper", "still grace_hopper", since=mi)
    assert not m.all(lambda s: s.name == "presence" and s.type == "unavailable"), m.all()


def test_irc_users_join_part_quit_and_modes(env, xmpp, irc):
    ivan, rj, hal = setup_room(irc, xmpp, "ivan26", "#comings", "hal", wait_join=False)
    m = Mark(hal)
    kay = irc("kay26")
    kay.join("#comings")
    p = m.wait(lambda s: is_presence_from(s, rj + "/kay26"), what="kay26 joins")
    assert item(p).get("role") == "participant"
    ivan.send("MODE #comings +o kay26")
    p = m.wait(lambda s: is_presence_from(s, rj + "/kay26") and item(s).get("role") == "moderator",
               what="kay26 gets +o")
    ivan.send("MODE #comings -o kay26")
    m.wait(lambda s: is_presence_from(s, rj + "/kay26") and item(s).get("role") == "participant"
           and s is not p, what="kay26 loses +o")
    ivan.send("MODE #comings +o hal")
    me = m.wait(lambda s: is_presence_from(s, rj + "/hal") and item(s).get("role") == "moderator",
                what="hal gets +o")
    assert 110 in codes(me), me
    kay.send("PART #comings :later")
    gone = m.wait(lambda s: is_presence_from(s, rj + "/kay26", "unavailable"), what="kay26 parts")
    assert status_text(gone) == "later", gone
    lou = irc("lou26")
    lou.join("#comings")
    m.wait(lambda s: is_presence_from(s, rj + "/lou26"), what="lou26 joins")
    lou.close(reason="gone fishing")
    gone = m.wait(lambda s: is_presence_from(s, rj + "/lou26", "unavailable"), what="lou26 quits")
    assert status_text(gone).strip('"') == "gone fishing", gone    # ngircd quotes QUIT reasons


def test_two_xmpp_users_both_see_irc_nick_change_and_quit(env, xmpp, irc):
    """Two local users share the channel's member list: both must still get
    every IRC event (the second connection to read an event must not find
    the list already updated by the first and skip it)."""
    ivan, rj, kat, max_ = setup_room(irc, xmpp, "ivan27", "#shared", "kat", "max")
    mk, mm = Mark(kat), Mark(max_)
    ivan.send("NICK ivan27b")
    problems = []
    for name, mark in (("kat", mk), ("max", mm)):
        try:
            gone = mark.wait(lambda s: is_presence_from(s, rj + "/ivan27", "unavailable"), timeout=5,
                             what="303 for ivan27")
            assert 303 in codes(gone) and item(gone).get("nick") == "ivan27b", gone
            mark.wait(lambda s: is_presence_from(s, rj + "/ivan27b"), timeout=5, what="ivan27b available")
        except TimeoutError:
            problems.append("%s got no nick change ivan27 -> ivan27b: %r" % (
                name, mark.all(lambda s: s.name == "presence")))
    ivan.close(reason="bye all")
    for name, mark in (("kat", mk), ("max", mm)):
        try:
            mark.wait(lambda s: is_presence_from(s, rj + "/ivan27b", "unavailable"), timeout=5,
                      what="ivan27b quits")
        except TimeoutError:
            problems.append("%s got no unavailable presence for ivan27b's QUIT: %r" % (
                name, mark.all(lambda s: s.name == "presence")))
    assert not problems, "\n".join(problems)


def test_second_room_with_another_nick_gets_210(env, xmpp, irc):
    """One IRC connection per (JID, server), so one nick: joining a second
    room with another nick gives the nick the user has, which XEP-0045 says
    to flag with status 210."""
    ivan = irc("ivan28")
    ivan.join("#nick-one")
    ivan.join("#nick-two")
    nat = xmpp("nat")
    join(nat, room("#nick-one"), "nat")
    r2 = room("#nick-two")
    m = Mark(nat)
    nat.send_raw("<presence to=%s><x xmlns='%s'/></presence>" % (quoteattr(r2 + "/natalie"), NS_MUC))
    st = m.wait(lambda s: s.name == "presence" and (s.frm or "").startswith(r2 + "/")
                and (s.type == "error" or 110 in codes(s)), what="answer to the second join")
    if st.type == "error":
        return          # refusing is fine too
    if st.frm == r2 + "/natalie":
        return          # ferry renamed (then the first room saw a 303)
    assert st.frm == r2 + "/nat", st
    assert 210 in codes(st), "self-presence under another nick than asked, without 210: %r" % st


# ---------------------------------------------------------------- topic


def test_topic_from_irc_becomes_subject(env, xmpp, irc):
    ivan, rj, heidi = setup_room(irc, xmpp, "ivan7", "#topic-irc", "heidi", wait_join=False)
    m = Mark(heidi)
    ivan.send("TOPIC #topic-irc :Release on Friday")
    subj = m.wait(lambda s: s.name == "message" and subject_of(s) is not None, what="subject change")
    assert subject_of(subj) == "Release on Friday", subj
    assert subj.type == "groupchat" and subj.frm == rj + "/ivan7", subj
    assert subj.body is None


def test_subject_from_xmpp_becomes_topic(env, xmpp, irc):
    ivan, rj, ivy = setup_room(irc, xmpp, "ivan8", "#topic-xmpp", "ivy")
    m, mi = Mark(ivy), ivan.mark()
    from slixmpp import JID
    ivy.call(lambda x: x.plugin["xep_0045"].set_subject(JID(rj), "Set from XMPP"))
    t = ivan.wait(lambda l: l.command == "TOPIC" and l.nick == "ivy", since=mi, what="TOPIC from ivy")
    assert t.params == ["#topic-xmpp", "Set from XMPP"], t
    subj = m.wait(lambda s: s.name == "message" and subject_of(s) == "Set from XMPP", what="subject echo")
    assert subj.frm == rj + "/ivy"
    # a subject with a line break stays one TOPIC line
    mi = ivan.mark()
    ivy.send_raw("<message type='groupchat' to=%s><subject>two&#13;&#10;lines QUIT :x</subject></message>"
                 % quoteattr(rj))
    t = ivan.wait(lambda l: l.command == "TOPIC" and l.nick == "ivy", since=mi, what="second TOPIC")
    assert t.params[0] == "#topic-xmpp" and "\n" not in t.params[1] and "\r" not in t.params[1]
    assert t.params[1].replace("  ", " ") == "two lines QUIT :x", t
    assert "ivy" in ivan.ison("ivy")


# ---------------------------------------------------------------- kick


def test_kick_from_irc(env, xmpp, irc):
    ivan, rj, judy, kim = setup_room(irc, xmpp, "ivan9", "#kicks", "judy", "kim")
    mj, mk = Mark(judy), Mark(kim)
    ivan.send("KICK #kicks judy :behave")
    own = mj.wait(lambda s: is_presence_from(s, rj + "/judy", "unavailable"), what="own kick presence")
    assert {307, 110} <= codes(own), own
    assert item(own).get("role") == "none"
    seen = mk.wait(lambda s: is_presence_from(s, rj + "/judy", "unavailable"), what="judy kicked, seen by kim")
    assert 307 in codes(seen) and 110 not in codes(seen), seen
    # judy is out of the room: her messages are refused, kim's still flow
    mi = ivan.mark()
    mid = groupchat(judy, rj, "let me back")
    err = mj.wait(lambda s: s.name == "message" and s.type == "error" and s.id == mid, what="error for judy")
    assert err.error_condition == "not-acceptable", err
    groupchat(kim, rj, "still here")
    wait_privmsg(ivan, "#kicks", "kim", "still here", since=mi)
    # judy's only room is gone: her IRC connection QUITs
    wait_gone_from_irc(ivan, "judy")


# ---------------------------------------------------------------- private messages


def test_private_messages_both_ways(env, xmpp, irc):
    ivan, _, leo = setup_room(irc, xmpp, "ivan10", "#pm", "leo", wait_join=False)
    mi, ml = ivan.mark(), Mark(leo)
    ivan.privmsg("leo", "psst, leo")
    pm = ml.wait(lambda s: s.name == "message" and s.body == "psst, leo", what="PM from IRC")
    assert pm.type == "chat" and pm.frm.split("/")[0] == user_jid("ivan10"), pm
    leo.send_message(user_jid("ivan10"), "hi ivan, from XMPP")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "leo", since=mi, what="PM from leo")
    assert line.params == ["ivan10", "hi ivan, from XMPP"], line

    # to the occupant JID (room/nick) works as well
    leo.send_message(room("#pm") + "/ivan10", "via the room")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "leo" and l.params[-1] == "via the room",
                     since=mi, what="PM via the occupant JID")
    assert line.params[0] == "ivan10"

    # a user in no room at all: the PM opens a connection (nick = JID local part)
    mia = xmpp("mia")
    mm = Mark(mia)
    mia.send_message(user_jid("ivan10"), "hello without a room")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.params[-1] == "hello without a room", since=mi,
                     what="PM from mia")
    assert line.params[0] == "ivan10"
    ivan.privmsg(line.nick, "answer to " + line.nick)
    pm = mm.wait(lambda s: s.name == "message" and s.body == "answer to " + line.nick, what="answer to mia")
    assert pm.frm.split("/")[0] == user_jid("ivan10") and pm.type == "chat"


# ---------------------------------------------------------------- resources


def test_several_resources_of_one_jid(env, xmpp, irc):
    ivan = irc("ivan11")
    ivan.join("#multi")
    one = xmpp("ned", "one")
    two = xmpp("ned", "two")
    rj = room("#multi")
    join(one, rj, "ned")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ned")
    mi = ivan.mark()
    _, subj = join(two, rj, "ned")
    # the second resource gets the whole room: occupants, itself, the subject
    assert two.stanzas(lambda s: is_presence_from(s, rj + "/ivan11")), two.stanzas()
    assert subject_of(subj) == ""
    m1, m2 = Mark(one), Mark(two)
    ivan.privmsg("#multi", "to every resource")
    wait_groupchat(one, rj, "ivan11", "to every resource", mark=m1)
    wait_groupchat(two, rj, "ivan11", "to every resource", mark=m2)
    mid = groupchat(one, rj, "sent from one")
    r1 = wait_groupchat(one, rj, "ned", "sent from one", mark=m1)
    r2 = wait_groupchat(two, rj, "ned", "sent from one", mark=m2)
    assert r1.id == mid and r2.id == mid
    wait_privmsg(ivan, "#multi", "ned", "sent from one", since=mi)
    # one JOIN on IRC for both resources
    assert not ivan.lines(lambda l: l.command == "JOIN" and l.nick == "ned", since=mi)

    # the first resource leaves: IRC still sees ned, the second still talks
    leave(one, rj, "ned")
    ivan.expect_none(lambda l: l.nick == "ned" and l.command in ("PART", "QUIT"), 1.0, since=mi)
    assert "ned" in [strip_nick_prefix(n) for n in ivan.names("#multi")]
    ivan.privmsg("#multi", "only two now")
    wait_groupchat(two, rj, "ivan11", "only two now", mark=m2)
    time.sleep(0.3)
    assert not m1.all(lambda s: s.name == "message" and s.body == "only two now"), "a resource that left got it"
    # the second leaves: PART
    leave(two, rj, "ned")
    ivan.wait(lambda l: l.command == "PART" and l.nick == "ned", since=mi, what="PART from ned")


# ---------------------------------------------------------------- injection


def test_crlf_in_body_gives_separate_privmsgs(env, xmpp, irc):
    ivan, rj, olga = setup_room(irc, xmpp, "ivan12", "#inject", "olga")
    mi = ivan.mark()
    # &#13;&#10; is a real CR LF in the body
    olga.send_raw("<message type='groupchat' to=%s id='inj1'><body>a&#13;&#10;QUIT :x</body></message>"
                  % quoteattr(rj))
    wait_privmsg(ivan, "#inject", "olga", "a", since=mi)
    wait_privmsg(ivan, "#inject", "olga", "QUIT :x", since=mi)
    olga.send_raw("<message type='groupchat' to=%s id='inj2'><body>b&#13;JOIN #evil&#10;PART #inject</body>"
                  "</message>" % quoteattr(rj))
    wait_privmsg(ivan, "#inject", "olga", "b", since=mi)
    wait_privmsg(ivan, "#inject", "olga", "JOIN #evil", since=mi)
    wait_privmsg(ivan, "#inject", "olga", "PART #inject", since=mi)
    # a private message too
    olga.send_raw("<message type='chat' to=%s><body>p&#13;&#10;NICK evil</body></message>"
                  % quoteattr(user_jid("ivan12")))
    ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "olga" and l.params == ["ivan12", "NICK evil"],
              since=mi, what="PM second line")
    # the connection survived and nothing became a command
    groupchat(olga, rj, "still connected")
    wait_privmsg(ivan, "#inject", "olga", "still connected", since=mi)
    assert not ivan.lines(lambda l: l.nick in ("olga", "evil") and l.command in ("QUIT", "PART", "NICK", "JOIN"),
                          since=mi)
    assert "olga" in [strip_nick_prefix(n) for n in ivan.names("#inject")]
    assert ivan.ison("olga", "evil") == ["olga"]


def test_leave_with_multiline_status_still_parts(env, xmpp, irc):
    """A leave whose <status> has a line break: the PART must still go out
    (the reason on one line or dropped), else the user stays in the IRC
    channel while XMPP shows it gone."""
    ivan = irc("ivan13")
    ivan.join("#inj-a")
    pete = xmpp("pete")
    ra, rb = room("#inj-a"), room("#inj-b")
    join(pete, ra, "pete")
    join(pete, rb, "pete")          # a second room keeps the connection open
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "pete")
    mi = ivan.mark()
    leave(pete, ra, "pete", status="bye\nQUIT :x")
    try:
        part = ivan.wait(lambda l: l.command == "PART" and l.nick == "pete", since=mi, timeout=5,
                         what="PART from pete after a two-line status")
    except TimeoutError as e:
        raise AssertionError("%s\nNAMES #inj-a on IRC now: %r (XMPP got its own unavailable presence)"
                             % (e, ivan.names("#inj-a")))
    assert part.params[0] == "#inj-a"
    assert not ivan.lines(lambda l: l.command == "QUIT" and l.nick == "pete", since=mi)


def test_nick_with_space_or_cr_is_jid_malformed(env, xmpp, irc):
    ivan = irc("ivan14")
    ivan.join("#badnick")
    quin = xmpp("quin")
    rj = room("#badnick")
    for nick_xml in ("bad nick", "bad&#13;nick", "bad&#10;nick", "#chan", "a!b@c"):
        m = Mark(quin)
        quin.send_raw("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (rj, nick_xml, NS_MUC))
        err = m.wait(lambda s: s.name == "presence" and s.type == "error", what="error for nick %r" % nick_xml)
        assert err.error_condition == "jid-malformed", (nick_xml, err)
    # nothing reached IRC: no connection for quin
    assert ivan.ison("quin", "bad") == []
    assert [strip_nick_prefix(n) for n in ivan.names("#badnick")] == ["ivan14"]
    # and a good nick still works
    join(quin, rj, "quin")


def test_bad_channel_name_is_not_acceptable(env, xmpp, irc):
    ivan = irc("ivan15")
    rita = xmpp("rita")
    for local in ("#a,#b", "#a\\20b", "#a,b"):
        rj = "%s%%%s@%s" % (local, IRC, DOMAIN)
        m = Mark(rita)
        rita.send_raw("<presence to=%s><x xmlns='%s'/></presence>" % (quoteattr(rj + "/rita"), NS_MUC))
        err = m.wait(lambda s: s.name == "presence" and s.type == "error", what="error for channel %r" % local)
        assert err.error_condition == "not-acceptable", (local, err)
        assert err.error_type == "modify"
    assert ivan.ison("rita") == []


def test_client_going_offline_leaves_irc(env, xmpp, irc):
    ivan, _, oz = setup_room(irc, xmpp, "ivan29", "#offline", "oz")
    mi = ivan.mark()
    oz.close()          # Prosody sends unavailable presence to the room
    ivan.wait(lambda l: l.nick == "oz" and l.command in ("PART", "QUIT"), since=mi, what="oz leaving")
    wait_gone_from_irc(ivan, "oz")


# ---------------------------------------------------------------- text


def test_long_message_is_split_within_512_bytes(env, xmpp, irc):
    ivan, rj, sam, tina = setup_room(irc, xmpp, "ivan16", "#long", "sam", "tina")
    # words with two-byte characters, then a run with no space at all (a cut
    # inside it must fall between UTF-8 characters)
    words, i = [], 0
    while len(" ".join(words).encode()) < 1300:
        words.append("w\u00f6rd%03d" % i)
        i += 1
    body = " ".join(words) + " "
    body += "\u00e9" * ((2000 - len(body.encode())) // 2)
    body += "x" * (2000 - len(body.encode()))
    assert len(body.encode()) == 2000
    mi, mt, ms = ivan.mark(), Mark(tina), Mark(sam)
    mid = groupchat(sam, rj, body)
    refl = wait_groupchat(sam, rj, "sam", body, mark=ms)
    assert refl.id == mid

    def collected():
        lines = privmsgs(ivan, "#long", "sam", mi)
        return lines if lines and body.endswith(lines[-1].params[1]) else None

    lines = h.wait_until(collected, 15, what="the whole long message on IRC")
    assert len(lines) >= 4, lines
    for l in lines:
        assert l.wire_len <= 512, (l.wire_len, l)
        l.raw.decode("utf-8")                    # strict: no character cut in two
    assert_pieces(body, [l.params[1] for l in lines])
    # the other XMPP user gets the pieces, in order
    msgs = h.wait_until(lambda: (lambda got: got if len(got) >= len(lines) else None)(
        mt.all(lambda s: s.name == "message" and s.frm == rj + "/sam" and s.body)), 10,
        what="pieces at tina")
    assert_pieces(body, [s.body for s in msgs])


def assert_pieces(body, pieces):
    """The pieces are body, in order, complete. A cut at a word boundary
    may lose that one space: ngircd strips trailing spaces from every line
    it relays (checked with two raw clients), so only spaces may go missing,
    and only at the cuts."""
    pos = 0
    for i, p in enumerate(pieces):
        while pos < len(body) and body[pos] == " " and not body.startswith(p, pos):
            pos += 1
        assert body.startswith(p, pos), "piece %d does not continue the text at byte %d: %r" % (i, pos, p[:40])
        pos += len(p)
    assert body[pos:].strip() == "", "text missing at the end: %r" % body[pos:][:80]


def test_flood_control_paces_lines_in_order(env, xmpp, irc):
    """14 lines at once: the burst goes out at once, the rest at
    throttle_rate (2/s), all in order, and the server keeps the user."""
    ivan, rj, pam = setup_room(irc, xmpp, "ivan30", "#flood", "pam")
    mi = ivan.mark()
    texts = ["line %02d" % i for i in range(14)]
    groupchat(pam, rj, "\n".join(texts))
    got = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "pam", since=mi, count=len(texts),
                    timeout=20, what="14 PRIVMSGs")
    assert [l.params[1] for l in got] == texts
    spread = got[-1].time - got[0].time
    # 3 tokens went to NICK, USER, JOIN: 7 at once, then 7 more at 2/s
    assert spread >= 2.5, "no pacing: 14 lines within %.2f s" % spread
    assert spread <= 6.0, "too slow: %.2f s" % spread
    assert "pam" in ivan.ison("pam")


def test_latin1_from_irc_arrives_as_utf8(env, xmpp, irc):
    ivan, rj, uma = setup_room(irc, xmpp, "ivan17", "#latin1", "uma", wait_join=False)
    m = Mark(uma)
    ivan.privmsg("#latin1", b"caf\xe9 cr\xe8me br\xfbl\xe9e \xbfqu\xe9?")
    wait_groupchat(uma, rj, "ivan17", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \u00bfqu\u00e9?", mark=m)
    ivan.privmsg("#latin1", "na\u00efve \u2603 ok")            # valid UTF-8 stays as it is
    wait_groupchat(uma, rj, "ivan17", "na\u00efve \u2603 ok", mark=m)
    ivan.send(b"TOPIC #latin1 :\xe0 bient\xf4t")
    subj = m.wait(lambda s: s.name == "message" and subject_of(s) is not None, what="Latin-1 topic")
    assert subject_of(subj) == "\u00e0 bient\u00f4t"


def test_irc_formatting_becomes_styling_or_is_dropped(env, xmpp, irc):
    """Bold, italics, monospace and strikethrough become XEP-0393 spans;
    colours, underline and reverse, which it has not, are dropped, and so
    is a code in the middle of a word (a client would show the asterisks)."""
    ivan, rj, vera = setup_room(irc, xmpp, "ivan18", "#colors", "vera", wait_join=False)
    m = Mark(vera)
    ivan.privmsg("#colors", "\x02bold\x02 \x0304red\x03 \x0303,01green on black\x0f \x1ditalic\x1d "
                 "\x1funderline\x1f \x16reverse\x16 \x11mono\x11 \x1estrike\x1e \x0312345")
    wait_groupchat(vera, rj, "ivan18", "*bold* red green on black _italic_ underline reverse `mono` ~strike~ 345",
                   mark=m)
    ivan.privmsg("#colors", "half\x02bold\x02 and \x02 spaced \x02")
    wait_groupchat(vera, rj, "ivan18", "halfbold and  spaced ", mark=m)


def test_ctcp_action_both_ways(env, xmpp, irc):
    ivan, rj, walt = setup_room(irc, xmpp, "ivan19", "#actions", "walt")
    m, mi = Mark(walt), ivan.mark()
    ivan.privmsg("#actions", "\x01ACTION waves\x01")
    wait_groupchat(walt, rj, "ivan19", "/me waves", mark=m)
    mid = groupchat(walt, rj, "/me waves back")
    wait_privmsg(ivan, "#actions", "walt", "\x01ACTION waves back\x01", since=mi)
    refl = wait_groupchat(walt, rj, "walt", "/me waves back", mark=m)
    assert refl.id == mid
    ivan.send("NOTICE #actions :a notice")
    wait_groupchat(walt, rj, "ivan19", "a notice", mark=m)
    # other CTCP requests are not shown as messages
    ivan.privmsg("#actions", "\x01VERSION\x01")
    ivan.privmsg("#actions", "after the ctcp")
    wait_groupchat(walt, rj, "ivan19", "after the ctcp", mark=m)
    assert not m.all(lambda s: s.name == "message" and s.body and "VERSION" in s.body)


def test_nick_in_use_is_a_conflict(env, xmpp, irc):
    irc("ivan20")
    xena = xmpp("xena")
    rj = room("#conflict")
    _, err = join(xena, rj, "ivan20", expect_error=True)
    assert err.error_condition == "conflict", err
    assert err.frm == rj + "/ivan20"
    # another nick works afterwards
    join(xena, rj, "xena")


# ---------------------------------------------------------------- server restart


@pytest.fixture
def ngircd2(env):
    """The second ngircd, running again after the test whatever happened."""
    yield env.ngircd2
    if not env.ngircd2.running():
        env.ngircd2.start()


def test_irc_server_restart_332_then_rejoin(env, xmpp, irc, ngircd2):
    n2 = ngircd2
    ivan, rj, yuri = setup_room(irc, xmpp, "ivan21", "#restart", "yuri", room_server=IRC2, ngircd=n2)
    m = Mark(yuri)
    off = env.ferry.stderr_offset()
    n2.stop()
    gone = m.wait(lambda s: is_presence_from(s, rj + "/yuri", "unavailable"), timeout=15, what="332 presence")
    assert {332, 110} <= codes(gone), gone
    env.ferry.wait_log(r"IRC connection to %s lost" % re.escape(IRC2), offset=off)
    n2.start()
    # ferry comes back by itself (backoff) and rejoins: a new self-presence
    again = m.wait(self_presence(rj), timeout=30, what="self-presence after the restart")
    assert again.frm == rj + "/yuri"
    m.wait(lambda s: s.name == "message" and subject_of(s) is not None, timeout=10, what="subject again")
    env.ferry.wait_log(r"connected to IRC server %s" % re.escape(IRC2), offset=off)
    ivan2 = irc("ivan21", server=n2)
    ivan2.join("#restart")
    m2, mi = Mark(yuri), ivan2.mark()
    ivan2.privmsg("#restart", "welcome back")
    wait_groupchat(yuri, rj, "ivan21", "welcome back", mark=m2)
    groupchat(yuri, rj, "thanks")
    wait_privmsg(ivan2, "#restart", "yuri", "thanks", since=mi)


def test_irc_server_down_for_a_while_one_332(env, xmpp, irc, ngircd2):
    """The server stays down through several reconnect attempts: the user
    is told once (332), not once per failed attempt, and is back after."""
    n2 = ngircd2
    zoe = xmpp("zoe")
    rj = room("#outage", IRC2)
    join(zoe, rj, "zoe")
    m = Mark(zoe)
    off = env.ferry.stderr_offset()
    n2.stop()
    m.wait(lambda s: is_presence_from(s, rj + "/zoe", "unavailable") and 332 in codes(s), timeout=15,
           what="332 presence")
    # wait for at least two failed reconnects (0.5-1 s, then 1-2 s)
    h.wait_until(lambda: len(re.findall(r"lost: cannot connect", env.ferry.stderr(off))) >= 2, 15,
                 interval=0.1, what="two failed reconnect attempts in ferry's log")
    n2.start()
    m.wait(self_presence(rj), timeout=30, what="self-presence after the outage")
    unavailable = m.all(lambda s: is_presence_from(s, rj + "/zoe", "unavailable"))
    assert len(unavailable) == 1, "one 332 per outage expected, got %d: %r" % (len(unavailable), unavailable)


# ---------------------------------------------------------------- TLS


def test_tls_self_signed_rejected_when_verifying(env, xmpp, irc):
    abe = xmpp("abe")
    rj = room("#secure", TLS)
    off = env.ferry.stderr_offset()
    _, err = join(abe, rj, "abe", expect_error=True)
    assert err.type == "error"
    text = err.error_text or ""
    assert "certificate" in text.lower(), err
    env.ferry.wait_log(r"IRC connection to %s lost: .*certificate" % re.escape(TLS), offset=off)


def test_tls_self_signed_accepted_without_verify(env, xmpp, irc):
    ivan, rj, bea = setup_room(irc, xmpp, "ivan22", "#secure", "bea", room_server=TLS_NV)
    m, mi = Mark(bea), ivan.mark()
    groupchat(bea, rj, "over TLS")
    wait_privmsg(ivan, "#secure", "bea", "over TLS", since=mi)
    ivan.privmsg("#secure", "and back")
    wait_groupchat(bea, rj, "ivan22", "and back", mark=m)
    # the IRC server saw a TLS client
    assert "SSL" in env.ngircd.log_text() or "TLS" in env.ngircd.log_text()


# ---------------------------------------------------------------- access


def test_server_not_in_config_is_not_allowed(env, xmpp, irc):
    cal = xmpp("cal")
    rj = room("#x", "irc.elsewhere.example")
    m = Mark(cal)
    cal.send_raw("<presence to=%s><x xmlns='%s'/></presence>" % (quoteattr(rj + "/cal"), NS_MUC))
    err = m.wait(lambda s: s.name == "presence" and s.type == "error", what="error presence")
    assert err.error_condition == "not-allowed", err
    mid = cal.send_message(user_jid("someone", "irc.elsewhere.example"), "hi")
    err = m.wait(lambda s: s.name == "message" and s.type == "error" and s.id == mid, what="error message")
    assert err.error_condition == "not-allowed", err


def test_user_not_in_allow_is_forbidden(env, xmpp, irc):
    ivan = irc("ivan23")
    mallory = xmpp("mallory", host="other.localhost")
    rj = room("#guarded")
    m = Mark(mallory)
    mallory.send_raw("<presence to=%s><x xmlns='%s'/></presence>" % (quoteattr(rj + "/mallory"), NS_MUC))
    err = m.wait(lambda s: s.name == "presence" and s.type == "error", what="error presence")
    assert err.error_condition == "forbidden", err
    mid = mallory.send_message(user_jid("ivan23"), "let me in")
    err = m.wait(lambda s: s.name == "message" and s.type == "error" and s.id == mid, what="error message")
    assert err.error_condition == "forbidden", err
    time.sleep(0.3)
    assert ivan.ison("mallory") == []
    assert not ivan.lines(lambda l: l.command == "PRIVMSG")


def test_channel_name_with_xep0106_escape(env, xmpp, irc):
    """'#q&a' on IRC is '#q\\26a%server@gw' in XMPP: joins, and every stanza
    comes from that same room JID."""
    ivan = irc("ivan31")
    ivan.join("#q&a")
    ray = xmpp("ray")
    rj = "#q\\26a%%%s@%s" % (IRC, DOMAIN)
    m, subj = join(ray, rj, "ray")
    assert subj.frm == rj, subj
    assert m.all(lambda s: is_presence_from(s, rj + "/ivan31")), m.all()
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ray" and l.params[0] == "#q&a")
    mi = ivan.mark()
    groupchat(ray, rj, "questions?")
    wait_privmsg(ivan, "#q&a", "ray", "questions?", since=mi)
    ivan.privmsg("#q&a", "answers!")
    wait_groupchat(ray, rj, "ivan31", "answers!", mark=m)


def second_ferry(env, testbed, default_server=None):
    """A ferry of its own on the second component domain (ircdef.localhost),
    serving the main ngircd."""
    comp = irc_component(DEF_DOMAIN, SECRET, {IRC: env.servers[IRC]})
    if default_server:
        comp["default_server"] = default_server
    f = testbed.linked_ferry(env.prosody, {"ircdef": comp})
    wait_link_up(f, "ircdef")
    return f


def test_default_server_room_jid(env, xmpp, irc, testbed):
    """With default_server, '#chan@gw' is a room: every stanza must come
    from the JID the user joined, else clients never see themselves join."""
    ivan = irc("ivan32")
    ivan.join("#defchan")
    second_ferry(env, testbed, default_server=IRC)
    sue = xmpp("sue")
    rj = "#defchan@" + DEF_DOMAIN
    m = Mark(sue)
    sue.send_raw("<presence to=%s><x xmlns='%s'/></presence>" % (quoteattr(rj + "/sue"), NS_MUC))
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "sue", what="sue's JOIN on IRC")
    mi = ivan.mark()
    try:
        me = m.wait(lambda s: s.name == "presence" and 110 in codes(s), timeout=5, what="self-presence")
    except TimeoutError:
        me = None
    # the MOTD comes as a chat from the server JID (the component itself with a default
    # server), which is also online as a contact; everything about the room from the room
    got = m.all(lambda s: s.frm != DEF_DOMAIN and (s.name == "presence" or (s.name == "message"
                                                                            and s.type != "chat")))
    froms = sorted({s.frm.split("/")[0] for s in got})
    assert me is not None and me.frm == rj + "/sue" and froms == [rj], \
        "joined %s, got stanzas from %r: %r" % (rj, froms, got)
    groupchat(sue, rj, "via the default server")
    wait_privmsg(ivan, "#defchan", "sue", "via the default server", since=mi)


def test_ferry_shutdown_quits_irc_and_tells_the_user(env, xmpp, irc, testbed):
    """ferry stops for good (SIGUSR1) with a user in a room: the IRC
    connection QUITs, ferry exits 0 without sanitizer reports, and the user
    gets an unavailable presence (332, as for a lost server) instead of a
    room that silently went dead. (SIGTERM is a restart, where users stay:
    test_irc_restart.py.)"""
    ivan = irc("ivan33")
    ivan.join("#shutdown")
    f = second_ferry(env, testbed)
    ida = xmpp("ida")
    rj = "#shutdown%%%s@%s" % (IRC, DEF_DOMAIN)
    join(ida, rj, "ida")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ida")
    m, mi = Mark(ida), ivan.mark()
    f.expect_exit = True
    f.signal(signal.SIGUSR1)
    rc = f.wait_exit(10)
    assert rc == 0, f.report()
    quit_ = ivan.wait(lambda l: l.command == "QUIT" and l.nick == "ida", since=mi, what="ida's QUIT")
    assert "shutting down" in quit_.trailing, quit_
    assert not f.problems(), f.report()
    try:
        gone = m.wait(lambda s: s.name == "presence" and s.type == "unavailable", timeout=3,
                      what="unavailable presence on shutdown")
    except TimeoutError:
        raise AssertionError("ferry stopped and the IRC side saw the QUIT, but the XMPP user was not told "
                             "(no unavailable presence); got: %r" % m.all())
    assert 332 in codes(gone), gone


# ---------------------------------------------------------------- disco, metrics, idle


def test_disco_info_on_a_room(env, xmpp):
    dee = xmpp("dee")
    r = dee.iq(room("#anything"), "get", "<query xmlns='%s'/>" % h.NS_DISCO_INFO)
    assert r.type == "result", r
    q = r.find(h.NS_DISCO_INFO, "query")
    ids = [(i.get("category"), i.get("type")) for i in q if i.tag == "{%s}identity" % h.NS_DISCO_INFO]
    assert ("conference", "text") in ids, r
    feats = {f.get("var") for f in q if f.tag == "{%s}feature" % h.NS_DISCO_INFO}
    assert NS_MUC in feats, r
    r = dee.iq(DOMAIN, "get", "<query xmlns='%s'/>" % h.NS_DISCO_INFO)
    assert r.type == "result"
    feats = {f.get("var") for f in r.find(h.NS_DISCO_INFO, "query") if f.tag == "{%s}feature" % h.NS_DISCO_INFO}
    assert NS_MUC in feats, r


def irc_connections(env):
    r, samples, types, _ = env.ferry.metrics()
    assert r.status == 200, r
    assert types.get("ferry_irc_connections") == "gauge", types
    return h.metric_value(samples, "ferry_irc_connections", component="irc", adapter="irc")


def test_metrics_count_irc_connections(env, xmpp, irc):
    ivan = irc("ivan24")
    ivan.join("#metrics")
    before = irc_connections(env)
    eli, fay = xmpp("eli"), xmpp("fay")
    rj = room("#metrics")
    join(eli, rj, "eli")
    join(fay, rj, "fay")
    assert irc_connections(env) == before + 2
    leave(eli, rj, "eli")
    h.wait_until(lambda: irc_connections(env) == before + 1, 10, what="one connection fewer")
    leave(fay, rj, "fay")
    h.wait_until(lambda: irc_connections(env) == before, 10, what="back to the count before")
    _, samples, _, _ = env.ferry.metrics()
    assert h.metric_value(samples, "ferry_irc_lines_total", component="irc") > 0


def test_idle_after_join_uses_no_cpu(env, xmpp, irc):
    ivan, rj, gus = setup_room(irc, xmpp, "ivan25", "#idle", "gus", wait_join=False)
    ivan.privmsg("#idle", "then silence")
    wait_groupchat(gus, rj, "ivan25", "then silence")
    time.sleep(1.0)       # let the previous tests' goodbyes settle
    pid = env.ferry.pid
    t0, c0 = time.monotonic(), h.cpu_seconds(pid)
    time.sleep(5.0)
    used, wall = h.cpu_seconds(pid) - c0, time.monotonic() - t0
    assert used < 0.05, "ferry used %.3f s of CPU in %.1f s of idleness" % (used, wall)
    # still working afterwards
    ivan.privmsg("#idle", "wake up")
    wait_groupchat(gus, rj, "ivan25", "wake up")


# ---------------------------------------------------------------- history, MAM, admin, LIST

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DELAY = "urn:xmpp:delay"


def join_with_history(c, room_jid, nick, history_attrs, timeout=15):
    """Joins asking for history (<history .../>); returns the delayed
    groupchat messages received between the self-presence and the subject."""
    m = Mark(c)
    attrs = " ".join("%s=%s" % (k, quoteattr(str(v))) for k, v in history_attrs.items())
    c.send_raw("<presence to=%s><x xmlns='%s'><history %s/></x></presence>" % (
        quoteattr(room_jid + "/" + nick), NS_MUC, attrs))
    subj = m.wait(lambda s: s.name == "message" and s.type == "groupchat" and subject_of(s) is not None
                  and (s.frm or "").split("/")[0] == room_jid, timeout=timeout, what="subject")
    got = m.all(lambda s: s.name == "message" and s.type == "groupchat" and s.body is not None
                and s.find(NS_DELAY, "delay") is not None)
    order = [id(x) for x in c.stanzas()]
    assert all(order.index(id(g)) < order.index(id(subj)) for g in got), "history after the subject"
    return got


def test_history_replayed_on_join_as_asked(env, xmpp, irc):
    ivan, rj, hana = setup_room(irc, xmpp, "ivan30", "#hist", "hana")
    for i in range(5):
        ivan.privmsg("#hist", "line %d" % i)
    wait_groupchat(hana, rj, "ivan30", "line 4")
    iris = xmpp("iris")
    got = join_with_history(iris, rj, "iris", {"maxstanzas": 3})
    assert [g.body for g in got] == ["line 2", "line 3", "line 4"], [g.body for g in got]
    assert all(g.frm == rj + "/ivan30" for g in got), got
    assert all(g.find(NS_DELAY, "delay").get("stamp") for g in got)
    jade = xmpp("jade")
    assert join_with_history(jade, rj, "jade", {"maxstanzas": 0}) == []
    kira = xmpp("kira")
    assert join_with_history(kira, rj, "kira", {"maxchars": 0}) == []


def test_history_recorded_once_with_several_local_users(env, xmpp, irc):
    """Two XMPP users in the channel, one IRC message and one of theirs:
    each appears once in the history a newcomer gets."""
    ivan, rj, lena, mona = setup_room(irc, xmpp, "ivan31", "#hist2", "lena", "mona")
    ivan.privmsg("#hist2", "from irc")
    wait_groupchat(mona, rj, "ivan31", "from irc")
    groupchat(lena, rj, "from lena")
    wait_privmsg(ivan, "#hist2", "lena", "from lena")
    wait_groupchat(mona, rj, "lena", "from lena")
    nora = xmpp("nora")
    got = join_with_history(nora, rj, "nora", {"maxstanzas": 10})
    assert [(g.frm.split("/")[1], g.body) for g in got] == [("ivan31", "from irc"), ("lena", "from lena")], got


def mam_query(c, room_jid, rsm="", form=""):
    """Runs a MAM query; returns (archived messages in order, the fin element)."""
    qid = h.new_id("mam")
    m = Mark(c)
    res = c.iq(room_jid, "set", "<query xmlns='%s' queryid='%s'>%s%s</query>" % (NS_MAM, qid, form, rsm))
    assert res.type == "result", res
    results = m.all(lambda s: s.name == "message" and s.find(NS_MAM, "result") is not None
                    and s.find(NS_MAM, "result").get("queryid") == qid)
    out = []
    for r in results:
        fwd = r.find(NS_MAM, "result").find("{urn:xmpp:forward:0}forwarded")
        msg = fwd.find("{%s}message" % h.NS_CLIENT)
        body = msg.find("{%s}body" % h.NS_CLIENT).text
        out.append((r.find(NS_MAM, "result").get("id"), msg.get("from"), body,
                    fwd.find("{%s}delay" % NS_DELAY).get("stamp")))
    return out, res.find(NS_MAM, "fin")


def test_mam_query_with_paging(env, xmpp, irc):
    ivan, rj, opal = setup_room(irc, xmpp, "ivan32", "#mam", "opal")
    for i in range(7):
        ivan.privmsg("#mam", "m%d" % i)
    wait_groupchat(opal, rj, "ivan32", "m6")
    page1, fin1 = mam_query(opal, rj, "<set xmlns='%s'><max>3</max></set>" % NS_RSM)
    assert [b for _, _, b, _ in page1] == ["m0", "m1", "m2"], page1
    assert fin1.get("complete") != "true"
    last = fin1.find("{%s}set" % NS_RSM).find("{%s}last" % NS_RSM).text
    page2, _ = mam_query(opal, rj, "<set xmlns='%s'><max>3</max><after>%s</after></set>" % (NS_RSM, last))
    assert [b for _, _, b, _ in page2] == ["m3", "m4", "m5"], page2
    tail, fin3 = mam_query(opal, rj, "<set xmlns='%s'><max>2</max><before/></set>" % NS_RSM)
    assert [b for _, _, b, _ in tail] == ["m5", "m6"], tail
    everything, fin = mam_query(opal, rj)
    assert [b for _, _, b, _ in everything] == ["m%d" % i for i in range(7)]
    assert fin.get("complete") == "true"
    assert all(frm == rj + "/ivan32" and stamp for _, frm, _, stamp in everything)
    info = opal.iq(rj, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    assert NS_MAM in [f.get("var") for f in info.el.iter("{http://jabber.org/protocol/disco#info}feature")]


def test_kick_and_roles_from_xmpp(env, xmpp, irc):
    """The XMPP user is the channel's creator (op): muc#admin role none
    kicks on IRC, moderator gives +o."""
    pia = xmpp("pia")
    rj = room("#adm")
    join(pia, rj, "pia")
    ivan = irc("ivan33")
    ivan.join("#adm")
    admin = "<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='ivan33' role='%s'>%s</item></query>"
    m = ivan.mark()
    assert pia.iq(rj, "set", admin % ("moderator", "")).type == "result"
    ivan.wait(r"MODE #adm \+o ivan33", since=m)
    m = ivan.mark()
    assert pia.iq(rj, "set", admin % ("none", "<reason>bye now</reason>")).type == "result"
    kick = ivan.wait(lambda l: l.command == "KICK", since=m)
    assert kick.params[:3] == ["#adm", "ivan33", "bye now"], kick.params


def test_invitations_from_xmpp(env, xmpp, irc):
    ria = xmpp("ria")
    rj = room("#inv")
    join(ria, rj, "ria")
    ivan = irc("ivan34")
    m = ivan.mark()
    ria.send_raw("<message to=%s><x xmlns='%s'><invite to=%s/></x></message>" % (
        quoteattr(rj), NS_MUC_USER, quoteattr(user_jid("ivan34"))))
    inv = ivan.wait(lambda l: l.command == "INVITE", since=m)
    assert inv.params == ["ivan34", "#inv"], inv.params
    # an XMPP user gets a mediated invitation from the room
    hana = xmpp("hana")
    ria.send_raw("<message to=%s><x xmlns='%s'><invite to='hana@localhost'/></x></message>" % (
        quoteattr(rj), NS_MUC_USER))
    got = hana.wait(lambda s: s.name == "message" and s.frm == rj and muc_x(s) is not None)
    invite = muc_x(got).find("{%s}invite" % NS_MUC_USER)
    assert invite is not None and invite.get("from") == "ria@localhost", got


def test_channel_list_paged(env, xmpp, irc):
    ivan = irc("ivan35")
    for i in range(4):
        ivan.join("#lst%d" % i)
    iris = xmpp("iris")
    server_jid = "%s@%s" % (IRC, DOMAIN)
    disco = "http://jabber.org/protocol/disco#items"
    res = iris.iq(server_jid, "get", "<query xmlns='%s'/>" % disco, timeout=20)
    jids = [i.get("jid") for i in res.el.iter("{%s}item" % disco)]
    for i in range(4):
        assert room("#lst%d" % i) in jids, jids
    res = iris.iq(server_jid, "get", "<query xmlns='%s'><set xmlns='%s'><max>2</max><after>#lst0</after></set></query>"
                  % (disco, NS_RSM), timeout=20)
    page = [i.get("jid") for i in res.el.iter("{%s}item" % disco)]
    assert page == [room("#lst1"), room("#lst2")], page


def test_admin_disconnects_a_user(env, xmpp, irc):
    """The ad-hoc "disconnect" command (for [admin] jids) closes a user's IRC
    connections: the user gets unavailable presence, IRC sees the QUIT; a
    non-admin is refused."""
    ivan, rj, jade = setup_room(irc, xmpp, "ivan36", "#disc", "jade")
    NS_CMD = "http://jabber.org/protocol/commands"
    other = xmpp("kira")
    res = other.iq(DOMAIN, "set", "<command xmlns='%s' node='disconnect' action='execute'/>" % NS_CMD)
    assert res.type == "error" and res.error_condition == "forbidden", res
    admin = xmpp("ria", resource="admin")
    first = admin.iq(DOMAIN, "set", "<command xmlns='%s' node='disconnect' action='execute'/>" % NS_CMD)
    cmd = first.find(NS_CMD, "command")
    assert first.type == "result" and cmd.get("status") == "executing", first
    m = Mark(jade)
    mi = ivan.mark()
    done = admin.iq(DOMAIN, "set", (
        "<command xmlns='%s' node='disconnect' sessionid=%s><x xmlns='jabber:x:data' type='submit'>"
        "<field var='jid'><value>jade@localhost</value></field></x></command>") % (
        NS_CMD, quoteattr(cmd.get("sessionid"))))
    note = done.find(NS_CMD, "command").find("{%s}note" % NS_CMD)
    assert note is not None and note.text.startswith("1 session"), done
    m.wait(lambda s: s.name == "presence" and s.type == "unavailable" and s.frm == rj + "/jade"
           and 110 in codes(s), what="jade's unavailable presence")
    ivan.wait(lambda l: l.command == "QUIT" and l.nick == "jade", since=mi)


# ---------------------------------------------------------------- the server JID


def server_jid(server=IRC):
    return "%s@%s" % (server, DOMAIN)


def from_server(s, server=IRC):
    return s.name == "message" and s.type == "chat" and (s.frm or "").split("/")[0] == server_jid(server)


def test_server_jid_motd_raw_commands_and_their_replies(env, xmpp, irc):
    """Text typed to the server JID is IRC commands, one per line; the MOTD
    arrives once, as one message; replies and refusals come back from the
    server JID; the registration chatter (001-005, LUSERS) does not."""
    ivan = irc("ivan40")
    sid = xmpp("sid")
    ms, mi = Mark(sid), ivan.mark()
    sid.send_message(server_jid(), "PRIVMSG ivan40 :raw hello\n  \nWHOIS ivan40\r\nPRIVMSG nobody40 :hi")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "sid", since=mi, what="raw PRIVMSG")
    assert line.params == ["ivan40", "raw hello"], line
    motd = ms.wait(lambda s: from_server(s) and "ferry test server" in (s.body or ""), what="the MOTD")
    whois = ms.wait(lambda s: from_server(s) and "IRC tester" in (s.body or ""), what="WHOIS reply (311)")
    assert "ivan40" in whois.body, whois
    nosuch = ms.wait(lambda s: from_server(s) and "nobody40" in (s.body or ""), what="401 for nobody40")
    assert "no such" in nosuch.body.lower(), nosuch
    time.sleep(0.5)
    said = [s.body for s in ms.all(from_server)]
    assert sum("ferry test server" in b for b in said) == 1, said
    assert not any("welcome" in b.lower() or "users" in b.lower() and "servers" in b.lower()
                   for b in said), said
    assert motd.body.strip(), motd

    # a second line after a carriage return is a second command, never part of the first
    mi = ivan.mark()
    sid.send_message(server_jid(), "PRIVMSG ivan40 :one\rPRIVMSG ivan40 :two")
    got = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "sid", since=mi, count=2, what="two lines")
    assert [l.params for l in got] == [["ivan40", "one"], ["ivan40", "two"]], got


def test_server_jid_refuses_what_is_not_a_command(env, xmpp, irc):
    ivan = irc("ivan42")
    tom = xmpp("tom")
    mt, mi = Mark(tom), ivan.mark()
    id = tom.send_message(server_jid(), "PRIVMSG ivan42 :first\n:prefix.only")
    err = mt.wait(lambda s: s.name == "message" and s.type == "error" and s.id == id, what="error")
    assert err.error_condition == "bad-request" and err.error_type == "modify", err
    assert "tom" not in ivan.ison("tom"), "no IRC connection for a refused message"
    # nothing of it was sent: the valid first line waits for a valid whole
    id = tom.send_message(server_jid(), "PRIVMSG ivan42 :second")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "tom", since=mi, what="PRIVMSG")
    assert line.params[-1] == "second", line
    assert not mt.all(lambda s: s.type == "error" and s.id == id)


def test_refusal_numeric_is_said_in_the_room(env, xmpp, irc):
    """A non-operator kicks: ferry sends KICK, IRC answers 482, and the user
    reads the refusal in the room, from the room itself."""
    ivan, rj, una = setup_room(irc, xmpp, "ivan41", "#noop", "una")
    mu = Mark(una)
    admin = "<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='ivan41' role='none'/></query>"
    assert una.iq(rj, "set", admin).type == "result"
    msg = mu.wait(lambda s: s.name == "message" and s.type == "groupchat" and s.frm == rj
                  and s.body, what="482 in the room")
    # ngircd's words for 482: "#noop Your privileges are too low"
    assert msg.body.startswith("#noop ") and len(msg.body) > len("#noop "), msg
    assert "ivan41" in [strip_nick_prefix(n) for n in ivan.names("#noop")], "ivan41 is still there"
