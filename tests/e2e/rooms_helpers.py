"""What the room tests (XEP-0045) share, against Prosody's MUC component and
ejabberd's mod_muc: a test occupant that joins, creates and administers
rooms with slixmpp (an XmppClient), and waits on what the room shows."""

import time
from xml.sax.saxutils import escape as xml_escape, quoteattr

import harness as h

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_XDATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"


def statuses(st):
    x = st.find(NS_MUC_USER, "x")
    if x is None:
        return set()
    return {s.get("code") for s in x if s.tag == "{%s}status" % NS_MUC_USER}


def configure(client, room, fields=None, timeout=10):
    """Submits the room's configuration form (owner): an instant room when
    fields is None, else those muc#roomconfig fields {var: value}."""
    items = "".join("<field var=%s><value>%s</value></field>" % (quoteattr(k), xml_escape(str(v)))
                    for k, v in (fields or {}).items())
    if fields:
        items = ("<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                 + items)
    r = client.iq(room, "set", "<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
                  % (NS_MUC_OWNER, NS_XDATA, items), timeout=timeout)
    assert r.type == "result", "configuring %s: %r" % (room, r.xml())


def join(client, room, nick, password=None, config=None, timeout=10):
    """Joins room as nick (creating it if needed: then configured with
    config, see configure()); returns the self-presence (status 110). A room
    someone else has just created is locked until its owner configured it
    (item-not-found, XEP-0045 10.1.3): the join is tried again, bounded."""
    pw = "<password>%s</password>" % xml_escape(password) if password else ""
    deadline = time.monotonic() + timeout
    for _ in range(50):
        at = mark(client)
        client.send_raw("<presence to=%s><x xmlns='%s'>%s</x></presence>"
                        % (quoteattr("%s/%s" % (room, nick)), NS_MUC, pw))
        me = client.wait(lambda s: s.seq >= at and s.name == "presence" and s.frm == "%s/%s" % (room, nick)
                         and (s.type is None or s.type == "error")
                         and ("110" in statuses(s) or s.type == "error"),
                         timeout=max(0.1, deadline - time.monotonic()), what="self-presence in %s" % room)
        if me.type != "error" or me.error_condition != "item-not-found" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert me.type != "error", "joining %s as %s: %r" % (room, nick, me.xml())
    if "201" in statuses(me):
        configure(client, room, config)
    return me


def leave(client, room, nick):
    client.send_raw("<presence type='unavailable' to=%s/>" % quoteattr("%s/%s" % (room, nick)))


def occupant_present(client, room, nick, after=0, timeout=10):
    """Waits for the available presence of room/nick (the n-th stanza on
    from `after`); returns it."""
    jid = "%s/%s" % (room, nick)
    return client.wait(lambda s: s.name == "presence" and s.frm == jid and s.type is None
                       and s.seq >= after, timeout=timeout, what="%s in the room" % jid)


def occupant_gone(client, room, nick, after=0, timeout=10):
    jid = "%s/%s" % (room, nick)
    return client.wait(lambda s: s.name == "presence" and s.frm == jid and s.type == "unavailable"
                       and s.seq >= after, timeout=timeout, what="%s leaving the room" % jid)


def said(client, room, nick, text, timeout=10, count=1):
    """Waits for text said in room by nick (live, not history)."""
    jid = "%s/%s" % (room, nick)
    return client.wait_message(lambda s: s.type == "groupchat" and s.frm == jid and s.body == text
                               and s.find(NS_DELAY, "delay") is None,
                               timeout=timeout, what="%r from %s" % (text[:50], jid), count=count)


def said_count(client, room, nick, text):
    jid = "%s/%s" % (room, nick)
    return len(client.messages(lambda s: s.type == "groupchat" and s.frm == jid and s.body == text))


def say(client, room, text, extra=""):
    return client.send_message(room, text, mtype="groupchat", extra=extra)


def kick(client, room, nick, reason="test kick"):
    r = client.iq(room, "set", "<query xmlns='%s'><item nick=%s role='none'><reason>%s</reason></item></query>"
                  % (NS_MUC_ADMIN, quoteattr(nick), xml_escape(reason)))
    assert r.type == "result", r.xml()


def ban(client, room, jid, reason="test ban"):
    r = client.iq(room, "set", "<query xmlns='%s'><item jid=%s affiliation='outcast'><reason>%s</reason></item>"
                  "</query>" % (NS_MUC_ADMIN, quoteattr(jid), xml_escape(reason)))
    assert r.type == "result", r.xml()


def destroy(client, room):
    r = client.iq(room, "set", "<query xmlns='%s'><destroy><reason>gone</reason></destroy></query>"
                  % NS_MUC_OWNER)
    assert r.type == "result", r.xml()


def mark(client):
    """The index of the next stanza client receives (for `after`)."""
    return len(client.stanzas())


def room_metrics(ferry):
    """The room metrics of /metrics, summed over components: {name: value}
    (None when absent)."""
    _, s, _, _ = ferry.metrics()
    out = {}
    for name in ("ferry_webhook_rooms_joined", "ferry_webhook_room_rejoins_total",
                 "ferry_webhook_room_messages_total", "ferry_webhook_rooms_lost_total",
                 "ferry_webhook_room_self_pings_total"):
        vals = h.metric_values(s, name)
        out[name] = sum(v for v in vals) if vals else None
    return out
