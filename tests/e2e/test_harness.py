"""The harness itself, against Prosody alone (no ferry needed): if these fail,
the other results mean nothing."""

import tomllib

import harness as h


def test_prosody_clients_exchange_messages(testbed):
    p = testbed.prosody(vhosts=("localhost", "other.localhost"), components={"hooks.localhost": "s3cret"},
                        users=[("alice", "localhost", "alicepw"), ("mallory", "other.localhost", "mpw")])
    alice = testbed.client("alice@localhost", "alicepw", p)
    mallory = testbed.client("mallory@other.localhost", "mpw", p)
    assert alice.full_jid.startswith("alice@localhost/")
    mid = alice.send_message("mallory@other.localhost", "hi <there> & \u2713")
    got = mallory.wait_message(lambda s: s.id == mid, timeout=10)
    assert got.body == "hi <there> & \u2713"
    assert got.frm == alice.full_jid
    # The component is not linked: Prosody bounces the message with an error.
    mid = alice.send_message("alerts@hooks.localhost", "nobody home")
    err = alice.wait_message(lambda s: s.id == mid and s.type == "error", timeout=10)
    assert err.frm == "alerts@hooks.localhost"
    pong = alice.iq("localhost", "get", "<ping xmlns='urn:xmpp:ping'/>")
    assert pong.type == "result"


def test_prosody_restart_keeps_ports_and_users(testbed):
    p = testbed.prosody(users=[("alice", "localhost", "alicepw")], offline=True)
    p.stop()
    assert p.proc.returncode is not None
    p.start()
    alice = testbed.client("alice@localhost", "alicepw", p)
    assert alice.iq("localhost", "get", "<ping xmlns='urn:xmpp:ping'/>").type == "result"


def test_wrong_password_is_reported(testbed):
    p = testbed.prosody(users=[("alice", "localhost", "alicepw")])
    try:
        testbed.client("alice@localhost", "nope", p, timeout=10)
    except RuntimeError as e:
        assert "login failed" in str(e)
    else:
        raise AssertionError("login with a wrong password succeeded")


def test_receiver_scripts_and_records(testbed):
    r = testbed.receiver()
    r.script("/x", [h.Reply(500, {"Retry-After": "1"}), h.Reply(201)])
    a = h.http_request("POST", r.url("/x"), b'{"a": 1}', {"Content-Type": "application/json"})
    b = h.http_request("POST", r.url("/x"), b"two", {"Content-Type": "text/plain"})
    c = h.http_request("POST", r.url("/x"), b"three")
    assert (a.status, a.headers.get("retry-after"), b.status, c.status) == (500, "1", 201, 200)
    reqs = r.wait("/x", 3, timeout=5)
    assert [q.body for q in reqs] == [b'{"a": 1}', b"two", b"three"]
    assert reqs[0].headers["content-type"] == "application/json"


def test_toml_writer_roundtrips():
    cfg = h.ferry_config(5347, 8480, {"hooks": {
        "adapter": "webhook", "domain": "hooks.localhost", "secret": "s\"3\\cret", "retry_delay": 1.0,
        "endpoints": {"alerts": {"url": "http://127.0.0.1:9/x", "allow": ["a@b", "c"], "token": "t\u00e9"},
                      "bare": {}}}}, xmpp={"queue_size": 5})
    doc = tomllib.loads(cfg)
    assert doc["xmpp"] == {"host": "127.0.0.1", "port": 5347, "queue_size": 5}
    comp = doc["components"]["hooks"]
    assert comp["secret"] == "s\"3\\cret" and comp["retry_delay"] == 1.0
    assert comp["endpoints"]["alerts"]["allow"] == ["a@b", "c"]
    assert comp["endpoints"]["bare"] == {}


def test_signature_helpers_match_standard_webhooks_example():
    # The example from the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = h.standard_webhooks_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                        b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


FAKE_FERRY = r'''#!/usr/bin/python3
import signal, sys, tomllib, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
cfg = tomllib.load(open(sys.argv[sys.argv.index("-c") + 1], "rb"))
host, port = cfg["http"]["listen"].rsplit(":", 1)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
srv = ThreadingHTTPServer((host, int(port)), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
sys.stderr.write("2026-01-01T00:00:00Z info [core] fake ferry\n")
sys.stderr.write("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\nSUMMARY: AddressSanitizer: heap-use-after-free x.c:1\n")
sys.stderr.flush()
signal.sigwait([signal.SIGTERM])
sys.exit(0)
'''


def test_sanitizer_report_is_caught(tmp_path):
    fake = tmp_path / "fake-ferry"
    fake.write_text(FAKE_FERRY)
    fake.chmod(0o755)
    tb = h.Testbed(str(tmp_path / "tb"))
    try:
        port = h.free_port()
        f = tb.ferry(h.ferry_config(h.free_port(), port, {}), http_port=port, binary=str(fake))
        assert f.running()
    finally:
        problems = tb.finish()
    assert len(problems) == 1 and "sanitizer" in problems[0] and "heap-use-after-free" in problems[0], problems
