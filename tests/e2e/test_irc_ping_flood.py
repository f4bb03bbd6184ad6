"""IRC flood control against a server's burst of PINGs (issue 11, item 6):
the user's next line must not wait behind the PONGs.

A real ngircd cannot be made to send 100 PINGs in a row, so this test plays
the IRC server itself: a listening socket on 127.0.0.1 that registers
ferry's connection (001) and then sends the burst. Everything else is real:
Prosody, ferry and a slixmpp client. The fake server's lines are parsed with
irc_helpers.IrcLine; every wait is bounded and the socket closed at the end."""

import socket
import threading
import time

import pytest

import harness as h
from irc_helpers import IrcLine, socket_lines

DOMAIN = "irc.localhost"
SECRET = "s3cret"
FAKE = "fake.localhost"
PINGS = 100


class FakeIrcServer:
    """Accepts one client, answers its registration with 001, and keeps
    every line it reads (IrcLine, with .time)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.conn = None
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="fake-ircd", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.conn, _ = self.listener.accept()
        except OSError:
            return
        self.conn.settimeout(0.2)
        nick = "*"
        for raw in socket_lines(self.conn, lambda: self.closed):
            line = IrcLine(raw)
            if line.command == "NICK" and line.params:
                nick = line.params[0]
            elif line.command == "USER":
                self.send(":%s 001 %s :Welcome to the fake network" % (FAKE, nick))
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def send(self, text):
        self.conn.sendall(text.encode() + b"\r\n")

    def wait(self, pred, timeout, what):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                hit = [l for l in self.lines if pred(l)]
                if hit:
                    return hit[0]
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake IRC server: no %s within %.1f s; last lines: %r"
                                         % (what, timeout, self.lines[-5:]))
                self.cond.wait(left)

    def count(self, pred):
        with self.cond:
            return sum(1 for l in self.lines if pred(l))

    def close(self):
        self.closed = True
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()
        self.thread.join(5)


@pytest.fixture
def fake_ircd():
    yield from h.closed_after(FakeIrcServer)


def test_ping_burst_does_not_delay_the_users_line(testbed, fake_ircd):
    ircd = fake_ircd()
    prosody = testbed.prosody(components={DOMAIN: SECRET}, users=[("alice", "localhost", "alicepw")])
    servers = {FAKE: {"host": "127.0.0.1", "port": ircd.port, "tls": False,
                      "throttle_burst": 10, "throttle_rate": 2}}
    testbed.linked_ferry(prosody, {"irc": {"adapter": "irc", "domain": DOMAIN, "secret": SECRET,
                                           "allow": ["localhost"], "servers": servers}})
    alice = testbed.client("alice@localhost", "alicepw", prosody)
    bob = "bob%%%s@%s" % (FAKE, DOMAIN)

    alice.send_message(bob, "before the pings")
    ircd.wait(lambda l: l.command == "PRIVMSG" and l.trailing == "before the pings", 15, "first PRIVMSG")

    for i in range(1, PINGS + 1):
        ircd.send("PING :tok-%d" % i)
    time.sleep(0.2)   # the burst is in before the user types
    sent = time.monotonic()
    alice.send_message(bob, "after the pings")
    line = ircd.wait(lambda l: l.command == "PRIVMSG" and l.trailing == "after the pings", 15,
                     "PRIVMSG after the burst")
    delay = line.time - sent
    assert delay < 2.0, "the user's line waited %.1f s behind the PONGs" % delay

    # The server still gets its answer to the latest PING, and not 100 PONGs.
    ircd.wait(lambda l: l.command == "PONG" and l.params[-1] == "tok-%d" % PINGS, 5, "PONG to the last PING")
    pongs = ircd.count(lambda l: l.command == "PONG")
    assert pongs <= 10, "%d PONGs for a burst of %d PINGs" % (pongs, PINGS)
