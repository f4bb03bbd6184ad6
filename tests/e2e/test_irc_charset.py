"""Per-channel encodings, as biboumi users set them: encoding_in and
encoding_out on a room's configure form (XEP-0050, and the same form through
XEP-0045 muc#owner). A channel set to ISO-8859-1 is read and written in
Latin-1 while another channel of the same server stays UTF-8; the setting
is kept across a restart of ferry; an encoding ferry cannot use is refused
with a text that says so, and changes nothing.

The Latin-1 lines sent from IRC hold bytes that are valid UTF-8 too
("\\xc3\\xa9"): read as UTF-8 (ferry's default) they are "é", read as
Latin-1 "Ã©", so only the channel's own setting gives what the test expects.

Real Prosody, real ngircd, ferry, slixmpp clients, raw IRC clients."""

import pytest

import harness as h
from irc_helpers import Ngircd
from test_irc import (DOMAIN, IRC, NS_MUC_USER, SECRET, Mark, codes, groupchat, item, join, link_up,
                      room, status_text, subject_of, wait_groupchat, wait_privmsg)
from test_irc import irc, xmpp  # noqa: F401 (fixtures)
from test_irc_adhoc import NS_OWNER, execute, form_fields, server_jid, submit, submit_xml

USERS = ["lea", "max", "noe"]
LATIN1 = "ISO-8859-1"


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    try:
        e.ngircd = Ngircd(tb.subdir("ngircd"), name=IRC)
        e.ngircd.start()
        e.prosody = tb.prosody(vhosts=("localhost",), components={DOMAIN: SECRET},
                               users=[(u, "localhost", u + "pw") for u in USERS])
        comp = {"adapter": "irc", "domain": DOMAIN, "secret": SECRET, "allow": ["localhost"],
                "servers": {IRC: dict(host="127.0.0.1", port=e.ngircd.port, tls=False)}}
        e.ferry = tb.linked_ferry(e.prosody, {"irc": comp})
        h.wait_until(lambda: link_up(e), 15, interval=0.1, what="ferry's XMPP link")
        yield e
    finally:
        if getattr(e, "ferry", None) is not None:
            e.ferry.stop()
        e.ngircd.stop()
        e.ngircd.cleanup()


def configure(c, rj, fields):
    """Runs the room's configure command with FIELDS; the answering iq."""
    _, cmd, _ = execute(c, rj, "configure")
    return submit(c, rj, "configure", cmd, fields)


def encodings(c, rj):
    _, _, f = execute(c, rj, "configure")
    return f["encoding_in"]["values"], f["encoding_out"]["values"]


def said_on_irc(ircc, channel, nick, since):
    return ircc.wait(lambda l: l.command == "PRIVMSG" and l.nick == nick and l.params
                     and l.params[0].lower() == channel, since=since,
                     what="PRIVMSG %s from %s" % (channel, nick))


def test_latin1_channel_both_ways_other_channel_utf8_and_after_a_restart(env, xmpp, irc):
    ivan = irc("civan1")
    ivan.join("#cs1")
    ivan.join("#cs2")
    lea = xmpp("lea")
    rj, rj2 = room("#cs1"), room("#cs2")
    _, cmd, f = execute(lea, rj, "configure")
    assert f["encoding_in"]["type"] == f["encoding_out"]["type"] == "text-single", f
    assert f["encoding_in"]["values"] == [] and f["encoding_out"]["values"] == [], f
    r = submit(lea, rj, "configure", cmd, {"encoding_in": LATIN1, "encoding_out": LATIN1})
    assert r.type == "result", r
    assert encodings(lea, rj) == ([LATIN1], [LATIN1])
    assert encodings(lea, rj2) == ([], [])
    join(lea, rj, "lea")
    join(lea, rj2, "lea")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "lea", count=2)
    m = Mark(lea)

    # from IRC: the text of PRIVMSG, NOTICE, TOPIC and PART in #cs1 is Latin-1
    ivan.privmsg("#cs1", b"d\xe9j\xe0 vu, \xc3\xa9t\xc3\xa9")
    wait_groupchat(lea, rj, "civan1", "d\u00e9j\u00e0 vu, \u00c3\u00a9t\u00c3\u00a9", mark=m)
    ivan.send(b"NOTICE #cs1 :\xc3\xa9cho")
    m.wait(lambda s: s.name == "message" and (s.frm or "") == rj + "/civan1"
           and "\u00c3\u00a9cho" in (s.body or ""), what="the Latin-1 NOTICE")
    ivan.send(b"TOPIC #cs1 :\xc3\xa0 bient\xf4t")
    subj = m.wait(lambda s: s.name == "message" and subject_of(s) is not None
                  and s.frm.split("/")[0] == rj, what="the Latin-1 topic")
    assert subject_of(subj) == "\u00c3\u00a0 bient\u00f4t", subj
    # what XML cannot carry (a control character) still arrives as valid XML
    ivan.privmsg("#cs1", b"ctl \x0b \xc3\xa9")
    ctl = m.wait(lambda s: s.name == "message" and s.frm == rj + "/civan1"
                 and (s.body or "").startswith("ctl "), what="the line with a control character")
    assert ctl.body == "ctl  \u00c3\u00a9" and link_up(env), ctl
    # the same bytes in #cs2 are UTF-8
    ivan.privmsg("#cs2", b"\xc3\xa9t\xc3\xa9")
    wait_groupchat(lea, rj2, "civan1", "\u00e9t\u00e9", mark=m)
    other = irc("civan2")
    other.join("#cs1")
    m.wait(lambda s: s.name == "presence" and s.frm == rj + "/civan2" and s.type is None)
    other.send(b"PART #cs1 :\xc3\xa7a suffit")
    gone = m.wait(lambda s: s.name == "presence" and s.frm == rj + "/civan2"
                  and s.type == "unavailable", what="civan2 leaving")
    assert status_text(gone) == "\u00c3\u00a7a suffit", gone
    other.join("#cs1")
    m.wait(lambda s: s.name == "presence" and s.frm == rj + "/civan2" and s.type is None)
    ivan.send(b"KICK #cs1 civan2 :\xc3\xa0 la porte")
    kicked = m.wait(lambda s: s.name == "presence" and s.frm == rj + "/civan2"
                    and s.type == "unavailable" and 307 in codes(s), what="civan2 kicked")
    reason = item(kicked).find("{%s}reason" % NS_MUC_USER)
    assert reason is not None and reason.text == "\u00c3\u00a0 la porte", kicked

    # to IRC: Latin-1 bytes in #cs1 (what Latin-1 has no letter for is '?'),
    # UTF-8 in #cs2
    mi = ivan.mark()
    groupchat(lea, rj, "caf\u00e9 cr\u00e8me \u2603")
    line = said_on_irc(ivan, "#cs1", "lea", mi)
    assert line.raw.endswith(b" :caf\xe9 cr\xe8me ?"), line.raw
    mi = ivan.mark()
    groupchat(lea, rj2, "caf\u00e9 \u2603")
    wait_privmsg(ivan, "#cs2", "lea", "caf\u00e9 \u2603", since=mi)

    # kept across a restart: lea is put back in both rooms, same encodings
    m, mi = Mark(lea), ivan.mark()
    assert env.ferry.stop() == 0, env.ferry.report()
    env.ferry.start()
    env.ferry.wait_healthz(200)
    h.wait_until(lambda: link_up(env), 15, interval=0.1, what="ferry's XMPP link")
    for r in (rj, rj2):
        m.wait(lambda s: s.name == "presence" and s.type is None and s.frm == r + "/lea"
               and 110 in codes(s), timeout=20, what="lea back in %s" % r)
    # the topic as the server gives it on join (332), read in Latin-1
    subj = m.wait(lambda s: s.name == "message" and subject_of(s) is not None
                  and s.frm.split("/")[0] == rj, timeout=20, what="the subject of #cs1")
    assert subject_of(subj) == "\u00c3\u00a0 bient\u00f4t", subj
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "lea", since=mi, count=2,
              what="lea back on IRC")
    assert encodings(lea, rj) == ([LATIN1], [LATIN1])
    ivan.privmsg("#cs1", b"encore \xc3\xa9t\xc3\xa9")
    wait_groupchat(lea, rj, "civan1", "encore \u00c3\u00a9t\u00c3\u00a9", mark=m)
    ivan.privmsg("#cs2", b"encore \xc3\xa9t\xc3\xa9")
    wait_groupchat(lea, rj2, "civan1", "encore \u00e9t\u00e9", mark=m)
    mi = ivan.mark()
    groupchat(lea, rj, "\u00e0 bient\u00f4t")
    line = said_on_irc(ivan, "#cs1", "lea", mi)
    assert line.raw.endswith(b" :\xe0 bient\xf4t"), line.raw

    # emptied: the server's encoding (UTF-8) again, at once
    assert configure(lea, rj, {"encoding_in": "", "encoding_out": ""}).type == "result"
    ivan.privmsg("#cs1", b"\xc3\xa9t\xc3\xa9 UTF-8")
    wait_groupchat(lea, rj, "civan1", "\u00e9t\u00e9 UTF-8", mark=m)
    mi = ivan.mark()
    groupchat(lea, rj, "caf\u00e9 \u2603")
    wait_privmsg(ivan, "#cs1", "lea", "caf\u00e9 \u2603", since=mi)


def test_encodings_ferry_cannot_use_are_refused_and_change_nothing(env, xmpp):
    max_ = xmpp("max")
    rj = room("#cs3")
    assert configure(max_, rj, {"encoding_in": "KOI8-R", "encoding_out": LATIN1}).type == "result"
    # unknown to iconv; not ASCII-compatible (IRC's syntax would break); two words
    for field, bad in (("encoding_in", "NO-SUCH-CHARSET"), ("encoding_out", "UTF-16"),
                       ("encoding_in", "ISO-8859-1\nKOI8-R")):
        r = configure(max_, rj, {field: bad, "persistent": "true"})
        assert r.type == "error" and r.error_condition == "bad-request", (bad, r)
        assert field in (r.error_text or "") and "encoding" in r.error_text, r.error_text
        owner = max_.iq(rj, "set", "<query xmlns='%s'>%s</query>" % (NS_OWNER, submit_xml({field: bad})))
        assert owner.type == "error" and owner.error_condition == "bad-request", (bad, owner)
    _, _, f = execute(max_, rj, "configure")
    assert f["encoding_in"]["values"] == ["KOI8-R"] and f["encoding_out"]["values"] == [LATIN1], f
    assert f["persistent"]["values"] == ["false"], "a refused form changed another field: %r" % f


def test_muc_owner_form_sets_the_same_encodings(env, xmpp, irc):
    noe = xmpp("noe")
    rj = room("#cs4")
    owner = noe.iq(rj, "get", "<query xmlns='%s'/>" % NS_OWNER)
    assert owner.type == "result", owner
    f = form_fields(owner.find(NS_OWNER, "query"))
    assert "encoding_in" in f and "encoding_out" in f, f
    r = noe.iq(rj, "set", "<query xmlns='%s'>%s</query>" % (NS_OWNER, submit_xml(
        {"encoding_in": "KOI8-R", "encoding_out": "KOI8-R"})))
    assert r.type == "result", r
    assert encodings(noe, rj) == (["KOI8-R"], ["KOI8-R"])
    ivan = irc("civan4")
    ivan.join("#cs4")
    m, _ = join(noe, rj, "noe")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "noe")
    ivan.privmsg("#cs4", "\u043f\u0440\u0438\u0432\u0435\u0442".encode("koi8-r"))
    wait_groupchat(noe, rj, "civan4", "\u043f\u0440\u0438\u0432\u0435\u0442", mark=m)
    mi = ivan.mark()
    groupchat(noe, rj, "\u0434\u0430")
    line = said_on_irc(ivan, "#cs4", "noe", mi)
    assert line.raw.endswith(b" :" + "\u0434\u0430".encode("koi8-r")), line.raw

    # the server's encodings, changed while connected, apply at once: to a
    # private message; the channel keeps its own
    _, cmd, _ = execute(noe, server_jid(), "configure")
    assert submit(noe, server_jid(), "configure", cmd, {"encoding_in": LATIN1}).type == "result"
    ivan.privmsg("noe", b"\xc3\xa9 en priv\xc3\xa9")
    noe.wait(lambda s: s.name == "message" and s.type == "chat" and m.new(s)
             and s.body == "\u00c3\u00a9 en priv\u00c3\u00a9", what="the private message in Latin-1")
    ivan.privmsg("#cs4", "\u0434\u0430".encode("koi8-r"))
    wait_groupchat(noe, rj, "civan4", "\u0434\u0430", mark=m)
