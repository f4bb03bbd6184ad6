#!/usr/bin/env python3
"""scripts/demo_ircbot.py: the IRC side of the ferry demo, so that a channel is never empty.

A small IRC bot (stdlib only) that joins a channel on a local IRC server, says something
there every --interval seconds, greets who joins, and answers whoever speaks to it: a channel
message that mentions its nick gets an answer in the channel, a private message gets a private
answer. Every line it sees in the channel, and everything it says, is printed on stdout (the
demo's --check reads that to see that a message from XMPP reached IRC).

    python3 scripts/demo_ircbot.py --port 6667 [--host 127.0.0.1] [--nick demobot]
                                   [--channel '#demo'] [--interval 8]

It exits 1 when it cannot register within --timeout seconds or when the server closes the
connection; SIGTERM makes it QUIT and exit 0.
"""
import argparse
import itertools
import select
import signal
import socket
import sys
import time

CHATTER = [
    "Hello from IRC! I am {nick}, a bot on a local ngircd. Mention my name and I will answer.",
    "Everything you see from me came over IRC and reached you through ferry's IRC adapter.",
    "Try /me in your XMPP client: it arrives here as a CTCP ACTION.",
    "Private messages work too: open a chat with {nick}%{server}@{gateway}.",
    "Your nick here is your MUC nick; a nick change in your client sends NICK.",
]

MAX_LINE = 510          # RFC 1459: 512 bytes with CR LF


def say(text):
    print("ircbot: " + text, flush=True)


def clean(text):
    """Text from the network, made safe to put back on one IRC line."""
    return "".join(c for c in text if c not in "\r\n\0\x01")


class Bot:
    def __init__(self, opts):
        self.opts = opts
        self.nick = opts.nick
        self.sock = None
        self.buf = b""
        self.joined = False
        self.chatter = itertools.cycle(CHATTER)

    # -- the wire

    def send(self, line):
        data = line.encode("utf-8")[:MAX_LINE]
        self.sock.sendall(data + b"\r\n")

    def privmsg(self, target, text):
        prefix = "PRIVMSG %s :" % target
        room = MAX_LINE - len(prefix.encode()) - 64    # the server adds our prefix when relaying
        body = text.encode("utf-8")[:room].decode("utf-8", "ignore")
        self.send(prefix + body)
        say("-> %s: %s" % (target, body))

    def lines(self, timeout):
        """The complete lines received within TIMEOUT seconds (maybe none); raises
        ConnectionError when the server closed the connection."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the IRC server closed the connection")
            self.buf += data
        out = []
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            out.append(raw.rstrip(b"\r").decode("utf-8", "replace"))
        return out

    @staticmethod
    def parse(line):
        """(source nick, command, params) of one IRC line."""
        source = ""
        if line.startswith(":"):
            source, _, line = line[1:].partition(" ")
        trailing = None
        if " :" in line:
            line, trailing = line.split(" :", 1)
        params = line.split()
        command = params.pop(0).upper() if params else ""
        if trailing is not None:
            params.append(trailing)
        return source.split("!", 1)[0], command, params

    # -- behaviour

    def connect(self):
        o = self.opts
        self.sock = socket.create_connection((o.host, o.port), timeout=o.timeout)
        self.sock.settimeout(None)
        self.send("NICK %s" % self.nick)
        self.send("USER %s 0 * :ferry demo bot" % self.nick)
        deadline = time.monotonic() + o.timeout
        while time.monotonic() < deadline:
            for line in self.lines(0.5):
                src, cmd, params = self.parse(line)
                if cmd == "PING":
                    self.send("PONG :%s" % (params[-1] if params else ""))
                elif cmd == "001":
                    self.send("JOIN %s" % o.channel)
                elif cmd == "433":               # nick taken: try another
                    self.nick += "_"
                    self.send("NICK %s" % self.nick)
                elif cmd == "JOIN" and src == self.nick:
                    self.send("TOPIC %s :ferry demo channel: say hello, mention %s for an answer"
                              % (o.channel, self.nick))
                    say("joined %s on %s:%d as %s" % (o.channel, o.host, o.port, self.nick))
                    return
        raise TimeoutError("not in %s within %.0f s" % (o.channel, o.timeout))

    def on_line(self, line):
        src, cmd, params = self.parse(line)
        if cmd == "PING":
            self.send("PONG :%s" % (params[-1] if params else ""))
        elif cmd == "JOIN" and src != self.nick:
            say("%s joined %s" % (src, params[0] if params else "?"))
            self.privmsg(self.opts.channel, "Welcome, %s! Mention %s and I will answer."
                         % (src, self.nick))
        elif cmd in ("PRIVMSG", "NOTICE") and len(params) == 2 and src:
            target, text = params
            action = text.startswith("\x01ACTION ")
            text = clean(text[8:] if action else text)
            if target.lower() == self.nick.lower():
                say("(private) <%s> %s" % (src, text))
                if cmd == "PRIVMSG":
                    self.privmsg(src, 'Hi %s, you wrote to me privately: "%s"' % (src, text))
            else:
                say("%s <%s> %s" % (target, src, ("* %s " % src if action else "") + text))
                if cmd == "PRIVMSG" and self.nick.lower() in text.lower():
                    self.privmsg(target, '%s: you said "%s". This answer comes from IRC.'
                                 % (src, text))

    def run(self):
        self.connect()
        next_chat = time.monotonic() + self.opts.interval
        while True:
            for line in self.lines(max(0.0, min(1.0, next_chat - time.monotonic()))):
                self.on_line(line)
            if self.opts.interval > 0 and time.monotonic() >= next_chat:
                self.privmsg(self.opts.channel, next(self.chatter).format(
                    nick=self.nick, server=self.opts.server_name, gateway=self.opts.gateway))
                next_chat = time.monotonic() + self.opts.interval

    def quit(self):
        if self.sock:
            try:
                self.send("QUIT :demo stopped")
            except OSError:
                pass
            self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6667)
    ap.add_argument("--nick", default="demobot")
    ap.add_argument("--channel", default="#demo")
    ap.add_argument("--interval", type=float, default=8.0,
                    help="seconds between two unprompted messages (0: never)")
    ap.add_argument("--timeout", type=float, default=15.0,
                    help="seconds to connect, register and join")
    ap.add_argument("--server-name", default="127.0.0.1",
                    help="the server as ferry's JIDs name it (for the tips it gives)")
    ap.add_argument("--gateway", default="irc.localhost", help="ferry's IRC component domain")
    opts = ap.parse_args()
    bot = Bot(opts)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        bot.run()
    except (OSError, TimeoutError) as e:
        say("stopping: %s" % e)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        bot.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
