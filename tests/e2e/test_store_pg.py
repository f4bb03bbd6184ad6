"""The PostgreSQL store (storage.url, issue 14): what a user sees with a
database instead of an SQLite file. The same ferry both ways, across a
SIGKILL, with `ferry queue` on the database; the errors that stop it at
start (unreachable, wrong password, a schema from a newer ferry: left
untouched); and a connection the server drops under it.

One throwaway PostgreSQL for the module (pg_helpers.py), a database per test."""

import os
import signal
import time

import durable_helpers as d
import harness as h
import pg_helpers
from harness import Reply, jbody

DOMAIN = "hooks.localhost"
SECRET = "comp-secret-Pg41-zx"
TOKEN = "tok-pg-Hq52-lm"
ALERTS = "alerts@" + DOMAIN
INBOUND_PATH = "/hooks/hooks/alerts"

pytestmark = pg_helpers.NEEDS_POSTGRESQL
pg = pg_helpers.pg  # the module's server


def webhook(url, **policy):
    alerts = {"url": url, "format": "json", "token": TOKEN, "deliver_to": ["bob@localhost"],
              "allow": ["localhost"]}
    return d.webhook_component(DOMAIN, SECRET, {"alerts": alerts}, **policy)


def start_env(tb, pg, recv, storage=None, **policy):
    prosody = tb.prosody(components={DOMAIN: SECRET},
                         users=[("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw")])
    db = pg.new_database()
    storage = storage or {"url": pg.url(db)}
    ferry = tb.linked_ferry(prosody, {"hooks": webhook(recv.url("/out"), **policy)}, storage=storage)
    return prosody, ferry, db


def post_inbound(ferry, text):
    return h.post_json(ferry.url(INBOUND_PATH), {"text": text}, TOKEN)


def linked_with_bob(tb, pg):
    """start_env() and bob, once a first POST has reached him: (prosody, ferry, bob, db)."""
    prosody, ferry, db = start_env(tb, pg, tb.receiver())
    bob = tb.client("bob@localhost", "bobpw", prosody)
    assert post_inbound(ferry, "while up").status == 202
    bob.wait_message(lambda s: s.body == "while up", timeout=15)
    return prosody, ferry, bob, db


def post_until_accepted(ferry, text, timeout=20):
    """POSTs TEXT until a 202 (a write that failed with the connection gets a
    5xx: the sender retries); returns the statuses."""
    statuses = []

    def accepted():
        statuses.append(post_inbound(ferry, text).status)
        return statuses[-1] == 202
    h.wait_until(accepted, timeout, interval=0.2, what="a 202 for %r" % text)
    assert all(s in (202, 500, 503) for s in statuses), statuses
    return statuses


def start_refused(tb, pg, storage):
    """A ferry that must refuse to start: its exit code and log."""
    f = tb.ferry(h.ferry_config(h.free_port(), h.free_port(), {"hooks": webhook("http://127.0.0.1:1/")},
                                storage=storage), start=False)
    f.expect_exit = True
    f.start()
    rc = f.wait_exit(30)
    assert rc not in (None, 0), "ferry started against %r:\n%s" % (storage, f.report())
    return f.stderr()


# ------------------------------------------------------------------ both ways


def test_both_ways_and_across_sigkill(testbed, pg, ferry_bin):
    """Webhook -> XMPP and XMPP -> webhook through a PostgreSQL store (the URL
    read from url_file); what waits for a receiver that is down survives a
    SIGKILL, shows in `ferry queue list` and goes once ferry is back."""
    tb = testbed
    failing = [False]
    recv = tb.receiver(lambda req: Reply(503, {}, b"down") if failing[0] else Reply(200, {}, b"ok"))
    url_file = os.path.join(tb.subdir("secret"), "db-url")
    db = pg.new_database()
    with open(url_file, "w") as f:
        f.write(pg.url(db) + "\n")
    prosody, ferry, _ = start_env(tb, pg, recv, storage={"url_file": url_file},
                                  retry_delay=0.2, retry_delay_max=0.5, max_attempts=1000)
    alice = tb.client("alice@localhost", "alicepw", prosody)
    bob = tb.client("bob@localhost", "bobpw", prosody)

    tag = h.new_id("pg")
    for i in range(20):
        r = post_inbound(ferry, "%s in %d" % (tag, i))
        assert r.status == 202, r
    got = bob.wait_message(lambda s: (s.body or "").startswith(tag + " in "), timeout=20, count=20,
                           what="20 inbound messages")
    assert [s.body for s in got] == ["%s in %d" % (tag, i) for i in range(20)]

    ids = [alice.send_message(ALERTS, "%s out %d" % (tag, i)) for i in range(20)]
    reqs = recv.wait("/out", 20, timeout=20, pred=lambda r: jbody(r).get("id") in ids)
    assert sorted(jbody(r)["id"] for r in reqs) == sorted(ids)

    # The receiver fails; ten more wait in the database; ferry is killed.
    failing[0] = True
    later = [alice.send_message(ALERTS, "%s later %d" % (tag, i)) for i in range(10)]

    def waiting():
        rows = d.queue_list(ferry.config_path, binary=ferry_bin)
        return len([r for r in rows if r.direction == "to-network" and r.state == "pending"]) >= 10
    h.wait_until(waiting, 20, interval=0.3, what="10 pending rows in `ferry queue list`")
    ferry.signal(signal.SIGKILL)
    assert ferry.wait_exit(5) == -signal.SIGKILL
    rows = d.queue_list(ferry.config_path, binary=ferry_bin)
    assert len([r for r in rows if r.direction == "to-network" and r.state == "pending"]) == 10, rows

    failing[0] = False
    ferry.start()
    ferry.wait_healthz(200)
    reqs = recv.wait("/out", 10, timeout=30, pred=lambda r: jbody(r).get("id") in later and r.status == 200)
    assert set(jbody(r)["id"] for r in reqs) == set(later)
    h.wait_until(lambda: not [r for r in d.queue_list(ferry.config_path, binary=ferry_bin)
                              if r.state == "pending"], 20, interval=0.3, what="nothing pending")
    assert pg.sql("SELECT max(version) FROM ferry_schema", db=db) == "2"


def test_queue_retry_and_drop_on_postgresql(testbed, pg, ferry_bin):
    """Dead messages in the database: `ferry queue retry` (ferry stopped)
    sends one again when it starts, `drop` removes the other."""
    tb = testbed
    failing = [True]
    recv = tb.receiver(lambda req: Reply(500, {}, b"no") if failing[0] else Reply(200, {}, b"ok"))
    prosody, ferry, db = start_env(tb, pg, recv, max_attempts=1, retry_delay=0.1)
    alice = tb.client("alice@localhost", "alicepw", prosody)
    mids = [alice.send_message(ALERTS, "doomed %d" % i) for i in range(2)]

    def dead():
        return [r for r in d.queue_list(ferry.config_path, binary=ferry_bin) if r.state == "dead"]
    h.wait_until(lambda: len(dead()) == 2, 20, interval=0.3, what="2 dead rows")
    first, second = sorted(r.id for r in dead())
    failing[0] = False
    assert ferry.stop() == 0, ferry.report()
    r = d.queue(ferry.config_path, "drop", second, binary=ferry_bin)
    assert r.returncode == 0 and "dropped" in r.stdout, (r.stdout, r.stderr)
    r = d.queue(ferry.config_path, "retry", first, binary=ferry_bin)
    assert r.returncode == 0 and "pending again" in r.stdout, (r.stdout, r.stderr)
    r = d.queue(ferry.config_path, "drop", 999999, binary=ferry_bin)
    assert r.returncode == 1 and "no message 999999" in r.stderr, (r.stdout, r.stderr)
    ferry.start()
    recv.wait("/out", 1, timeout=20, pred=lambda q: jbody(q).get("id") == mids[0] and q.status == 200)
    h.wait_until(lambda: not d.queue_list(ferry.config_path, binary=ferry_bin), 20, interval=0.3,
                 what="an empty queue")
    assert pg.sql("SELECT count(*) FROM messages WHERE id = %d" % second, db=db) == "0"


# ------------------------------------------------------------------ refusing to start


def test_unreachable_database_is_refused(testbed, pg):
    port = h.free_port()   # nothing listens there
    log = start_refused(testbed, pg, {"url": "postgresql://ferry:pw-Zq7@127.0.0.1:%d/ferry" % port})
    assert "cannot connect to PostgreSQL" in log and "127.0.0.1:%d" % port in log, log
    assert "pw-Zq7" not in log


def test_wrong_password_is_refused(testbed, pg):
    db = pg.new_database(owner=pg_helpers.PW_ROLE)
    log = start_refused(testbed, pg, {"url": pg.url(db, pg_helpers.PW_ROLE, "wrong-Jx5")})
    assert "refused the credentials" in log and "password authentication failed" in log, log
    assert "wrong-Jx5" not in log
    # The right one works (the role and database are fine).
    port = h.free_port()
    f = testbed.ferry(h.ferry_config(h.free_port(), port, {"hooks": webhook("http://127.0.0.1:1/")},
                                     storage={"url": pg.url(db, pg_helpers.PW_ROLE, pg_helpers.PW_PASSWORD)}),
                      wait_up=False, http_port=port)
    f.wait_healthz(503)   # up, its store open (no XMPP server here: unhealthy)


def test_newer_schema_is_refused_and_left_untouched(testbed, pg):
    db = pg.new_database()
    pg.sql("CREATE TABLE ferry_schema (version integer NOT NULL); INSERT INTO ferry_schema VALUES (7)",
           db=db, user="ferry")
    log = start_refused(testbed, pg, {"url": pg.url(db)})
    assert "newer ferry" in log and "schema version 7" in log, log
    assert pg.sql("SELECT version FROM ferry_schema", db=db) == "7"
    assert pg.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db=db) == "1"


def test_path_and_url_together_is_a_config_error(tmp_path, ferry_bin):
    path = tmp_path / "gateway.toml"
    path.write_text(h.ferry_config(5347, h.free_port(), {"hooks": webhook("http://127.0.0.1:1/")},
                                   storage={"path": "x.db", "url": "postgresql://ferry@127.0.0.1/f"}))
    r = h.run_ferry_cli(["--check-config", "-c", str(path)], binary=ferry_bin)
    assert r.returncode != 0
    assert "%s:" % path in r.stderr and "storage.path" in r.stderr and "not both" in r.stderr, r.stderr


def test_malformed_url_is_a_config_error(tmp_path, ferry_bin):
    path = tmp_path / "gateway.toml"
    path.write_text(h.ferry_config(5347, h.free_port(), {"hooks": webhook("http://127.0.0.1:1/")},
                                   storage={"url": "postgresql://ferry@127.0.0.1:notaport/f?x"}))
    r = h.run_ferry_cli(["--check-config", "-c", str(path)], binary=ferry_bin)
    assert r.returncode != 0
    assert "storage.url" in r.stderr and "PostgreSQL" in r.stderr, r.stderr


# ------------------------------------------------------------------ a dropped connection


def test_dropped_connection_is_logged_and_reopened(testbed, pg):
    """The server ends ferry's session (pg_terminate_backend, as a database
    restart or failover would): ferry says so in its log, does not crash,
    connects again, and what is posted afterwards is delivered."""
    _, ferry, bob, db = linked_with_bob(testbed, pg)
    off = ferry.stderr_offset()
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'"
           " AND application_name = 'ferry'" % db)
    post_until_accepted(ferry, "after the drop")
    ferry.wait_log(r"lost the connection to PostgreSQL", offset=off)
    bob.wait_message(lambda s: s.body == "after the drop", timeout=15)
    assert ferry.running()


def test_database_down_and_back(testbed, ferry_bin):
    """The database server stops (its own throwaway one here): a POST
    meanwhile is refused at once with 503 and Retry-After (not after a long
    wait), an XMPP sender's message waits in ferry's memory (no error), ferry
    keeps running and says why in its log and on /healthz (503); once the
    server is back, POSTs are accepted and delivered again and the held
    message is delivered. (test_store_pg_down.py: the same under traffic.)"""
    own = pg_helpers.Postgres().start()
    try:
        recv = testbed.receiver()
        prosody, ferry, db = start_env(testbed, own, recv)
        bob = testbed.client("bob@localhost", "bobpw", prosody)
        assert post_inbound(ferry, "while up").status == 202
        bob.wait_message(lambda s: s.body == "while up", timeout=15)
        alice = testbed.client("alice@localhost", "alicepw", prosody)
        off = ferry.stderr_offset()
        own.halt()
        for i in range(5):
            t = time.monotonic()
            r = post_inbound(ferry, "while down %d" % i)
            assert r.status == 503 and r.headers.get("retry-after", "").isdigit(), (r, r.headers)
            assert time.monotonic() - t < 3, "a POST waited %.1f s" % (time.monotonic() - t)
        ferry.wait_log(r"PostgreSQL unreachable", offset=off)
        assert ferry.running()
        # An XMPP sender's message is held (no error), delivered once it is back.
        mid = alice.send_message(ALERTS, "to the webhook while down")

        def health_says_why():
            st, doc = ferry.healthz()
            return st == 503 and "PostgreSQL unreachable" in (doc or {}).get("store_error", "")
        h.wait_until(health_says_why, 15, interval=0.3, what="/healthz 503 saying the store is down")

        own.launch()
        post_until_accepted(ferry, "back again")
        ferry.wait_log(r"connected to PostgreSQL again", offset=off)
        bob.wait_message(lambda s: s.body == "back again", timeout=15)
        h.wait_until(lambda: any(h.jbody(r).get("id") == mid for r in recv.requests("/out")),
                     15, interval=0.1, what="the message held while the database was down")
        assert not alice.stanzas(lambda s: s.type == "error")
        st, doc = ferry.healthz()
        assert st == 200 and "store_error" not in doc, doc
    finally:
        own.stop()
