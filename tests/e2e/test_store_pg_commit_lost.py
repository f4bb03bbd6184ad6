"""A batch of writes whose COMMIT fails (issue 14: nothing accepted is lost).
ferry group-commits its writes to PostgreSQL: messages from XMPP users join
the open transaction, and a COMMIT that fails (the connection dropped just
then) takes every one of them back. Those are held in memory again and
stored once the store takes writes, before newer ones: each arrives once,
in its conversation's order, also when the outbox's window (1,024 messages
in memory) was full and the rest waited only in the store.

The COMMIT is made to fail at a known message, not at a lucky moment: a
deferred constraint trigger raises at the commit of the transaction holding
the first message whose text says BOOM (once: a sequence counts, and a
sequence is not rolled back)."""

import collections
import threading
import time

import pytest

import durable_helpers as d
import harness as h
import pg_helpers

DOMAIN = "hooks.localhost"
SECRET = "comp-secret-Cl48-wz"
TOKEN = "tok-commitlost-Qe71-pk"
ALERTS = "alerts@" + DOMAIN
WINDOW = 1024        # outbox_network.c
SENDERS = ("alice", "carol")

pytestmark = pytest.mark.skipif(pg_helpers.missing() is not None,
                                reason="no PostgreSQL: %s" % pg_helpers.missing())

FAIL_ONE_COMMIT = """
CREATE SEQUENCE boom_seen;
GRANT USAGE ON SEQUENCE boom_seen TO ferry;
CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF position(convert_to('BOOM', 'UTF8') in NEW.payload) > 0 AND nextval('boom_seen') = 1 THEN
    RAISE EXCEPTION 'this commit fails (test)';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON messages
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION boom();
"""


@pytest.fixture
def own_pg():
    server = pg_helpers.Postgres().start()
    yield server
    server.stop()


class Env:
    """Prosody, a webhook endpoint that refuses (503) until opened, ferry on
    a database of OWN_PG, and SENDERS signed in."""

    def __init__(self, tb, own_pg):
        self.pg = own_pg
        self.refusing = threading.Event()
        self.refusing.set()

        def policy(req):
            if self.refusing.is_set():
                return h.Reply(503, {"Retry-After": "1"})
            return None

        self.recv = tb.receiver(policy)
        prosody = tb.prosody(components={DOMAIN: SECRET},
                             users=[(u, "localhost", u + "pw") for u in SENDERS + ("bob",)])
        alerts = {"url": self.recv.url("/out"), "format": "json", "token": TOKEN,
                  "deliver_to": ["bob@localhost"], "allow": ["localhost"]}
        comp = d.webhook_component(DOMAIN, SECRET, {"alerts": alerts}, max_attempts=100000,
                                   retry_delay=0.5, retry_delay_max=1.0)
        self.db = own_pg.new_database()
        self.ferry = tb.linked_ferry(prosody, {"hooks": comp}, storage={"url": own_pg.url(self.db)})
        self.clients = {u: tb.client("%s@localhost/sender" % u, u + "pw", prosody) for u in SENDERS}
        self.tag = h.new_id("c")
        self.sent = {u: [] for u in SENDERS}

    def send(self, k, boom_at=None):
        """K messages from each sender, alternating; the first sender's
        BOOM_AT-th says BOOM."""
        for i in range(k):
            for u in SENDERS:
                mid = "%s-%s-%05d" % (self.tag, u, len(self.sent[u]))
                text = "BOOM " + mid if (i == boom_at and u == SENDERS[0]) else mid
                self.clients[u].send_message(ALERTS, text, id=mid)
                self.sent[u].append(mid)

    def stored(self):
        return int(self.pg.sql("SELECT count(*) FROM messages WHERE direction = 0", db=self.db))

    def fill_window(self):
        """More messages waiting than the outbox's window holds."""
        half = (WINDOW + 100) // 2
        for k in range(0, half, 50):
            self.send(min(50, half - k))
            time.sleep(0.05)
        h.wait_until(lambda: self.stored() == 2 * half, 60, interval=0.3,
                     what="%d messages stored, more than the window" % (2 * half))

    def arrived(self):
        return [i for i in (h.jbody(r).get("id") for r in self.recv.requests("/out")
                            if r.status == 200) if i and i.startswith(self.tag)]

    def open_and_check(self):
        """Opens the endpoint: every message arrives once, in each sender's
        order; no sender got an error."""
        total = sum(len(v) for v in self.sent.values())
        self.refusing.clear()
        try:
            h.wait_until(lambda: len(set(self.arrived())) == total, 60, interval=0.5,
                         what="all %d messages" % total)
        except TimeoutError:
            got = set(self.arrived())
            missing = {u: [m for m in self.sent[u] if m not in got] for u in SENDERS}
            raise AssertionError("lost: %s" % {u: m for u, m in missing.items() if m})
        time.sleep(1.0)            # late duplicates would show now
        ids = self.arrived()
        dup = {m: c for m, c in collections.Counter(ids).items() if c > 1}
        assert not dup, "delivered more than once: %s" % dup
        for u in SENDERS:
            mine = [i for i in ids if i.startswith("%s-%s-" % (self.tag, u))]
            assert mine == self.sent[u], "%s's messages out of order: first difference at %d" % (
                u, next(k for k in range(len(mine)) if mine[k] != self.sent[u][k]))
        for u in SENDERS:
            errors = self.clients[u].stanzas(lambda s: s.type == "error")
            assert not errors, "%s got errors: %s" % (u, [(e.id, e.error_condition) for e in errors])
        return total


def test_messages_of_a_failed_commit_are_stored_again_with_the_window_full(testbed, own_pg):
    """Two users send more messages than the window holds while the
    endpoint refuses them (they wait), then a burst in which one COMMIT
    fails. The endpoint comes back: every message arrives exactly once, in
    the order each user sent them, and the senders get no error."""
    env = Env(testbed, own_pg)
    own_pg.sql(FAIL_ONE_COMMIT, db=env.db)
    off = env.ferry.stderr_offset()
    env.fill_window()
    env.send(40, boom_at=20)   # batches of a few; the one with BOOM fails
    env.ferry.wait_log(r"commit failed; the batch is lost", offset=off, timeout=20)
    env.open_and_check()
    env.ferry.wait_log(r"in a batch whose commit failed: held, to be stored again", offset=off)


def test_connection_dropped_under_open_batches(testbed, own_pg):
    """The same with the connection dropped at an unknown moment: the
    server ends ferry's sessions (pg_terminate_backend) again and again
    while both users send, until a COMMIT failed (a drop between batches
    only makes ferry hold what comes until it is connected again)."""
    env = Env(testbed, own_pg)
    off = env.ferry.stderr_offset()
    env.fill_window()
    stop = threading.Event()

    def sending():
        while not stop.is_set() and len(env.sent[SENDERS[0]]) < 5000:
            env.send(1)
            time.sleep(0.002)
    sender = threading.Thread(target=sending, daemon=True)
    sender.start()
    try:
        for _ in range(60):
            time.sleep(0.3)
            own_pg.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                       " WHERE datname = '%s' AND pid <> pg_backend_pid()" % env.db)
            if "commit failed; the batch is lost" in env.ferry.stderr(off):
                break
    finally:
        stop.set()
        sender.join(timeout=10)
    assert "commit failed; the batch is lost" in env.ferry.stderr(off), \
        "no COMMIT failed in 60 dropped connections"
    total = env.open_and_check()
    print("\n%d messages, every one once and in order" % total)
