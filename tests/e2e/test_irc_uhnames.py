"""IRC occupants' real JIDs from a server that offers userhost-in-names
(inspircd with m_uhnames): ferry asks for the capability, and NAMES alone
gives every member's user@host. Real Prosody, inspircd (no services
needed), ferry and slixmpp clients.
"""

import pytest

import harness as h
import inspircd_helpers as ih
from irc_fixtures import IrcEnv, irc_component
from irc_helpers import IrcClient
from test_irc import Mark, codes, item, join, user_jid
from test_irc_muc import presences_from, userhost

DOMAIN = "irc.localhost"
SECRET = "s3cret"
IRC = "irc.localhost"

pytestmark = pytest.mark.skipif(ih.missing() is not None, reason=ih.missing() or "")


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    with IrcEnv(tb) as e:
        e.net = e.ircd(ih.InspircdAnope(tb.subdir("inspircd"), name=IRC), start=False)
        e.net.start_inspircd()
        e.prosody = tb.prosody(components={DOMAIN: SECRET}, users=[("una", "localhost", "unapw")])
        e.link({"irc": irc_component(DOMAIN, SECRET, {IRC: {"host": "127.0.0.1", "port": e.net.port, "tls": False}})})
        yield e


def test_occupant_jids_from_userhost_in_names(env):
    assert "userhost-in-names" in env.net.cap_ls()
    ivan = IrcClient(env.net.port, "ivanu1", user="ivanident")
    una = h.XmppClient("una@localhost", "unapw", env.prosody.c2s_port, plugins=("xep_0045",))
    try:
        ivan.join("#uh")
        rj = "#uh%%%s@%s" % (IRC, DOMAIN)
        m, _ = join(una, rj, "una")
        got = {s.frm.split("/", 1)[1]: s for s in presences_from(m, rj)}
        assert item(got["ivanu1"]).get("jid") == "%s/%s" % (user_jid("ivanu1"), userhost(ivan, "ivanu1")), got
        me = got["una"]
        assert {100, 110} <= codes(me) and item(me).get("jid") == una.full_jid, me
    finally:
        una.close()
        ivan.close()
