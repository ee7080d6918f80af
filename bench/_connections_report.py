"""
What C{bench/connections.py} prints: the client processes, every gateway
worker, the totals, the messages verified in Kafka, and the kernel settings
and limits the run relies on.
"""

import resource
from collections import Counter

from _common import rate, table
from _connections_gateway import kernelSettings


def mib(kb):
    return "?" if kb is None else f"{kb / 1024:,.1f} MiB"


def _n(value):
    return "?" if value is None else f"{value:,}"


def _sum(point, key):
    values = [w[key] for w in point["workers"].values()]
    return None if None in values else sum(values)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0


def _perConnection(before, now, open_):
    if None in (before, now) or not open_:
        return "?"
    return f"{(now - before) * 1024 / open_:,.0f}"


def gatewayOpen(point):
    """
    Client connections the gateway holds, all workers together.
    """
    return sum(w["open"] or 0 for w in point["workers"].values())


def clientTable(r):
    rows = []
    sources = Counter()
    for number, d in sorted(r["clients"].items()):
        sources.update(d["sources"])
        rows.append(
            [
                f"client {number}",
                f"{d['held']:,}",
                f"{d['seconds']:.1f}",
                ", ".join(f"{k} {v}" for k, v in sorted(d["sources"].items())),
                sum(d["retried"].values()),
                ", ".join(f"{k} {v}" for k, v in d["retried"].items()) or "-",
                ", ".join(f"{k} {v}" for k, v in d["failed"].items()) or "-",
                f"{d['cpu']:.1f}",
                "/".join(map(str, d["nofile"])),
            ]
        )
    out = table(
        [
            "process",
            "held",
            "s",
            "per source address",
            "retries",
            "retried for",
            "failed",
            "CPU s",
            "nofile",
        ],
        rows,
    )
    out += "\nper source address: " + ", ".join(f"{k} {v:,}" for k, v in sorted(sources.items()))
    return out


def workerTable(r):
    b, i, a = r["before"]["workers"], r["idle"]["workers"], r["after"]["workers"]
    rows = []
    notes = []
    for k in sorted(i):
        rows.append(
            [
                f"worker {k}",
                r["pids"][k],
                _n(i[k]["open"]),
                f"{_n(r['maxQueued'].get(k))}/{_n(i[k]['queued'])}",
                f"{b[k]['fds']}/{_n(i[k]['fds'])}/{_n(a[k]['fds'])}",
                f"{mib(b[k]['rss'])[:-4]}/{mib(i[k]['rss'])[:-4]}/{mib(a[k]['rss'])}",
                _perConnection(b[k]["rss"], i[k]["rss"], i[k]["open"]),
                _perConnection(b[k]["rss"], a[k]["rss"], a[k]["open"]),
                f"{b[k]['kafka']}/{i[k]['kafka']}/{a[k]['kafka']}",
                _cpu(b[k]["cpu"], i[k]["cpu"]),
                "/".join(r["nofile"][k] or "?"),
            ]
        )
    for k in sorted(a):
        odd = {key: a[k][key] for key in ("refused", "closedBy", "pausedFor") if a[k].get(key)}
        if odd or a[k].get("closed"):
            notes.append(
                f"worker {k}: accepted {_n(a[k]['accepted'])}, closed "
                f"{_n(a[k]['closed'])} " + " ".join(f"{key} {v}" for key, v in odd.items())
            )
    return table(
        [
            "worker",
            "pid",
            "open",
            "queue max/idle",
            "fds before/idle/after",
            "RSS before/idle/after",
            "B/idle conn",
            "B/conn msg",
            "Kafka conns",
            "CPU s to idle",
            "nofile",
        ],
        rows,
    ) + "".join("\n" + n for n in notes)


def _cpu(before, now):
    return "?" if None in (before, now) else f"{now - before:.1f}"


def summary(args, r, v):
    n = r["clientHeld"]
    b, i, a = r["before"], r["idle"], r["after"]
    opens = [w["open"] for w in i["workers"].values() if w["open"] is not None]
    answered = all(w["answered"] for w in i["workers"].values())
    lines = [
        ("connections asked for", f"{args.connections:,}"),
        ("connections held, client side", f"{n:,}"),
        (
            "connections open in the gateway",
            f"{r['idleOpen']:,}"
            + (f" (per worker {min(opens):,}..{max(opens):,})" if len(opens) > 1 else "")
            + ("" if answered else " (a worker did not answer: its descriptors)"),
        ),
        (
            "waiting: accept queues / half-open",
            f"{_n(_sum(i, 'queued'))} / {i['synRecv']:,} (idle)",
        ),
        ("client processes start-up", f"{r['spawnSeconds']:.1f} s"),
        (
            "time to connect all (clients)",
            f"{r['connectSeconds']:.1f} s ({rate(n / max(r['connectSeconds'], 1e-9))} connects/s)",
        ),
        (
            "time until the gateway held them",
            f"{r['acceptSeconds']:.1f} s "
            f"({rate(r['idleOpen'] / max(r['acceptSeconds'], 1e-9))} accepts/s; "
            f"per second of the run: median {_median(r['acceptSteps']):,}, "
            f"best {max(r['acceptSteps'] or [0]):,})",
        ),
    ]
    rss = [_sum(p, "rss") for p in (b, i, a)]
    hwm = [_sum(p, "hwm") for p in (b, i, a)]
    openAfter = sum(w["open"] or 0 for w in a["workers"].values())
    slab = [p["system"]["slab"] for p in (b, i)]
    lines += [
        ("gateway RSS, all workers: before", f"{mib(rss[0])} (HWM {mib(hwm[0])})"),
        (f"  with {r['idleOpen']:,} idle connections", f"{mib(rss[1])} (HWM {mib(hwm[1])})"),
        ("  after one message each", f"{mib(rss[2])} (HWM {mib(hwm[2])})"),
        ("RSS per idle connection", f"{_perConnection(rss[0], rss[1], r['idleOpen'])} bytes"),
        (
            "RSS per connection after a message",
            f"{_perConnection(rss[0], rss[2], openAfter)} bytes",
        ),
        (
            "kernel slab, system wide, per connection",
            f"{_perConnection(slab[0], slab[1], r['idleOpen'])} bytes (both "
            "ends of each loopback connection; not in any RSS)",
        ),
        (
            "memory available before / idle",
            f"{mib(b['system']['available'])} / {mib(i['system']['available'])}",
        ),
        ("TCP sockets (sockstat), idle", i["system"]["sockstat"]),
        (
            "/status.json answered in (slowest worker)",
            " / ".join(
                f"{max(w['statusSeconds'] for w in p['workers'].values()):.2f} s"
                for p in (b, i, a)
            )
            + " (before / idle / after)",
        ),
        (
            "gateway descriptors, all workers",
            f"{_n(_sum(b, 'fds'))} before, {_n(_sum(i, 'fds'))} idle, {_n(_sum(a, 'fds'))} after",
        ),
        (
            "gateway TCP connections to Kafka",
            f"{_n(_sum(b, 'kafka'))} before, {_n(_sum(i, 'kafka'))} with all "
            f"clients (status.json: {_n(_sum(i, 'kafkaStatus'))}), "
            f"{_n(_sum(a, 'kafka'))} after",
        ),
    ]
    if "beforeHold" in r:
        lines.append(
            (
                f"held idle for {args.hold:g} s",
                f"gateway open {gatewayOpen(r['beforeHold']):,} -> {r['idleOpen']:,}",
            )
        )
    tcp = [b["system"]["tcp"], a["system"]["tcp"]]
    lines.append(
        (
            "TCP counters during the run (system wide)",
            ", ".join(f"{k} {tcp[1][k] - tcp[0][k]:,}" for k in tcp[0] if tcp[1][k] != tcp[0][k])
            or "none changed",
        )
    )
    if "afterRelease" in r:
        rel = r["afterRelease"]
        lines.append(
            (
                "after releasing",
                f"{r['released']:,} connections: gateway open "
                f"{r['gatewayOpen']:,}, accept queues {_n(_sum(rel, 'queued'))}, "
                f"half-open {rel['synRecv']:,}",
            )
        )
    lines += [
        (
            "messages sent",
            f"{len(r['sent']):,} ({r['sendErrors']} send errors; "
            f"{r['closedByPeer']:,} connections found closed by the gateway)",
        ),
        ("Kafka high watermarks", f"{r['watermarks']:,} (waited {r['deliverSeconds']:.1f} s)"),
        ("consumed / distinct", f"{v['consumed']:,} / {v['distinct']:,}"),
        ("sent but not in Kafka / in Kafka not sent", f"{v['missing']:,} / {v['unknown']:,}"),
        (
            "gateway exit on SIGTERM",
            f"{r['exitCode']} "
            f"({'clean' if r['exitCode'] in (0, -15) else 'NOT clean'})"
            + (
                f"; workers stopped by the benchmark: {r['leftWorkers']}"
                if r["leftWorkers"]
                else ""
            ),
        ),
        (
            "gateway log",
            f"{r['log']['lines']:,} lines, {r['log']['problemCount']:,} warnings/errors",
        ),
    ]
    return lines


def limits(r):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    clients = sorted({"/".join(map(str, d["nofile"])) for d in r["clients"].values()})
    gateway = sorted({"/".join(v or "?") for v in r["nofile"].values()})
    rows = kernelSettings() + [
        ("RLIMIT_NOFILE (benchmark)", f"{soft}/{hard}"),
        ("RLIMIT_NOFILE (client processes)", ", ".join(clients)),
        ("RLIMIT_NOFILE (gateway workers)", ", ".join(gateway)),
        ("listen backlog (per listener)", ", ".join(map(str, r["backlog"]))),
        ("pacing: connects ahead of accepts", str(r["ahead"])),
    ]
    return "\n".join(f"  {k:<34} {v}" for k, v in rows)


def report(args, r, v):
    """
    Print the run; return whether it held and delivered everything asked.
    """
    print()
    print("gateway:", " ".join(r["command"][1:]))
    print(
        f"port {r['port']}, {len(r['pids'])} worker(s), listen backlog "
        f"{'/'.join(map(str, r['backlog']))}, pacing {r['ahead']} ahead"
    )
    print()
    print(clientTable(r))
    print()
    print(workerTable(r))
    print()
    lines = summary(args, r, v)
    width = max(len(k) for k, _ in lines)
    for k, value in lines:
        print(f"{k:<{width}}  {value}")
    for title, counts in (
        ("gateway log problems", r["log"]["problems"]),
        ("gateway log lines about descriptors", r["log"]["descriptors"]),
    ):
        if counts:
            print(f"{title} (counted):")
            for line, count in counts.most_common(8):
                print(f"  {count:>7,} x {line}")
    print()
    print("kernel settings and limits relied on:")
    print(limits(r))
    delivered = (
        v["consumed"] == v["distinct"] == r["watermarks"] == r["gatewayOpen"] and not v["unknown"]
    )
    everything = (
        delivered
        and not v["missing"]
        and r["clientHeld"] == r["idleOpen"] == r["gatewayOpen"] == args.connections
    )
    ok = delivered if args.push else everything
    print()
    print(
        "RESULT:",
        "every connection held and every message delivered once"
        if everything
        else "every connection the gateway held delivered its message once"
        if delivered
        else "see above (not every connection/message)",
    )
    return ok
