"""bench_durable_two.py: bench_durable.py's inbound2 and outbound2, the
durable throughput of two ferry instances on one PostgreSQL database behind
ejabberd 23.01 (issue 14's "several instances"), both directions.

ejabberd runs with domain_balancing {type: bare_source, component_number: 2}
(without component_number every handshake for the domain crashes inside
ejabberd), so each XMPP user's stanzas go to one of two slots by a hash of
the bare JID; the two ferries take one slot each ([cluster] slots = 2, a
PostgreSQL advisory lock per slot). The server answers every ping from its
own domain to one slot, so the other instance learns its answers through the
store (NOTIFY): that is part of what is measured.

  inbound2   network -> XMPP: R endpoints (in0..), one XMPP recipient each
             (a raw-socket reader), one poster per endpoint whose keep-alive
             connections alternate between the two ferries' HTTP ports.
  outbound2  XMPP -> network: S raw XMPP senders (S users, so that both
             slots get traffic whatever the hash) to sink@, POSTed by
             whichever instance holds the conversation to one fast receiver.

Reported like the one-instance runs (msg/s, lost, duplicates), with each
ferry's CPU per message (of all messages) and its share of the work."""

import os
import time

import bench_durable as bd
import bench_webhook as bw
import harness
import pg_helpers

INSTANCES = ("a", "b")


class TwoBed(bd.Bed):
    """ejabberd with balancing over 2 slots and two ferries on one new
    database of the run's PostgreSQL; close() stops all of it by pid."""

    def __init__(self, root, name):
        super().__init__(root, name)
        self.ejabberd = None
        self.ferries = []

    def start_ejabberd(self, users):
        e = harness.Ejabberd(os.path.join(self.dir, "ejabberd"), components={bd.COMPONENT: bd.SECRET},
                             balancing={bd.COMPONENT: 2})
        for u, pw in users:
            e.add_user(u, bd.DOMAIN, pw)
        self.ejabberd = e
        e.start(timeout=60)
        return e

    def start_ferries(self, binary, component, log_level, ports):
        url = pg_helpers.ACTIVE.url(pg_helpers.ACTIVE.new_database())
        for name, port in zip(INSTANCES, ports):
            fdir = os.path.join(self.dir, "ferry-" + name)
            os.makedirs(fdir, exist_ok=True)
            cfg = harness.ferry_config(self.ejabberd.component_port, port, {bd.COMP_NAME: component},
                                       log={"level": log_level}, storage={"url": url},
                                       cluster={"instance": name, "slots": 2})
            self.ferries.append(bw.start_ferry(fdir, cfg, port, binary))
        # Both linked (each holds a slot): otherwise ejabberd drops a slot's stanzas.
        harness.wait_until(lambda: all("linked as" in f.stderr() for f in self.ferries), 30,
                           interval=0.1, what="both ferries linked")
        return self.ferries

    def ejabberd_pid(self):
        return self.ejabberd._read_pid() if self.ejabberd else None

    def close(self):
        super().close()
        for f in self.ferries:
            f.stop()
        if self.ejabberd is not None:
            self.ejabberd.stop()


def cpu_of(pids):
    return [harness.cpu_seconds(p) if p else 0.0 for p in pids]


def per_ferry(bed, f0, f1, n, win):
    """Each ferry's CPU: us per message (of all N), and busy share."""
    return {name: {"cpu_s": round(b - a, 3),
                   "cpu_us_per_msg": round((b - a) / n * 1e6, 1) if n else None,
                   "busy": round((b - a) / win, 2)}
            for name, a, b in zip(INSTANCES, f0, f1)}


def pending_of(ferry):
    """The component's pending rows, as /healthz reads the shared store
    (bounded: 6 s for them to reach 0)."""
    pending = None
    for _ in range(60):
        st, j = ferry.healthz()
        pending = j["components"][bd.COMP_NAME]["pending"] if j else None
        if pending == 0:
            break
        time.sleep(0.1)
    return pending


def measure_inbound2(args, root, binary):
    bed = TwoBed(root, "inbound2")
    try:
        r_n = max(1, args.recipients)
        rcpts = [("rcpt%d" % k, "rcptpw%d" % k) for k in range(r_n)]
        per, warm = args.in_count // r_n, args.in_warmup // r_n
        e = bed.start_ejabberd(rcpts)
        shareds = [bd.ReaderShared(bed.ctx) for _ in rcpts]
        # Children are forked before this process has any thread.
        readers = [bed.child(bd.reader_main, (e.c2s_port, u, pw, sh, per, warm), "xmpp-reader-%d" % k)
                   for k, ((u, pw), sh) in enumerate(zip(rcpts, shareds))]
        for rd in readers:
            kind, info = rd.recv(30, "login")
            if kind != "ready":
                raise RuntimeError("XMPP reader: %s" % info)
        ports = [harness.free_port() for _ in INSTANCES]
        conns = max(2, args.connections // r_n)
        posters = [bed.child(bd.poster_main, (ports, conns, args.body_size, "r%d" % os.getpid(), "in%d" % k),
                             "poster-%d" % k) for k in range(r_n)]
        component = {"adapter": "webhook", "domain": bd.COMPONENT, "secret": bd.SECRET,
                     "endpoints": {"in%d" % k: {"token": bd.TOKEN, "deliver_to": ["%s@%s" % (u, bd.DOMAIN)]}
                                   for k, (u, _) in enumerate(rcpts)}}
        ferries = bed.start_ferries(binary, component, args.ferry_log_level, ports)
        bd.log("inbound2: ejabberd %s, ferries %s linked, %d recipient(s)" % (
            bed.ejabberd_pid(), [f.pid for f in ferries], r_n))
        if warm:
            for p in posters:
                p.send(("run", "w", warm, args.timeout))
            for p, sh in zip(posters, shareds):
                kind, wres = p.recv(args.timeout + 10, "warm-up result")
                if kind != "done" or wres["accepted"] != warm:
                    raise RuntimeError("inbound2 warm-up: %r" % (wres,))
                if not sh.warm_done.wait(args.timeout):
                    raise RuntimeError("inbound2 warm-up: %d of %d delivered" % (sh.warm.value, warm))
        time.sleep(0.5)
        offs = [f.stderr_offset() for f in ferries]
        fpids = [f.pid for f in ferries]
        f0, e0, m0 = cpu_of(fpids), cpu_of([bed.ejabberd_pid()])[0], bw.machine_busy_seconds()
        w0 = time.monotonic()
        bd.log("inbound2: %d POSTs over %d x %d connection(s), both ports" % (per * r_n, r_n, conns))
        for p in posters:
            p.send(("run", "m", per, args.timeout))
        results = []
        for p in posters:
            kind, pres = p.recv(args.timeout + 10, "POST results")
            if kind != "done":
                raise RuntimeError("poster: %s" % pres)
            results.append(pres)
        accepted = sum(x["accepted"] for x in results)
        deadline = w0 + args.timeout
        while (sum(sh.measured.value for sh in shareds) < accepted and time.monotonic() < deadline):
            time.sleep(0.02)
        w1 = time.monotonic()
        f1, e1, m1 = cpu_of(fpids), cpu_of([bed.ejabberd_pid()])[0], bw.machine_busy_seconds()
        time.sleep(0.3)   # late duplicates
        pending = pending_of(ferries[0])
        delivered = sum(sh.measured.value for sh in shareds)
        t0 = min(x["t0"] for x in results)
        t202 = max(x["t_last_202"] for x in results) if accepted else None
        tlast = max(sh.last_ts.value for sh in shareds) if delivered else None
        acc_s = t202 - t0 if t202 else None
        del_s = tlast - t0 if tlast else None
        statuses = {}
        for x in results:
            for k, c in x["status"].items():
                statuses[str(k)] = statuses.get(str(k), 0) + c
        win = w1 - w0
        fcpu = sum(f1) - sum(f0)
        return {
            "instances": len(INSTANCES), "posts": per * r_n, "recipients": r_n, "connections": conns * r_n,
            "accepted": accepted, "statuses": statuses,
            "post_failures": sum(x["failed"] for x in results),
            "accepted_per_s": bd.rate(accepted, acc_s), "accept_seconds": round(acc_s, 3) if acc_s else None,
            "delivered": delivered, "delivered_per_s": bd.rate(delivered, del_s),
            "deliver_seconds": round(del_s, 3) if del_s else None,
            "lost": accepted - delivered, "duplicates": sum(sh.dups.value for sh in shareds),
            "xmpp_errors": sum(sh.errors.value for sh in shareds), "pending_after": pending,
            "ferry_cpu_us_per_msg": round(fcpu / delivered * 1e6, 1) if delivered else None,
            "ferries": per_ferry(bed, f0, f1, delivered, win),
            "ejabberd_cpu_us_per_msg": round((e1 - e0) / delivered * 1e6, 1) if delivered else None,
            "busy": {"ferries": round(fcpu / win, 2), "ejabberd": round((e1 - e0) / win, 2),
                     "other": round(max(0.0, (m1 - m0) - fcpu - (e1 - e0)) / win, 2)},
            "ferry_log": {n: bd.ferry_warnings(f, o) for n, f, o in zip(INSTANCES, ferries, offs)},
        }
    finally:
        bed.close()


def measure_outbound2(args, root, binary):
    bed = TwoBed(root, "outbound2")
    try:
        s_n = max(2, args.out_users)
        n, warmup = args.out_count, 100 * s_n
        creds = [("snd%d" % k, "sndpw%d" % k) for k in range(s_n)]
        shared = bw.Shared(bed.ctx)
        receiver = bed.child(bw.receiver_main, (shared, n, warmup), "receiver")
        kind, rport = receiver.recv(10, "ready")
        e = bed.start_ejabberd(creds)
        senders = [bed.child(bw.sender_main, (e.c2s_port, u, pw, list(range(k, warmup, s_n)),
                                              list(range(k, n, s_n)), args.body_size, 1000, 0),
                             "sender-%s" % u) for k, (u, pw) in enumerate(creds)]
        for s in senders:
            kind, info = s.recv(60, "login")
            if kind != "ready":
                raise RuntimeError("sender failed: %s" % info)
        component = {"adapter": "webhook", "domain": bd.COMPONENT, "secret": bd.SECRET, "timeout": 10.0,
                     "endpoints": {bd.OUT_ENDPOINT: {"url": "http://127.0.0.1:%d/hook" % rport,
                                                     "format": "json", "allow": [bd.DOMAIN]}}}
        ports = [harness.free_port() for _ in INSTANCES]
        ferries = bed.start_ferries(binary, component, args.ferry_log_level, ports)
        bd.log("outbound2: ejabberd %s, ferries %s linked, %d sender(s)" % (
            bed.ejabberd_pid(), [f.pid for f in ferries], s_n))
        for s in senders:
            s.send("warmup")
        for s in senders:
            s.recv(60, "warm-up sent")
        if not shared.warm_done.wait(args.timeout):
            raise RuntimeError("outbound2 warm-up: %d of %d arrived" % (shared.warm.value, warmup))
        time.sleep(0.5)
        offs = [f.stderr_offset() for f in ferries]
        fpids = [f.pid for f in ferries]
        f0, e0, m0 = cpu_of(fpids), cpu_of([bed.ejabberd_pid()])[0], bw.machine_busy_seconds()
        w0 = time.monotonic()
        for s in senders:
            s.send("go")
        bd.log("outbound2: %d messages from %d user(s)" % (n, s_n))
        shared.all_done.wait(args.timeout)
        w1 = time.monotonic()
        f1, e1, m1 = cpu_of(fpids), cpu_of([bed.ejabberd_pid()])[0], bw.machine_busy_seconds()
        sent = [s.recv(30, "send report")[1] for s in senders]
        stats = []
        for s in senders:
            s.send("stats")
            stats.append(s.recv(10, "stats")[1])
        time.sleep(0.3)   # late duplicates
        pending = pending_of(ferries[0])
        receiver.send("stop")
        rsum = receiver.recv(10, "summary")
        arrived = shared.measured.value
        t0 = min(x["t0"] for x in sent)
        el = (shared.last_ts.value - t0) if arrived else None
        win = w1 - w0
        fcpu = sum(f1) - sum(f0)
        return {
            "instances": len(INSTANCES), "messages": n, "users": s_n, "arrived": arrived,
            "lost": n - arrived, "duplicates": shared.dups.value,
            "xmpp_errors": sum(x["errors"] for x in stats), "pending_after": pending,
            "seconds": round(el, 3) if el else None, "delivered_per_s": bd.rate(arrived, el),
            "ferry_cpu_us_per_msg": round(fcpu / arrived * 1e6, 1) if arrived else None,
            "ferries": per_ferry(bed, f0, f1, arrived, win),
            "ejabberd_cpu_us_per_msg": round((e1 - e0) / arrived * 1e6, 1) if arrived else None,
            "busy": {"ferries": round(fcpu / win, 2), "ejabberd": round((e1 - e0) / win, 2),
                     "other": round(max(0.0, (m1 - m0) - fcpu - (e1 - e0)) / win, 2)},
            "missing_first": ["b%d" % i for i in rsum.get("missing_first", [])],
            "ferry_log": {nm: bd.ferry_warnings(f, o) for nm, f, o in zip(INSTANCES, ferries, offs)},
        }
    finally:
        bed.close()


def table_rows(r):
    """print_tables' rows for inbound2 and outbound2."""
    fmt = bw.fmt
    rows = []

    def each(x):
        return ", ".join("%s %s us (%.0f%% busy)" % (nm, fmt(v["cpu_us_per_msg"]), 100 * v["busy"])
                         for nm, v in sorted(x["ferries"].items()))
    i = r.get("inbound2")
    if i:
        rows.append(("INBOUND2  HTTP -> 2 ferries -> ejabberd -> %d XMPP clients" % i["recipients"], ""))
        rows += [
            ("POSTs (202 / sent), connections", "%d / %d, %d" % (i["accepted"], i["posts"], i["connections"])),
            ("accepted 202s/s", "%s  (%s s)" % (fmt(i["accepted_per_s"], "%.0f"), fmt(i["accept_seconds"]))),
            ("delivered msgs/s (first POST -> last msg)", "%s  (%s s)" % (
                fmt(i["delivered_per_s"], "%.0f"), fmt(i["deliver_seconds"]))),
            ("lost / duplicates / XMPP errors", "%d / %d / %d" % (i["lost"], i["duplicates"], i["xmpp_errors"])),
            ("pending rows afterwards", fmt(i["pending_after"])),
            ("ferry CPU us/msg, both (ejabberd)", "%s  (%s)" % (fmt(i["ferry_cpu_us_per_msg"]),
                                                             fmt(i["ejabberd_cpu_us_per_msg"]))),
            ("each ferry: CPU us/msg of all", each(i)),
        ]
    o = r.get("outbound2")
    if o:
        rows.append(("OUTBOUND2  %d XMPP users -> ejabberd -> 2 ferries -> HTTP" % o["users"], ""))
        rows += [
            ("messages (arrived / sent)", "%d / %d" % (o["arrived"], o["messages"])),
            ("msgs/s through the store", "%s  (%s s)" % (fmt(o["delivered_per_s"], "%.0f"), fmt(o["seconds"]))),
            ("lost / duplicates / XMPP errors", "%d / %d / %d" % (o["lost"], o["duplicates"], o["xmpp_errors"])),
            ("pending rows afterwards", fmt(o["pending_after"])),
            ("ferry CPU us/msg, both (ejabberd)", "%s  (%s)" % (fmt(o["ferry_cpu_us_per_msg"]),
                                                             fmt(o["ejabberd_cpu_us_per_msg"]))),
            ("each ferry: CPU us/msg of all", each(o)),
        ]
    return rows


def verdicts(r):
    """Two instances: nothing lost or duplicated (no rate target: the
    issue's 5,000/s is for one instance)."""
    out = {}
    for name in ("inbound2", "outbound2"):
        x = r.get(name)
        if x:
            whole = x["accepted"] == x["posts"] if name == "inbound2" else True
            out[name] = (whole and x["lost"] == 0 and x["duplicates"] == 0,
                         "nothing lost or duplicated")
    return out
