"""What the several-instances tests share (test_instances*.py, issue 14):
ejabberd 23.01 with domain_balancing (bare_source, component_number 2), two
active ferry instances on one PostgreSQL database, a webhook receiver and
USERS XMPP users; senders both ways that say what was accepted, and checks
of what arrived (all of it, each sender's order, duplicates counted).

Traffic: user uI sends "uI N" to alerts@ (POSTed to the receiver's
/alerts); POSTs "pI N" to endpoint toI go to user uI. A sender's messages
are numbered 0.. in the order sent, so order is checked on numbers."""

import json
import threading
import time

import pytest

import harness as h
import pg_helpers
from harness import jbody

DOMAIN = "hooks.localhost"
SECRET = "inst-secret-Jq27"
TOKEN = "inst-tok-Lm40"
USERS = 10
PER_USER = 100
LEASE = 2
# A real sender waits what Retry-After says (ferry says 30 s when the store
# is down); the tests' senders wait at most this, to end in time.
RETRY_AFTER_CAP = 1.0


def shared_pg():
    """A module fixture body: the session's server under --store=postgresql,
    else one of its own."""
    why = h.ejabberd_missing() or pg_helpers.missing()
    if why:
        pytest.fail("cannot run the several-instances tests: " + why, pytrace=False)
    if pg_helpers.ACTIVE:
        yield pg_helpers.ACTIVE
        return
    server = pg_helpers.Postgres().start()
    yield server
    server.stop()


class Posts:
    """What the webhook senders saw: the numbers accepted (2xx) per
    endpoint, and every refusal by status, with Retry-After noted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = {}          # "pI" -> set of N answered 2xx
        self.accepted_at = {}       # "pI N" -> monotonic time of its 2xx
        self.statuses = {}          # status -> count (2xx included)
        self.retry_after = []       # Retry-After values seen on 503s ("" when absent)
        self.refused_connections = 0
        self.errors = []

    def note(self, status=None, retry_after=None):
        with self.lock:
            if status is None:
                self.refused_connections += 1
            else:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 503:
                self.retry_after.append(retry_after or "")


class Bed:
    """ejabberd with balancing, two ferries on one database, a receiver,
    USERS clients; what the receiver and the clients got, parsed."""

    def __init__(self, tb, pg, policy=None):
        self.tb, self.pg = tb, pg
        self.db = pg.new_database()
        users = [("u%d" % i, "localhost", "pw%d" % i) for i in range(USERS)]
        self.ejabberd = tb.ejabberd(components={DOMAIN: SECRET}, balancing={DOMAIN: 2}, users=users)
        self.arrivals = []          # (monotonic time, "uI N") of every POST to /alerts
        self.recv = tb.receiver(self._timed(policy))
        endpoints = {"alerts": {"url": self.recv.url("/alerts"), "format": "json", "token": TOKEN,
                                "deliver_to": ["u0@localhost"], "allow": ["localhost"]}}
        for i in range(USERS):   # one endpoint per user: its POSTs, in order, to that user
            endpoints["to%d" % i] = {"url": self.recv.url("/unused"), "format": "json", "token": TOKEN,
                                     "deliver_to": ["u%d@localhost" % i], "allow": ["localhost"]}
        self.comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": endpoints,
                     "retry_delay": 0.2, "retry_delay_max": 0.5, "max_attempts": 1000,
                     "timeout": 5.0}
        self.ferries = [self.ferry("a"), self.ferry("b")]
        self.clients = [tb.client("u%d@localhost" % i, "pw%d" % i, self.ejabberd) for i in range(USERS)]
        self.posts = Posts()
        self.sent_ids = {}          # stanza id -> ("uI", N) of every XMPP message sent

    def _timed(self, policy):
        def timed(req):
            if req.path == "/alerts":
                self.arrivals.append((time.monotonic(), jbody(req).get("body")))
            return policy(req) if policy else None
        return timed

    def first_arrivals(self):
        """{"uI N": monotonic time of its first POST to the receiver}."""
        out = {}
        for t, body in list(self.arrivals):
            out.setdefault(body, t)
        return out

    def ferry(self, name):
        storage = {"url": self.pg.url(self.db), "lease": LEASE}
        # Pings every second: the server answers them all to one of the two
        # (ejabberd's hash of its own domain), so the other's links stay up
        # only through the answers passed on through the store.
        return self.tb.linked_ferry(self.ejabberd, {"hooks": self.comp}, storage=storage, name=name,
                                    xmpp={"ping_interval": 1, "ping_timeout": 3}, timeout=30,
                                    cluster={"instance": name, "slots": 2})  # both link

    def waiting(self, direction):
        return int(self.pg.sql("SELECT count(*) FROM messages WHERE state = 0 AND direction = %d"
                               % direction, db=self.db))

    # -- XMPP -> webhook

    def send_xmpp(self, first=0, last=PER_USER, pace=0.0):
        """Each user sends "uI N" to alerts@ for N in [first, last), in
        order; PACE seconds between rounds."""
        for n in range(first, last):
            for i, c in enumerate(self.clients):
                mid = c.send_message("alerts@" + DOMAIN, "u%d %d" % (i, n), id="u%d-%d" % (i, n))
                self.sent_ids[mid] = ("u%d" % i, n)
            if pace:
                time.sleep(pace)

    def bounced(self):
        """{"uI": {N: (type, condition)}} of the XMPP messages answered with
        an error: not accepted."""
        out = {}
        for c in self.clients:
            for s in c.stanzas(lambda s: s.type == "error" and s.id in self.sent_ids):
                who, n = self.sent_ids[s.id]
                out.setdefault(who, {})[n] = (s.error_type, s.error_condition)
        return out

    # -- webhook -> XMPP

    def post_one(self, i, n, ports, deadline):
        """POSTs "pI N" to endpoint toI like a webhook sender: the same
        webhook-id on every try, a 503 waited out (Retry-After, at most
        RETRY_AFTER_CAP), a refused connection tried on the next port (a
        load balancer's doing). Returns once it is answered 2xx."""
        k = 0
        while time.monotonic() < deadline:
            ferry = ports[k % len(ports)]
            try:
                r = h.http_request("POST", ferry.url("/hooks/hooks/to%d" % i),
                                   json.dumps({"text": "p%d %d" % (i, n)}),
                                   {"Content-Type": "application/json", "webhook-id": "p%d-%d" % (i, n),
                                    "Authorization": "Bearer " + TOKEN}, timeout=10)
            except OSError:
                self.posts.note()
                k += 1
                time.sleep(0.05)
                continue
            self.posts.note(r.status, r.headers.get("retry-after"))
            if 200 <= r.status < 300:
                with self.posts.lock:
                    self.posts.accepted.setdefault("p%d" % i, set()).add(n)
                    self.posts.accepted_at["p%d %d" % (i, n)] = time.monotonic()
                return
            ra = r.headers.get("retry-after", "")
            time.sleep(min(float(ra), RETRY_AFTER_CAP) if ra.isdigit() else 0.2)
        self.posts.errors.append("p%d %d never accepted" % (i, n))

    def post_all(self, ports_for, first=0, last=PER_USER, pace=0.0, timeout=120):
        """POSTs "pI N" to endpoint toI for N in [first, last), one sender
        thread per endpoint, each POST waiting for its answer (so that the
        sender's order is defined), to the ferries ports_for(n) lists (the
        first one first); PACE seconds between POSTs of one sender."""
        deadline = time.monotonic() + timeout

        def sender(i):
            for n in range(first, last):
                ports = ports_for(n)
                self.post_one(i, n, ports if isinstance(ports, (list, tuple)) else [ports], deadline)
                if pace:
                    time.sleep(pace)
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(USERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 10)
        assert not self.posts.errors, self.posts.errors[:5]

    # -- what arrived

    def delivered_http(self):
        """{user: [n, ...]} in the order the receiver answered them 200."""
        got = {}
        for r in self.recv.requests("/alerts"):
            if r.status != 200:
                continue
            user, n = jbody(r)["body"].split()
            got.setdefault(user, []).append(int(n))
        return got

    def delivered_xmpp(self):
        got = {}
        for i, c in enumerate(self.clients):
            got["p%d" % i] = [int(s.body.split()[1]) for s in c.messages(
                lambda s: s.body and s.body.startswith("p%d " % i) and s.type != "error")]
        return got

    def expected(self):
        """{sender: set of N} of everything accepted: XMPP messages sent and
        not bounced, POSTs answered 2xx."""
        bounced = self.bounced()
        exp = {}
        for who, n in self.sent_ids.values():
            if n not in bounced.get(who, {}):
                exp.setdefault(who, set()).add(n)
        with self.posts.lock:
            for who, ns in self.posts.accepted.items():
                exp[who] = set(ns)
        return exp

    def wait_all(self, timeout=120, expected=None):
        """Until every accepted message arrived (by default: PER_USER each
        way from every sender)."""
        exp = expected or {p % i: set(range(PER_USER)) for i in range(USERS) for p in ("u%d", "p%d")}
        missing = {}

        def complete():
            got = dict(self.delivered_http(), **self.delivered_xmpp())
            missing.clear()
            missing.update({who: sorted(ns - set(got.get(who, []))) for who, ns in exp.items()
                            if not ns <= set(got.get(who, []))})
            return not missing
        try:
            h.wait_until(complete, timeout, interval=0.5, what="every message both ways")
        except TimeoutError as e:
            raise TimeoutError("%s; missing: %s" % (e, {w: (len(m), m[:5]) for w, m in missing.items()}))


def in_order(seq):
    """Each sender's messages in order: the first arrival of each number
    comes after the first arrival of every smaller one."""
    seen, firsts = set(), []
    for n in seq:
        if n not in seen:
            seen.add(n)
            firsts.append(n)
    return firsts == sorted(firsts)


def duplicates(got):
    return sum(len(seq) - len(set(seq)) for seq in got.values())


def duplicated(got):
    """The "WHO N" delivered more than once."""
    return sorted("%s %d" % (who, n) for who, seq in got.items() for n in set(seq) if seq.count(n) > 1)


def check_orders(bed, expected=None):
    """Everything expected arrived (PER_USER from every sender by default),
    nothing else, each sender's in order. Returns the duplicates (to the
    receiver, to XMPP)."""
    http, xmpp = bed.delivered_http(), bed.delivered_xmpp()
    for who, seq in list(http.items()) + list(xmpp.items()):
        want = expected[who] if expected else set(range(PER_USER))
        assert set(seq) == want, (who, "missing", sorted(want - set(seq))[:10],
                                  "not accepted yet arrived", sorted(set(seq) - want)[:10])
        assert in_order(seq), (who, seq)
    if expected:
        assert set(expected) <= set(http) | set(xmpp), sorted(set(expected) - set(http) - set(xmpp))
    return duplicates(http), duplicates(xmpp)
