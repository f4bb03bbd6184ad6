"""Restarts that IRC room users do not notice: ferry keeps in its store which
resource is in which room with which nick; after a SIGTERM (or a crash, kill
-9) and a start with the same store, each client gets its rooms back
(occupants, self-presence with 110, subject) without doing anything, and
what is said on IRC reaches it again. SIGTERM sends no 332; SIGUSR1 stops
for good (332, rooms forgotten). The MOTD is shown once per user and
server, not at every reconnect.

Real Prosody, real ngircd, ferries of the test's own (each on its own
component domain, with its own store file), slixmpp clients, raw IRC
clients."""

import signal
import time

import pytest

import harness as h
from irc_fixtures import IrcEnv, irc, irc_component, users, wait_link_up, xmpp  # noqa: F401 (fixtures)
from test_irc import (IRC, SECRET, Mark, codes, groupchat, join, leave, subject_of, wait_groupchat,
                      wait_privmsg)

DOMAINS = ["r%d.localhost" % i for i in range(1, 9)]
USERS = ["ann", "bo", "cy", "di", "ed", "flo", "gia", "hal", "ike", "jo", "ken", "lu"]


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.ngircd = e.start_ngircd(IRC)
        e.prosody = tb.prosody(vhosts=("localhost",), components={d: SECRET for d in DOMAINS}, users=users(USERS))
        e.domains = list(DOMAINS)
        yield e


class Gw:
    """A ferry of the test's own on one component domain."""

    def __init__(self, env, testbed):
        self.domain = env.domains.pop(0)
        comp = irc_component(self.domain, SECRET, {IRC: dict(host="127.0.0.1", port=env.ngircd.port, tls=False)})
        self.f = testbed.linked_ferry(env.prosody, {"irc": comp})
        self.wait_up()

    def wait_up(self):
        self.f.wait_healthz(200)
        wait_link_up(self.f)

    def room(self, chan):
        return "%s%%%s@%s" % (chan, IRC, self.domain)

    def server_jid(self):
        return "%s@%s" % (IRC, self.domain)

    def restart(self, sig=signal.SIGTERM):
        """Stops ferry with SIG (SIGKILL: a crash), waits for the exit,
        starts it again with the same config and store."""
        if sig == signal.SIGTERM:
            assert self.f.stop() == 0, self.f.report()
        else:
            self.f.expect_exit = True
            self.f.signal(sig)
            assert self.f.wait_exit(10) is not None, "ferry did not exit on %s" % sig
        self.f.start()
        self.wait_up()


@pytest.fixture
def gw(env, testbed):
    return Gw(env, testbed)


def room_state(m, rj, timeout=20):
    """Waits for a room's state as a joining client gets it, unasked: the
    self-presence (110) and then the subject. Returns (self, subject)."""
    me = m.wait(lambda s: s.name == "presence" and s.type is None and (s.frm or "").startswith(rj + "/")
                and 110 in codes(s), timeout=timeout, what="self-presence from %s" % rj)
    subj = m.wait(lambda s: s.name == "message" and s.type == "groupchat" and subject_of(s) is not None
                  and (s.frm or "").split("/")[0] == rj, timeout=timeout, what="subject of %s" % rj)
    return me, subj


def test_sigterm_restart_puts_users_back_in_their_rooms(env, xmpp, irc, gw):
    ivan = irc("rivan1")
    ivan.join("#rs1")
    ivan.send("TOPIC #rs1 :kept across restarts")
    ivan.join("#rs1b")
    ann = xmpp("ann")
    rj, rj2 = gw.room("#rs1"), gw.room("#rs1b")
    join(ann, rj, "ann")
    join(ann, rj2, "ann")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ann", count=2)
    m, mi = Mark(ann), ivan.mark()
    gw.f.stop()
    q = ivan.wait(lambda l: l.command == "QUIT" and l.nick == "ann", since=mi, what="ann's QUIT")
    assert "restart" in q.trailing, q
    time.sleep(0.5)
    # (the server JID, a roster contact, may go offline: the IRC connection did)
    gone = m.all(lambda s: s.name == "presence" and s.type == "unavailable"
                 and (s.frm or "").split("/")[0] in (rj, rj2))
    assert not gone, "a restart told the client it left its rooms: %r" % gone
    mi = ivan.mark()
    gw.f.start()
    gw.wait_up()
    for r in (rj, rj2):
        me, subj = room_state(m, r)
        assert me.frm == r + "/ann", me
        occupants = m.all(lambda s: s.name == "presence" and s.type is None and s.frm == r + "/rivan1")
        assert occupants, "no occupant list for %s after the restart" % r
    assert subject_of(m.wait(lambda s: subject_of(s) is not None and s.frm.split("/")[0] == rj)) \
        == "kept across restarts"
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ann", since=mi, count=2, what="ann back on IRC")
    ivan.privmsg("#rs1", "welcome back")
    wait_groupchat(ann, rj, "rivan1", "welcome back", mark=m)
    mi = ivan.mark()
    groupchat(ann, rj2, "still here")
    wait_privmsg(ivan, "#rs1b", "ann", "still here", since=mi)


def test_every_resource_of_a_user_is_put_back(env, xmpp, irc, gw):
    ivan = irc("rivan2")
    ivan.join("#rs2")
    bo1, bo2 = xmpp("bo", "one"), xmpp("bo", "two")
    rj = gw.room("#rs2")
    join(bo1, rj, "bo")
    join(bo2, rj, "bo")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "bo")
    m1, m2 = Mark(bo1), Mark(bo2)
    gw.restart()
    room_state(m1, rj)
    room_state(m2, rj)
    ivan.privmsg("#rs2", "to both")
    wait_groupchat(bo1, rj, "rivan2", "to both", mark=m1)
    wait_groupchat(bo2, rj, "rivan2", "to both", mark=m2)


def test_crash_kill9_then_start_puts_users_back(env, xmpp, irc, gw):
    ivan = irc("rivan3")
    ivan.join("#rs3")
    cy = xmpp("cy")
    rj = gw.room("#rs3")
    join(cy, rj, "cy")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "cy")
    m, mi = Mark(cy), ivan.mark()
    gw.restart(signal.SIGKILL)
    me, _ = room_state(m, rj)
    assert me.frm.split("/")[0] == rj, me
    nick = me.frm.split("/", 1)[1]
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == nick, since=mi, what="cy back on IRC")
    ivan.privmsg("#rs3", "after the crash")
    wait_groupchat(cy, rj, "rivan3", "after the crash", mark=m)


def test_left_rooms_stay_left_after_a_restart(env, xmpp, irc, gw):
    ivan = irc("rivan4")
    ivan.join("#rs4")
    di = xmpp("di")
    rj = gw.room("#rs4")
    join(di, rj, "di")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "di")
    leave(di, rj, "di")
    m, mi = Mark(di), ivan.mark()
    gw.restart()
    time.sleep(2)
    assert not m.all(lambda s: s.name == "presence" and (s.frm or "").startswith(rj)), m.all()
    assert not ivan.lines(lambda l: l.command == "JOIN" and l.nick == "di", since=mi)


def test_sigusr1_stops_for_good_with_332_and_forgets(env, xmpp, irc, gw):
    ivan = irc("rivan5")
    ivan.join("#rs5")
    ed = xmpp("ed")
    rj = gw.room("#rs5")
    join(ed, rj, "ed")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ed")
    m, mi = Mark(ed), ivan.mark()
    gw.f.expect_exit = True
    gw.f.signal(signal.SIGUSR1)
    assert gw.f.wait_exit(10) == 0, gw.f.report()
    q = ivan.wait(lambda l: l.command == "QUIT" and l.nick == "ed", since=mi, what="ed's QUIT")
    assert "shutting down" in q.trailing, q
    gone = m.wait(lambda s: s.name == "presence" and s.type == "unavailable" and s.frm == rj + "/ed",
                  timeout=5, what="unavailable presence (332)")
    assert {110, 332} <= codes(gone), gone
    assert not gw.f.problems(), gw.f.report()
    m, mi = Mark(ed), ivan.mark()
    gw.f.expect_exit = False
    gw.f.start()
    gw.wait_up()
    time.sleep(2)
    assert not m.all(lambda s: s.name == "presence" and (s.frm or "").startswith(rj)), m.all()
    assert not ivan.lines(lambda l: l.command == "JOIN" and l.nick == "ed", since=mi)


def motds(c, gw, m):
    return m.all(lambda s: s.name == "message" and s.frm == gw.server_jid() and "ferry test server" in (s.body or ""))


def test_motd_is_shown_once_per_user_and_server(env, xmpp, irc, gw):
    ivan = irc("rivan6")
    ivan.join("#rs6")
    flo = xmpp("flo")
    rj = gw.room("#rs6")
    m = Mark(flo)
    join(flo, rj, "flo")
    m.wait(lambda s: s.name == "message" and s.frm == gw.server_jid() and "ferry test server" in (s.body or ""),
           what="the MOTD the first time")
    leave(flo, rj, "flo")
    h.wait_until(lambda: "flo" not in ivan.ison("flo"), 10, interval=0.2, what="flo's QUIT")
    m = Mark(flo)
    join(flo, rj, "flo")            # a new IRC connection: the server sends its MOTD again
    ivan.privmsg("#rs6", "sync")
    wait_groupchat(flo, rj, "rivan6", "sync", mark=m)
    time.sleep(0.3)
    assert motds(flo, gw, m) == [], "the MOTD again at a rejoin: %r" % motds(flo, gw, m)
    m = Mark(flo)
    gw.restart()
    room_state(m, rj)
    ivan.privmsg("#rs6", "sync 2")
    wait_groupchat(flo, rj, "rivan6", "sync 2", mark=m)
    time.sleep(0.3)
    assert motds(flo, gw, m) == [], "the MOTD again after a restart: %r" % motds(flo, gw, m)


def test_persistent_channel_is_joined_again_after_a_restart(env, xmpp, irc, gw):
    """A channel the user made persistent (muc#owner form) stays joined with
    nobody in the room, and after a restart ferry joins it again: what is
    said meanwhile is archived, and the user gets it on rejoin."""
    ivan = irc("rivan7")
    ivan.join("#rs7")
    gia = xmpp("gia")
    rj = gw.room("#rs7")
    join(gia, rj, "gia")
    form = ("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='persistent'><value>true</value></field></x></query>")
    assert gia.iq(rj, "set", form).type == "result"
    leave(gia, rj, "gia")
    mi = ivan.mark()
    gw.restart()
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "gia", since=mi, what="gia back in #rs7")
    ivan.privmsg("#rs7", "said while gia was away")
    time.sleep(0.5)
    m = Mark(gia)
    gia.send_raw("<presence to='%s/gia'><x xmlns='http://jabber.org/protocol/muc'>"
                 "<history maxstanzas='5'/></x></presence>" % rj)
    room_state(m, rj)
    got = m.all(lambda s: s.name == "message" and s.body == "said while gia was away")
    assert got, "the persistent channel's history was not given on rejoin: %r" % m.all()


def test_nick_taken_meanwhile_is_put_back_with_another(env, xmpp, irc, gw):
    """After a crash someone (or the old connection, not yet timed out) holds
    the user's nick: the room comes back with another nick (status 210), not
    as a failed join."""
    ivan = irc("rivan8")
    ivan.join("#rs8")
    hal = xmpp("hal")
    rj = gw.room("#rs8")
    join(hal, rj, "hal")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "hal")
    m = Mark(hal)
    gw.f.expect_exit = True
    gw.f.signal(signal.SIGKILL)
    assert gw.f.wait_exit(10) is not None
    h.wait_until(lambda: "hal" not in ivan.ison("hal"), 10, interval=0.1, what="hal gone from IRC")
    irc("hal")                        # the nick is taken before ferry is back
    gw.f.start()
    gw.wait_up()
    me, _ = room_state(m, rj)
    assert me.frm == rj + "/hal_" and {110, 210} <= codes(me), me
    ivan.privmsg("#rs8", "hello hal_")
    wait_groupchat(hal, rj, "rivan8", "hello hal_", mark=m)
