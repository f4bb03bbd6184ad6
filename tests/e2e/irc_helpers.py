"""IRC side of the end-to-end tests: an ngircd runner and a raw-socket IRC
client that keeps every line it reads and waits for lines with deadlines.

Rules kept (same as harness.py): 127.0.0.1 only, ephemeral ports, every wait
bounded, every process stopped by its pid (SIGTERM, then SIGKILL).

ngircd (Debian's 26.1) notes, see ../shared/TESTBED.md:
- `ngircd -n -f FILE` stays in the foreground (the pid we started is the
  server) and logs to stdout; ready once it logs `Server "NAME" ... ready.`
- Started as root it drops to nobody: its PidFile folder must be owned by
  nobody and every folder above it traversable, so an instance lives in its
  own 0755 folder under /tmp, linked from the test's folder as "instance";
  cleanup() copies its log back and removes it.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time

import harness as h


# ---------------------------------------------------------------- TLS


def make_self_signed_cert(directory, cn="irc.localhost"):
    """A self-signed RSA certificate and key (PEM, world-readable) made with
    openssl; returns (cert_path, key_path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=%s" % cn,
                        "-addext", "subjectAltName=DNS:%s" % cn],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: %s" % r.stderr)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


# ---------------------------------------------------------------- ngircd


class Ngircd(h.ServerProcess):
    """One ngircd on 127.0.0.1: a plain port and, with tls=True, a TLS port
    with a self-signed certificate. start()/stop() may be repeated (same
    ports), e.g. to test a server restart."""

    kind = "ngircd"

    def __init__(self, workdir, name="irc.localhost", port=None, tls=False, tls_port=None):
        if shutil.which("ngircd") is None and not os.path.exists("/usr/sbin/ngircd"):
            raise RuntimeError("ngircd is not installed (apt-get install ngircd)")
        self.binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.port = port or h.free_port()
        self.tls = tls
        self.tls_port = (tls_port or h.free_port()) if tls else None
        self._make_instance("ferry-ngircd-", 0o755)
        self.run_dir = os.path.join(self.dir, "run")
        self.include_dir = os.path.join(self.dir, "conf.d")   # keeps /etc/ngircd/conf.d out
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(self.include_dir, exist_ok=True)
        shutil.chown(self.run_dir, "nobody")
        self.config_path = os.path.join(self.dir, "ngircd.conf")
        self.log_path = os.path.join(self.dir, "ngircd.log")
        self.pid_path = os.path.join(self.run_dir, "ngircd.pid")
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_self_signed_cert(self.dir, cn=name)
        self.proc = None
        self.starts = 0
        self.write_config()

    def write_config(self):
        lines = [
            "[Global]",
            "Name = %s" % self.name,
            "Info = ferry e2e test server",
            "AdminInfo1 = ferry tests",
            "AdminInfo2 = loopback",
            "AdminEMail = root@localhost",
            "Listen = 127.0.0.1",
            "Ports = %d" % self.port,
            "PidFile = %s" % self.pid_path,
            'MotdPhrase = "ferry test server"',
            "ServerUID = nobody",
            "[Limits]",
            "MaxConnectionsIP = 0",
            "MaxConnections = 0",
            "MaxJoins = 0",
            "MaxPenaltyTime = 0",
            "MaxNickLength = 30",
            "PingTimeout = 300",
            "PongTimeout = 60",
            "[Options]",
            "PAM = no",
            "DNS = no",
            "Ident = no",
            "IncludeDir = %s" % self.include_dir,
        ]
        if self.tls:
            lines += [
                "[SSL]",
                "CertFile = %s" % self.cert,
                "KeyFile = %s" % self.key,
                "Ports = %d" % self.tls_port,
            ]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config_path, 0o644)

    # -- process

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=20):
        assert not self.running(), "ngircd already running"
        offset = h.file_size(self.log_path)
        self._spawn([self.binary, "-n", "-f", self.config_path], self.log_path)
        self.starts += 1
        ready = re.compile(r'Server "%s" .*ready\.' % re.escape(self.name))

        def check():
            if self.proc.poll() is not None:
                raise self._exited_during_start(self.log_text(offset))
            return ready.search(self.log_text(offset)) is not None

        return self._wait_ready(check, timeout, 0.02, "ngircd readiness")

    def stop(self, timeout=5.0):
        """SIGTERM to its pid, SIGKILL after timeout. Returns the exit code."""
        return super().stop(timeout)

    def cleanup(self):
        """After stop(): copies the log next to the test's files and removes
        the instance folder."""
        self._remove_instance([(self.log_path, "ngircd.log"), (self.config_path, "ngircd.conf")])

    # -- log

    def report(self):
        return "ngircd %s (pid %s, ports %s/%s), log %s, tail:\n%s" % (
            self.name, self.pid, self.port, self.tls_port, self.log_path,
            h.tail_text(self.log_text(), 20))


# ---------------------------------------------------------------- IRC client


def socket_lines(conn, stopped):
    """The lines (bytes, CR LF taken off) a peer sends on CONN, until it
    closes, the socket fails or STOPPED() is true: for fake IRC servers.
    CONN needs a short timeout, so that STOPPED is looked at."""
    buf = b""
    while not stopped():
        try:
            data = conn.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.rstrip(b"\r")


class IrcLine:
    """One line as read (without CR LF): raw bytes, text (UTF-8, undecodable
    bytes replaced), prefix, nick, command (upper case), params."""

    def __init__(self, raw):
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        self.time = time.monotonic()
        self.prefix = None
        rest = self.text
        if rest.startswith("@"):
            _, _, rest = rest.partition(" ")
        if rest.startswith(":"):
            self.prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
        self.command, _, rest = rest.partition(" ")
        self.command = self.command.upper()
        self.params = []
        while rest:
            rest = rest.lstrip(" ")
            if not rest:
                break
            if rest.startswith(":"):
                self.params.append(rest[1:])
                break
            p, _, rest = rest.partition(" ")
            self.params.append(p)
        self.nick = self.prefix.split("!", 1)[0] if self.prefix else None

    @property
    def trailing(self):
        return self.params[-1] if self.params else None

    @property
    def wire_len(self):
        """Bytes on the wire, CR LF included."""
        return len(self.raw) + 2

    def __repr__(self):
        return "<IRC %r>" % self.text[:300]


class IrcClient:
    """A raw IRC client on a socket: registers (NICK/USER, waits for 001),
    answers PING by itself, and keeps every line it reads (a reader thread).
    Waits look at the lines read since a mark (mark() returns one)."""

    def __init__(self, port, nick, host="127.0.0.1", user="tester", realname="IRC tester", tls=False,
                 timeout=10):
        self.nick = nick
        self.port = port
        self._lines = []
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._eof = False
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=host)
        sock.settimeout(0.2)
        self.sock = sock
        self._send_lock = threading.Lock()
        self.thread = threading.Thread(target=self._reader, daemon=True, name="irc-" + nick)
        self.thread.start()
        try:
            self.send("NICK %s" % nick)
            self.send("USER %s 0 * :%s" % (user, realname))
            welcome = self.wait(lambda l: l.command in ("001", "433", "432", "ERROR"), timeout=timeout,
                                since=0, what="registration of %s" % nick)
            if welcome.command != "001":
                raise RuntimeError("IRC registration of %s failed: %r" % (nick, welcome))
            self.nick = welcome.params[0]
        except Exception:
            self.close(quit=False)
            raise

    # -- reading

    def _reader(self):
        buf = b""
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                if not raw:
                    continue
                line = IrcLine(raw)
                if line.command == "PING":
                    try:
                        self.send("PONG :%s" % (line.trailing or ""))
                    except OSError:
                        pass
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()

    def mark(self):
        """An index: waits with since=mark look only at lines read after it."""
        with self._cond:
            return len(self._lines)

    def lines(self, pred=None, since=0):
        with self._cond:
            return [l for l in self._lines[since:] if pred is None or pred(l)]

    @property
    def eof(self):
        with self._cond:
            return self._eof

    def wait(self, pred, timeout=10, since=None, what="line", count=1):
        """Waits until count lines read since the mark `since` (default 0:
        every line read so far counts) match pred; returns the first
        (count == 1) or the list. pred may be a regex string, searched in
        the line's text. Stops early when the server closed the connection."""
        if isinstance(pred, str):
            rx = re.compile(pred)
            pred = lambda l, rx=rx: rx.search(l.text) is not None  # noqa: E731
        since = 0 if since is None else since
        deadline = time.monotonic() + timeout
        with self._cond:
            for _ in range(100000):
                got = [l for l in self._lines[since:] if pred(l)]
                if len(got) >= count:
                    return got[0] if count == 1 else got[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:   # no more lines will come
                    break
                self._cond.wait(min(remaining, 0.5))
            recent = self._lines[max(since, len(self._lines) - 12):]
            eof = self._eof
        raise TimeoutError("IRC %s: %d of %d %s within %.1f s%s; recent lines: %r" % (
            self.nick, len(got), count, what, timeout, " (connection closed)" if eof else "", recent))

    def expect_none(self, pred, duration, since=None, what="line"):
        """Asserts that no line matching pred arrives within duration (a
        bounded sleep); returns nothing."""
        if isinstance(pred, str):
            rx = re.compile(pred)
            pred = lambda l, rx=rx: rx.search(l.text) is not None  # noqa: E731
        since = self.mark() if since is None else since
        deadline = time.monotonic() + duration
        with self._cond:
            for _ in range(100000):
                got = [l for l in self._lines[since:] if pred(l)]
                if got:
                    raise AssertionError("IRC %s: unexpected %s: %r" % (self.nick, what, got))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    # -- writing

    def send(self, line):
        """Sends one line (str or bytes); CR LF is appended. A CR or LF
        inside is refused: this client never injects."""
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        if b"\r" in data or b"\n" in data:
            raise ValueError("CR/LF inside an IRC line: %r" % data)
        with self._send_lock:
            self.sock.sendall(data + b"\r\n")

    def privmsg(self, target, text):
        if isinstance(text, bytes):
            self.send(b"PRIVMSG " + target.encode() + b" :" + text)
        else:
            self.send("PRIVMSG %s :%s" % (target, text))

    def join(self, channel, timeout=10):
        """JOIN and wait for the end of NAMES; returns the nicks (with their
        prefixes) from NAMES."""
        m = self.mark()
        self.send("JOIN %s" % channel)
        self.wait(lambda l: l.command == "366" and len(l.params) > 1 and l.params[1].lower() == channel.lower(),
                  timeout=timeout, since=m, what="end of NAMES for %s" % channel)
        names = []
        for l in self.lines(lambda l: l.command == "353" and l.params[-2].lower() == channel.lower(), since=m):
            names.extend(l.trailing.split())
        return names

    def names(self, channel, timeout=10):
        """NAMES channel: the nicks with their prefixes."""
        m = self.mark()
        self.send("NAMES %s" % channel)
        self.wait(lambda l: l.command == "366" and l.params[1].lower() == channel.lower(), timeout=timeout,
                  since=m, what="end of NAMES for %s" % channel)
        out = []
        for l in self.lines(lambda l: l.command == "353" and l.params[-2].lower() == channel.lower(), since=m):
            out.extend(l.trailing.split())
        return out

    def ison(self, *nicks, timeout=10):
        """ISON: the nicks of those that are on the server now."""
        m = self.mark()
        self.send("ISON %s" % " ".join(nicks))
        reply = self.wait(lambda l: l.command == "303", timeout=timeout, since=m, what="ISON reply")
        return (reply.trailing or "").split()

    def close(self, quit=True, reason="bye", timeout=5):
        if quit and not self._closed.is_set():
            try:
                self.send("QUIT :%s" % reason)
                # the server answers a QUIT with ERROR and closes: wait a bit
                deadline = time.monotonic() + 2
                with self._cond:
                    while not self._eof and time.monotonic() < deadline:
                        self._cond.wait(0.1)
            except OSError:
                pass
        self._closed.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(timeout)


def strip_nick_prefix(name, prefixes="~&@%+"):
    return name.lstrip(prefixes)
