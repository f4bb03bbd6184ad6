"""The store at start: a path ferry cannot write, a file that is not a
database, and a store written by a newer ferry each stop ferry at once with
a clear error naming the file, without touching the file; `ferry queue`
says the same. A fresh path gets a new store at the current schema version.

No XMPP server is needed: the store is opened before any link (the port in
the config has nobody listening; a ferry that went on would only retry)."""

import os
import signal
import sqlite3
import subprocess
import time

import pytest

import durable_helpers as d
import harness as h

DOMAIN = "hooks.localhost"


def config_for(tb, store_path):
    http_port = h.free_port()
    comp = d.webhook_component(DOMAIN, "s3cret-St0re", {
        "alerts": {"url": "http://127.0.0.1:9/x", "allow": ["localhost"], "token": "tok-St0re",
                   "deliver_to": ["alice@localhost"]}})
    text = h.ferry_config(h.free_port(), http_port, {"hooks": comp}, storage={"path": store_path})
    path = os.path.join(tb.subdir("cfg"), "gateway.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_ferry(config_path, binary, timeout=15):
    """ferry -c CONFIG, to completion; (CompletedProcess, seconds)."""
    t = time.monotonic()
    try:
        r = h.run_ferry_cli(["-c", config_path], timeout=timeout, binary=binary)
    except subprocess.TimeoutExpired:
        pytest.fail("ferry did not exit within %d s on a bad store" % timeout)
    return r, time.monotonic() - t


def assert_refused(tb, config_path, store_path, expect, what):
    """ferry and `ferry queue list` both exit non-zero, within a few seconds,
    with a message naming the file and matching one of EXPECT; no sanitizer
    report, no crash (a signal)."""
    binary = d.snapshot_binary(tb)
    for who in ("ferry", "ferry queue list"):
        if who == "ferry":
            r, took = run_ferry(config_path, binary)
        else:
            t = time.monotonic()
            try:
                r = d.queue(config_path, "list", timeout=15, binary=binary)
            except subprocess.TimeoutExpired:
                pytest.fail("ferry queue list did not exit within 15 s on a bad store")
            took = time.monotonic() - t
        out = r.stdout + r.stderr
        print("%s, %s: exit %s after %.2f s: %s" % (what, who, r.returncode, took, out.strip()[-400:]))
        assert r.returncode > 0, "%s: %s exited %s (want an error exit, not 0 or a signal):\n%s" % (
            what, who, r.returncode, out)
        assert took < 5, "%s: %s took %.1f s" % (what, who, took)
        assert store_path in out, "%s: %s does not name the file %s:\n%s" % (what, who, store_path, out)
        low = out.lower()
        assert any(e in low for e in expect), "%s: %s does not say %s:\n%s" % (what, who, " or ".join(expect), out)
        assert not h.sanitizer_reports(out), "%s: sanitizer report from %s:\n%s" % (what, who, out)


def newer_store(tb, name):
    """A store as a newer ferry leaves it (schema version 99, a table this
    ferry does not know), in a new folder; returns (its path, the open
    connection that wrote it)."""
    store = os.path.join(tb.subdir(name), "ferry.db")
    con = sqlite3.connect(store)
    con.execute("CREATE TABLE future (x)")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    return store, con


def test_store_under_missing_directory(testbed):
    tb = testbed
    store = os.path.join(tb.dir, "no-such-dir", "deeper", "ferry.db")
    cfg = config_for(tb, store)
    assert_refused(tb, cfg, store, ["cannot open", "unable to open"], "missing directory")
    assert not os.path.exists(os.path.dirname(store))


def test_store_path_is_a_directory(testbed):
    tb = testbed
    store = tb.subdir("a-directory")
    cfg = config_for(tb, store)
    assert_refused(tb, cfg, store, ["cannot open", "unable to open", "not a usable store", "not writable"],
                   "a directory as the store")


def test_store_read_only_file(testbed):
    """A store file ferry may not write. Root ignores permission bits, so the
    file is made immutable (chattr +i), which stops root too."""
    tb = testbed
    store = os.path.join(tb.subdir("ro"), "ferry.db")
    cfg = config_for(tb, store)
    r = d.queue(cfg, "list", binary=d.snapshot_binary(tb))   # a valid store first
    assert r.returncode == 0, r.stderr
    c = subprocess.run(["chattr", "+i", store], capture_output=True, text=True)
    if c.returncode != 0:
        pytest.skip("chattr +i is not supported here: %s" % c.stderr.strip())
    try:
        try:
            with open(store, "ab"):
                pass
            pytest.skip("an immutable file is still writable here")
        except OSError:
            pass
        assert_refused(tb, cfg, store, ["not writable", "read-only", "readonly", "cannot open"], "immutable file")
    finally:
        subprocess.run(["chattr", "-i", store], capture_output=True)


def test_corrupt_store(testbed):
    tb = testbed
    store = os.path.join(tb.subdir("corrupt"), "ferry.db")
    data = os.urandom(16384)
    with open(store, "wb") as f:
        f.write(data)
    cfg = config_for(tb, store)
    assert_refused(tb, cfg, store, ["not a usable store", "not a database", "not a ferry store"], "random bytes")
    with open(store, "rb") as f:
        assert f.read() == data, "ferry changed the corrupt file"


def test_store_from_newer_schema(testbed):
    tb = testbed
    store, con = newer_store(tb, "newer")
    con.close()
    cfg = config_for(tb, store)
    assert_refused(tb, cfg, store, ["newer"], "schema version 99")
    assert d.store_user_version(store) == 99, "ferry changed the newer store's version"
    con = sqlite3.connect(store)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()
    assert tables == {"future"}, "ferry wrote into a store from a newer version: %s" % tables


def test_newer_store_left_untouched(testbed):
    """A store ferry refuses (newer schema) is not modified: not even its
    journal mode (an older binary started by mistake during a rollback must
    leave the newer ferry's file as it was)."""
    tb = testbed
    store, con = newer_store(tb, "newer-untouched")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    with open(store, "rb") as f:
        before = f.read()
    cfg = config_for(tb, store)
    r, _ = run_ferry(cfg, d.snapshot_binary(tb))
    assert r.returncode > 0 and "newer" in r.stderr, r.stderr
    with open(store, "rb") as f:
        after = f.read()
    con = sqlite3.connect(store)
    try:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()
    changed = [i for i in range(min(len(before), len(after))) if before[i] != after[i]][:10]
    assert before == after, ("ferry refused the newer store but modified it: journal mode now %r, "
                             "header bytes changed at offsets %s" % (mode, changed))


SCHEMA_VERSION = 2  # src/store_sqlite.c


def test_fresh_store_created_at_current_version(testbed):
    """Control: a new path gets a store (WAL, the current schema version), and
    a second open migrates nothing."""
    tb = testbed
    store = os.path.join(tb.subdir("fresh"), "ferry.db")
    cfg = config_for(tb, store)
    for _ in range(2):
        r = d.queue(cfg, "list", binary=d.snapshot_binary(tb))
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert not h.sanitizer_reports(r.stderr), r.stderr
    assert d.store_user_version(store) == SCHEMA_VERSION
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def test_version_1_store_is_migrated_keeping_its_messages(testbed):
    """A store written by the first ferry (schema 1: messages and settings)
    is migrated at start: the archive table appears, the version moves on,
    and its pending message and settings are still there."""
    tb = testbed
    store = os.path.join(tb.subdir("v1"), "ferry.db")
    con = sqlite3.connect(store)
    con.executescript("""
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL,
          direction INTEGER NOT NULL, conversation TEXT NOT NULL, dedup TEXT,
          payload BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0,
          attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
          next_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, error TEXT);
        CREATE UNIQUE INDEX messages_dedup ON messages(component, direction, dedup)
          WHERE dedup IS NOT NULL;
        CREATE INDEX messages_state ON messages(component, direction, state, id);
        CREATE TABLE settings (component TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL,
          value TEXT NOT NULL, PRIMARY KEY (component, ns, key));
        INSERT INTO messages (component, direction, conversation, payload, created_ms, next_ms,
          updated_ms) VALUES ('hooks', 0, 'alerts alice@localhost', x'00', 1, 1, 1);
        INSERT INTO settings VALUES ('sms', 'user', 'alice@localhost', '+15550001111');
        PRAGMA user_version = 1;
    """)
    con.close()
    cfg = config_for(tb, store)
    r = d.queue(cfg, "list", binary=d.snapshot_binary(tb))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "alerts alice@localhost" in r.stdout, r.stdout
    assert d.store_user_version(store) == SCHEMA_VERSION
    con = sqlite3.connect(store)
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "history" in tables, tables
        assert con.execute("SELECT value FROM settings").fetchone()[0] == "+15550001111"
    finally:
        con.close()


def test_second_ferry_on_the_same_store_refused(testbed):
    """Two running ferries on one SQLite file would each send the other's
    waiting messages (twice, out of order): the second refuses to start,
    naming the file, and the first goes on. `ferry queue` still works beside
    the running one, and once the first is gone (even SIGKILLed) the store
    opens again."""
    tb = testbed
    store = os.path.join(tb.subdir("shared"), "ferry.db")
    first_cfg = config_for(tb, store)
    with open(first_cfg) as f:
        first = tb.ferry(f.read(), wait_up=False, name="first", binary=d.snapshot_binary(tb))
    h.wait_until(lambda: os.path.exists(store) and d.store_user_version(store) > 0, 10,
                 what="the first ferry's store")
    first.wait_log(r"cannot link|linked", timeout=10)

    second_cfg = config_for(tb, store)
    r, took = run_ferry(second_cfg, d.snapshot_binary(tb))
    out = r.stdout + r.stderr
    print("second ferry: exit %s after %.2f s: %s" % (r.returncode, took, out.strip()[-400:]))
    assert r.returncode > 0, "a second ferry on the same store exited %s:\n%s" % (r.returncode, out)
    assert took < 5, "the second ferry took %.1f s to refuse" % took
    assert store in out and "in use by another running ferry" in out, out
    assert not h.sanitizer_reports(out), out
    assert first.running(), "the first ferry stopped when the second was refused:\n%s" % first.report()

    q = d.queue(second_cfg, "list", binary=d.snapshot_binary(tb))
    assert q.returncode == 0, "ferry queue beside a running ferry: %s%s" % (q.stdout, q.stderr)

    first.signal(signal.SIGKILL)
    first.wait_exit(5)
    first.expect_exit = True
    with open(second_cfg) as f:
        again = tb.ferry(f.read(), wait_up=False, name="again", binary=d.snapshot_binary(tb))
    again.wait_log(r"cannot link|linked", timeout=10)
    time.sleep(0.5)
    assert again.running(), "ferry did not start on the store a SIGKILLed ferry held:\n%s" % again.report()
