"""
Concurrent client connections held by the gateway on one port, against a
real Kafka: one gateway process (C{--workers 1}, a C{tcp:} listener), or
C{--workers N} processes sharing the port (C{reuseport:} listeners and the
gateway's own C{--workers N}; the kernel spreads connections across them).

Starts a local Kafka (C{devkafka}, broker name "conns") and the
gateway, then:

  1. client processes (spawned; each holds at most C{--per-process}
     sockets, under its own descriptor limit) open C{--connections}
     connections with non-blocking connects, each bound to one of the
     loopback source addresses 127.0.0.1, 127.0.0.2, ... (at most
     C{--per-source} connections each: one source address has only
     C{ip_local_port_range} ports for one destination). Connects are paced:
     at most C{--ahead} (default: 80% of the listen backlog) in flight or
     waiting in the accept queues of workers still accepting, read from the
     kernel (C{NETLINK_SOCK_DIAG}, as C{ss}) every few ms. A connect with no
     answer in C{--syn-timeout} s, or failing with ECONNREFUSED, ETIMEDOUT
     (...), is retried up to C{--retries} times and counted;
  2. once the gateway holds what the clients hold, every worker's RSS,
     descriptors, C{/status.json} and TCP connections to Kafka are read with
     all connections idle;
  3. every client sends one message on each connection
     (C{client-K-conn-J\\n}) and keeps it open; the benchmark waits until
     the topic's high watermarks reach the connections the gateway holds,
     then consumes the topic and checks that every message sent arrived
     exactly once;
  4. everything is closed (sockets, SIGTERM to the gateway, any worker left
     stopped by its pid, broker stopped), also on error or Ctrl-C.

C{--push} goes past what the workers can hold (each stops accepting a
little under its descriptor limit): the run goes on with what the gateway
holds, and C{--release M} then closes the M oldest connections of each
client process to show the gateway accepting those waiting in its backlog.

C{--allocations} instead measures in process what one connection allocates
(see L{_connections_alloc}).

Run from the repository root:

    .venv/bin/python bench/connections.py [--connections 19000] [--workers 1]
        [--per-process 18000] [--per-source 13000] [--backlog N] [--ahead N]
        [--push] [--release M] [--connect-timeout 180] [--partitions 4]
    .venv/bin/python bench/connections.py --allocations [--protocols 10000]
"""

import argparse
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration

from _connections_clients import Clients, plan  # noqa: E402
from _connections_gateway import (  # noqa: E402
    Gateway,
    gatewayHelp,
    logSummary,
    memory,
    system,
)
from _connections_report import gatewayOpen, report  # noqa: E402
from _connections_sockdiag import (  # noqa: E402
    TCP_SYN_RECV,
    SockDiag,
    connectionsTo,
)

#: Descriptors a worker keeps for itself beyond its clients (the gateway's
#: default reserve, 64, plus its own listener, HTTP port, Kafka, logs...).
WORKER_OVERHEAD = 100


class Pacer(threading.Thread):
    """
    Samples the listeners' accept queues every few ms and lets the clients
    start connects: at most C{ahead} in flight or queued at listeners that
    still accept. A listener whose queue has not shrunk for C{stuck}
    seconds (its worker stopped accepting) no longer counts.

    :ivar samples: C{(time, connections accepted by the gateway)}: the
        clients' connects done less those in the accept queues.
    """

    def __init__(self, port, clients, ahead, stuck=2.0, every=0.005):
        threading.Thread.__init__(self, daemon=True)
        self.port, self.clients, self.ahead = port, clients, ahead
        self.stuck, self.every = stuck, every
        self.samples = []
        self.queued = 0
        self.maxQueued = Counter()
        self.stopping = threading.Event()

    def run(self):
        diag = SockDiag()
        drained = {}
        try:
            last = {}
            while not self.stopping.is_set():
                now = time.monotonic()
                queues = diag.listeners(self.port)
                done = self.clients.connectsDone()
                healthy = 0
                for inode, (queued, _) in queues.items():
                    if queued == 0 or queued < last.get(inode, 0):
                        drained[inode] = now
                    if now - drained.setdefault(inode, now) < self.stuck:
                        healthy += queued
                    self.maxQueued[inode] = max(self.maxQueued[inode], queued)
                last = {inode: q for inode, (q, _) in queues.items()}
                self.queued = sum(last.values())
                self.samples.append((time.time(), done - self.queued))
                if self.clients.allowed is not None:
                    self.clients.allowed.value = done - healthy + self.ahead
                time.sleep(self.every)
        finally:
            diag.close()

    def stop(self):
        self.stopping.set()
        self.join()


def waitForKafka(gateway, timeout=30.0):
    """
    Until every worker's producer has connected to Kafka.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((w.status() or {}).get("kafkaConnections", 0) >= 1 for w in gateway.workers):
            return
        time.sleep(0.2)


def checkpoint(gateway, diag, brokerPort, before=None):
    """
    Every worker's figures now: C{/status.json}, memory, descriptors, its
    accept queue and its TCP connections to Kafka; and the system's. A
    worker that does not answer is counted as holding the descriptors it
    has beyond those it had C{before}.
    """
    queues = diag.listeners(gateway.port)
    kafka = connectionsTo(diag, gateway.pids, brokerPort)
    workers = {}
    for w in gateway.workers:
        asked = time.monotonic()
        snap = w.status()
        answered = time.monotonic() - asked
        listener = snap["listeners"][0] if snap else {}
        workers[w.index] = dict(
            memory(w.pid),
            open=listener.get("connections"),
            accepted=listener.get("accepted"),
            closed=listener.get("closed"),
            refused=listener.get("refused"),
            closedBy=listener.get("closedBy"),
            pausedFor=listener.get("pausedFor"),
            answered=snap is not None,
            statusSeconds=answered,
            kafka=kafka.get(w.pid),
            kafkaStatus=snap.get("kafkaConnections") if snap else None,
            queued=queues.get(w.listener, (None, None))[0],
            backlog=queues.get(w.listener, (None, None))[1],
        )
        fds = workers[w.index]["fds"]
        if snap is None and before is not None and fds is not None:
            workers[w.index]["open"] = fds - before["workers"][w.index]["fds"]
    out = {
        "workers": workers,
        "system": system(),
        "synRecv": diag.count([TCP_SYN_RECV], sport=gateway.port),
    }
    return out


def run(args, bootstrap, topic):
    from throughput import Watermarks

    brokerPort = int(bootstrap.rsplit(":", 1)[1])
    workdir = tempfile.TemporaryDirectory(prefix="bench-connections-")
    options = list(args.option)
    if args.backlog:
        options.append(f"backlog={args.backlog}")
    gateway = Gateway(workdir.name, bootstrap, topic, args.workers, options)
    clients = marks = pacer = None
    diag = SockDiag()
    r = {"topic": topic, "command": gateway.command}
    try:
        gateway.start(timeout=180)
        listeners = gateway.findListeners(diag)
        r["port"] = gateway.port
        r["pids"] = {w.index: w.pid for w in gateway.workers}
        r["nofile"] = {w.index: w.nofile for w in gateway.workers}
        r["backlog"] = sorted({b for _, b in listeners.values()})
        print(
            f"gateway on port {gateway.port}, worker pids "
            f"{' '.join(str(w.pid) for w in gateway.workers)}",
            flush=True,
        )
        ahead = args.ahead if args.ahead is not None else max(1, int(0.8 * min(r["backlog"])))
        r["ahead"] = ahead
        marks = Watermarks(bootstrap, topic, args.partitions)
        if marks.total() != 0:
            raise RuntimeError(f"topic {topic} is not empty")
        waitForKafka(gateway)
        time.sleep(2)
        r["before"] = checkpoint(gateway, diag, brokerPort)

        processes, sources = plan(args.connections, args.per_process, args.per_source)
        sources = args.sources or sources
        clients = Clients(
            gateway.port,
            args.connections,
            processes,
            sources,
            args.window,
            args.retries,
            args.connect_timeout,
            args.syn_timeout,
            ahead > 0,
        )
        pacer = Pacer(gateway.port, clients, ahead)
        began = time.time()
        clients.start()
        pacer.start()
        try:
            done = clients.gather("connected", args.connect_timeout + 120)
            r["clients"] = done
            held = sum(d["held"] for d in done.values())
            # Until the gateway accepts what the clients hold, or stalls.
            last, stalled = None, time.monotonic()
            while pacer.samples[-1][1] < held:
                if pacer.samples[-1][1] != last:
                    last, stalled = pacer.samples[-1][1], time.monotonic()
                elif time.monotonic() - stalled > args.settle:
                    break
                gateway.checkAlive()
                time.sleep(0.05)
        finally:
            pacer.stop()
        samples = pacer.samples
        first = min(d["start"] for d in done.values())
        r["connectSeconds"] = max(d["start"] + d["seconds"] for d in done.values()) - first
        top = max(n for _, n in samples)
        r["acceptSeconds"] = next(t for t, n in samples if n >= top) - first
        r["spawnSeconds"] = first - began
        perSecond = {}
        for t, n in samples:
            perSecond[int(t - first)] = n
        marks_ = [perSecond[k] for k in sorted(perSecond) if k >= 0]
        r["acceptSteps"] = [b - a for a, b in zip([0] + marks_, marks_)]
        r["maxQueued"] = {w.index: pacer.maxQueued.get(w.listener) for w in gateway.workers}
        r["clientHeld"] = held
        time.sleep(2)
        if args.hold:
            r["beforeHold"] = checkpoint(gateway, diag, brokerPort, r["before"])
            time.sleep(args.hold)
        r["idle"] = checkpoint(gateway, diag, brokerPort, r["before"])
        r["idleOpen"] = r["gatewayOpen"] = gatewayOpen(r["idle"])

        if args.release:
            clients.command("release", args.release, state="released")
            released = args.release * len(clients.processes)
            deadline = time.monotonic() + args.settle
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if not sum(q for q, _ in diag.listeners(gateway.port).values()):
                    break
            r["released"] = released
            r["afterRelease"] = checkpoint(gateway, diag, brokerPort, r["before"])
            r["gatewayOpen"] = gatewayOpen(r["afterRelease"])

        # One message on every connection.
        sendStart = time.monotonic()
        sent = clients.command("send", state="sent")
        r["sent"] = {(k, j) for k, d in sent.items() for j in d["sent"]}
        r["sendErrors"] = sum(d["errors"] for d in sent.values())
        r["closedByPeer"] = sum(d["closedByPeer"] for d in sent.values())
        count = 0
        deadline = time.monotonic() + args.timeout
        while count < r["gatewayOpen"] and time.monotonic() < deadline:
            time.sleep(0.5)
            count = marks.total()
        r["deliverSeconds"] = time.monotonic() - sendStart
        time.sleep(1)
        r["watermarks"] = marks.total()
        r["after"] = checkpoint(gateway, diag, brokerPort, r["before"])
    finally:
        if clients is not None:
            clients.stop()
        if marks is not None:
            marks.close()
        diag.close()
        try:
            r["exitCode"], r["leftWorkers"] = gateway.stop()
        finally:
            r["log"] = logSummary(gateway.log())
            workdir.cleanup()
    return r


def verify(bootstrap, topic, r):
    """
    Consume the topic: how many records, how many distinct, how many of
    the messages sent are missing, and values no client sent.
    """
    from devkafka import consume

    records = consume(bootstrap, topic, count=r["watermarks"], timeout=120)
    values = [rec.value for rec in records]
    distinct = set(values)
    sent = {b"client-%d-conn-%d" % kj for kj in r["sent"]}
    return {
        "consumed": len(values),
        "distinct": len(distinct),
        "missing": len(sent - distinct),
        "unknown": len(distinct - sent),
    }


def parseArgs(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--connections", type=int, default=19000)
    add(
        "--workers",
        type=int,
        default=1,
        help="gateway processes on the port (N>1: reuseport: and --workers N)",
    )
    add("--per-process", type=int, default=18000, help="sockets per client process at most")
    add(
        "--per-source",
        type=int,
        default=13000,
        help="connections per loopback source address at most (under half "
        "the ephemeral range: connect() takes ports of one parity "
        "first, the other half stays free for bind() to port 0)",
    )
    add(
        "--sources",
        type=int,
        default=0,
        help="source addresses 127.0.0.1..N (default: from --per-source)",
    )
    add("--window", type=int, default=1000, help="connects in flight per client process at most")
    add("--retries", type=int, default=5)
    add(
        "--ahead",
        type=int,
        default=None,
        help="connects in flight or in accept queues at most "
        "(default 80%% of the listen backlog; 0: no pacing)",
    )
    add(
        "--backlog",
        type=int,
        default=None,
        help="the listener's backlog option (default: the gateway's)",
    )
    add(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a listener option, e.g. keepalive-idle=600 (repeatable)",
    )
    add(
        "--syn-timeout",
        type=float,
        default=5.0,
        help="seconds a connect may wait for an answer before a retry",
    )
    add("--connect-timeout", type=float, default=180.0)
    add(
        "--settle",
        type=float,
        default=10.0,
        help="seconds without progress before giving up on accepts",
    )
    add("--timeout", type=float, default=120.0, help="seconds to wait for the messages in Kafka")
    add(
        "--hold",
        type=float,
        default=0,
        help="seconds to hold every connection idle before measuring",
    )
    add("--partitions", type=int, default=4)
    add("--push", action="store_true", help="past the limit: not every connection is expected")
    add(
        "--release",
        type=int,
        default=0,
        help="then close the M oldest connections of each client process",
    )
    add("--kafka-version", default="4")
    add("--allocations", action="store_true")
    add("--protocols", type=int, default=10000)
    add("--real", type=int, default=4000, help="real accepted connections in --allocations")
    args = parser.parse_args(argv)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if args.per_process > hard - 100:
        parser.error(
            f"--per-process {args.per_process}: over this system's "
            f"descriptor limit ({hard}) less 100"
        )
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    if args.per_source > high - low + 1 - 500:
        parser.error(
            f"--per-source {args.per_source}: one source address has {high - low + 1} ports"
        )
    if args.workers > 1 and "--workers" not in gatewayHelp():
        parser.error("this gateway has no --workers option yet")
    perWorker = args.connections / args.workers
    if perWorker > hard - WORKER_OVERHEAD and not args.push:
        parser.error(
            f"{perWorker:,.0f} connections per worker: over what a "
            f"worker can hold ({hard} descriptors); use more "
            f"--workers, or --push"
        )
    return args


def main(argv=None):
    # SIGTERM runs the cleanups too (gateway, clients, broker).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    args = parseArgs(argv)
    if args.allocations:
        from _connections_alloc import allocations

        return allocations(args.protocols, args.real)

    from throughput import createTopic

    from devkafka import DevKafka, DevKafkaError

    processes, sources = plan(args.connections, args.per_process, args.per_source)
    print(
        f"bench/connections: {args.connections:,} connections, "
        f"{args.workers} gateway worker(s), {processes} client processes, "
        f"{args.sources or sources} source addresses, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    broker = DevKafka(version=args.kafka_version, name="conns", port=None)
    ok = False
    try:
        began = time.monotonic()
        for attempt in range(3):
            try:
                bootstrap = broker.start(timeout=120.0)
                break
            except DevKafkaError as e:
                # Its free ports are chosen before Kafka binds them: with
                # 100,000 connections coming and going, one may be taken.
                broker.stop(wipe=True)
                if attempt == 2:
                    raise
                print(f"Kafka did not start ({str(e).splitlines()[0]}); again", flush=True)
        print(
            f"Kafka {broker.version} on {bootstrap} (started in {time.monotonic() - began:.1f} s)",
            flush=True,
        )
        topic = createTopic(bootstrap, args.partitions)
        r = run(args, bootstrap, topic)
        ok = report(args, r, verify(bootstrap, topic, r))
    finally:
        broker.stop(wipe=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
