"""IRC rooms with several ferry instances on one PostgreSQL store (issue 14):
a user's rooms belong to the slot their IRC connection was made under, and
are put back by the instance that takes that slot, never by every instance.

- Prosody, slots = 1, alpha active and beta standing by: a user joins a
  room through alpha; beta does not join it at start (it carries no
  traffic); alpha is SIGKILLed; beta takes the slot and, without the client
  doing anything, the user's resource gets its room again (self-presence
  with 110, occupants, subject), talk on IRC reaches it, and the IRC
  channel has the user once (under the nick, or with the `_` the IRC
  server makes ferry add while it still holds the dead connection's nick).
- ejabberd, slots = 2, two active instances: each restores only its own
  slot's rooms at a restart, not the other's.
- ejabberd, slots = 2, users of both instances in one channel: each IRC
  line is in the archive once, in order, for a MAM query to either
  instance; still once and with no gap when the archiving instance's last
  user leaves, and when it is SIGKILLed (its history lease runs out).
- ejabberd, slots = 2: a persistent channel is joined again by the
  instance holding its user's slot, not by the holder of slot 0 (where a
  second connection would hold the user's nick).

Real Prosody/ejabberd, ngircd and a throwaway PostgreSQL; slixmpp clients,
raw IRC clients. `pytest -s -k standby` prints how long after the SIGKILL the
user had the room again."""

import re
import signal
import time

import pytest

import harness as h
import pg_helpers
from irc_fixtures import irc, irc_component, one_ngircd_env, users, wait_link_up, xmpp  # noqa: F401 (fixtures)
from test_irc import IRC, SECRET, Mark, codes, join, leave, mam_query, subject_of, wait_groupchat

DOMAIN = "rc.localhost"
USERS = ["ann", "bo"]

pytestmark = pg_helpers.NEEDS_POSTGRESQL
pg = pg_helpers.pg  # the module's server


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    yield from one_ngircd_env(module_testbed, IRC, DOMAIN, SECRET, USERS, link=False)


def instance(tb, server, env, name, url, slots=1, lease=None):
    comp = irc_component(DOMAIN, SECRET, {IRC: env.ngircd_table()}, slots=slots)
    storage = dict({"url": url}, **({"lease": lease} if lease else {}))
    f = tb.linked_ferry(server, {"irc": comp}, storage=storage, cluster={"instance": name},
                        name="ferry-" + name, wait_up=False)
    f.wait_healthz(200, timeout=20)
    return f


def role(f):
    _, doc = f.healthz()
    return ((doc or {}).get("components", {}).get("irc", {}) or {}).get("role")


def wait_role(f, want, timeout=15):
    h.wait_until(lambda: role(f) == want, timeout, interval=0.05,
                 what="%s's role %s (it is %s)" % (f.name, want, role(f)))


def room(chan):
    return "%s%%%s@%s" % (chan, IRC, DOMAIN)


def ann_in(names):
    """ann's entries in a NAMES list (prefixes dropped): ann, ann_..."""
    return [n.lstrip("@+") for n in names if re.fullmatch(r"ann_*", n.lstrip("@+"))]


def test_standby_puts_the_dead_instances_users_back_in_their_rooms(env, testbed, pg, xmpp, irc):
    tb = testbed
    url = pg.url(pg.new_database())
    alpha = instance(tb, env.prosody, env, "alpha", url)
    wait_role(alpha, "active")
    wait_link_up(alpha)
    beta = instance(tb, env.prosody, env, "beta", url)
    wait_role(beta, "standby")

    ivan = irc("clivan1")
    ivan.join("#cl1")
    ivan.send("TOPIC #cl1 :kept across failover")
    ann = xmpp("ann")
    rj = room("#cl1")
    join(ann, rj, "ann")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "ann", what="ann on IRC")
    # the standby carries no traffic: it did not join ann's room at start
    assert "rejoining" not in beta.stderr(), beta.report()
    assert ann_in(ivan.names("#cl1")) == ["ann"]

    m, mi = Mark(ann), ivan.mark()
    offset = beta.stderr_offset()
    alpha.expect_exit = True
    killed_at = time.time()
    alpha.signal(signal.SIGKILL)
    assert alpha.wait_exit(5) == -signal.SIGKILL
    wait_role(beta, "active")
    beta.wait_log(r"rejoining 1 room\(s\) for the users who were in them \(slot 0\)", offset=offset,
                  timeout=15)

    # ann's client did nothing: her room comes back, from beta
    me = m.wait(lambda s: s.name == "presence" and s.type is None and (s.frm or "").startswith(rj + "/")
                and 110 in codes(s), timeout=20, what="self-presence from %s after the failover" % rj)
    back = time.time() - killed_at
    nick = me.frm.split("/", 1)[1]
    assert re.fullmatch(r"ann_?", nick), me
    assert m.all(lambda s: s.name == "presence" and s.type is None and s.frm == rj + "/clivan1"), \
        "no occupant list after the failover"
    subj = m.wait(lambda s: s.name == "message" and subject_of(s) is not None
                  and (s.frm or "").split("/")[0] == rj, timeout=20, what="subject of %s" % rj)
    assert subject_of(subj) == "kept across failover"
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == nick, since=mi, timeout=15, what="ann back on IRC")
    ivan.privmsg("#cl1", "welcome to beta")
    wait_groupchat(ann, rj, "clivan1", "welcome to beta", mark=m)
    print("\nIRC failover: the room's self-presence %.3f s after SIGKILL, as %s" % (back, nick))

    # once on IRC: the dead connection is gone, no second instance joined too
    h.wait_until(lambda: len(ann_in(ivan.names("#cl1"))) == 1, 10, interval=0.2,
                 what="ann once in #cl1 (NAMES %r)" % ivan.names("#cl1"))
    assert len(ivan.lines(lambda l: l.command == "JOIN" and l.nick.startswith("ann"), since=mi)) == 1

    # alpha, started again, stands by and puts nobody back
    offset = alpha.stderr_offset()
    alpha.start()
    alpha.wait_healthz(200, timeout=20)
    wait_role(alpha, "standby")
    mi = ivan.mark()
    ivan.privmsg("#cl1", "still one ann")
    wait_groupchat(ann, rj, "clivan1", "still one ann", mark=m)
    assert not ivan.lines(lambda l: l.command == "JOIN" and l.nick.startswith("ann"), since=mi)
    assert "rejoining" not in alpha.stderr(offset), alpha.report()


def irc_connections(f):
    _, samples, _, _ = f.metrics()
    return sum(h.metric_values(samples, "ferry_irc_connections") or [0])


def two_active(tb, pg, env, names, lease=None):
    """An ejabberd with bare_source over 2 slots for NAMES@localhost, and two
    active ferries (alpha, beta) on one new database; returns ejabberd, the
    ferries and the database's name."""
    if h.ejabberd_missing():
        pytest.fail("ejabberd: " + h.ejabberd_missing(), pytrace=False)
    ejabberd = tb.ejabberd(components={DOMAIN: SECRET}, balancing={DOMAIN: 2}, users=users(names))
    db = pg.new_database()
    ferries = [instance(tb, ejabberd, env, n, pg.url(db), slots=2, lease=lease) for n in ("alpha", "beta")]
    for f in ferries:
        wait_role(f, "active")
        wait_link_up(f)
    return ejabberd, ferries, db


def join_all(tb, ejabberd, ferries, ivan, rj, names):
    """NAMES join RJ one by one (ivan sees each on IRC); returns their
    clients ({name: client}) and who landed where ({ferry name: [names]}),
    which must be both instances."""
    on = {f.name: [] for f in ferries}
    clients = {}
    for u in names:
        c = clients[u] = tb.client("%s@localhost" % u, u + "pw", ejabberd, plugins=("xep_0045",))
        before = {f.name: irc_connections(f) for f in ferries}
        join(c, rj, u)
        ivan.wait(lambda l, u=u: l.command == "JOIN" and l.nick == u, what="%s on IRC" % u)
        [carrier] = [f for f in ferries if irc_connections(f) > before[f.name]]
        on[carrier.name].append(u)
    assert all(on.values()), "bare_source put every user on one instance: %r" % on
    return clients, on


def test_two_active_instances_each_restore_only_their_slots_rooms(testbed, pg, env, irc):
    """ejabberd, bare_source over 2 slots, two active instances: users'
    rooms sit on the instance their stanzas reach. One instance restarted
    (SIGTERM) puts back its own users, and not the other instance's (which
    would give those a second IRC connection, under nick_)."""
    names = ["ann", "bo", "cy", "di", "ed", "flo"]
    ejabberd, ferries, _ = two_active(testbed, pg, env, names)
    ivan = irc("clivan2")
    ivan.join("#cl2")
    rj = room("#cl2")
    clients, on = join_all(testbed, ejabberd, ferries, ivan, rj, names)
    alpha, beta = ferries
    m = {u: Mark(clients[u]) for u in names}
    mi = ivan.mark()
    assert alpha.stop() == 0, alpha.report()
    offset = alpha.stderr_offset()
    alpha.start()
    alpha.wait_healthz(200, timeout=20)
    wait_role(alpha, "active")
    alpha.wait_log(r"rejoining %d room\(s\)" % len(on[alpha.name]), offset=offset, timeout=15)
    for u in on[alpha.name]:
        m[u].wait(lambda s, u=u: s.name == "presence" and s.type is None and s.frm == rj + "/" + u
                  and 110 in codes(s), timeout=20, what="%s's self-presence after alpha's restart" % u)
    ivan.wait(lambda l: l.command == "JOIN" and l.nick in on[alpha.name], since=mi, count=len(on[alpha.name]),
              timeout=15, what="alpha's users back on IRC")
    ivan.privmsg("#cl2", "all here?")
    for u in names:
        wait_groupchat(clients[u], rj, "clivan2", "all here?", mark=m[u])
    # every user once on IRC; beta's users were not joined a second time
    nicks = [n.lstrip("@+") for n in ivan.names("#cl2")]
    assert sorted(n for n in nicks if n != "clivan2") == sorted(names), nicks
    joins = [l.nick for l in ivan.lines(lambda l: l.command == "JOIN", since=mi)]
    assert sorted(joins) == sorted(on[alpha.name]), (joins, on)


HIST_LEASE = 3  # storage.lease (s) in the history test


def history_holder(pg, db):
    """The name of the ferry (ferry-INSTANCE) holding the (one) channel
    history lease, or None."""
    out = pg.sql("SELECT split_part(owner, ' ', 1) FROM leases WHERE direction = 2", db=db)
    return "ferry-" + out if out else None


def archived_bodies(c, rj, nick):
    """Bodies from NICK in RJ's archive as a MAM query by C returns them."""
    got, fin = mam_query(c, rj)
    assert fin is not None and fin.get("complete") == "true", fin
    return [b for _, frm, b, _ in got if frm == rj + "/" + nick]


def wait_archive(c, rj, nick, want, timeout=10):
    """Waits until C's MAM query returns WANT (bodies from NICK), then checks
    that it still does a moment later (no late duplicate)."""
    h.wait_until(lambda: len(archived_bodies(c, rj, nick)) >= len(want), timeout, interval=0.2,
                 what="%d archived lines (%r)" % (len(want), archived_bodies(c, rj, nick)))
    time.sleep(0.5)
    got = archived_bodies(c, rj, nick)
    assert got == want, "the archive as %s sees it:\n%r\nwanted:\n%r" % (c.jid, got, want)


def test_channel_history_is_archived_once_across_instances(testbed, pg, env, irc):
    """Users on two active instances in one channel: each IRC line is in
    the channel's archive once, in order, whichever instance a MAM query
    goes to; still once and without a gap after the archiving instance's
    last user leaves, and after the archiving instance is SIGKILLed (its
    lease, HIST_LEASE s here, runs out; the other fills in what it kept)."""
    names = ["ann", "bo", "cy", "di", "ed", "flo"]
    tb = testbed
    ejabberd, ferries, db = two_active(tb, pg, env, names, lease=HIST_LEASE)
    ivan = irc("clivan3")
    ivan.join("#cl3")
    rj = room("#cl3")
    clients, on = join_all(tb, ejabberd, ferries, ivan, rj, names)
    by_name = {f.name: f for f in ferries}
    said = []

    def say(*lines, to=None):
        for line in lines:
            ivan.privmsg("#cl3", line)
            said.append(line)
        for u in to or names:
            wait_groupchat(clients[u], rj, "clivan3", lines[-1], timeout=15)

    # both instances see every line; the archive has each once
    say(*["both %d" % i for i in range(10)])
    for f in ferries:
        wait_archive(clients[on[f.name][0]], rj, "clivan3", said)
    holder = history_holder(pg, db)
    assert holder in by_name, holder
    other = [f for f in ferries if f.name != holder][0]

    # the archiving instance's users leave: the other takes over, no gap
    for u in on[holder]:
        leave(clients[u], rj, u)
    say(*["left %d" % i for i in range(5)], to=on[other.name])
    wait_archive(clients[on[other.name][0]], rj, "clivan3", said)
    # (the archive was complete all along; the lease moves within a second)
    h.wait_until(lambda: history_holder(pg, db) == other.name, 5, interval=0.1,
                 what="%s archiving #cl3 (%s is)" % (other.name, history_holder(pg, db)))

    # they come back (on the same instance), and the archiving one dies
    for u in on[holder]:
        join(clients[u], rj, u)
    say("back")
    victim = by_name[history_holder(pg, db)]
    [survivor] = [f for f in ferries if f is not victim]
    victim.expect_exit = True
    victim.signal(signal.SIGKILL)
    assert victim.wait_exit(5) == -signal.SIGKILL
    # said while the dead instance's lease still runs, and after
    say(*["dead %d" % i for i in range(5)], to=on[survivor.name])
    time.sleep(HIST_LEASE + 0.5)
    say(*["later %d" % i for i in range(3)], to=on[survivor.name])
    wait_archive(clients[on[survivor.name][0]], rj, "clivan3", said, timeout=HIST_LEASE * 2 + 5)
    assert history_holder(pg, db) == survivor.name


def restart(f):
    """Stops F (SIGTERM) and starts it again, active and linked: it takes
    the slot it left (the only one free, at ejabberd too)."""
    assert f.stop() == 0, f.report()
    f.start()
    f.wait_healthz(200, timeout=20)
    wait_role(f, "active")
    wait_link_up(f)


def test_persistent_channel_stays_on_the_users_own_instance(testbed, pg, env, irc):
    """A user whose stanzas go to slot 1 makes a channel persistent and
    leaves it. The holder of slot 0 restarted does not join it (it would
    hold a second connection under the user's nick: IRC would see the
    user twice, as nick and nick_); the holder of slot 1 restarted joins it
    again, and when the user comes back they are in it under their nick,
    once on IRC."""
    names = ["ann", "bo", "cy", "di"]
    tb = testbed
    ejabberd, ferries, _ = two_active(tb, pg, env, names)
    [one] = [f for f in ferries if re.search(r"holding slot 1 ", f.stderr())]
    [zero] = [f for f in ferries if f is not one]
    ivan = irc("clivan4")
    ivan.join("#cl4")
    rj = room("#cl4")
    clients, on = join_all(tb, ejabberd, ferries, ivan, rj, names)
    u = on[one.name][0]
    form = ("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='persistent'><value>true</value></field></x></query>")
    assert clients[u].iq(rj, "set", form).type == "result"
    for n in names:
        leave(clients[n], rj, n)

    def in_channel():
        return sorted(n.lstrip("@+") for n in ivan.names("#cl4") if n.lstrip("@+") != "clivan4")

    h.wait_until(lambda: in_channel() == [u], 10, interval=0.2,
                 what="only %s left in #cl4 (%r)" % (u, in_channel()))

    restart(zero)
    time.sleep(1)
    assert in_channel() == [u], "after the restart of slot 0's instance: %r" % in_channel()
    assert irc_connections(zero) == 0, irc_connections(zero)

    mi = ivan.mark()
    restart(one)
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == u, since=mi, timeout=15, what="%s back in #cl4" % u)
    assert irc_connections(one) == 1 and irc_connections(zero) == 0, \
        "the persistent channel's connections: %s %d, %s %d" % (
            one.name, irc_connections(one), zero.name, irc_connections(zero))
    m = Mark(clients[u])
    join(clients[u], rj, u)
    ivan.privmsg("#cl4", "you are back")
    wait_groupchat(clients[u], rj, "clivan4", "you are back", mark=m)
    assert in_channel() == [u], in_channel()
