"""IRC rooms' stable ids and archive, as Conversations and Gajim use them to
catch up after a reconnect: every groupchat message carries a XEP-0359
<stanza-id/> by the room, the same id is its MAM result id, the client's
<origin-id/> survives the reflection, and MAM pages (XEP-0313 with XEP-0059)
refuse ids the archive does not have and end with complete='true' only on
the last page.

Real Prosody, real ngircd, ferry, slixmpp clients, raw IRC clients."""

import pytest

import harness as h
from irc_fixtures import irc, one_ngircd_env, xmpp  # noqa: F401 (fixtures)
from test_irc import (DOMAIN, IRC, NS_MUC, SECRET, Mark, join, join_with_history, mam_query, room,
                      setup_room, wait_groupchat, wait_privmsg)

NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"

USERS = ["amy", "ben", "cat", "dan", "eve", "fred", "gil", "hugo", "ines", "joe", "kai", "liv"]


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    yield from one_ngircd_env(module_testbed, IRC, DOMAIN, SECRET, USERS)


def stanza_id(st):
    """(by, id) of a message's <stanza-id/>, or None."""
    s = st.find(NS_SID, "stanza-id")
    return None if s is None else (s.get("by"), s.get("id"))


def origin_id(st):
    s = st.find(NS_SID, "origin-id")
    return None if s is None else s.get("id")


def rsm(**kw):
    inner = ""
    for k in ("max", "after", "before"):
        if k in kw:
            v = kw[k]
            inner += "<%s/>" % k if v == "" else "<%s>%s</%s>" % (k, v, k)
    return "<set xmlns='%s'>%s</set>" % (NS_RSM, inner)


def test_irc_messages_carry_stanza_id_equal_to_mam_id(env, xmpp, irc):
    ivan, rj, amy = setup_room(irc, xmpp, "ivan1", "#arch1", "amy")
    for i in range(3):
        ivan.privmsg("#arch1", "said %d" % i)
    got = [wait_groupchat(amy, rj, "ivan1", "said %d" % i) for i in range(3)]
    sids = [stanza_id(g) for g in got]
    assert all(s is not None for s in sids), "groupchat from IRC without <stanza-id/>: %r" % got
    assert all(by == rj for by, _ in sids), sids
    ids = [i for _, i in sids]
    assert len(set(ids)) == 3 and all(ids), ids
    assert all(g.id for g in got), "a message from IRC without an id attribute: %r" % got
    archived, fin = mam_query(amy, rj)
    assert [(i, b) for i, _, b, _ in archived] == list(zip(ids, ["said %d" % i for i in range(3)])), \
        (archived, ids)


def test_reflection_keeps_origin_id_and_has_the_archive_id(env, xmpp, irc):
    ivan, rj, ben = setup_room(irc, xmpp, "ivan2", "#arch2", "ben")
    m, mi = Mark(ben), ivan.mark()
    ben.send_message(rj, "mine", id="client-id-1", mtype="groupchat",
                     extra="<origin-id xmlns='%s' id='origin-1'/>" % NS_SID)
    wait_privmsg(ivan, "#arch2", "ben", "mine", since=mi)
    echo = wait_groupchat(ben, rj, "ben", "mine", mark=m)
    assert echo.id == "client-id-1", echo
    assert origin_id(echo) == "origin-1", "the reflection lost the client's origin-id: %r" % echo
    assert stanza_id(echo) is not None and stanza_id(echo)[0] == rj, echo
    archived, _ = mam_query(ben, rj)
    assert [(i, b) for i, _, b, _ in archived] == [(stanza_id(echo)[1], "mine")], archived


def test_two_local_users_see_one_id_per_message(env, xmpp, irc):
    """Two XMPP users in a channel read each IRC line on their own IRC
    connection: both get the same stanza-id, the archive has it once; the
    message one of them sends reaches the other (through IRC) with the id of
    its sender's reflection."""
    ivan, rj, cat, dan = setup_room(irc, xmpp, "ivan3", "#arch3", "cat", "dan")
    for i in range(4):
        ivan.privmsg("#arch3", "line %d" % i)
    for i in range(4):
        a = wait_groupchat(cat, rj, "ivan3", "line %d" % i)
        b = wait_groupchat(dan, rj, "ivan3", "line %d" % i)
        assert stanza_id(a) is not None and stanza_id(a) == stanza_id(b), (a, b)
    ivan.privmsg("#arch3", "line 0")   # the same text again is another message
    a = [g for g in cat.wait(lambda s: s.name == "message" and s.body == "line 0", count=2)]
    b = [g for g in dan.wait(lambda s: s.name == "message" and s.body == "line 0", count=2)]
    assert stanza_id(a[1]) == stanza_id(b[1]) and stanza_id(a[1]) != stanza_id(a[0]), (a, b)
    mc, mi = Mark(cat), ivan.mark()
    groupchat_id = dan.send_message(rj, "from dan", mtype="groupchat")
    wait_privmsg(ivan, "#arch3", "dan", "from dan", since=mi)
    echo = dan.wait(lambda s: s.name == "message" and s.id == groupchat_id and s.body == "from dan")
    seen = wait_groupchat(cat, rj, "dan", "from dan", mark=mc)
    assert stanza_id(seen) == stanza_id(echo) and stanza_id(echo) is not None, (seen, echo)
    archived, _ = mam_query(cat, rj)
    bodies = [b for _, _, b, _ in archived]
    assert bodies == ["line 0", "line 1", "line 2", "line 3", "line 0", "from dan"], archived
    assert archived[-1][0] == stanza_id(echo)[1]


def test_history_on_join_carries_the_archive_ids(env, xmpp, irc):
    ivan, rj, eve = setup_room(irc, xmpp, "ivan4", "#arch4", "eve")
    for i in range(3):
        ivan.privmsg("#arch4", "old %d" % i)
    live = [wait_groupchat(eve, rj, "ivan4", "old %d" % i) for i in range(3)]
    fred = xmpp("fred")
    got = join_with_history(fred, rj, "fred", {"maxstanzas": 3})
    assert all(stanza_id(g) is not None for g in got), "history without stanza-ids: %r" % got
    assert [stanza_id(g) for g in got] == [stanza_id(g) for g in live], (got, live)


def test_mam_paging_from_an_unknown_id_is_item_not_found(env, xmpp, irc):
    ivan, rj, gil = setup_room(irc, xmpp, "ivan5", "#arch5", "gil")
    ivan.privmsg("#arch5", "only")
    got = wait_groupchat(gil, rj, "ivan5", "only")
    known = stanza_id(got)[1]
    for bad in (rsm(after="999999999"), rsm(before="999999999"), rsm(after="not-an-id"),
                rsm(max=5, after="0")):
        res = gil.iq(rj, "set", "<query xmlns='%s' queryid='q'>%s</query>" % (NS_MAM, bad))
        assert res.type == "error" and res.error_condition == "item-not-found", (bad, res)
    # an id of another room's archive is not this room's
    ivan.join("#arch5b")
    ok, fin = mam_query(gil, rj, rsm(after=known))
    assert ok == [] and fin.get("complete") == "true", (ok, fin)
    gil2 = xmpp("hugo")
    res = gil2.iq(room("#arch5b"), "set", "<query xmlns='%s'>%s</query>" % (NS_MAM, rsm(after=known)))
    assert res.type == "error" and res.error_condition == "item-not-found", res


def test_mam_default_page_is_bounded_and_complete_only_on_the_last(env, xmpp, irc):
    ivan, rj, ines = setup_room(irc, xmpp, "ivan6", "#arch6", "ines")
    n = 105
    for i in range(n):
        ivan.privmsg("#arch6", "n%03d" % i)
    wait_groupchat(ines, rj, "ivan6", "n%03d" % (n - 1), timeout=30)
    page, fin = mam_query(ines, rj)   # no <max/>
    assert 0 < len(page) < n, "a query without <max/> got %d of %d messages" % (len(page), n)
    assert fin.get("complete") != "true", fin
    assert [b for _, _, b, _ in page] == ["n%03d" % i for i in range(len(page))]
    last = fin.find("{%s}set" % NS_RSM).find("{%s}last" % NS_RSM).text
    rest, fin2 = mam_query(ines, rj, rsm(after=last))
    assert [b for _, _, b, _ in rest] == ["n%03d" % i for i in range(len(page), n)], rest
    assert fin2.get("complete") == "true", fin2
    # exactly a page's worth left: the page that holds the last one is complete
    tail, fin3 = mam_query(ines, rj, rsm(max=5, before=""))
    assert [b for _, _, b, _ in tail] == ["n%03d" % i for i in range(n - 5, n)]
    assert fin3.get("complete") != "true", fin3
    first = fin3.find("{%s}set" % NS_RSM).find("{%s}first" % NS_RSM).text
    head, fin4 = mam_query(ines, rj, rsm(max=n, before=first))
    assert len(head) == n - 5 and fin4.get("complete") == "true", fin4


def test_room_disco_says_stable_ids_and_mam(env, xmpp):
    joe = xmpp("joe")
    info = joe.iq(room("#arch7"), "get", "<query xmlns='%s'/>" % h.NS_DISCO_INFO)
    feats = [f.get("var") for f in info.el.iter("{%s}feature" % h.NS_DISCO_INFO)]
    assert NS_SID in feats and NS_MAM in feats, feats


def test_a_burst_read_by_several_local_users_is_archived_once(env, xmpp, irc):
    """Each local connection reads a burst in turns of a whole socket read
    (hundreds of lines): the ids still agree and the archive has each line
    once."""
    ivan, rj, kai, liv = setup_room(irc, xmpp, "ivan8", "#arch8", "kai", "liv")
    n = 400
    for i in range(n):
        ivan.privmsg("#arch8", "burst line %03d" % i)
    last = "burst line %03d" % (n - 1)
    wait_groupchat(kai, rj, "ivan8", last, timeout=30)
    wait_groupchat(liv, rj, "ivan8", last, timeout=30)
    ids = []
    for c in (kai, liv):
        got = c.stanzas(lambda s: s.name == "message" and (s.body or "").startswith("burst line"))
        ids.append([stanza_id(g)[1] for g in got])
    assert len(ids[0]) == n and ids[0] == ids[1], "ids differ between the two users"
    archived, after = [], None
    for _ in range(10):
        page, fin = mam_query(kai, rj, rsm(max=100, **({"after": after} if after else {})))
        archived += page
        if fin.get("complete") == "true":
            break
        after = fin.find("{%s}set" % NS_RSM).find("{%s}last" % NS_RSM).text
    assert [b for _, _, b, _ in archived] == ["burst line %03d" % i for i in range(n)], \
        "%d archived for %d lines" % (len(archived), n)
    assert [i for i, _, _, _ in archived] == ids[0]
