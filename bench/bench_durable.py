#!/usr/bin/env python3
"""bench_durable.py: durable throughput of ferry through its store (SQLite,
PostgreSQL), both directions, and ferry's memory while 100,000 messages wait.

    python3 bench/bench_durable.py [inbound] [outbound] [backlog] [--json]
                                   [--stores sqlite,pg] [--repeat N]

--stores: which stores to measure, each in turn within every run (default
sqlite; pg is a throwaway PostgreSQL 15 on loopback, fsync off; --pg is
--stores pg). With both, the summary puts each store's medians side by side.

Three measurements (all by default; name some to run only those):

  inbound   network -> XMPP: N POSTs to /hooks/hooks/in from C concurrent
            keep-alive HTTP connections (bearer token, a unique webhook-id
            each), delivered by ferry through Prosody to one XMPP user whose
            client is a raw-socket reader that counts message bodies.
            Reports 202s/s, deliveries/s (first POST -> last message read),
            lost, duplicates, ferry CPU per message and ferry's max RSS.
  outbound  XMPP -> network: bench_webhook.py's run (one raw XMPP sender
            through Prosody into ferry, POSTed to a fast receiver), with the
            same ferry binary: messages/s through the store.
  backlog   the receiver is down (nothing listens on its port: connection
            refused). A raw XMPP client pushes 100,000 messages pipelined;
            ferry's RSS is sampled every 10,000 pending rows (counted in the
            store file, read-only). Then a receiver starts listening on that
            port and the drain is timed until the last message arrived and
            nothing is pending; every id must arrive once.

Two instances (issue 14; bench_durable_two.py), run only when named and on
PostgreSQL (--stores with pg):

  inbound2  as inbound, with two ferries on one database behind ejabberd
            (domain_balancing bare_source, component_number 2): POSTs to
            --recipients endpoints, each poster's connections alternating
            between the two HTTP ports.
  outbound2 --out-users XMPP senders through ejabberd to both ferries, POSTed
            to one receiver. Both report each ferry's CPU per message.

Target (issue 3): at least 5,000 messages/s each way (inbound: both the 202s
and the deliveries), and ferry's memory flat while 100,000 messages wait
(here: VmRSS grows at most --flat-mib from 50,000 to 100,000 pending; the
table also shows the growth from 10,000 and splits RSS into anonymous and
file-backed pages). Exit status: 0 targets met and nothing lost or
duplicated, 1 otherwise, 2 the run itself failed, 130 interrupted.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

import harness  # noqa: E402  (tests/e2e/harness.py)
import bench_webhook as bw  # noqa: E402  (raw XMPP sender, receiver pieces, Child, /proc and setup helpers)

DOMAIN = bw.DOMAIN
COMPONENT = bw.COMPONENT
COMP_NAME = "hooks"          # the [components.NAME] table: /hooks/NAME/EP, the store's component
SECRET = bw.SECRET
TOKEN = "bench-t0ken"
IN_ENDPOINT = "in"
OUT_ENDPOINT = bw.ENDPOINT   # "sink", as bench_webhook's senders address it
RCPT = ("rcpt", "rcptpw")
TARGET_RATE = 5000.0
STORE_TO_NETWORK = 0         # src/store.h
MEASUREMENTS = ("inbound", "outbound", "backlog")
TWO_INSTANCES = ("inbound2", "outbound2")   # bench_durable_two.py: PostgreSQL only, named to run


def log(msg):
    bw.log(msg, "durable")


def mem(pid):
    """ferry's memory from /proc/PID/status, in KiB."""
    return bw.proc_status(pid, ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"))


def mib(kb):
    return None if kb is None else round(kb / 1024.0, 1)


def rate(n, seconds):
    return round(n / seconds, 1) if seconds and seconds > 0 else None


start_perf = bw.start_perf


def stop_perf(proc, path):
    bw.stop_perf(proc, path, "--no-children --sort dso,symbol", log=log)


# ---------------------------------------------------------------- common setup


class Bed:
    """What one measurement started; close() stops all of it by pid."""

    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.ctx = multiprocessing.get_context("fork")
        self.children = []
        self.prosody = None
        self.ferry = None
        self.perf = None

    def child(self, target, args, name):
        c = bw.Child(self.ctx, target, args, name)
        self.children.append(c)
        return c

    def start_prosody(self, users):
        self.prosody = bw.start_prosody(os.path.join(self.dir, "prosody"), users)
        return self.prosody

    def start_ferry(self, binary, component, log_level, http_port=None):
        fdir = os.path.join(self.dir, "ferry")
        os.makedirs(fdir, exist_ok=True)
        http_port = http_port or harness.free_port()
        self.store_path = os.path.join(fdir, "ferry.db")
        cfg = harness.ferry_config(self.prosody.component_port, http_port, {COMP_NAME: component},
                                   log={"level": log_level}, storage={"path": self.store_path})
        self.ferry = bw.start_ferry(fdir, cfg, http_port, binary)
        return self.ferry

    def close(self):
        if self.perf is not None and self.perf.poll() is None:
            harness.stop_process(self.perf)
        for c in reversed(self.children):
            try:
                c.stop()
            except Exception as e:  # noqa: best effort, keep stopping the rest
                log("stopping %s: %r" % (c.name, e))
        if self.ferry is not None:
            self.ferry.stop()
        if self.prosody is not None:
            self.prosody.stop()


def ferry_warnings(ferry, offset=0):
    return bw.ferry_log_summary(ferry.stderr(offset), samples=3)


# ---------------------------------------------------------------- inbound: XMPP reader


class ReaderShared:
    def __init__(self, ctx):
        self.measured = ctx.Value("q", 0, lock=False)   # distinct measured bodies
        self.warm = ctx.Value("q", 0, lock=False)
        self.dups = ctx.Value("q", 0, lock=False)
        self.errors = ctx.Value("q", 0, lock=False)     # type='error' stanzas
        self.first_ts = ctx.Value("d", 0.0, lock=False)
        self.last_ts = ctx.Value("d", 0.0, lock=False)
        self.warm_done = ctx.Event()
        self.all_done = ctx.Event()


RX_IN_BODY = re.compile(rb"<body>in ([wm])(\d+) ")
RX_ERR = (b"type='error'", b'type="error"')


def reader_main(conn, port, user, password, shared, count, warmup):
    """Child: one XMPP user on a raw socket. Logs in, sends presence, then
    counts <body>in mN ...</body> (measured) and wN (warm-up) as they arrive."""
    bw.child_signals()
    try:
        sock, jid = bw.xmpp_login(port, user, password)
        sock.sendall(b"<presence/>")
        # The server echoes our presence once it has processed it: from
        # then on, chat messages to the bare JID reach this resource.
        deadline = time.monotonic() + 10
        buf = b""
        while b"<presence" not in buf and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                raise bw.XmppError("closed while waiting for the presence echo")
            buf += data
        sock.settimeout(None)
    except Exception as e:  # noqa: reported to the parent
        conn.send(("error", "%s: %s" % (user, e)))
        return
    count_bodies(conn, sock, jid, shared, count, warmup)


def count_bodies(conn, sock, jid, shared, count, warmup):
    """The reader's loop on a logged-in socket (also used by
    bench_webhook_room.py's occupant): ("ready", jid) to the parent, then
    counts bodies until "stop"."""
    measured = bw.Tally(count, shared.measured, shared.dups, shared.all_done, shared.first_ts, shared.last_ts)
    warm = bw.Tally(warmup, shared.warm, shared.dups, shared.warm_done)
    st = {"closed": False}

    def drain():
        tail = b""
        etail = b""
        monotonic = time.monotonic
        while True:
            try:
                data = sock.recv(262144)
            except OSError:
                break
            if not data:
                st["closed"] = True
                break
            now = monotonic()
            chunk = etail + data
            shared.errors.value += sum(chunk.count(p) - etail.count(p) for p in RX_ERR)
            etail = chunk[-16:]
            b = tail + data
            last = 0
            for m in RX_IN_BODY.finditer(b):
                last = m.end()
                n = int(m.group(2))
                tally = measured if m.group(1) == b"m" else warm
                if n < tally.count:
                    tally.add(n, now)
            tail = b[last:]
            if len(tail) > 8192:
                tail = tail[-8192:]

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    conn.send(("ready", jid))
    while True:
        cmd = bw.command(conn)
        if cmd == "summary":
            missing = measured.missing()
            conn.send({"missing": len(missing), "missing_first": missing[:10],
                       "closed": st["closed"]})
        elif cmd == "stop":
            break
    bw.close_stream(sock, t)


# ---------------------------------------------------------------- inbound: HTTP client


RX_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
RX_CLEN = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
RX_CONN_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.I)


def build_posts(http_port, prefix, n, body_size, run_tag, endpoint=IN_ENDPOINT):
    path = "/hooks/%s/%s" % (COMP_NAME, endpoint)
    out = []
    for i in range(n):
        text = "in %s%d " % (prefix, i)
        text = text + "x" * max(0, body_size - len(text))
        body = json.dumps({"text": text}).encode()
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nwebhook-id: %s-%s%d\r\n"
                "Content-Length: %d\r\n\r\n" % (path, http_port, TOKEN, run_tag, prefix, i,
                                                len(body))).encode()
        out.append(head + body)
    return out


def poster_main(conn, http_port, connections, body_size, run_tag, endpoint=IN_ENDPOINT):
    """Child: the webhook sender. ("run", prefix, n, timeout[, rate]) POSTs
    n requests over `connections` keep-alive connections, one request under
    way on each (rate > 0: paced at that many requests/s in total), and
    answers with the statuses and timestamps. http_port: one port, or a
    list that the connections take in turn (several instances)."""
    bw.child_signals()
    ports = list(http_port) if isinstance(http_port, (list, tuple)) else [http_port]

    async def run(reqs, timeout, rate=0):
        res = {"status": {}, "reconnects": 0, "failed": 0, "t_last_202": 0.0, "accepted": 0}
        monotonic = time.monotonic

        async def connect(port):
            return await asyncio.open_connection("127.0.0.1", port)

        async def worker(mine, offset):
            port = ports[offset % len(ports)]
            r, w = await connect(port)
            interval = connections / rate if rate > 0 else 0
            start = monotonic() + offset / rate if rate > 0 else 0
            try:
                for k, req in enumerate(mine):
                    if interval:
                        await asyncio.sleep(max(0.0, start + k * interval - monotonic()))
                    status = None
                    for _ in range(5):      # a closed connection: reconnect, send again
                        try:
                            w.write(req)
                            head = await r.readuntil(b"\r\n\r\n")
                            m = RX_CLEN.search(head)
                            if m and int(m.group(1)):
                                await r.readexactly(int(m.group(1)))
                            status = int(RX_STATUS.match(head).group(1))
                            if RX_CONN_CLOSE.search(head):
                                w.close()
                                res["reconnects"] += 1
                                r, w = await connect(port)
                            break
                        except (asyncio.IncompleteReadError, ConnectionError, AttributeError):
                            w.close()
                            res["reconnects"] += 1
                            r, w = await connect(port)
                    if status is None:
                        res["failed"] += 1
                        continue
                    res["status"][status] = res["status"].get(status, 0) + 1
                    if status == 202:
                        res["accepted"] += 1
                        res["t_last_202"] = monotonic()
            finally:
                w.close()

        res["t0"] = monotonic()
        tasks = [worker(reqs[k::connections], k) for k in range(connections)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout)
            res["complete"] = True
        except asyncio.TimeoutError:
            res["complete"] = False
        res["t1"] = monotonic()
        return res

    while True:
        cmd = bw.command(conn)
        if cmd == "stop":
            break
        _, prefix, n, timeout = cmd[:4]
        reqs = build_posts(ports[0], prefix, n, body_size, run_tag + endpoint, endpoint)
        try:
            conn.send(("done", asyncio.run(run(reqs, timeout, cmd[4] if len(cmd) > 4 else 0))))
        except Exception as e:  # noqa: reported to the parent
            conn.send(("error", "%s: %s" % (type(e).__name__, e)))


def warm_up(poster, shared, n, timeout, what):
    """N posts through the poster child, all accepted and delivered (the
    reader's SHARED.warm_done) before the measured run."""
    poster.send(("run", "w", n, timeout))
    kind, wres = poster.recv(timeout + 10, what + " result")
    if kind != "done" or wres["accepted"] != n:
        raise RuntimeError("%s: %r" % (what, wres))
    if not shared.warm_done.wait(timeout):
        raise RuntimeError("%s: %d of %d delivered" % (what, shared.warm.value, n))


def measure_inbound(args, root, binary):
    bed = Bed(root, "inbound")
    try:
        prosody = bed.start_prosody([RCPT])
        shared = ReaderShared(bed.ctx)
        # Children are forked before this process has any thread.
        reader = bed.child(reader_main, (prosody.c2s_port, RCPT[0], RCPT[1], shared,
                                         args.in_count, args.in_warmup), "xmpp-reader")
        kind, info = reader.recv(30, "login")
        if kind != "ready":
            raise RuntimeError("XMPP reader: %s" % info)
        http_port = harness.free_port()
        poster = bed.child(poster_main, (http_port, args.connections, args.body_size,
                                         "r%d" % os.getpid()), "poster")
        component = {"adapter": "webhook", "domain": COMPONENT, "secret": SECRET,
                     "endpoints": {IN_ENDPOINT: {"token": TOKEN,
                                                 "deliver_to": ["%s@%s" % (RCPT[0], DOMAIN)]}}}
        ferry = bed.start_ferry(binary, component, args.ferry_log_level, http_port)
        log("inbound: Prosody %d, ferry %d linked, reader %s" % (
            prosody.proc.pid, ferry.pid, info))
        if args.in_warmup:
            warm_up(poster, shared, args.in_warmup, args.timeout, "inbound warm-up")
        time.sleep(0.5)
        perf_path = args.perf and os.path.abspath(args.perf + "-inbound.data")
        if perf_path:
            bed.perf = start_perf(perf_path, ferry.pid)
        log_off = ferry.stderr_offset()
        fpid, ppid = ferry.pid, prosody.proc.pid
        cpids = [poster.proc.pid, reader.proc.pid]
        f0, p0 = harness.cpu_seconds(fpid), harness.cpu_seconds(ppid)
        c0 = [harness.cpu_seconds(x) for x in cpids]
        m0 = bw.machine_busy_seconds()
        w0 = time.monotonic()
        log("inbound: %d POSTs over %d connection(s)" % (args.in_count, args.connections))
        poster.send(("run", "m", args.in_count, args.timeout))
        kind, pres = poster.recv(args.timeout + 10, "POST results")
        if kind != "done":
            raise RuntimeError("poster: %s" % pres)
        # Bounded: the deliveries of what was accepted.
        accepted = pres["accepted"]
        deadline = w0 + args.timeout
        while shared.measured.value < accepted and time.monotonic() < deadline:
            shared.all_done.wait(0.02)
        w1 = time.monotonic()
        f1, p1 = harness.cpu_seconds(fpid), harness.cpu_seconds(ppid)
        c1 = [harness.cpu_seconds(x) for x in cpids]
        m1 = bw.machine_busy_seconds()
        if perf_path:
            stop_perf(bed.perf, perf_path)
        time.sleep(0.3)   # let late duplicates show
        # Delivered rows are marked done once the server answered the ping.
        pending = None
        for _ in range(60):       # bounded: 6 s
            st, j = ferry.healthz()
            pending = j["components"][COMP_NAME]["pending"] if j else None
            if pending == 0:
                break
            time.sleep(0.1)
        reader.send("summary")
        rsum = reader.recv(10, "summary")
        delivered = shared.measured.value
        t0 = pres["t0"]
        acc_s = pres["t_last_202"] - t0 if accepted else None
        del_s = shared.last_ts.value - t0 if delivered else None
        fcpu, pcpu = f1 - f0, p1 - p0
        win = w1 - w0
        memx = mem(fpid)
        return {
            "posts": args.in_count,
            "connections": args.connections,
            "accepted": accepted,
            "statuses": {str(k): v for k, v in sorted(pres["status"].items())},
            "post_failures": pres["failed"],
            "http_reconnects": pres["reconnects"],
            "accept_seconds": round(acc_s, 3) if acc_s else None,
            "accepted_per_s": rate(accepted, acc_s),
            "delivered": delivered,
            "deliver_seconds": round(del_s, 3) if del_s else None,
            "delivered_per_s": rate(delivered, del_s),
            "first_delivery_after_s": round(shared.first_ts.value - t0, 3) if delivered else None,
            "lost": accepted - delivered,
            "duplicates": shared.dups.value,
            "xmpp_errors": shared.errors.value,
            "pending_after": pending,
            "ferry_cpu_s": round(fcpu, 3),
            "ferry_cpu_us_per_msg": round(fcpu / delivered * 1e6, 1) if delivered else None,
            "prosody_cpu_us_per_msg": round(pcpu / delivered * 1e6, 1) if delivered else None,
            "busy": {"ferry": round(fcpu / win, 2), "prosody": round(pcpu / win, 2),
                     "poster": round((c1[0] - c0[0]) / win, 2),
                     "reader": round((c1[1] - c0[1]) / win, 2),
                     "other": round(max(0.0, (m1 - m0) - fcpu - pcpu - sum(c1) + sum(c0)) / win, 2)},
            "ferry_vmhwm_mib": mib(memx.get("VmHWM")),
            "ferry_vmrss_mib": mib(memx.get("VmRSS")),
            "missing_first": ["m%d" % i for i in rsum["missing_first"]],
            "ferry_log": ferry_warnings(ferry, log_off),
        }
    finally:
        bed.close()


# ---------------------------------------------------------------- outbound


def measure_outbound(args, root, binary):
    """bench_webhook.py's run with the same binary (it copies FERRY_BIN)."""
    ns = argparse.Namespace(
        count=args.out_count, warmup=500, users=1, body_size=args.body_size, batch=1000, rate=0,
        timeout=args.timeout, settle=0.5, ferry_log_level=args.ferry_log_level,
        prosody_log_level="info", http_timeout=10.0, signing=False,
        perf=args.perf and os.path.abspath(args.perf + "-outbound.data"), probe=False,
        repeat=1, json=False, keep=False, workdir=os.path.join(root, "outbound"))
    old = os.environ.get("FERRY_BIN")
    os.environ["FERRY_BIN"] = binary
    try:
        r = bw.run(ns)
    finally:
        if old is None:
            os.environ.pop("FERRY_BIN", None)
        else:
            os.environ["FERRY_BIN"] = old
    return {
        "messages": r["messages"],
        "arrived": r["arrived"],
        "lost": r["lost"],
        "duplicates": r["duplicates"],
        "seconds": r["seconds"],
        "delivered_per_s": r["messages_per_second"],
        "ferry_cpu_us_per_msg": r["ferry_cpu_us_per_msg"],
        "prosody_cpu_us_per_msg": r["prosody_cpu_us_per_msg"],
        "busy": {"ferry": r["ferry_cpu_utilisation"], "prosody": r["prosody_cpu_utilisation"],
                 "receiver": r["receiver_cpu_utilisation"], "other": r["other_cpu_utilisation"]},
        "ferry_vmhwm_mib": mib(r["ferry_vmhwm_kb"]),
        "xmpp_errors": r["xmpp_errors_to_senders"],
        "ferry_log": r["ferry_log"],
    }


# ---------------------------------------------------------------- backlog


class SinkShared:
    def __init__(self, ctx):
        self.measured = ctx.Value("q", 0, lock=False)
        self.dups = ctx.Value("q", 0, lock=False)
        self.other = ctx.Value("q", 0, lock=False)
        self.requests = ctx.Value("q", 0, lock=False)
        self.connections = ctx.Value("q", 0, lock=False)
        self.first_ts = ctx.Value("d", 0.0, lock=False)
        self.last_ts = ctx.Value("d", 0.0, lock=False)
        self.all_done = ctx.Event()


RX_JSON_ID = re.compile(rb'"id":\s*"b(\d+)"')


def sink_main(conn, shared, port, count):
    """Child: an HTTP/1.1 keep-alive receiver that does NOT listen until it
    gets "listen" (so ferry's requests are refused until then), then answers
    200 to every POST and records the "id" (bN) of its JSON body."""
    bw.child_signals()
    measured = bw.Tally(count, shared.measured, shared.dups, shared.all_done, shared.first_ts, shared.last_ts)
    monotonic = time.monotonic

    def record(body):
        shared.requests.value += 1
        m = RX_JSON_ID.search(body)
        n = int(m.group(1)) if m else -1
        if not 0 <= n < count:
            shared.other.value += 1
            return
        measured.add(n)

    def opened():
        shared.connections.value += 1

    Http = bw.post_sink(record, opened)

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        cmds = asyncio.Queue()

        def on_cmd():
            cmds.put_nowait(bw.command(conn))

        loop.add_reader(conn.fileno(), on_cmd)
        conn.send(("ready", None))
        server = None
        while not stop.done():
            cmd = await cmds.get()
            if cmd == "listen" and server is None:
                server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024,
                                                  reuse_address=True)
                conn.send(("listening", monotonic()))
            elif cmd == "summary":
                missing = measured.missing()
                conn.send({"missing": len(missing), "missing_first": missing[:10]})
            elif cmd == "stop":
                stop.set_result(None)
        loop.remove_reader(conn.fileno())
        if server is not None:
            server.close()

    asyncio.run(main())


class PendingCounter:
    """ferry's XMPP -> network rows, read from its store file through a
    read-only connection (WAL: it never blocks ferry's writer)."""

    def __init__(self, path):
        self.path = path
        self.con = None

    def _query(self, sql, params=()):
        try:
            if self.con is None:
                if not os.path.exists(self.path):
                    return None
                self.con = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, timeout=1)
            return self.con.execute(sql, params).fetchone()[0]
        except sqlite3.Error as e:
            log("reading the store: %s" % e)
            self.close()
            return None

    def stored(self):
        """Rows written so far: the highest id (O(log n); this ferry stores
        nothing else, and nothing is delivered while the receiver is down).
        A count(*) of 100,000 rows costs about 10 ms of a CPU that ferry
        and Prosody need, so it is only used at the ends."""
        v = self._query("SELECT max(id) FROM messages")
        return 0 if v is None and self.con is not None else v

    def pending(self):
        """Exactly: the pending rows of this direction (the state index)."""
        return self._query(
            "SELECT count(*) FROM messages WHERE component = ? AND direction = ? AND state = 0",
            (COMP_NAME, STORE_TO_NETWORK))

    def close(self):
        if self.con is not None:
            try:
                self.con.close()
            except sqlite3.Error:
                pass
            self.con = None


class PgPendingCounter:
    """The same counts from ferry's PostgreSQL database (--stores pg), through
    one psql process kept open (a new psql per sample would cost the CPU the
    run measures)."""

    def __init__(self, path):
        import pg_helpers  # tests/e2e/pg_helpers.py
        self.pg = pg_helpers.ACTIVE
        self.db = pg_helpers.database_for(path)
        self.proc = None

    def _query(self, sql):
        try:
            if self.proc is None:
                self.proc = subprocess.Popen(
                    [self.pg_psql(), "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.pg.port),
                     "-U", "postgres", "-d", self.db], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self.proc.stdin.write(sql + ";\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline().strip()
            return int(line) if line else None
        except (OSError, ValueError) as e:
            log("reading the store: %s" % e)
            self.close()
            return None

    @staticmethod
    def pg_psql():
        import pg_helpers
        return pg_helpers.PSQL

    def stored(self):
        return self._query("SELECT coalesce(max(id), 0) FROM messages")

    def pending(self):
        return self._query("SELECT count(*) FROM messages WHERE component = '%s' AND direction = %d"
                           " AND state = 0" % (COMP_NAME, STORE_TO_NETWORK))

    def size_mib(self):
        v = self._query("SELECT pg_total_relation_size('messages')")
        return round(v / 1048576.0, 1) if v is not None else None

    def close(self):
        if self.proc is not None:
            harness.stop_process(self.proc)
            self.proc = None


def measure_backlog(args, root, binary):
    bed = Bed(root, "backlog")
    counter = None
    try:
        users = [("bench%d" % (k + 1), "benchpw%d" % (k + 1)) for k in range(args.backlog_users)]
        prosody = bed.start_prosody(users)
        n = args.backlog_count
        shared = SinkShared(bed.ctx)
        rport = harness.free_port()        # nothing listens there until "listen"
        sink = bed.child(sink_main, (shared, rport, n), "sink")
        sink.recv(10, "ready")
        senders = []
        for k, (u, pw) in enumerate(users):
            ids = list(range(k, n, len(users)))
            senders.append(bed.child(bw.sender_main, (prosody.c2s_port, u, pw, [], ids,
                                                      args.body_size, 1000, 0), "sender-" + u))
        component = {"adapter": "webhook", "domain": COMPONENT, "secret": SECRET,
                     "timeout": 10.0, "max_attempts": 1000000, "max_age": 86400,
                     "retry_delay": args.retry_delay, "retry_delay_max": args.retry_delay,
                     "endpoints": {OUT_ENDPOINT: {"url": "http://127.0.0.1:%d/hook" % rport,
                                                  "format": "json", "allow": [DOMAIN]}}}
        ferry = bed.start_ferry(binary, component, args.ferry_log_level)
        for s in senders:
            kind, info = s.recv(60, "login")
            if kind != "ready":
                raise RuntimeError("sender: %s" % info)
        fpid = ferry.pid
        log("backlog: Prosody %d, ferry %d linked, receiver port %d closed, %d sender(s)" % (
            prosody.proc.pid, fpid, rport, len(senders)))
        counter = (PgPendingCounter if args.store == "pg" else PendingCounter)(bed.store_path)
        time.sleep(1.0)
        base = mem(fpid)
        log_off = ferry.stderr_offset()
        others = [prosody.proc.pid, sink.proc.pid] + [s.proc.pid for s in senders]

        def cpu_split():
            """(ferry CPU s, CPU s of everything this benchmark runs, machine busy s)"""
            f = harness.cpu_seconds(fpid)
            return f, f + sum(harness.cpu_seconds(x) for x in others), bw.machine_busy_seconds()
        perf_fill = args.perf and os.path.abspath(args.perf + "-backlog-fill.data")
        perf_drain = args.perf and os.path.abspath(args.perf + "-backlog-drain.data")
        if perf_fill:
            bed.perf = start_perf(perf_fill, fpid)
        f0, a0, m0 = cpu_split()
        t0 = time.monotonic()
        for s in senders:
            s.send("go")
        # (The senders report "sent" when their last write went through,
        # which backpressure delays: read that after the fill.)
        # Fill: sample RSS at each 10,000 pending rows (the first sample at
        # or above each step; bounded in time).
        step = args.sample_every
        samples = []
        next_mark = min(1000, step)   # 1,000 first: the flat-memory comparison starts there
        deadline = t0 + args.timeout
        pending = 0
        while time.monotonic() < deadline:
            c = counter.stored()
            if c is not None:
                pending = c
                while pending >= next_mark and next_mark <= n:
                    m = mem(fpid)
                    samples.append({"rows": pending, "at": next_mark,
                                    "t": round(time.monotonic() - t0, 2),
                                    "vmrss_mib": mib(m.get("VmRSS")),
                                    "rss_anon_mib": mib(m.get("RssAnon")),
                                    "rss_file_mib": mib(m.get("RssFile"))})
                    next_mark = (next_mark // step + 1) * step
                if pending >= n:
                    break
            if not ferry.running():
                raise RuntimeError("ferry exited during the fill:\n" + ferry.report())
            time.sleep(0.02)
        t_filled = time.monotonic()
        f1, a1, m1 = cpu_split()
        if perf_fill:
            stop_perf(bed.perf, perf_fill)
        filled = counter.pending() or 0     # exact, and all of them still pending
        sent = [s.recv(max(1.0, deadline - time.monotonic()), "sent")[1] for s in senders]
        if filled < n:
            log("backlog: only %d of %d rows pending after %.0f s" % (filled, n, args.timeout))
        # Hold: the backlog waits (heads retried against the closed port).
        hold_rss = []
        hold_end = time.monotonic() + args.hold
        while time.monotonic() < hold_end:
            hold_rss.append(mem(fpid).get("VmRSS") or 0)
            time.sleep(0.1)
        held = mem(fpid)
        if perf_drain:
            bed.perf = start_perf(perf_drain, fpid)
        f_hold, a_hold, m_hold = cpu_split()
        t_hold = time.monotonic()
        # Drain: the receiver starts listening.
        sink.send("listen")
        kind, t_listen = sink.recv(10, "listening")
        log("backlog: %d pending, receiver listening; draining" % filled)
        drain_peak = {}
        deadline = t_listen + args.timeout
        while not shared.all_done.is_set() and time.monotonic() < deadline:
            shared.all_done.wait(0.1)
            m = mem(fpid)
            if m.get("VmRSS", 0) > drain_peak.get("VmRSS", 0):
                drain_peak = m
            if not ferry.running():
                raise RuntimeError("ferry exited during the drain:\n" + ferry.report())
        t_arrived = time.monotonic()
        f2, a2, m2 = cpu_split()
        if perf_drain:
            stop_perf(bed.perf, perf_drain)
        # Rows are marked done after the answer: wait (bounded) for 0 pending.
        left = None
        for _ in range(200):
            left = counter.pending()
            if left == 0 or time.monotonic() > t_arrived + 10:
                break
            time.sleep(0.05)
        t_zero = time.monotonic()
        after = mem(fpid)
        stats = []
        for s in senders:
            s.send("stats")
            stats.append(s.recv(10, "stats")[1])
        time.sleep(0.3)   # late duplicates
        sink.send("summary")
        ssum = sink.recv(10, "summary")
        arrived = shared.measured.value
        fill_s = t_filled - t0
        first, last = shared.first_ts.value, shared.last_ts.value
        drain_s = (last - first) if arrived > 1 else None
        by = {s["at"]: s for s in samples}

        def at(k, key="vmrss_mib"):
            return by[k][key] if k in by else None
        def growth(a, b, key="vmrss_mib"):
            if at(a, key) is None or at(b, key) is None:
                return None
            return round(at(b, key) - at(a, key), 1)
        lo, hi = step, (n // step) * step
        mid = (hi // 2 // step) * step or lo
        return {
            "messages": n,
            "senders": len(senders),
            "retry_delay": args.retry_delay,
            "fill_pending": filled,
            "sender_write_seconds": round(max(x["t1"] for x in sent) - t0, 3),
            "fill_seconds": round(fill_s, 3),
            "fill_per_s": rate(filled, fill_s),
            "fill_ferry_cpu_us_per_msg": round((f1 - f0) / filled * 1e6, 1) if filled else None,
            "fill_busy": {"ferry": round((f1 - f0) / fill_s, 2),
                          "other": round(max(0.0, (m1 - m0) - (a1 - a0)) / fill_s, 2)},
            "rss_baseline_mib": mib(base.get("VmRSS")),
            "rss_anon_baseline_mib": mib(base.get("RssAnon")),
            "samples": samples,
            # From the first sample to the last, and over the second half
            # (the verdict: what more waiting messages add).
            "rss_growth_mib": growth(lo, hi),
            "rss_anon_growth_mib": growth(lo, hi, "rss_anon_mib"),
            "rss_growth_second_half_mib": growth(mid, hi),
            "rss_growth_from_1k_mib": growth(min(1000, step), hi),
            "rss_anon_growth_second_half_mib": growth(mid, hi, "rss_anon_mib"),
            "growth_from": lo, "growth_mid": mid, "growth_to": hi,
            "hold_seconds": args.hold,
            "rss_after_hold_mib": mib(held.get("VmRSS")),
            "rss_hold_min_max_mib": [mib(min(hold_rss)), mib(max(hold_rss))] if hold_rss else None,
            "hold_ferry_cpu_s": round(f_hold - f1, 3),
            "retry_to_first_post_s": round(first - t_listen, 3) if arrived else None,
            "arrived": arrived,
            "lost": n - arrived,
            "duplicates": shared.dups.value,
            "unexpected_requests": shared.other.value,
            "http_connections": shared.connections.value,
            "drain_seconds": round(drain_s, 3) if drain_s else None,
            "drain_per_s": rate(arrived, drain_s),
            "pending_zero_after_listen_s": round(t_zero - t_listen, 3) if left == 0 else None,
            "pending_left": left,
            "drain_ferry_cpu_us_per_msg": round((f2 - f_hold) / arrived * 1e6, 1) if arrived else None,
            "drain_busy": {"ferry": round((f2 - f_hold) / (t_arrived - t_hold), 2),
                           "other": round(max(0.0, (m2 - m_hold) - (a2 - a_hold))
                                          / (t_arrived - t_hold), 2)},
            "rss_drain_peak_mib": mib(drain_peak.get("VmRSS")),
            "rss_drain_peak_anon_file_mib": [mib(drain_peak.get("RssAnon")),
                                             mib(drain_peak.get("RssFile"))],
            "rss_after_drain_mib": mib(after.get("VmRSS")),
            "rss_after_drain_anon_file_mib": [mib(after.get("RssAnon")), mib(after.get("RssFile"))],
            "ferry_vmhwm_mib": mib(after.get("VmHWM")),
            "store_mib": (counter.size_mib() if args.store == "pg" else
                          round(sum(os.path.getsize(p) for p in
                                    (bed.store_path, bed.store_path + "-wal")
                                    if os.path.exists(p)) / 1048576.0, 1)),
            "xmpp_errors": sum(x["errors"] for x in stats),
            "missing_first": ["b%d" % i for i in ssum["missing_first"]],
            "ferry_log": ferry_warnings(ferry, log_off),
        }
    finally:
        if counter is not None:
            counter.close()
        bed.close()


# ---------------------------------------------------------------- verdicts and output


def verdicts(r, args):
    """{measurement: (pass, reason)}"""
    out = {}
    i = r.get("inbound")
    if i:
        ok_rate = (i["accepted_per_s"] or 0) >= TARGET_RATE and (i["delivered_per_s"] or 0) >= TARGET_RATE
        clean = i["lost"] == 0 and i["duplicates"] == 0 and i["accepted"] == i["posts"]
        out["inbound"] = (ok_rate and clean, "rate >= %d/s both accepted and delivered, nothing "
                                             "lost or duplicated" % TARGET_RATE)
    o = r.get("outbound")
    if o:
        out["outbound"] = ((o["delivered_per_s"] or 0) >= TARGET_RATE and o["lost"] == 0
                           and o["duplicates"] == 0,
                           "rate >= %d/s, nothing lost or duplicated" % TARGET_RATE)
    b = r.get("backlog")
    if b:
        g = b["rss_growth_second_half_mib"]
        flat = g is not None and g <= args.flat_mib
        out["backlog"] = (flat and b["lost"] == 0 and b["duplicates"] == 0
                          and b["fill_pending"] == b["messages"],
                          "VmRSS growth %gk -> %gk <= %g MiB, every message once" % (
                              b["growth_mid"] / 1000.0, b["growth_to"] / 1000.0, args.flat_mib))
    if any(r.get(name) for name in TWO_INSTANCES):
        import bench_durable_two as two
        out.update(two.verdicts(r))
    return out


fmt = bw.fmt


def print_tables(r, args):
    v = verdicts(r, args)
    print("ferry durable benchmark, store %s, %d CPU(s), ferry log level %s, binary %s (sha256 %s)" % (
        r.get("store", "sqlite"), os.cpu_count(), args.ferry_log_level, r["binary"]["copied_from"],
        r["binary"]["sha256_12"]))
    rows = []
    i = r.get("inbound")
    if i:
        rows.append(("INBOUND  HTTP -> ferry -> Prosody -> XMPP client", ""))
        rows += [
            ("POSTs (202 / sent), connections", "%d / %d, %d" % (i["accepted"], i["posts"], i["connections"])),
            ("other statuses / failures", "%s / %d" % (
                {k: c for k, c in i["statuses"].items() if k != "202"} or "none", i["post_failures"])),
            ("accepted msgs/s (first POST -> last 202)", "%s  (%s s)" % (
                fmt(i["accepted_per_s"], "%.0f"), fmt(i["accept_seconds"]))),
            ("delivered msgs/s (first POST -> last msg)", "%s  (%s s)" % (
                fmt(i["delivered_per_s"], "%.0f"), fmt(i["deliver_seconds"]))),
            ("lost / duplicates / XMPP errors", "%d / %d / %d" % (i["lost"], i["duplicates"], i["xmpp_errors"])),
            ("pending rows afterwards", fmt(i["pending_after"])),
            ("ferry CPU us/msg (Prosody)", "%s  (%s)" % (fmt(i["ferry_cpu_us_per_msg"]),
                                                       fmt(i["prosody_cpu_us_per_msg"]))),
            ("busy: ferry/Prosody/poster/reader/other", " / ".join(
                "%.0f%%" % (100 * i["busy"][k]) for k in ("ferry", "prosody", "poster", "reader", "other"))),
            ("ferry max RSS (VmHWM)", "%s MiB" % fmt(i["ferry_vmhwm_mib"])),
            ("ferry warn/error log lines", "%d" % i["ferry_log"]["warn_or_error"]),
            ("target", "PASS" if v["inbound"][0] else "FAIL (%s)" % v["inbound"][1]),
        ]
    o = r.get("outbound")
    if o:
        rows.append(("OUTBOUND XMPP -> Prosody -> ferry -> HTTP (bench_webhook)", ""))
        rows += [
            ("messages (arrived / sent)", "%d / %d" % (o["arrived"], o["messages"])),
            ("msgs/s through the store", "%s  (%s s)" % (fmt(o["delivered_per_s"], "%.0f"), o["seconds"])),
            ("lost / duplicates / XMPP errors", "%d / %d / %d" % (o["lost"], o["duplicates"], o["xmpp_errors"])),
            ("ferry CPU us/msg (Prosody)", "%s  (%s)" % (fmt(o["ferry_cpu_us_per_msg"]),
                                                       fmt(o["prosody_cpu_us_per_msg"]))),
            ("busy: ferry/Prosody/receiver/other", " / ".join(
                "%.0f%%" % (100 * o["busy"][k]) for k in ("ferry", "prosody", "receiver", "other"))),
            ("ferry max RSS (VmHWM)", "%s MiB" % fmt(o["ferry_vmhwm_mib"])),
            ("target", "PASS" if v["outbound"][0] else "FAIL (%s)" % v["outbound"][1]),
        ]
    b = r.get("backlog")
    if b:
        rows.append(("BACKLOG  %d msgs XMPP -> ferry, receiver refusing, then drain" % b["messages"], ""))
        rows += [
            ("fill: pending rows / s / msgs/s", "%d / %s / %s" % (
                b["fill_pending"], b["fill_seconds"], fmt(b["fill_per_s"], "%.0f"))),
            ("fill: ferry CPU us/msg; busy ferry / other", "%s; %.0f%% / %.0f%%" % (
                fmt(b["fill_ferry_cpu_us_per_msg"]), 100 * b["fill_busy"]["ferry"],
                100 * b["fill_busy"]["other"])),
            ("RSS before the fill (anon)", "%s MiB (%s)" % (fmt(b["rss_baseline_mib"]),
                                                          fmt(b["rss_anon_baseline_mib"]))),
        ]
        for s in b["samples"]:
            if s["at"] in (b["growth_from"], b["growth_mid"], b["growth_to"]) or args.all_samples:
                rows.append(("RSS at %gk pending (anon + file)" % (s["at"] / 1000.0),
                             "%s MiB (%s + %s)%s" % (
                                 s["vmrss_mib"], s["rss_anon_mib"], s["rss_file_mib"],
                                 "  [%d rows, %.2f s]" % (s["rows"], s["t"])
                                 if args.all_samples else "")))
        rows += [
            ("RSS growth %gk -> %gk (anon)" % (b["growth_from"] / 1000.0, b["growth_to"] / 1000.0),
             "%s MiB (%s)" % (fmt(b["rss_growth_mib"], "%+.1f"), fmt(b["rss_anon_growth_mib"], "%+.1f"))),
            ("RSS growth 1k -> %gk" % (b["growth_to"] / 1000.0),
             "%s MiB" % fmt(b.get("rss_growth_from_1k_mib"), "%+.1f")),
            ("RSS growth %gk -> %gk (anon)" % (b["growth_mid"] / 1000.0, b["growth_to"] / 1000.0),
             "%s MiB (%s)" % (fmt(b["rss_growth_second_half_mib"], "%+.1f"),
                              fmt(b["rss_anon_growth_second_half_mib"], "%+.1f"))),
            ("RSS during a %.0f s hold (min-max)" % b["hold_seconds"],
             "%s-%s MiB" % tuple(b["rss_hold_min_max_mib"]) if b["rss_hold_min_max_mib"] else "-"),
            ("drain msgs/s (first -> last POST)", "%s  (%s s)" % (fmt(b["drain_per_s"], "%.0f"),
                                                                fmt(b["drain_seconds"]))),
            ("drain: listen -> first POST / -> 0 pending", "%s s / %s s" % (
                fmt(b["retry_to_first_post_s"]), fmt(b["pending_zero_after_listen_s"]))),
            ("drain: ferry CPU us/msg; busy ferry / other", "%s; %.0f%% / %.0f%%" % (
                fmt(b["drain_ferry_cpu_us_per_msg"]), 100 * b["drain_busy"]["ferry"],
                100 * b["drain_busy"]["other"])),
            ("arrived / lost / duplicates", "%d / %d / %d" % (b["arrived"], b["lost"], b["duplicates"])),
            ("RSS peak in drain (anon + file)", "%s MiB (%s + %s)" % (
                fmt(b["rss_drain_peak_mib"]), fmt(b["rss_drain_peak_anon_file_mib"][0]),
                fmt(b["rss_drain_peak_anon_file_mib"][1]))),
            ("RSS after drain (anon + file) / VmHWM", "%s MiB (%s + %s) / %s MiB" % (
                fmt(b["rss_after_drain_mib"]), fmt(b["rss_after_drain_anon_file_mib"][0]),
                fmt(b["rss_after_drain_anon_file_mib"][1]), fmt(b["ferry_vmhwm_mib"]))),
            ("store after (file + WAL, or the table)", "%s MiB" % b["store_mib"]),
            ("ferry warn/error log lines", "%d (refused connections before the receiver "
                                           "listened are expected)" % b["ferry_log"]["warn_or_error"]),
            ("target", "PASS" if v["backlog"][0] else "FAIL (%s)" % v["backlog"][1]),
        ]
    if any(r.get(name) for name in TWO_INSTANCES):
        import bench_durable_two as two
        rows += two.table_rows(r)
    w = max(len(k) for k, _ in rows)
    for k, val in rows:
        print(("  %-*s  %s" % (w, k, val)) if val else k)
    for name in MEASUREMENTS:
        x = r.get(name)
        if x:
            for line in x.get("ferry_log", {}).get("warn_samples", []):
                print("  %s: ferry: %s" % (name, line[:200]))
            if x.get("missing_first"):
                print("  %s: first missing: %s" % (name, ", ".join(x["missing_first"])))


SUMMARY = [
    ("in acc/s", "inbound", "accepted_per_s", "%.0f"),
    ("in del/s", "inbound", "delivered_per_s", "%.0f"),
    ("in us/m", "inbound", "ferry_cpu_us_per_msg", "%.1f"),
    ("in lost", "inbound", "lost", "%d"),
    ("out/s", "outbound", "delivered_per_s", "%.0f"),
    ("out us/m", "outbound", "ferry_cpu_us_per_msg", "%.1f"),
    ("fill/s", "backlog", "fill_per_s", "%.0f"),
    ("RSS 1k", "backlog", None, "%.1f"),
    ("RSS 100k", "backlog", None, "%.1f"),
    ("drain/s", "backlog", "drain_per_s", "%.0f"),
    ("bl lost", "backlog", "lost", "%d"),
    ("bl dups", "backlog", "duplicates", "%d"),
    ("in2 del/s", "inbound2", "delivered_per_s", "%.0f"),
    ("in2 us/m", "inbound2", "ferry_cpu_us_per_msg", "%.1f"),
    ("out2/s", "outbound2", "delivered_per_s", "%.0f"),
    ("out2 us/m", "outbound2", "ferry_cpu_us_per_msg", "%.1f"),
    ("2 lost", "inbound2", "lost", "%d"),
]


def measure(name):
    """The function that runs measurement NAME."""
    if name in TWO_INSTANCES:
        import bench_durable_two as two   # imports this module: not at the top
        return {"inbound2": two.measure_inbound2, "outbound2": two.measure_outbound2}[name]
    return {"inbound": measure_inbound, "outbound": measure_outbound, "backlog": measure_backlog}[name]


def summary_value(r, name, key, col):
    x = r.get(name)
    if not x:
        return None
    if key is None:
        at = 1000 if col == "RSS 1k" else x["messages"]
        for s in x["samples"]:
            if s["at"] == at:
                return s["vmrss_mib"]
        return None
    return x.get(key)


def print_summary(runs):
    cols = [c for c in SUMMARY if any(r.get(c[1]) for r in runs)]
    print("%-4s %-6s " % ("run", "store") + " ".join("%9s" % c[0] for c in cols))
    for k, r in enumerate(runs):
        print("%-4d %-6s " % (k + 1, r.get("store", "sqlite")) + " ".join(
            "%9s" % fmt(summary_value(r, name, key, label), f) for label, name, key, f in cols))


def print_medians(runs, stores):
    """Each store's median of every summary column, side by side (the stores
    ran in turn within each run, so they saw the same machine)."""
    cols = [c for c in SUMMARY if any(r.get(c[1]) for r in runs)]
    print("--- medians (%d run(s) each)" % (len(runs) // len(stores)))
    print("%-11s " % "store" + " ".join("%9s" % c[0] for c in cols))
    for store in stores:
        mine = [r for r in runs if r.get("store") == store]
        vals = []
        for label, name, key, f in cols:
            xs = sorted(v for v in (summary_value(r, name, key, label) for r in mine) if v is not None)
            vals.append(fmt(xs[len(xs) // 2] if len(xs) % 2 else
                            (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2.0, f) if xs else "-")
        print("%-11s " % store + " ".join("%9s" % v for v in vals))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("measurements", nargs="*", metavar="{inbound,outbound,backlog,inbound2,outbound2}",
                    help="what to run (default: the first three; inbound2 and outbound2, two "
                         "instances behind ejabberd on PostgreSQL, only when named)")
    ap.add_argument("--in-count", type=int, default=20000, help="inbound POSTs (default 20000)")
    ap.add_argument("--in-warmup", type=int, default=200, help="inbound warm-up POSTs (default 200)")
    ap.add_argument("--connections", type=int, default=8,
                    help="concurrent keep-alive HTTP connections for inbound (default 8)")
    ap.add_argument("--out-count", type=int, default=20000, help="outbound messages (default 20000)")
    ap.add_argument("--backlog-count", type=int, default=100000,
                    help="messages waiting in the outbox (default 100000)")
    ap.add_argument("--backlog-users", type=int, default=1,
                    help="XMPP senders for the backlog, one conversation each (default 1); "
                         "ferry sends one message per conversation at a time, so this is the "
                         "drain's concurrency")
    ap.add_argument("--recipients", type=int, default=4,
                    help="inbound2: endpoints and XMPP recipients, one poster each (default 4)")
    ap.add_argument("--out-users", type=int, default=8,
                    help="outbound2: XMPP senders, spread by ejabberd's hash over the two "
                         "slots (default 8)")
    ap.add_argument("--sample-every", type=int, default=10000,
                    help="sample ferry's RSS every N pending rows (default 10000)")
    ap.add_argument("--all-samples", action="store_true", help="print every RSS sample")
    ap.add_argument("--hold", type=float, default=3.0,
                    help="seconds the full backlog waits before the receiver listens (default 3)")
    ap.add_argument("--retry-delay", type=float, default=0.25,
                    help="backlog: ferry's retry_delay and retry_delay_max, seconds (default "
                         "0.25: only the head of each conversation is retried, and the drain "
                         "starts within that delay of the receiver listening)")
    ap.add_argument("--flat-mib", type=float, default=5.0,
                    help="backlog: largest VmRSS growth over the second half of the backlog "
                         "(50k -> 100k pending) that counts as flat (default 5 MiB)")
    ap.add_argument("--body-size", type=int, default=64, help="message text bytes (default 64)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="bound on each wait (a fill, a drain, a run of POSTs); default 120 s")
    ap.add_argument("--ferry-log-level", default="info", choices=("error", "warn", "info", "debug"))
    ap.add_argument("--perf", metavar="PREFIX",
                    help="record perf profiles of ferry (PREFIX-inbound.data, -outbound.data, "
                         "-backlog-fill.data, -backlog-drain.data); profiling costs ferry CPU, "
                         "so use it to see why, not for the numbers")
    ap.add_argument("--repeat", type=int, default=1, help="independent runs (default 1)")
    ap.add_argument("--json", action="store_true", help="print the result(s) as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, stores)")
    ap.add_argument("--stores", default="sqlite",
                    help="comma-separated stores to measure in every run: sqlite, pg (a throwaway "
                         "PostgreSQL, tests/e2e/pg_helpers.py); default sqlite")
    ap.add_argument("--pg", action="store_true", help="the same as --stores pg")
    args = ap.parse_args(argv)
    stores = ["pg"] if args.pg else [x.strip() for x in args.stores.split(",") if x.strip()]
    if not stores or any(x not in ("sqlite", "pg") for x in stores):
        ap.error("--stores: sqlite and/or pg")
    args.store = stores[0]
    which = args.measurements or list(MEASUREMENTS)
    bad = [m for m in which if m not in MEASUREMENTS + TWO_INSTANCES]
    if bad:
        ap.error("unknown measurement(s) %s: choose from %s" % (
            ", ".join(bad), ", ".join(MEASUREMENTS + TWO_INSTANCES)))
    if any(m in TWO_INSTANCES for m in which) and "pg" not in stores:
        ap.error("inbound2 and outbound2 run on PostgreSQL: add pg to --stores")
    if args.backlog_count < args.sample_every or args.backlog_users < 1 or args.connections < 1:
        ap.error("--backlog-count must be >= --sample-every; users and connections >= 1")

    why = bw.missing_prerequisite()
    if not why and any(m in TWO_INSTANCES for m in which):
        why = harness.ejabberd_missing()
    if why:
        log(why)
        return 2
    src = harness.ferry_binary()
    config_for = {"sqlite": harness.ferry_config}
    if "pg" in stores:
        import pg_helpers  # tests/e2e/pg_helpers.py
        pg_helpers.use_for_ferries(harness)
        config_for["pg"] = harness.ferry_config
        log("store: PostgreSQL on 127.0.0.1:%d (fsync off)" % pg_helpers.ACTIVE.port)
    bw.exit_on_signals()
    root = tempfile.mkdtemp(prefix="ferry-durable-")
    runs = []
    try:
        # One copy of the binary for every measurement: a rebuild of
        # build/ferry during the run changes nothing here.
        binary = os.path.join(root, "ferry.bin")
        ident = bw.copy_binary(src, binary)
        log("ferry binary %s (sha256 %s)" % (src, ident["sha256_12"]))
        for k in range(max(1, args.repeat)):
            if args.repeat > 1:
                log("run %d of %d" % (k + 1, args.repeat))
            for store in stores:
                args.store = store
                harness.ferry_config = config_for[store]
                run_root = os.path.join(root, "run%d-%s" % (k + 1, store))
                os.makedirs(run_root)
                r = {"binary": ident, "cpus": os.cpu_count(), "store": store}
                for name in MEASUREMENTS + TWO_INSTANCES:
                    if name in which and (name in MEASUREMENTS or store == "pg"):
                        t = time.monotonic()
                        r[name] = measure(name)(args, run_root, binary)
                        log("%s (%s) done in %.1f s" % (name, store, time.monotonic() - t))
                r["verdicts"] = {k2: v[0] for k2, v in verdicts(r, args).items()}
                runs.append(r)
                if not args.json:
                    if args.repeat > 1 or len(stores) > 1:
                        print("--- run %d, store %s" % (k + 1, store))
                    print_tables(r, args)
                    sys.stdout.flush()
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    except Exception as e:  # noqa: one line, not a trace
        log("run failed: %s: %s" % (type(e).__name__, e))
        return 2
    finally:
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(runs[0] if len(runs) == 1 else {"runs": runs}, indent=2))
    elif len(runs) > 1:
        print("--- summary")
        print_summary(runs)
        print_medians(runs, stores)
    ok = all(all(r["verdicts"].values()) for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
