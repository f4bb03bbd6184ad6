"""The e2e harness's HTTP side: a client (http_request, post_json), a
threaded server (serve_http), the Receiver that plays a webhook endpoint,
and the signatures webhook senders put on their requests."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
