"""Shared helpers for the durable-store tests (test_durable.py, test_store.py):
a webhook component, `ferry queue` parsing, reading the store file, a
reliable XMPP sender that resends until it gets a receipt, a recording XMPP
user that stays connected, and a webhook sender that retries until 2xx.
(The receiver whose answers follow a policy, and that can go down and up
again on the same port, is harness.Receiver.)

Everything is bounded in time; every thread stops when asked (stop()) and
re-raises its exception in the caller (check())."""

import os
import re
import sqlite3
import threading
import time

import harness as h
import pg_helpers
from harness import jbody  # noqa: F401  (the tests use d.jbody)

# src/outbox_network.c: at most this many outbound requests under way per
# component, and at most one per conversation (endpoint + sender's bare JID).
MAX_IN_FLIGHT = 64


# ---------------------------------------------------------------- config


def webhook_component(domain, secret, endpoints, **policy):
    comp = {"adapter": "webhook", "domain": domain, "secret": secret, "endpoints": endpoints}
    comp.update(policy)
    return comp


# ---------------------------------------------------------------- ferry queue


class QueueRow:
    def __init__(self, line):
        parts = line.split()
        self.line = line
        self.id = int(parts[0])
        self.state = parts[1]
        self.direction = parts[2]
        self.component = parts[3]
        self.attempts = int(parts[4])
        self.age = parts[5]
        m = re.search(r"  error: (.*)$", line)
        self.error = m.group(1) if m else None

    def __repr__(self):
        return "<row %s>" % self.line.strip()


def queue(config_path, *args, timeout=20, binary=None):
    """`ferry queue -c CONFIG ARGS...`: the CompletedProcess."""
    return h.run_ferry_cli(["queue", "-c", config_path] + [str(a) for a in args], timeout=timeout,
                           binary=binary)


def queue_list(config_path, binary=None):
    """The rows `ferry queue list` shows (asserting it succeeds)."""
    r = queue(config_path, "list", binary=binary)
    assert r.returncode == 0, "ferry queue list failed (%s):\n%s%s" % (r.returncode, r.stdout, r.stderr)
    assert not h.sanitizer_reports(r.stderr), r.stderr
    lines = r.stdout.splitlines()
    assert lines and lines[0].split()[:2] == ["ID", "STATE"], r.stdout
    return [QueueRow(l) for l in lines[1:] if l.strip()]


def snapshot_binary(tb):
    """A copy of the ferry binary for this test: other work may rebuild
    build/ferry while a test restarts ferry, and one test must run one
    binary."""
    import shutil
    src = h.ferry_binary()
    dst = os.path.join(tb.dir, "ferry-under-test")
    if not os.path.exists(dst):
        shutil.copy2(src, dst)
    return dst


STATE_NAMES = {0: "pending", 1: "done", 2: "dead"}


def store_states_of(path, keys):
    """For each key (an Idempotency-Key seen by the receiver): the state of
    the store row whose payload carries it ("pending", "done", "dead"), or
    None when no row carries it. Reads the file directly (ferry must not be
    running): the key is searched as a substring, so the test does not depend
    on how the adapter lays out its record."""
    keys = set(keys)
    out = {k: None for k in keys}
    token = re.compile(rb"[A-Za-z0-9_-]{8,}")
    if pg_helpers.ACTIVE:      # --store=postgresql: the database standing in for PATH
        found = pg_helpers.rows_of(path)
    else:
        con = sqlite3.connect(path, timeout=10)
        try:
            con.execute("PRAGMA query_only = 1")
            found = list(con.execute("SELECT state, payload, dedup FROM messages"))
        finally:
            con.close()
    rows = [(STATE_NAMES.get(state, str(state)), bytes(payload or b"") + b" " + (dedup or "").encode())
            for state, payload, dedup in found]
    for state, blob in rows:
        for t in token.findall(blob):
            k = t.decode()
            if k in out:
                out[k] = state
    for k in [k for k, v in out.items() if v is None]:
        kb = k.encode()
        for state, blob in rows:   # a key of another shape: plain search
            if kb in blob:
                out[k] = state
                break
    return out


def store_user_version(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------- threads


class Worker:
    """A thread that runs step() until stop(); an exception stops it and is
    re-raised by check()."""

    def __init__(self, name):
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._main, daemon=True, name=name)

    def start(self):
        self._thread.start()
        return self

    def _main(self):
        try:
            self.run()
        except BaseException as e:  # noqa: re-raised by check()
            self._error = e

    def stopping(self):
        return self._stop.is_set()

    def stop(self, timeout=15):
        self._stop.set()
        self._thread.join(timeout)

    def check(self):
        if self._error is not None:
            raise self._error


class ReconnectingClient:
    """One harness XmppClient at a time for a fixed full JID: when the
    connection drops (the XMPP server restarted), a new one logs in with the
    same resource. new_stanzas() returns each received stanza once, across
    connections."""

    def __init__(self, tb, prosody, jid, password, login_timeout=8):
        self.tb = tb
        self.prosody = prosody
        self.jid = jid
        self.password = password
        self.login_timeout = login_timeout
        self.client = None
        self.seen = 0            # stanzas of self.client already returned
        self.connections = 0
        self.next_try = 0.0
        self.connect()

    def connect(self):
        self.client = self.tb.client(self.jid, self.password, self.prosody, timeout=self.login_timeout)
        self.seen = 0
        self.connections += 1

    def ensure(self):
        """True when connected (reconnecting if needed and due)."""
        if self.client is not None and self.client.connected():
            return True
        if time.monotonic() < self.next_try:
            return False
        try:
            self.connect()
            return True
        except Exception:  # noqa: the server is not back yet; try again soon
            self.client = None
            self.next_try = time.monotonic() + 0.3
            return False

    def new_stanzas(self):
        out = []
        if self.client is not None:
            got = self.client.stanzas()
            out = got[self.seen:]
            self.seen = len(got)
        return out


class ReliableSender(Worker):
    """An XMPP client sending n messages to `to` at `rate` per second, each
    with a unique id and a receipt request. Like a reliable client, it resends
    (same id) a message that got an error back after error_resend s, and one
    without a receipt after resend_after s; after a reconnect it resends all
    that have no receipt. It stops resending at stop()."""

    def __init__(self, tb, prosody, jid, password, to, n, rate, tag, resend_after=3.0,
                 error_resend=0.5, max_resends_per_tick=100):
        super().__init__("sender-" + jid)
        self.conn = ReconnectingClient(tb, prosody, jid, password)
        self.to = to
        self.n = n
        self.rate = rate
        self.ids = ["%s-%04d" % (tag, i) for i in range(n)]
        self.index = {mid: i for i, mid in enumerate(self.ids)}
        self.resend_after = resend_after
        self.error_resend = error_resend
        self.max_resends = max_resends_per_tick
        self.lock = threading.Lock()
        self.sent = 0
        self.due = {}            # id -> when to resend
        self.receipts = set()
        self.errors = 0          # error replies (bounces) received
        self.error_conditions = {}
        self.sends = 0           # stanzas written, first sends and resends
        self.resends = 0

    def body(self, i):
        return "out %s #%d" % (self.ids[i], i)

    def _send(self, i):
        self.conn.client.send_message(self.to, self.body(i), id=self.ids[i], receipt=True)
        self.sends += 1

    def run(self):
        t0 = time.monotonic()
        reconnections = self.conn.connections
        while not self.stopping():
            now = time.monotonic()
            with self.lock:
                for st in self.conn.new_stanzas():
                    if st.name != "message":
                        continue
                    if st.receipt_id in self.index:
                        self.receipts.add(st.receipt_id)
                        self.due.pop(st.receipt_id, None)
                    elif st.type == "error" and st.id in self.index:
                        self.errors += 1
                        c = st.error_condition
                        self.error_conditions[c] = self.error_conditions.get(c, 0) + 1
                        if st.id not in self.receipts:
                            self.due[st.id] = min(self.due.get(st.id, now + 99), now + self.error_resend)
                if self.conn.ensure():
                    if self.conn.connections != reconnections:
                        reconnections = self.conn.connections
                        for mid in self.ids[:self.sent]:
                            if mid not in self.receipts:
                                self.due[mid] = now
                    while self.sent < self.n and (now - t0) * self.rate >= self.sent:
                        self._send(self.sent)
                        self.due[self.ids[self.sent]] = now + self.resend_after
                        self.sent += 1
                    budget = self.max_resends
                    for mid, when in sorted(self.due.items(), key=lambda kv: kv[1]):
                        if when > now or budget <= 0:
                            break
                        self._send(self.index[mid])
                        self.resends += 1
                        budget -= 1
                        self.due[mid] = now + self.resend_after
            time.sleep(0.02)

    def missing_receipts(self):
        with self.lock:
            return [mid for mid in self.ids if mid not in self.receipts]


class Recorder(Worker):
    """An XMPP user that stays connected (reconnecting after a server
    restart) and records the bodies of messages from `frm`."""

    def __init__(self, tb, prosody, jid, password, frm):
        super().__init__("recorder-" + jid)
        self.conn = ReconnectingClient(tb, prosody, jid, password)
        self.frm = frm
        self.lock = threading.Lock()
        self.bodies = []
        self.errors = []

    def run(self):
        while not self.stopping():
            self.poll()
            time.sleep(0.02)
        self.poll()

    def poll(self):
        with self.lock:
            for st in self.conn.new_stanzas():
                if st.name != "message" or not st.frm or st.frm.split("/")[0] != self.frm:
                    continue
                if st.type == "error":
                    self.errors.append(st)
                elif st.body is not None:
                    self.bodies.append(st.body)
            self.conn.ensure()

    def snapshot(self):
        with self.lock:
            return list(self.bodies)


class InboundPoster(Worker):
    """A webhook sender: n POSTs (text `texts[i]`, a unique webhook-id each)
    at `rate` per second from `workers` threads; a request that fails or does
    not get 2xx is retried with the same id after retry_pause s."""

    def __init__(self, url, token, n, rate, tag, workers=4, retry_pause=0.2, timeout=5):
        super().__init__("poster")
        self.url = url
        self.token = token
        self.n = n
        self.rate = rate
        self.tag = tag
        self.workers = workers
        self.retry_pause = retry_pause
        self.timeout = timeout
        self.lock = threading.Lock()
        self.next = 0
        self.accepted = set()
        self.requests = 0
        self.failures = {}       # what a failed try saw -> count
        self.t0 = None

    def text(self, i):
        return "in %s-%04d" % (self.tag, i)

    def webhook_id(self, i):
        return "msg_%s_%04d" % (self.tag, i)

    def _take(self):
        with self.lock:
            if self.next >= self.n:
                return None
            i = self.next
            self.next += 1
            return i

    def _post_until_accepted(self, i):
        doc = {"text": self.text(i)}
        headers = {"webhook-id": self.webhook_id(i)}
        while not self.stopping():
            try:
                r = h.post_json(self.url, doc, self.token, headers, timeout=self.timeout)
                what = r.status
            except Exception as e:  # noqa: refused, reset, timed out: retry
                what = type(e).__name__
            with self.lock:
                self.requests += 1
                if what in (200, 201, 202, 204):
                    self.accepted.add(i)
                    return
                self.failures[what] = self.failures.get(what, 0) + 1
            self._stop.wait(self.retry_pause)

    def _worker(self):
        while not self.stopping():
            i = self._take()
            if i is None:
                return
            wait = self.t0 + i / self.rate - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            self._post_until_accepted(i)

    def run(self):
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self._worker, daemon=True, name="poster-%d" % k)
                   for k in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive() and not self.stopping():
                t.join(0.2)
        for t in threads:
            t.join(self.timeout + 2)

    def done(self):
        with self.lock:
            return len(self.accepted) == self.n
