"""IRC adapter: per-server user settings (XEP-0077 on the server JID) and
IRCv3 SASL PLAIN, end to end: real Prosody, inspircd 3.15 linked to anope
2.0.12 services (inspircd_helpers.py), ferry, slixmpp clients and raw-socket
IRC clients.

One Prosody, one inspircd+anope network and one ferry for the module; the
restart test runs a ferry of its own (second component domain, its own
SQLite store). Every test uses its own XMPP accounts, IRC nicks, NickServ
accounts and channels, so that the IRC connections ferry keeps per (JID,
server) never carry over between tests.
"""

import base64
import os
import re
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import pytest

import harness as h
import pg_helpers
import inspircd_helpers as ih
from irc_fixtures import IrcEnv, irc, irc_component, users, wait_link_up, xmpp_fixture  # noqa: F401 (fixtures)

DOMAIN = "irc.localhost"          # the component
DOMAIN_B = "ircb.localhost"       # a second component, for the restart test's own ferry
SECRET = "s3cret"
IRC = "irc.localhost"             # the inspircd's name and the [servers] key
SERVER_JID = "%s@%s" % (IRC, DOMAIN)

NS_REGISTER = "jabber:iq:register"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"

USERS = ["amy", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "iris", "jack", "kate",
         "liam", "nora", "owen"]

pytestmark = pytest.mark.skipif(ih.missing() is not None, reason=ih.missing() or "")


def irc_server_table(net):
    return dict(host="127.0.0.1", port=net.port, tls=False, realname="ferry user", throttle_burst=10,
                throttle_rate=2)


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.net = e.ircd(ih.InspircdAnope(tb.subdir("inspircd"), name=IRC))
        e.prosody = tb.prosody(vhosts=("localhost", "other.localhost"),
                               components={DOMAIN: SECRET, DOMAIN_B: SECRET},
                               users=users(USERS) + users(["mallory"], "other.localhost"))
        e.link({"irc": irc_component(DOMAIN, SECRET, {IRC: irc_server_table(e.net)})}, storage={"path": os.path.join(tb.subdir("store"), "ferry.db")})
        yield e


xmpp = xmpp_fixture(plugins=())


# ---------------------------------------------------------------- helpers


def esc(value):
    """XML text; CR and LF as character references, so that they reach
    ferry as they are (a literal CR would be normalised to LF)."""
    return xml_escape(value).replace("\r", "&#13;").replace("\n", "&#10;")


def reg_get(c, to=SERVER_JID):
    return c.iq(to, "get", "<query xmlns='%s'/>" % NS_REGISTER)


def reg_set(c, to=SERVER_JID, remove=False, itype="set", **fields):
    """XEP-0077 set with the given fields (name=... is the real name); a
    field given as None is left out."""
    inner = "<remove/>" if remove else "".join(
        "<%s>%s</%s>" % (k, esc(v), k) for k, v in fields.items() if v is not None)
    return c.iq(to, itype, "<query xmlns='%s'>%s</query>" % (NS_REGISTER, inner))


class Form:
    """The query of an XEP-0077 result: the fields as {name: text} and
    whether <registered/> is there."""

    def __init__(self, st):
        assert st.type == "result", st
        q = st.find(NS_REGISTER, "query")
        assert q is not None, "no jabber:iq:register query in %r" % st
        self.stanza = st
        self.children = {c.tag.rsplit("}", 1)[-1]: c for c in q}
        self.registered = "registered" in self.children

    def text(self, name):
        el = self.children.get(name)
        return None if el is None else (el.text or "")

    def __repr__(self):
        return repr(self.stanza)


def assert_form(form, registered, nick="", username="", name=""):
    for f in ("instructions", "nick", "username", "name", "password"):
        assert f in form.children, "field <%s/> missing: %r" % (f, form)
    assert form.registered == registered, form
    assert (form.text("nick"), form.text("username"), form.text("name")) == (nick, username, name), form
    assert form.text("password") == "", "the password must never be sent back: %r" % form


class Mark:
    """The stanzas a client has received so far; wait() looks at later ones."""

    def __init__(self, client):
        self.client = client
        self.seen = {id(s) for s in client.stanzas()}

    def wait(self, pred, timeout=10, what="stanza"):
        return self.client.wait(lambda s: id(s) not in self.seen and pred(s), timeout=timeout, what=what)


def codes(st):
    x = st.find(NS_MUC_USER, "x")
    if x is None:
        return set()
    return {int(c.get("code")) for c in x if c.tag == "{%s}status" % NS_MUC_USER}


def room(chan, domain=DOMAIN):
    return "%s%%%s@%s" % (chan, IRC, domain)


def join(c, room_jid, nick, timeout=20):
    """MUC join (no history); waits for the self-presence (110) and the
    subject. Fails on an error presence."""
    m = Mark(c)
    c.send_raw("<presence to=%s><x xmlns='%s'><history maxstanzas='0'/></x></presence>" % (
        quoteattr(room_jid + "/" + nick), NS_MUC))
    first = m.wait(lambda s: s.name == "presence" and (s.frm or "").startswith(room_jid + "/")
                   and (s.type == "error" or (s.type is None and 110 in codes(s))),
                   timeout=timeout, what="self-presence or error for %s/%s" % (room_jid, nick))
    assert first.type != "error", "join of %s/%s failed: %r" % (room_jid, nick, first)
    m.wait(lambda s: s.name == "message" and s.type == "groupchat" and s.find(h.NS_CLIENT, "subject") is not None
           and (s.frm or "").split("/")[0] == room_jid, timeout=timeout, what="subject of %s" % room_jid)
    return first


def watcher(irc, nick, channel):
    """A raw IRC client with extended-join and account-notify, in channel:
    a JOIN it sees carries the joiner's account ('*' for none) and real name."""
    w = irc(nick)
    ih.request_caps(w, ["extended-join", "account-notify"])
    w.join(channel)
    return w


def wait_join(w, nick, channel, since=0, timeout=15):
    """The JOIN of nick to channel as an extended-join watcher sees it:
    params [channel, account, realname]."""
    return w.wait(lambda l: l.command == "JOIN" and l.nick == nick and l.params
                  and l.params[0].lower() == channel.lower(), since=since, timeout=timeout,
                  what="%s joining %s" % (nick, channel))


SASL_OK = r"SASL authenticated with %s" % re.escape(IRC)
SASL_WARN = r"SASL with %s: " % re.escape(IRC)


# ---------------------------------------------------------------- XEP-0077 on the server JID


def test_register_form_before_anything_is_set(env, xmpp):
    amy = xmpp("amy")
    form = Form(reg_get(amy))
    assert form.stanza.frm == SERVER_JID, form
    assert_form(form, registered=False)
    assert form.text("instructions"), form


def test_register_set_get_update_remove(env, xmpp):
    hank = xmpp("hank")
    r = reg_set(hank, nick="hank_irc", username="hankacct", name="Hank Example", password="pw-Hank-42")
    assert r.type == "result", r
    assert r.frm == SERVER_JID, r
    form = Form(reg_get(hank))
    assert_form(form, registered=True, nick="hank_irc", username="hankacct", name="Hank Example")
    assert "pw-Hank-42" not in form.stanza.xml(), form

    # a field left out keeps its value; a field sent changes only itself
    r = reg_set(hank, name="Hank Q. Example")
    assert r.type == "result", r
    assert_form(Form(reg_get(hank)), registered=True, nick="hank_irc", username="hankacct",
                name="Hank Q. Example")

    # remove clears everything
    r = reg_set(hank, remove=True)
    assert r.type == "result", r
    assert_form(Form(reg_get(hank)), registered=False)

    # settings are per user: another user sees nothing of hank's
    assert_form(Form(reg_get(xmpp("iris"))), registered=False)


@pytest.mark.parametrize("field,value", [
    ("nick", "two words"),
    ("nick", "cr\rnick"),
    ("nick", "lf\nnick"),
    ("nick", ":colon"),
    ("username", "two words"),
    ("username", "cr\ruser"),
    ("name", "line one\r\nQUIT :injected"),
    ("password", "pass\rword"),
    ("password", "pass\nword"),
])
def test_register_refuses_what_irc_cannot_carry(env, xmpp, field, value):
    jack = xmpp("jack")
    r = reg_set(jack, nick="jack", username="jack", name="Jack", password="jackpw")
    assert r.type == "result", r
    r = reg_set(jack, **{field: value})
    assert r.type == "error" and r.error_condition == "not-acceptable", r
    assert r.error_type == "modify", r
    # nothing changed
    assert_form(Form(reg_get(jack)), registered=True, nick="jack", username="jack", name="Jack")
    reg_set(jack, remove=True)


def test_register_on_a_server_not_in_the_config_is_not_allowed(env, xmpp):
    kate = xmpp("kate")
    other = "irc.elsewhere.example@" + DOMAIN
    for r in (reg_get(kate, to=other), reg_set(kate, to=other, nick="kate", password="x")):
        assert r.type == "error" and r.error_condition == "not-allowed", r
        assert r.error_type == "cancel", r


def test_register_from_a_user_not_in_allow_is_forbidden(env, xmpp):
    mallory = xmpp("mallory", host="other.localhost")
    for r in (reg_get(mallory), reg_set(mallory, nick="mallory", password="x")):
        assert r.type == "error" and r.error_condition == "forbidden", r


def test_register_ignores_iq_results_and_errors(env, xmpp):
    """An <iq type='result'/> or 'error' answers nothing (RFC 6120 8.2.3) and
    changes nothing, even with a jabber:iq:register query inside."""
    liam = xmpp("liam")
    problems = []
    for itype in ("result", "error"):
        m = Mark(liam)
        iq_id = h.new_id("stray")
        liam.send_raw("<iq type=%s to=%s id=%s><query xmlns='%s'><nick>stray_%s</nick></query></iq>" % (
            quoteattr(itype), quoteattr(SERVER_JID), quoteattr(iq_id), NS_REGISTER, itype))
        try:
            answer = m.wait(lambda s: s.name == "iq" and s.id == iq_id, timeout=2, what="an answer")
            problems.append("ferry answered an <iq type='%s'/>: %r" % (itype, answer))
        except TimeoutError:
            pass
        form = Form(reg_get(liam))
        if form.registered or form.text("nick") != "":
            problems.append("an <iq type='%s'/> was taken as a set, the settings are now: nick=%r" % (
                itype, form.text("nick")))
            assert reg_set(liam, remove=True).type == "result"
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- SASL


def test_sasl_logs_in_with_the_registered_password(env, xmpp, irc):
    env.net.register_account("bob", "s3cretpw")
    w = watcher(irc, "watch1", "#sasl")
    bob = xmpp("bob")
    r = reg_set(bob, nick="bob", username="bob", name="Bob Example", password="s3cretpw")
    assert r.type == "result", r

    off, mi = env.ferry.stderr_offset(), w.mark()
    join(bob, room("#sasl"), "bob")
    env.ferry.wait_log(SASL_OK, offset=off)
    j = wait_join(w, "bob", "#sasl", since=mi)
    # extended-join: the account the server has for the connection, and the real name
    assert j.params[1:] == ["bob", "Bob Example"], j
    assert j.prefix.split("!", 1)[1].split("@")[0].lstrip("~") == "bob", j
    who = ih.whois(w, "bob")
    assert who.account == "bob", "WHOIS shows no 330 'is logged in as bob': %r" % who
    assert who.realname == "Bob Example" and who.user.lstrip("~") == "bob", who
    assert not re.search(SASL_WARN, env.ferry.stderr(off)), env.ferry.stderr(off)
    # the services saw the login too
    h.wait_until(lambda: re.search(r"bob!\S+ is now identified as bob", env.net.anope_log_text()), 10,
                 what="anope logging bob's login")

    # the connection works as any other
    bob.send_message(room("#sasl"), "logged in", mtype="groupchat")
    w.wait(lambda l: l.command == "PRIVMSG" and l.nick == "bob" and l.params == ["#sasl", "logged in"],
           since=mi, what="bob's PRIVMSG")
    # never a secret in the log
    log = env.ferry.stderr()
    assert "s3cretpw" not in log, "the password is in ferry's log"
    assert base64.b64encode(b"\0bob\0s3cretpw").decode() not in log, "the SASL payload is in ferry's log"


def test_sasl_authcid_is_the_nick_without_a_username(env, xmpp, irc):
    env.net.register_account("dave", "davepw99")
    w = watcher(irc, "watch2", "#sasl-nick")
    dave = xmpp("dave")
    assert reg_set(dave, password="davepw99").type == "result"
    off, mi = env.ferry.stderr_offset(), w.mark()
    join(dave, room("#sasl-nick"), "dave")
    env.ferry.wait_log(SASL_OK, offset=off)
    j = wait_join(w, "dave", "#sasl-nick", since=mi)
    assert j.params[1] == "dave", j
    # the real name is the server's default when none is set
    assert j.params[2] == "ferry user", j
    assert ih.whois(w, "dave").account == "dave"


def test_sasl_wrong_password_connects_without(env, xmpp, irc):
    env.net.register_account("carol", "rightpw99")
    w = watcher(irc, "watch3", "#nosasl")
    carol = xmpp("carol")
    r = reg_set(carol, nick="carol", username="carol", name="Carol Example", password="wrongpw99")
    assert r.type == "result", r
    off, mi = env.ferry.stderr_offset(), w.mark()
    join(carol, room("#nosasl"), "carol")
    m = env.ferry.wait_log(SASL_WARN + r".*", offset=off)
    assert "fail" in m.group(0), m.group(0)
    assert not re.search(SASL_OK, env.ferry.stderr(off)), env.ferry.stderr(off)
    j = wait_join(w, "carol", "#nosasl", since=mi)
    assert j.params[1:] == ["*", "Carol Example"], j
    who = ih.whois(w, "carol")
    assert who.exists and who.account is None, "WHOIS shows an account for carol: %r" % who
    assert "wrongpw99" not in env.ferry.stderr(), "the password is in ferry's log"


def test_no_password_no_sasl(env, xmpp, irc):
    w = watcher(irc, "watch5", "#plain")
    erin = xmpp("erin")
    assert reg_set(erin, username="erinuser", name="Erin Example").type == "result"
    off, mi = env.ferry.stderr_offset(), w.mark()
    join(erin, room("#plain"), "erin")
    j = wait_join(w, "erin", "#plain", since=mi)
    assert j.params[1:] == ["*", "Erin Example"], j
    assert j.prefix.split("!", 1)[1].split("@")[0].lstrip("~") == "erinuser", j
    assert ih.whois(w, "erin").account is None
    assert "SASL" not in env.ferry.stderr(off), env.ferry.stderr(off)


def test_username_that_irc_cannot_send_is_refused_or_works(env, xmpp, irc):
    """A username the USER line cannot carry (a leading ':') is refused at
    registration, or the connection still registers: it must not leave the
    join hanging."""
    w = watcher(irc, "watch6", "#colon")
    owen = xmpp("owen")
    r = reg_set(owen, username=":owen")
    if r.type == "error":
        assert r.error_condition == "not-acceptable", r
        return
    mi = w.mark()
    try:
        join(owen, room("#colon"), "owen", timeout=10)
    except (AssertionError, TimeoutError) as e:
        raise AssertionError("username ':owen' was accepted by XEP-0077 but the join did not complete "
                             "(USER cannot carry it): %s\nferry log:\n%s" % (e, h.tail_text(env.ferry.stderr(), 15)))
    wait_join(w, "owen", "#colon", since=mi)


def test_services_down_connects_without_sasl(env, xmpp, irc):
    """Without services inspircd offers no SASL: ferry says so and connects
    without. (The services are back at the end.)"""
    env.net.register_account("gina", "ginapw99")
    w = watcher(irc, "watch7", "#nosvc")
    gina = xmpp("gina")
    assert reg_set(gina, username="gina", password="ginapw99").type == "result"
    try:
        assert env.net.stop_anope() == 0, env.net.report()
        h.wait_until(lambda: "sasl" not in env.net.cap_ls(), 10, interval=0.2,
                     what="inspircd to stop offering SASL")
        off, mi = env.ferry.stderr_offset(), w.mark()
        join(gina, room("#nosvc"), "gina")
        m = env.ferry.wait_log(SASL_WARN + r".*", offset=off)
        assert "no SASL" in m.group(0), m.group(0)
        j = wait_join(w, "gina", "#nosvc", since=mi)
        assert j.params[1] == "*", j
    finally:
        env.net.start_anope()


# ---------------------------------------------------------------- restart


def test_settings_survive_a_ferry_restart(env, xmpp, irc, testbed):
    """Settings are in the store (the SQLite file, or the PostgreSQL
    database with --store=postgresql): after a restart, get shows them and
    a new connection uses the registered nick, username, real name and
    password (SASL)."""
    env.net.register_account("frank", "frankpw99")
    store = os.path.join(testbed.subdir("store"), "ferry.db")
    port = h.free_port()
    comp = irc_component(DOMAIN_B, SECRET, {IRC: irc_server_table(env.net)})
    f = testbed.ferry(h.ferry_config(env.prosody.component_port, port, {"ircb": comp},
                                     storage={"path": store}), http_port=port, name="ferry-b")
    wait_link_up(f, "ircb")
    server_jid = "%s@%s" % (IRC, DOMAIN_B)
    frank = xmpp("frank")
    r = reg_set(frank, to=server_jid, nick="frankie", username="frank", name="Frank Restart",
                password="frankpw99")
    assert r.type == "result", r

    assert f.stop() == 0, f.report()
    if not pg_helpers.ACTIVE:
        assert os.path.exists(store), "no store at %s" % store
    off = f.stderr_offset()
    f.start()
    f.wait_healthz(200, timeout=20)
    wait_link_up(f, "ircb")

    form = Form(reg_get(frank, to=server_jid))
    assert_form(form, registered=True, nick="frankie", username="frank", name="Frank Restart")
    assert "frankpw99" not in form.stanza.xml()

    # a private message opens a connection with the registered nick, and SASL
    w = irc("watch4")
    mi = w.mark()
    frank.send_message("watch4%%%s@%s" % (IRC, DOMAIN_B), "hello after the restart")
    pm = w.wait(lambda l: l.command == "PRIVMSG" and l.params[:1] == ["watch4"], since=mi,
                what="frank's private message")
    assert pm.nick == "frankie" and pm.trailing == "hello after the restart", pm
    f.wait_log(SASL_OK, offset=off)
    who = ih.whois(w, "frankie")
    assert who.account == "frank", "WHOIS shows no 330 'is logged in as frank': %r" % who
    assert who.realname == "Frank Restart" and who.user.lstrip("~") == "frank", who

    # remove survives a restart as well
    assert reg_set(frank, to=server_jid, remove=True).type == "result"
    assert f.stop() == 0, f.report()
    f.start()
    f.wait_healthz(200, timeout=20)
    wait_link_up(f, "ircb")
    assert_form(Form(reg_get(frank, to=server_jid)), registered=False)
