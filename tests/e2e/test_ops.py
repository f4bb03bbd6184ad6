"""Operations: GET /metrics (Prometheus text format), the XEP-0050 ad-hoc
commands for [admin] jids (driven with slixmpp's xep_0050 plugin),
`ferry queue` on a stopped ferry's store, and log.format = "json".

One Prosody for the module. The module's ferry (hooks.localhost, alice is
its admin, bob is not) serves the metrics and ad-hoc tests; the queue and
JSON-log tests start their own ferries on their own component domains."""

import json
import re
import signal
import xml.etree.ElementTree as ET

import pytest

import harness as h
from harness import Reply

DOMAIN = "hooks.localhost"
QDOMAIN = "q.localhost"
Q2DOMAIN = "q2.localhost"
JDOMAIN = "json.localhost"
ALERTS = "alerts@" + DOMAIN
DEAD = "dead@" + DOMAIN
SECRET = "ops-comp-secret-Hd42"
TOKEN = "ops-tok-Pq19"

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
COMMANDS = {"status", "reload", "dead-list", "dead-retry", "disconnect"}
PLUGINS = ("xep_0030", "xep_0004", "xep_0050")


def endpoint(recv, path, **kw):
    d = {"url": recv.url(path), "format": "json", "token": TOKEN, "deliver_to": ["alice@localhost"],
         "allow": ["localhost"]}
    d.update(kw)
    return d


def hooks_config(e, alerts_path="/alerts", admins=("alice@localhost",)):
    comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "max_attempts": 1,
            "retry_delay": 0.2, "retry_delay_max": 1.0, "timeout": 3.0,
            "endpoints": {"alerts": endpoint(e.recv, alerts_path), "dead": endpoint(e.recv, "/dead")}}
    return h.ferry_config(e.prosody.component_port, e.http_port, {"hooks": comp},
                          admin={"jids": list(admins)}, storage={"path": e.store})


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.tb = tb
    e.prosody = tb.prosody(components={DOMAIN: SECRET, QDOMAIN: SECRET, Q2DOMAIN: SECRET, JDOMAIN: SECRET},
                           users=[("alice", "localhost", "alicepw"), ("bob", "localhost", "bobpw")])
    e.recv = tb.receiver()
    e.http_port = h.free_port()
    e.store = tb.subdir("store") + "/ferry.db"
    e.ferry = tb.ferry(hooks_config(e), http_port=e.http_port)
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody, plugins=PLUGINS)
    e.bob = tb.client("bob@localhost", "bobpw", e.prosody, plugins=PLUGINS)
    return e


# ------------------------------------------------------------------ helpers


def post_text(ferry, text, path="/hooks/hooks/alerts", token=TOKEN):
    return h.post_json(ferry.url(path), {"text": text}, token)


def as_stanza(iq):
    """A slixmpp stanza as a harness Stanza (plain ElementTree)."""
    return h.Stanza(ET.fromstring(ET.tostring(iq.xml)))


def command_el(st):
    c = st.find(NS_COMMANDS, "command")
    assert c is not None, st
    return c


def form_of(cmd):
    for c in cmd:
        if c.tag == "{%s}x" % NS_DATA:
            return c
    return None


def fields_of(form):
    return {f.get("var"): f for f in form if f.tag == "{%s}field" % NS_DATA}


def values_of(field):
    return [v.text or "" for v in field if v.tag == "{%s}value" % NS_DATA]


def note_of(cmd):
    for c in cmd:
        if c.tag == "{%s}note" % NS_COMMANDS:
            return c
    return None


def execute(client, node, action="execute", sessionid=None, form=None, timeout=10):
    """Sends an ad-hoc command iq; returns the result as a harness Stanza.
    form: {var: value} submitted as a data form."""
    def go(x):
        payload = None
        if form is not None:
            payload = x["xep_0004"].make_form(ftype="submit")
            for var, value in form.items():
                payload.add_field(var=var, value=value)
        return x["xep_0050"].send_command(DOMAIN, node, action=action, sessionid=sessionid,
                                          payload=payload)
    return as_stanza(client.call(go, timeout=timeout))


def execute_error(client, node, **kw):
    """Runs a command that must fail; returns the error (condition, type)."""
    from slixmpp.exceptions import IqError
    try:
        st = execute(client, node, **kw)
    except IqError as err:
        return err.condition, err.etype, as_stanza(err.iq)
    raise AssertionError("command %s answered instead of failing: %r" % (node, st))


def command_items(client):
    iq = client.call(lambda x: x["xep_0050"].get_commands(jid=DOMAIN))
    st = as_stanza(iq)
    q = st.find(h.NS_DISCO_ITEMS, "query")
    assert q is not None, st
    assert q.get("node") == NS_COMMANDS, st
    return [(i.get("jid"), i.get("node"), i.get("name")) for i in q if i.tag == "{%s}item" % h.NS_DISCO_ITEMS]


def metrics(ferry):
    r, samples, types, helps = ferry.metrics()
    assert r.status == 200, r
    return samples, types, helps, r


def counter(samples, name, **labels):
    vals = h.metric_values(samples, name, **labels)
    assert len(vals) <= 1, (name, labels, vals)
    return vals[0] if vals else 0.0


# ------------------------------------------------------------------ /metrics


def test_metrics_prometheus_format_and_counts(env):
    f, alice = env.ferry, env.alice
    samples, _, _, _ = metrics(f)
    out_before = counter(samples, "ferry_messages_total", component="hooks", direction="to_network",
                         outcome="delivered")
    in_before = counter(samples, "ferry_messages_total", component="hooks", direction="to_xmpp",
                        outcome="delivered")
    http202_before = counter(samples, "ferry_http_responses_total", code="202")

    mid = alice.send_message(ALERTS, "counted out")
    env.recv.wait("/alerts", 1, pred=lambda r: r.json().get("id") == mid)
    assert post_text(f, "counted in").status == 202
    alice.wait_message(lambda s: s.body == "counted in")

    def counted():
        s, _, _, _ = metrics(f)
        out = counter(s, "ferry_messages_total", component="hooks", direction="to_network", outcome="delivered")
        inn = counter(s, "ferry_messages_total", component="hooks", direction="to_xmpp", outcome="delivered")
        return s if out >= out_before + 1 and inn >= in_before + 1 else None

    # to_xmpp counts once the server acknowledged the batch (ping barrier)
    samples = h.wait_until(counted, 10, interval=0.1, what="delivered counters to increase both ways")
    samples, types, helps, r = metrics(f)
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    assert "version=0.0.4" in r.headers.get("content-type", ""), r.headers

    assert h.metric_value(samples, "ferry_link_up", component="hooks") == 1
    assert counter(samples, "ferry_http_responses_total", code="202") >= http202_before + 1
    adapters = {s.labels.get("adapter") for s in samples if s.name == "ferry_messages_total"}
    assert adapters == {"webhook"}, adapters

    # every series is declared (TYPE and HELP) and counters look like counters
    for s in samples:
        assert s.name in types, "no # TYPE for %s" % s.name
        assert s.name in helps, "no # HELP for %s" % s.name
        if types[s.name] == "counter":
            assert s.name.endswith("_total"), s
            assert s.value >= 0 and s.value == int(s.value), s
    # no per-user labels: no JID, no user name, in any label or anywhere else
    text = r.body.decode()
    for s in samples:
        for k, v in s.labels.items():
            assert "@" not in v and "/" not in v, "label %s=%r in %r" % (k, v, s)
    for needle in ("alice", "bob", "@localhost"):
        assert needle not in text, "%r appears in /metrics" % needle


# ------------------------------------------------------------------ ad-hoc commands


def test_disco_info_lists_commands_feature(env):
    r = env.alice.iq(DOMAIN, "get", "<query xmlns='%s'/>" % h.NS_DISCO_INFO)
    assert r.type == "result", r
    q = r.find(h.NS_DISCO_INFO, "query")
    features = {c.get("var") for c in q if c.tag == "{%s}feature" % h.NS_DISCO_INFO}
    assert NS_COMMANDS in features, r


def test_admin_sees_commands(env):
    items = command_items(env.alice)
    assert {node for _, node, _ in items} == COMMANDS, items
    assert all(jid == DOMAIN and name for jid, _, name in items), items


def test_non_admin_sees_no_commands(env):
    assert command_items(env.bob) == []


@pytest.mark.parametrize("node", sorted(COMMANDS))
def test_non_admin_forbidden(env, node):
    cond, etype, st = execute_error(env.bob, node)
    assert cond == "forbidden", st
    assert etype == "auth", st
    assert st.frm == DOMAIN and st.to == env.bob.full_jid, st


def test_unknown_command_item_not_found(env):
    cond, _, st = execute_error(env.alice, "no-such-command")
    assert cond == "item-not-found", st


def test_status(env):
    st = execute(env.alice, "status")
    assert st.type == "result" and st.frm == DOMAIN, st
    cmd = command_el(st)
    assert cmd.get("node") == "status" and cmd.get("status") == "completed", st
    form = form_of(cmd)
    assert form is not None and form.get("type") == "result", st
    text = "\n".join(v for f in fields_of(form).values() for v in values_of(f))
    assert DOMAIN in text, text
    assert "link up" in text, text


EDITABLE = {"boolean", "jid-multi", "jid-single", "list-multi", "list-single", "text-multi", "text-private",
            "text-single", None}


def test_reports_are_read_only(env):
    """status and dead-list only report: completed, a result form whose
    fields no client offers to edit (poezio shows text-multi as an
    editable box), no actions to go on with."""
    for node in ("status", "dead-list"):
        st = execute(env.alice, node)
        cmd = command_el(st)
        assert cmd.get("status") == "completed", st
        assert cmd.find("{%s}actions" % NS_COMMANDS) is None, st
        form = form_of(cmd)
        if form is None:
            assert note_of(cmd) is not None, st
            continue
        assert form.get("type") == "result", st
        kinds = {f.get("type") for f in fields_of(form).values()}
        assert kinds and not kinds & EDITABLE, (node, kinds)


def test_cancel(env):
    st = execute(env.alice, "dead-retry", action="cancel")
    assert command_el(st).get("status") == "canceled", st


def test_reload_applies_new_endpoint_url(env):
    f, alice = env.ferry, env.alice
    off = f.stderr_offset()
    f.write_config(hooks_config(env, alerts_path="/alerts-reloaded"))
    try:
        st = execute(alice, "reload")
        cmd = command_el(st)
        assert cmd.get("status") == "completed", st
        assert note_of(cmd) is not None, st
        f.wait_log(r"\breloaded\b", timeout=5, offset=off)
        # The reload ran before the answer was sent; this message comes after.
        mid = alice.send_message(ALERTS, "after the ad-hoc reload")
        env.recv.wait("/alerts-reloaded", 1, pred=lambda r: r.json().get("id") == mid)
        assert not env.recv.requests("/alerts", pred=lambda r: r.json().get("id") == mid)
    finally:
        off = f.stderr_offset()
        f.write_config(hooks_config(env))
        f.signal(signal.SIGHUP)
        f.wait_log(r"\breloaded\b", timeout=5, offset=off)
    mid = alice.send_message(ALERTS, "back to the first url")
    env.recv.wait("/alerts", 1, pred=lambda r: r.json().get("id") == mid)
    assert f.healthz()[0] == 200


def test_reload_with_broken_config_says_so(env):
    """An admin who reloads from an XMPP client does not see ferry's log:
    the answer must not claim success when the reload was refused, and
    nothing of the broken file applies."""
    f, alice = env.ferry, env.alice
    off = f.stderr_offset()
    broken = hooks_config(env, alerts_path="/alerts-broken").replace(
        'format = "json"', 'format = "json"\ncolour = "blue"', 1)
    f.write_config(broken)
    try:
        st = execute(alice, "reload")
        f.wait_log(r"refused", timeout=5, offset=off)
        cmd = command_el(st)
        note = note_of(cmd)
        answer = "%s %s" % (note.get("type") if note is not None else None,
                            (note.text or "") if note is not None else "")
        assert note is not None and (note.get("type") == "error" or
                                     re.search(r"refus|error|fail|not reloaded", note.text or "", re.I)), \
            "ad-hoc reload of a broken config answered %r (ferry logged: %s)" % (
                answer, " | ".join(l for l in f.log_lines(off) if "refused" in l or "colour" in l))
        mid = alice.send_message(ALERTS, "after the refused reload")
        env.recv.wait("/alerts", 1, pred=lambda r: r.json().get("id") == mid)
        assert not env.recv.requests("/alerts-broken")
    finally:
        off = f.stderr_offset()
        f.write_config(hooks_config(env))
        f.signal(signal.SIGHUP)
        f.wait_log(r"\breloaded\b", timeout=5, offset=off)


def test_reload_changes_admins(env):
    f, alice, bob = env.ferry, env.alice, env.bob
    f.write_config(hooks_config(env, admins=("bob@localhost",)))
    try:
        assert command_el(execute(alice, "reload")).get("status") == "completed"
        cond, _, st = execute_error(alice, "status")
        assert cond == "forbidden", st
        assert command_items(alice) == []
        assert {node for _, node, _ in command_items(bob)} == COMMANDS
        f.write_config(hooks_config(env))
        assert command_el(execute(bob, "reload")).get("status") == "completed"
    finally:
        f.write_config(hooks_config(env))
        f.signal(signal.SIGHUP)
    h.wait_until(lambda: {n for _, n, _ in command_items(alice)} == COMMANDS, 5, what="alice admin again")
    cond, _, st = execute_error(bob, "status")
    assert cond == "forbidden", st


def _dead_lines(client):
    st = execute(client, "dead-list")
    cmd = command_el(st)
    assert cmd.get("status") == "completed", st
    form = form_of(cmd)
    if form is None:
        note = note_of(cmd)
        assert note is not None and "no dead" in (note.text or "").lower(), st
        return []
    return [v for f in fields_of(form).values() for v in values_of(f)]


def test_dead_list_and_retry(env):
    f, alice, recv = env.ferry, env.alice, env.recv
    recv.script("/dead", [Reply(500, body=b"down")] * 50)
    mid = alice.send_message(DEAD, "doomed at first")
    first = recv.wait("/dead", 1, pred=lambda r: r.json().get("id") == mid)[0]
    err = alice.wait_message(lambda s: s.id == mid and s.type == "error", timeout=15,
                             what="error message after max_attempts = 1")
    assert "500" in (err.error_text or ""), err

    lines = _dead_lines(alice)
    assert len(lines) == 1, lines
    m = re.match(r"^(\d+) ", lines[0])
    assert m, lines
    dead_id = m.group(1)
    assert "500" in lines[0], lines
    h.wait_until(lambda: f.healthz()[1]["components"]["hooks"]["dead"] == 1, 5, what="/healthz dead = 1")
    samples, _, _, _ = metrics(f)
    assert h.metric_value(samples, "ferry_outbox_dead", component="hooks") == 1

    # step 1: a form asking which message
    st = execute(alice, "dead-retry")
    cmd = command_el(st)
    assert cmd.get("status") == "executing", st
    sessionid = cmd.get("sessionid")
    assert sessionid, st
    actions = [c for c in cmd if c.tag == "{%s}actions" % NS_COMMANDS]
    assert actions and [c.tag for c in actions[0]] == ["{%s}complete" % NS_COMMANDS], st
    form = form_of(cmd)
    assert form is not None and form.get("type") == "form", st
    field = fields_of(form).get("id")
    assert field is not None and field.get("type") == "list-single", st
    options = [v.text for o in field if o.tag == "{%s}option" % NS_DATA
               for v in o if v.tag == "{%s}value" % NS_DATA]
    assert options == [dead_id], st

    # step 2: the receiver is back; submit the id
    recv.clear("/dead")
    st = execute(alice, "dead-retry", action="complete", sessionid=sessionid, form={"id": dead_id})
    cmd = command_el(st)
    assert cmd.get("status") == "completed", st
    assert cmd.get("sessionid") == sessionid, st
    assert "pending" in (note_of(cmd).text or ""), st

    [again] = recv.wait("/dead", 1, timeout=15, pred=lambda r: r.json().get("id") == mid)
    assert again.json()["body"] == "doomed at first"
    for hdr in ("webhook-id", "idempotency-key"):
        if hdr in first.headers:
            assert again.headers.get(hdr) == first.headers[hdr], (hdr, first.headers, again.headers)
    h.wait_until(lambda: f.healthz()[1]["components"]["hooks"]["dead"] == 0, 5, what="/healthz dead = 0")
    assert _dead_lines(alice) == []
    assert len(recv.requests("/dead", pred=lambda r: r.json().get("id") == mid)) == 1
    assert len(alice.messages(lambda s: s.id == mid and s.type == "error")) == 1


def test_dead_retry_unknown_or_bad_id(env):
    cond, _, st = execute_error(env.alice, "dead-retry", action="complete", form={"id": "987654321"})
    assert cond == "item-not-found", st
    cond, _, st = execute_error(env.alice, "dead-retry", action="complete", form={"id": "not-a-number"})
    assert cond == "bad-request", st


# ------------------------------------------------------------------ ferry queue


def queue_rows(cfg):
    r = h.run_ferry_cli(["queue", "-c", cfg, "list"])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines and lines[0].split()[:4] == ["ID", "STATE", "DIRECTION", "COMPONENT"], r.stdout
    rows = []
    for line in lines[1:]:
        parts = line.split()
        rows.append({"id": parts[0], "state": parts[1], "direction": parts[2], "component": parts[3],
                     "line": line})
    return rows


def test_ferry_queue_list_retry_drop(env, testbed):
    recv = testbed.receiver()
    recv.script("/q-dead", [Reply(500)] * 20)
    recv.script("/q-slow", [Reply(503)] * 20)
    store = testbed.subdir("qstore") + "/ferry.db"
    comps = {
        "q": {"adapter": "webhook", "domain": QDOMAIN, "secret": SECRET, "max_attempts": 1,
              "endpoints": {"dead": endpoint(recv, "/q-dead")}},
        "q2": {"adapter": "webhook", "domain": Q2DOMAIN, "secret": SECRET, "max_attempts": 5,
               "retry_delay": 300.0, "retry_delay_max": 300.0,
               "endpoints": {"slow": endpoint(recv, "/q-slow")}},
    }
    f = testbed.linked_ferry(env.prosody, comps, storage={"path": store}, name="queued")
    alice = env.alice
    dead_mid = alice.send_message("dead@" + QDOMAIN, "for the dead letters")
    slow_mid = alice.send_message("slow@" + Q2DOMAIN, "waits for its retry")
    recv.wait("/q-dead", 1, pred=lambda r: r.json().get("id") == dead_mid)
    recv.wait("/q-slow", 1, pred=lambda r: r.json().get("id") == slow_mid)
    alice.wait_message(lambda s: s.id == dead_mid and s.type == "error", what="error for the dead one")
    h.wait_until(lambda: (f.healthz()[1]["components"]["q"]["dead"] == 1
                          and f.healthz()[1]["components"]["q2"]["pending"] == 1), 10,
                 what="one dead (q), one pending (q2)")
    assert f.stop() == 0
    cfg = f.config_path

    rows = queue_rows(cfg)
    dead = [r for r in rows if r["component"] == "q" and r["state"] == "dead"]
    pending = [r for r in rows if r["component"] == "q2" and r["state"] == "pending"]
    assert len(dead) == 1 and len(pending) == 1, rows
    assert dead[0]["direction"] == "to-network" and pending[0]["direction"] == "to-network", rows
    assert "500" in dead[0]["line"], dead

    r = h.run_ferry_cli(["queue", "-c", cfg, "retry", dead[0]["id"]])
    assert r.returncode == 0 and "pending again" in r.stdout, (r.returncode, r.stdout, r.stderr)
    r = h.run_ferry_cli(["queue", "-c", cfg, "drop", pending[0]["id"]])
    assert r.returncode == 0 and "dropped" in r.stdout, (r.returncode, r.stdout, r.stderr)
    rows = {x["id"]: x for x in queue_rows(cfg)}
    assert rows[dead[0]["id"]]["state"] == "pending", rows
    assert pending[0]["id"] not in rows, rows

    r = h.run_ferry_cli(["queue", "-c", cfg, "retry", "987654321"])
    assert r.returncode == 1 and "no message" in r.stderr, (r.returncode, r.stdout, r.stderr)
    for args in (["retry", "abc"], ["explode", "1"], ["list", "extra"], ["drop"]):
        r = h.run_ferry_cli(["queue", "-c", cfg] + args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), args

    # the retried message goes out when ferry starts again; the dropped one is gone
    recv.clear("/q-dead")
    recv.clear("/q-slow")
    f.start()
    f.wait_healthz(200)
    recv.wait("/q-dead", 1, timeout=15, pred=lambda r: r.json().get("id") == dead_mid)
    h.wait_until(lambda: f.healthz()[1]["components"]["q"]["pending"] == 0, 10, what="q: nothing pending")
    assert f.healthz()[1]["components"]["q2"]["pending"] == 0


# ------------------------------------------------------------------ JSON logs


def json_ferry(env, testbed):
    recv = testbed.receiver()
    port = h.free_port()
    comps = {"j": {"adapter": "webhook", "domain": JDOMAIN, "secret": SECRET,
                   "endpoints": {"alerts": endpoint(recv, "/j")}}}
    text = h.ferry_config(env.prosody.component_port, port, comps, log={"level": "debug", "format": "json"},
                          storage={"path": testbed.subdir("jstore") + "/ferry.db"})
    return testbed.ferry(text, http_port=port, name="jsonlog"), recv, text


def assert_json_lines(f):
    lines = [l for l in f.stderr().splitlines() if l.strip()]
    levels = set()
    for l in lines:
        try:
            o = json.loads(l)
        except ValueError:
            raise AssertionError("not a JSON line in ferry's log: %r" % l) from None
        assert isinstance(o, dict), l
        for k in ("time", "level", "msg"):
            assert isinstance(o.get(k), str), (k, l)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", o["time"]), l
        assert o["level"] in ("error", "warn", "info", "debug"), l
        levels.add(o["level"])
    return lines, levels


def test_json_log_lines(env, testbed):
    f, recv, _ = json_ferry(env, testbed)
    mid = env.alice.send_message("alerts@" + JDOMAIN, "logged as json")
    recv.wait("/j", 1, pred=lambda r: r.json().get("id") == mid)
    assert post_text(f, "json inbound", path="/hooks/j/alerts").status == 202
    env.alice.wait_message(lambda s: s.body == "json inbound")
    assert post_text(f, "x", path="/hooks/j/alerts", token="wrong").status == 401
    f.signal(signal.SIGHUP)
    f.wait_log(r'"reloaded"|\breloaded\b', timeout=5)
    assert f.stop() == 0
    lines, levels = assert_json_lines(f)
    assert len(lines) >= 5, lines
    assert "debug" in levels and "info" in levels, levels


def test_json_log_reload_errors_are_json(env, testbed):
    """A SIGHUP with a broken file: the errors (file:line) reach the log as
    JSON objects too: a log shipper reads every line as JSON."""
    f, _, text = json_ferry(env, testbed)
    f.write_config(text.replace('format = "json"\ntoken', 'format = "json"\ncolour = "blue"\ntoken', 1))
    assert "colour" in open(f.config_path).read()
    f.signal(signal.SIGHUP)
    f.wait_log(r"refused", timeout=5)
    assert f.running()
    assert f.stop() == 0
    assert_json_lines(f)
