"""End-to-end harness for ferry: what a test imports (`import harness as h`)
and the Testbed that owns and stops what a test started. The pieces live in
one module per job:

- harness_procs.py: ports, bounded waits, stopping by pid, ServerProcess;
- harness_servers.py: Prosody and ejabberd;
- harness_ferry.py: ferry's config (TOML), the ferry process, its CLI;
- harness_prometheus.py: GET /metrics parsed;
- harness_http.py: HTTP client and server, the webhook Receiver, signatures;
- harness_xmpp.py: a synchronous XMPP client;
- fake_providers.py (SMS providers), irc_helpers.py, inspircd_helpers.py.

Importable without pytest (bench/ uses it). Rules it keeps:
- only 127.0.0.1, free ports below the ephemeral range, never one twice;
- every run in its own directory (Prosody data, configs, logs);
- every wait bounded in time and in count (poll with a deadline);
- every process it starts is stopped by its pid: SIGTERM, then SIGKILL
  after a bound.
"""

import os

from harness_ferry import LOG_LINE, Ferry, ferry_config, ferry_env, run_ferry_cli, to_toml, toml_value  # noqa: F401
from harness_http import (HttpHandler, HttpResponse, JsonBody, Receiver, Reply, Request,  # noqa: F401
                          github_signature, http_request, jbody, new_signing_secret, post_json, serve_http,
                          standard_webhooks_key, standard_webhooks_signature, stop_http)
from harness_procs import (LIVE, REPO_ROOT, SANITIZER_PATTERNS, ServerProcess, _register,  # noqa: F401
                           _unregister, closed_after, cpu_seconds, ferry_binary, file_size, free_port,
                           project_version, read_file, remove_instance, sanitizer_reports, stop_process,
                           tail_text, wait_until)
from harness_prometheus import Sample, metric_value, metric_values, parse_prometheus  # noqa: F401
from harness_servers import (EJABBERDCTL_CANDIDATES, Ejabberd, Prosody, XmppServer,  # noqa: F401
                             ejabberd_missing, ejabberdctl_path)
from harness_xmpp import (NS_CHATSTATES, NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING,  # noqa: F401
                          NS_RECEIPTS, NS_STANZAS, NS_VERSION, Stanza, XmppClient, new_id)


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
                     cluster=None, **kw):
        """ferry() with ferry_config's text for components, linked to server
        (a Prosody or an Ejabberd: its component port) and listening on a
        free HTTP port. xmpp, log, http, admin, storage, cluster: as
        ferry_config; other keywords: as ferry()."""
        port = free_port()
        text = ferry_config(server.component_port, port, components, xmpp=xmpp, log=log, http=http, admin=admin,
                            storage=storage, cluster=cluster)
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
