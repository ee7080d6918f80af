"""
Clients that open a connection per message: how many connections per
second the gateway serves, what each costs it, and on which side the ports
run out.

P client processes over S source addresses (127.0.0.11, .12, ...) each
repeat connect -> K messages -> close for T seconds against a server:
C{gateway} (C{twistd gateway}, optionally C{--workers}), C{discard} (a
bare accept/read/close loop: what the clients alone can do) or
C{rsyslog} (imtcp -> omkafka, the reference).  Every message carries a
unique id and is read back from Kafka: each must be there exactly once.

Usage::

    .venv/bin/python bench/churn.py [--targets gateway,discard] [--processes 4]
        [--sources 4] [--seconds 10] [--per-connection 1] [--close client]
        [--workers 1] [--profile] [--exhaust] [--sysctl NAME=VALUE ...]

C{--exhaust}: source addresses from 127.0.0.200 (use C{--sources 1}), each
client stops at its first C{EADDRNOTAVAIL}; C{--sysctl} sets kernel settings for that run only and
puts them back at once.  See C{bench/README.md}.
"""

import argparse
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _churn_clients import CLOSE_MODES, clientProcess, discardServer, parseMessage  # noqa: E402
from _churn_system import localPortRange, socketStates, sysctl  # noqa: E402
from _common import cpuTimes, procStatus, rate, table  # noqa: E402
from _connections_gateway import tcpCounters  # noqa: E402

TARGETS = ("gateway", "discard", "rsyslog")


def sources(count, base):
    first, last = base.rsplit(".", 1)
    return [f"{first}.{int(last) + k}" for k in range(count)]


def startClients(args, port, sourceList):
    context = multiprocessing.get_context("fork")
    ready, go, results = [], context.Event(), context.Queue()
    processes = []
    for p in range(args.processes):
        plan = {
            "host": "127.0.0.1",
            "port": port,
            "source": sourceList[p % len(sourceList)],
            "mode": args.close,
            "size": args.size,
            "perConnection": args.per_connection,
            "portRange": args.port_range,
            "stopOnExhaustion": args.exhaust,
            "seconds": args.seconds,
            "threads": args.threads,
            "nice": args.nice,
        }
        event = context.Event()
        proc = context.Process(target=clientProcess, args=(p, plan, event, go, results))
        proc.start()
        ready.append(event)
        processes.append(proc)
    for event in ready:
        event.wait(60)
    return processes, go, results


class Target:
    """
    The server of one run: its port, its processes, how to stop it.
    """

    def __init__(self, kind, args, workdir, bootstrap, topic):
        self.kind, self.args, self.pids, self.log = kind, args, [], ""
        self.stopper = None
        if kind == "gateway":
            from _connections_gateway import Gateway

            options = list(args.option)
            if args.close == "gateway" and not options:
                options = ["idle-timeout=0.05"]
            self.gateway = Gateway(workdir, bootstrap, topic, args.workers, options)
            if args.profile:
                self.profilePath = Path(workdir) / "profile.stats"
                wrapper = str(Path(__file__).with_name("_churn_profile.py"))
                command = self.gateway.process.command
                command[:1] = [sys.executable, wrapper, str(self.profilePath)]
        elif kind == "rsyslog":
            from _churn_rsyslog import Rsyslog
            from _connections_gateway import freePorts

            if not args.rsyslog:
                raise SystemExit("--targets rsyslog needs --rsyslog ROOT (see bench/README.md)")
            self.rsyslog = Rsyslog(args.rsyslog, workdir, bootstrap, topic, freePorts(1))

    def start(self):
        if self.kind == "gateway":
            from connections import waitForKafka

            self.gateway.start(timeout=180)
            self.port, self.pids = self.gateway.port, self.gateway.pids
            waitForKafka(self.gateway)
            time.sleep(1)
        elif self.kind == "rsyslog":
            self.rsyslog.start()
            self.port, self.pids = self.rsyslog.port, [self.rsyslog.pid]
        else:
            from _connections_gateway import freePorts

            context = multiprocessing.get_context("fork")
            self.port, stop = freePorts(1), context.Event()
            procs = []
            for _ in range(self.args.workers):
                ready = context.Event()
                proc = context.Process(target=discardServer, args=(self.port, ready, stop))
                proc.start()
                ready.wait(10)
                procs.append(proc)
            self.pids = [p.pid for p in procs]
            self.stopper = (stop, procs)
        return self

    def stop(self):
        if self.kind == "gateway":
            self.log = self.gateway.log()
            return self.gateway.stop()[0]
        if self.kind == "rsyslog":
            code = self.rsyslog.stop()
            self.log = self.rsyslog.log()
            return code
        stop, procs = self.stopper
        stop.set()
        for p in procs:
            p.join(10)
        return 0


def serverCpu(pids):
    """
    Summed C{(main threads, whole processes)} CPU seconds of C{pids}.
    """
    times = [cpuTimes(pid) for pid in pids]
    return sum(t[0] or 0 for t in times), sum(t[1] or 0 for t in times)


def kafkaConnections(pids, brokerPort):
    from _connections_sockdiag import SockDiag, connectionsTo

    diag = SockDiag()
    try:
        return sum(connectionsTo(diag, pids, brokerPort).values())
    finally:
        diag.close()


def printProfile(path, connections, top):
    """
    The reactor thread's CPU time by function (own time), and the
    inclusive time of the steps of one connection's life, in µs per
    connection.
    """
    import pstats

    stats = pstats.Stats(str(path)).stats
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)
    total = sum(v[2] for v in stats.values())
    print(
        f"\nprofile (reactor thread CPU, cProfile): {total:.2f} s, "
        f"{1e6 * total / connections:.1f} µs per connection"
    )
    out = []
    for (filename, line, name), (_, nc, tt, ct, _) in rows[:top]:
        where = f"{Path(filename).name}:{line}" if line else filename
        out.append(
            (
                f"{name} {where}",
                f"{nc:,}",
                f"{1e6 * tt / connections:.2f}",
                f"{1e6 * ct / connections:.2f}",
            )
        )
    print(table(["function", "calls", "own µs/conn", "incl. µs/conn"], out))


def verify(bootstrap, topic, results, perConnection, seconds):
    """
    Read the topic back: every message sent exactly once?
    """
    from devkafka import consume

    expected = {
        (r["process"], n, i) for r in results for n in r["sent"] for i in range(perConnection)
    }
    uncertain = {
        (r["process"], n, i) for r in results for n in r["uncertain"] for i in range(perConnection)
    }
    found = Counter()
    for record in consume(bootstrap, topic, count=None, timeout=seconds):
        found[parseMessage(bytes(record.value).rstrip(b"\r\n"))] += 1
    return {
        "expected": len(expected),
        "read": sum(found.values()),
        "missing": len(expected - set(found)),
        "duplicates": sum(1 for k, n in found.items() if n > 1),
        "unknown": len(set(found) - expected - uncertain),
        "uncertain": len(uncertain),
        "uncertainFound": len(uncertain & set(found)),
    }


def run(kind, args, bootstrap, brokerPort):
    from throughput import Watermarks, createTopic

    topic = createTopic(bootstrap, args.partitions) if bootstrap else None
    workdir = tempfile.TemporaryDirectory(prefix="bench-churn-")
    target = Target(kind, args, workdir.name, bootstrap, topic)
    sourceList = sources(args.sources, args.source_base)
    r = {"target": kind, "sources": len(sourceList)}
    marks = None
    try:
        target.start()
        r["kafkaBefore"] = kafkaConnections(target.pids, brokerPort) if bootstrap else None
        clients, go, results = startClients(args, target.port, sourceList)
        cpu0 = serverCpu(target.pids)
        tcp0 = tcpCounters()
        with sysctl(dict(args.sysctl)) as previous:
            r["settings"] = {name: value for name, value in args.sysctl}
            r["restored"] = previous
            low, high = args.port_range or localPortRange()
            r["ports"] = high - low + 1
            began = time.monotonic()
            go.set()
            time.sleep(min(args.seconds / 2, 2))
            r["kafkaDuring"] = kafkaConnections(target.pids, brokerPort) if bootstrap else None
            done = [results.get(timeout=args.seconds + 120) for _ in clients]
            ended = time.monotonic()
            r["client"], r["server"], r["bySource"] = socketStates(target.port)
        tcp1 = tcpCounters()
        r["tcp"] = {k: tcp1[k] - tcp0[k] for k in tcp0 if tcp1[k] != tcp0[k]}
        for proc in clients:
            proc.join(10)
        r["seconds"] = max(d["seconds"] for d in done)
        r["connections"] = sum(len(d["sent"]) for d in done)
        r["messages"] = r["connections"] * args.per_connection
        r["errors"] = sum((Counter(d["errors"]) for d in done), Counter())
        r["firstError"] = {}
        for d in done:
            for name, at in d["firstError"].items():
                r["firstError"][name] = min(at, r["firstError"].get(name, at))
        r["clientCpu"] = sum(d["cpu"] for d in done)
        if bootstrap and kind != "discard":
            marks = Watermarks(bootstrap, topic, args.partitions)
            deadline = time.monotonic() + 120
            while marks.total() < r["messages"] and time.monotonic() < deadline:
                time.sleep(0.2)
            r["deliveredAfter"] = time.monotonic() - ended
        cpu1 = serverCpu(target.pids)
        r["cpuMain"], r["cpuAll"] = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        r["wall"] = time.monotonic() - began
        r["rss"] = max(procStatus(pid, "VmHWM") or 0 for pid in target.pids)
        r["kafkaAfter"] = kafkaConnections(target.pids, brokerPort) if bootstrap else None
    finally:
        if marks is not None:
            marks.close()
        r["exit"] = target.stop()
    if bootstrap and kind != "discard":
        r["verify"] = verify(bootstrap, topic, done, args.per_connection, 30)
    problems = [
        line
        for line in target.log.splitlines()
        if any(w in line for w in ("#warn]", "#error]", "#critical]", "Traceback"))
    ]
    r["problems"] = problems
    if args.profile and kind == "gateway":
        printProfile(target.profilePath, r["connections"], args.profile_top)
    workdir.cleanup()
    return r


def report(args, r):
    n = max(r["connections"], 1)
    print(f"\n== {r['target']}: {args.close} closes, {args.per_connection} message(s)/connection")
    print(
        f"connections {r['connections']:,} in {r['seconds']:.1f} s: "
        f"{rate(r['connections'] / r['seconds'])}/s, "
        f"messages {rate(r['messages'] / r['seconds'])}/s"
    )
    print(
        f"server CPU per connection: {1e6 * r['cpuMain'] / n:.1f} µs main thread(s), "
        f"{1e6 * r['cpuAll'] / n:.1f} µs whole process(es) "
        f"({r['cpuAll'] / r['wall']:.2f} cores over {r['wall']:.1f} s); "
        f"clients {1e6 * r['clientCpu'] / n:.1f} µs; peak RSS {r['rss'] / 1024:.1f} MiB"
    )
    states = sorted(set(r["client"]) | set(r["server"]))
    print(
        table(
            ["side", *states],
            [
                ["clients", *(r["client"].get(s, 0) for s in states)],
                ["server", *(r["server"].get(s, 0) for s in states)],
            ],
        )
    )
    print(
        "source ports in use per source address: "
        + ", ".join(f"{a} {c:,}" for a, c in sorted(r["bySource"].items()))
        + f" ({r['ports']:,} ports in the range)"
    )
    exhausted = r["firstError"].get("EADDRNOTAVAIL")
    if exhausted is not None:
        perSource = r["connections"] / r["seconds"] / r["sources"]
        print(
            f"port exhaustion: first EADDRNOTAVAIL after {exhausted:.2f} s at "
            f"{rate(perSource)} connections/s per source address; ports / rate = "
            f"{r['ports'] / perSource:.2f} s"
        )
    if r["settings"]:
        print(
            "kernel settings for this run only: "
            + ", ".join(
                f"{k}={v} (put back to {r['restored'][k]})" for k, v in r["settings"].items()
            )
        )
    errors = ", ".join(
        f"{name} {count:,} (first after {r['firstError'].get(name, 0):.2f} s)"
        for name, count in r["errors"].most_common()
    )
    print(f"connect errors: {errors or 'none'}")
    tcp = ", ".join(f"{k} {v:,}" for k, v in r["tcp"].items())
    print(f"kernel TCP counters (whole machine) during the run: {tcp or 'none changed'}")
    if "verify" in r:
        v = r["verify"]
        print(
            f"Kafka connections: {r['kafkaBefore']} before, {r['kafkaDuring']} during, "
            f"{r['kafkaAfter']} after; all in Kafka {r['deliveredAfter']:.1f} s after the clients"
        )
        print(
            f"read back: {v['read']:,} of {v['expected']:,} expected, {v['missing']} missing, "
            f"{v['duplicates']} duplicated, {v['unknown']} unknown "
            f"({v['uncertain']} sent on a failed connection, {v['uncertainFound']} of them found)"
        )
    print(f"server exit {r['exit']}, {len(r['problems'])} warning/error lines")
    for line in r["problems"][:10]:
        print("  " + line[:200])
    ok = not r["problems"] and (
        "verify" not in r or not (r["verify"]["missing"] or r["verify"]["duplicates"])
    )
    return ok


def parseArgs(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="gateway", help="gateway,discard,rsyslog")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="per client process")
    parser.add_argument(
        "--nice", type=int, default=0, help="client processes' niceness (19: below the server)"
    )
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument(
        "--source-base", help="first source address (127.0.0.11; 127.0.0.200 with --exhaust)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--per-connection", type=int, default=1, help="messages (K)")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--close", choices=CLOSE_MODES, default="client")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--option", action="append", default=[], help="listener NAME=VALUE")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--exhaust", action="store_true")
    parser.add_argument("--port-range", type=lambda s: tuple(map(int, s.split("-"))))
    parser.add_argument("--sysctl", action="append", default=[], type=lambda s: s.split("=", 1))
    parser.add_argument(
        "--profile", action="store_true", help="cProfile (CPU time) on the gateway"
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--own", action="store_true", help="time the gateway's own per-connection code only"
    )
    parser.add_argument("--rsyslog", help="folder with usr/sbin/rsyslogd (dpkg -x)")
    args = parser.parse_args(argv)
    args.targets = args.targets.split(",")
    for t in args.targets:
        if t not in TARGETS:
            parser.error(f"--targets: {t!r} is not one of {', '.join(TARGETS)}")
    if args.source_base is None:
        args.source_base = "127.0.0.200" if args.exhaust else "127.0.0.11"
    if args.close == "gateway" and args.threads == 1:
        args.threads = 32
    return args


def main(argv=None):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    args = parseArgs(argv)
    if args.own:
        from _churn_own import ownCost

        import gateway

        cost = ownCost()
        print(f"{gateway.__file__}: {1e6 * cost:.2f} µs of CPU per connection (own code)")
        return 0
    print(
        f"bench/churn: {args.processes} client processes x {args.threads} thread(s), "
        f"{args.sources} source(s) from {args.source_base}, "
        f"{args.per_connection} message(s) per connection, {args.close} closes, "
        f"{args.seconds:g} s, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    broker, bootstrap, brokerPort = None, None, None
    ok = True
    try:
        if any(t != "discard" for t in args.targets):
            from devkafka import DevKafka

            broker = DevKafka(name="churn", port=None)
            bootstrap = broker.start(timeout=180.0)
            brokerPort = int(bootstrap.rsplit(":", 1)[1])
        for kind in args.targets:
            ok = report(args, run(kind, args, bootstrap, brokerPort)) and ok
    finally:
        if broker is not None:
            broker.stop(wipe=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
