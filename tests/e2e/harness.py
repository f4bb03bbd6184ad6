"""End-to-end harness for ferry: a Prosody runner, a ferry runner, an HTTP
receiver, a synchronous XMPP client and small helpers.

Importable without pytest (bench/ uses it). Rules it keeps:
- only 127.0.0.1, ephemeral ports (bind port 0 to find one);
- every run in its own directory (Prosody data, configs, logs);
- every wait bounded in time and in count (poll with a deadline);
- every process it starts is stopped by its pid: SIGTERM, then SIGKILL
  after a bound.
"""

import asyncio
import base64
import hashlib
import hmac
import http.client
import inspect
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

# Objects with a running process register here, so that a failing test can
# show their log tails (conftest.py reads it).
LIVE = []
_LIVE_LOCK = threading.Lock()


def _register(obj):
    with _LIVE_LOCK:
        if obj not in LIVE:
            LIVE.append(obj)


def _unregister(obj):
    with _LIVE_LOCK:
        if obj in LIVE:
            LIVE.remove(obj)


# ---------------------------------------------------------------- helpers


def closed_after(make, best_effort=False):
    """A fixture body: yields a factory calling MAKE that remembers what it
    made, and closes all of it at the end of the test (ignoring errors when
    BEST_EFFORT)."""
    made = []

    def factory(*args, **kwargs):
        made.append(make(*args, **kwargs))
        return made[-1]

    yield factory
    for c in made:
        try:
            c.close()
        except Exception:  # noqa: only when best_effort
            if not best_effort:
                raise


def ferry_binary():
    """FERRY_BIN, or build/ferry under the repository root."""
    path = os.environ.get("FERRY_BIN") or os.path.join(REPO_ROOT, "build", "ferry")
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return path


# Ports handed out by this process. The kernel may give the same port to two
# bind(0) calls once the first socket is closed (CI once saw Prosody's c2s and
# component ports equal), and ports in the ephemeral range can be taken by any
# outgoing connection before the server binds them: so ports come from below
# that range and never twice per test run.
_PORTS_GIVEN = set()
_PORT_LOW, _PORT_HIGH = 20000, 32767


def free_port():
    """A free TCP port on 127.0.0.1, below the ephemeral range, never the same
    one twice in this process. Bounded: 2,000 tries."""
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randint(_PORT_LOW, _PORT_HIGH)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free port in %d-%d after 2,000 tries" % (_PORT_LOW, _PORT_HIGH))


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns something truthy; returns that value.
    Bounded in time (timeout) and so in count (timeout / interval)."""
    deadline = time.monotonic() + timeout
    max_polls = int(timeout / interval) + 2
    for _ in range(max_polls):
        value = pred()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    value = pred()
    if value:
        return value
    raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))


def tail_text(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def read_file(path, offset=0):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def stop_process(proc, term_timeout=5.0, kill_timeout=5.0):
    """SIGTERM to proc.pid (after SIGCONT, in case it was stopped), wait up to
    term_timeout, then SIGKILL and wait up to kill_timeout. Returns
    (returncode, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=term_timeout)
        return proc.returncode, False
    except subprocess.TimeoutExpired:
        pass
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=kill_timeout)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode, True


def sanitizer_reports(text):
    return [p for p in SANITIZER_PATTERNS if p in text]


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds, from
    /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ferry_env(extra=None):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    if extra:
        env.update(extra)
    return env


def run_ferry_cli(args, timeout=20, binary=None):
    """Runs the ferry binary to completion (bounded) and returns the
    CompletedProcess (text mode)."""
    binary = binary or ferry_binary()
    return subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, errors="replace", timeout=timeout, env=ferry_env())


# ---------------------------------------------------------------- TOML


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k):
    return k if _BARE_KEY.match(k) else json.dumps(k)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r or "inf" in r or "nan" in r) else r + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError("no TOML for %r" % (v,))


def to_toml(doc, _prefix=()):
    """A nested dict as TOML: scalars of a table first, then its subtables."""
    out = []
    scalars = [(k, v) for k, v in doc.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in doc.items() if isinstance(v, dict)]
    if _prefix and (scalars or not tables):
        out.append("[" + ".".join(_toml_key(p) for p in _prefix) + "]")
    for k, v in scalars:
        out.append("%s = %s" % (_toml_key(k), toml_value(v)))
    if out:
        out.append("")
    for k, v in tables:
        out.append(to_toml(v, _prefix + (k,)))
    return "\n".join(out)


def ferry_config(xmpp_port, http_port, components, xmpp=None, log=None, http=None, admin=None,
                 storage=None):
    """A gateway.toml as text. components: {name: table dict}; admin and
    storage: the [admin] and [storage] tables (left out when None)."""
    doc = {"xmpp": {"host": "127.0.0.1", "port": xmpp_port}}
    doc["xmpp"].update(xmpp or {})
    doc["http"] = {"listen": "127.0.0.1:%d" % http_port,
                   "public_url": "http://127.0.0.1:%d" % http_port}
    doc["http"].update(http or {})
    doc["log"] = {"level": "info"}
    doc["log"].update(log or {})
    if admin is not None:
        doc["admin"] = dict(admin)
    if storage is not None:
        doc["storage"] = dict(storage)
    doc["components"] = components
    return to_toml(doc)


# ---------------------------------------------------------------- Prometheus


class Sample:
    """One sample of the Prometheus text format: name, labels (dict), value."""

    def __init__(self, name, labels, value):
        self.name = name
        self.labels = labels
        self.value = value

    def __repr__(self):
        return "%s%r %r" % (self.name, self.labels, self.value)


_PROM_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROM_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*')
_PROM_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _prom_unescape(v):
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _prom_float(text, lineno):
    if text in ("+Inf", "Inf"):
        return float("inf")
    if text == "-Inf":
        return float("-inf")
    if text == "NaN":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ValueError("line %d: %r is not a sample value" % (lineno, text))


def parse_prometheus(text):
    """Parses the Prometheus text exposition format (0.0.4) strictly.
    Returns (samples, types, helps): samples a list of Sample, types and
    helps {family name: text}. Raises ValueError naming the line on anything
    malformed: a sample line that does not parse (name, labels, escapes,
    value, timestamp), a TYPE after the family's samples or twice, an
    unknown type, a duplicate series, a missing final newline."""
    samples, types, helps, seen_series, sampled = [], {}, {}, set(), set()
    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    for lineno, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _PROM_NAME.fullmatch(name):
                    raise ValueError("line %d: bad metric name %r" % (lineno, name))
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if rest not in _PROM_TYPES:
                        raise ValueError("line %d: unknown type %r" % (lineno, rest))
                    if name in types:
                        raise ValueError("line %d: second TYPE for %s" % (lineno, name))
                    if name in sampled:
                        raise ValueError("line %d: TYPE for %s after its samples" % (lineno, name))
                    types[name] = rest
                else:
                    if name in helps:
                        raise ValueError("line %d: second HELP for %s" % (lineno, name))
                    helps[name] = rest
            continue
        m = _PROM_NAME.match(line)
        if not m:
            raise ValueError("line %d: no metric name: %r" % (lineno, line))
        name, pos, labels = m.group(0), m.end(), {}
        if pos < len(line) and line[pos] == "{":
            # parse label by label: a '}' or ',' may sit inside a value
            inner_pos = pos + 1
            while True:
                if inner_pos < len(line) and line[inner_pos] == "}":
                    end = inner_pos
                    break
                lm = _PROM_LABEL.match(line, inner_pos)
                if not lm:
                    raise ValueError("line %d: bad labels: %r" % (lineno, line))
                lname, lvalue = lm.group(1), _prom_unescape(lm.group(2))
                if lname in labels:
                    raise ValueError("line %d: label %s twice" % (lineno, lname))
                labels[lname] = lvalue
                inner_pos = lm.end()
                if inner_pos < len(line) and line[inner_pos] == ",":
                    inner_pos += 1
                elif inner_pos < len(line) and line[inner_pos] == "}":
                    continue
                else:
                    raise ValueError("line %d: bad labels: %r" % (lineno, line))
            pos = end + 1
        rest = line[pos:].split()
        if len(rest) not in (1, 2) or not line[pos:pos + 1].isspace():
            raise ValueError("line %d: expected a value (and a timestamp): %r" % (lineno, line))
        value = _prom_float(rest[0], lineno)
        if len(rest) == 2 and not re.fullmatch(r"-?[0-9]+", rest[1]):
            raise ValueError("line %d: bad timestamp %r" % (lineno, rest[1]))
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in types and \
                    types[name[:-len(suffix)]] in ("histogram", "summary"):
                family = name[:-len(suffix)]
        sampled.add(family)
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ValueError("line %d: series %s%s twice" % (lineno, name, labels))
        seen_series.add(key)
        samples.append(Sample(name, labels, value))
    return samples, types, helps


def metric_values(samples, name, **labels):
    """The values of the samples called name whose labels include labels."""
    return [s.value for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def metric_value(samples, name, **labels):
    """The one value of name{labels...}; raises KeyError if there is not
    exactly one."""
    vals = metric_values(samples, name, **labels)
    if len(vals) != 1:
        raise KeyError("%d samples for %s%r" % (len(vals), name, labels))
    return vals[0]


# ---------------------------------------------------------------- server processes


class ServerProcess:
    """What the process runners (Prosody, Ejabberd, Ferry and
    irc_helpers.Ngircd) share: a process started in its own session in
    self.dir with its output appended to a file, stopped by its pid; a log
    file (self.log_path), appended across runs and read from offsets. A
    subclass sets self.dir, self.log_path and self.proc (None until
    started), and `kind`, its name in messages. Servers that drop privileges
    live in an instance folder of their own under /tmp, linked from
    self.workdir as "instance"."""

    kind = "server"
    killed = False          # a stop() had to SIGKILL it

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, argv, output_path):
        """Starts argv in self.dir (stdin /dev/null, stdout and stderr
        appended to output_path, its own session) and registers it in LIVE."""
        out = open(output_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.dir, start_new_session=True)
        finally:
            out.close()
        _register(self)

    def _exited_during_start(self, *texts):
        """The error for a process that exited during start: its exit status
        and the tails of texts (its output, its log)."""
        return RuntimeError("%s exited with %s during start:\n%s" % (
            self.kind, self.proc.returncode, "\n".join(tail_text(t) for t in texts)))

    def _wait_ready(self, ready, timeout, interval, what, then=None):
        """Waits (bounded) until ready(), then runs then(); if either fails,
        stops the process and re-raises. Returns self."""
        try:
            wait_until(ready, timeout, interval=interval, what=what)
            if then is not None:
                then()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, timeout=10):
        """SIGTERM to its pid, SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            return None
        rc, killed = stop_process(self.proc, term_timeout=timeout)
        self.killed = self.killed or killed
        _unregister(self)
        return rc

    # -- log

    def log_offset(self):
        return file_size(self.log_path)

    def log_text(self, offset=0):
        return read_file(self.log_path, offset)

    def log_count(self, needle, offset=0):
        return self.log_text(offset).count(needle)

    def wait_log(self, needle, timeout=10, offset=0):
        return wait_until(lambda: needle in self.log_text(offset), timeout,
                          what="%r in %s's log" % (needle, self.kind))

    def report(self):
        return "%s log (%s), tail:\n%s" % (self.kind, self.log_path, tail_text(self.log_text(), 30))

    # -- an instance folder under /tmp

    def _make_instance(self, prefix, mode):
        """self.dir: a new folder under /tmp (mode), linked from
        self.workdir as "instance"."""
        self.dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.chmod(self.dir, mode)
        try:
            os.symlink(self.dir, os.path.join(self.workdir, "instance"))
        except OSError:
            pass

    def _remove_instance(self, copies):
        """After stop() (stops it if needed): copies the (path, name) pairs
        into self.workdir, then removes the instance folder and its link."""
        if self.running():
            self.stop()
        for path, name in copies:
            try:
                shutil.copy(path, os.path.join(self.workdir, name))
            except OSError:
                pass
        link = os.path.join(self.workdir, "instance")
        if os.path.islink(link):
            os.unlink(link)
        shutil.rmtree(self.dir, ignore_errors=True)


class XmppServer(ServerProcess):
    """Prosody and Ejabberd: the same settings, kept as attributes."""

    def _settings(self, vhosts, components, offline, log_level, c2s_port, component_port):
        """vhosts: virtual hosts for users; components: {domain: secret};
        offline: keep messages for users who are not online; the ports:
        free ones by default."""
        self.vhosts = list(vhosts)
        self.components = dict(components or {})
        self.offline = offline
        self.log_level = log_level
        self.c2s_port = c2s_port or free_port()
        self.component_port = component_port or free_port()


# ---------------------------------------------------------------- Prosody


class Prosody(XmppServer):
    """A Prosody on 127.0.0.1 in its own directory.

    components: {domain: secret}; vhosts: virtual hosts for users; muc: the
    domain of a MUC component (XEP-0045 rooms), None for none; admin_shell:
    load mod_admin_shell, for shell() (prosodyctl shell)."""

    kind = "Prosody"

    def __init__(self, workdir, vhosts=("localhost",), components=None, offline=False,
                 log_level="info", c2s_port=None, component_port=None, muc=None, admin_shell=False):
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self._settings(vhosts, components, offline, log_level, c2s_port, component_port)
        self.muc = muc
        self.admin_shell = admin_shell
        self.config_path = os.path.join(self.dir, "prosody.cfg.lua")
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.stdout_path = os.path.join(self.dir, "prosody.stdout")
        self.proc = None
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "certs"), exist_ok=True)
        self.write_config()

    def write_config(self):
        d = self.dir
        disabled = '"s2s"' if self.offline else '"s2s", "offline"'
        lines = [
            "run_as_root = true",
            "daemonize = false",
            'pidfile = "%s/prosody.pid"' % d,
            'data_path = "%s/data"' % d,
            'certificates = "%s/certs"' % d,
            'log = { { levels = { min = "%s" }, to = "file", filename = "%s" } }'
            % (self.log_level, self.log_path),
            'modules_enabled = { "disco", "ping", "roster", "saslauth"%s }'
            % (', "admin_shell"' if self.admin_shell else ""),
            "modules_disabled = { %s }" % disabled,
            "c2s_ports = { %d }" % self.c2s_port,
            'c2s_interfaces = { "127.0.0.1" }',
            "component_ports = { %d }" % self.component_port,
            'component_interfaces = { "127.0.0.1" }',
            "http_ports = {}",
            "https_ports = {}",
            "allow_unencrypted_plain_auth = true",
            "c2s_require_encryption = false",
            'authentication = "internal_plain"',
        ]
        for vh in self.vhosts:
            lines.append('VirtualHost "%s"' % vh)
        for domain, secret in self.components.items():
            lines.append('Component "%s"' % domain)
            lines.append("    component_secret = %s" % json.dumps(secret))
        if self.muc:
            lines.append('Component "%s" "muc"' % self.muc)
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def add_user(self, user, host, password):
        """internal_plain account: DIR/data/HOST/accounts/USER.dat (Prosody
        escapes every non-alphanumeric character of both as %xx)."""
        def enc(t):
            return re.sub(r"[^A-Za-z0-9]", lambda m: "%%%02x" % ord(m.group(0)), t)
        hostdir = enc(host)
        accounts = os.path.join(self.dir, "data", hostdir, "accounts")
        os.makedirs(accounts, exist_ok=True)
        with open(os.path.join(accounts, enc(user) + ".dat"), "w") as f:
            f.write('return { ["password"] = %s; };\n' % json.dumps(password))

    # -- process

    def start(self, timeout=20):
        assert not self.running(), "Prosody already running"
        offset = file_size(self.log_path)
        self._spawn(["prosody", "--config", self.config_path, "-F"], self.stdout_path)

        def ready():
            if self.proc.poll() is not None:
                raise self._exited_during_start(read_file(self.stdout_path), read_file(self.log_path, offset))
            text = read_file(self.log_path, offset)
            return ("Activated service 'c2s'" in text
                    and (not self.components or "Activated service 'component'" in text))

        return self._wait_ready(ready, timeout, 0.05, "Prosody readiness")

    def shell(self, command, timeout=20):
        """Runs one `prosodyctl shell` command against this running Prosody
        (needs admin_shell=True); returns its output."""
        r = subprocess.run(["prosodyctl", "--config", self.config_path, "shell", command],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                           timeout=timeout, cwd=self.dir)
        return r.stdout + r.stderr

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)


# ---------------------------------------------------------------- ejabberd


EJABBERDCTL_CANDIDATES = ("/usr/sbin/ejabberdctl", "/usr/bin/ejabberdctl")


def ejabberdctl_path():
    """The ejabberdctl script, or None when ejabberd is not installed."""
    found = shutil.which("ejabberdctl")
    if found:
        return found
    for p in EJABBERDCTL_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return None


def ejabberd_missing():
    """Why an ejabberd cannot run here (text), or None when it can."""
    if ejabberdctl_path() is None:
        return ("ejabberd is not installed (no ejabberdctl): install it with scripts/deps.sh "
                "(apt-get install ejabberd)")
    try:
        pwd.getpwnam("ejabberd")
    except KeyError:
        return "the ejabberd package is installed but there is no 'ejabberd' user"
    if os.geteuid() != 0:
        return "running ejabberd from the tests needs root (ejabberdctl switches to the ejabberd user)"
    return None


class Ejabberd(XmppServer):
    """An ejabberd (23.01, Debian's package) on 127.0.0.1, as a separate
    instance with its own config, spool and log folders. Same interface as
    Prosody where it makes sense: c2s_port, component_port, add_user,
    start/stop/pause/resume, log_offset/log_text/log_count/wait_log, report.

    ejabberdctl always switches to the ejabberd user, which cannot enter the
    0700 folders of pytest: the instance lives in its own folder under /tmp
    (owned by ejabberd), linked from workdir as "instance"; cleanup() copies
    its logs into workdir and removes it.

    components: {domain: password}. offline: keep mod_offline (messages to
    users who are not online are stored). Users added before start() are
    registered once it is ready (ejabberdctl register, about 0.4 s each)."""

    kind = "ejabberd"

    def __init__(self, workdir, vhosts=("localhost",), components=None, offline=False,
                 log_level="info", c2s_port=None, component_port=None, node=None, muc=None):
        """muc: the domain of a mod_muc service (XEP-0045 rooms), None for none."""
        self.muc = muc
        why = ejabberd_missing()
        if why:
            raise RuntimeError(why)
        self.ctl = ejabberdctl_path()
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self._settings(vhosts, components, offline, log_level, c2s_port, component_port)
        self.dist_port = free_port()
        self.node = node or "ferrytest%s@localhost" % uuid.uuid4().hex[:10]
        self._make_instance("ferry-ejabberd-", 0o750)
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.logs = os.path.join(self.dir, "log")
        for d in (self.etc, self.spool, self.logs):
            os.makedirs(d, exist_ok=True)
        self.config_path = os.path.join(self.etc, "ejabberd.yml")
        self.log_path = os.path.join(self.logs, "ejabberd.log")
        self.pid_path = os.path.join(self.spool, "ejabberd.pid")
        self.stdout_path = os.path.join(self.dir, "ejabberd.stdout")
        self.proc = None
        self.pid = None
        self._pending_users = []
        self._registered = set()
        shutil.copy("/etc/ejabberd/inetrc", os.path.join(self.etc, "inetrc"))
        self.write_config()

    def _chown(self):
        for root, dirs, files in os.walk(self.dir):
            shutil.chown(root, "ejabberd", "ejabberd")
            for name in files:
                shutil.chown(os.path.join(root, name), "ejabberd", "ejabberd")

    def write_config(self):
        with open(os.path.join(self.etc, "ejabberdctl.cfg"), "w") as f:
            f.write("ERLANG_NODE=%s\nERL_DIST_PORT=%d\nINET_DIST_INTERFACE=127.0.0.1\n"
                    "EJABBERD_PID_PATH=%s\n" % (self.node, self.dist_port, self.pid_path))
        comp_hosts = "".join('      %s:\n        password: %s\n' % (json.dumps(d), json.dumps(p))
                             for d, p in self.components.items())
        listen = [
            "  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n"
            "    starttls_required: false\n    backlog: 1024\n" % self.c2s_port,
        ]
        if self.components:
            listen.append("  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_service\n"
                          "    backlog: 1024\n    hosts:\n%s" % (self.component_port, comp_hosts))
        modules = ["mod_disco", "mod_ping", "mod_roster"] + (["mod_offline"] if self.offline else [])
        modules = ["  %s: {}\n" % m for m in modules]
        if self.muc:
            modules.append("  mod_muc:\n    hosts: [%s]\n" % json.dumps(self.muc))
        text = ("hosts:\n%s"
                "loglevel: %s\n"
                "certfiles: []\n"
                "acme:\n  auto: false\n"
                "auth_method: internal\n"
                "auth_password_format: plain\n"
                "s2s_access: none\n"
                "listen:\n%s"
                "modules:\n%s") % (
            "".join("  - %s\n" % json.dumps(v) for v in self.vhosts), self.log_level,
            "".join(listen), "".join(modules))
        with open(self.config_path, "w") as f:
            f.write(text)
        self._chown()

    def _ctl_argv(self, *args):
        return [self.ctl, "--config-dir", self.etc, "--spool", self.spool, "--logs", self.logs] + list(args)

    def ctl_run(self, *args, timeout=30):
        """ejabberdctl ARGS against this instance (bounded); CompletedProcess."""
        return subprocess.run(self._ctl_argv(*args), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=timeout, cwd=self.dir)

    def add_user(self, user, host, password):
        """Registers now when running (an existing user is not an error), or
        once start() finds the server ready."""
        if not self.running():
            self._pending_users.append((user, host, password))
            return
        r = self.ctl_run("register", user, host, password)
        if r.returncode != 0 and "conflict" not in (r.stdout + r.stderr):
            raise RuntimeError("ejabberdctl register %s@%s failed (exit %s): %s%s" % (
                user, host, r.returncode, r.stdout, r.stderr))
        self._registered.add((user, host))

    # -- process

    def _read_pid(self):
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        return pid if self.spool in cmdline else None   # our beam, not a recycled pid

    def start(self, timeout=30):
        assert not self.running(), "ejabberd already running"
        self._chown()
        try:
            os.unlink(self.pid_path)
        except FileNotFoundError:
            pass
        offset = file_size(self.log_path)
        self._spawn(self._ctl_argv("foreground"), self.stdout_path)
        self.pid = None

        def ready():
            if self.proc.poll() is not None:
                raise self._exited_during_start(read_file(self.stdout_path), read_file(self.log_path, offset))
            if self.ctl_run("status", timeout=10).returncode != 0:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.c2s_port), timeout=1):
                    pass
            except OSError:
                return False
            self.pid = self._read_pid()
            return self.pid is not None

        def register_pending():
            for u in self._pending_users:
                self.add_user(*u)
            self._pending_users = []

        return self._wait_ready(ready, timeout, 0.1, "ejabberd readiness (ejabberdctl status)", register_pending)

    def stop(self, timeout=10):
        """SIGTERM to the pid in the pidfile (the Erlang VM), wait for the
        ejabberdctl wrapper to end; SIGKILL after timeout."""
        if self.proc is None:
            return None
        pid = self.pid or self._read_pid()
        if self.proc.poll() is None:
            if pid:
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if pid and self._read_pid() == pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rc, _ = stop_process(self.proc, term_timeout=2)
        # the wrapper is gone: wait (bounded) for the VM to be gone too
        try:
            wait_until(lambda: not pid or not os.path.exists("/proc/%d" % pid)
                       or self._read_pid() != pid, 5, what="ejabberd's VM to exit")
        except TimeoutError:
            pass
        self.pid = None
        _unregister(self)
        return rc

    def pause(self):
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def cleanup(self):
        """After stop(): copies the logs next to the test's other files and
        removes the instance folder."""
        if self.running():
            self.stop()
        logs = os.listdir(self.logs) if os.path.isdir(self.logs) else []
        self._remove_instance([(os.path.join(self.logs, name), "ejabberd-" + name) for name in logs]
                              + [(self.stdout_path, "ejabberd.stdout")])


# ---------------------------------------------------------------- ferry


LOG_LINE = re.compile(r"^(\S+) (ERROR|WARN|INFO|DEBUG|error|warn|info|debug) \[([^\]]+)\] (.*)$")


class Ferry(ServerProcess):
    """ferry -c CONFIG, stderr kept in a file (its log)."""

    kind = "ferry"

    def __init__(self, workdir, config_text, args=(), binary=None, name="ferry", http_port=None):
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.binary = binary or ferry_binary()
        self.name = name
        self.config_path = os.path.join(self.dir, name + ".toml")
        self.stderr_path = os.path.join(self.dir, name + ".stderr")
        self.log_path = self.stderr_path
        self.stdout_path = os.path.join(self.dir, name + ".stdout")
        self.args = list(args)
        self.http_port = http_port
        self.proc = None
        self.expect_exit = False     # set by a test that stops ferry on purpose
        self.stopped_by_harness = False
        self.killed = False
        self.write_config(config_text)

    def write_config(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def start(self, pass_fds=(), preexec_fn=None):
        if not os.path.exists(self.binary):
            raise FileNotFoundError("ferry binary not found: %s (build it: cmake -S . -B build && "
                                    "cmake --build build -j2, or set FERRY_BIN)" % self.binary)
        err = open(self.stderr_path, "ab")
        out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary] + self.args + ["-c", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.dir, env=ferry_env(), pass_fds=tuple(pass_fds),
                                         preexec_fn=preexec_fn, start_new_session=True)
        finally:
            err.close()
            out.close()
        _register(self)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=5.0):
        """SIGTERM, SIGKILL after timeout. Returns the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.stopped_by_harness = True
        return super().stop(timeout)

    # -- stderr (its log)

    stderr_offset = ServerProcess.log_offset
    stderr = ServerProcess.log_text

    def log_lines(self, offset=0):
        return self.stderr(offset).splitlines()

    def wait_log(self, pattern, timeout=10, offset=0, flags=re.I):
        """Waits for a regex in ferry's stderr; returns the match."""
        rx = re.compile(pattern, flags)

        def check():
            if self.proc is not None and self.proc.poll() is not None:
                m = rx.search(self.stderr(offset))
                if m:
                    return m
                raise AssertionError("ferry exited while waiting for /%s/ in its log:\n%s" % (
                    pattern, self.report()))
            return rx.search(self.stderr(offset))

        return wait_until(check, timeout, interval=0.05, what="/%s/ in ferry's log" % pattern)

    def sanitizer_reports(self):
        return sanitizer_reports(self.stderr())

    def sanitizer_summary(self, context=12):
        """The first sanitizer report's opening lines and every SUMMARY line."""
        lines = self.stderr().splitlines()
        out = []
        for i, l in enumerate(lines):
            if any(p in l for p in SANITIZER_PATTERNS):
                out.extend(lines[i:i + context])
                break
        out.extend(l for l in lines if l.startswith("SUMMARY:") and l not in out)
        return "\n".join(out)

    def report(self):
        rc = self.proc.poll() if self.proc else None
        text = "ferry %s (pid %s, exit %s), stderr %s" % (
            self.name, self.proc.pid if self.proc else "-", rc, self.stderr_path)
        summary = self.sanitizer_summary()
        if summary:
            text += "\nsanitizer report:\n" + summary
        return text + "\ntail:\n" + tail_text(self.stderr(), 40)

    def problems(self):
        """What the finaliser must fail the test for: sanitizer reports, an
        unexpected death, a SIGKILL."""
        out = []
        reps = self.sanitizer_reports()
        if reps:
            out.append("sanitizer report(s) in ferry's stderr: %s" % ", ".join(reps))
        if self.proc is not None and not self.stopped_by_harness and not self.expect_exit:
            rc = self.proc.returncode
            if rc is not None and rc != 0:
                out.append("ferry exited unexpectedly with status %s" % rc)
        return out

    # -- HTTP side

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def healthz(self, timeout=3):
        """(status, parsed JSON or None); (None, None) when nothing answers."""
        try:
            r = http_request("GET", self.url("/healthz"), timeout=timeout)
        except (OSError, http.client.HTTPException):
            return None, None
        return r.status, r.json_or_none()

    def metrics(self, timeout=3):
        """GET /metrics: (HttpResponse, samples, types, helps); the samples
        parsed strictly (parse_prometheus)."""
        r = http_request("GET", self.url("/metrics"), timeout=timeout)
        samples, types, helps = parse_prometheus(r.body.decode("utf-8")) if r.status == 200 else ([], {}, {})
        return r, samples, types, helps

    def wait_healthz(self, status=200, timeout=20):
        def check():
            if not self.running():
                raise AssertionError("ferry is not running:\n" + self.report())
            st, _ = self.healthz()
            return st == status
        wait_until(check, timeout, interval=0.1, what="/healthz answering %d" % status)


# ---------------------------------------------------------------- HTTP


class JsonBody:
    """json() and json_or_none() of a .body in UTF-8 (HttpResponse, Request)."""

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def json_or_none(self):
        try:
            return self.json()
        except ValueError:
            return None


class HttpResponse(JsonBody):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self):
        return "<HTTP %s %r>" % (self.status, self.body[:200])


def http_request(method, url, body=None, headers=None, timeout=10):
    """One request with http.client; answers of any status are returned."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return HttpResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def post_json(url, doc, token=None, headers=None, timeout=10):
    """POSTs doc as JSON (Content-Type: application/json), with
    Authorization: Bearer TOKEN when a token is given, then headers."""
    hdrs = {"Content-Type": "application/json"}
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    return http_request("POST", url, json.dumps(doc), hdrs, timeout=timeout)


class HttpHandler(BaseHTTPRequestHandler):
    """The base of the local HTTP servers (Receiver, fake_providers): HTTP/1.1
    with keep-alive, no request log, a bounded body reader (Content-Length
    or chunked) and an answer writer.

    Its sockets are TCP_NODELAY: an answer goes out as two segments (the
    headers, then the body), and on a kept-alive connection Nagle's
    algorithm would hold the second until the client's delayed ACK (40 ms a
    request): a sender that delivers one message per conversation at a time
    would be held to 25 messages/s by the test's server."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(1000000):
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(1000):
                        if self.rfile.readline() in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def lower_headers(self):
        return {k.lower(): v for k, v in self.headers.items()}

    def answer(self, status, headers, body):
        """status, headers, Content-Length and body (none to a HEAD); a
        client that went away is not an error."""
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass


def serve_http(handler, port=0, name="http", retry_for=0.0):
    """A ThreadingHTTPServer for handler on 127.0.0.1:port (0: an ephemeral
    one), served by a daemon thread; returns (server, thread). retry_for: how
    long to keep trying to bind a port that is still taken."""
    deadline = time.monotonic() + retry_for
    for _ in range(1000):
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True, name="%s-%d" % (name, server.server_address[1]))
    thread.start()
    return server, thread


def stop_http(server, thread):
    """Stops serve_http's server and closes its listening socket."""
    server.shutdown()
    server.server_close()
    thread.join(5)


class Reply:
    """What the receiver answers: status, headers, body, after delay seconds."""

    def __init__(self, status=200, headers=None, body=b"", delay=0.0, gate=None, gate_timeout=30.0):
        """gate: a threading.Event; the answer waits until it is set (at most
        gate_timeout seconds), then delay seconds."""
        self.status = status
        self.headers = dict(headers or {})
        self.body = body if isinstance(body, bytes) else body.encode()
        self.delay = delay
        self.gate = gate
        self.gate_timeout = gate_timeout


class Request(JsonBody):
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers          # lowercased names
        self.body = body
        self.time = time.monotonic()
        self.status = None              # set by the receiver: the status it answered
        self.reply = None               # and the Reply

    def __repr__(self):
        return "<%s %s %r>" % (self.method, self.path, self.body[:200])


def jbody(req):
    """A request's JSON body, {} when it is not JSON."""
    try:
        return req.json()
    except ValueError:
        return {}


class Receiver:
    """A webhook receiver on 127.0.0.1:ephemeral. Records every request; the
    answer comes from policy(req) -> Reply when given and it returns one,
    else from the script for the path (a list of Reply), else the default.
    Each recorded request has .status and .reply (what it was answered with)
    once it is visible. down() and up() stop and resume listening on the
    same port."""

    def __init__(self, policy=None):
        self._lock = threading.Condition()
        self._requests = []
        self._scripts = {}
        self.policy = policy
        self.default = Reply(200, {"Content-Type": "application/json"}, b'{"ok":true}')
        receiver = self

        class Handler(HttpHandler):
            def _handle(self):
                body = self.read_body()
                path = urllib.parse.urlsplit(self.path).path
                reply = receiver._record(Request(self.command, path, self.lower_headers(), body))
                if reply.gate is not None:
                    reply.gate.wait(reply.gate_timeout)
                if reply.delay:
                    time.sleep(reply.delay)
                self.answer(reply.status, reply.headers, reply.body)

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle

        self._handler = Handler
        self.server, self.thread = serve_http(Handler, name="receiver")
        self.port = self.server.server_address[1]

    def _record(self, req):
        reply = self.policy(req) if self.policy else None
        with self._lock:
            if reply is None:
                script = self._scripts.get(req.path)
                reply = script.pop(0) if script else self.default
            req.status, req.reply = reply.status, reply
            self._requests.append(req)
            self._lock.notify_all()
            return reply

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def script(self, path, replies):
        with self._lock:
            self._scripts[path] = list(replies)

    def clear(self, path=None):
        with self._lock:
            if path is None:
                self._requests.clear()
                self._scripts.clear()
            else:
                self._requests = [r for r in self._requests if r.path != path]
                self._scripts.pop(path, None)

    def requests(self, path=None, pred=None):
        with self._lock:
            return [r for r in self._requests
                    if (path is None or r.path == path) and (pred is None or pred(r))]

    def wait(self, path=None, count=1, timeout=10, pred=None):
        """Waits until at least count requests (for path, matching pred) have
        arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for _ in range(100000):
                got = [r for r in self._requests
                       if (path is None or r.path == path) and (pred is None or pred(r))]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
        raise TimeoutError("receiver: %d of %d request(s) for %s after %.1f s; all: %r" % (
            len(got), count, path, timeout, self._requests[-10:]))

    def down(self):
        """Closes the listening socket: connections are refused."""
        stop_http(self.server, self.thread)

    def up(self, timeout=10):
        """Listens again on the same port, with the same handler and records."""
        self.server, self.thread = serve_http(self._handler, port=self.port, name="receiver", retry_for=timeout)

    def close(self):
        stop_http(self.server, self.thread)


# ---------------------------------------------------------------- XMPP


def _local(tag):
    return tag.rsplit("}", 1)[-1]


class Stanza:
    """A received stanza (an ElementTree element) with accessors."""

    def __init__(self, el):
        self.el = el

    @property
    def name(self):
        return _local(self.el.tag)

    def get(self, attr, default=None):
        return self.el.get(attr, default)

    @property
    def frm(self):
        return self.el.get("from")

    @property
    def to(self):
        return self.el.get("to")

    @property
    def type(self):
        return self.el.get("type")

    @property
    def id(self):
        return self.el.get("id")

    def find(self, ns, tag):
        for child in self.el:
            if child.tag == "{%s}%s" % (ns, tag):
                return child
        return None

    @property
    def body(self):
        b = self.find(NS_CLIENT, "body")
        return None if b is None else (b.text or "")

    def error(self):
        return self.find(NS_CLIENT, "error")

    @property
    def error_type(self):
        e = self.error()
        return None if e is None else e.get("type")

    @property
    def error_condition(self):
        e = self.error()
        if e is None:
            return None
        for c in e:
            if c.tag.startswith("{%s}" % NS_STANZAS) and _local(c.tag) != "text":
                return _local(c.tag)
        return None

    @property
    def error_text(self):
        e = self.error()
        if e is None:
            return None
        for c in e:
            if c.tag == "{%s}text" % NS_STANZAS:
                return c.text or ""
        return None

    @property
    def receipt_id(self):
        r = self.find(NS_RECEIPTS, "received")
        return None if r is None else r.get("id")

    def xml(self):
        return ET.tostring(self.el, encoding="unicode")

    def __repr__(self):
        return self.xml()[:600]


def new_id(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


class XmppClient:
    """A slixmpp client run on its own asyncio loop in a thread, driven
    synchronously. Logs in with PLAIN over unencrypted loopback and sends
    initial presence (waits for its echo). Keeps every received stanza."""

    def __init__(self, jid, password, port, host="127.0.0.1", timeout=15, presence=True, plugins=()):
        """plugins: slixmpp plugin names to register (e.g. "xep_0050"); use
        them through call()."""
        import slixmpp  # noqa: imported here so that harness imports without it
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.jid = jid
        self._stanzas = []
        self._cond = threading.Condition()
        self._session = threading.Event()
        self._failed = threading.Event()
        self._disconnected = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True, name="xmpp-" + jid)
        self.thread.start()

        def on_stanza(st):
            el = ET.fromstring(ET.tostring(st.xml))
            with self._cond:
                received = Stanza(el)
                received.seq = len(self._stanzas)   # its place in arrival order
                self._stanzas.append(received)
                self._cond.notify_all()

        async def create():
            x = slixmpp.ClientXMPP(jid, password, sasl_mech="PLAIN",
                                   plugin_config={"feature_mechanisms": {"unencrypted_plain": True}})
            x.loop = self.loop
            for plugin in plugins:
                x.register_plugin(plugin)
            x.register_handler(Callback("e2e messages", MatchXPath("{%s}message" % NS_CLIENT), on_stanza))
            x.register_handler(Callback("e2e iqs", MatchXPath("{%s}iq" % NS_CLIENT), on_stanza))
            x.register_handler(Callback("e2e presences", MatchXPath("{%s}presence" % NS_CLIENT), on_stanza))

            def session_start(_):
                if presence:
                    x.send_presence()
                self._session.set()

            x.add_event_handler("session_start", session_start)
            x.add_event_handler("failed_all_auth", lambda _: self._failed.set())
            x.add_event_handler("connection_failed", lambda _: self._failed.set())
            x.add_event_handler("disconnected", lambda _: self._disconnected.set())
            x.connect(address=(host, port), force_starttls=False, disable_starttls=True)
            return x

        self.xmpp = asyncio.run_coroutine_threadsafe(create(), self.loop).result(timeout)
        deadline = time.monotonic() + timeout
        while not self._session.is_set():
            if self._failed.is_set():
                self.close()
                raise RuntimeError("XMPP login failed for %s" % jid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise TimeoutError("XMPP login of %s timed out" % jid)
            self._session.wait(min(0.1, remaining))
        if presence:
            # The server echoes our available presence once it has processed
            # it: from then on, messages to the bare JID reach this client.
            me = self.full_jid
            try:
                self.wait(lambda s: s.name == "presence" and s.frm == me and s.type in (None, "available"),
                          timeout=max(1.0, deadline - time.monotonic()), what="own presence echo")
            except Exception:
                self.close()
                raise

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def full_jid(self):
        return str(self.xmpp.boundjid.full)

    @property
    def bare_jid(self):
        return str(self.xmpp.boundjid.bare)

    def send_raw(self, data):
        self.loop.call_soon_threadsafe(self.xmpp.send_raw, data)

    def call(self, fn, timeout=10):
        """Runs fn(xmpp) on the client's loop and returns its result; if that
        is awaitable (a coroutine, a future from Iq.send()), awaits it, bounded
        by timeout. Exceptions (slixmpp's IqError, IqTimeout) propagate."""
        async def run():
            value = fn(self.xmpp)
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, timeout)
            return value

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout + 2)

    def send_message(self, to, body=None, id=None, mtype="chat", receipt=False, extra=""):
        """Sends a <message/>; returns its id. mtype None: no type attribute."""
        id = id or new_id("m")
        attrs = " to=%s id=%s" % (quoteattr(to), quoteattr(id))
        if mtype:
            attrs += " type=%s" % quoteattr(mtype)
        inner = ""
        if body is not None:
            inner += "<body>%s</body>" % xml_escape(body)
        if receipt:
            inner += "<request xmlns='%s'/>" % NS_RECEIPTS
        inner += extra
        self.send_raw("<message%s>%s</message>" % (attrs, inner))
        return id

    def iq(self, to, itype, payload="", timeout=10, id=None):
        """Sends an iq and waits for the result or error with its id."""
        id = id or new_id("iq")
        self.send_raw("<iq type=%s to=%s id=%s>%s</iq>" % (quoteattr(itype), quoteattr(to), quoteattr(id), payload))
        return self.wait(lambda s: s.name == "iq" and s.id == id and s.type in ("result", "error"),
                         timeout=timeout, what="iq reply id=%s" % id)

    def stanzas(self, pred=None):
        with self._cond:
            return [s for s in self._stanzas if pred is None or pred(s)]

    def messages(self, pred=None):
        return self.stanzas(lambda s: s.name == "message" and (pred is None or pred(s)))

    def wait(self, pred, timeout=10, what="stanza", count=1):
        """Waits until count received stanzas match pred; returns the first
        (count == 1) or the list."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for _ in range(100000):
                got = [s for s in self._stanzas if pred(s)]
                if len(got) >= count:
                    return got[0] if count == 1 else got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            recent = self._stanzas[-8:]
        raise TimeoutError("%s: no %s within %.1f s; last received: %r" % (self.jid, what, timeout, recent))

    def wait_message(self, pred, timeout=10, what="message", count=1):
        return self.wait(lambda s: s.name == "message" and pred(s), timeout=timeout, what=what, count=count)

    def connected(self):
        return self._session.is_set() and not self._disconnected.is_set()

    def close(self, timeout=5):
        if self.loop.is_closed():
            return
        try:
            if not self._disconnected.is_set() and getattr(self, "xmpp", None) is not None:
                self.loop.call_soon_threadsafe(lambda: self.xmpp.disconnect(wait=0.5))
                self._disconnected.wait(timeout)

            async def cancel_tasks():
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(cancel_tasks(), self.loop).result(timeout)
            except Exception:  # noqa: best effort, the loop stops below anyway
                pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            if not self.thread.is_alive():
                self.loop.close()


# ---------------------------------------------------------------- webhooks


def standard_webhooks_key(signing_secret):
    s = signing_secret
    if s.startswith("whsec_"):
        s = s[len("whsec_"):]
    return base64.b64decode(s)


def standard_webhooks_signature(signing_secret, msg_id, timestamp, body):
    key = standard_webhooks_key(signing_secret)
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def github_signature(secret, body):
    if isinstance(body, str):
        body = body.encode()
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_signing_secret():
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


# ---------------------------------------------------------------- bundle


class Env:
    """What a test module shares (its Prosody, ferry, receiver, clients...),
    set as attributes by its env fixture."""


class Testbed:
    """Owns what it started and stops it all (clients, ferries, receivers,
    Prosodies and ejabberds, in that order). finish() returns the problems
    found (sanitizer reports, unexpected exits) as text lines."""

    def __init__(self, workdir):
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.clients = []
        self.ferries = []
        self.receivers = []
        self.prosodies = []
        self.ejabberds = []
        self._n = 0

    def subdir(self, name):
        self._n += 1
        d = os.path.join(self.dir, "%02d-%s" % (self._n, name))
        os.makedirs(d, exist_ok=True)
        return d

    def prosody(self, start=True, users=(), **kw):
        """users: (user, host, password) tuples."""
        p = Prosody(self.subdir("prosody"), **kw)
        self.prosodies.append(p)
        for u in users:
            p.add_user(*u)
        if start:
            p.start()
        return p

    def ejabberd(self, start=True, users=(), **kw):
        """An Ejabberd (same keywords); users: (user, host, password) tuples,
        registered once it is ready."""
        e = Ejabberd(self.subdir("ejabberd"), **kw)
        self.ejabberds.append(e)
        for u in users:
            e.add_user(*u)
        if start:
            e.start()
        return e

    def receiver(self, policy=None):
        """A Receiver (answering by policy, when given) closed at the end."""
        r = Receiver(policy)
        self.receivers.append(r)
        return r

    def client(self, jid, password, prosody, **kw):
        """A logged-in XmppClient on prosody's (or an Ejabberd's) c2s port."""
        c = XmppClient(jid, password, prosody.c2s_port, **kw)
        self.clients.append(c)
        return c

    def ferry(self, config_text, args=(), start=True, wait_up=True, http_port=None, name="ferry",
              pass_fds=(), preexec_fn=None, timeout=20, binary=None):
        f = Ferry(self.subdir(name), config_text, args=args, http_port=http_port, name=name, binary=binary)
        self.ferries.append(f)
        if start:
            f.start(pass_fds=pass_fds, preexec_fn=preexec_fn)
            if wait_up:
                f.wait_healthz(200, timeout=timeout)
        return f

    def linked_ferry(self, server, components, xmpp=None, log=None, http=None, admin=None, storage=None,
                     **kw):
        """ferry() with ferry_config's text for components, linked to server
        (a Prosody or an Ejabberd: its component port) and listening on a
        free HTTP port. xmpp, log, http, admin, storage: as ferry_config;
        other keywords: as ferry()."""
        port = free_port()
        text = ferry_config(server.component_port, port, components, xmpp=xmpp, log=log, http=http, admin=admin,
                            storage=storage)
        return self.ferry(text, http_port=port, **kw)

    def finish(self):
        problems = []
        for c in self.clients:
            try:
                c.close()
            except Exception as e:  # noqa
                problems.append("closing XMPP client %s: %r" % (c.jid, e))
        for f in self.ferries:
            if f.proc is None:
                continue
            was_running = f.running()
            f.stop()
            issues = f.problems()
            if f.killed:
                issues.append("ferry did not exit within 5 s of SIGTERM (SIGKILLed)")
            if issues:
                problems.append("%s\n%s" % ("; ".join(issues), f.report()))
            elif not was_running and not f.expect_exit and f.proc.returncode != 0:
                problems.append(f.report())
        for r in self.receivers:
            r.close()
        for p in self.prosodies:
            p.stop()
        for e in self.ejabberds:
            try:
                e.stop()
                e.cleanup()
            except Exception as ex:  # noqa: report, keep cleaning
                problems.append("stopping ejabberd in %s: %r" % (e.dir, ex))
        return problems
