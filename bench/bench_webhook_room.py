#!/usr/bin/env python3
"""bench_webhook_room.py: inbound webhooks said in a room (XEP-0045) with 50
occupants, next to the same webhooks delivered to one JID.

    python3 bench/bench_webhook_room.py [--count 5000] [--occupants 50] [--json]

Two measurements with the same ferry binary, each with a fresh Prosody (with
a MUC component, conference.localhost) and a fresh ferry:

  direct  N POSTs to /hooks/hooks/in (bench_durable.py's poster: C keep-alive
          connections, a unique webhook-id each), delivered to one JID whose
          raw-socket client counts the bodies (bench_durable.py's reader).
  room    the same POSTs to an endpoint with rooms = [bench@conference...]
          and no deliver_to: ferry says each in the room, where the counting
          client is one occupant, OCCUPANTS - 2 more raw-socket clients sit
          (they join and read), and ferry is the last.

For each: 202s/s (first POST -> last 202), deliveries/s (first POST -> last
body read), lost, duplicates, and ferry's CPU per request (utime+stime over
the run, divided by the requests delivered). Target (issue 13): a room
request costs ferry at most twice a direct one. Exit status: 0 met and
nothing lost, 1 otherwise, 2 the run itself failed, 130 interrupted.
The machine may be shared: other jobs make single runs noisy (see "other"
in the table); use --repeat.
"""

import argparse
import json
import os
import selectors
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

import harness  # noqa: E402
import bench_webhook as bw  # noqa: E402
import bench_durable as bd  # noqa: E402  (poster, reader, Bed)

MUC = "conference.localhost"
ROOM = "bench@" + MUC
NICK = "alerts"
TARGET_RATIO = 2.0
NS_MUC = "http://jabber.org/protocol/muc"


def log(msg):
    bw.log(msg, "room-bench")


# ---------------------------------------------------------------- occupants


def join_room(sock, nick, deadline):
    """Joins ROOM as nick on a logged-in raw socket; configures the room as
    an instant room if this join created it (Prosody locks new rooms)."""
    sock.sendall(("<presence to='%s/%s'><x xmlns='%s'><history maxchars='0'/></x></presence>"
                  % (ROOM, nick, NS_MUC)).encode())
    buf, _ = bw._read_until(sock, b"", [b"code='110'", b'code="110"', b"type='error'"], deadline,
                            "self-presence in the room")
    if b"type='error'" in buf:
        raise bw.XmppError("join refused: %r" % buf[-300:])
    if b"code='201'" in buf or b'code="201"' in buf:
        sock.sendall(("<iq type='set' id='cfg1' to='%s'><query xmlns='%s#owner'>"
                      "<x xmlns='jabber:x:data' type='submit'/></query></iq>" % (ROOM, NS_MUC)).encode())
        bw._read_until(sock, buf, [b"id='cfg1'", b'id="cfg1"'], deadline, "room configuration")
    return buf


def room_reader_main(conn, port, user, password, shared, count, warmup):
    """bench_durable's reader, as an occupant of ROOM (creates it)."""
    bw.child_signals()
    try:
        sock, jid = bw.xmpp_login(port, user, password)
        join_room(sock, "reader", time.monotonic() + 15)
        sock.settimeout(None)
    except Exception as e:  # noqa: reported to the parent
        conn.send(("error", "%s: %s" % (user, e)))
        return
    # From here the same counting loop as the direct reader.
    bd.count_bodies(conn, sock, jid, shared, count, warmup)


def occupants_main(conn, port, users):
    """Child: users [(name, password)] join ROOM and read whatever comes."""
    bw.child_signals()
    socks = []
    try:
        for u, pw in users:
            sock, _ = bw.xmpp_login(port, u, pw)
            join_room(sock, u, time.monotonic() + 15)
            sock.setblocking(False)
            socks.append(sock)
    except Exception as e:  # noqa: reported to the parent
        conn.send(("error", "%s" % e))
        return
    conn.send(("ready", len(socks)))
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    sel.register(conn, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select(1.0):
            if key.fileobj is conn:
                if bw.command(conn) == "stop":
                    for s in socks:
                        s.close()
                    return
                continue
            try:
                if not key.fileobj.recv(262144):
                    sel.unregister(key.fileobj)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                sel.unregister(key.fileobj)


# ---------------------------------------------------------------- one measurement


def start_prosody(directory, users):
    prosody = harness.Prosody(directory, components={bw.COMPONENT: bw.SECRET}, muc=MUC)
    for u, pw in users:
        prosody.add_user(u, bw.DOMAIN, pw)
    prosody.start(timeout=30)
    return prosody


def rooms_joined(ferry):
    _, samples, _, _ = ferry.metrics()
    return sum(harness.metric_values(samples, "ferry_webhook_rooms_joined"))


def measure(case, args, root, binary):
    bed = bd.Bed(root, case)
    try:
        others = [("occ%d" % i, "occpw") for i in range(max(0, args.occupants - 2))]
        bed.prosody = start_prosody(os.path.join(bed.dir, "prosody"),
                                    [bd.RCPT] + (others if case == "room" else []))
        prosody = bed.prosody
        shared = bd.ReaderShared(bed.ctx)
        target = room_reader_main if case == "room" else bd.reader_main
        reader = bed.child(target, (prosody.c2s_port, bd.RCPT[0], bd.RCPT[1], shared, args.count,
                                    args.warmup), "xmpp-reader")
        kind, info = reader.recv(30, "login")
        if kind != "ready":
            raise RuntimeError("reader: %s" % info)
        if case == "room" and others:
            occ = bed.child(occupants_main, (prosody.c2s_port, others), "occupants")
            kind, info = occ.recv(120, "occupants joined")
            if kind != "ready":
                raise RuntimeError("occupants: %s" % info)
        http_port = harness.free_port()
        poster = bed.child(bd.poster_main, (http_port, args.connections, args.body_size,
                                            "r%d%s" % (os.getpid(), case)), "poster")
        ep = {"token": bd.TOKEN}
        if case == "room":
            ep.update({"rooms": [ROOM], "nick": NICK})
        else:
            ep["deliver_to"] = ["%s@%s" % (bd.RCPT[0], bw.DOMAIN)]
        component = {"adapter": "webhook", "domain": bw.COMPONENT, "secret": bw.SECRET,
                     "endpoints": {bd.IN_ENDPOINT: ep}}
        ferry = bed.start_ferry(binary, component, args.ferry_log_level, http_port)
        if case == "room":
            harness.wait_until(lambda: rooms_joined(ferry) == 1, 20, what="ferry in the room")
        log("%s: Prosody %d, ferry %d, %s" % (case, prosody.proc.pid, ferry.pid,
                                              "%d occupants" % args.occupants if case == "room"
                                              else "one JID"))
        if args.warmup:
            bd.warm_up(poster, shared, args.warmup, args.timeout, "warm-up")
        time.sleep(0.5)
        fpid, ppid = ferry.pid, prosody.proc.pid
        f0, p0, m0 = harness.cpu_seconds(fpid), harness.cpu_seconds(ppid), bw.machine_busy_seconds()
        w0 = time.monotonic()
        poster.send(("run", "m", args.count, args.timeout, args.rate))
        kind, pres = poster.recv(args.timeout + 10, "POST results")
        if kind != "done":
            raise RuntimeError("poster: %s" % pres)
        accepted = pres["accepted"]
        while shared.measured.value < accepted and time.monotonic() < w0 + args.timeout:
            shared.all_done.wait(0.02)
        w1 = time.monotonic()
        f1, p1, m1 = harness.cpu_seconds(fpid), harness.cpu_seconds(ppid), bw.machine_busy_seconds()
        time.sleep(0.3)   # late duplicates
        delivered = shared.measured.value
        t0 = pres["t0"]
        acc_s = pres["t_last_202"] - t0 if accepted else None
        del_s = shared.last_ts.value - t0 if delivered else None
        fcpu, pcpu, win = f1 - f0, p1 - p0, w1 - w0
        return {
            "case": case,
            "occupants": args.occupants if case == "room" else None,
            "rate_requested": args.rate or None,
            "posts": args.count,
            "accepted": accepted,
            "statuses": {str(k): v for k, v in sorted(pres["status"].items())},
            "accepted_per_s": bd.rate(accepted, acc_s),
            "delivered": delivered,
            "delivered_per_s": bd.rate(delivered, del_s),
            "lost": accepted - delivered,
            "duplicates": shared.dups.value,
            "xmpp_errors": shared.errors.value,
            "ferry_cpu_s": round(fcpu, 3),
            "ferry_cpu_us_per_request": round(fcpu / delivered * 1e6, 1) if delivered else None,
            "prosody_cpu_us_per_request": round(pcpu / delivered * 1e6, 1) if delivered else None,
            "busy": {"ferry": round(fcpu / win, 2), "prosody": round(pcpu / win, 2),
                     "other": round(max(0.0, (m1 - m0) - fcpu - pcpu) / win, 2)},
            "ferry_log": bd.ferry_warnings(ferry),
        }
    finally:
        bed.close()


def print_table(runs, verdict):
    cols = ("case", "accepted/s", "delivered/s", "lost", "dups", "ferry us/req", "Prosody us/req",
            "busy f/P/other")
    print("%s" % ("paced at %g POSTs/s" % runs[0]["rate_requested"] if runs[0]["rate_requested"]
                  else "unpaced (a flood of POSTs)"))
    print("%-8s %11s %12s %5s %5s %13s %15s %15s" % cols)
    for r in runs:
        print("%-8s %11s %12s %5d %5d %13s %15s %15s" % (
            r["case"], r["accepted_per_s"], r["delivered_per_s"], r["lost"], r["duplicates"],
            r["ferry_cpu_us_per_request"], r["prosody_cpu_us_per_request"],
            "%.2f/%.2f/%.2f" % (r["busy"]["ferry"], r["busy"]["prosody"], r["busy"]["other"])))
    print(verdict)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=5000, help="measured POSTs per case (default 5000)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up POSTs (default 200)")
    ap.add_argument("--occupants", type=int, default=50, help="room occupants, ferry included (default 50)")
    ap.add_argument("--connections", type=int, default=8, help="concurrent HTTP connections (default 8)")
    ap.add_argument("--rate", type=float, default=0,
                    help="POSTs/s in total, the same for both cases; 0 (default): a flood. A flood "
                         "into a 50-occupant room is held to the room's pace (one message per room "
                         "round trip, and Prosody's fan-out), so ferry runs at a low rate there; "
                         "a rate both cases sustain compares the cost per request at equal load")
    ap.add_argument("--body-size", type=int, default=64, help="text bytes per POST (default 64)")
    ap.add_argument("--timeout", type=float, default=180.0, help="bound per measured run (default 180 s)")
    ap.add_argument("--ferry-log-level", default="info", choices=("error", "warn", "info", "debug"))
    ap.add_argument("--repeat", type=int, default=1, help="runs of both cases (default 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.occupants < 2:
        ap.error("--occupants must be at least 2 (the reader and ferry)")
    bw.exit_on_signals()
    root = tempfile.mkdtemp(prefix="ferry-room-bench-")
    src = harness.ferry_binary()
    binary = os.path.join(root, "ferry")
    ident = bw.copy_binary(src, binary)
    runs = []
    try:
        for i in range(max(1, args.repeat)):
            for case in ("direct", "room"):
                log("run %d: %s" % (i + 1, case))
                runs.append(measure(case, args, root, binary))
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    except Exception as e:  # noqa: one line for expected failures
        log("run failed: %s: %s" % (type(e).__name__, e))
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def median(case):
        vals = sorted(r["ferry_cpu_us_per_request"] or 0 for r in runs if r["case"] == case)
        return vals[len(vals) // 2]
    direct, room = median("direct"), median("room")
    ratio = room / direct if direct else None
    ok = ratio is not None and ratio <= TARGET_RATIO and all(r["lost"] == 0 and r["duplicates"] == 0
                                                               for r in runs)
    verdict = "ferry CPU per request, room / direct (medians): %s (target <= %.1f): %s" % (
        "%.2f" % ratio if ratio else "n/a", TARGET_RATIO, "PASS" if ok else "FAIL")
    if args.json:
        print(json.dumps({"runs": runs, "ratio_room_over_direct": ratio, "pass": ok,
                          "ferry_binary": ident}, indent=2))
    else:
        print("ferry binary %s (sha256 %s)" % (ident["copied_from"], ident["sha256_12"]))
        print_table(runs, verdict)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
