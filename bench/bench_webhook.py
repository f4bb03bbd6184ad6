#!/usr/bin/env python3
"""bench_webhook.py: XMPP -> webhook throughput and CPU cost of ferry and of
Prosody, measured in the same run.

    python3 bench/bench_webhook.py [--count 20000] [--warmup 500] [--json]

What runs (all on 127.0.0.1, ephemeral ports, one temp directory):
  - Prosody with the component hooks.localhost and test users bench1..K;
  - ferry (build/ferry, or FERRY_BIN) with the webhook endpoint
    sink@hooks.localhost POSTing to the receiver;
  - a receiver process: a small asyncio HTTP/1.1 server (keep-alive) that
    answers 200 at once and counts each POST by the "id" in its JSON body;
  - K sender processes: raw XMPP c2s clients (SASL PLAIN, bind) that send
    pre-built <message/> stanzas to sink@hooks.localhost in large pipelined
    writes, never waiting per message.

What is measured: from just before the first measured message is sent until
the last measured POST arrived, the utime+stime of ferry and of Prosody
(/proc/PID/stat, divided by the clock tick), the wall time and the number of
messages that arrived. Target: ferry's CPU per message at most 1/5 of
Prosody's. Exit status: 0 pass, 1 target missed or messages lost, 2 the run
itself failed.
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

import harness  # noqa: E402  (tests/e2e/harness.py: Prosody, Ferry, helpers)

DOMAIN = "localhost"
COMPONENT = "hooks.localhost"
SECRET = "s3cret"
ENDPOINT = "sink"
TARGET_RATIO = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg, tag="bench"):
    sys.stderr.write("[%s %s] %s\n" % (tag, time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---------------------------------------------------------------- /proc


cpu_seconds = harness.cpu_seconds


def machine_busy_seconds():
    """CPU seconds all CPUs spent on anything but idle and iowait so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def binary_identity(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    st = os.stat(path)
    return {"path": path, "sha256_12": h.hexdigest()[:12],
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))}


def copy_binary(src, dst):
    """Copies the ferry binary src to dst (a rebuild of src during a run
    changes nothing then); returns dst's binary_identity, with copied_from."""
    shutil.copy2(src, dst)
    ident = binary_identity(dst)
    ident["copied_from"] = src
    return ident


def proc_status(pid, keys):
    """{key: value in KiB} for the keys of /proc/PID/status (VmRSS,
    VmHWM, ...) that are there; {} when the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in keys:
                    out[k] = int(line.split()[1])
    except OSError:
        pass
    return out


def status_kb(pid, key):
    return proc_status(pid, (key,)).get(key)


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


# ---------------------------------------------------------------- receiver

RESPONSE_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
RESPONSE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
HEADER_END = b"\r\n\r\n"
RE_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
RE_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.I)
RE_EXPECT = re.compile(rb"\r\nexpect:[ \t]*100-continue", re.I)
RE_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.I)


class Tally:
    """Which of the ids 0..count-1 have arrived, kept by one child process;
    the counts go to shared Values (one writer each, no locks): value (ids
    seen), dups (ids seen again), first_ts and last_ts when given (monotonic
    times of the first and the latest new id); done is set once every id
    arrived."""

    def __init__(self, count, value, dups, done, first_ts=None, last_ts=None):
        self.seen = bytearray(count)
        self.count = count
        self.n = 0
        self.value, self.dups, self.done = value, dups, done
        self.first_ts, self.last_ts = first_ts, last_ts

    def add(self, i, now=None):
        """Counts id i (0 <= i < count); now: its arrival time (default:
        the clock now)."""
        if self.seen[i]:
            self.dups.value += 1
            return
        self.seen[i] = 1
        self.n += 1
        self.value.value = self.n
        if self.last_ts is not None:
            if now is None:
                now = time.monotonic()
            if self.n == 1:
                self.first_ts.value = now
            self.last_ts.value = now
        if self.n == self.count:
            self.done.set()

    def missing(self):
        return [i for i in range(self.count) if not self.seen[i]]


def post_sink(record, opened=None, closed=None, refused=None):
    """An asyncio.Protocol class for the server side of kept-alive HTTP/1.1
    connections that answers 200 at once to every request and hands each
    body to record(body). Expect: 100-continue is answered; Connection:
    close closes after the answer; a chunked body (ferry sends
    Content-Length) gets 411 and a close. opened(), closed(), refused():
    called when a connection opens, closes, and on a 411."""

    class Http(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""
            if opened:
                opened()

        def connection_lost(self, exc):
            if closed:
                closed()

        def data_received(self, data):
            buf = self.buf + data if self.buf else data
            pos = 0
            out = []
            close = False
            while True:
                he = buf.find(HEADER_END, pos)
                if he < 0:
                    break
                head = buf[pos:he]
                if RE_CHUNKED.search(head):
                    out.append(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                    if refused:
                        refused()
                    close = True
                    pos = len(buf)
                    break
                m = RE_CONTENT_LENGTH.search(head)
                n = int(m.group(1)) if m else 0
                end = he + 4 + n
                if len(buf) < end:
                    if RE_EXPECT.search(head) and not getattr(self, "continued", False):
                        self.continued = True
                        out.append(RESPONSE_100)
                    break
                self.continued = False
                record(buf[he + 4:end])
                out.append(RESPONSE_200)
                pos = end
                if RE_CLOSE.search(head):
                    close = True
                    break
            self.buf = buf[pos:]
            if out:
                self.t.write(b"".join(out) if len(out) > 1 else out[0])
            if close:
                self.t.close()

    return Http


def command(conn):
    """In a child process: the parent's next command (blocking); "stop"
    once the parent closed the pipe."""
    try:
        return conn.recv()
    except EOFError:
        return "stop"


def child_signals():
    """In a child process: SIGINT ignored (the parent stops it), SIGTERM
    ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Shared:
    """Counters the receiver writes and the main process reads (one writer
    each, so no locks)."""

    def __init__(self, ctx):
        self.measured = ctx.Value("q", 0, lock=False)      # distinct measured ids
        self.warm = ctx.Value("q", 0, lock=False)          # distinct warm-up ids
        self.dups = ctx.Value("q", 0, lock=False)          # repeated ids
        self.other = ctx.Value("q", 0, lock=False)         # requests without a known id
        self.requests = ctx.Value("q", 0, lock=False)      # every request
        self.connections = ctx.Value("q", 0, lock=False)   # connections accepted
        self.open_conns = ctx.Value("q", 0, lock=False)
        self.max_open_conns = ctx.Value("q", 0, lock=False)
        self.first_ts = ctx.Value("d", 0.0, lock=False)    # monotonic, first measured POST
        self.last_ts = ctx.Value("d", 0.0, lock=False)     # monotonic, last measured POST
        self.warm_done = ctx.Event()
        self.all_done = ctx.Event()


def receiver_main(conn, shared, count, warmup):
    """Child process: the HTTP receiver. Sends ("ready", port) on conn, then
    serves until it reads "stop" (answering with a summary)."""
    child_signals()
    measured = Tally(count, shared.measured, shared.dups, shared.all_done, shared.first_ts, shared.last_ts)
    warm = Tally(warmup, shared.warm, shared.dups, shared.warm_done)
    state = {"bad": 0, "samples": []}
    loads = json.loads

    def record(body):
        shared.requests.value += 1
        try:
            mid = loads(body).get("id")
        except (ValueError, AttributeError):
            mid = None
        if isinstance(mid, str) and len(mid) > 1 and mid[1:].isdigit():
            n = int(mid[1:])
            if mid[0] == "b" and n < count:
                measured.add(n)
                return
            if mid[0] == "w" and n < warmup:
                warm.add(n)
                return
        shared.other.value += 1
        if len(state["samples"]) < 5:
            state["samples"].append(bytes(body[:300]))

    def opened():
        shared.connections.value += 1
        shared.open_conns.value += 1
        if shared.open_conns.value > shared.max_open_conns.value:
            shared.max_open_conns.value = shared.open_conns.value

    def closed():
        shared.open_conns.value -= 1

    def refused():
        state["bad"] += 1

    Http = post_sink(record, opened, closed, refused)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Http, "127.0.0.1", 0, backlog=4096, reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        stop = loop.create_future()

        def on_cmd():
            cmd = command(conn)
            if cmd == "stop" and not stop.done():
                stop.set_result(None)

        loop.add_reader(conn.fileno(), on_cmd)
        conn.send(("ready", port))
        await stop
        loop.remove_reader(conn.fileno())
        missing = measured.missing()
        conn.send({"measured": measured.n, "warm": warm.n,
                   "bad": state["bad"], "missing_first": missing[:10],
                   "missing": len(missing), "other_samples": state["samples"]})
        server.close()

    asyncio.run(main())


# ---------------------------------------------------------------- sender


class XmppError(Exception):
    pass


def _read_until(sock, buf, markers, deadline, what):
    """Reads into buf until one of markers appears; returns (buf, marker)."""
    while True:
        for m in markers:
            if m in buf:
                return buf, m
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise XmppError("timed out waiting for %s; got %r" % (what, buf[-500:]))
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            raise XmppError("connection closed waiting for %s; got %r" % (what, buf[-500:]))
        buf += data


def xmpp_login(port, user, password, timeout=15.0):
    """A connected, authenticated, bound c2s socket (blocking)."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    header = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % DOMAIN).encode()
    sock.sendall(header)
    buf, _ = _read_until(sock, b"", [b"</stream:features>", b"</stream:error>"], deadline,
                         "stream features")
    if b"<mechanism>PLAIN</mechanism>" not in buf:
        raise XmppError("server offers no PLAIN: %r" % buf[-500:])
    cred = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    sock.sendall(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                  % cred).encode())
    buf, m = _read_until(sock, b"", [b"<success", b"<failure"], deadline, "SASL result")
    if m == b"<failure":
        raise XmppError("SASL PLAIN failed for %s: %r" % (user, buf[-500:]))
    sock.sendall(header)
    buf, _ = _read_until(sock, b"", [b"</stream:features>", b"</stream:error>"], deadline,
                         "stream features after SASL")
    if b"urn:ietf:params:xml:ns:xmpp-bind" not in buf:
        raise XmppError("no resource binding offered: %r" % buf[-500:])
    sock.sendall(b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 b"<resource>bench</resource></bind></iq>")
    buf, _ = _read_until(sock, b"", [b"</iq>"], deadline, "bind result")
    if b"</jid>" not in buf:
        raise XmppError("bind failed: %r" % buf[-500:])
    jid = buf[buf.index(b"<jid>") + 5:buf.index(b"</jid>")].decode()
    sock.settimeout(None)
    return sock, jid


def build_messages(prefix, ids, body_size):
    """One encoded <message/> per id."""
    to = "%s@%s" % (ENDPOINT, COMPONENT)
    out = []
    for i in ids:
        text = "bench message %d " % i
        text = (text + "x" * max(0, body_size - len(text)))[:max(body_size, 1)]
        out.append(("<message to='%s' type='chat' id='%s%d'><body>%s</body></message>"
                    % (to, prefix, i, text)).encode())
    return out


def sender_main(conn, port, user, password, warm_ids, ids, body_size, batch, rate):
    """Child process: one XMPP client. ("ready", jid) after login; then
    "warmup" and "go" send the pre-built stanzas; "stop" closes. rate 0:
    as fast as the socket takes them, in writes of batch stanzas; rate > 0:
    that many stanzas per second, written every 10 ms."""
    child_signals()
    try:
        sock, jid = xmpp_login(port, user, password)
        warm = b"".join(build_messages("w", warm_ids, body_size))
        msgs = build_messages("b", ids, body_size)
        if rate > 0:
            batches = None
        else:
            batches = [b"".join(msgs[k:k + batch]) for k in range(0, len(msgs), batch)]
    except Exception as e:  # noqa: reported to the parent
        conn.send(("error", "%s: %s" % (user, e)))
        return
    # Drain what the server sends (errors would show here), so that its
    # writes never block on us.
    stats = {"bytes": 0, "errors": 0, "closed": False, "head": b""}

    def drain():
        tail = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                stats["closed"] = True
                break
            stats["bytes"] += len(data)
            if len(stats["head"]) < 2000:
                stats["head"] += data[:2000]
            chunk = tail + data
            stats["errors"] += (chunk.count(b"type='error'") + chunk.count(b'type="error"')
                                - tail.count(b"type='error'") - tail.count(b'type="error"'))
            tail = chunk[-20:]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    conn.send(("ready", jid))
    while True:
        cmd = command(conn)
        if cmd == "warmup":
            sock.sendall(warm)
            conn.send(("sent", len(warm_ids)))
        elif cmd == "go":
            t0 = time.monotonic()
            if batches is not None:
                for b in batches:
                    sock.sendall(b)
            else:
                done = 0
                for _ in range(len(msgs) + 1):   # bounded: each round sends >= 1 or sleeps
                    if done >= len(msgs):
                        break
                    due = min(len(msgs), max(done + 1, int((time.monotonic() - t0) * rate) + 1))
                    sock.sendall(b"".join(msgs[done:due]))
                    done = due
                    nxt = t0 + done / rate
                    delay = nxt - time.monotonic()
                    if delay > 0:
                        time.sleep(max(delay, 0.01))
            t1 = time.monotonic()
            conn.send(("sent", {"t0": t0, "t1": t1, "n": len(ids)}))
        elif cmd == "stats":
            conn.send(("stats", {"bytes": stats["bytes"], "errors": stats["errors"],
                                 "closed": stats["closed"],
                                 "head": stats["head"][:1000].decode("utf-8", "replace")}))
        elif cmd == "stop":
            break
    close_stream(sock, reader)


def close_stream(sock, reader):
    """Ends the XMPP stream, waits (bounded) for the reader thread, closes."""
    try:
        sock.sendall(b"</stream:stream>")
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    reader.join(2)
    sock.close()


# ---------------------------------------------------------------- helpers


class Child:
    """A multiprocessing child with a pipe; stopped by its pid."""

    def __init__(self, ctx, target, args, name):
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_conn,) + tuple(args), name=name,
                                daemon=True)
        self.proc.start()
        child_conn.close()
        self.name = name

    def recv(self, timeout, what):
        if not self.conn.poll(timeout):
            raise TimeoutError("%s: no %s within %.0f s" % (self.name, what, timeout))
        return self.conn.recv()

    def send(self, msg):
        self.conn.send(msg)

    def stop(self, timeout=3.0):
        if self.proc.pid is None:
            return
        try:
            if self.proc.is_alive():
                self.conn.send("stop")
        except OSError:
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()          # SIGTERM to its pid
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout)


class HealthProbe:
    """GET /healthz on ferry every interval during the measured run: the
    slowest answer says how long ferry's event loop was busy without a
    break (it serves HTTP, XMPP and curl on one loop)."""

    def __init__(self, url, interval=0.1, timeout=30.0):
        self.url, self.interval, self.timeout = url, interval, timeout
        self.latencies = []
        self.failures = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="healthz-probe")

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                harness.http_request("GET", self.url, timeout=self.timeout)
                self.latencies.append(time.monotonic() - t)
            except Exception:  # noqa: counted, the run goes on
                self.failures += 1
            self._stop.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        self.thread.join(self.timeout + 5)

    def summary(self):
        lat = sorted(self.latencies)
        return {"probes": len(lat), "failures": self.failures,
                "max_ms": round(lat[-1] * 1000, 1) if lat else None,
                "median_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None}


def ferry_log_summary(text, samples=5):
    lines = text.splitlines()
    warn = [l for l in lines if re.search(r" (WARN|ERROR|warn|error) ", l)]
    return {"lines": len(lines), "warn_or_error": len(warn), "warn_samples": warn[:samples]}


def start_perf(path, pid, call_graph=("-g",)):
    """perf record of PID into PATH (its own session; stopped by its pid)."""
    proc = subprocess.Popen(
        ["perf", "record", "-F", "999"] + list(call_graph) + ["-o", path, "-p", str(pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)      # perf attaches
    return proc


def stop_perf(proc, path, report_args="--no-children", log=log):
    """SIGINT (perf writes its file then), bounded; says how to read it."""
    if proc is None:
        return
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            harness.stop_process(proc)
    log("perf profile of ferry: %s (perf report -i %s %s)" % (path, path, report_args))


def missing_prerequisite():
    """Why the benchmark cannot run here (text), or None."""
    if not os.path.exists(harness.ferry_binary()):
        return ("ferry binary not found at %s: build it first (cmake -S . -B build "
                "-DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2) or set "
                "FERRY_BIN" % harness.ferry_binary())
    if shutil.which("prosody") is None:
        return "prosody not found: apt-get install prosody"
    return None


def start_prosody(directory, users, log_level="info"):
    """A Prosody with the component and users [(name, password)] on DOMAIN."""
    prosody = harness.Prosody(directory, components={COMPONENT: SECRET}, log_level=log_level)
    for u, pw in users:
        prosody.add_user(u, DOMAIN, pw)
    prosody.start(timeout=30)
    return prosody


def start_ferry(directory, config_text, http_port, binary):
    """ferry (binary) with config_text, up (healthz 200) and linked."""
    ferry = harness.Ferry(directory, config_text, http_port=http_port, binary=binary)
    ferry.start()
    ferry.wait_healthz(200, timeout=30)
    return ferry


def exit_on_signals():
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main process (also
    when started from a shell that ignores SIGINT: background jobs)."""
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def fmt(v, f="%s"):
    return "-" if v is None else f % v


# ---------------------------------------------------------------- run


def run(args):
    why = missing_prerequisite()
    if why:
        raise SystemExit(why)
    ctx = multiprocessing.get_context("fork")
    workdir = args.workdir or tempfile.mkdtemp(prefix="ferry-bench-")
    os.makedirs(workdir, exist_ok=True)
    users = max(1, args.users)
    shared = Shared(ctx)
    children = []
    prosody = ferry = perf = probe = None
    try:
        # Forked children (receiver, senders) start before any thread exists here.
        receiver = Child(ctx, receiver_main, (shared, args.count, args.warmup), "receiver")
        children.append(receiver)
        kind, rport = receiver.recv(10, "ready")
        log("receiver on 127.0.0.1:%d (pid %d)" % (rport, receiver.proc.pid))

        creds = [("bench%d" % (k + 1), "benchpw%d" % (k + 1)) for k in range(users)]
        prosody = start_prosody(os.path.join(workdir, "prosody"), creds, args.prosody_log_level)
        log("Prosody c2s %d, component %d (pid %d)" % (prosody.c2s_port, prosody.component_port,
                                                         prosody.proc.pid))

        http_port = harness.free_port()
        component = {"adapter": "webhook", "domain": COMPONENT, "secret": SECRET,
                     "timeout": args.http_timeout,
                     "endpoints": {ENDPOINT: {"url": "http://127.0.0.1:%d/hook" % rport,
                                              "format": "json", "allow": [DOMAIN]}}}
        if args.signing:
            component["endpoints"][ENDPOINT]["signing_secret"] = harness.new_signing_secret()
        cfg = harness.ferry_config(prosody.component_port, http_port, {"hooks": component},
                                   log={"level": args.ferry_log_level})
        # Run a copy: others may rebuild build/ferry during a run, and the
        # result must name the binary that was measured.
        fdir = os.path.join(workdir, "ferry")
        os.makedirs(fdir, exist_ok=True)
        fbin = os.path.join(fdir, "ferry.bin")
        fbin_id = copy_binary(harness.ferry_binary(), fbin)
        ferry = start_ferry(fdir, cfg, http_port, fbin)
        log("ferry linked (pid %d, log level %s)" % (ferry.pid, args.ferry_log_level))

        senders = []
        for k, (u, pw) in enumerate(creds):
            warm_ids = list(range(k, args.warmup, users))
            ids = list(range(k, args.count, users))
            s = Child(ctx, sender_main, (prosody.c2s_port, u, pw, warm_ids, ids, args.body_size,
                                         args.batch, args.rate / users), "sender-%s" % u)
            children.append(s)
            senders.append(s)
        for s in senders:
            kind, info = s.recv(60, "login")
            if kind != "ready":
                raise RuntimeError("sender failed: %s" % info)
        log("%d sender(s) logged in; warm-up: %d message(s)" % (len(senders), args.warmup))

        if args.warmup:
            for s in senders:
                s.send("warmup")
            for s in senders:
                s.recv(60, "warm-up sent")
            if not shared.warm_done.wait(args.timeout):
                raise RuntimeError("warm-up: only %d of %d POSTs arrived within %.0f s\n%s" % (
                    shared.warm.value, args.warmup, args.timeout,
                    harness.tail_text(ferry.stderr(), 20)))
        time.sleep(args.settle)

        log_offset = ferry.stderr_offset()
        fpid, ppid = ferry.pid, prosody.proc.pid
        rpid = receiver.proc.pid
        spids = [s.proc.pid for s in senders]
        f0, p0, r0 = cpu_seconds(fpid), cpu_seconds(ppid), cpu_seconds(rpid)
        s0, m0 = sum(cpu_seconds(x) for x in spids), machine_busy_seconds()
        fd_peak = open_fds(fpid) or 0
        if args.perf:
            # Profiling costs ferry CPU: numbers from such a run are not the
            # benchmark's numbers.
            perf = start_perf(os.path.abspath(args.perf), fpid, ("--call-graph", "dwarf,16384"))
        probe = HealthProbe(ferry.url("/healthz")).start() if args.probe else None
        w0 = time.monotonic()
        for s in senders:
            s.send("go")
        log("sending %d message(s) from %d connection(s)" % (args.count, len(senders)))
        # Bounded wait; sample ferry's descriptors on the way (cheap).
        deadline = w0 + args.timeout
        while not shared.all_done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            shared.all_done.wait(min(0.05, remaining))
            n = open_fds(fpid)
            if n and n > fd_peak:
                fd_peak = n
        w1 = time.monotonic()
        f1, p1, r1 = cpu_seconds(fpid), cpu_seconds(ppid), cpu_seconds(rpid)
        s1, m1 = sum(cpu_seconds(x) for x in spids), machine_busy_seconds()
        if probe is not None:
            probe.stop()
        if perf is not None:
            stop_perf(perf, args.perf)
        # What ferry still does after the last POST arrived (reading the
        # responses, logging) is reported apart, after a short settle.
        time.sleep(args.settle)
        f2 = cpu_seconds(fpid)
        complete = shared.all_done.is_set()
        if not complete:
            log("time bound of %.0f s reached with %d of %d POSTs" % (
                args.timeout, shared.measured.value, args.count))

        sent = [s.recv(30, "send report")[1] for s in senders]
        t0 = min(x["t0"] for x in sent)
        t_sent = max(x["t1"] for x in sent)
        arrived = shared.measured.value
        t_last = shared.last_ts.value if arrived else w1
        elapsed = (t_last - t0) if complete else (w1 - t0)
        stats = []
        for s in senders:
            s.send("stats")
            stats.append(s.recv(10, "stats")[1])
        time.sleep(0.2)   # let late duplicates show
        receiver.send("stop")
        rsum = receiver.recv(10, "summary")

        ferry_cpu, prosody_cpu, recv_cpu = f1 - f0, p1 - p0, r1 - r0
        per_f = ferry_cpu / arrived if arrived else None
        per_p = prosody_cpu / arrived if arrived else None
        ratio = (prosody_cpu / ferry_cpu) if ferry_cpu > 0 else None
        result = {
            "messages": args.count,
            "arrived": arrived,
            "lost": args.count - arrived,
            "duplicates": shared.dups.value,
            "unexpected_requests": shared.other.value,
            "seconds": round(elapsed, 3),
            "send_seconds": round(t_sent - t0, 3),
            "messages_per_second": round(arrived / elapsed, 1) if elapsed > 0 else None,
            "window_seconds": round(w1 - w0, 3),
            "ferry_cpu_s": round(ferry_cpu, 3),
            "ferry_cpu_us_per_msg": round(per_f * 1e6, 2) if per_f is not None else None,
            "ferry_cpu_s_with_tail": round(f2 - f0, 3),
            "ferry_cpu_utilisation": round(ferry_cpu / (w1 - w0), 3),
            "prosody_cpu_s": round(prosody_cpu, 3),
            "prosody_cpu_us_per_msg": round(per_p * 1e6, 2) if per_p is not None else None,
            "prosody_cpu_utilisation": round(prosody_cpu / (w1 - w0), 3),
            "receiver_cpu_utilisation": round(recv_cpu / (w1 - w0), 3),
            "senders_cpu_utilisation": round((s1 - s0) / (w1 - w0), 3),
            # Everything else on the machine (this script, the probe, other
            # people's jobs): high values mean a disturbed run.
            "other_cpu_utilisation": round(max(0.0, (m1 - m0) - ferry_cpu - prosody_cpu - recv_cpu
                                               - (s1 - s0)) / (w1 - w0), 3),
            "ferry_binary": fbin_id,
            "ratio_prosody_over_ferry": round(ratio, 2) if ratio is not None else None,
            "target_ratio": TARGET_RATIO,
            "pass": bool(ratio is not None and ratio >= TARGET_RATIO),
            "ferry_vmhwm_kb": status_kb(fpid, "VmHWM"),
            "ferry_vmrss_kb_after": status_kb(fpid, "VmRSS"),
            "ferry_fds_peak_sampled": fd_peak,
            "prosody_vmhwm_kb": status_kb(ppid, "VmHWM"),
            "http_connections": shared.connections.value,
            "http_max_open_connections": shared.max_open_conns.value,
            "xmpp_errors_to_senders": sum(x["errors"] for x in stats),
            "senders": users,
            "healthz_probe": probe.summary() if probe is not None else None,
            "rate_requested": args.rate or None,
            "warmup": args.warmup,
            "settle": args.settle,
            "perf": bool(args.perf),
            "body_size": args.body_size,
            "ferry_log_level": args.ferry_log_level,
            "signing": bool(args.signing),
            "ferry_log": ferry_log_summary(ferry.stderr(log_offset)),
            "clock_ticks_per_s": CLK_TCK,
            "cpus": os.cpu_count(),
            "workdir": workdir if args.keep else None,
        }
        if rsum.get("missing"):
            result["missing_ids_first"] = ["b%d" % i for i in rsum["missing_first"]]
        if any(x["errors"] for x in stats):
            result["xmpp_received_sample"] = [x["head"] for x in stats if x["errors"]][:1]
        if not ferry.running():
            result["ferry_exit"] = ferry.proc.returncode
        return result
    finally:
        if probe is not None:
            probe.stop()
        if perf is not None and perf.poll() is None:
            harness.stop_process(perf)
        for c in reversed(children):
            c.stop()
        if ferry is not None:
            ferry.stop()
        if prosody is not None:
            prosody.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            log("kept %s" % workdir)


def print_table(r):
    f = fmt
    rows = [
        ("messages (arrived / sent)", "%d / %d" % (r["arrived"], r["messages"])),
        ("lost / duplicates", "%d / %d%s" % (
            r["lost"], r["duplicates"],
            "" if not r["lost"] else "  (INCOMPLETE: per-message CPU below is per arrived message)")),
        ("seconds (first send -> last POST)", f(r["seconds"], "%.3f")),
        ("messages/s", f(r["messages_per_second"], "%.0f")),
        ("ferry CPU s", f(r["ferry_cpu_s"], "%.3f")),
        ("ferry CPU us/msg", f(r["ferry_cpu_us_per_msg"], "%.1f")),
        ("ferry CPU s, + %.1f s after last POST" % r["settle"], f(r["ferry_cpu_s_with_tail"], "%.3f")),
        ("Prosody CPU s", f(r["prosody_cpu_s"], "%.3f")),
        ("Prosody CPU us/msg", f(r["prosody_cpu_us_per_msg"], "%.1f")),
        ("ratio Prosody/ferry", f(r["ratio_prosody_over_ferry"], "%.2f")),
        ("target (ratio >= %.0f)" % r["target_ratio"], "PASS" if r["pass"] else "FAIL"),
        ("ferry max RSS (VmHWM)", f(r["ferry_vmhwm_kb"] and r["ferry_vmhwm_kb"] / 1024, "%.1f MiB")),
        ("CPU busy: ferry / Prosody / receiver", "%.0f%% / %.0f%% / %.0f%%" % (
            100 * r["ferry_cpu_utilisation"], 100 * r["prosody_cpu_utilisation"],
            100 * r["receiver_cpu_utilisation"])),
        ("CPU busy: senders / everything else", "%.0f%% / %.0f%% (of %d CPUs)" % (
            100 * r["senders_cpu_utilisation"], 100 * r["other_cpu_utilisation"], r["cpus"])),
        ("HTTP connections (total / max open)", "%d / %d" % (
            r["http_connections"], r["http_max_open_connections"])),
        ("ferry descriptors (peak sampled)", "%d" % r["ferry_fds_peak_sampled"]),
        ("ferry /healthz latency (median / max)",
         "%s / %s ms%s" % (r["healthz_probe"]["median_ms"], r["healthz_probe"]["max_ms"],
                           ", %d failed" % r["healthz_probe"]["failures"]
                           if r["healthz_probe"]["failures"] else "")
         if r["healthz_probe"] else "not probed"),
        ("sender write time", f(r["send_seconds"], "%.3f s")),
        ("ferry log lines (warn+error)", "%d (%d)" % (r["ferry_log"]["lines"],
                                                      r["ferry_log"]["warn_or_error"])),
    ]
    w = max(len(k) for k, _ in rows)
    print("ferry webhook benchmark: XMPP -> Prosody -> ferry -> HTTP, %d CPU(s), "
          "ferry log level %s, body %d bytes, %d sender(s), %s" % (
              r["cpus"], r["ferry_log_level"], r["body_size"], r["senders"],
              "paced at %g msg/s" % r["rate_requested"] if r["rate_requested"] else "unpaced"))
    for k, v in rows:
        print("  %-*s  %s" % (w, k, v))
    print("  ferry binary: %s (sha256 %s, built %s)" % (
        r["ferry_binary"]["copied_from"], r["ferry_binary"]["sha256_12"],
        r["ferry_binary"]["mtime"]))
    for line in r["ferry_log"]["warn_samples"]:
        print("  ferry: %s" % line[:200])
    if r.get("missing_ids_first"):
        print("  first missing ids: %s" % ", ".join(r["missing_ids_first"]))
    if r.get("xmpp_received_sample"):
        print("  XMPP errors, sample: %s" % r["xmpp_received_sample"][0][:400])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000, help="measured messages (default 20000)")
    ap.add_argument("--warmup", type=int, default=500, help="warm-up messages (default 500)")
    ap.add_argument("--users", type=int, default=1,
                    help="sending XMPP connections, one user and process each (default 1)")
    ap.add_argument("--body-size", type=int, default=64, help="message body bytes (default 64)")
    ap.add_argument("--batch", type=int, default=1000, help="stanzas per sendall (default 1000)")
    ap.add_argument("--rate", type=float, default=0,
                    help="messages/s over all senders; 0 (default): no pacing, a pipelined flood")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="time bound for the measured run and for the warm-up (default 120 s)")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="pause between warm-up and measurement (default 0.5 s)")
    ap.add_argument("--ferry-log-level", default="info", choices=("error", "warn", "info", "debug"),
                    help="ferry's [log] level (default info, the shipped default)")
    ap.add_argument("--prosody-log-level", default="info", help="Prosody's log level (default info)")
    ap.add_argument("--http-timeout", type=float, default=10.0,
                    help="ferry's per-request timeout, component key 'timeout' (default 10)")
    ap.add_argument("--signing", action="store_true", help="sign POSTs (Standard Webhooks)")
    ap.add_argument("--perf", metavar="FILE",
                    help="record a perf profile of ferry during the measured run into FILE "
                         "(costs ferry CPU: use it to see why, not for the numbers)")
    ap.add_argument("--no-probe", dest="probe", action="store_false",
                    help="do not GET ferry's /healthz every 100 ms during the run")
    ap.add_argument("--repeat", type=int, default=1,
                    help="independent runs (fresh Prosody and ferry each); the table shows "
                         "every run and the median one in full (default 1)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--workdir", help="work directory (default: a new temp dir, removed after)")
    args = ap.parse_args(argv)
    if args.count < 1 or args.warmup < 0:
        ap.error("--count must be >= 1 and --warmup >= 0")

    exit_on_signals()
    runs = []
    try:
        for i in range(max(1, args.repeat)):
            if args.repeat > 1:
                log("run %d of %d" % (i + 1, args.repeat))
            runs.append(run(args))
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    except Exception as e:  # noqa: one line, not a trace, for expected failures
        log("run failed: %s: %s" % (type(e).__name__, e))
        return 2
    if len(runs) == 1:
        r = runs[0]
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            print_table(r)
        return 0 if (r["pass"] and r["lost"] == 0) else 1
    # Several runs: the run with the median ferry CPU per message stands
    # for all of them (a flood's cost varies with how deep ferry's backlog
    # gets, and other jobs on the machine disturb single runs).
    key = lambda r: (r["ferry_cpu_us_per_msg"] is None, r["ferry_cpu_us_per_msg"] or 0)
    med = sorted(runs, key=key)[len(runs) // 2]
    if args.json:
        print(json.dumps({"runs": runs, "median_run": runs.index(med)}, indent=2))
    else:
        print("%-4s %8s %6s %9s %11s %11s %7s %9s %7s" % (
            "run", "msgs/s", "lost", "ferry s", "ferry us/m", "Prosody us", "ratio", "ferry MiB",
            "other%"))
        for i, r in enumerate(runs):
            print("%-4d %8.0f %6d %9.3f %11.1f %11.1f %7.2f %9.1f %7.0f" % (
                i + 1, r["messages_per_second"] or 0, r["lost"], r["ferry_cpu_s"],
                r["ferry_cpu_us_per_msg"] or 0, r["prosody_cpu_us_per_msg"] or 0,
                r["ratio_prosody_over_ferry"] or 0, (r["ferry_vmhwm_kb"] or 0) / 1024,
                100 * r["other_cpu_utilisation"]))
        print("median run (by ferry CPU per message): %d" % (runs.index(med) + 1))
        print_table(med)
    return 0 if (med["pass"] and all(r["lost"] == 0 for r in runs)) else 1


if __name__ == "__main__":
    sys.exit(main())
