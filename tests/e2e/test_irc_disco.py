"""IRC gateway discovery and roster, as clients browse it: the component
as a conference service, rooms as text rooms, server JIDs, the default
server's channels on the component, subscriptions to the gateway and to
server JIDs with their presence, connection progress from the server JID,
raw IRC commands typed to the component. Real Prosody, ngircd, ferry and
slixmpp clients.
"""

import time
from xml.sax.saxutils import quoteattr

import pytest

import harness as h
from irc_fixtures import IrcEnv, irc, irc_component, users, xmpp  # noqa: F401 (fixtures)
from test_irc import DOMAIN, IRC, NS_MUC, SECRET, USERS, Mark, join, leave, room, wait_privmsg

DEF_DOMAIN = "ircdef.localhost"   # a component whose default server is IRC
DEAD = "dead.localhost"           # a server nothing listens for
NS_INFO = h.NS_DISCO_INFO
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_COMMANDS = "http://jabber.org/protocol/commands"


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.ngircd = e.start_ngircd(IRC)
        e.prosody = tb.prosody(components={DOMAIN: SECRET, DEF_DOMAIN: SECRET}, users=users(USERS))
        e.dead_port = h.free_port()
        servers = {IRC: {"host": "127.0.0.1", "port": e.ngircd.port, "tls": False},
                   DEAD: {"host": "127.0.0.1", "port": e.dead_port, "tls": False}}
        e.link({"irc": irc_component(DOMAIN, SECRET, servers),
                "ircdef": irc_component(DEF_DOMAIN, SECRET, {IRC: servers[IRC]}, default_server=IRC)})
        yield e


def server_jid(server=IRC):
    return "%s@%s" % (server, DOMAIN)


def disco_info(c, jid, node=None):
    attrs = " node=%s" % quoteattr(node) if node else ""
    r = c.iq(jid, "get", "<query xmlns='%s'%s/>" % (NS_INFO, attrs))
    assert r.type == "result", r
    q = r.find(NS_INFO, "query")
    ids = [(i.get("category"), i.get("type"), i.get("name")) for i in q if i.tag == "{%s}identity" % NS_INFO]
    feats = {f.get("var") for f in q if f.tag == "{%s}feature" % NS_INFO}
    return q, ids, feats


# ---------------------------------------------------------------- disco


def test_component_is_a_conference_service(env, xmpp):
    alice = xmpp("alice")
    _, ids, feats = disco_info(alice, DOMAIN)
    kinds = {(c, t) for c, t, _ in ids}
    assert {("conference", "irc"), ("gateway", "irc")} <= kinds, ids
    assert {NS_MUC, "urn:xmpp:mam:2", NS_COMMANDS, "jabber:iq:version", "urn:xmpp:ping"} <= feats, feats


def test_room_is_a_text_room_with_its_features(env, xmpp):
    bob = xmpp("bob")
    q, ids, feats = disco_info(bob, room("#anyroom"))
    assert ids == [("conference", "text", "#anyroom on %s" % IRC)], ids
    assert {NS_MUC, "muc_nonanonymous", "urn:xmpp:sid:0", "urn:xmpp:mam:2", "urn:xmpp:ping",
            "jabber:iq:version", NS_COMMANDS} <= feats, feats
    # the muc#traffic reply names the node asked for
    traffic = "http://jabber.org/protocol/muc#traffic"
    q, ids, feats = disco_info(bob, room("#anyroom"), node=traffic)
    assert q.get("node") == traffic, q


def test_server_jid_answers_disco_info_with_its_commands(env, xmpp):
    carol = xmpp("carol")
    _, ids, feats = disco_info(carol, server_jid())
    assert ids and all(c and t for c, t, _ in ids), ids
    assert {NS_COMMANDS, "jabber:iq:register", NS_INFO} <= feats, feats


def test_default_server_channels_are_the_components_items(env, xmpp, irc):
    ivan = irc("ivand1")
    ivan.join("#dlist")
    ivan.join("#q&a1")
    dave = xmpp("dave")
    r = dave.iq(DEF_DOMAIN, "get", "<query xmlns='%s'/>" % NS_ITEMS, timeout=20)
    assert r.type == "result", r
    items = {i.get("jid"): i.get("name") for i in r.el.iter("{%s}item" % NS_ITEMS)}
    assert "#dlist@" + DEF_DOMAIN in items, items
    escaped = "#q\\26a1@" + DEF_DOMAIN   # XEP-0106: & is \26
    assert escaped in items and items[escaped].startswith("#q&a1"), items
    # the commands node is still the ad-hoc list
    r = dave.iq(DEF_DOMAIN, "get", "<query xmlns='%s' node='%s'/>" % (NS_ITEMS, NS_COMMANDS))
    assert r.type == "result" and r.find(NS_ITEMS, "query").get("node") == NS_COMMANDS, r


def test_text_to_the_component_is_raw_irc_with_a_default_server(env, xmpp, irc):
    ivan = irc("ivand2")
    erin = xmpp("erin")
    mi = ivan.mark()
    erin.send_message(DEF_DOMAIN, "PRIVMSG ivand2 :typed to the gateway")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "erin", since=mi, timeout=15)
    assert line.params == ["ivand2", "typed to the gateway"], line


# ---------------------------------------------------------------- the server JID as a contact


def from_jid(s, jid):
    return (s.frm or "").split("/")[0] == jid


def test_connection_progress_from_the_server_jid(env, xmpp, irc):
    frank = xmpp("frank")
    m = Mark(frank)
    join(frank, room("#progress"), "frank")
    said = [s.body for s in m.all(lambda s: s.name == "message" and s.type == "chat" and from_jid(s, server_jid()))]
    connecting = "Connecting to 127.0.0.1:%d (not encrypted)" % env.ngircd.port
    assert said[:2] == [connecting, "Connected to IRC server."], said
    # a server nobody listens on: the attempt and why it failed
    m = Mark(frank)
    _, err = join(frank, room("#nowhere", DEAD), "frank", expect_error=True)
    said = [s.body for s in m.all(lambda s: s.name == "message" and s.type == "chat"
                                  and from_jid(s, server_jid(DEAD)))]
    assert said[:1] == ["Connecting to 127.0.0.1:%d (not encrypted)" % env.dead_port], said
    assert len(said) == 2 and said[1].startswith("Connection failed: "), said


def presence_from(mark, jid, type=None, timeout=10):
    return mark.wait(lambda s: s.name == "presence" and from_jid(s, jid) and "/" not in (s.frm or "")
                     and s.type == type, timeout=timeout, what="presence %s from %s" % (type, jid))


def subscription(c, jid):
    """What the user's roster (asked of Prosody) says of jid: "none", "to",
    "from" or "both" (Prosody answers a subscription with roster pushes)."""
    r = c.iq(c.bare_jid, "get", "<query xmlns='jabber:iq:roster'/>")
    for i in r.el.iter("{jabber:iq:roster}item"):
        if i.get("jid") == jid:
            return i.get("subscription")
    return "none"


def test_subscribing_to_a_server_jid_and_its_presence(env, xmpp, irc):
    grace = xmpp("grace")
    sj = server_jid()
    m = Mark(grace)
    grace.send_raw("<presence type='subscribe' to=%s/>" % quoteattr(sj))
    presence_from(m, sj, "subscribe")           # approved, and asked back
    h.wait_until(lambda: subscription(grace, sj) == "both", 10, interval=0.1, what="a mutual subscription")
    presence_from(m, sj, "unavailable")         # not connected yet
    # the connection comes up: available; it goes (last room left): unavailable
    m = Mark(grace)
    rj = room("#contact")
    join(grace, rj, "grace")
    presence_from(m, sj, None)
    m = Mark(grace)
    leave(grace, rj, "grace")
    presence_from(m, sj, "unavailable")
    # unsubscribe is honoured: the contact lets go, and says no more
    grace.send_raw("<presence type='unsubscribe' to=%s/>" % quoteattr(sj))
    h.wait_until(lambda: subscription(grace, sj) == "none", 10, interval=0.1, what="no subscription left")
    m = Mark(grace)
    join(grace, rj, "grace")
    time.sleep(1)
    assert not m.all(lambda s: s.name == "presence" and from_jid(s, sj) and s.type is None), m.all()


def test_subscribing_to_the_gateway(env, xmpp):
    heidi = xmpp("heidi")
    m = Mark(heidi)
    heidi.send_raw("<presence type='subscribe' to=%s/>" % quoteattr(DOMAIN))
    presence_from(m, DOMAIN, "subscribe")
    h.wait_until(lambda: subscription(heidi, DOMAIN) == "both", 10, interval=0.1, what="a mutual subscription")
    presence_from(m, DOMAIN, None)
