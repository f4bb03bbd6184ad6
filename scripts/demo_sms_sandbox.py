#!/usr/bin/env python3
"""scripts/demo_sms_sandbox.py: the SMS side of the ferry demo: a SANDBOX, no SMS leaves it.

A stand-in for Twilio on 127.0.0.1 that speaks Twilio's documented Programmable Messaging API
(the same fake the end-to-end tests use: tests/e2e/fake_providers.py, imported, not copied):
ferry's SMS adapter talks to it exactly as it would to api.twilio.com (HTTP Basic with the
account SID and auth token, Messages.json, IncomingPhoneNumbers.json). It prints every SMS
ferry sends and plays the phone network's side:

- a send is answered 201 as Twilio answers, then, a second later, the status callback ferry
  asked for is POSTed as "delivered" (signed with X-Twilio-Signature), so the XMPP client gets
  its delivery receipt;
- POST /sandbox/receive with form fields From (a phone number) and Body "receives" an SMS:
  the sandbox POSTs to ferry's inbound webhook the form Twilio would send for it, signed with
  X-Twilio-Signature, and answers with what ferry answered (200, or 502 with ferry's status).

    python3 scripts/demo_sms_sandbox.py --port 9100 --account-sid AC... --auth-token T \\
        --number +15550001111 --inbound-url http://127.0.0.1:8480/sms/sms/inbound
"""
import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "e2e"))
import fake_providers as fp  # noqa: E402  (the tests' fake Twilio, reused)


def out(text):
    print(text, flush=True)


class Sandbox(fp.FakeTwilio):
    """FakeTwilio plus printing and the /sandbox/receive entry point."""

    def __init__(self, delivered_after, **kw):
        self.delivered_after = delivered_after
        self.count = 0
        super().__init__(**kw)

    def _route(self, req):
        if req.path == "/sandbox/receive":
            req.kind = "sandbox"
            return self._receive(req)
        if req.path == "/" and req.method == "GET":        # the demo's readiness probe
            req.kind = "sandbox"
            return fp._Answer(200, body=b"ferry demo SMS sandbox (a Twilio stand-in)\n",
                              headers={"Content-Type": "text/plain"})
        ans = super()._route(req)
        if req.kind == "send":
            self._print_send(req, ans)
        elif req.kind == "numbers":
            out("sandbox: ferry asked whether the account owns %s: %s" % (
                (req.query.get("PhoneNumber") or ["?"])[0],
                "yes" if ans.doc and ans.doc.get("incoming_phone_numbers") else "no"))
        elif req.kind not in ("media", "sandbox"):
            out("sandbox: %s %s -> %d" % (req.method, req.path, ans.status))
        return ans

    def _print_send(self, req, ans):
        if ans.status != 201:
            out("sandbox: refused a send (%d): %s" % (ans.status, (ans.doc or {}).get("message")))
            return
        self.count += 1
        lines = ["", "┌─ sandbox: SMS #%d  (%s)  %s -> %s" % (
            self.count, time.strftime("%H:%M:%S"), req.field("From"), req.field("To"))]
        lines += ["│ " + line for line in (req.field("Body") or "").splitlines() or [""]]
        lines += ["│ media: " + u for u in req.fields("MediaUrl")]
        lines.append("└─ answered 201, sid %s" % req.sid)
        out("\n".join(lines))
        if req.field("StatusCallback") and self.delivered_after >= 0:
            t = threading.Timer(self.delivered_after, self._report_delivered, (req.sid,))
            t.daemon = True
            t.start()

    def _report_delivered(self, sid):
        try:
            ans = self.send_status(sid, "delivered")
            out("sandbox: status callback 'delivered' for %s: ferry answered %d" % (sid, ans.status))
        except OSError as e:
            out("sandbox: status callback for %s failed: %s" % (sid, e))

    def _receive(self, req):
        if req.method != "POST" or req.form is None:
            return fp._Answer(405, body=b"POST form fields From and Body\n",
                              headers={"Content-Type": "text/plain", "Allow": "POST"})
        frm = req.field("From", "")
        to = req.field("To") or next(iter(self.numbers), "")
        body = req.field("Body", "")
        if not fp.E164.match(frm):
            return fp._Answer(400, body=b"From must be a phone number like +15557654321\n",
                              headers={"Content-Type": "text/plain"})
        try:
            ans, sid = self.send_inbound(frm, to, body)
        except OSError as e:
            text = "sandbox: ferry did not answer at %s: %s\n" % (self.inbound_url, e)
            out(text.rstrip())
            return fp._Answer(502, body=text.encode(), headers={"Content-Type": "text/plain"})
        out("\n┌─ sandbox: incoming SMS %s -> %s  (%s)\n│ %s\n└─ posted to ferry (signed), "
            "ferry answered %d" % (frm, to, sid, body, ans.status))
        ok = 200 <= ans.status < 300
        text = "%s: SMS from %s to %s handed to ferry (%s); ferry answered %d\n" % (
            "ok" if ok else "FAILED", frm, to, sid, ans.status)
        return fp._Answer(200 if ok else 502, body=text.encode(), headers={"Content-Type": "text/plain"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--account-sid", required=True)
    ap.add_argument("--auth-token", required=True)
    ap.add_argument("--number", action="append", required=True,
                    help="a number the account owns (repeatable); the first receives by default")
    ap.add_argument("--inbound-url", required=True,
                    help="ferry's inbound webhook: {public_url}/sms/COMPONENT/inbound")
    ap.add_argument("--delivered-after", type=float, default=1.0,
                    help="seconds before the 'delivered' status callback (negative: never)")
    opts = ap.parse_args()

    sandbox = Sandbox(opts.delivered_after, account_sid=opts.account_sid,
                      auth_token=opts.auth_token, numbers=opts.number, port=opts.port)
    sandbox.inbound_url = opts.inbound_url
    out("sandbox: Twilio stand-in on %s/2010-04-01/Accounts/%s (owns %s); "
        "POST %s/sandbox/receive to receive an SMS" % (
            sandbox.url, opts.account_sid, ", ".join(opts.number), sandbox.url))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    sandbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
