"""A throwaway PostgreSQL 15 for the tests (issue 14's PostgreSQL store):
initdb into a fresh folder owned by the postgres user (PostgreSQL refuses to
run as root), on a loopback port, fsync off; stopped by its pid and the
folder removed at the end. One server per test session is plenty: each test
takes its own database (new_database()).

Also a command line for ctest: `python3 pg_helpers.py run -- CMD...` runs
CMD with FERRY_TEST_PG_URL set to a fresh server's URL, then stops it."""

import atexit
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

BIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"
# A role with a password (for the wrong-credentials test); every other role is trusted.
PW_ROLE, PW_PASSWORD = "ferry_pw", "right-pw-Kq81"


def missing():
    """Why no PostgreSQL can be started here, or None."""
    if not os.path.exists(os.path.join(BIN, "postgres")):
        return "postgresql-15 is not installed (scripts/deps.sh)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    if os.geteuid() != 0:
        return "starting PostgreSQL as the postgres user needs root"
    return None


def _as_postgres():
    pw = pwd.getpwnam("postgres")
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


# For a test module that needs a server of its own: `pytestmark = NEEDS_POSTGRESQL` and
# `pg = pg_helpers.pg` (a fixture: one server for the module, a database per test).
NEEDS_POSTGRESQL = pytest.mark.skipif(missing() is not None, reason="no PostgreSQL: %s" % missing())


@pytest.fixture(scope="module")
def pg():
    server = Postgres().start()
    yield server
    server.stop()


class Postgres:
    """One server: start(), url(db), new_database(), stop()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-pg-")
        self.port = None
        self.proc = None
        self.n = 0

    def start(self, timeout=30):
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        subprocess.run([os.path.join(BIN, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       preexec_fn=_as_postgres, cwd=self.dir, timeout=60)
        from harness import free_port
        self.port = free_port()
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n"
                    "max_connections = 200\n" % (self.port, self.dir))
        with open(os.path.join(data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all %s 127.0.0.1/32 scram-sha-256\n"
                    "host all all 127.0.0.1/32 trust\n" % PW_ROLE)
        atexit.register(self.stop)
        self.launch(timeout)
        self.sql("CREATE ROLE ferry LOGIN")
        self.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PW_ROLE, PW_PASSWORD))
        return self

    def launch(self, timeout=30):
        """Starts the server on its folder and port; returns once it answers."""
        data = os.path.join(self.dir, "data")
        log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, "postgres"), "-D", data],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=_as_postgres, start_new_session=True, cwd=self.dir)
        log.close()
        end = time.monotonic() + timeout
        while subprocess.run([os.path.join(BIN, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(self.port)]).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError("PostgreSQL did not start: %s" % self.log_tail())
            time.sleep(0.1)

    def halt(self):
        """A fast stop (SIGINT) by pid, the folder kept: launch() starts it again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, "postgres.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def sql(self, statement, db="postgres", user="postgres"):
        """Runs one statement with psql; returns its output (unaligned, no headers)."""
        r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", user, "-d", db, "-c", statement],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("psql %r: %s" % (statement, r.stderr.strip()))
        return r.stdout.strip()

    def url(self, db, user="ferry", password=None):
        cred = user + (":" + password if password else "")
        return "postgresql://%s@127.0.0.1:%d/%s" % (cred, self.port, db)

    def new_database(self, owner="ferry"):
        """A new empty database owned by OWNER; returns its name."""
        self.n += 1
        name = "t%d_%d" % (os.getpid(), self.n)
        self.sql("CREATE DATABASE %s OWNER %s" % (name, owner))
        return name

    def stop(self):
        """halt(), and the folder removed."""
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- --store=postgresql

ACTIVE = None      # the server every ferry's store goes to (pytest --store=postgresql)
_DB_FOR = {}       # storage.path given by a test -> its database, so a restart finds it


def database_for(path):
    """The database standing in for the SQLite file PATH (a new one each time
    for None: ferry's default file in its own folder)."""
    if path is None or path not in _DB_FOR:
        db = ACTIVE.new_database()
        if path is None:
            return db
        _DB_FOR[path] = db
    return _DB_FOR[path]


def use_for_ferries(harness):
    """Makes every ferry config written through harness.ferry_config use a
    database of one throwaway server instead of an SQLite file (the same
    tests, once more on PostgreSQL). Configs that name a url already are
    left as they are."""
    global ACTIVE
    why = missing()
    if why:
        raise RuntimeError("--store=postgresql: no PostgreSQL here: %s" % why)
    ACTIVE = Postgres().start()
    plain = harness.ferry_config

    def ferry_config(*args, storage=None, **kw):
        storage = dict(storage or {})
        if "url" not in storage and "url_file" not in storage:
            storage["url"] = ACTIVE.url(database_for(storage.pop("path", None)))
        return plain(*args, storage=storage, **kw)

    harness.ferry_config = ferry_config


def rows_of(path):
    """(state, payload bytes, dedup) of every message in the database standing
    in for PATH: hex on the wire, so any payload survives psql."""
    out = ACTIVE.sql("SELECT state || ' ' || encode(payload, 'hex') || ' ' ||"
                     " encode(convert_to(coalesce(dedup, ''), 'UTF8'), 'hex') FROM messages",
                     db=database_for(path))
    rows = []
    for line in out.splitlines():
        parts = line.split(" ")
        rows.append((int(parts[0]), bytes.fromhex(parts[1]), bytes.fromhex(parts[2]).decode()))
    return rows


def main(argv):
    if len(argv) < 3 or argv[1] != "run" or "--" not in argv:
        print("usage: pg_helpers.py run -- CMD [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    why = missing()
    if why:
        print("pg_helpers: no PostgreSQL (%s): running without it" % why, file=sys.stderr)
        return subprocess.run(cmd).returncode
    pg = Postgres().start()
    try:
        db = pg.new_database()
        env = dict(os.environ, FERRY_TEST_PG_URL=pg.url(db))
        return subprocess.run(cmd, env=env, timeout=600).returncode
    finally:
        pg.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
