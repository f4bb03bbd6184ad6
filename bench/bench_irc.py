#!/usr/bin/env python3
"""bench_irc.py: ferry's IRC adapter side by side with biboumi 9.0, on the
same Prosody and the same ngircd, one run each.

    python3 bench/bench_irc.py [--users 1000] [--quick] [--json]

What runs (all on 127.0.0.1, ephemeral ports, one temp directory):
  - Prosody (tests/e2e/harness.py) with the component irc.localhost and the
    users u1..uN (internal_plain account files);
  - ngircd (tests/e2e/irc_helpers.py) named irc.localhost, without
    per-IP limits or penalty time;
  - an IRC user "ircbench" (raw IRC client) in #bench and #benchout: it
    sends the fan-out messages and reads what XMPP users say;
  - N raw XMPP c2s clients in this process (SASL PLAIN, bind, presence),
    multiplexed with selectors; they join #bench%irc.localhost@irc.localhost
    (biboumi's JID convention, which ferry follows) one join at a time and
    count what arrives by scanning bytes (no XML parsing);
  - one gateway at a time: ferry (a copy of build/ferry or FERRY_BIN), then
    biboumi (Debian's package; installed with apt-get when missing and run
    as root), each in the foreground with its own config and database.

Per gateway: CPU (utime+stime from /proc/PID/stat) and VmRSS of the gateway
process around each phase: joins (per join), RSS growth per user, CPU while
idle, IRC -> XMPP fan-out (per delivered stanza) with 50 and N users, history
off then on, and XMPP -> IRC (per message). Exit status: 0 every target met
and nothing lost, 1 a target missed or something lost, 2 the run failed.
"""

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
sys.path.insert(0, HERE)

import harness  # noqa: E402  (tests/e2e/harness.py: Prosody, Ferry, helpers)
import irc_helpers  # noqa: E402  (tests/e2e/irc_helpers.py: Ngircd, IrcClient)
import bench_webhook as bw  # noqa: E402  (raw c2s login, /proc helpers)

DOMAIN = "localhost"             # XMPP users' host
GW = "irc.localhost"             # the gateway's component domain
IRC = "irc.localhost"            # the ngircd's name, as written in JIDs
SECRET = "s3cret"
CHAN = "#bench"
CHAN_OUT = "#benchout"
NS_MUC = "http://jabber.org/protocol/muc"
MUC_USER = b"http://jabber.org/protocol/muc#user"   # one in each occupant presence
NS_COMMANDS = "http://jabber.org/protocol/commands"
CLK_TCK = os.sysconf("SC_CLK_TCK")
IRC_NICK = "ircbench"

# Targets (issue 6, "Benchmark"): ferry's value at most this fraction of biboumi's.
TARGETS = {
    "join_cpu_ms": 1 / 10,
    "rss_kib_per_user": 1 / 5,
    "fanout_us_per_stanza": 1 / 2,
    "xmpp_to_irc_us_per_msg": 1 / 2,
}
# "near zero" for ferry while idle: at most this share of one CPU
IDLE_NEAR_ZERO = 0.005


def log(msg):
    bw.log(msg, tag="bench-irc")


def room_jid(chan):
    return "%s%%%s@%s" % (chan, IRC, GW)


# ---------------------------------------------------------------- /proc


def cpu(pid):
    try:
        return harness.cpu_seconds(pid)
    except OSError:
        return None


def rss_kib(pid):
    return bw.status_kb(pid, "VmRSS")


def ctx_switches(pid):
    """Voluntary + involuntary context switches of every thread of pid (a
    wake-up count: a process that sleeps in epoll_wait and never wakes adds
    nothing)."""
    total = 0
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def io_chars(pid):
    """rchar + wchar of pid (/proc/PID/io): bytes it read and wrote through
    any file or socket. It moves while a gateway works, even when nothing
    reaches the XMPP side yet (biboumi writes its archive rows first and
    sends the stanzas in bursts)."""
    try:
        with open("/proc/%d/io" % pid) as f:
            v = dict(line.split(":", 1) for line in f)
        return int(v["rchar"]) + int(v["wchar"])
    except (OSError, KeyError, ValueError):
        return None


def raise_nofile():
    """RLIMIT_NOFILE soft limit up to the hard one (every child inherits
    it: Prosody, ngircd, ferry, biboumi). Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return want
    except (ValueError, OSError):
        return soft


# ---------------------------------------------------------------- XMPP swarm


class Conn:
    __slots__ = ("i", "user", "sock", "jid", "n110", "presences", "occupants", "bodies", "errors", "bytes",
                 "tail", "closed", "capture", "err_sample")

    def __init__(self, i, user, sock, jid):
        self.i, self.user, self.sock, self.jid = i, user, sock, jid
        self.n110 = self.presences = self.occupants = self.bodies = self.errors = self.bytes = 0
        self.tail = b""
        self.closed = False
        self.capture = None          # a bytearray while an iq answer is awaited
        self.err_sample = None


class Swarm:
    """N logged-in XMPP c2s connections read by one selector. Counters per
    connection: self-presences (status code 110), presences, occupant
    presences (those with a muc#user <x/>: not the server JID's presence,
    which a user gets once its IRC connection is up), <body> that
    start with the current marker, type='error' stanzas, bytes. Counting
    scans the bytes as they come (a tail keeps matches split between two
    reads)."""

    TAIL = 48

    def __init__(self, port):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.marker = b"<body>\x00"

    def login(self, creds, timeout):
        """Logs users in one at a time (bench_webhook.xmpp_login: PLAIN,
        bind), then sends <presence/>."""
        deadline = time.monotonic() + timeout
        for i, (user, pw) in enumerate(creds):
            if time.monotonic() > deadline:
                raise TimeoutError("XMPP logins: %d of %d within %.0f s" % (i, len(creds), timeout))
            sock, jid = bw.xmpp_login(self.port, user, pw)
            sock.sendall(b"<presence/>")
            c = Conn(i, user, sock, jid)
            self.conns.append(c)
            self.sel.register(sock, selectors.EVENT_READ, c)
            if (i + 1) % 250 == 0:
                self.pump(0)

    def set_marker(self, marker):
        self.marker = b"<body>" + marker.encode()
        for c in self.conns:
            c.bodies = 0
            c.tail = b""

    def _take(self, c, data):
        c.bytes += len(data)
        if c.capture is not None and len(c.capture) < (1 << 20):
            c.capture += data
        tail = c.tail
        buf = tail + data if tail else data
        m = self.marker
        if tail:
            c.n110 += (buf.count(b"code='110'") + buf.count(b'code="110"')
                       - tail.count(b"code='110'") - tail.count(b'code="110"'))
            c.presences += buf.count(b"<presence") - tail.count(b"<presence")
            c.occupants += buf.count(MUC_USER) - tail.count(MUC_USER)
            c.bodies += buf.count(m) - tail.count(m)
            ne = (buf.count(b"type='error'") + buf.count(b'type="error"')
                  - tail.count(b"type='error'") - tail.count(b'type="error"'))
        else:
            c.n110 += buf.count(b"code='110'") + buf.count(b'code="110"')
            c.presences += buf.count(b"<presence")
            c.occupants += buf.count(MUC_USER)
            c.bodies += buf.count(m)
            ne = buf.count(b"type='error'") + buf.count(b'type="error"')
        if ne > 0:
            c.errors += ne
            if c.err_sample is None:
                k = max(buf.find(b"type='error'"), buf.find(b'type="error"'))
                c.err_sample = buf[max(0, k - 300):k + 500].decode("utf-8", "replace")
        c.tail = buf[-self.TAIL:]

    def pump(self, timeout):
        """One select round: reads what is there (bounded by timeout)."""
        for key, _ in self.sel.select(timeout):
            c = key.data
            try:
                data = c.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                c.closed = True
                self.sel.unregister(c.sock)
                continue
            self._take(c, data)

    def run_until(self, pred, timeout, interval=0.05, progress=None, stall=None):
        """Pumps until pred() is true; returns whether it became true
        within timeout. With progress (a function returning a number) and
        stall (seconds), also gives up once progress() has not changed for
        stall seconds (something was lost: no use waiting for the rest)."""
        now = time.monotonic()
        deadline = now + timeout
        last, last_change = (progress(), now) if progress else (None, now)
        while True:
            if pred():
                return True
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return bool(pred())
            if progress is not None:
                v = progress()
                if v != last:
                    last, last_change = v, now
                elif now - last_change > stall:
                    return bool(pred())
            self.pump(min(interval, remaining))

    def idle(self, seconds):
        """Keeps reading for seconds (so that nothing waits on us)."""
        end = time.monotonic() + seconds
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self.pump(min(0.2, remaining))

    def send(self, c, data):
        c.sock.sendall(data)

    def join(self, indices, room, window, timeout_each, label=""):
        """Each conn in indices joins room (nick = its user), with at most
        window joins under way; a join is done at its self-presence (110).
        Returns {"seconds", "failed": [(user, why)]}. Bounded: a join gets
        timeout_each seconds from when it was sent."""
        pending = list(indices)[::-1]
        under_way = {}            # conn -> (n110 before, errors before, sent at)
        failed = []
        t0 = time.monotonic()
        done = 0
        last_log = t0
        while pending or under_way:
            while pending and len(under_way) < window:
                c = self.conns[pending.pop()]
                if c.closed:
                    failed.append((c.user, "XMPP connection closed"))
                    continue
                under_way[c] = (c.n110, c.errors, time.monotonic())
                self.send(c, ("<presence to='%s/%s'><x xmlns='%s'><history maxstanzas='0'/></x>"
                              "</presence>" % (room, c.user, NS_MUC)).encode())
            self.pump(0.05)
            now = time.monotonic()
            for c, (n0, e0, ts) in list(under_way.items()):
                if c.n110 > n0:
                    del under_way[c]
                    done += 1
                elif c.errors > e0:
                    del under_way[c]
                    failed.append((c.user, "error: %s" % c.err_sample))
                elif c.closed:
                    del under_way[c]
                    failed.append((c.user, "XMPP connection closed"))
                elif now - ts > timeout_each:
                    del under_way[c]
                    failed.append((c.user, "no self-presence within %.0f s" % timeout_each))
            if failed and len(failed) >= 5:
                break
            if now - last_log > 15:
                last_log = now
                log("  %sjoined %d, %.0f s" % (label, done, now - t0))
        return {"seconds": time.monotonic() - t0, "joined": done, "failed": failed}

    def iq_exchange(self, indices, make_first, make_second, window, timeout):
        """Two-step iq exchanges (an ad-hoc command: execute, then submit
        the form with its sessionid), window conns at a time. make_first(c)
        -> (stanza, id); make_second(c, answer_text) -> (stanza, id) or
        None. Returns (completed, [(user, why)])."""
        pending = list(indices)[::-1]
        state = {}
        failed = []
        completed = 0
        deadline = time.monotonic() + timeout
        while (pending or state) and time.monotonic() < deadline:
            while pending and len(state) < window:
                c = self.conns[pending.pop()]
                stanza, sid = make_first(c)
                c.capture = bytearray()
                state[c] = (1, sid)
                self.send(c, stanza.encode())
            self.pump(0.05)
            for c, (step, sid) in list(state.items()):
                text = bytes(c.capture).decode("utf-8", "replace")
                m = re.search(r"<iq[^>]*id=['\"]%s['\"][^>]*?(/>|>.*?</iq>)" % re.escape(sid), text, re.S)
                if not m:
                    continue
                answer = m.group(0)
                if "type='error'" in answer or 'type="error"' in answer:
                    failed.append((c.user, answer[:400]))
                    c.capture = None
                    del state[c]
                    continue
                if step == 1:
                    nxt = make_second(c, answer)
                    if nxt is None:
                        failed.append((c.user, "unexpected answer: %s" % answer[:400]))
                        c.capture = None
                        del state[c]
                        continue
                    c.capture = bytearray()
                    state[c] = (2, nxt[1])
                    self.send(c, nxt[0].encode())
                else:
                    completed += 1
                    c.capture = None
                    del state[c]
        for c in state:
            failed.append((c.user, "no answer within %.0f s" % timeout))
            c.capture = None
        return completed, failed

    def close(self):
        for c in self.conns:
            try:
                c.sock.sendall(b"</stream:stream>")
            except OSError:
                pass
        t_end = time.monotonic() + 2
        while time.monotonic() < t_end and any(not c.closed for c in self.conns):
            self.pump(0.1)
        for c in self.conns:
            try:
                if not c.closed:
                    self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            try:
                c.sock.close()
            except OSError:
                pass
        self.conns = []
        self.sel.close()


# ---------------------------------------------------------------- IRC side


def irc_send_lines(client, lines, chunk=100):
    """Writes lines (str) to the IRC client's socket in chunks of `chunk`
    lines (the client's send lock held; no line holds CR or LF)."""
    for k in range(0, len(lines), chunk):
        data = "".join(l + "\r\n" for l in lines[k:k + chunk]).encode()
        with client._send_lock:
            client.sock.settimeout(30)
            try:
                client.sock.sendall(data)
            finally:
                client.sock.settimeout(0.2)


def channel_nicks(client, chan):
    return [irc_helpers.strip_nick_prefix(n) for n in client.names(chan)]


def wait_channel_empty(client, timeout=60):
    """Until only ircbench is left in the bench channels (the previous
    gateway's IRC users gone); bounded."""
    def only_us():
        return all(channel_nicks(client, ch) == [IRC_NICK] for ch in (CHAN, CHAN_OUT))
    harness.wait_until(only_us, timeout, interval=0.5, what="%s and %s to be empty of gateway users" % (
        CHAN, CHAN_OUT))


# ---------------------------------------------------------------- gateways


def ferry_component(ngircd_port, history):
    server = {"host": "127.0.0.1", "port": ngircd_port, "tls": False, "realname": "ferry user",
              # flood control off for a benchmark (biboumi: throttle_limit -1)
              "throttle_burst": 1000000, "throttle_rate": 1000000}
    return {"adapter": "irc", "domain": GW, "secret": SECRET, "allow": [DOMAIN],
            "history": bool(history), "servers": {IRC: server}}


class Gateway:
    """What both gateways share: self.proc, the gateway's process once
    started."""

    proc = None

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.running()

    @staticmethod
    def count_rows(path, table):
        """Rows in TABLE of the gateway's SQLite database (read-only, while
        it runs); None when it cannot be read."""
        try:
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
            try:
                return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            return None


class FerryGateway(Gateway):
    name = "ferry"

    def __init__(self, workdir, binary, prosody, ngircd, log_level):
        self.workdir, self.binary = workdir, binary
        self.prosody, self.ngircd, self.log_level = prosody, ngircd, log_level
        self.proc = None
        self.procs = []          # every ferry started, for the log summary
        self.n = 0

    def start(self, history):
        self.n += 1
        d = os.path.join(self.workdir, "ferry-%d-%s" % (self.n, "history" if history else "nohistory"))
        os.makedirs(d, exist_ok=True)
        port = harness.free_port()
        cfg = harness.ferry_config(self.prosody.component_port, port,
                                   {"irc": ferry_component(self.ngircd.port, history)},
                                   log={"level": self.log_level},
                                   storage={"path": os.path.join(d, "ferry.db")})
        self.proc = harness.Ferry(d, cfg, http_port=port, binary=self.binary)
        self.procs.append(self.proc)
        self.proc.start()
        self.proc.wait_healthz(200, timeout=30)

        def linked():
            try:
                _, samples, _, _ = self.proc.metrics()
            except OSError:
                return False
            return harness.metric_values(samples, "ferry_link_up", component="irc") == [1]
        harness.wait_until(linked, 30, interval=0.1, what="ferry's link to Prosody")
        self.history = history
        return self

    def set_history(self, swarm, indices, on):
        return None   # ferry: a config setting; the run restarts ferry instead

    def history_rows(self):
        return self.count_rows(os.path.join(self.proc.dir, "ferry.db"), "history")

    def log_summary(self):
        """Of every ferry of the run (the history-on one replaces the first:
        a warning of the first once went unseen)."""
        if not self.procs:
            return None
        return bw.ferry_log_summary("".join(p.stderr() for p in self.procs))

    LINK_COUNTERS = ("ferry_link_reconnects_total", "ferry_link_dropped_total",
                     "ferry_link_lost_bytes_total")

    def link_counters(self):
        """ferry's /metrics counters that say a stanza may have been lost on
        its XMPP link: {name: value} (a name missing from an older binary is
        left out)."""
        try:
            _, samples, _, _ = self.proc.metrics()
        except OSError:
            return {}
        out = {}
        for name in self.LINK_COUNTERS:
            v = harness.metric_values(samples, name, component="irc")
            if v:
                out[name] = v[0]
        return out

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


class Biboumi(harness.ServerProcess):
    """biboumi CONFIG in the foreground (it does not daemonize), its output
    in a file; ready once it logs "Authenticated with the XMPP server"."""

    kind = "biboumi"

    def __init__(self, workdir, component_port, log_level):
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.binary = biboumi_binary()
        self.config_path = os.path.join(self.dir, "biboumi.cfg")
        self.log_path = os.path.join(self.dir, "biboumi.log")
        self.db_path = os.path.join(self.dir, "biboumi.sqlite")
        self.policy_dir = os.path.join(self.dir, "policy")   # empty: Botan's defaults
        os.makedirs(self.policy_dir, exist_ok=True)
        self.proc = None
        with open(self.config_path, "w") as f:
            f.write("\n".join([
                "hostname=%s" % GW,
                "password=%s" % SECRET,
                "xmpp_server_ip=127.0.0.1",
                "port=%d" % component_port,
                "db_name=%s" % self.db_path,
                "log_file=",                      # stdout, into log_path
                "log_level=%d" % log_level,
                "identd_port=0",                  # no identd listener (it binds port 113)
                "policy_directory=%s" % self.policy_dir,
                "realname_customization=true",
                "realname_from_jid=false",
                "persistent_by_default=false",
                "",
            ]))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=30):
        offset = self.log_offset()
        self._spawn([self.binary, self.config_path], self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise self._exited_during_start(self.log_text(offset))
            return "Authenticated with the XMPP server" in self.log_text(offset)
        return self._wait_ready(ready, timeout, 0.05, "biboumi readiness")


def biboumi_binary():
    return shutil.which("biboumi") or "/usr/bin/biboumi"


def ensure_biboumi(allow_install):
    """None when biboumi can run, else why not (text). Installs Debian's
    package with apt-get when missing, if allowed and root."""
    if os.path.exists(biboumi_binary()):
        return None
    if not allow_install:
        return "biboumi is not installed (apt-get install biboumi), and --no-install was given"
    if os.geteuid() != 0:
        return "biboumi is not installed and this is not root: apt-get install biboumi"
    log("biboumi is not installed (scripts/deps.sh does not install it): apt-get install -y biboumi")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "biboumi"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
                           env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "apt-get install biboumi failed: %s" % e
    if r.returncode != 0 or not os.path.exists(biboumi_binary()):
        return "apt-get install biboumi failed (exit %s): %s" % (
            r.returncode, harness.tail_text(r.stdout + r.stderr, 15))
    return None


def biboumi_version():
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "biboumi"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


class BiboumiGateway(Gateway):
    """biboumi with its per-user settings written into its SQLite database
    (the place its ad-hoc commands write them): for every bench user, the
    IRC server irc.localhost is at 127.0.0.1 on ngircd's port without TLS
    (biboumi's defaults are ports 6667, then TLS 6697/6670), throttle_limit
    -1 (no flood control, as for ferry here), record_history off. History is
    switched per user with the ad-hoc command "configure" on the gateway JID,
    which also updates the live bridge (biboumi reads record_history when a
    user's bridge is created)."""

    name = "biboumi"

    def __init__(self, workdir, prosody, ngircd, log_level):
        self.workdir, self.prosody, self.ngircd = workdir, prosody, ngircd
        self.log_level = log_level
        self.proc = None

    def start(self, history, users):
        d = os.path.join(self.workdir, "biboumi")
        self.proc = Biboumi(d, self.prosody.component_port, self.log_level)
        self.proc.start()
        self.seed(users, history)
        self.history = history
        return self

    def seed(self, users, history):
        # the tables exist once biboumi has opened its database (at start)
        db = sqlite3.connect(self.proc.db_path, timeout=10)
        try:
            with db:
                for u in users:
                    owner = "%s@%s" % (u, DOMAIN)
                    db.execute(
                        "INSERT INTO ircserveroptions_ (owner_, server_, pass_, tlsports_, ports_, "
                        "username_, realname_, verifycert_, trustedfingerprint_, encodingout_, "
                        "encodingin_, maxhistorylength_, address_, nick_, saslpassword_, "
                        "throttlelimit_) VALUES (?, ?, '', '', ?, '', '', 1, '', '', '', 20, "
                        "'127.0.0.1', '', '', -1)", (owner, IRC, str(self.ngircd.port)))
                    db.execute("INSERT INTO globaloptions_ (owner_, maxhistorylength_, recordhistory_, "
                               "persistent_) VALUES (?, 20, ?, 0)", (owner, 1 if history else 0))
        finally:
            db.close()

    def set_history(self, swarm, indices, on):
        """Ad-hoc "configure" on the gateway JID for each user: record_history
        on or off. Returns (done, failures)."""
        value = "true" if on else "false"

        def first(c):
            sid = "hc%da%d" % (c.i, int(on))
            return ("<iq type='set' to='%s' id='%s'><command xmlns='%s' node='configure' "
                    "action='execute'/></iq>" % (GW, sid, NS_COMMANDS), sid)

        def second(c, answer):
            m = re.search(r"sessionid=['\"]([^'\"]+)['\"]", answer)
            if not m:
                return None
            sid = "hc%db%d" % (c.i, int(on))
            return ("<iq type='set' to='%s' id='%s'><command xmlns='%s' node='configure' "
                    "sessionid='%s' action='complete'><x xmlns='jabber:x:data' type='submit'>"
                    "<field var='max_history_length'><value>20</value></field>"
                    "<field var='record_history'><value>%s</value></field>"
                    "<field var='persistent'><value>false</value></field>"
                    "</x></command></iq>" % (GW, sid, NS_COMMANDS, m.group(1), value), sid)

        return swarm.iq_exchange(indices, first, second, window=20, timeout=120)

    def history_rows(self):
        return self.count_rows(self.proc.db_path, "muclogline_")

    def log_summary(self):
        if not self.proc:
            return None
        lines = self.proc.log_text().splitlines()
        warn = [l for l in lines if l.startswith(("[WARNING]", "[ERROR]"))]
        return {"lines": len(lines), "warn_or_error": len(warn), "warn_samples": warn[:5]}

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


# ---------------------------------------------------------------- phases


class Meter:
    """CPU of the gateway and of Prosody over a phase."""

    def __init__(self, gw_pid, prosody_pid):
        self.g, self.p = gw_pid, prosody_pid
        self.g0, self.p0, self.t0 = cpu(gw_pid), cpu(prosody_pid), time.monotonic()
        self.m0 = bw.machine_busy_seconds()

    def stop(self):
        self.g1, self.p1, self.t1 = cpu(self.g), cpu(self.p), time.monotonic()
        self.m1 = bw.machine_busy_seconds()
        return self

    @property
    def gw(self):
        return None if self.g0 is None or self.g1 is None else self.g1 - self.g0

    @property
    def prosody(self):
        return self.p1 - self.p0

    @property
    def wall(self):
        return self.t1 - self.t0

    def summary(self):
        return {"gateway_cpu_s": r3(self.gw), "prosody_cpu_s": r3(self.prosody),
                "wall_s": r3(self.wall), "machine_busy_cpus": r3((self.m1 - self.m0) / self.wall)
                if self.wall > 0 else None}


def r3(v):
    return None if v is None else round(v, 3)


def joined_check(gw, what):
    if not gw.running():
        raise RuntimeError("%s exited during %s" % (gw.name, what))


class Perf:
    """perf record of the gateway around a phase when --perf is given."""

    def __init__(self, args, gw, what):
        self.path = "%s-%s-%s.data" % (os.path.abspath(args.perf), gw.name, what) if args.perf else None
        self.proc = bw.start_perf(self.path, gw.pid) if self.path else None

    def stop(self):
        """SIGINT (perf writes its file then), bounded, then by pid."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                harness.stop_process(self.proc)
        log("perf profile: %s (perf report -i %s --no-children --sort dso,symbol)" % (
            self.path, self.path))
        self.proc = None


def phase_join(swarm, gw, prosody, indices, args, label):
    """The users of indices join #bench one after the other (or
    --join-window at a time). The phase ends once every occupant presence
    that the joins cause has arrived: the k-th bridged user to join gets
    k + 1 (ircbench, the k - 1 before it, itself) and the k - 1 before it
    get one each, 2k in all (bounded wait: what has not come within 30 s
    after the last self-presence is reported as missing). Other presences
    (the server JID's, one per user whose IRC connection came up: ferry
    sends it, biboumi does not) are counted apart: counted with the
    occupants, they once ended the wait before the last occupants came."""
    indices = list(indices)
    swarm.idle(0.2)
    p0 = sum(c.presences for c in swarm.conns)
    o0 = sum(c.occupants for c in swarm.conns)
    expected = sum(2 * (k + 1) for k in indices)
    m = Meter(gw.pid, prosody.proc.pid)
    res = swarm.join(indices, room_jid(CHAN), args.join_window, args.join_timeout, label=label)
    t_self = time.monotonic()
    swarm.run_until(lambda: sum(c.occupants for c in swarm.conns) - o0 >= expected, 30)
    m.stop()
    joined_check(gw, "joins")
    got = sum(c.occupants for c in swarm.conns) - o0
    out = m.summary()
    out.update({"users": len(indices), "joined": res["joined"], "failed": res["failed"][:5],
                "last_self_presence_s": r3(t_self - m.t0),
                "presences_expected": expected, "presences_delivered": got,
                "other_presences": sum(c.presences for c in swarm.conns) - p0 - got})
    if res["failed"]:
        raise RuntimeError("%s: %d join(s) failed, first: %s" % (gw.name, len(res["failed"]),
                                                                res["failed"][:3]))
    return out


def phase_fanout(swarm, gw, prosody, ircc, n_users, count, args, tag):
    """ircbench sends count PRIVMSGs to #bench; every one of the first
    n_users XMPP users (all of them in the room) must get each one."""
    marker = "F%s-" % tag
    swarm.set_marker(marker)
    pad = "x" * max(0, args.body_size - len(marker) - 8)
    lines = ["PRIVMSG %s :%s%d %s" % (CHAN, marker, i, pad) for i in range(count)]
    conns = swarm.conns[:n_users]
    expected = count * n_users
    rows0 = gw.history_rows()
    link0 = gw.link_counters() if hasattr(gw, "link_counters") else {}
    m = Meter(gw.pid, prosody.proc.pid)
    irc_send_lines(ircc, lines)

    def arrived():
        return sum(min(c.bodies, count) for c in conns)
    ok = swarm.run_until(lambda: arrived() >= expected, args.timeout,
                         progress=lambda: (arrived(), io_chars(gw.pid)), stall=args.stall)
    m.stop()
    got = arrived()
    swarm.idle(0.3)          # duplicates and late ones show now
    joined_check(gw, "fan-out")
    # Only now (everything arrived, or the gateway has been idle for
    # --stall seconds): a reader would make a write of biboumi's fail
    # (it sets no busy timeout).
    rows1 = gw.history_rows() if rows0 is not None else None
    link1 = gw.link_counters() if link0 else {}
    out = m.summary()
    # what the gateway's own counters say it lost or reconnected meanwhile
    out["link"] = {k: link1[k] - link0[k] for k in link0 if k in link1 and link1[k] != link0[k]}
    out.update({
        "users": n_users, "messages": count, "expected_stanzas": expected, "delivered": got,
        "lost": expected - got, "complete": ok and got == expected,
        "duplicates": sum(max(0, c.bodies - count) for c in conns),
        "users_short": sum(1 for c in conns if c.bodies < count),
        "gateway_us_per_stanza": r3(m.gw / got * 1e6) if got and m.gw is not None else None,
        "prosody_us_per_stanza": r3(m.prosody / got * 1e6) if got else None,
        "stanzas_per_s": round(got / m.wall) if m.wall > 0 else None,
        "history_rows_added": (rows1 - rows0) if rows0 is not None and rows1 is not None else None,
    })
    if not out["complete"]:
        short = [c for c in conns if c.bodies < count]
        out["short_sample"] = [(c.user, c.bodies) for c in short[:10]]
        log("  fan-out %s: only %d of %d stanzas (%d user(s) short, e.g. %s); gave up after %.1f s"
            % (tag, got, expected, len(short), out["short_sample"][:3], m.wall))
    return out


def phase_xmpp_to_irc(swarm, gw, prosody, ircc, count, args):
    """u1 (alone with ircbench in #benchout) sends count groupchat messages;
    ircbench must read them all, and u1 gets its reflections."""
    c = swarm.conns[0]
    res = swarm.join([0], room_jid(CHAN_OUT), 1, args.join_timeout)
    if res["failed"]:
        raise RuntimeError("%s: u1 could not join %s: %s" % (gw.name, CHAN_OUT, res["failed"]))
    marker = "XO-"
    swarm.set_marker(marker)
    pad = "x" * max(0, args.body_size - len(marker) - 8)
    to = room_jid(CHAN_OUT)
    stanzas = [("<message to='%s' type='groupchat' id='xo%d'><body>%s%d %s</body></message>"
                % (to, i, marker, i, pad)).encode() for i in range(count)]
    mark = ircc.mark()

    def irc_count():
        return len(ircc.lines(lambda l: l.command == "PRIVMSG" and l.nick == c.user and l.params
                              and l.params[0].lower() == CHAN_OUT and l.trailing
                              and l.trailing.startswith(marker), since=mark))
    state = {"n": 0, "t": 0.0}

    def done():
        now = time.monotonic()
        if now - state["t"] > 0.1:
            state["n"], state["t"] = irc_count(), now
        return state["n"] >= count and c.bodies >= count
    m = Meter(gw.pid, prosody.proc.pid)
    for k in range(0, count, 500):
        swarm.send(c, b"".join(stanzas[k:k + 500]))
        swarm.pump(0)
    ok = swarm.run_until(done, args.timeout, progress=lambda: (state["n"], c.bodies, io_chars(gw.pid)),
                         stall=args.stall)
    m.stop()
    n_irc = irc_count()
    joined_check(gw, "XMPP -> IRC")
    out = m.summary()
    out.update({"messages": count, "irc_received": n_irc, "lost": count - n_irc,
                "reflections": c.bodies, "complete": ok,
                "gateway_us_per_msg": r3(m.gw / n_irc * 1e6) if n_irc and m.gw is not None else None,
                "prosody_us_per_msg": r3(m.prosody / n_irc * 1e6) if n_irc else None,
                "xmpp_errors": c.errors})
    return out


def phase_idle(swarm, gw, prosody, seconds):
    cs0 = ctx_switches(gw.pid)
    m = Meter(gw.pid, prosody.proc.pid)
    swarm.idle(seconds)
    m.stop()
    cs1 = ctx_switches(gw.pid)
    out = m.summary()
    out.update({"seconds": seconds,
                "gateway_cpu_share": r3(m.gw / m.wall) if m.gw is not None else None,
                "gateway_wakeups": (cs1 - cs0) if cs0 is not None and cs1 is not None else None})
    return out


def settle(swarm, seconds):
    swarm.idle(seconds)


# ---------------------------------------------------------------- one gateway


def run_gateway(kind, args, env):
    """Runs every phase against one gateway; returns its result dict (with
    "error" set when a phase failed: what was measured before stays)."""
    prosody, ngircd, ircc = env["prosody"], env["ngircd"], env["irc"]
    n, small = args.users, min(args.small, args.users)
    users = ["u%d" % (k + 1) for k in range(n)]
    res = {"gateway": kind, "users": n, "small": small, "phases": {}}
    ph = res["phases"]
    gw = swarm = None
    t_start = time.monotonic()
    try:
        if kind == "ferry":
            gw = FerryGateway(env["workdir"], env["ferry_bin"], prosody, ngircd, args.ferry_log_level)
            gw.start(history=False)
        else:
            gw = BiboumiGateway(env["workdir"], prosody, ngircd, args.biboumi_log_level)
            gw.start(history=False, users=users)
        log("%s started (pid %d), linked to Prosody" % (kind, gw.pid))
        swarm = Swarm(prosody.c2s_port)
        t = time.monotonic()
        swarm.login([(u, u + "pw") for u in users], timeout=max(60, n * 0.2))
        log("%d XMPP users logged in (%.1f s)" % (n, time.monotonic() - t))
        settle(swarm, 1.0)
        rss0 = rss_kib(gw.pid)
        res["rss_kib_start"] = rss0

        # joins 1..small, fan-out with `small` users, history off
        log("%s: joining users 1..%d" % (kind, small))
        ph["join_small"] = phase_join(swarm, gw, prosody, range(small), args, "")
        settle(swarm, 1.0)
        res["rss_kib_small"] = rss_kib(gw.pid)
        log("%s: fan-out, %d users, %d messages, history off" % (kind, small, args.messages_small))
        ph["fanout_small_nohist"] = phase_fanout(swarm, gw, prosody, ircc, small, args.messages_small,
                                                 args, "s0")
        if kind == "biboumi" and args.history_on:
            done, failed = gw.set_history(swarm, range(small), True)
            if failed:
                raise RuntimeError("biboumi: record_history on failed for %d user(s): %s" % (
                    len(failed), failed[:2]))
            log("%s: fan-out, %d users, %d messages, history on" % (kind, small, args.messages_small))
            ph["fanout_small_hist"] = phase_fanout(swarm, gw, prosody, ircc, small,
                                                   args.messages_small, args, "s1")
            done, failed = gw.set_history(swarm, range(small), False)
            if failed:
                raise RuntimeError("biboumi: record_history off failed: %s" % failed[:2])

        # joins small+1..n
        if n > small:
            log("%s: joining users %d..%d" % (kind, small + 1, n))
            perf = Perf(args, gw, "join")
            try:
                ph["join_rest"] = phase_join(swarm, gw, prosody, range(small, n), args, "")
            finally:
                perf.stop()
        settle(swarm, 2.0)
        res["rss_kib_all"] = rss_kib(gw.pid)
        log("%s: idle %.0f s" % (kind, args.idle))
        ph["idle"] = phase_idle(swarm, gw, prosody, args.idle)

        log("%s: fan-out, %d users, %d messages, history off" % (kind, n, args.messages))
        perf = Perf(args, gw, "fanout")
        try:
            ph["fanout_all_nohist"] = phase_fanout(swarm, gw, prosody, ircc, n, args.messages, args, "a0")
        finally:
            perf.stop()
        settle(swarm, 0.5)
        log("%s: XMPP -> IRC, %d messages" % (kind, args.messages_out))
        ph["xmpp_to_irc"] = phase_xmpp_to_irc(swarm, gw, prosody, ircc, args.messages_out, args)
        settle(swarm, 0.5)

        if args.history_on:
            if kind == "biboumi":
                done, failed = gw.set_history(swarm, range(n), True)
                if failed:
                    raise RuntimeError("biboumi: record_history on failed for %d user(s): %s" % (
                        len(failed), failed[:2]))
            else:
                # ferry: history is a component setting (no reload for the IRC
                # adapter): restart with history = true and join again.
                log("ferry: restart with history = true")
                gw.stop()
                wait_channel_empty(ircc)
                gw.start(history=True)
                settle(swarm, 1.0)
                ph["rejoin_small_hist"] = phase_join(swarm, gw, prosody, range(small), args, "")
                log("ferry: fan-out, %d users, %d messages, history on" % (small, args.messages_small))
                ph["fanout_small_hist"] = phase_fanout(swarm, gw, prosody, ircc, small,
                                                       args.messages_small, args, "s1")
                if n > small:
                    ph["rejoin_rest_hist"] = phase_join(swarm, gw, prosody, range(small, n), args, "")
                settle(swarm, 2.0)
            log("%s: fan-out, %d users, %d messages, history on" % (kind, n, args.messages_hist))
            ph["fanout_all_hist"] = phase_fanout(swarm, gw, prosody, ircc, n, args.messages_hist, args,
                                                 "a1")
    except Exception as e:  # noqa: kept in the result; the other gateway still runs
        res["error"] = "%s: %s" % (type(e).__name__, e)
        log("%s: run failed: %s" % (kind, res["error"]))
    finally:
        if gw is not None and gw.proc is not None:
            try:
                res["vmhwm_kib"] = bw.status_kb(gw.pid, "VmHWM")
                res["log"] = gw.log_summary()
            except Exception:  # noqa
                pass
        if swarm is not None:
            res["xmpp_errors"] = sum(c.errors for c in swarm.conns)
            res["xmpp_closed"] = sum(1 for c in swarm.conns if c.closed)
            samples = [c.err_sample for c in swarm.conns if c.err_sample]
            if samples:
                res["xmpp_error_sample"] = samples[0][:800]
        if gw is not None:
            gw.stop()
        if swarm is not None:
            swarm.close()
        try:
            wait_channel_empty(ircc)
        except Exception as e:  # noqa
            res.setdefault("warnings", []).append("channel not empty after %s: %s" % (kind, e))
        res["seconds"] = round(time.monotonic() - t_start, 1)
    derive(res)
    return res


def derive(res):
    """The per-unit numbers the targets use."""
    ph = res["phases"]
    n, small = res["users"], res["small"]
    joins = [ph.get("join_small"), ph.get("join_rest")]
    if all(j is not None for j in joins[:1]) and (n == small or joins[1] is not None):
        total = sum(j["gateway_cpu_s"] for j in joins if j)
        res["join_cpu_ms"] = round(total / n * 1000, 3)
        res["join_wall_s"] = round(sum(j["wall_s"] for j in joins if j), 1)
        res["join_presences"] = sum(j["presences_delivered"] for j in joins if j)
        res["join_presences_expected"] = sum(j["presences_expected"] for j in joins if j)
        res["join_other_presences"] = sum(j["other_presences"] for j in joins if j)
        res["join_prosody_cpu_s"] = round(sum(j["prosody_cpu_s"] for j in joins if j), 2)
    if ph.get("rejoin_small_hist") and (n == small or ph.get("rejoin_rest_hist")):
        js = [ph["rejoin_small_hist"], ph.get("rejoin_rest_hist")]
        res["rejoin_cpu_ms"] = round(sum(j["gateway_cpu_s"] for j in js if j) / n * 1000, 3)
    r0 = res.get("rss_kib_start")
    if r0 is not None and res.get("rss_kib_all") is not None:
        res["rss_kib_per_user"] = round((res["rss_kib_all"] - r0) / n, 2)
    if r0 is not None and res.get("rss_kib_small") is not None:
        res["rss_kib_per_user_small"] = round((res["rss_kib_small"] - r0) / small, 2)
    if ph.get("idle"):
        res["idle_cpu_share"] = ph["idle"]["gateway_cpu_share"]
        res["idle_wakeups"] = ph["idle"]["gateway_wakeups"]
    for key in ("fanout_small_nohist", "fanout_all_nohist", "fanout_small_hist", "fanout_all_hist"):
        if ph.get(key):
            res[key + "_us"] = ph[key]["gateway_us_per_stanza"]
    if ph.get("xmpp_to_irc"):
        res["xmpp_to_irc_us"] = ph["xmpp_to_irc"]["gateway_us_per_msg"]
    lost = 0
    for key, p in ph.items():
        if key.startswith("fanout") or key == "xmpp_to_irc":
            lost += max(0, p.get("lost") or 0) + (p.get("duplicates") or 0)
    res["lost_or_duplicated"] = lost


# ---------------------------------------------------------------- report

ROWS = [
    # (label, key, unit format, target key or None)
    ("join: gateway CPU per join", "join_cpu_ms", "%.2f ms", "join_cpu_ms"),
    ("join: wall time, all users", "join_wall_s", "%.1f s", None),
    ("join: occupant presences delivered", "join_presences", "%d", None),
    ("join: occupant presences expected", "join_presences_expected", "%d", None),
    ("join: other presences (server JID)", "join_other_presences", "%d", None),
    ("join: Prosody CPU", "join_prosody_cpu_s", "%.1f s", None),
    ("RSS per user (N users)", "rss_kib_per_user", "%.1f KiB", "rss_kib_per_user"),
    ("RSS per user (small room)", "rss_kib_per_user_small", "%.1f KiB", None),
    ("RSS at start / after joins", None, None, None),
    ("idle: CPU share of a core", "idle_cpu_share", "%.4f", "idle"),
    ("idle: wake-ups (context switches)", "idle_wakeups", "%d", None),
    ("fan-out small, history off", "fanout_small_nohist_us", "%.2f us/stanza", "fanout_us_per_stanza"),
    ("fan-out N, history off", "fanout_all_nohist_us", "%.2f us/stanza", "fanout_us_per_stanza"),
    ("fan-out small, history on", "fanout_small_hist_us", "%.2f us/stanza", "fanout_us_per_stanza"),
    ("fan-out N, history on", "fanout_all_hist_us", "%.2f us/stanza", "fanout_us_per_stanza"),
    ("XMPP -> IRC", "xmpp_to_irc_us", "%.2f us/msg", "xmpp_to_irc_us_per_msg"),
    ("lost or duplicated stanzas", "lost_or_duplicated", "%d", "zero"),
]


def verdicts(ferry, bib):
    """{key: (target text, "PASS"/"FAIL"/"n/a")} for the rows with a target."""
    out = {}
    for label, key, _, tkey in ROWS:
        if tkey is None or key is None:
            continue
        fv = ferry.get(key) if ferry else None
        bv = bib.get(key) if bib else None
        if tkey == "idle":
            text = "ferry <= %.1f%% of a core" % (IDLE_NEAR_ZERO * 100)
            out[key] = (text, "n/a" if fv is None else ("PASS" if fv <= IDLE_NEAR_ZERO else "FAIL"))
        elif tkey == "zero":
            out[key] = ("0", "n/a" if fv is None else ("PASS" if fv == 0 else "FAIL"))
        else:
            frac = TARGETS[tkey]
            text = "ferry <= 1/%d of biboumi" % round(1 / frac)
            if fv is None or bv is None:
                out[key] = (text, "n/a")
            else:
                out[key] = (text, "PASS" if fv <= bv * frac else "FAIL")
    return out


def fmtv(v, f):
    if v is None:
        return "-"
    try:
        return f % v
    except TypeError:
        return str(v)


def print_table(result):
    runs = {r["gateway"]: r for r in result["runs"]}
    ferry, bib = runs.get("ferry"), runs.get("biboumi")
    ver = verdicts(ferry, bib)
    cols = [g for g in ("ferry", "biboumi") if g in runs]
    a = result["args"]
    print("IRC gateway benchmark: %d XMPP users (small room: %d); fan-out %d messages to all (%d "
          "with history on), %d to the small room; XMPP->IRC %d; idle %g s; %d CPUs" % (
              a["users"], a["small"], a["messages"], a["messages_hist"], a["messages_small"],
              a["messages_out"], a["idle"], os.cpu_count()))
    print("ferry: %s (sha256 %s); biboumi: %s" % (
        result["ferry_binary"]["copied_from"], result["ferry_binary"]["sha256_12"],
        result.get("biboumi_version") or result.get("biboumi_skipped") or "not run"))
    header = ["metric"] + cols + (["ferry/biboumi"] if ferry and bib else []) + ["target", "verdict"]
    rows = []
    for label, key, f, tkey in ROWS:
        if key is None:
            row = [label] + ["%s / %s KiB" % (fmtv(runs[g].get("rss_kib_start"), "%d"),
                                              fmtv(runs[g].get("rss_kib_all"), "%d")) for g in cols]
            if ferry and bib:
                row.append("")
            rows.append(row + ["", ""])
            continue
        row = [label] + [fmtv(runs[g].get(key), f) for g in cols]
        if ferry and bib:
            fv, bv = ferry.get(key), bib.get(key)
            row.append("%.3f" % (fv / bv) if isinstance(fv, (int, float)) and isinstance(bv, (int, float))
                       and bv else "-")
        t = ver.get(key)
        row += [t[0], t[1]] if t else ["", ""]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)))
    for g in cols:
        r = runs[g]
        ph = r["phases"]
        bits = []
        for key in ("fanout_small_nohist", "fanout_all_nohist", "fanout_small_hist", "fanout_all_hist"):
            p = ph.get(key)
            if p:
                bits.append("%s %d/%d in %.1f s (Prosody %.1f us/stanza, history rows +%s%s)" % (
                    key, p["delivered"], p["expected_stanzas"], p["wall_s"],
                    p["prosody_us_per_stanza"] or 0, p["history_rows_added"],
                    "".join(", %s +%d" % kv for kv in sorted((p.get("link") or {}).items()))))
        p = ph.get("xmpp_to_irc")
        if p:
            bits.append("xmpp_to_irc %d/%d on IRC, %d reflections, %.1f s" % (
                p["irc_received"], p["messages"], p["reflections"], p["wall_s"]))
        if r.get("rejoin_cpu_ms") is not None:
            bits.append("rejoin (history on) %.2f ms CPU per join" % r["rejoin_cpu_ms"])
        print("%s: %s" % (g, "; ".join(bits)))
        print("%s: VmHWM %s KiB, XMPP errors %s, log lines %s (warn/error %s), %.0f s" % (
            g, r.get("vmhwm_kib"), r.get("xmpp_errors"),
            (r.get("log") or {}).get("lines"), (r.get("log") or {}).get("warn_or_error"),
            r.get("seconds", 0)))
        for w in (r.get("log") or {}).get("warn_samples") or []:
            print("  %s log: %s" % (g, w[:200]))
        if r.get("error"):
            print("%s: RUN FAILED: %s" % (g, r["error"]))
        if r.get("xmpp_error_sample"):
            print("%s: XMPP error sample: %s" % (g, r["xmpp_error_sample"][:400]))
    if result.get("biboumi_skipped"):
        print("biboumi not measured: %s" % result["biboumi_skipped"])


# ---------------------------------------------------------------- main


def run(args):
    for tool in ("prosody",):
        if shutil.which(tool) is None:
            raise SystemExit("%s not found: apt-get install %s" % (tool, tool))
    if shutil.which("ngircd") is None and not os.path.exists("/usr/sbin/ngircd"):
        raise SystemExit("ngircd not found: apt-get install ngircd")
    if not os.path.exists(harness.ferry_binary()):
        raise SystemExit("ferry binary not found at %s: cmake -S . -B build -DCMAKE_BUILD_TYPE="
                         "RelWithDebInfo && cmake --build build -j2, or set FERRY_BIN"
                         % harness.ferry_binary())
    gateways = [g.strip() for g in args.gateways.split(",") if g.strip()]
    result = {"args": {k: v for k, v in vars(args).items()}, "runs": []}
    if "biboumi" in gateways:
        why = ensure_biboumi(not args.no_install)
        if why:
            log("biboumi cannot run: %s; measuring ferry alone" % why)
            result["biboumi_skipped"] = why
            gateways = [g for g in gateways if g != "biboumi"]
        else:
            result["biboumi_version"] = biboumi_version()
    nofile = raise_nofile()
    result["rlimit_nofile"] = nofile
    if nofile != resource.RLIM_INFINITY and nofile < args.users + 200:
        raise SystemExit("RLIMIT_NOFILE is %d: too low for %d users" % (nofile, args.users))

    workdir = args.workdir or tempfile.mkdtemp(prefix="ferry-bench-irc-")
    os.makedirs(workdir, exist_ok=True)
    env = {"workdir": workdir}
    prosody = ngircd = ircc = None
    try:
        fdir = os.path.join(workdir, "bin")
        os.makedirs(fdir, exist_ok=True)
        env["ferry_bin"] = os.path.join(fdir, "ferry")
        result["ferry_binary"] = bw.copy_binary(harness.ferry_binary(), env["ferry_bin"])

        ngircd = irc_helpers.Ngircd(os.path.join(workdir, "ngircd"), name=IRC)
        ngircd.start()
        env["ngircd"] = ngircd
        prosody = harness.Prosody(os.path.join(workdir, "prosody"), components={GW: SECRET})
        for k in range(args.users):
            prosody.add_user("u%d" % (k + 1), DOMAIN, "u%dpw" % (k + 1))
        prosody.start(timeout=30)
        env["prosody"] = prosody
        log("Prosody c2s %d component %d (pid %d); ngircd %d (pid %d); %d users" % (
            prosody.c2s_port, prosody.component_port, prosody.proc.pid, ngircd.port, ngircd.pid,
            args.users))
        ircc = irc_helpers.IrcClient(ngircd.port, IRC_NICK, timeout=10)
        ircc.join(CHAN)
        ircc.join(CHAN_OUT)
        env["irc"] = ircc

        for g in gateways:
            log("==== %s" % g)
            result["runs"].append(run_gateway(g, args, env))
        result["workdir"] = workdir if args.keep else None
        return result
    finally:
        if ircc is not None:
            ircc.close()
        if prosody is not None:
            prosody.stop()
        if ngircd is not None:
            ngircd.stop()
            ngircd.cleanup()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            log("kept %s" % workdir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=None, help="XMPP users joining #bench (default 1000)")
    ap.add_argument("--small", type=int, default=50, help="users for the small fan-out (default 50)")
    ap.add_argument("--messages", type=int, default=None,
                    help="IRC messages fanned out to all users (default 200)")
    ap.add_argument("--messages-hist", type=int, default=None,
                    help="IRC messages fanned out to all users with history on (default 100: "
                         "biboumi writes one row per user and message, about 1,400 a second)")
    ap.add_argument("--messages-small", type=int, default=None,
                    help="IRC messages fanned out to the small room (default 1000)")
    ap.add_argument("--messages-out", type=int, default=None,
                    help="XMPP -> IRC messages (default 20000)")
    ap.add_argument("--body-size", type=int, default=64, help="message body bytes (default 64)")
    ap.add_argument("--idle", type=float, default=None, help="idle measurement seconds (default 10)")
    ap.add_argument("--join-window", type=int, default=1,
                    help="joins under way at once (default 1; ngircd's listen backlog is 10)")
    ap.add_argument("--join-timeout", type=float, default=60, help="bound on one join (default 60 s)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="bound on each fan-out and on XMPP -> IRC (default 300 s)")
    ap.add_argument("--stall", type=float, default=20,
                    help="give a fan-out or XMPP -> IRC up after this long without progress: no "
                         "new stanza and no byte read or written by the gateway (default 20 s)")
    ap.add_argument("--gateways", default="ferry,biboumi", help="which, in order (default ferry,biboumi)")
    ap.add_argument("--no-history-on", dest="history_on", action="store_false",
                    help="skip the history-on fan-outs")
    ap.add_argument("--quick", action="store_true",
                    help="100 users, fewer messages, 5 s idle: a fast check")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install biboumi")
    ap.add_argument("--ferry-log-level", default="info", choices=("error", "warn", "info", "debug"))
    ap.add_argument("--biboumi-log-level", type=int, default=1, choices=(0, 1, 2, 3),
                    help="biboumi's log_level (default 1, info: its documented production value)")
    ap.add_argument("--perf", metavar="PREFIX",
                    help="perf record -g of the gateway during the joins after the first --small "
                         "users and during the fan-out to all users, history off: "
                         "PREFIX-GATEWAY-join.data, PREFIX-GATEWAY-fanout.data (profiling costs "
                         "CPU: such a run's numbers are not the benchmark's)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    ap.add_argument("--workdir", help="work directory (default: a new temp dir, removed after)")
    args = ap.parse_args(argv)
    # the defaults left unset: (--quick, full run)
    for name, quick, full in (("users", 100, 1000), ("messages", 100, 200),
                              ("messages_hist", 50, 100), ("messages_small", 400, 1000),
                              ("messages_out", 5000, 20000), ("idle", 5.0, 10.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.users < 1 or args.small < 1 or args.messages < 1 or args.messages_out < 1:
        ap.error("--users, --small, --messages and --messages-out must be >= 1")

    bw.exit_on_signals()
    try:
        result = run(args)
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    except SystemExit as e:
        log(str(e))
        return 2
    except Exception as e:  # noqa: one line, not a trace
        log("run failed: %s: %s" % (type(e).__name__, e))
        return 2
    runs = {r["gateway"]: r for r in result["runs"]}
    ver = verdicts(runs.get("ferry"), runs.get("biboumi"))
    result["verdicts"] = {k: {"target": v[0], "verdict": v[1]} for k, v in ver.items()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    if any(r.get("error") for r in result["runs"]):
        return 2
    return 0 if all(v[1] != "FAIL" for v in ver.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
