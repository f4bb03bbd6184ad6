"""IRC rooms as XEP-0045 clients read them: self-presence codes, real JIDs
of occupants, join order, joining again, leaving and joining at once,
kicks, nick changes, errors from a client, the subject's author, private
messages through a room, invitations, /mode, version requests and
XEP-0410 self-pings. Real Prosody, real ngircd, ferry, slixmpp clients and
raw IRC clients; every test uses its own accounts, nicks and channels.
"""

import time
from xml.sax.saxutils import quoteattr

import pytest

import harness as h
from irc_fixtures import IrcEnv, irc, irc_component, users, xmpp  # noqa: F401 (fixtures)
from test_irc import (DOMAIN, IRC, IRC2, NS_MUC, NS_MUC_USER, SECRET, USERS, Mark, codes, groupchat, is_presence_from,
                      item, join, leave, muc_x, room, self_presence, subject_of, user_jid, wait_groupchat,
                      wait_privmsg)

NS_DELAY = "urn:xmpp:delay"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.ngircd = e.start_ngircd(IRC)
        e.ngircd2 = e.start_ngircd(IRC2)   # stopped and started by a test
        e.prosody = tb.prosody(components={DOMAIN: SECRET}, users=users(USERS))
        server = {"host": "127.0.0.1", "port": e.ngircd.port, "tls": False, "throttle_burst": 20,
                  "throttle_rate": 5}
        e.link({"irc": irc_component(DOMAIN, SECRET, {IRC: server, IRC2: dict(server, port=e.ngircd2.port)})})
        yield e


def userhost(ircc, nick):
    """nick's user@host as the IRC server shows it (WHOIS, 311)."""
    m = ircc.mark()
    ircc.send("WHOIS %s" % nick)
    line = ircc.wait(lambda l: l.command == "311" and l.params[1] == nick, since=m, what="WHOIS %s" % nick)
    return "%s@%s" % (line.params[2], line.params[3])


def presences_from(mark, room_jid):
    return [s for s in mark.all() if s.name == "presence" and (s.frm or "").startswith(room_jid + "/")]


def join_presence(c, room_jid, nick, history="<history maxstanzas='0'/>"):
    c.send_raw("<presence to=%s><x xmlns='%s'>%s</x></presence>" % (quoteattr(room_jid + "/" + nick), NS_MUC,
                                                                   history))


def subjects(mark, room_jid):
    return mark.all(lambda s: s.name == "message" and s.type == "groupchat" and subject_of(s) is not None
                    and (s.frm or "").split("/")[0] == room_jid)


# ---------------------------------------------------------------- identity


def test_self_presence_100_110_and_every_item_has_a_jid(env, xmpp, irc):
    """Non-anonymous rooms: the self-presence carries 100 with 110, and
    every occupant item a jid: the IRC user's as biboumi writes it
    (nick%server@domain/user@host), the user's own full JID for itself."""
    ivan = irc("ivanm1")
    ivan.join("#ident")
    alice = xmpp("alice")
    rj = room("#ident")
    m, _ = join(alice, rj, "alice")
    got = {s.frm.split("/", 1)[1]: s for s in presences_from(m, rj)}
    me = got["alice"]
    assert {100, 110} <= codes(me) and 210 not in codes(me), me
    assert item(me).get("jid") == alice.full_jid, me
    assert item(got["ivanm1"]).get("jid") == "%s/%s" % (user_jid("ivanm1"), userhost(ivan, "ivanm1")), got["ivanm1"]

    # someone joining later: the user@host of the JOIN
    pat = irc("patm1")
    mm = Mark(alice)
    pat.join("#ident")
    p = mm.wait(lambda s: is_presence_from(s, rj + "/patm1"), what="patm1 joins")
    pat_jid = "%s/%s" % (user_jid("patm1"), userhost(pat, "patm1"))
    assert item(p).get("jid") == pat_jid, p
    # and leaving: the same jid
    pat.send("PART #ident :bye")
    p = mm.wait(lambda s: is_presence_from(s, rj + "/patm1", "unavailable"), what="patm1 leaves")
    assert item(p).get("jid") == pat_jid, p

    # a second room with another nick: the connection's nick, with 210
    r2 = room("#ident2")
    m2, _ = join(alice, r2, "alicia")
    me2 = [s for s in presences_from(m2, r2) if 110 in codes(s)][0]
    assert {100, 110, 210} <= codes(me2) and me2.frm == r2 + "/alice", me2


def test_joins_are_answered_in_the_order_sent(env, xmpp, irc):
    bob = xmpp("bob")
    chans = ["#ordfoo", "#ordbar", "#ordbaz"]
    m = Mark(bob)
    for c in chans:   # all before the IRC connection is up
        join_presence(bob, room(c), "bob")
    selves = m.wait(lambda s: s.name == "presence" and 110 in codes(s), count=3, timeout=20,
                    what="three self-presences")
    assert [s.frm.split("/")[0] for s in selves] == [room(c) for c in chans], selves


def test_join_again_with_another_nick_is_a_new_join(env, xmpp, irc):
    """A join presence (with the muc <x/>) while joined, as a client sends
    after a network blip: the whole room again, not a nick change. A
    presence without the <x/> to another nick is a nick change."""
    ivan = irc("ivanm3")
    ivan.join("#again")
    carol = xmpp("carol")
    rj = room("#again")
    join(carol, rj, "carol")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "carol")
    m, mi = Mark(carol), ivan.mark()
    join_presence(carol, rj, "caroline")
    subj = m.wait(lambda s: s in subjects(m, rj), what="the subject again")
    assert subj is not None
    got = presences_from(m, rj)
    assert any(s.frm == rj + "/ivanm3" for s in got), got
    me = [s for s in got if 110 in codes(s)]
    assert len(me) == 1 and me[0].frm == rj + "/carol" and 210 in codes(me[0]), got
    assert not any(s.type == "unavailable" for s in got), got
    time.sleep(0.5)
    assert not ivan.lines(lambda l: l.command in ("NICK", "PART", "JOIN") and l.nick == "carol", since=mi)

    # without the <x/>: a nick change (7.6)
    m = Mark(carol)
    carol.send_raw("<presence to=%s/>" % quoteattr(rj + "/carolyn"))
    ivan.wait(lambda l: l.command == "NICK" and l.nick == "carol" and l.params[0] == "carolyn", since=mi)
    gone = m.wait(lambda s: is_presence_from(s, rj + "/carol", "unavailable"), what="303")
    assert {303, 110} <= codes(gone) and item(gone).get("nick") == "carolyn", gone


def test_leave_and_join_at_once_works_every_time(env, xmpp, irc):
    """unavailable, then at once available with <history/>, while the PART
    is still on its way: a normal join with the history asked for."""
    ivan = irc("ivanm4")
    ivan.join("#blip")
    dave = xmpp("dave")
    rj = room("#blip")
    join(dave, room("#blipother"), "dave")   # another room: the connection stays
    join(dave, rj, "dave")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "dave")
    said = ["said %d" % i for i in range(3)]
    for text in said:
        ivan.privmsg("#blip", text)
    wait_groupchat(dave, rj, "ivanm4", "said 2")
    for attempt in range(3):
        m, mi = Mark(dave), ivan.mark()
        dave.send_raw("<presence type='unavailable' to=%s/>" % quoteattr(rj + "/dave"))
        join_presence(dave, rj, "dave", "<history maxstanzas='2'/>")
        m.wait(lambda s: s in subjects(m, rj), timeout=15, what="subject after rejoin %d" % attempt)
        ivan.wait(lambda l: l.command == "JOIN" and l.nick == "dave", since=mi, what="JOIN again")
        history = m.all(lambda s: s.name == "message" and s.find(NS_DELAY, "delay") is not None)
        assert [s.body for s in history] == said[-2:], (attempt, history)
        me = m.all(lambda s: s.name == "presence" and s.type is None and 110 in codes(s))
        assert me, (attempt, m.all())
        # still in the room afterwards: no unavailable after the join, and talk flows
        time.sleep(0.3)
        last_self = [s for s in m.all() if s.name == "presence" and 110 in codes(s)][-1]
        assert last_self.type is None, (attempt, m.all())
        said.append("still there %d?" % attempt)
        ivan.privmsg("#blip", said[-1])
        wait_groupchat(dave, rj, "ivanm4", said[-1], mark=m)


# ---------------------------------------------------------------- kicks, nicks


def test_kick_carries_actor_and_reason_in_the_item(env, xmpp, irc):
    ivan = irc("ivanm5")
    ivan.join("#kickx")
    erin, frank = xmpp("erin"), xmpp("frank")
    rj = room("#kickx")
    join(erin, rj, "erin")
    join(frank, rj, "frank")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "frank")
    me, mf = Mark(erin), Mark(frank)
    ivan.send("KICK #kickx erin :spamming links")
    for mark, own in ((me, True), (mf, False)):
        p = mark.wait(lambda s: is_presence_from(s, rj + "/erin", "unavailable"), what="kick presence")
        assert 307 in codes(p) and (110 in codes(p)) == own, p
        it = item(p)
        actor = it.find("{%s}actor" % NS_MUC_USER)
        reason = it.find("{%s}reason" % NS_MUC_USER)
        assert actor is not None and actor.get("nick") == "ivanm5", p
        assert reason is not None and reason.text == "spamming links", p
        assert it.get("role") == "none", p


def test_nick_change_303_keeps_affiliation_and_role(env, xmpp, irc):
    ivan = irc("ivanm6")
    ivan.join("#renames")          # creator: operator
    grace = xmpp("grace")
    rj = room("#renames")
    join(grace, rj, "grace")
    m = Mark(grace)
    ivan.send("NICK ivanm6b")
    gone = m.wait(lambda s: is_presence_from(s, rj + "/ivanm6", "unavailable"), what="303")
    assert 303 in codes(gone), gone
    it = item(gone)
    assert (it.get("nick"), it.get("role"), it.get("affiliation")) == ("ivanm6b", "moderator", "admin"), gone
    back = m.wait(lambda s: is_presence_from(s, rj + "/ivanm6b"), what="new nick")
    assert item(back).get("role") == "moderator", back


# ---------------------------------------------------------------- errors from clients


def error_stanza(kind, to, condition, etype="cancel"):
    inner = "<error type='%s'><%s xmlns='%s'/></error>" % (etype, condition, NS_STANZAS)
    return "<%s type='error' to=%s>%s</%s>" % (kind, quoteattr(to), inner, kind)


def test_error_from_a_resource_makes_it_leave(env, xmpp, irc):
    """A bounce from one of the user's resources takes that resource out
    of the room (no ghost); from the last one, PART."""
    ivan = irc("ivanm7")
    ivan.join("#ghosts")
    one, two = xmpp("heidi", "one"), xmpp("heidi", "two")
    rj = room("#ghosts")
    join(one, rj, "heidi")
    join(two, rj, "heidi")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "heidi")
    mi, m1, m2 = ivan.mark(), Mark(one), Mark(two)
    one.send_raw(error_stanza("presence", rj + "/heidi", "service-unavailable"))
    time.sleep(0.5)
    ivan.privmsg("#ghosts", "after the first error")
    wait_groupchat(two, rj, "ivanm7", "after the first error", mark=m2)
    time.sleep(0.5)
    assert not m1.all(lambda s: s.name == "message" and s.body == "after the first error"), m1.all()
    assert not ivan.lines(lambda l: l.nick == "heidi" and l.command in ("PART", "QUIT"), since=mi)
    # a message error that does not mean "gone" changes nothing
    two.send_raw(error_stanza("message", rj, "resource-constraint", "wait"))
    time.sleep(0.5)
    ivan.privmsg("#ghosts", "still two")
    wait_groupchat(two, rj, "ivanm7", "still two", mark=m2)
    # the last resource bounces: PART
    two.send_raw(error_stanza("message", rj + "/ivanm7", "recipient-unavailable"))
    ivan.wait(lambda l: l.command == "PART" and l.nick == "heidi", since=mi, what="PART of heidi")


# ---------------------------------------------------------------- subject, PMs, invitations, modes


def test_subject_comes_from_whoever_set_it(env, xmpp, irc):
    ivan = irc("ivanm8")
    ivan.join("#topics")
    mi = ivan.mark()
    ivan.send("TOPIC #topics :release on friday")
    ivan.wait(lambda l: l.command == "TOPIC", since=mi)
    ivy = xmpp("ivy")
    rj = room("#topics")
    _, subj = join(ivy, rj, "ivy")
    assert subject_of(subj) == "release on friday" and subj.frm == rj + "/ivanm8", subj


def test_private_message_through_the_room_is_answered_there(env, xmpp, irc):
    ivan = irc("ivanm9")
    ivan.join("#pms")
    judy = xmpp("judy")
    rj = room("#pms")
    join(judy, rj, "judy")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "judy")
    m, mi = Mark(judy), ivan.mark()
    judy.send_message(rj + "/ivanm9", "psst, via the room")
    ivan.wait(lambda l: l.command == "PRIVMSG" and l.params == ["ivanm9", "psst, via the room"], since=mi)
    ivan.privmsg("judy", "answer in the room window")
    got = m.wait(lambda s: s.name == "message" and s.body == "answer in the room window", what="the answer")
    assert got.frm == rj + "/ivanm9" and got.type == "chat", got
    assert muc_x(got) is not None, got
    # a chat started to nick%server stays there
    judy.send_message(user_jid("ivanm9"), "now directly")
    ivan.wait(lambda l: l.command == "PRIVMSG" and l.params == ["ivanm9", "now directly"], since=mi)
    ivan.privmsg("judy", "direct answer")
    got = m.wait(lambda s: s.name == "message" and s.body == "direct answer", what="the direct answer")
    assert got.frm.split("/")[0] == user_jid("ivanm9") and muc_x(got) is None, got


def test_invitation_with_a_bare_nick(env, xmpp, irc):
    kim = xmpp("kim")
    rj = room("#invites")
    join(kim, rj, "kim")           # creator: may invite
    ivan = irc("ivanm10")
    m, mi = Mark(kim), ivan.mark()
    kim.send_raw("<message to=%s><x xmlns='%s'><invite to='ivanm10'/></x></message>" % (quoteattr(rj), NS_MUC_USER))
    inv = ivan.wait(lambda l: l.command == "INVITE", since=mi, what="INVITE")
    assert inv.params == ["ivanm10", "#invites"], inv
    said = m.wait(lambda s: s.name == "message" and s.type == "groupchat" and s.frm == rj
                  and s.body == "ivanm10 has been invited to #invites", what="the room says so")
    assert said is not None


def test_mode_from_the_room_and_mode_changes_said_in_the_room(env, xmpp, irc):
    leo = xmpp("leo")
    rj = room("#modes")
    join(leo, rj, "leo")           # creator: operator
    ivan = irc("ivanm11")
    ivan.join("#modes")
    m, mi = Mark(leo), ivan.mark()
    groupchat(leo, rj, "/mode +k secret")
    line = ivan.wait(lambda l: l.command == "MODE" and l.nick == "leo", since=mi, what="MODE from leo")
    assert line.params == ["#modes", "+k", "secret"], line
    said = m.wait(lambda s: s.name == "message" and s.type == "groupchat" and s.frm == rj
                  and (s.body or "").startswith("Mode #modes"), what="mode said in the room")
    assert said.body == "Mode #modes [+k secret] by leo", said
    assert not m.all(lambda s: s.name == "message" and s.body == "/mode +k secret"), "reflected as a message"
    # a role given from the room: said, and the occupant's role follows
    groupchat(leo, rj, "/mode +o ivanm11")
    p = m.wait(lambda s: is_presence_from(s, rj + "/ivanm11") and item(s).get("role") == "moderator",
               what="ivanm11 becomes moderator")
    assert item(p).get("affiliation") == "admin", p
    m.wait(lambda s: s.name == "message" and s.body == "Mode #modes [+o ivanm11] by leo", what="+o said")
    # and one from IRC
    ivan.send("MODE #modes -k secret")
    # (ngircd hides the key it removes: "-k *")
    m.wait(lambda s: s.name == "message" and (s.body or "").startswith("Mode #modes [-k ")
           and s.body.endswith("] by ivanm11"), what="-k said")


def test_version_both_ways(env, xmpp, irc):
    ivan = irc("ivanm12")
    ivan.join("#versions")
    mia = xmpp("mia")
    rj = room("#versions")
    join(mia, rj, "mia")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "mia")
    mi = ivan.mark()
    iq_id = h.new_id("v")
    mia.send_raw("<iq type='get' to=%s id=%s><query xmlns='%s'/></iq>" % (quoteattr(rj + "/ivanm12"),
                                                                         quoteattr(iq_id), NS_VERSION))
    ask = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "mia", since=mi, what="CTCP VERSION")
    assert ask.params == ["ivanm12", "\x01VERSION\x01"], ask
    ivan.send("NOTICE mia :\x01VERSION irssi v1.4.3 - running on Linux\x01")
    res = mia.wait(lambda s: s.name == "iq" and s.id == iq_id, what="version result")
    assert res.type == "result", res
    q = res.find(NS_VERSION, "query")
    name, version = q.find("{%s}name" % NS_VERSION).text, q.find("{%s}version" % NS_VERSION).text
    assert "%s %s" % (name, version) == "irssi v1.4.3 - running on Linux", res
    # CTCP VERSION from IRC to the user: ferry answers
    ivan.privmsg("mia", "\x01VERSION\x01")
    reply = ivan.wait(lambda l: l.command == "NOTICE" and l.nick == "mia", since=mi, what="CTCP reply")
    assert reply.params[1].startswith("\x01VERSION ferry "), reply
    mi = ivan.mark()
    ivan.privmsg("mia", "\x01PING 1234567\x01")
    reply = ivan.wait(lambda l: l.command == "NOTICE" and l.nick == "mia", since=mi, what="CTCP PING reply")
    assert reply.params[1] == "\x01PING 1234567\x01", reply
    assert not mia.stanzas(lambda s: s.name == "message" and "VERSION" in (s.body or ""))


# ---------------------------------------------------------------- XEP-0410


def ping(c, jid):
    return c.iq(jid, "get", "<ping xmlns='%s'/>" % NS_PING)


def test_self_ping_only_while_joined(env, xmpp, irc):
    ivan = irc("ivanm13")
    ivan.join("#selfping")
    ned = xmpp("ned")
    rj = room("#selfping")
    r = ping(ned, rj + "/ned")
    assert r.type == "error" and r.error_condition == "not-acceptable", r
    assert r.find(h.NS_CLIENT, "error").get("by") == rj, r
    join(ned, rj, "ned")
    assert ping(ned, rj + "/ned").type == "result"
    assert ping(ned, rj + "/ivanm13").type == "result"
    r = ping(ned, rj + "/nobodym13")
    assert r.type == "error" and r.error_condition == "item-not-found", r
    # another resource of the same user, not in the room
    other = xmpp("ned", "other")
    r = ping(other, rj + "/ned")
    assert r.type == "error" and r.error_condition == "not-acceptable", r
    leave(ned, rj, "ned")
    r = ping(ned, rj + "/ned")
    assert r.type == "error" and r.error_condition == "not-acceptable", r


def test_self_ping_fails_while_the_irc_server_is_gone(env, xmpp, irc):
    """The IRC connection drops (332): a self-ping says not joined, so the
    client knows; once ferry is back in the room, it says joined again."""
    n2 = env.ngircd2
    olga = xmpp("olga")
    rj = room("#selfping2", IRC2)
    join(olga, rj, "olga")
    assert ping(olga, rj + "/olga").type == "result"
    m = Mark(olga)
    n2.stop()
    try:
        gone = m.wait(lambda s: is_presence_from(s, rj + "/olga", "unavailable"), timeout=15, what="332")
        assert 332 in codes(gone), gone
        r = ping(olga, rj + "/olga")
        assert r.type == "error" and r.error_condition == "not-acceptable", r
    finally:
        n2.start()
    m.wait(self_presence(rj), timeout=30, what="self-presence after the IRC server is back")
    h.wait_until(lambda: ping(olga, rj + "/olga").type == "result", 10, interval=0.2, what="joined again")
