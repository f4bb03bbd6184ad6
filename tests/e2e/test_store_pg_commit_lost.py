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


def test_messages_of_a_failed_commit_are_stored_again_with_the_window_full(testbed, own_pg):
    """Two users send more messages than the window holds while the
    endpoint refuses them (they wait), then a burst in which one COMMIT
    fails. The endpoint comes back: every message arrives exactly once, in
    the order each user sent them, and the senders get no error."""
    tb = testbed
    refusing = threading.Event()
    refusing.set()

    def policy(req):
        if refusing.is_set():
            return h.Reply(503, {"Retry-After": "1"})
        return None

    recv = tb.receiver(policy)
    prosody = tb.prosody(components={DOMAIN: SECRET},
                         users=[(u, "localhost", u + "pw") for u in SENDERS + ("bob",)])
    alerts = {"url": recv.url("/out"), "format": "json", "token": TOKEN,
              "deliver_to": ["bob@localhost"], "allow": ["localhost"]}
    comp = d.webhook_component(DOMAIN, SECRET, {"alerts": alerts}, max_attempts=100000,
                               retry_delay=0.5, retry_delay_max=1.0)
    db = own_pg.new_database()
    ferry = tb.linked_ferry(prosody, {"hooks": comp}, storage={"url": own_pg.url(db)})
    own_pg.sql(FAIL_ONE_COMMIT, db=db)
    clients = {u: tb.client("%s@localhost/sender" % u, u + "pw", prosody) for u in SENDERS}
    tag = h.new_id("c")
    sent = {u: [] for u in SENDERS}

    def send(k, boom_at=None):
        for i in range(k):
            for u in SENDERS:
                mid = "%s-%s-%05d" % (tag, u, len(sent[u]))
                text = "BOOM " + mid if (i == boom_at and u == SENDERS[0]) else mid
                clients[u].send_message(ALERTS, text, id=mid)
                sent[u].append(mid)

    def stored():
        return int(own_pg.sql("SELECT count(*) FROM messages WHERE direction = 0", db=db))

    off = ferry.stderr_offset()
    half = (WINDOW + 100) // 2
    for k in range(0, half, 50):
        send(min(50, half - k))
        time.sleep(0.05)
    h.wait_until(lambda: stored() == 2 * half, 60, interval=0.3,
                 what="%d messages stored, more than the window" % (2 * half))
    send(40, boom_at=20)       # batches of a few; the one with BOOM fails
    ferry.wait_log(r"commit failed; the batch is lost", offset=off, timeout=20)
    total = sum(len(v) for v in sent.values())
    refusing.clear()

    def arrived():
        return [i for i in (h.jbody(r).get("id") for r in recv.requests("/out")
                            if r.status == 200) if i and i.startswith(tag)]
    try:
        h.wait_until(lambda: len(set(arrived())) == total, 60, interval=0.5,
                     what="all %d messages" % total)
    except TimeoutError:
        got = set(arrived())
        missing = {u: [m for m in sent[u] if m not in got] for u in SENDERS}
        raise AssertionError("lost: %s" % {u: m for u, m in missing.items() if m})
    time.sleep(1.0)            # late duplicates would show now
    ids = arrived()
    dup = {m: c for m, c in collections.Counter(ids).items() if c > 1}
    assert not dup, "delivered more than once: %s" % dup
    for u in SENDERS:
        mine = [i for i in ids if i.startswith("%s-%s-" % (tag, u))]
        assert mine == sent[u], "%s's messages out of order: first difference at %d" % (
            u, next(k for k in range(len(mine)) if mine[k] != sent[u][k]))
    for u in SENDERS:
        errors = clients[u].stanzas(lambda s: s.type == "error")
        assert not errors, "%s got errors: %s" % (u, [(e.id, e.error_condition) for e in errors])
    ferry.wait_log(r"in a batch whose commit failed: held, to be stored again", offset=off)
