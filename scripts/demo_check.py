#!/usr/bin/env python3
"""scripts/demo_check.py: the XMPP user's side of `scripts/demo.sh --check`.

Logs in as the demo's XMPP user (slixmpp, through the tests' synchronous client in
tests/e2e/harness.py) and sends one message each way through each adapter, watching what the
demo's other programs print (their logs) and what arrives in the XMPP client:

  webhook  XMPP -> HTTP receiver         a chat to the endpoint is printed by the receiver
  webhook  HTTP POST -> XMPP user        the demo's curl command arrives as a chat
  irc      XMPP -> IRC channel           a groupchat in #demo is seen by the IRC bot
  irc      IRC bot -> XMPP occupant      the bot's greeting arrives in the room
  sms      XMPP -> SMS sandbox           a chat to a phone JID is printed by the sandbox,
                                         and its delivery report comes back as a receipt
  sms      inbound SMS -> XMPP user      the demo's "receive an SMS" command arrives as a chat

One line per check, "check ok:" or "check FAIL:" with the reason; every wait is bounded by
--timeout. Exit status 0 when every check passed, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import time
import uuid
from xml.sax.saxutils import escape as xml_escape

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "e2e"))
import harness as h  # noqa: E402  (the tests' XMPP client, reused)

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"


class Checks:
    def __init__(self, opts):
        self.opts = opts
        self.failed = 0
        self.client = None

    def report(self, adapter, what, error=None, detail=""):
        if error is None:
            print("check ok:   %-8s %s%s" % (adapter, what, " (%s)" % detail if detail else ""),
                  flush=True)
        else:
            self.failed += 1
            print("check FAIL: %-8s %s: %s" % (adapter, what, error), flush=True)

    def run(self, adapter, what, fn):
        try:
            detail = fn()
        except Exception as e:  # noqa: every failure is reported, then the next check runs
            self.report(adapter, what, "%s: %s" % (type(e).__name__, e))
        else:
            self.report(adapter, what, detail=detail or "")

    # -- helpers

    def wait_log(self, path, needle, what, sent_id=None):
        """Waits (bounded) until the file at PATH contains NEEDLE; returns that line. With
        SENT_ID, an error reply to that message ends the wait at once."""
        deadline = time.monotonic() + self.opts.timeout
        for _ in range(100000):
            text = h.read_file(path)
            if needle in text:
                return next(line for line in text.splitlines() if needle in line).strip()
            errors = self.client.messages(lambda s: s.type == "error" and s.id == sent_id)
            if sent_id and errors:
                raise RuntimeError("alice got an error instead: %s" % errors[0].xml())
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise TimeoutError("%s: %r not in %s within %.0f s; its last lines:\n%s" % (
            what, needle, path, self.opts.timeout, h.tail_text(h.read_file(path), 8)))

    def shell(self, command):
        """Runs one of the commands the demo prints for the user, as the user would."""
        r = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                           timeout=self.opts.timeout)
        if r.returncode != 0:
            raise RuntimeError("the command failed (exit %d): %s %s" % (
                r.returncode, r.stdout.strip()[-300:], r.stderr.strip()[-300:]))
        return r.stdout

    def wait_chat(self, frm, body):
        return self.client.wait_message(
            lambda s: s.frm is not None and s.frm.split("/")[0] == frm and s.body == body,
            timeout=self.opts.timeout, what="chat from %s saying %r" % (frm, body))

    # -- the checks

    def webhook_out(self):
        token = uuid.uuid4().hex[:8]
        text = "hello webhook %s" % token
        mid = self.client.send_message(self.opts.webhook_jid, text)
        self.wait_log(self.opts.receiver_log, text, "the webhook receiver", mid)
        sig = self.wait_log(self.opts.receiver_log, "│ signature:", "the webhook receiver")
        if "│ signature: valid" not in sig:
            raise AssertionError("the receiver says: " + sig)
        return "the receiver printed it, %s" % sig.lstrip("│ ")

    def webhook_in(self):
        self.shell(self.opts.webhook_cmd)
        self.wait_chat(self.opts.webhook_jid, self.opts.webhook_text)
        return "%s got %r from %s" % (self.opts.jid, self.opts.webhook_text, self.opts.webhook_jid)

    def irc_join(self):
        room = self.opts.room
        me = "%s/%s" % (room, self.opts.nick)
        self.client.send_raw("<presence to='%s'><x xmlns='%s'><history maxstanzas='0'/></x>"
                             "</presence>" % (xml_escape(me), NS_MUC))
        p = self.client.wait(lambda s: s.name == "presence" and s.frm == me,
                             timeout=self.opts.timeout, what="self-presence from %s" % me)
        if p.type == "error":
            raise RuntimeError("joining %s failed: %s" % (room, p.xml()))

    def irc_out(self):
        self.irc_join()
        token = uuid.uuid4().hex[:8]
        text = "%s: hello from XMPP %s" % (self.opts.bot_nick, token)
        mid = self.client.send_message(self.opts.room, text, mtype="groupchat")
        line = self.wait_log(self.opts.bot_log, token, "the IRC bot", mid)
        return "the bot printed: %s" % line

    def irc_in(self):
        frm = "%s/%s" % (self.opts.room, self.opts.bot_nick)
        greeting = "Welcome, %s!" % self.opts.nick
        m = self.client.wait_message(
            lambda s: s.frm == frm and s.type == "groupchat" and greeting in (s.body or ""),
            timeout=self.opts.timeout, what="the bot's greeting from %s" % frm)
        return "%s said %r" % (frm, m.body)

    def sms_out(self):
        token = uuid.uuid4().hex[:8]
        text = "hello SMS %s" % token
        mid = self.client.send_message(self.opts.sms_jid, text, receipt=True)
        self.wait_log(self.opts.sandbox_log, text, "the SMS sandbox", mid)
        self.client.wait_message(lambda s: s.receipt_id == mid, timeout=self.opts.timeout,
                                 what="delivery receipt for %s" % mid)
        return "the sandbox printed it; its delivery report came back as a receipt"

    def sms_in(self):
        out = self.shell(self.opts.sms_cmd)
        self.wait_chat(self.opts.sms_jid, self.opts.sms_text)
        return "%s got %r from %s; the sandbox said: %s" % (
            self.opts.jid, self.opts.sms_text, self.opts.sms_jid, out.strip())

    def all(self):
        o = self.opts
        try:
            self.client = h.XmppClient(o.jid, o.password, o.c2s_port, timeout=o.timeout)
        except Exception as e:  # noqa: reported as one failed check
            self.report("xmpp", "login as %s" % o.jid, "%s: %s" % (type(e).__name__, e))
            return 1
        try:
            self.run("webhook", "XMPP -> HTTP receiver", self.webhook_out)
            self.run("webhook", "HTTP POST -> XMPP user", self.webhook_in)
            self.run("irc", "XMPP -> IRC channel (bot saw it)", self.irc_out)
            self.run("irc", "IRC bot -> XMPP room occupant", self.irc_in)
            self.run("sms", "XMPP -> SMS sandbox", self.sms_out)
            self.run("sms", "inbound SMS -> XMPP user", self.sms_in)
        finally:
            self.client.close()
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--c2s-port", type=int, required=True)
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds, per wait")
    ap.add_argument("--webhook-jid", required=True)
    ap.add_argument("--receiver-log", required=True)
    ap.add_argument("--webhook-cmd", required=True, help="the POST command the demo prints")
    ap.add_argument("--webhook-text", required=True, help="the text that command sends")
    ap.add_argument("--room", required=True)
    ap.add_argument("--nick", required=True)
    ap.add_argument("--bot-nick", required=True)
    ap.add_argument("--bot-log", required=True)
    ap.add_argument("--sms-jid", required=True)
    ap.add_argument("--sandbox-log", required=True)
    ap.add_argument("--sms-cmd", required=True, help="the 'receive an SMS' command the demo prints")
    ap.add_argument("--sms-text", required=True, help="the text that command sends")
    return Checks(ap.parse_args()).all()


if __name__ == "__main__":
    sys.exit(main())
