"""Local stand-ins for the Twilio and Telnyx messaging APIs, for the SMS
adapter's tests (tests/e2e/test_sms.py).

Each fake is an HTTP server on 127.0.0.1 (ephemeral port, its own thread)
that implements the part of the provider's documented API the adapter uses,
with the provider's documented authentication, JSON and error shapes, and
records every request it gets. It can also play the provider's side of the
webhooks: status callbacks / delivery reports and inbound messages, signed
the way the provider signs them (or forged, replayed, stale on request).

Twilio (api.twilio.com/2010-04-01, HTTP Basic account_sid:auth_token):
  POST /2010-04-01/Accounts/{sid}/Messages.json   form To, From, Body,
       StatusCallback, MediaUrl (repeatable)  -> 201 Message JSON
  GET  /2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json?PhoneNumber=
       -> 200 list JSON (incoming_phone_numbers, paging fields)
  errors: {"code", "message", "more_info", "status"}
  webhooks: form POST, X-Twilio-Signature = base64(HMAC-SHA1(auth_token,
       URL + each parameter name and value, sorted by name)).
Telnyx (api.telnyx.com/v2, Authorization: Bearer API key):
  POST /v2/messages  JSON {from, to, text, media_urls, webhook_url}
       -> 200 {"data": message}
  GET  /v2/phone_numbers?filter[phone_number]=  -> 200 {"data": [...], "meta"}
  errors: {"errors": [{"code", "title", "detail", "source", "meta"}]}
  webhooks: JSON {"data": {"event_type", "id", "occurred_at", "payload",
       "record_type": "event"}, "meta"}, headers telnyx-signature-ed25519
       (base64 Ed25519 over "timestamp|body") and telnyx-timestamp.

Failure scripting (both): fail_next(status, ...) makes the next N matching
sends answer 400 (with a given provider error code and text), 401, 429
(Retry-After), 500, 503, or hang for a while first.

Stdlib and harness.py (its HTTP server and client pieces) only, plus
python3-cryptography for Ed25519 when it is installed (on Debian 12 it is);
otherwise the openssl command line signs (`openssl pkeyutl -sign -rawin`).
"""

import base64
import copy
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import harness as h

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

# ---------------------------------------------------------------- helpers


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc2822(dt=None):
    """Twilio's date format: 'Thu, 24 Aug 2023 05:01:45 +0000'."""
    return email.utils.format_datetime(dt or now_utc()).replace("-0000", "+0000")


def iso8601(dt=None):
    """Telnyx's: '2019-12-09T21:32:14.148+00:00'."""
    dt = dt or now_utc()
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+00:00" % (dt.microsecond // 1000)


# GSM 03.38 basic character set and its extension table (escape + char: two septets).
GSM7_BASIC = set(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
GSM7_EXT = set("^{}\\[~]|\u20ac\f")


def sms_segments(text):
    """(segments, encoding): GSM-7 160 / 153 per part (extension characters
    count twice), else UCS-2 70 / 67 per part (UTF-16 code units)."""
    if all(c in GSM7_BASIC or c in GSM7_EXT for c in text):
        n = sum(2 if c in GSM7_EXT else 1 for c in text)
        return (1 if n <= 160 else -(-n // 153)), "GSM-7"
    n = len(text.encode("utf-16-le")) // 2
    return (1 if n <= 70 else -(-n // 67)), "UCS-2"


def twilio_signature(auth_token, url, params):
    """X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + name1 + value1
    + name2 + value2 ...)), parameters sorted by name (code point order,
    Twilio's 'Unix-style case-sensitive' sort); a name given more than once
    contributes each of its values in the order given. params: a dict or a
    list of (name, value) pairs (values as sent, not URL-encoded)."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    data = url + "".join(k + v for k, v in sorted(pairs, key=lambda kv: kv[0]))
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


# ---------------------------------------------------------------- Ed25519


class Ed25519Key:
    """An Ed25519 key pair: sign(bytes) -> 64-byte signature; public_raw is
    the 32-byte public key (what Telnyx shows base64-encoded in its portal).
    python3-cryptography when importable, else the openssl command line."""

    def __init__(self, backend=None):
        """backend: None (cryptography when importable, else openssl),
        "cryptography" or "openssl"."""
        self._tmp = None
        Ed25519PrivateKey = None
        if backend in (None, "cryptography"):
            try:
                from cryptography.hazmat.primitives import serialization
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            except ImportError:
                if backend == "cryptography":
                    raise
        if Ed25519PrivateKey is not None:
            self._key = Ed25519PrivateKey.generate()
            self.public_raw = self._key.public_key().public_bytes(
                encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
            self.backend = "cryptography"
            return
        if not shutil.which("openssl"):
            raise RuntimeError("Ed25519 needs python3-cryptography or the openssl command")
        self._key = None
        self._tmp = tempfile.mkdtemp(prefix="fake-telnyx-key-")
        self._pem = os.path.join(self._tmp, "key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", self._pem],
                       check=True, capture_output=True, timeout=20)
        der = subprocess.run(["openssl", "pkey", "-in", self._pem, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True, timeout=20).stdout
        self.public_raw = der[-32:]          # SPKI: 12-byte prefix, then the raw key
        self.backend = "openssl"

    @property
    def public_b64(self):
        return base64.b64encode(self.public_raw).decode("ascii")

    def sign(self, data):
        if self._key is not None:
            return self._key.sign(data)
        path = os.path.join(self._tmp, "msg-%s" % uuid.uuid4().hex)
        with open(path, "wb") as f:
            f.write(data)
        try:
            return subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", self._pem,
                                   "-in", path], check=True, capture_output=True, timeout=20).stdout
        finally:
            os.unlink(path)

    def verify(self, signature, data):
        """For the fakes' self-tests."""
        if self._key is not None:
            try:
                self._key.public_key().verify(signature, data)
                return True
            except Exception:  # noqa: InvalidSignature
                return False
        sig = os.path.join(self._tmp, "sig-%s" % uuid.uuid4().hex)
        msg = os.path.join(self._tmp, "msg-%s" % uuid.uuid4().hex)
        with open(sig, "wb") as f:
            f.write(signature)
        with open(msg, "wb") as f:
            f.write(data)
        try:
            r = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-inkey", self._pem,
                                "-sigfile", sig, "-in", msg], capture_output=True, timeout=20)
            return r.returncode == 0
        finally:
            os.unlink(sig)
            os.unlink(msg)

    def close(self):
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


# ---------------------------------------------------------------- recording


class ApiRequest:
    """One request the fake got."""

    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target                       # path and query, as sent
        u = urllib.parse.urlsplit(target)
        self.path = u.path
        self.query_string = u.query
        self.query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.headers = headers                     # lowercased names
        self.body = body
        self.time = time.monotonic()
        self.kind = None                           # "send", "numbers", "media", None
        self.status = None                         # what the fake answered
        self.answer = None                         # parsed JSON it answered, if any
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        self.content_type = ctype
        self.form = None
        self.json = None
        if ctype == "application/x-www-form-urlencoded":
            self.form = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        elif ctype == "application/json":
            try:
                self.json = json.loads(body.decode("utf-8"))
            except ValueError:
                self.json = None

    def field(self, name, default=None):
        """First value of a form field."""
        for k, v in self.form or ():
            if k == name:
                return v
        return default

    def fields(self, name):
        return [v for k, v in self.form or () if k == name]

    def text(self):
        """The message text of a send, whichever provider."""
        if self.form is not None:
            return self.field("Body")
        if isinstance(self.json, dict):
            return self.json.get("text")
        return None

    def __repr__(self):
        return "<%s %s -> %s %r>" % (self.method, self.target, self.status, self.body[:160])


class Fault:
    """A scripted answer for the next `count` requests of `kind` matching
    `match` (a predicate on ApiRequest, None: any)."""

    def __init__(self, status, count=1, code=None, message=None, retry_after=None, hang=0.0,
                 kind="send", match=None):
        self.status = status
        self.count = count
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.hang = hang
        self.kind = kind
        self.match = match
        self.used = 0


class _Answer:
    def __init__(self, status, doc=None, headers=None, body=None, delay=0.0):
        self.status = status
        self.doc = doc
        self.headers = dict(headers or {})
        if body is None:
            body = b"" if doc is None else json.dumps(doc, indent=2).encode("utf-8")
            if doc is not None:
                self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        self.body = body
        self.delay = delay


class FakeProvider:
    """The HTTP server, the request log, the fault script, the numbers and
    the accepted messages shared by both fakes. Subclasses implement
    add_number(number) and _route(req) -> _Answer."""

    name = "provider"

    def __init__(self, numbers=(), port=0):
        """port: where to listen on 127.0.0.1 (0: an ephemeral port)."""
        self.numbers = {}
        for n in numbers:
            self.add_number(n)
        self.messages = {}            # id -> message (dict), as answered
        self.message_order = []
        self._cond = threading.Condition()
        self._requests = []
        self._faults = []
        self._closed = False
        self.inbound_url = None       # where inbound messages go (ferry's URL)
        fake = self

        class Handler(h.HttpHandler):
            def _handle(self):
                body = self.read_body()
                req = ApiRequest(self.command, self.path, self.lower_headers(), body)
                try:
                    ans = fake._answer(req)
                except Exception as e:  # noqa: a bug in the fake answers 500 and is recorded
                    ans = _Answer(500, body=("fake %s error: %r" % (fake.name, e)).encode(),
                                  headers={"Content-Type": "text/plain"})
                    with fake._cond:
                        req.status = 500
                        req.fake_error = repr(e)
                        fake._cond.notify_all()
                if ans.delay:
                    end = time.monotonic() + ans.delay
                    while not fake._closed and time.monotonic() < end:
                        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
                self.answer(ans.status, ans.headers, ans.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self.server, self.thread = h.serve_http(Handler, port=port, name="fake-" + self.name)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port

    def remove_number(self, number):
        self.numbers.pop(number, None)

    # -- answering

    def _answer(self, req):
        with self._cond:
            self._requests.append(req)
        ans = self._route(req)          # sets req.kind; may consult the fault script
        with self._cond:
            req.status = ans.status
            req.answer = ans.doc
            self._cond.notify_all()
        return ans

    def _take_fault(self, req):
        with self._cond:
            for f in self._faults:
                if f.kind == req.kind and f.used < f.count and (f.match is None or f.match(req)):
                    f.used += 1
                    if f.used >= f.count:
                        self._faults.remove(f)
                    return f
        return None

    def _fault_answer(self, fault):
        """The provider's answer for a scripted failure."""
        raise NotImplementedError

    @staticmethod
    def _media(req):
        """The answer to a GET or HEAD of /media/... (any fake media file),
        or None for another request."""
        if req.path.startswith("/media/") and req.method in ("GET", "HEAD"):
            req.kind = "media"
            return _Answer(200, headers={"Content-Type": "image/jpeg"}, body=b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9")
        return None

    def _unless_fault(self, req, normal):
        """The answer of a scripted failure for req when one matches, else
        normal() (late by the fault's hang when the fault has no status)."""
        fault = self._take_fault(req)
        late = 0.0
        if fault is not None:
            ans = self._fault_answer(fault)
            if ans is not None:
                return ans
            late = fault.hang
        ans = normal()
        ans.delay = late
        return ans

    def fail_next(self, status, count=1, code=None, message=None, retry_after=None, hang=0.0,
                  kind="send", match=None):
        """The next COUNT requests of KIND ("send" or "numbers") matching
        MATCH answer STATUS with the provider's error JSON (CODE and MESSAGE
        when given; Retry-After for 429 when given), after HANG seconds.
        status None with hang: the normal answer, late."""
        f = Fault(status, count, code, message, retry_after, hang, kind, match)
        with self._cond:
            self._faults.append(f)
        return f

    def hang_next(self, seconds, count=1, then_status=503, match=None):
        """The next COUNT sends are answered only after SECONDS (past the
        adapter's timeout), then with THEN_STATUS (None: accepted, late)."""
        return self.fail_next(then_status, count=count, hang=seconds, match=match)

    def delay_next(self, seconds, count=1, match=None):
        """The next COUNT matching sends are accepted as usual, but the
        answer leaves only after SECONDS (network latency on the API
        answer). The request is recorded, with its status, at once: a test
        can send webhooks about the message while its answer is held."""
        return self.fail_next(None, count=count, hang=seconds, match=match)

    def clear_faults(self):
        with self._cond:
            self._faults.clear()

    def faults_pending(self):
        with self._cond:
            return sum(f.count - f.used for f in self._faults)

    # -- the request log

    def requests(self, pred=None, kind=None):
        with self._cond:
            return [r for r in self._requests
                    if (kind is None or r.kind == kind) and (pred is None or pred(r))]

    def sends(self, pred=None):
        """POSTs to the send endpoint (whatever the fake answered)."""
        return self.requests(pred, kind="send")

    def wait_requests(self, pred=None, count=1, timeout=10, kind=None, what=None):
        """Waits (bounded) until COUNT requests matching have been answered;
        returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for _ in range(1000000):
                got = [r for r in self._requests if r.status is not None
                       and (kind is None or r.kind == kind) and (pred is None or pred(r))]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            recent = self._requests[-6:]
        raise TimeoutError("fake %s: %d of %d %s within %.1f s; last requests: %r" % (
            self.name, len(got), count, what or (kind or "request") + "(s)", timeout, recent))

    def wait_sends(self, pred=None, count=1, timeout=10, what=None):
        return self.wait_requests(pred, count, timeout, kind="send", what=what or "send(s)")

    def summary(self, n=15):
        """The last requests, one a line (for failure reports)."""
        with self._cond:
            reqs = self._requests[-n:]
        return "\n".join("  %s %s -> %s %s" % (r.method, r.target, r.status,
                                                (r.body[:200].decode("utf-8", "replace") if r.body else ""))
                         for r in reqs)

    # -- accepted messages

    def message(self, sid):
        with self._cond:
            return self.messages.get(sid)

    def sid_of(self, req):
        """The id the fake answered a send with (None if it refused it)."""
        return getattr(req, "sid", None)

    def media_url(self, name="photo.jpg"):
        return "%s/media/%s" % (self.url, name)

    def close(self):
        self._closed = True
        h.stop_http(self.server, self.thread)


# ---------------------------------------------------------------- Twilio


def twilio_sid(prefix):
    return prefix + secrets.token_hex(16)


class FakeTwilio(FakeProvider):
    """Twilio's Programmable Messaging API (2010-04-01), one account.

    numbers: the phone numbers the account owns (IncomingPhoneNumbers; a
    send From a number not in it is refused with 21606, as Twilio does)."""

    name = "twilio"
    API = "/2010-04-01"

    def __init__(self, account_sid=None, auth_token=None, numbers=(), port=0):
        self.account_sid = account_sid or twilio_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        super().__init__(numbers, port)

    # -- configuration

    def add_number(self, number, sms_url=None):
        self.numbers[number] = {"sid": twilio_sid("PN"), "phone_number": number, "sms_url": sms_url}

    def basic_auth(self, sid=None, token=None):
        raw = "%s:%s" % (sid or self.account_sid, token or self.auth_token)
        return "Basic " + base64.b64encode(raw.encode()).decode()

    # -- errors

    @staticmethod
    def error_doc(status, code, message):
        return {"code": code, "message": message,
                "more_info": "https://www.twilio.com/docs/errors/%d" % code, "status": status}

    def _error(self, status, code, message, headers=None, delay=0.0):
        return _Answer(status, self.error_doc(status, code, message), headers=headers, delay=delay)

    DEFAULT_ERRORS = {
        400: (21211, "The 'To' number is not a valid phone number."),
        401: (20003, "Authenticate"),
        403: (20003, "Permission Denied"),
        404: (20404, "The requested resource was not found"),
        429: (20429, "Too Many Requests"),
        500: (20500, "Internal Server Error"),
        503: (20503, "Service Unavailable"),
    }

    def _fault_answer(self, f):
        if f.status is None:
            return None
        code, message = self.DEFAULT_ERRORS.get(f.status, (20500, "Error"))
        headers = {}
        if f.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        if f.retry_after is not None:
            headers["Retry-After"] = str(f.retry_after)
        return self._error(f.status, f.code if f.code is not None else code,
                           f.message if f.message is not None else message, headers=headers,
                           delay=f.hang)

    # -- routing

    def _authorized(self, req):
        got = req.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), self.basic_auth().encode())

    def _route(self, req):
        acct = "%s/Accounts/%s" % (self.API, self.account_sid)
        media = self._media(req)
        if media is not None:
            return media
        m = re.match(r"^%s/Accounts/([^/]+)/(Messages|IncomingPhoneNumbers)\.json$" % re.escape(self.API),
                     req.path)
        if not m:
            req.kind = "unknown"
            if not self._authorized(req):
                return self._error(401, 20003, "Authenticate",
                                   headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return self._error(404, 20404, "The requested resource %s was not found" % req.path)
        resource = m.group(2)
        if resource == "Messages" and req.method == "POST":
            req.kind = "send"
        elif resource == "IncomingPhoneNumbers" and req.method == "GET":
            req.kind = "numbers"
        else:
            req.kind = "unknown"
        if not self._authorized(req) or m.group(1) != self.account_sid:
            return self._error(401, 20003, "Authenticate",
                               headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if req.kind == "unknown":
            return self._error(405, 20004, "Method not allowed")
        return self._unless_fault(req, lambda: self._send(req, acct) if req.kind == "send"
                                  else self._numbers(req, acct))

    def _send(self, req, acct):
        if req.form is None:
            # Twilio reads form parameters only: anything else has no To.
            return self._error(400, 21604, "A 'To' phone number is required.")
        to = req.field("To")
        frm = req.field("From")
        body = req.field("Body")
        media = req.fields("MediaUrl")
        callback = req.field("StatusCallback")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not frm:
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not E164.match(to):
            return self._error(400, 21211, "Invalid 'To' Phone Number: %s" % to)
        if frm not in self.numbers:
            return self._error(400, 21606, "The From phone number %s is not a valid, SMS-capable "
                                           "inbound phone number or short code for your account." % frm)
        if not body and not media:
            return self._error(400, 21602, "Message body is required.")
        if body and len(body) > 1600:
            return self._error(400, 21617, "The concatenated message body exceeds the 1600 "
                                           "character limit.")
        for u in media:
            if not re.match(r"^https?://", u):
                return self._error(400, 21620, "Invalid media URL(s): %s" % u)
        if callback is not None and not re.match(r"^https?://", callback):
            return self._error(400, 21609, "Invalid StatusCallback url: %s" % callback)
        sid = twilio_sid("MM" if media else "SM")
        segments, _ = sms_segments(body or "")
        now = rfc2822()
        msg = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": frm,
            "messaging_service_sid": None,
            "num_media": str(len(media)),
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": "%s/Messages/%s/Media.json" % (acct, sid)},
            "to": to,
            "uri": "%s/Messages/%s.json" % (acct, sid),
        }
        with self._cond:
            self.messages[sid] = dict(msg, _status_callback=callback, _media=media, _request=req)
            self.message_order.append(sid)
        req.sid = sid
        return _Answer(201, msg, headers={"Twilio-Request-Id": twilio_sid("RQ")})

    def _numbers(self, req, acct):
        pattern = (req.query.get("PhoneNumber") or [None])[0]
        page_size = 50
        found = []
        for number, rec in sorted(self.numbers.items()):
            if pattern is None or self._number_matches(pattern, number):
                found.append(rec)
        q = "PageSize=%d&Page=0" % page_size
        if pattern is not None:
            q = "PhoneNumber=%s&" % urllib.parse.quote(pattern, safe="") + q
        uri = "%s/IncomingPhoneNumbers.json?%s" % (acct, q)
        doc = {
            "end": max(len(found) - 1, 0),
            "first_page_uri": uri,
            "incoming_phone_numbers": [self._number_resource(acct, rec) for rec in found],
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }
        return _Answer(200, doc)

    @staticmethod
    def _number_matches(pattern, number):
        """Twilio's PhoneNumber filter: 'You can specify partial numbers and
        use * as a wildcard for any digit' -- a pattern matches a number that
        contains it. (A '+' left unencoded in the query string arrives as a
        space; it is ignored like any separator.)"""
        p = "".join(c for c in pattern if c.isdigit() or c in "*+")
        if not p:
            return False
        rx = re.escape(p).replace(r"\*", "[0-9]")
        return re.search(rx, number) is not None

    def _number_resource(self, acct, rec):
        now = rfc2822()
        return {
            "account_sid": self.account_sid,
            "address_requirements": "none",
            "address_sid": None,
            "api_version": "2010-04-01",
            "beta": False,
            "bundle_sid": None,
            "capabilities": {"fax": False, "mms": True, "sms": True, "voice": True},
            "date_created": now,
            "date_updated": now,
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "emergency_status": "Inactive",
            "friendly_name": rec["phone_number"],
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": rec["phone_number"],
            "sid": rec["sid"],
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": rec["sms_url"] or self.inbound_url or "",
            "status": "in-use",
            "status_callback": "",
            "status_callback_method": "POST",
            "subresource_uris": {
                "assigned_add_ons": "%s/IncomingPhoneNumbers/%s/AssignedAddOns.json" % (acct, rec["sid"])},
            "trunk_sid": None,
            "uri": "%s/IncomingPhoneNumbers/%s.json" % (acct, rec["sid"]),
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_receive_mode": "voice",
            "voice_url": None,
        }

    # -- webhooks to ferry

    def sign(self, url, params, token=None):
        return twilio_signature(token or self.auth_token, url, params)

    def post_signed(self, url, params, forge=False, signature=None, omit_signature=False,
                    sign_url=None, token=None, timeout=10):
        """POSTs PARAMS (list of pairs or dict) form-encoded to URL with
        X-Twilio-Signature over sign_url (default URL: the exact URL posted
        to, query string included). forge: signed with another token;
        signature: this header value instead."""
        pairs = list(params.items()) if isinstance(params, dict) else list(params)
        body = urllib.parse.urlencode(pairs)
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                   "User-Agent": "TwilioProxy/1.1", "Accept": "*/*",
                   "I-Twilio-Idempotency-Token": str(uuid.uuid4())}
        if not omit_signature:
            if signature is None:
                key = ("forged-" + secrets.token_hex(8)) if forge else (token or self.auth_token)
                signature = twilio_signature(key, sign_url or url, pairs)
            headers["X-Twilio-Signature"] = signature
        return h.http_request("POST", url, body, headers, timeout=timeout)

    def status_params(self, sid, status, error_code=None, to=None, frm=None):
        """The form Twilio posts to a message's StatusCallback."""
        msg = self.message(sid) or {}
        params = [
            ("ApiVersion", "2010-04-01"),
            ("AccountSid", self.account_sid),
            ("MessageSid", sid),
            ("SmsSid", sid),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("From", frm or msg.get("from", "")),
            ("To", to or msg.get("to", "")),
        ]
        if status == "delivered":
            params.append(("RawDlrDoneDate", time.strftime("%y%m%d%H%M", time.gmtime())))
        if error_code is not None:
            params.append(("ErrorCode", str(error_code)))
        return params

    def send_status(self, sid, status, error_code=None, url=None, **kw):
        """The status callback of message SID (status: queued, sent,
        delivered, undelivered, failed, ...) to the StatusCallback URL the
        adapter gave (or URL). Keyword arguments as post_signed."""
        msg = self.message(sid)
        target = url or (msg and msg.get("_status_callback"))
        if not target:
            raise ValueError("message %s has no StatusCallback and no url was given" % sid)
        with self._cond:
            if msg is not None:
                msg["status"] = status
                if error_code is not None:
                    msg["error_code"] = int(error_code)
        return self.post_signed(target, self.status_params(sid, status, error_code), **kw)

    def inbound_params(self, frm, to, body, media=(), message_sid=None):
        """The form Twilio posts to a number's SMS URL. media: (url,
        content_type) pairs."""
        sid = message_sid or twilio_sid("MM" if media else "SM")
        segments, _ = sms_segments(body or "")
        params = [
            ("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", sid),
            ("NumMedia", str(len(media))), ("ToCity", "SAN FRANCISCO"), ("FromZip", "94105"),
            ("SmsSid", sid), ("FromState", "CA"), ("SmsStatus", "received"),
            ("FromCity", "SAN FRANCISCO"), ("Body", body), ("FromCountry", "US"), ("To", to),
            ("MessagingServiceSid", twilio_sid("MG")), ("ToZip", "94105"),
            ("NumSegments", str(segments)), ("MessageSid", sid), ("AccountSid", self.account_sid),
            ("From", frm), ("ApiVersion", "2010-04-01"),
        ]
        for i, (u, ctype) in enumerate(media):
            params.append(("MediaContentType%d" % i, ctype))
            params.append(("MediaUrl%d" % i, u))
        return sid, params

    def send_inbound(self, frm, to, body, media=(), message_sid=None, url=None, **kw):
        """An incoming SMS/MMS to number TO, posted to URL (default:
        the number's sms_url, else self.inbound_url). Returns (answer, sid)."""
        target = url or (self.numbers.get(to) or {}).get("sms_url") or self.inbound_url
        if not target:
            raise ValueError("no inbound URL: set fake.inbound_url")
        sid, params = self.inbound_params(frm, to, body, media, message_sid)
        return self.post_signed(target, params, **kw), sid


# ---------------------------------------------------------------- Telnyx


class FakeTelnyx(FakeProvider):
    """Telnyx's Messaging API v2, one account with one messaging profile.

    numbers: the phone numbers the account owns (GET /v2/phone_numbers; a
    send from a number not in it is refused with 40305)."""

    name = "telnyx"

    def __init__(self, api_key=None, numbers=(), port=0):
        self.api_key = api_key or "KEY" + secrets.token_hex(16).upper() + "_" + secrets.token_urlsafe(16)
        self.key = Ed25519Key()
        self.profile_id = str(uuid.uuid4())
        self.organization_id = str(uuid.uuid4())
        super().__init__(numbers, port)

    @property
    def public_key(self):
        """Base64 of the 32-byte Ed25519 public key (the portal's Public Key)."""
        return self.key.public_b64

    def add_number(self, number):
        self.numbers[number] = {"id": str(10 ** 18 + secrets.randbelow(10 ** 18)), "phone_number": number}

    # -- errors

    @staticmethod
    def error_doc(code, title, detail, pointer=None):
        e = {"code": str(code), "title": title, "detail": detail,
             "meta": {"url": "https://developers.telnyx.com/docs/overview/errors/%s" % code}}
        if pointer:
            e["source"] = {"pointer": pointer}
        return {"errors": [e]}

    def _error(self, status, code, title, detail, pointer=None, headers=None, delay=0.0):
        return _Answer(status, self.error_doc(code, title, detail, pointer), headers=headers, delay=delay)

    DEFAULT_ERRORS = {
        400: ("40310", "Invalid 'to' address", "The 'to' address should be a single valid number."),
        401: ("10009", "Authentication failed",
              "The required authentication headers were either invalid or not included in the request."),
        403: ("10010", "Authorization failed",
              "You do not have permission to perform the requested action on the specified resource or "
              "resources."),
        404: ("10005", "Resource not found", "The requested resource or URL could not be found."),
        422: ("10015", "Bad Request", "The request failed because it was not well-formed."),
        429: ("10011", "Too many requests", "You have exceeded the maximum number of allowed requests."),
        500: ("10007", "Unexpected error", "An unexpected error occured."),
        503: ("10007", "Unexpected error", "An unexpected error occured."),
    }

    def _fault_answer(self, f):
        if f.status is None:
            return None
        code, title, detail = self.DEFAULT_ERRORS.get(f.status, ("10007", "Unexpected error", "Error"))
        headers = {}
        if f.retry_after is not None:
            headers["Retry-After"] = str(f.retry_after)
        if f.code is not None:
            code = str(f.code)
        if f.message is not None:
            detail = f.message
        return self._error(f.status, code, title, detail, headers=headers, delay=f.hang)

    # -- routing

    def _authorized(self, req):
        got = req.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), ("Bearer " + self.api_key).encode())

    def _route(self, req):
        media = self._media(req)
        if media is not None:
            return media
        if req.path == "/v2/messages" and req.method == "POST":
            req.kind = "send"
        elif req.path == "/v2/phone_numbers" and req.method == "GET":
            req.kind = "numbers"
        else:
            req.kind = "unknown"
        if not self._authorized(req):
            code, title, detail = self.DEFAULT_ERRORS[401]
            return self._error(401, code, title, detail)
        if req.kind == "unknown":
            code, title, detail = self.DEFAULT_ERRORS[404]
            return self._error(404, code, title, detail)
        return self._unless_fault(req, lambda: self._send(req) if req.kind == "send" else self._phone_numbers(req))

    def _send(self, req):
        if req.content_type != "application/json":
            return self._error(415, "10014", "Unsupported Media Type",
                               "The request failed because the server does not support the media type.")
        doc = req.json
        if not isinstance(doc, dict):
            return self._error(400, "10015", "Bad Request", "The request body is not valid JSON.")
        frm = doc.get("from")
        to = doc.get("to")
        text = doc.get("text")
        media = doc.get("media_urls") or []
        if not frm:
            return self._error(400, "10004", "Missing required parameter", "The 'from' parameter is required.",
                               "/from")
        if not to:
            return self._error(400, "10004", "Missing required parameter", "The 'to' parameter is required.",
                               "/to")
        if isinstance(to, list):
            if len(to) != 1:
                return self._error(400, "40310", "Invalid 'to' address",
                                   "The 'to' address should be a single valid number.", "/to")
            to = to[0]
        if not isinstance(to, str) or not E164.match(to):
            return self._error(400, "40310", "Invalid 'to' address",
                               "The 'to' address should be a single valid number.", "/to")
        if frm not in self.numbers:
            return self._error(400, "40305", "Invalid 'from' address",
                               "The 'from' address should be a phone number in +E.164 format owned by "
                               "your account, or an alphanumeric sender ID.", "/from")
        if not text and not media:
            return self._error(400, "10004", "Missing required parameter",
                               "Either 'text' or 'media_urls' must be provided.", "/text")
        if not isinstance(media, list) or not all(isinstance(u, str) and re.match(r"^https?://", u)
                                                  for u in media):
            return self._error(400, "10003", "Invalid URL",
                               "The URL provided was invalid, malformed, or too long.", "/media_urls")
        parts, encoding = sms_segments(text or "")
        mid = str(uuid.uuid4())
        msg = {
            "record_type": "message",
            "direction": "outbound",
            "id": mid,
            "type": "MMS" if media else "SMS",
            "messaging_profile_id": self.profile_id,
            "organization_id": self.organization_id,
            "from": {"phone_number": frm, "carrier": "TELNYX LLC", "line_type": "VoIP"},
            "to": [{"phone_number": to, "status": "queued", "carrier": "T-MOBILE USA, INC.",
                    "line_type": "Wireless"}],
            "cc": [],
            "text": text,
            "subject": doc.get("subject"),
            "media": [{"url": u, "content_type": None, "sha256": None, "size": None} for u in media],
            "webhook_url": doc.get("webhook_url"),
            "webhook_failover_url": doc.get("webhook_failover_url"),
            "encoding": encoding,
            "parts": parts,
            "tags": [],
            "cost": None,
            "received_at": iso8601(),
            "sent_at": None,
            "completed_at": None,
            "valid_until": iso8601(now_utc() + datetime.timedelta(hours=4)),
            "errors": [],
        }
        with self._cond:
            self.messages[mid] = dict(copy.deepcopy(msg), _request=req)
            self.message_order.append(mid)
        req.sid = mid
        return _Answer(200, {"data": msg}, headers={"x-request-id": str(uuid.uuid4())})

    def _phone_numbers(self, req):
        """filter[phone_number]: 'Filter by phone number. Requires at least
        three digits. Non-numerical characters will result in no values being
        returned.' A leading '+' (E.164) is accepted; a number matches when
        it contains the digits given."""
        pattern = (req.query.get("filter[phone_number]") or [None])[0]
        found = []
        for number, rec in sorted(self.numbers.items()):
            if pattern is None or self._number_matches(pattern, number):
                found.append(rec)
        page_size = 20
        now = iso8601()
        data = [{
            "id": rec["id"],
            "record_type": "phone_number",
            "phone_number": rec["phone_number"],
            "status": "active",
            "tags": [],
            "external_pin": None,
            "connection_id": None,
            "connection_name": None,
            "customer_reference": None,
            "messaging_profile_id": self.profile_id,
            "messaging_profile_name": "ferry",
            "billing_group_id": None,
            "emergency_enabled": False,
            "emergency_address_id": None,
            "call_forwarding_enabled": True,
            "cnam_listing_enabled": False,
            "caller_id_name_enabled": False,
            "call_recording_enabled": False,
            "t38_fax_gateway_enabled": False,
            "phone_number_type": "local",
            "purchased_at": now,
            "created_at": now,
            "updated_at": now,
        } for rec in found]
        meta = {"total_pages": 1, "total_results": len(data), "page_number": 1, "page_size": page_size}
        return _Answer(200, {"data": data, "meta": meta})

    @staticmethod
    def _number_matches(pattern, number):
        p = pattern.strip()
        if p.startswith("+"):
            p = p[1:]
        if len(p) < 3 or not p.isdigit():
            return False
        return p in number[1:]

    # -- webhooks to ferry

    def sign(self, body, timestamp):
        if isinstance(body, str):
            body = body.encode("utf-8")
        return base64.b64encode(self.key.sign(str(timestamp).encode("ascii") + b"|" + body)).decode("ascii")

    def post_event(self, url, event_type, payload, event_id=None, timestamp=None, forge=False,
                   signature=None, omit_signature=False, tamper=False, timeout=10):
        """POSTs a webhook event to URL: {"data": {...}, "meta": {...}} with
        telnyx-signature-ed25519 over "timestamp|body" and telnyx-timestamp.
        forge: signed with another key; timestamp: unix seconds (default
        now; older than 5 minutes is stale); tamper: the body is changed
        after signing. Returns (answer, event id)."""
        event_id = event_id or str(uuid.uuid4())
        ts = int(time.time()) if timestamp is None else int(timestamp)
        doc = {"data": {"event_type": event_type, "id": event_id, "occurred_at": iso8601(),
                        "payload": payload, "record_type": "event"},
               "meta": {"attempt": 1, "delivered_to": url}}
        body = json.dumps(doc).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "telnyx-webhooks",
                   "Accept": "*/*", "telnyx-timestamp": str(ts)}
        if not omit_signature:
            if signature is None:
                if forge:
                    other = Ed25519Key()
                    try:
                        sig = other.sign(str(ts).encode() + b"|" + body)
                    finally:
                        other.close()
                    signature = base64.b64encode(sig).decode()
                else:
                    signature = self.sign(body, ts)
            headers["telnyx-signature-ed25519"] = signature
        if tamper:
            body = body.replace(b'"record_type": "event"', b'"record_type": "event" ', 1)
        return h.http_request("POST", url, body, headers, timeout=timeout), event_id

    def inbound_payload(self, frm, to, text, media=(), message_id=None):
        parts, encoding = sms_segments(text or "")
        return {
            "cc": [],
            "completed_at": None,
            "cost": None,
            "direction": "inbound",
            "encoding": encoding,
            "errors": [],
            "from": {"carrier": "T-Mobile USA", "line_type": "long_code", "phone_number": frm,
                     "status": "webhook_delivered"},
            "id": message_id or str(uuid.uuid4()),
            "media": [{"content_type": ctype, "sha256": None, "size": None, "url": u} for u, ctype in media],
            "messaging_profile_id": self.profile_id,
            "organization_id": self.organization_id,
            "parts": parts,
            "received_at": iso8601(),
            "record_type": "message",
            "sent_at": None,
            "subject": None,
            "tags": [],
            "text": text,
            "to": [{"carrier": "Telnyx", "line_type": "Wireless", "phone_number": to,
                    "status": "webhook_delivered"}],
            "type": "MMS" if media else "SMS",
            "valid_until": None,
            "webhook_failover_url": None,
            "webhook_url": self.inbound_url,
        }

    def send_inbound(self, frm, to, text, media=(), event_id=None, message_id=None, url=None, **kw):
        """A message.received event for number TO, posted to URL (default
        self.inbound_url: the messaging profile's webhook URL). Returns
        (answer, event id)."""
        target = url or self.inbound_url
        if not target:
            raise ValueError("no inbound URL: set fake.inbound_url")
        payload = self.inbound_payload(frm, to, text, media, message_id)
        return self.post_event(target, "message.received", payload, event_id=event_id, **kw)

    def finalized_payload(self, mid, status, errors=()):
        msg = self.message(mid)
        if msg is None:
            raise KeyError("no message %s" % mid)
        p = {k: copy.deepcopy(v) for k, v in msg.items() if not k.startswith("_")}
        for t in p["to"]:
            t["status"] = status
        now = iso8601()
        p["sent_at"] = p["sent_at"] or now
        p["completed_at"] = now
        p["errors"] = [dict(e) for e in errors]
        return p

    def send_finalized(self, mid, status="delivered", error_code=None, error_title=None, error_detail=None,
                       url=None, **kw):
        """message.finalized for message MID (status: delivered,
        delivery_failed, sending_failed, delivery_unconfirmed) to the
        webhook_url the adapter gave (or URL). Returns (answer, event id)."""
        errors = []
        if error_code is not None:
            errors.append({"code": str(error_code), "title": error_title or "Undeliverable",
                           "detail": error_detail or "Carrier did not accept the message."})
        msg = self.message(mid)
        target = url or (msg and msg.get("webhook_url")) or self.inbound_url
        if not target:
            raise ValueError("message %s has no webhook_url and no url was given" % mid)
        payload = self.finalized_payload(mid, status, errors)
        with self._cond:
            for t in msg["to"]:
                t["status"] = status
        return self.post_event(target, "message.finalized", payload, **kw)

    def send_update(self, mid, event_type="message.sent", status="sent", url=None, **kw):
        """An intermediate delivery update (message.sent, to[].status
        "sent"), to the message's webhook_url (or URL)."""
        msg = self.message(mid)
        target = url or (msg and msg.get("webhook_url")) or self.inbound_url
        payload = self.finalized_payload(mid, status)
        payload["completed_at"] = None
        return self.post_event(target, event_type, payload, **kw)

    def close(self):
        super().close()
        self.key.close()
