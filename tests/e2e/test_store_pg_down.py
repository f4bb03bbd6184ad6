"""The PostgreSQL server going away under a running ferry (issue 14): what a
user sees while it is down and after it is back. Messages from XMPP users
wait in ferry's memory (storage.hold_messages) and are delivered after, in
order, once each; past the bound the sender is told to wait
(resource-constraint); webhook POSTs get 503 with Retry-After and are
accepted after; /healthz says why. And a database host that takes the
connection and never answers: the attempt ends after connect_timeout, at
start and while running.

Each test has its own throwaway PostgreSQL (stopped and started by pid)."""

import collections
import re
import signal
import socket
import threading
import time

import pytest

import durable_helpers as d
import harness as h
import pg_helpers
from harness_procs import TcpListener

DOMAIN = "hooks.localhost"
SECRET = "comp-secret-Pd27-qv"
TOKEN = "tok-pgdown-Lx93-ra"
ALERTS = "alerts@" + DOMAIN
INBOUND_PATH = "/hooks/hooks/alerts"

pytestmark = pytest.mark.skipif(pg_helpers.missing() is not None,
                                reason="no PostgreSQL: %s" % pg_helpers.missing())


@pytest.fixture
def own_pg():
    server = pg_helpers.Postgres().start()
    yield server
    server.stop()


def start_env(tb, url, recv, hold_messages=None):
    prosody = tb.prosody(components={DOMAIN: SECRET},
                         users=[("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw")])
    alerts = {"url": recv.url("/out"), "format": "json", "token": TOKEN,
              "deliver_to": ["bob@localhost"], "allow": ["localhost"]}
    comp = d.webhook_component(DOMAIN, SECRET, {"alerts": alerts}, max_attempts=1000,
                               retry_delay=0.2, retry_delay_max=1.0)
    storage = {"url": url}
    if hold_messages is not None:
        storage["hold_messages"] = hold_messages
    ferry = tb.linked_ferry(prosody, {"hooks": comp}, storage=storage)
    return prosody, ferry


def out_ids(recv):
    """The stanza ids of the POSTs the receiver got, in arrival order."""
    return [h.jbody(r).get("id") for r in recv.requests("/out")]


def health_down(ferry):
    st, doc = ferry.healthz()
    return st == 503 and "PostgreSQL unreachable" in (doc or {}).get("store_error", "")


def health_up(ferry):
    st, doc = ferry.healthz()
    return st == 200 and "store_error" not in (doc or {})


# ------------------------------------------------------------------ stopped and started


def test_database_restarted_in_the_middle_of_traffic(testbed, own_pg):
    """Traffic both ways while the database server is stopped (SIGINT, by
    pid) and started again. XMPP -> webhook: every message arrives once, in
    the order sent, those sent while it was down included (held, then
    stored); the sender gets no error. Webhook -> XMPP: POSTs get 503 with
    Retry-After while it is down, each is accepted on a retry and reaches
    the XMPP user once. /healthz is 503 with the reason while down, 200
    after."""
    tb = testbed
    recv = tb.receiver()
    prosody, ferry = start_env(tb, own_pg.url(own_pg.new_database()), recv)
    tag = h.new_id("r")
    n_in = 150
    bob = d.Recorder(tb, prosody, "bob@localhost/recv", "bobpw", ALERTS)
    poster = d.InboundPoster(ferry.url(INBOUND_PATH), TOKEN, n_in, 30.0, tag, workers=3)
    alice = tb.client("alice@localhost/sender", "alicepw", prosody)
    sent = []

    def send(k):
        for _ in range(k):
            mid = "%s-%04d" % (tag, len(sent))
            alice.send_message(ALERTS, "out %s" % mid, id=mid)
            sent.append(mid)
            time.sleep(0.02)

    off = ferry.stderr_offset()
    workers = [bob, poster]
    try:
        for w in workers:
            w.start()
        send(60)                                   # up
        own_pg.halt()
        t_down = time.monotonic()
        send(60)                                   # down: held in ferry's memory
        h.wait_until(lambda: health_down(ferry), 15, interval=0.2,
                     what="/healthz 503 saying PostgreSQL is unreachable")
        r = h.post_json(ferry.url(INBOUND_PATH), {"text": "probe while down"}, TOKEN)
        assert r.status == 503 and r.headers.get("retry-after", "").isdigit(), (r, r.headers)
        ferry.wait_log(r"holding messages from XMPP in memory", offset=off)
        st, doc = ferry.healthz()
        assert doc["components"]["hooks"].get("held", 0) > 0, doc
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t_down)))
        own_pg.launch()
        send(60)                                   # back (perhaps still held: in order)

        def finished():
            for w in workers:
                w.check()
            got = set(out_ids(recv))
            return (all(m in got for m in sent) and poster.done()
                    and all(poster.text(i) in bob.snapshot() for i in range(n_in)))
        h.wait_until(finished, 60, interval=0.3, what="every message both ways")
        time.sleep(1.0)                            # late duplicates would show now
    finally:
        for w in workers:
            w.stop()
    for w in workers:
        w.check()

    ids = [i for i in out_ids(recv) if i and i.startswith(tag)]
    dup_out = {m: c for m, c in collections.Counter(ids).items() if c > 1}
    assert not dup_out, "delivered more than once: %s" % dup_out
    assert ids == sent, "not in the order sent: first difference at %d" % next(
        k for k in range(min(len(ids), len(sent))) if ids[k] != sent[k])
    errors = alice.stanzas(lambda s: s.type == "error")
    assert not errors, "the XMPP sender got errors: %s" % [(e.id, e.error_condition) for e in errors]
    bodies = collections.Counter(b for b in bob.snapshot() if tag in b)
    dup_in = {b: c for b, c in bodies.items() if c > 1}
    assert not dup_in, "webhook -> XMPP delivered more than once: %s" % dup_in
    assert set(poster.failures) <= {503}, poster.failures
    assert poster.failures.get(503), "no POST was refused while the database was down"
    ferry.wait_log(r"held message\(s\) stored", offset=off)
    h.wait_until(lambda: health_up(ferry), 15, interval=0.2, what="/healthz 200 again")
    print("\nXMPP -> webhook: %d sent, %d arrived in order; webhook -> XMPP: %d POSTs for %d, "
          "failed tries %s" % (len(sent), len(ids), poster.requests, n_in, poster.failures))


def test_full_hold_says_resource_constraint_and_a_stop_says_what_was_not_stored(testbed, own_pg):
    """storage.hold_messages = 5, the database server stopped (a fast
    shutdown, by pid): five messages are held without a word to the sender, the next
    ones get a wait / resource-constraint error with a text. Stopped while
    holding, ferry says in its log how many messages it could not store."""
    tb = testbed
    recv = tb.receiver()
    prosody, ferry = start_env(tb, own_pg.url(own_pg.new_database()), recv, hold_messages=5)
    alice = tb.client("alice@localhost/sender", "alicepw", prosody)
    mid = alice.send_message(ALERTS, "while up")
    h.wait_until(lambda: mid in out_ids(recv), 15, interval=0.1, what="the first POST")
    own_pg.halt()  # SIGINT by pid (SIGTERM would wait for ferry's session to end)
    h.wait_until(lambda: health_down(ferry), 15, interval=0.2, what="/healthz 503")

    ids = [alice.send_message(ALERTS, "down %d" % i) for i in range(8)]
    refused = [alice.wait_message(lambda s, m=m: s.id == m and s.type == "error", timeout=10,
                                  what="resource-constraint for %s" % m) for m in ids[5:]]
    for e in refused:
        assert (e.error_type, e.error_condition) == ("wait", "resource-constraint"), e
        assert e.error_text and "full" in e.error_text, e.error_text
    time.sleep(0.5)
    early = [s.id for s in alice.stanzas(lambda s: s.type == "error") if s.id in ids[:5]]
    assert not early, "held messages got errors: %s" % early
    assert not any(i in out_ids(recv) for i in ids), "delivered while the database was down"

    off = ferry.stderr_offset()
    ferry.signal(signal.SIGTERM)
    assert ferry.wait_exit(15) == 0, ferry.report()
    ferry.wait_log(r"stopping with 5 message\(s\) from XMPP held in memory and not stored",
                   offset=off)


# ------------------------------------------------------------------ a host that never answers


class SilentProxy:
    """A TCP port in front of PostgreSQL. Forwarding: each connection goes
    through to the server. Silent: every connection open now is cut, and new
    ones are accepted and never answered (a host that hangs)."""

    def __init__(self, target_port):
        self.target = target_port
        self.silent = False
        self.conns = []
        self.lock = threading.Lock()
        self.listener = TcpListener(self._on_accept, 64, "silent-proxy")
        self.port = self.listener.port

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _on_accept(self, c):
        with self.lock:
            self.conns.append(c)
            if self.silent:
                return
        try:
            up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            c.close()
            return
        up.settimeout(None)
        with self.lock:
            self.conns.append(up)
        for a, b in ((c, up), (up, c)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def go_silent(self):
        with self.lock:
            self.silent = True
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def forward(self):
        with self.lock:
            self.silent = False

    def close(self):
        self.listener.close()
        with self.lock:
            for c in self.conns:
                c.close()


def test_unresponsive_host_fails_the_connect_after_connect_timeout(testbed, own_pg):
    """A database host that accepts the connection and never answers. At
    start: ferry gives up within connect_timeout (2 s here) with a clear
    message instead of hanging. While running (its connection cut, the
    host silent): each attempt ends after connect_timeout, the log and
    /healthz say so, reconnects go on with backoff, and once the host
    answers again messages flow."""
    tb = testbed
    db = own_pg.new_database()
    proxy = SilentProxy(own_pg.port)
    try:
        url = "postgresql://ferry@127.0.0.1:%d/%s?connect_timeout=2" % (proxy.port, db)
        # At start, silent from the beginning.
        proxy.go_silent()
        f = tb.ferry(h.ferry_config(h.free_port(), h.free_port(), {"hooks": d.webhook_component(
            DOMAIN, SECRET, {"alerts": {"url": "http://127.0.0.1:1/"}})},
            storage={"url": url}), start=False, name="ferry-start")
        f.expect_exit = True
        t = time.monotonic()
        f.start()
        rc = f.wait_exit(20)
        took = time.monotonic() - t
        assert rc not in (None, 0), "ferry started or hung against a silent host:\n%s" % f.report()
        assert took < 12, "gave up after %.1f s" % took
        assert re.search(r"cannot connect to PostgreSQL.*timeout", f.stderr(), re.I), f.report()

        # While running.
        proxy.forward()
        recv = tb.receiver()
        prosody, ferry = start_env(tb, url, recv)
        alice = tb.client("alice@localhost/sender", "alicepw", prosody)
        mid = alice.send_message(ALERTS, "before")
        h.wait_until(lambda: mid in out_ids(recv), 15, interval=0.1, what="the first POST")
        off = ferry.stderr_offset()
        proxy.go_silent()
        # /healthz reads the store: that finds the connection cut.
        h.wait_until(lambda: health_down(ferry), 10, interval=0.2, what="/healthz 503")
        ferry.wait_log(r"PostgreSQL unreachable: no answer within 2 s \(connect_timeout\)",
                       timeout=20, offset=off)
        h.wait_until(lambda: "no answer within 2 s" in (ferry.healthz()[1] or {}).get(
            "store_error", ""), 10, interval=0.2, what="/healthz saying why")
        held = alice.send_message(ALERTS, "while silent")
        time.sleep(0.5)
        proxy.forward()
        ferry.wait_log(r"connected to PostgreSQL again", timeout=30, offset=off)
        h.wait_until(lambda: held in out_ids(recv), 15, interval=0.1,
                     what="the message sent while the host was silent")
        h.wait_until(lambda: health_up(ferry), 10, interval=0.2, what="/healthz 200 again")
        assert not alice.stanzas(lambda s: s.type == "error")
    finally:
        proxy.close()
