"""An IRC network with IRCv3 SASL for the end-to-end tests: inspircd 3.15
linked to anope 2.0.12 services (Debian packages), on 127.0.0.1.

Rules kept (same as harness.py and irc_helpers.py): 127.0.0.1 only,
ephemeral ports, every wait bounded, every process stopped by its own pid
(SIGTERM, then SIGKILL), never by name.

Recipe and traps (../shared/TESTBED.md, "IRC with SASL"):
- inspircd offers `sasl` in CAP LS only while services are linked: the
  network is ready once a raw `CAP LS 302` lists it.
- Debian's default connect class allows 3 connections per IP and about one
  command a second: the class here raises the limits and turns fakelag off.
- anope needs `casemap = "rfc1459"` to link, and its OperServ defaults kill
  the 4th connection from one IP (and Z-line 127.0.0.1): sessions are off.
- anope refuses to run as root: it runs as the `irc` user (the pid we start
  is anope itself: Popen(user="irc"), the same as `runuser -u irc --` minus
  the runuser parent), so its folders live outside pytest's 0700 tree: the
  instance has its own 0755 folder under /tmp, linked from the test's folder
  as "instance"; cleanup() copies the logs back and removes it.
- NickServ `killprotect` is left out of the account defaults, so that a
  connection that uses a registered nick without identifying is not renamed
  to Guest* in the middle of a test.
"""

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import harness as h
from irc_helpers import IrcClient, socket_lines

INSPIRCD_BIN = "/usr/sbin/inspircd"
ANOPE_BIN = "/usr/sbin/anope"
ANOPE_ETC = "/etc/anope"
ANOPE_MODULES = "/usr/lib/anope"
ANOPE_LOCALE = "/usr/share/anope/locale"
ANOPE_USER = "irc"

# inspircd modules: cap and IRCv3, SASL and accounts (services), linking,
# what anope's inspircd3 protocol module expects to find, userhost-in-names.
INSPIRCD_MODULES = (
    "cap", "ircv3", "ircv3_accounttag", "ircv3_batch", "ircv3_capnotify", "ircv3_chghost",
    "ircv3_ctctags", "ircv3_echomessage", "ircv3_invitenotify", "ircv3_labeledresponse",
    "ircv3_msgid", "ircv3_servertime", "sasl", "services_account", "spanningtree", "svshold",
    "chghost", "hidechans", "servprotect", "topiclock",
    "uhnames",   # userhost-in-names: NAMES with every member's user@host
)


def missing():
    """Why the network cannot run here (text), or None when it can."""
    for path, pkg in ((INSPIRCD_BIN, "inspircd"), (ANOPE_BIN, "anope")):
        if not os.access(path, os.X_OK):
            return "%s is not installed (apt-get install %s)" % (path, pkg)
    if not os.path.isdir(ANOPE_ETC):
        return "%s is missing (the anope package's configuration)" % ANOPE_ETC
    try:
        import pwd
        pwd.getpwnam(ANOPE_USER)
    except KeyError:
        return "there is no %r user to run anope as" % ANOPE_USER
    if os.geteuid() != 0:
        return "running anope as the %r user needs root" % ANOPE_USER
    return None


def _strip_formatting(text):
    """IRC formatting codes (bold, colours, ...) out of a line's text."""
    return re.sub(r"\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x0f\x16\x1d\x1f\x1e\x11]", "", text)


def _sub1(pattern, repl, text, what):
    """re.subn that must replace exactly once (a changed stock config must
    not silently leave a default in place)."""
    new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
    if n != 1:
        raise RuntimeError("anope config: could not set %s (pattern %r not found)" % (what, pattern))
    return new


class InspircdAnope:
    """inspircd (as root, --runasroot) and anope (as irc), linked, on
    127.0.0.1. start() starts both and returns once SASL is offered;
    stop_anope()/start_anope() take the services away and bring them back
    (inspircd then stops offering SASL); stop() stops both, each by its pid."""

    def __init__(self, workdir, name="irc.localhost", services_name="services.localhost",
                 port=None, server_port=None, link_password=None):
        why = missing()
        if why:
            raise RuntimeError(why)
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.services_name = services_name
        self.port = port or h.free_port()
        self.server_port = server_port or h.free_port()
        self.link_password = link_password or "link-" + os.urandom(6).hex()
        self.dir = tempfile.mkdtemp(prefix="ferry-inspircd-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.ircd_dir = os.path.join(self.dir, "inspircd")
        self.anope_dir = os.path.join(self.dir, "anope")
        os.makedirs(self.ircd_dir)
        os.makedirs(self.anope_dir)
        self.ircd_conf = os.path.join(self.ircd_dir, "inspircd.conf")
        self.ircd_log = os.path.join(self.ircd_dir, "inspircd.log")
        self.ircd_stdout = os.path.join(self.ircd_dir, "inspircd.stdout")
        self.anope_stdout = os.path.join(self.anope_dir, "anope.stdout")
        self.ircd = None
        self.anope = None
        try:
            os.symlink(self.dir, os.path.join(self.workdir, "instance"))
        except OSError:
            pass
        self.write_inspircd_config()
        self.write_anope_config()

    # -- configuration

    def write_inspircd_config(self):
        d = self.ircd_dir
        lines = [
            '<server name="%s" description="ferry e2e test server" network="FerryTestNet">' % self.name,
            '<admin name="ferry tests" nick="ferry" email="root@localhost">',
            '<bind address="127.0.0.1" port="%d" type="clients">' % self.port,
            '<bind address="127.0.0.1" port="%d" type="servers">' % self.server_port,
            '<pid file="%s/inspircd.pid">' % d,
            '<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="%s">' % self.ircd_log,
            '<dns server="127.0.0.1" timeout="1">',
            # many test users from one address, no throttling, no lookups
            '<connect name="main" allow="*" timeout="60" threshold="1000" pingfreq="120" '
            'hardsendq="1048576" softsendq="65536" recvq="65536" localmax="1000" globalmax="1000" '
            'limit="5000" commandrate="1000000" fakelag="off" resolvehostnames="no" '
            'useident="no" modes="">',
            '<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes" '
            'splitwhois="no" exemptchanops="">',
            '<security hideserver="" userstats="Pu" customversion="" flatlinks="no" hidesplits="no" '
            'hideulines="no" hidebans="no" maxtargets="20">',
            '<performance quietbursts="yes" softlimit="1024" somaxconn="128" netbuffersize="10240">',
            '<channels users="100" opers="100">',
        ]
        lines += ['<module name="%s">' % m for m in INSPIRCD_MODULES]
        lines += [
            '<link name="%s" ipaddr="127.0.0.1" port="%d" allowmask="127.0.0.0/8" timeout="30s" '
            'sendpass="%s" recvpass="%s">' % (self.services_name, self.server_port,
                                                self.link_password, self.link_password),
            '<uline server="%s" silent="yes">' % self.services_name,
            '<sasl target="%s" requiressl="no">' % self.services_name,
        ]
        for svc in ("BotServ", "ChanServ", "Global", "HostServ", "MemoServ", "NickServ", "OperServ"):
            lines.append('<badnick nick="%s" reason="Reserved for a network service">' % svc)
        with open(self.ircd_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def write_anope_config(self):
        """/etc/anope/*.conf copied and changed where the tests need it."""
        d = self.anope_dir
        for path in glob.glob(os.path.join(ANOPE_ETC, "*.conf")) + [os.path.join(ANOPE_ETC, "services.motd")]:
            if os.path.exists(path):
                shutil.copy(path, d)
        sp = os.path.join(d, "services.conf")
        with open(sp) as f:
            t = f.read()
        t = _sub1(r'^(\s*value\s*=\s*)"services\.example\.com"', r'\1"%s"' % self.services_name, t,
                  "the services.host define")
        # uplink (the first port/password/host in the file are the uplink's)
        up = t.index("\nuplink")
        head, tail = t[:up], t[up:]
        tail = _sub1(r'^(\s*host\s*=\s*)"[^"]*"', r'\1"127.0.0.1"', tail, "uplink host")
        tail = _sub1(r'^(\s*port\s*=\s*)\d+', r'\g<1>%d' % self.server_port, tail, "uplink port")
        tail = _sub1(r'^(\s*password\s*=\s*)"[^"]*"', r'\1"%s"' % self.link_password, tail,
                     "uplink password")
        t = head + tail
        t = _sub1(r'^(\s*name\s*=\s*)"services\.example\.com"', r'\1"%s"' % self.services_name, t,
                  "serverinfo name")
        t = _sub1(r'^(\s*pid\s*=\s*)"[^"]*"', r'\1"%s/anope.pid"' % d, t, "pid file")
        t = _sub1(r'^(\s*motd\s*=\s*)"[^"]*"', r'\1"%s/services.motd"' % d, t, "motd")
        t = _sub1(r'^(\s*casemap\s*=\s*)"ascii"', r'\1"rfc1459"', t, "casemap")
        t = _sub1(r'^(\s*retrywait\s*=\s*)\S+', r'\g<1>2s', t, "retrywait")
        t = _sub1(r'^(\s*usemail\s*=\s*)yes', r'\1no', t, "usemail")
        t = _sub1(r'^module \{ name = "enc_sha256" \}', 'module { name = "enc_none" }', t, "enc_none")
        with open(sp, "w") as f:
            f.write(t)
        np_ = os.path.join(d, "nickserv.conf")
        with open(np_) as f:
            t = f.read()
        t = _sub1(r'^(\s*forceemail\s*=\s*)yes', r'\1no', t, "forceemail")
        t = _sub1(r'^(\s*regdelay\s*=\s*)\S+', r'\g<1>0s', t, "regdelay")
        t = _sub1(r'^(\s*defaults\s*=\s*)"killprotect ', r'\1"', t, "account defaults")
        with open(np_, "w") as f:
            f.write(t)
        op = os.path.join(d, "operserv.conf")
        with open(op) as f:
            t = f.read()
        t = _sub1(r'^(\s*defaultsessionlimit\s*=\s*)\d+', r'\g<1>0', t, "defaultsessionlimit")
        t = _sub1(r'^(\s*maxsessionkill\s*=\s*)\d+', r'\g<1>0', t, "maxsessionkill")
        with open(op, "w") as f:
            f.write(t)
        for root, dirs, files in os.walk(d):
            shutil.chown(root, ANOPE_USER, ANOPE_USER)
            for n in files:
                shutil.chown(os.path.join(root, n), ANOPE_USER, ANOPE_USER)

    # -- processes

    @property
    def ircd_pid(self):
        return self.ircd.pid if self.ircd else None

    @property
    def anope_pid(self):
        return self.anope.pid if self.anope else None

    def ircd_running(self):
        return self.ircd is not None and self.ircd.poll() is None

    def anope_running(self):
        return self.anope is not None and self.anope.poll() is None

    def running(self):
        return self.ircd_running() and self.anope_running()

    def start(self, timeout=40):
        """inspircd, then anope; returns once CAP LS lists sasl."""
        self.start_inspircd(timeout=timeout)
        self.start_anope(timeout=timeout)
        return self

    def start_inspircd(self, timeout=20):
        assert not self.ircd_running(), "inspircd already running"
        offset = h.file_size(self.ircd_stdout)
        out = open(self.ircd_stdout, "ab")
        try:
            self.ircd = subprocess.Popen([INSPIRCD_BIN, "--config", self.ircd_conf, "--nofork", "--runasroot"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.ircd_dir, start_new_session=True)
        finally:
            out.close()
        h._register(self)

        def ready():
            if self.ircd.poll() is not None:
                raise RuntimeError("inspircd exited with %s during start:\n%s" % (
                    self.ircd.returncode, self._ircd_tail()))
            # "now running" comes once the config is read and the ports bound
            return "InspIRCd is now running" in h.read_file(self.ircd_stdout, offset) and _connectable(self.port)

        try:
            h.wait_until(ready, timeout, interval=0.05, what="inspircd running, listening on %d" % self.port)
        except Exception:
            self.stop()
            raise

    def start_anope(self, timeout=40):
        """anope as the irc user; returns once inspircd offers SASL (the
        services are linked and have sent their burst)."""
        assert self.ircd_running(), "start inspircd first"
        assert not self.anope_running(), "anope already running"
        out = open(self.anope_stdout, "ab")
        d = self.anope_dir
        try:
            self.anope = subprocess.Popen(
                [ANOPE_BIN, "--confdir=" + d, "--dbdir=" + d, "--logdir=" + d, "--modulesdir=" + ANOPE_MODULES,
                 "--localedir=" + ANOPE_LOCALE, "--nofork"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=d,
                start_new_session=True, user=ANOPE_USER, group=ANOPE_USER, extra_groups=[])
        finally:
            out.close()
        h._register(self)

        def ready():
            if self.anope.poll() is not None:
                raise RuntimeError("anope exited with %s during start:\n%s" % (
                    self.anope.returncode, self._anope_tail()))
            if self.ircd.poll() is not None:
                raise RuntimeError("inspircd exited with %s while anope started:\n%s" % (
                    self.ircd.returncode, self._ircd_tail()))
            return "sasl" in self.cap_ls(timeout=2)

        try:
            h.wait_until(ready, timeout, interval=0.2, what="inspircd offering SASL (anope linked)")
        except Exception:
            self.stop()
            raise

    def stop_anope(self, timeout=10.0):
        """SIGTERM to anope's pid (it saves its database), SIGKILL after
        timeout; returns its exit code."""
        if self.anope is None:
            return None
        rc, _ = h.stop_process(self.anope, term_timeout=timeout)
        return rc

    def stop_inspircd(self, timeout=10.0):
        if self.ircd is None:
            return None
        rc, _ = h.stop_process(self.ircd, term_timeout=timeout)
        return rc

    def stop(self, timeout=10.0):
        """anope, then inspircd, each by its pid. Returns (anope rc, inspircd rc)."""
        a = self.stop_anope(timeout)
        i = self.stop_inspircd(timeout)
        h._unregister(self)
        return a, i

    def cleanup(self):
        """After stop(): copies configs and logs next to the test's files and
        removes the instance folder."""
        if self.ircd_running() or self.anope_running():
            self.stop()
        keep = [self.ircd_conf, self.ircd_log, self.ircd_stdout, self.anope_stdout,
                os.path.join(self.anope_dir, "services.conf")] + self.anope_logs()
        h.remove_instance(self.workdir, self.dir, [(p, os.path.basename(p)) for p in keep])

    # -- IRC side

    def cap_ls(self, timeout=3):
        """A raw connection's `CAP LS 302`: the capability names offered (a
        set; empty when nothing answered in time). The connection QUITs."""
        caps = set()
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"CAP LS 302\r\n")
                s.settimeout(0.05)
                for raw in socket_lines(s, lambda: time.monotonic() >= deadline):
                    text = raw.decode("utf-8", "replace")
                    parts = text.split(" ")
                    # :server CAP * LS [*] :caps
                    if len(parts) < 4 or parts[1] != "CAP" or parts[3] != "LS":
                        continue
                    trailing = text.split(" :", 1)[1] if " :" in text else ""
                    caps.update(c.split("=", 1)[0] for c in trailing.split())
                    if not (len(parts) > 4 and parts[4] == "*"):
                        break
                try:
                    s.sendall(b"QUIT\r\n")
                except OSError:
                    pass
        except OSError:
            return set()
        return caps

    def client(self, nick, **kw):
        """A registered raw IRC client (irc_helpers.IrcClient) on this server."""
        return IrcClient(self.port, nick, **kw)

    def register_account(self, account, password, email=None, timeout=20):
        """Registers the NickServ account `account` (connects as that nick,
        `PRIVMSG NickServ :REGISTER password [email]`, waits for NickServ's
        confirmation, QUITs). Retries while NickServ is not there yet
        (401), within timeout."""
        deadline = time.monotonic() + timeout
        c = IrcClient(self.port, account, timeout=min(10, timeout))
        try:
            if c.nick.lower() != account.lower():
                raise RuntimeError("registering %s: the server gave the nick %s" % (account, c.nick))
            for _ in range(100):
                m = c.mark()
                c.privmsg("NickServ", "REGISTER %s%s" % (password, " " + email if email else ""))
                line = c.wait(lambda l: (l.command == "NOTICE" and l.nick == "NickServ") or l.command == "401",
                              timeout=max(0.5, deadline - time.monotonic()), since=m,
                              what="NickServ's answer to REGISTER %s" % account)
                if line.command == "401":
                    if time.monotonic() >= deadline:
                        raise RuntimeError("NickServ is not on the network")
                    time.sleep(0.2)
                    continue
                # NickServ may send several notices; wait a moment for the one that says it
                got = c.wait(lambda l: l.command == "NOTICE" and l.nick == "NickServ" and re.search(
                    r"registered|denied|already|invalid|must|cannot|too", _strip_formatting(l.trailing or ""),
                    re.I), timeout=max(0.5, deadline - time.monotonic()), since=m,
                    what="NickServ's REGISTER confirmation for %s" % account)
                text = _strip_formatting(got.trailing or "")
                if not re.search(r"Nickname %s registered" % re.escape(account), text, re.I):
                    raise RuntimeError("NickServ refused REGISTER %s: %r" % (account, text))
                return text
            raise RuntimeError("NickServ did not answer REGISTER %s" % account)
        finally:
            c.close()

    # -- logs

    def anope_logs(self):
        return sorted(glob.glob(os.path.join(self.anope_dir, "services.log*")))

    def _ircd_tail(self, lines=25):
        return "stdout:\n%s\nlog:\n%s" % (h.tail_text(h.read_file(self.ircd_stdout), lines),
                                          h.tail_text(h.read_file(self.ircd_log), lines))

    def _anope_tail(self, lines=25):
        logs = self.anope_logs()
        return "stdout:\n%s\nlog %s:\n%s" % (
            h.tail_text(h.read_file(self.anope_stdout), lines), logs[-1] if logs else "-",
            h.tail_text(h.read_file(logs[-1]), lines) if logs else "")

    def ircd_log_text(self, offset=0):
        return h.read_file(self.ircd_log, offset)

    def anope_log_text(self):
        return "".join(h.read_file(p) for p in self.anope_logs()) + h.read_file(self.anope_stdout)

    def report(self):
        return "inspircd %s (pid %s, ports %s/%s, exit %s):\n%s\n\nanope %s (pid %s, exit %s):\n%s" % (
            self.name, self.ircd_pid, self.port, self.server_port,
            self.ircd.poll() if self.ircd else "-", self._ircd_tail(15),
            self.services_name, self.anope_pid, self.anope.poll() if self.anope else "-",
            self._anope_tail(15))


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- queries


class Whois:
    """What WHOIS told: user and host (311), realname, account (330, None
    when not logged in), and every line up to 318 (or 401)."""

    def __init__(self, lines):
        self.lines = lines
        self.exists = not any(l.command == "401" for l in lines)
        self.user = self.host = self.realname = self.account = None
        for l in lines:
            if l.command == "311" and len(l.params) >= 6:
                self.user, self.host, self.realname = l.params[2], l.params[3], l.params[5]
            elif l.command == "330" and len(l.params) >= 3:
                self.account = l.params[2]

    def __repr__(self):
        return "<WHOIS user=%r realname=%r account=%r: %r>" % (self.user, self.realname, self.account,
                                                              self.lines)


def whois(client, nick, timeout=10):
    """WHOIS nick from a raw IrcClient; a Whois."""
    m = client.mark()
    client.send("WHOIS %s" % nick)
    client.wait(lambda l: l.command in ("318", "401") and len(l.params) > 1
                and l.params[1].lower() == nick.lower(), timeout=timeout, since=m,
                what="end of WHOIS %s" % nick)
    return Whois(client.lines(lambda l: l.command in ("311", "312", "318", "319", "330", "401", "671")
                              and len(l.params) > 1 and l.params[1].lower() == nick.lower(), since=m))


def request_caps(client, caps, timeout=10):
    """CAP REQ after registration (inspircd allows it); waits for the ACK.
    Returns the acknowledged names."""
    m = client.mark()
    client.send("CAP REQ :%s" % " ".join(caps))
    line = client.wait(lambda l: l.command == "CAP" and len(l.params) >= 3 and l.params[1] in ("ACK", "NAK"),
                       timeout=timeout, since=m, what="CAP ACK for %s" % " ".join(caps))
    if line.params[1] != "ACK":
        raise RuntimeError("the server refused the capabilities %r: %r" % (caps, line))
    return line.trailing.split()
