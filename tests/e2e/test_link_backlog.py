"""A busy XMPP server is not a dead one (issue 15, the fan-out lost under
load): a burst from IRC fanned out to the room's users makes a backlog on
ferry's component link that the server reads slowly; every stanza must
arrive, on the same link.

Before, the link's ping was answered only after the whole backlog (the
server handles a stream in order), ping_timeout passed, ferry dropped the
link, and what it had not yet written was lost without a count: the
bench lost 100,390 of 150,000 stanzas to 300 users that way on a loaded
machine, and Prosody refused the reconnection while it was still reading
the old stream ("Component already connected").

The XMPP server here is played by the test, because only then is "slow but
steady" exact: a listening socket that does the XEP-0114 handshake, reads
at a fixed rate (a small receive buffer, so that the backlog stays on
ferry's side) and answers each ping when it reaches it in the stream, as
Prosody does. Everything else is real: ferry, ngircd and an IRC client."""

import re
import socket
import threading
import time

import pytest

import harness as h
from irc_fixtures import IrcEnv, irc_component
from irc_helpers import IrcClient

DOMAIN = "irc.localhost"
SECRET = "s3cret"
CHAN = "#burst"
USERS = 5
LINES = 800
BODY = "b" * 300
PING = re.compile(rb"<iq type='get' id='([^']+)' from='([^']+)' to='([^']+)'>"
                  rb"<ping xmlns='urn:xmpp:ping'/></iq>")
MARK = b"<body>burst-"


class SlowXmppServer:
    """Accepts component connections (every one counted), answers the stream
    header, the handshake and each ping in stream order; while self.rate is
    set, reads rate[0] bytes every rate[1] seconds. Keeps every byte read,
    from every connection."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by the accepted socket: a window of a few KiB
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.data = bytearray()
        self.rate = None
        self.conn = None
        self.stop = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="slow-xmpp", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                if self.conn is not None:
                    self.conn.close()
                self.conn = conn
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(0.2)
        with self.lock:
            scanned = len(self.data)
        opened = False
        try:
            while not self.stop:
                rate = self.rate
                try:
                    chunk = conn.recv(rate[0] if rate else 1 << 16)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                with self.lock:
                    if conn is not self.conn:
                        return
                    self.data += chunk
                    data = bytes(self.data)
                if not opened and b"<stream:stream" in data[scanned:]:
                    opened = True
                    conn.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                                 b"xmlns:stream='http://etherx.jabber.org/streams' id='slow1' "
                                 b"from='" + DOMAIN.encode() + b"'>")
                if b"</handshake>" in data[scanned:]:
                    conn.sendall(b"<handshake/>")
                for m in PING.finditer(data, max(0, scanned - 400)):
                    if m.end() > scanned:
                        conn.sendall(b"<iq type='result' id='%s' from='%s' to='%s'/>" % (
                            m.group(1), m.group(3), m.group(2)))
                scanned = len(data)
                if rate:
                    time.sleep(rate[1])
        except OSError:
            return

    def send(self, xml):
        with self.lock:
            conn = self.conn
        conn.sendall(xml.encode())

    def count(self, needle):
        with self.lock:
            return bytes(self.data).count(needle)

    def close(self):
        self.stop = True
        self.listener.close()
        with self.lock:
            if self.conn is not None:
                self.conn.close()
        self.thread.join(5)


@pytest.fixture
def env(testbed):
    with IrcEnv(testbed) as e:
        e.start_ngircd("irc.localhost")
        yield e


def test_burst_to_a_slow_server_arrives_on_one_link(testbed, env):
    server = SlowXmppServer()
    try:
        port = h.free_port()
        ngircd = env.ircds[0]
        comp = irc_component(DOMAIN, SECRET, {"irc.localhost": {
            "host": "127.0.0.1", "port": ngircd.port, "tls": False,
            "throttle_burst": 1000000, "throttle_rate": 1000000}})
        # a ping every second, answered within 3 s once the server has it
        text = h.ferry_config(server.port, port, {"irc": comp},
                              xmpp={"ping_interval": 1, "ping_timeout": 3, "keepalive_interval": 1})
        f = testbed.ferry(text, http_port=port)
        sender = IrcClient(ngircd.port, "bursty")
        try:
            sender.join(CHAN)
            room = "%s%%irc.localhost@%s" % (CHAN, DOMAIN)
            for k in range(USERS):
                server.send("<presence from='u%d@localhost/r' to='%s/u%d'>"
                            "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>"
                            "</presence>" % (k, room, k))
            h.wait_until(lambda: server.count(b"code='110'") + server.count(b'code="110"') >= USERS,
                         20, interval=0.1, what="the users' self-presences")
            h.wait_until(lambda: len(sender.names(CHAN)) == USERS + 1, 10, interval=0.2,
                         what="the users in %s on IRC" % CHAN)

            # about 2.4 MB to send at 320 KB/s: ~7 s of backlog, twice ping_timeout
            server.rate = (8192, 0.025)
            for i in range(LINES):
                sender.privmsg(CHAN, "burst-%d %s" % (i, BODY))
            expected = USERS * LINES
            h.wait_until(lambda: server.count(MARK) >= expected or server.connections > 1, 60,
                         interval=0.5, what="%d stanzas at the slow server" % expected)
            server.rate = None
            got = server.count(MARK)
            assert (got, server.connections) == (expected, 1), (
                "%d of %d stanzas arrived, on %d connection(s); ferry's log:\n%s" % (
                    got, expected, server.connections, h.tail_text(f.stderr(), 8)))
            assert [l for l in f.log_lines() if " warn " in l or " error " in l] == []
            _, samples, _, _ = f.metrics()
            assert h.metric_values(samples, "ferry_link_lost_bytes_total", component="irc") == [0]
            assert h.metric_values(samples, "ferry_link_backlog_bytes", component="irc") == [0]
        finally:
            sender.close()
            f.stop()
    finally:
        server.close()
