"""The e2e harness's process basics: ports, bounded waits, files read from
offsets, stopping a process by its pid, the LIVE list conftest.py reports
from, and ServerProcess, which every server runner (Prosody, Ejabberd,
ferry, the IRC servers) builds on."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def project_version():
    """The version CMakeLists.txt's project() gives, the one place it is
    written: what `ferry --version` and XEP-0092 must say."""
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(ferry VERSION ([0-9.]+)", f.read())
    assert m, "CMakeLists.txt: no project(ferry VERSION ...)"
    return m.group(1)


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


class TcpListener:
    """A TCP port on 127.0.0.1 (self.port) whose accept loop runs on a
    thread of its own: each connection is handed to on_accept(sock) on that
    thread (which starts a thread of its own for a long conversation). For
    the tests' fake servers and proxies. close() stops accepting (bounded)."""

    def __init__(self, on_accept, backlog=16, name="tcp-listener"):
        self.on_accept = on_accept
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True, name=name)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.on_accept(c)

    def close(self):
        self.stopped.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(2)


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


# ---------------------------------------------------------------- server processes


def remove_instance(workdir, instance_dir, copies):
    """Copies the (path, name) pairs into WORKDIR (what a failed test's report
    shows), then removes INSTANCE_DIR and WORKDIR's "instance" link to it."""
    for path, name in copies:
        try:
            shutil.copy(path, os.path.join(workdir, name))
        except OSError:
            pass
    link = os.path.join(workdir, "instance")
    if os.path.islink(link):
        os.unlink(link)
    shutil.rmtree(instance_dir, ignore_errors=True)


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
        remove_instance(self.workdir, self.dir, copies)
