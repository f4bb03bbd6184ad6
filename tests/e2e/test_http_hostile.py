"""Hostile HTTP clients (issue 11, items 3 and 5): what an attacker on the
HTTP port gets, and that everyone else is still served meanwhile.

- A route named without its trailing slash (`POST /hooks/NAME`,
  `POST /sms/NAME`), with or without a query, is 404 with a reason: no read
  past the path (ASan would report it), no query taken as an endpoint.
- Slowloris: hundreds of half-open requests from 127.0.0.1, each adding a
  header line now and then. /healthz still answers at once, a webhook from
  another address (127.0.0.2, loopback too) is still delivered, and the slow
  connections are closed at [http] request_timeout with a 408.

Every socket is closed at the end of its test; every wait is bounded."""

import selectors
import socket
import time

import pytest

import fake_providers as fp
import harness as h

SECRET = "comp-secret-Zr71"
DOMAIN = "hooks.localhost"
SMS_DOMAIN = "sms.localhost"
TOKEN = "tok-alerts-Hq28"
ALICE_NUM = "+15550001111"


# ---------------------------------------------------------------- raw HTTP


def raw_request(port, data, source="127.0.0.1", timeout=5.0):
    """Sends DATA (bytes, a whole request with Connection: close) from
    SOURCE and reads the answer up to EOF: (status, head text, body bytes),
    status None when the connection closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return parse_answer(b"".join(chunks))


def parse_answer(raw):
    if not raw.startswith(b"HTTP/1."):
        return None, "", raw
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin-1"), body


def request_bytes(method, path, body=b"", headers=None):
    hdrs = {"Host": "127.0.0.1", "Connection": "close", "Content-Length": str(len(body))}
    hdrs.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in hdrs.items())
    return head.encode() + b"\r\n" + body


def webhook_post(port, text, source="127.0.0.1", path="/hooks/hooks/alerts", token=TOKEN, timeout=5.0):
    body = ('{"text": "%s"}' % text).encode()
    return raw_request(port, request_bytes("POST", path, body, {
        "Content-Type": "application/json", "Authorization": "Bearer " + token}), source, timeout)


def healthz(port, source="127.0.0.1", timeout=5.0):
    """(status, seconds taken)."""
    t0 = time.monotonic()
    try:
        status, _, _ = raw_request(port, request_bytes("GET", "/healthz"), source, timeout)
    except OSError:
        status = None
    return status, time.monotonic() - t0


class Slowloris:
    """COUNT connections from SOURCE, each sending a request line and then a
    header line every INTERVAL seconds, never the blank line that ends the
    headers (or, with body=True, whole headers and then one body byte per
    INTERVAL). Keeps what each connection got back."""

    def __init__(self, port, count, source="127.0.0.1", interval=0.5, body=False):
        self.port, self.interval, self.body = port, interval, body
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.got = {}        # socket -> bytes read
        self.closed_at = {}  # socket -> when the server closed it (monotonic)
        self.opened = time.monotonic()
        for _ in range(count):
            s = socket.socket()
            s.bind((source, 0))
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            self.socks.append(s)
            self.got[s] = b""
            self.sel.register(s, selectors.EVENT_READ)
            if body:
                head = request_bytes("POST", "/hooks/hooks/alerts", b"", {
                    "Content-Type": "application/json", "Authorization": "Bearer " + TOKEN,
                    "Content-Length": "1000"})
                self._send(s, head)
            else:
                self._send(s, b"POST /hooks/hooks/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.opened = time.monotonic()

    def _send(self, s, data):
        try:
            s.send(data)
        except OSError:
            self._closed(s)

    def _closed(self, s):
        if s not in self.closed_at:
            self.closed_at[s] = time.monotonic()
            self.sel.unregister(s)

    def pump(self, seconds):
        """For SECONDS: reads what the server sends, and every interval
        adds a byte or a header line on every connection still open."""
        end = time.monotonic() + seconds
        next_drip = time.monotonic()
        n = 0
        while time.monotonic() < end:
            if time.monotonic() >= next_drip:
                n += 1
                for s in self.open():
                    self._send(s, b"{" if self.body else b"X-Slow-%d: %d\r\n" % (n, n))
                next_drip += self.interval
            if not self.open():
                break
            for key, _ in self.sel.select(timeout=min(0.05, max(0.0, end - time.monotonic()))):
                s = key.fileobj
                try:
                    b = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    b = b""
                if b:
                    self.got[s] += b
                else:
                    self._closed(s)

    def open(self):
        return [s for s in self.socks if s not in self.closed_at]

    def statuses(self):
        return [parse_answer(self.got[s])[0] for s in self.socks]

    def close(self):
        for s in self.socks:
            s.close()
        self.sel.close()


@pytest.fixture
def slowloris():
    yield from h.closed_after(Slowloris)


# ---------------------------------------------------------------- item 3: paths


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin):
    tb = module_testbed
    e = h.Env()
    e.prosody = tb.prosody(components={DOMAIN: SECRET, SMS_DOMAIN: SECRET},
                           users=[("alice", "localhost", "alicepw")])
    e.fake = fp.FakeTwilio(numbers=[ALICE_NUM])
    endpoints = {"alerts": {"format": "json", "token": TOKEN, "deliver_to": ["alice@localhost"],
                            "allow": ["localhost"]}}
    sms = {"adapter": "sms", "domain": SMS_DOMAIN, "secret": SECRET, "provider": "twilio",
           "api_url": e.fake.url, "account_sid": e.fake.account_sid, "auth_token": e.fake.auth_token,
           "default_country_code": "1"}
    e.ferry = tb.linked_ferry(e.prosody, {
        "hooks": {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": endpoints},
        "sms": sms})
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody)
    yield e
    e.fake.close()


@pytest.mark.parametrize("path", ["/hooks/hooks", "/hooks/hooks?alerts", "/hooks/hooks?/alerts",
                                  "/sms/sms", "/sms/sms?inbound", "/sms/sms?status"])
def test_route_without_its_slash_is_404(env, path):
    body = b"From=%2B15550002222&To=%2B15550001111&Body=hi"
    status, head, text = raw_request(env.ferry.http_port, request_bytes("POST", path, body, {
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer " + TOKEN}))
    assert status == 404, (path, status, head, text)
    assert b"Not Found: " in text, text   # says why


def test_query_is_never_an_endpoint_name(env):
    """The endpoint named in a query gets nothing; the same text on the
    real path arrives (so the first one was not just slow)."""
    status, _, text = webhook_post(env.ferry.http_port, "via the query", path="/hooks/hooks?alerts")
    assert status == 404, text
    status, _, text = webhook_post(env.ferry.http_port, "via the path")
    assert status == 202, text
    env.alice.wait_message(lambda s: s.body == "via the path", timeout=10)
    assert not env.alice.messages(lambda s: s.body == "via the query")
    assert env.ferry.running()


# ---------------------------------------------------------------- item 5: slowloris


def limited_ferry(tb, http=None):
    """A Prosody, alice, and a ferry with the webhook component and [http]
    settings HTTP (the defaults when None)."""
    prosody = tb.prosody(components={DOMAIN: SECRET}, users=[("alice", "localhost", "alicepw")])
    endpoints = {"alerts": {"format": "json", "token": TOKEN, "deliver_to": ["alice@localhost"],
                            "allow": ["localhost"]}}
    ferry = tb.linked_ferry(prosody, {"hooks": {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET,
                                                "endpoints": endpoints}}, http=http)
    alice = tb.client("alice@localhost", "alicepw", prosody)
    return ferry, alice


def test_slowloris_with_default_limits_leaves_healthz_and_webhooks(testbed, slowloris):
    """The issue's attack as filed, default [http] settings: 600 half-open
    requests from 127.0.0.1. Before the limits, connection 513 on was refused
    and /healthz timed out."""
    ferry, alice = limited_ferry(testbed)
    port = ferry.http_port
    slow = slowloris(port, 600, interval=0.5)
    slow.pump(0.5)
    for source in ("127.0.0.1", "127.0.0.3"):
        status, took = healthz(port, source, timeout=3)
        assert status == 200 and took < 1.0, (source, status, took)
    status, _, text = webhook_post(port, "through the flood", source="127.0.0.2", timeout=3)
    assert status == 202, text
    alice.wait_message(lambda s: s.body == "through the flood", timeout=10)
    # Over the per-address limit (64): a few spares, the rest told why.
    held = len(slow.open())
    assert held <= 64 + 8, "%d connections from one address still open" % held
    refused = [st for st in slow.statuses() if st is not None]
    assert refused and set(refused) == {429}, refused[:20]


def test_slow_requests_closed_at_request_timeout(testbed, slowloris):
    """Bytes that keep coming do not extend a request's time: each slow
    connection gets a 408 at request_timeout (1.5 s here) and is closed,
    headers or body alike; a request on time is answered meanwhile."""
    ferry, alice = limited_ferry(testbed, http={"request_timeout": 1.5, "max_connections_per_ip": 200})
    port = ferry.http_port
    heads = slowloris(port, 100, interval=0.3)
    bodies = slowloris(port, 50, interval=0.3, body=True)
    t0 = heads.opened
    status, _, text = webhook_post(port, "on time", source="127.0.0.2", timeout=3)
    assert status == 202, text
    deadline = time.monotonic() + 6
    while (heads.open() or bodies.open()) and time.monotonic() < deadline:
        heads.pump(0.2)
        bodies.pump(0.2)
    assert not heads.open() and not bodies.open(), \
        "%d + %d slow connections still open after 6 s" % (len(heads.open()), len(bodies.open()))
    for slow in (heads, bodies):
        assert set(slow.statuses()) == {408}, slow.statuses()
        assert b"408 Request Timeout: " in slow.got[slow.socks[0]]
        took = sorted(t - t0 for t in slow.closed_at.values())
        assert took[0] >= 1.3 and took[-1] < 3.5, (took[0], took[-1])
    alice.wait_message(lambda s: s.body == "on time", timeout=10)
    assert healthz(port)[0] == 200


def test_limits_per_address_and_in_total(testbed, slowloris):
    """max_connections_per_ip: the next connection from that address asking
    for a webhook gets 429 and Retry-After, another address is served.
    max_connections: once all are held, a webhook gets 503 but /healthz
    still answers, from any address."""
    ferry, alice = limited_ferry(testbed, http={"max_connections": 10, "max_connections_per_ip": 5,
                                                "request_timeout": 20})
    port = ferry.http_port
    a = slowloris(port, 5, source="127.0.0.1", interval=1)
    a.pump(0.3)
    status, head, text = webhook_post(port, "sixth", source="127.0.0.1", timeout=3)
    assert status == 429 and "Retry-After:" in head and b"too many connections from your address" in text, \
        (status, head, text)
    status, _, text = webhook_post(port, "other address", source="127.0.0.2", timeout=3)
    assert status == 202, text
    b = slowloris(port, 5, source="127.0.0.3", interval=1)
    b.pump(0.3)
    status, head, text = webhook_post(port, "all taken", source="127.0.0.2", timeout=3)
    assert status == 503 and b"too many connections" in text, (status, head, text)
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.4"):
        st, took = healthz(port, source, timeout=3)
        assert st == 200 and took < 1.0, (source, st, took)
    assert len(a.open()) == 5 and len(b.open()) == 5   # the held ones were left alone
    alice.wait_message(lambda s: s.body == "other address", timeout=10)
    assert not alice.messages(lambda s: s.body in ("sixth", "all taken"))
