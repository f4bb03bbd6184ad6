"""The e2e harness's XMPP servers: Prosody and ejabberd on 127.0.0.1, each
in its own directory with its own ports, users and components."""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import uuid

from harness_procs import ServerProcess, _unregister, file_size, free_port, read_file, stop_process, wait_until

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
    registered once it is ready (ejabberdctl register, about 0.4 s each).
    balancing: {domain: N}: domain_balancing bare_source over N slots (several
    connections for one component, each user's stanzas to one of them)."""

    kind = "ejabberd"

    def __init__(self, workdir, vhosts=("localhost",), components=None, offline=False,
                 log_level="info", c2s_port=None, component_port=None, node=None, muc=None,
                 balancing=None):
        """muc: the domain of a mod_muc service (XEP-0045 rooms), None for none."""
        self.muc = muc
        self.balancing = dict(balancing or {})
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
        balancing = "".join("  %s:\n    type: bare_source\n    component_number: %d\n" % (json.dumps(d), n)
                            for d, n in self.balancing.items())
        if balancing:
            balancing = "domain_balancing:\n" + balancing
        text = (balancing + "hosts:\n%s"
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
