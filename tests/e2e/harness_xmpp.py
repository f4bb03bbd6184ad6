"""The e2e harness's XMPP client: a synchronous c2s client (XmppClient)
and the stanzas it receives (Stanza)."""

import asyncio
import inspect
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


# ---------------------------------------------------------------- XMPP


def _local(tag):
    return tag.rsplit("}", 1)[-1]


class Stanza:
    """A received stanza (an ElementTree element) with accessors."""

    def __init__(self, el):
        self.el = el

    @property
    def name(self):
        return _local(self.el.tag)

    def get(self, attr, default=None):
        return self.el.get(attr, default)

    @property
    def frm(self):
        return self.el.get("from")

    @property
    def to(self):
        return self.el.get("to")

    @property
    def type(self):
        return self.el.get("type")

    @property
    def id(self):
        return self.el.get("id")

    def find(self, ns, tag):
        for child in self.el:
            if child.tag == "{%s}%s" % (ns, tag):
                return child
        return None

    @property
    def body(self):
        b = self.find(NS_CLIENT, "body")
        return None if b is None else (b.text or "")

    def error(self):
        return self.find(NS_CLIENT, "error")

    @property
    def error_type(self):
        e = self.error()
        return None if e is None else e.get("type")

    @property
    def error_condition(self):
        e = self.error()
        if e is None:
            return None
        for c in e:
            if c.tag.startswith("{%s}" % NS_STANZAS) and _local(c.tag) != "text":
                return _local(c.tag)
        return None

    @property
    def error_text(self):
        e = self.error()
        if e is None:
            return None
        for c in e:
            if c.tag == "{%s}text" % NS_STANZAS:
                return c.text or ""
        return None

    @property
    def receipt_id(self):
        r = self.find(NS_RECEIPTS, "received")
        return None if r is None else r.get("id")

    def xml(self):
        return ET.tostring(self.el, encoding="unicode")

    def __repr__(self):
        return self.xml()[:600]


def new_id(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


class XmppClient:
    """A slixmpp client run on its own asyncio loop in a thread, driven
    synchronously. Logs in with PLAIN over unencrypted loopback and sends
    initial presence (waits for its echo). Keeps every received stanza."""

    def __init__(self, jid, password, port, host="127.0.0.1", timeout=15, presence=True, plugins=()):
        """plugins: slixmpp plugin names to register (e.g. "xep_0050"); use
        them through call()."""
        import slixmpp  # noqa: imported here so that harness imports without it
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.jid = jid
        self._stanzas = []
        self._cond = threading.Condition()
        self._session = threading.Event()
        self._failed = threading.Event()
        self._disconnected = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True, name="xmpp-" + jid)
        self.thread.start()

        def on_stanza(st):
            el = ET.fromstring(ET.tostring(st.xml))
            with self._cond:
                received = Stanza(el)
                received.seq = len(self._stanzas)   # its place in arrival order
                self._stanzas.append(received)
                self._cond.notify_all()

        async def create():
            x = slixmpp.ClientXMPP(jid, password, sasl_mech="PLAIN",
                                   plugin_config={"feature_mechanisms": {"unencrypted_plain": True}})
            x.loop = self.loop
            for plugin in plugins:
                x.register_plugin(plugin)
            x.register_handler(Callback("e2e messages", MatchXPath("{%s}message" % NS_CLIENT), on_stanza))
            x.register_handler(Callback("e2e iqs", MatchXPath("{%s}iq" % NS_CLIENT), on_stanza))
            x.register_handler(Callback("e2e presences", MatchXPath("{%s}presence" % NS_CLIENT), on_stanza))

            def session_start(_):
                if presence:
                    x.send_presence()
                self._session.set()

            x.add_event_handler("session_start", session_start)
            x.add_event_handler("failed_all_auth", lambda _: self._failed.set())
            x.add_event_handler("connection_failed", lambda _: self._failed.set())
            x.add_event_handler("disconnected", lambda _: self._disconnected.set())
            x.connect(address=(host, port), force_starttls=False, disable_starttls=True)
            return x

        self.xmpp = asyncio.run_coroutine_threadsafe(create(), self.loop).result(timeout)
        deadline = time.monotonic() + timeout
        while not self._session.is_set():
            if self._failed.is_set():
                self.close()
                raise RuntimeError("XMPP login failed for %s" % jid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise TimeoutError("XMPP login of %s timed out" % jid)
            self._session.wait(min(0.1, remaining))
        if presence:
            # The server echoes our available presence once it has processed
            # it: from then on, messages to the bare JID reach this client.
            me = self.full_jid
            try:
                self.wait(lambda s: s.name == "presence" and s.frm == me and s.type in (None, "available"),
                          timeout=max(1.0, deadline - time.monotonic()), what="own presence echo")
            except Exception:
                self.close()
                raise

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def full_jid(self):
        return str(self.xmpp.boundjid.full)

    @property
    def bare_jid(self):
        return str(self.xmpp.boundjid.bare)

    def send_raw(self, data):
        self.loop.call_soon_threadsafe(self.xmpp.send_raw, data)

    def call(self, fn, timeout=10):
        """Runs fn(xmpp) on the client's loop and returns its result; if that
        is awaitable (a coroutine, a future from Iq.send()), awaits it, bounded
        by timeout. Exceptions (slixmpp's IqError, IqTimeout) propagate."""
        async def run():
            value = fn(self.xmpp)
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, timeout)
            return value

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout + 2)

    def send_message(self, to, body=None, id=None, mtype="chat", receipt=False, extra=""):
        """Sends a <message/>; returns its id. mtype None: no type attribute."""
        id = id or new_id("m")
        attrs = " to=%s id=%s" % (quoteattr(to), quoteattr(id))
        if mtype:
            attrs += " type=%s" % quoteattr(mtype)
        inner = ""
        if body is not None:
            inner += "<body>%s</body>" % xml_escape(body)
        if receipt:
            inner += "<request xmlns='%s'/>" % NS_RECEIPTS
        inner += extra
        self.send_raw("<message%s>%s</message>" % (attrs, inner))
        return id

    def iq(self, to, itype, payload="", timeout=10, id=None):
        """Sends an iq and waits for the result or error with its id."""
        id = id or new_id("iq")
        self.send_raw("<iq type=%s to=%s id=%s>%s</iq>" % (quoteattr(itype), quoteattr(to), quoteattr(id), payload))
        return self.wait(lambda s: s.name == "iq" and s.id == id and s.type in ("result", "error"),
                         timeout=timeout, what="iq reply id=%s" % id)

    def stanzas(self, pred=None):
        with self._cond:
            return [s for s in self._stanzas if pred is None or pred(s)]

    def messages(self, pred=None):
        return self.stanzas(lambda s: s.name == "message" and (pred is None or pred(s)))

    def wait(self, pred, timeout=10, what="stanza", count=1):
        """Waits until count received stanzas match pred; returns the first
        (count == 1) or the list."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for _ in range(100000):
                got = [s for s in self._stanzas if pred(s)]
                if len(got) >= count:
                    return got[0] if count == 1 else got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            recent = self._stanzas[-8:]
        raise TimeoutError("%s: no %s within %.1f s; last received: %r" % (self.jid, what, timeout, recent))

    def wait_message(self, pred, timeout=10, what="message", count=1):
        return self.wait(lambda s: s.name == "message" and pred(s), timeout=timeout, what=what, count=count)

    def connected(self):
        return self._session.is_set() and not self._disconnected.is_set()

    def close(self, timeout=5):
        if self.loop.is_closed():
            return
        try:
            if not self._disconnected.is_set() and getattr(self, "xmpp", None) is not None:
                self.loop.call_soon_threadsafe(lambda: self.xmpp.disconnect(wait=0.5))
                self._disconnected.wait(timeout)

            async def cancel_tasks():
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(cancel_tasks(), self.loop).result(timeout)
            except Exception:  # noqa: best effort, the loop stops below anyway
                pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            if not self.thread.is_alive():
                self.loop.close()
