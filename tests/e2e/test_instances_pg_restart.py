"""Two active ferry instances behind ejabberd (bare_source, component_number
2) on one PostgreSQL database, and the database server stopped and started
(by pid) while traffic flows both ways through both (issue 14): what the
users see. Every accepted message arrives (POSTs answered 2xx, XMPP
messages not bounced with an error), each sender's in order; POSTs during
the outage are answered 503 with Retry-After and accepted on a retry (the
same webhook-id, as a webhook sender retries); XMPP messages during the
outage are held and delivered later (or, past storage.hold_messages,
refused with resource-constraint); duplicates bounded and counted. Then
the same with one instance SIGKILLed just before the outage (while
messages it accepted wait) and started again after it.

The server here is the module's own (it is stopped on purpose), also under
--store=postgresql. Needs ejabberd and postgresql-15 (scripts/deps.sh)."""

import re
import signal
import threading
import time

import pytest

import harness as h
import pg_helpers
from harness import Reply
from instances_helpers import LEASE, PER_USER, USERS, Bed, check_orders, duplicated

OUTAGE = 3.0          # seconds the database server is away: longer than the lease (2 s)
SLACK = 2.0           # seconds: a commit or a delivery late on a loaded machine


@pytest.fixture(scope="module")
def pg():
    why = h.ejabberd_missing() or pg_helpers.missing()
    if why:
        pytest.fail("cannot run the several-instances tests: " + why, pytrace=False)
    server = pg_helpers.Postgres().start()
    yield server
    server.stop()


def unanswered(ferry, offset=0):
    """Stanzas a ferry sent to XMPP again because its link dropped before
    the server had answered the ping after them (as many as its log says)."""
    return sum(int(n) for n in re.findall(r"(\d+) stanza\(s\) unanswered when the link dropped",
                                          ferry.stderr(offset)))


def check_refusals(bed):
    """What the senders were told besides "accepted": POSTs only 503 with a
    Retry-After; XMPP messages only wait / resource-constraint."""
    refused = {s: n for s, n in bed.posts.statuses.items() if not 200 <= s < 300}
    assert set(refused) <= {503}, bed.posts.statuses
    assert all(ra.isdigit() for ra in bed.posts.retry_after), bed.posts.retry_after
    conditions = {c for b in bed.bounced().values() for c in b.values()}
    assert conditions <= {("wait", "resource-constraint")}, conditions
    return refused.get(503, 0), sum(len(b) for b in bed.bounced().values())


def check_duplicates_at(bed, t_down, resent):
    """Every message the receiver got twice was first delivered around the
    outage (T_DOWN: when it began); every POST an XMPP user got twice was
    accepted shortly before it, or is one of the RESENT (after a link drop).
    See test_database_restarted_under_two_instances."""
    first = bed.first_arrivals()
    late = [(m, round(first[m] - t_down, 2)) for m in duplicated(bed.delivered_http())
            if not -SLACK <= first[m] - t_down <= LEASE / 2 + SLACK]
    assert not late, "sent twice, yet not under way at the outage (s after it began): %s" % late
    acc = bed.posts.accepted_at
    print("\nduplicates, s from the outage: to the receiver (first delivery) %s; to XMPP (accepted) %s" % (
        [round(first[m] - t_down, 2) for m in duplicated(bed.delivered_http())],
        [round(acc[m] - t_down, 2) for m in duplicated(bed.delivered_xmpp())]))
    odd = [(m, round(acc[m] - t_down, 2)) for m in duplicated(bed.delivered_xmpp())
           if not -(LEASE + SLACK) <= acc[m] - t_down <= SLACK]
    assert len(odd) <= resent, "to XMPP twice, accepted long before the outage (s): %s" % odd


def outage(pg, after, when=None):
    """A thread: after AFTER seconds stops the database server (SIGINT, by
    pid), starts it again OUTAGE seconds later. WHEN (a list) gets the
    monotonic time of the stop."""
    def run():
        time.sleep(after)
        pg.halt()
        if when is not None:
            when.append(time.monotonic())
        time.sleep(OUTAGE)
        pg.launch()
    t = threading.Thread(target=run, name="pg-outage")
    t.start()
    return t


def test_database_restarted_under_two_instances(testbed, pg, ferry_bin):
    """Both ways through both instances, paced over about 8 s, the database
    away for 3 s in the middle. Duplicates only for messages under way at
    the outage. To the receiver: a delivered row is marked done in the next
    commit; a conversation's head goes only while its lease (2 s here,
    claimed in the database) has half a lease to run; the outage outlasts
    the lease, so once the database is back the other instance may take the
    conversation over before the marks of the rows delivered just before
    the outage or in the half lease after it are committed, and send those
    again: every duplicate was first delivered between shortly before the
    outage (SLACK: a commit on a loaded machine) and half a lease plus SLACK
    after it began. To XMPP the same with the XMPP outbox's lease (one
    instance sends, the other takes over once it runs out): what was sent
    and not yet acknowledged in the store at the outage, so accepted at most
    a lease (plus SLACK) before it; besides those, no more than the
    ferries' logs say were sent again after a link drop. (With the default
    lease of 30 s an outage this short takes over nothing.)"""
    bed = Bed(testbed, pg)
    a, b = bed.ferries
    offs = [f.stderr_offset() for f in bed.ferries]
    down = []
    sender = threading.Thread(target=bed.send_xmpp, kwargs={"pace": 0.08}, name="xmpp-senders")
    sender.start()
    pg_thread = outage(pg, 2.5, down)
    bed.post_all(lambda n: [bed.ferries[n % 2], bed.ferries[1 - n % 2]], pace=0.05)
    sender.join(60)
    pg_thread.join(60)
    assert down and not sender.is_alive() and not pg_thread.is_alive()
    time.sleep(1.0)                   # errors for the last messages, if any, arrive
    expected = bed.expected()
    bed.wait_all(120, expected)
    time.sleep(1.0)                   # late duplicates would show now
    dup_http, dup_xmpp = check_orders(bed, expected)
    n503, bounced = check_refusals(bed)
    assert n503 > 0, "no POST was refused while the database was away: %s" % bed.posts.statuses
    held = sum(len(re.findall(r"held message\(s\) stored", f.stderr(o))) for f, o in zip(bed.ferries, offs))
    resent = sum(unanswered(f, o) for f, o in zip(bed.ferries, offs))
    print("\nPOSTs: %s; XMPP messages bounced: %d; held then stored: %d time(s); duplicates: %d to "
          "the receiver, %d to XMPP (%d sent again after a link drop)" % (
              bed.posts.statuses, bounced, held, dup_http, dup_xmpp, resent))
    assert held > 0, "no XMPP message was held while the database was away"
    check_duplicates_at(bed, down[0], resent)
    for f in (a, b):
        assert f.running(), f.report()


def test_killed_instance_and_database_restart(testbed, pg, ferry_bin):
    """The receiver fails (503) while a backlog gathers through both
    instances; a is SIGKILLed with messages it accepted waiting, the
    receiver recovers, and the database is stopped and started while POSTs
    go on to b; b takes a's conversations over once the database is back
    and their leases have run out; a starts again and traffic flows through
    both. XMPP senders pause while a is away (ejabberd drops a dead slot's
    stanzas: outside ferry's reach). Duplicates to the receiver: only
    messages under way at the outage (see above); the kill adds none, since
    every POST under way then was answered 503. To XMPP:
    every POST was delivered and acknowledged before the kill, so only what
    a log says was sent again after a link drop."""
    failing = threading.Event()
    failing.set()

    def policy(req):
        return Reply(503, {"Retry-After": "0"}, b"busy") if failing.is_set() else None
    bed = Bed(testbed, pg, policy)
    a, b = bed.ferries
    offs = [f.stderr_offset() for f in bed.ferries]
    third = PER_USER // 3
    bed.send_xmpp(0, third)
    bed.post_all(lambda n: [bed.ferries[n % 2], bed.ferries[1 - n % 2]], 0, third)
    h.wait_until(lambda: bed.waiting(0) == USERS * third, 30, interval=0.2,
                 what="every XMPP message stored")
    h.wait_until(lambda: bed.waiting(1) == 0, 30, interval=0.2, what="every POST delivered to XMPP")
    held = int(pg.sql("SELECT count(*) FROM leases WHERE owner LIKE '%%:%d'" % a.http_port, db=bed.db))
    assert held > 0, "a held no conversation: nothing to take over"
    a.signal(signal.SIGKILL)
    assert a.wait_exit(5) == -signal.SIGKILL, a.report()
    killed_at = time.monotonic()
    failing.clear()
    down = []
    pg_thread = outage(pg, 0.5, down)
    bed.post_all(lambda n: b, third, 2 * third, pace=0.05)
    pg_thread.join(60)
    h.wait_until(lambda: bed.waiting(0) == 0, 60, interval=0.3, what="b delivering a's backlog")
    taken_over = time.monotonic() - killed_at
    a.start()
    a.wait_healthz(200, timeout=30)
    sender = threading.Thread(target=bed.send_xmpp, args=(third, PER_USER), kwargs={"pace": 0.02})
    sender.start()
    bed.post_all(lambda n: [bed.ferries[n % 2], bed.ferries[1 - n % 2]], 2 * third, PER_USER)
    sender.join(60)
    time.sleep(1.0)
    expected = bed.expected()
    bed.wait_all(120, expected)
    time.sleep(1.0)
    dup_http, dup_xmpp = check_orders(bed, expected)
    n503, bounced = check_refusals(bed)
    assert n503 > 0, "no POST was refused while the database was away: %s" % bed.posts.statuses
    resent = unanswered(b, offs[1]) + unanswered(a, offs[0])
    print("\na held %d lease(s) at the kill; its backlog delivered %.1f s after it; POSTs: %s; XMPP "
          "bounced: %d; duplicates: %d to the receiver, %d to XMPP (%d sent again after a link "
          "drop)" % (held, taken_over, bed.posts.statuses, bounced, dup_http, dup_xmpp, resent))
    check_duplicates_at(bed, down[0], resent)
    assert a.running() and b.running(), a.report() + b.report()
