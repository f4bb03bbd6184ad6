"""What the IRC test modules (test_irc*.py) share: a module's setting of IRC
servers, Prosody and ferry (IrcEnv), the wait for ferry's component link,
and the XMPP and IRC client fixtures. A module takes the fixtures by name
(`from irc_fixtures import irc, xmpp  # noqa: F401 (fixtures)`): pytest
finds them in its namespace, next to the module's own `env` fixture, which
they use.

Kept apart from irc_helpers.py, which bench/ imports without pytest."""

import pytest

import harness as h
from irc_helpers import IrcClient, Ngircd


def link_up(ferry, component="irc"):
    """Whether ferry's /metrics says COMPONENT's XMPP link is up."""
    try:
        _, samples, _, _ = ferry.metrics()
    except OSError:
        return False
    return h.metric_values(samples, "ferry_link_up", component=component) == [1]


def wait_link_up(ferry, *components):
    """Waits (15 s at most each) until every one of COMPONENTS ("irc" when
    none is named) has its link up."""
    for name in components or ("irc",):
        h.wait_until(lambda: link_up(ferry, name), 15, interval=0.1,
                     what="ferry's XMPP link for %s" % name)


def users(names, host="localhost"):
    """Prosody accounts (user, host, password user + "pw") for NAMES."""
    return [(u, host, u + "pw") for u in names]


def irc_component(domain, secret, servers, **settings):
    """An IRC component's table for ferry's config: DOMAIN, SECRET, the
    [servers] it may reach ({name: table}), open to localhost users;
    SETTINGS: more keys (default_server...)."""
    return dict({"adapter": "irc", "domain": domain, "secret": secret, "allow": ["localhost"],
                 "servers": servers}, **settings)


class IrcEnv(h.Env):
    """A test module's setting, built by its env fixture inside `with`: IRC
    servers (ircd()), a Prosody (set .prosody) and a ferry linked to it
    (link()). On leaving, ferry stops first (it QUITs its IRC connections),
    then the IRC servers, which are cleaned up."""

    def __init__(self, testbed):
        self.tb = testbed
        self.ircds = []
        self.ferry = None

    def ircd(self, server, start=True):
        """Keeps SERVER (an Ngircd or an InspircdAnope) to stop at the end,
        started unless START is false; returns it. The first one is where
        the irc fixture's clients connect by default."""
        self.ircds.append(server)
        if start:
            server.start()
        return server

    def start_ngircd(self, name, tls=False, cls=Ngircd):
        """A started ngircd (CLS: an Ngircd subclass) named NAME, kept as
        ircd() keeps it."""
        return self.ircd(cls(self.tb.subdir("ngircd"), name=name, tls=tls))

    def ngircd_table(self):
        """The [servers] table entry for the ngircd of one_ngircd_env()."""
        return dict(host="127.0.0.1", port=self.ngircd.port, tls=False)

    def link(self, components, **kw):
        """A ferry serving COMPONENTS ({name: table}) on self.prosody,
        returned once every component's link is up. Keywords: as
        Testbed.linked_ferry (admin, storage...)."""
        self.ferry = self.tb.linked_ferry(self.prosody, components, **kw)
        wait_link_up(self.ferry, *components)
        return self.ferry

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.ferry is not None:
            self.ferry.stop()
        for server in self.ircds:
            server.stop()
            server.cleanup()
        return False


def one_ngircd_env(testbed, irc_name, domain, secret, user_names, link=True):
    """The most common module setting, for an env fixture to `yield from`:
    an IrcEnv with one ngircd named IRC_NAME (.ngircd), a Prosody serving
    DOMAIN to USER_NAMES@localhost (.prosody) and, when LINK, a ferry with
    an irc component for that ngircd (.ferry)."""
    with IrcEnv(testbed) as e:
        e.ngircd = e.start_ngircd(irc_name)
        e.prosody = testbed.prosody(vhosts=("localhost",), components={domain: secret},
                                    users=users(user_names))
        if link:
            e.link({"irc": irc_component(domain, secret, {irc_name: e.ngircd_table()})})
        yield e


def xmpp_fixture(plugins=("xep_0045",)):
    """An xmpp fixture whose clients register PLUGINS (slixmpp names)."""

    @pytest.fixture
    def xmpp(env):
        """xmpp(user, resource=None, host="localhost"): a logged-in client
        (password user + "pw") on env.prosody; closed at the end of the
        test."""
        def make(user, resource=None, host="localhost"):
            jid = "%s@%s" % (user, host) + ("/" + resource if resource else "")
            return h.XmppClient(jid, user + "pw", env.prosody.c2s_port, plugins=plugins)

        yield from h.closed_after(make, best_effort=True)

    return xmpp


xmpp = xmpp_fixture()


@pytest.fixture
def irc(env):
    """irc(nick, server=None, tls=False): a registered raw IRC client on
    SERVER (env's first IRC server by default), on its TLS port with TLS;
    QUITs at the end of the test."""
    def make(nick, server=None, tls=False):
        server = server or env.ircds[0]
        return IrcClient(server.tls_port if tls else server.port, nick, tls=tls)

    yield from h.closed_after(make)
