"""The settings biboumi users configure from their client (XEP-0050 ad-hoc
commands with biboumi's nodes and fields, and the room form through
XEP-0045 muc#owner), checked as a client sees them, and honoured: history
length on join, recording, nick/username/realname, server password,
commands after connecting, persistent channels, disconnecting.

Real Prosody, real ngircd (one of them with a server password), ferry,
slixmpp clients, raw IRC clients."""

import time
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import pytest

import harness as h
from irc_fixtures import IrcEnv, irc, irc_component, users, xmpp  # noqa: F401 (fixtures)
from irc_helpers import Ngircd
from test_irc import (DOMAIN, IRC, SECRET, Mark, join, join_with_history, leave, room, setup_room,
                      wait_groupchat, wait_privmsg)

NS_CMD = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_OWNER = "http://jabber.org/protocol/muc#owner"
NS_REGISTER = "jabber:iq:register"
NS_MAM = "urn:xmpp:mam:2"
PW = "pw.localhost"      # an ngircd that wants a server password
SERVER_PASSWORD = "letmein"

USERS = ["adam", "beth", "carl", "dora", "emil", "fern", "gabe", "hope", "ivo", "jill", "karl",
         "lola", "boss", "mark", "nina", "omar"]


class PasswordNgircd(Ngircd):
    """ngircd with a server password (PASS before NICK/USER)."""

    def write_config(self):
        super().write_config()
        with open(self.config_path) as f:
            text = f.read()
        with open(self.config_path, "w") as f:
            f.write(text.replace("[Global]\n", "[Global]\nPassword = %s\n" % SERVER_PASSWORD, 1))


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.ngircd = e.start_ngircd(IRC, tls=True)
        e.pw = e.start_ngircd(PW, cls=PasswordNgircd)
        e.prosody = tb.prosody(vhosts=("localhost",), components={DOMAIN: SECRET}, users=users(USERS))
        servers = {IRC: dict(host="127.0.0.1", port=e.ngircd.port, tls=False),
                   PW: dict(host="127.0.0.1", port=e.pw.port, tls=False)}
        e.link({"irc": irc_component(DOMAIN, SECRET, servers)}, admin={"jids": ["boss@localhost"]})
        yield e


# ---------------------------------------------------------------- XEP-0050 as a client runs it


def command_items(c, to):
    r = c.iq(to, "get", "<query xmlns='%s' node='%s'/>" % (h.NS_DISCO_ITEMS, NS_CMD))
    assert r.type == "result", r
    return {i.get("node"): i.get("jid") for i in r.el.iter("{%s}item" % h.NS_DISCO_ITEMS)}


def execute(c, to, node):
    """Starts a command; returns (iq, command element, form fields by var)."""
    r = c.iq(to, "set", "<command xmlns='%s' node='%s' action='execute'/>" % (NS_CMD, node))
    assert r.type == "result", r
    cmd = r.find(NS_CMD, "command")
    return r, cmd, form_fields(cmd)


def form_fields(parent):
    x = parent.find("{%s}x" % NS_DATA)
    if x is None:
        return {}
    out = {}
    for f in x.findall("{%s}field" % NS_DATA):
        out[f.get("var")] = {"type": f.get("type"),
                             "values": [v.text or "" for v in f.findall("{%s}value" % NS_DATA)],
                             "options": [o.find("{%s}value" % NS_DATA).text
                                         for o in f.findall("{%s}option" % NS_DATA)]}
    return out


def submit_xml(fields):
    inner = ""
    for var, values in fields.items():
        if isinstance(values, str):
            values = [values]
        inner += "<field var=%s>%s</field>" % (quoteattr(var), "".join(
            "<value>%s</value>" % xml_escape(v) for v in values))
    return "<x xmlns='%s' type='submit'>%s</x>" % (NS_DATA, inner)


def submit(c, to, node, cmd, fields):
    """Completes a step: returns the answering iq (result or error)."""
    return c.iq(to, "set", "<command xmlns='%s' node='%s' sessionid=%s action='complete'>%s</command>" % (
        NS_CMD, node, quoteattr(cmd.get("sessionid")), submit_xml(fields)))


def note(r):
    cmd = r.find(NS_CMD, "command")
    n = cmd.find("{%s}note" % NS_CMD) if cmd is not None else None
    return None if n is None else n.text


def server_jid(server=IRC):
    return "%s@%s" % (server, DOMAIN)


# ---------------------------------------------------------------- the gateway JID


def test_gateway_lists_biboumi_commands_by_who_may_run_them(env, xmpp):
    adam, boss = xmpp("adam"), xmpp("boss")
    mine = command_items(adam, DOMAIN)
    assert {"configure", "disconnect-from-irc-server"} <= set(mine), mine
    assert "disconnect-user" not in mine and "status" not in mine, mine
    assert {"configure", "disconnect-from-irc-server", "disconnect-user", "status"} <= \
        set(command_items(boss, DOMAIN))
    r = adam.iq(DOMAIN, "set", "<command xmlns='%s' node='disconnect-user' action='execute'/>" % NS_CMD)
    assert r.type == "error" and r.error_condition == "forbidden", r
    info = adam.iq(DOMAIN, "get", "<query xmlns='%s' node='configure'/>" % h.NS_DISCO_INFO)
    assert info.type == "result" and NS_CMD in [f.get("var") for f in info.el.iter(
        "{%s}feature" % h.NS_DISCO_INFO)], info


def test_configure_max_history_length_is_the_history_on_join(env, xmpp, irc):
    ivan, rj, beth = setup_room(irc, xmpp, "aivan1", "#ad1", "beth")
    for i in range(5):
        ivan.privmsg("#ad1", "h%d" % i)
    wait_groupchat(beth, rj, "aivan1", "h4")
    carl = xmpp("carl")
    _, cmd, fields = execute(carl, DOMAIN, "configure")
    assert cmd.get("status") == "executing", cmd
    assert {"record_history", "max_history_length", "persistent"} <= set(fields), fields
    assert fields["record_history"]["type"] == "boolean"
    r = submit(carl, DOMAIN, "configure", cmd, {"max_history_length": "2", "record_history": "true"})
    assert r.type == "result" and r.find(NS_CMD, "command").get("status") == "completed", r
    assert note(r) == "Configuration successfully applied."
    _, _, again = execute(carl, DOMAIN, "configure")
    assert again["max_history_length"]["values"] == ["2"], again
    got = join_with_history(carl, rj, "carl", {})   # <history/> without limits: the user's length
    assert [g.body for g in got] == ["h3", "h4"], [g.body for g in got]
    r = submit(carl, DOMAIN, "configure", cmd, {"max_history_length": "many"})
    assert r.type == "error" and r.error_condition == "bad-request", r


def test_record_history_false_keeps_the_channel_out_of_the_archive(env, xmpp, irc):
    ivan, rj, dora = setup_room(irc, xmpp, "aivan2", "#ad2", "dora")
    _, cmd, _ = execute(dora, DOMAIN, "configure")
    assert submit(dora, DOMAIN, "configure", cmd, {"record_history": "false"}).type == "result"
    m = Mark(dora)
    ivan.privmsg("#ad2", "not kept")
    live = wait_groupchat(dora, rj, "aivan2", "not kept", mark=m)
    assert live.find("urn:xmpp:sid:0", "stanza-id") is not None, live
    res = dora.iq(rj, "set", "<query xmlns='%s'/>" % NS_MAM)
    assert res.type == "result", res
    assert not m.all(lambda s: s.find(NS_MAM, "result") is not None), "archived anyway"
    # the archive is the channel's: once a user who records is in it, it is kept
    adam = xmpp("adam")
    join(adam, rj, "adam")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "adam")
    ivan.privmsg("#ad2", "kept now")
    wait_groupchat(dora, rj, "aivan2", "kept now", mark=m)
    m = Mark(dora)
    assert dora.iq(rj, "set", "<query xmlns='%s'/>" % NS_MAM).type == "result"
    bodies = [r.find(NS_MAM, "result").find("{urn:xmpp:forward:0}forwarded").find(
        "{%s}message" % h.NS_CLIENT).find("{%s}body" % h.NS_CLIENT).text
        for r in m.all(lambda s: s.find(NS_MAM, "result") is not None)]
    assert bodies == ["kept now"], bodies


def test_disconnect_from_irc_server_for_oneself(env, xmpp, irc):
    ivan, rj, emil = setup_room(irc, xmpp, "aivan3", "#ad3", "emil")
    _, cmd, fields = execute(emil, DOMAIN, "disconnect-from-irc-server")
    assert fields["irc-servers"]["options"] == [IRC], fields
    mi = ivan.mark()
    r = submit(emil, DOMAIN, "disconnect-from-irc-server", cmd,
               {"irc-servers": [IRC], "quit-message": "bye from the form"})
    assert r.type == "result", r
    q = ivan.wait(lambda l: l.command == "QUIT" and l.nick == "emil", since=mi, what="emil's QUIT")
    assert q.trailing.strip('"') == "bye from the form", q   # ngircd quotes it
    _, cmd, _ = execute(emil, DOMAIN, "disconnect-from-irc-server")
    assert cmd.get("status") == "completed" and "not connected" in note(
        emil.stanzas(lambda s: s.name == "iq")[-1]), cmd


def test_admin_disconnects_users_and_their_servers(env, xmpp, irc):
    ivan, rj, fern, gabe = setup_room(irc, xmpp, "aivan4", "#ad4", "fern", "gabe")
    boss = xmpp("boss")
    _, cmd, fields = execute(boss, DOMAIN, "disconnect-user")
    assert {"fern@localhost", "gabe@localhost"} <= set(fields["jids"]["options"]), fields
    mi = ivan.mark()
    r = submit(boss, DOMAIN, "disconnect-user", cmd, {"jids": ["fern@localhost"], "quit-message": "admin says"})
    assert r.type == "result" and note(r) == "1 user(s) disconnected.", r
    q = ivan.wait(lambda l: l.command == "QUIT" and l.nick == "fern", since=mi)
    assert q.trailing.strip('"') == "admin says", q
    # disconnect-from-irc-server: first whose, then which servers
    _, cmd, fields = execute(boss, DOMAIN, "disconnect-from-irc-server")
    assert "gabe@localhost" in fields["jid"]["options"], fields
    r = submit(boss, DOMAIN, "disconnect-from-irc-server", cmd, {"jid": "gabe@localhost"})
    step2 = form_fields(r.find(NS_CMD, "command"))
    assert step2["irc-servers"]["options"] == [IRC] and step2["jid"]["values"] == ["gabe@localhost"], step2
    r = submit(boss, DOMAIN, "disconnect-from-irc-server", r.find(NS_CMD, "command"),
               {"jid": "gabe@localhost", "irc-servers": [IRC]})
    assert r.type == "result", r
    ivan.wait(lambda l: l.command == "QUIT" and l.nick == "gabe", since=mi)


# ---------------------------------------------------------------- a server JID


def test_server_configure_shares_xep0077_and_is_used_when_connecting(env, xmpp, irc):
    hope = xmpp("hope")
    items = command_items(hope, server_jid())
    assert items == {"configure": server_jid()}, items
    _, cmd, fields = execute(hope, server_jid(), "configure")
    assert {"nick", "username", "realname", "sasl_password", "pass", "after_connect_commands", "ports",
            "tls_ports", "verify_cert", "throttle_limit", "encoding_in", "encoding_out"} <= set(fields), fields
    assert fields["sasl_password"]["type"] == "text-private" and fields["after_connect_commands"]["type"] == "text-multi"
    ivan = irc("aivan5")
    ivan.join("#ad5")
    r = submit(hope, server_jid(), "configure", cmd, {
        "nick": "hopeful", "username": "hopeu", "realname": "Hope Real",
        "after_connect_commands": ["PRIVMSG aivan5 :hello after connecting", "AWAY :configured"]})
    assert r.type == "result", r
    # the XEP-0077 form reads the same record
    reg = hope.iq(server_jid(), "get", "<query xmlns='%s'/>" % NS_REGISTER)
    q = reg.find(NS_REGISTER, "query")
    assert q.find("{%s}username" % NS_REGISTER).text == "hopeu", reg
    assert q.find("{%s}name" % NS_REGISTER).text == "Hope Real", reg
    # and the commands survive an XEP-0077 change
    r = hope.iq(server_jid(), "set", "<query xmlns='%s'><name>Hope Again</name></query>" % NS_REGISTER)
    assert r.type == "result", r
    _, _, fields = execute(hope, server_jid(), "configure")
    assert fields["after_connect_commands"]["values"] == ["PRIVMSG aivan5 :hello after connecting",
                                                          "AWAY :configured"], fields
    mi = ivan.mark()
    join(hope, room("#ad5"), "hope")
    hello = ivan.wait(lambda l: l.command == "PRIVMSG" and l.params[0] == "aivan5", since=mi,
                      what="the after-connection PRIVMSG")
    assert hello.trailing == "hello after connecting", hello
    who = hello.prefix.split("!", 1)[1]
    assert who.split("@")[0].lstrip("~") == "hopeu", hello
    m = ivan.mark()
    ivan.send("WHOIS %s" % hello.nick)
    w = ivan.wait(lambda l: l.command == "311", since=m)
    assert w.trailing == "Hope Again", w
    for bad in ({"nick": "bad nick"}, {"after_connect_commands": [":prefix-only"]}):
        r = submit(hope, server_jid(), "configure", cmd, bad)
        assert r.type == "error", (bad, r)


def test_server_password_from_the_form(env, xmpp):
    ivo = xmpp("ivo")
    rj = room("#ad6", PW)
    m, err = join(ivo, rj, "ivo", expect_error=True)   # no PASS: the server refuses
    assert err.type == "error", err
    _, cmd, _ = execute(ivo, server_jid(PW), "configure")
    assert submit(ivo, server_jid(PW), "configure", cmd, {"pass": SERVER_PASSWORD}).type == "result"
    _, cmd, fields = execute(ivo, server_jid(PW), "configure")
    assert fields["pass"]["values"] == [], "the form sent the password back: %r" % fields
    join(ivo, rj, "ivo")


# ---------------------------------------------------------------- a room JID, persistent channels


def test_room_configure_and_muc_owner_share_one_form(env, xmpp):
    jill = xmpp("jill")
    rj = room("#ad7")
    assert command_items(jill, rj) == {"configure": rj}
    _, cmd, fields = execute(jill, rj, "configure")
    assert fields["record_history"]["options"] == ["unset", "true", "false"], fields
    assert fields["record_history"]["values"] == ["unset"] and fields["persistent"]["values"] == ["false"]
    r = submit(jill, rj, "configure", cmd, {"record_history": "false", "persistent": "true"})
    assert r.type == "result" and note(r) == "Configuration successfully applied.", r
    owner = jill.iq(rj, "get", "<query xmlns='%s'/>" % NS_OWNER)
    assert owner.type == "result", owner
    f = form_fields(owner.find(NS_OWNER, "query"))
    assert f["record_history"]["values"] == ["false"] and f["persistent"]["values"] == ["true"], f
    r = jill.iq(rj, "set", "<query xmlns='%s'>%s</query>" % (NS_OWNER, submit_xml(
        {"record_history": "unset", "persistent": "false"})))
    assert r.type == "result", r
    _, _, fields = execute(jill, rj, "configure")
    assert fields["record_history"]["values"] == ["unset"] and fields["persistent"]["values"] == ["false"]
    r = jill.iq(rj, "set", "<query xmlns='%s'>%s</query>" % (NS_OWNER, submit_xml({"record_history": "maybe"})))
    assert r.type == "error" and r.error_condition == "bad-request", r


def test_persistent_channel_stays_joined_and_gives_what_was_missed(env, xmpp, irc):
    ivan, rj, karl = setup_room(irc, xmpp, "aivan8", "#ad8", "karl")
    r = karl.iq(rj, "set", "<query xmlns='%s'>%s</query>" % (NS_OWNER, submit_xml({"persistent": "true"})))
    assert r.type == "result", r
    mi = ivan.mark()
    leave(karl, rj, "karl")
    time.sleep(1)
    assert not ivan.lines(lambda l: l.command in ("PART", "QUIT") and l.nick == "karl", since=mi), \
        "a persistent channel was left"
    for i in range(3):
        ivan.privmsg("#ad8", "while away %d" % i)
    ivan.send("TOPIC #ad8 :set while away")
    time.sleep(0.5)
    got = join_with_history(karl, rj, "karl", {"maxstanzas": 10})
    assert [g.body for g in got] == ["while away %d" % i for i in range(3)], [g.body for g in got]
    # not persistent any more, and nobody in it: ferry leaves the channel
    leave(karl, rj, "karl")
    mi = ivan.mark()
    r = karl.iq(rj, "set", "<query xmlns='%s'>%s</query>" % (NS_OWNER, submit_xml({"persistent": "false"})))
    assert r.type == "result", r
    ivan.wait(lambda l: l.command in ("PART", "QUIT") and l.nick == "karl", since=mi, what="karl leaving")


def whois_lines(ivan, nick):
    m = ivan.mark()
    ivan.send("WHOIS %s" % nick)
    ivan.wait(lambda l: l.command == "318", since=m, what="end of WHOIS")
    return ivan.lines(since=m)


def test_server_ports_tls_ports_and_verify_cert_from_the_form(env, xmpp, irc):
    """The gateway's config says plain port; the user's form says which port
    and whether TLS, and whether to check the certificate (ngircd's is
    self-signed)."""
    lola = xmpp("lola")
    ivan = irc("aivan9")
    ivan.join("#ad9")
    rj = room("#ad9")
    _, cmd, fields = execute(lola, server_jid(), "configure")
    assert fields["ports"]["values"] == [] and fields["verify_cert"]["values"] == ["true"], fields
    # a port nothing listens on: the join fails
    r = submit(lola, server_jid(), "configure", cmd, {"ports": [str(h.free_port())]})
    assert r.type == "result", r
    _, err = join(lola, rj, "lola", expect_error=True)
    assert err.error_condition == "remote-server-not-found", err
    # the TLS port with the certificate checked: refused (self-signed)
    r = submit(lola, server_jid(), "configure", cmd, {"ports": [], "tls_ports": [str(env.ngircd.tls_port)]})
    assert r.type == "result", r
    _, err = join(lola, rj, "lola", expect_error=True)
    assert "certificate" in (err.error_text or ""), err
    # not checked: in, and the server says the connection is encrypted (ngircd: 275)
    r = submit(lola, server_jid(), "configure", cmd, {"verify_cert": "false"})
    assert r.type == "result", r
    _, _, fields = execute(lola, server_jid(), "configure")
    assert fields["tls_ports"]["values"] == [str(env.ngircd.tls_port)] and fields["verify_cert"]["values"] == ["false"]
    join(lola, rj, "lola")
    w = whois_lines(ivan, "lola")
    assert any(l.command in ("275", "671") and "SSL" in l.trailing for l in w), "not over TLS: %r" % w
    r = submit(lola, server_jid(), "configure", cmd, {"tls_ports": ["70000"]})
    assert r.type == "error" and r.error_condition == "bad-request", r


def test_server_throttle_limit_from_the_form(env, xmpp, irc):
    mark = xmpp("mark")
    _, cmd, fields = execute(mark, server_jid(), "configure")
    assert submit(mark, server_jid(), "configure", cmd, {"throttle_limit": "1"}).type == "result"
    ivan, rj, _, _ = setup_room(irc, xmpp, "aivan10", "#ad10", "mark", "nina")
    times = {}
    for who in ("mark", "nina"):
        c = xmpp(who, "burst")
        join(c, rj, who)
        mi = ivan.mark()
        for i in range(4):
            groupchat_text = "%s %d" % (who, i)
            c.send_message(rj, groupchat_text, mtype="groupchat")
        lines = [wait_privmsg(ivan, "#ad10", who, "%s %d" % (who, i), since=mi, timeout=20) for i in range(4)]
        times[who] = lines[-1].time - lines[0].time
    assert times["mark"] >= 2.5, "4 lines at 1 a second arrived within %.2f s" % times["mark"]
    assert times["nina"] < 1.0, "4 lines within the default burst took %.2f s" % times["nina"]


def test_server_encodings_from_the_form(env, xmpp, irc):
    """encoding_in / encoding_out (iconv names): a KOI8-R channel reads as
    UTF-8 in the client, and what the client writes reaches IRC in KOI8-R."""
    omar = xmpp("omar")
    _, cmd, _ = execute(omar, server_jid(), "configure")
    for bad in ("NO-SUCH-CHARSET", "UTF-16"):   # unknown; not ASCII-compatible
        r = submit(omar, server_jid(), "configure", cmd, {"encoding_in": bad})
        assert r.type == "error" and r.error_condition == "bad-request", (bad, r)
    r = submit(omar, server_jid(), "configure", cmd, {"encoding_in": "KOI8-R", "encoding_out": "KOI8-R"})
    assert r.type == "result", r
    ivan = irc("aivan11")
    ivan.join("#ad11")
    rj = room("#ad11")
    m = Mark(omar)
    join(omar, rj, "omar")
    ivan.wait(lambda l: l.command == "JOIN" and l.nick == "omar")
    ivan.privmsg("#ad11", "привет из KOI8-R".encode("koi8-r"))
    wait_groupchat(omar, rj, "aivan11", "привет из KOI8-R", mark=m)
    mi = ivan.mark()
    omar.send_message(rj, "здравствуй", mtype="groupchat")
    line = ivan.wait(lambda l: l.command == "PRIVMSG" and l.nick == "omar", since=mi)
    assert line.raw.endswith(b":" + "здравствуй".encode("koi8-r")), line.raw
