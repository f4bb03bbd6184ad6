"""The e2e harness's ferry: its config (TOML written from dicts), the ferry
process (Ferry), and its command line run to completion (run_ferry_cli)."""

import http.client
import json
import os
import re
import subprocess

from harness_http import http_request
from harness_procs import (SANITIZER_PATTERNS, ServerProcess, _register, ferry_binary, sanitizer_reports,
                           tail_text, wait_until)
from harness_prometheus import parse_prometheus

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
                 storage=None, cluster=None):
    """A gateway.toml as text. components: {name: table dict}; admin,
    storage and cluster: the [admin], [storage] and [cluster] tables (left
    out when None)."""
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
    if cluster is not None:
        doc["cluster"] = dict(cluster)
    doc["components"] = components
    return to_toml(doc)


# ---------------------------------------------------------------- ferry


# TIME LEVEL INSTANCE [scope] message: group 2 the level, 3 the instance
# (absent before the config is read), 4 the scope.
LOG_LINE = re.compile(r"^(\S+) (ERROR|WARN|INFO|DEBUG|error|warn|info|debug) (?:(\S+) )?\[([^\]]+)\] (.*)$")


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
