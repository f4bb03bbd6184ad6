#!/usr/bin/env python3
"""scripts/demo_receiver.py: a tiny webhook receiver for the ferry demo.

Listens on 127.0.0.1 and prints every POST it receives, readably: path, the headers that
matter, the body (pretty-printed when it is JSON) and, given --signing-secret, whether the
Standard Webhooks signature checks out. Answers every POST with --status (default 200).
GET / answers 200 "ok" (the demo script polls it for readiness).

    python3 scripts/demo_receiver.py --port 9000 [--signing-secret whsec_...] [--status 200]
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHOWN_HEADERS = ("content-type", "user-agent", "webhook-id", "webhook-timestamp",
                 "webhook-signature", "retry-after")


def check_signature(secret, headers, body):
    """Return a one-line verdict on the Standard Webhooks signature of a request."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sig = headers.get("webhook-signature")
    if not (msg_id and ts and sig):
        return "MISSING (webhook-id, webhook-timestamp and webhook-signature expected)"
    signed = f"{msg_id}.{ts}.".encode() + body
    given = [s.split(",", 1)[1] for s in sig.split() if s.startswith("v1,")]
    if not given:
        return f"INVALID: no v1 signature in {sig!r}"

    def sign(key):
        return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

    keys = []
    if secret.startswith("whsec_"):
        try:
            keys.append(("per spec", base64.b64decode(secret[len("whsec_"):], validate=True)))
        except ValueError:
            pass
    keys.append(("with the raw secret string, NOT per spec", secret.encode()))
    for how, key in keys:
        expected = sign(key)
        if any(hmac.compare_digest(expected, g) for g in given):
            age = ""
            try:
                age = f", timestamp {int(time.time()) - int(ts)} s old"
            except ValueError:
                age = ", timestamp not an integer"
            return f"valid ({how}{age})"
    return "INVALID"


class Handler(BaseHTTPRequestHandler):
    server_version = "ferry-demo-receiver/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: we print our own lines
        pass

    def _reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body[:1] == b"{" else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200, b"ok\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        opts = self.server.opts
        self.server.count += 1
        out = [f"\n┌─ receiver: POST #{self.server.count} {self.path}  "
               f"({time.strftime('%H:%M:%S')}, {len(body)} bytes, answering {opts.status})"]
        for name in SHOWN_HEADERS:
            if name in self.headers:
                out.append(f"│ {name}: {self.headers[name]}")
        if opts.signing_secret:
            out.append(f"│ signature: {check_signature(opts.signing_secret, self.headers, body)}")
        text = body.decode("utf-8", "replace")
        try:
            doc = json.loads(text)
            text = json.dumps(doc, indent=2, ensure_ascii=False)
            if isinstance(doc, dict) and isinstance(doc.get("body", doc.get("text")), str):
                who = doc.get("from") or doc.get("username") or "?"
                out.append(f"│ message from {who}: {doc.get('body', doc.get('text'))!r}")
        except ValueError:
            pass
        out.append("│ body:")
        out.extend("│   " + line for line in text.splitlines() or [""])
        out.append("└─")
        print("\n".join(out), flush=True)
        self._reply(opts.status, b"{}" if 200 <= opts.status < 300 else b"demo receiver error\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--status", type=int, default=200, help="HTTP status to answer POSTs with")
    ap.add_argument("--signing-secret", default="", help="verify Standard Webhooks signatures")
    opts = ap.parse_args()
    srv = ThreadingHTTPServer((opts.host, opts.port), Handler)
    srv.daemon_threads = True
    srv.opts = opts
    srv.count = 0
    print(f"receiver: listening on http://{opts.host}:{srv.server_address[1]}/ "
          f"(prints every POST, answers {opts.status})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
