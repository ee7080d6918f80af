"""
Slowloris: a normal client's throughput with and without hundreds of
connections trickling bytes of a frame they never complete.

Starts a local Kafka (C{devkafka}, broker name "slowloris") and, in one session,
runs rounds of C{bench/throughput.py}'s gateway run (C clients sending M
lines as fast as they can, timed until Kafka holds them all) three ways,
each round starting with another kind:

  (a) C{frame-timeout} off, no tricklers: the reference;
  (b) C{frame-timeout=T} on, no tricklers: what the option itself costs;
  (c) C{frame-timeout=T} on, N tricklers: each trickling connection sends
      one byte every I seconds and never a newline; the gateway closes it
      T to 1.25 T seconds after its first byte and it reconnects at once.
      Their first bytes are spread over T, and the clock starts once all
      trickle, so about N / T are closed and re-accepted every second.

Every kind waits those T seconds between connecting its clients and
starting the clock (L{settle}): with the wait in (c) only, (c) ran 5-25 %
faster than (b) in 7 rounds of 8, its gateway having had longer to settle
after start-up.

The ratios are taken within each round (runs next to each other in time,
so under the same load): (c)/(b) throughput, and the gateway's reactor CPU
per message.  A further phase splits the cost: one gateway with no normal
client, its reactor thread's CPU per second idle and then with the
tricklers, and the trickling process's own CPU (one process, non-blocking
sockets on epoll, waking at most every L{TICK} seconds), which competes for
the same cores as the load generator, the gateway and the broker.

Run from the repository root:

    .venv/bin/python bench/slowloris.py [--messages 1500000] [--clients 10]
        [--tricklers 300] [--interval 3] [--frame-timeout 10] [--repeat 3]
"""

import argparse
import errno
import heapq
import multiprocessing
import os
import selectors
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration

from _common import cpuTimes, rate, table  # noqa: E402
from throughput import createTopic, gatewayProcess, listenSpec, median, runGateway  # noqa: E402

#: The trickling process wakes at most this often: its sends are batched.
TICK = 0.02


def trickle(port, count, interval, spread, ready, mark, done, results):
    """
    The trickling process: keep C{count} connections open, each sending one
    C{x} every C{interval} seconds, the first bytes spread over C{spread}
    seconds; reconnect every one the gateway closes (its first byte at
    once).  Non-blocking connects and sends on one epoll selector.  The
    closes and bytes are counted from C{mark} (the clock's start) on.
    """
    selector = selectors.DefaultSelector()
    address = ("127.0.0.1", port)
    due = []  # (time of the next byte, sequence, socket)
    sequence = 0

    def connect(at):
        nonlocal sequence
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, os.strerror(code))
        selector.register(sock, selectors.EVENT_READ)
        sequence += 1
        heapq.heappush(due, (at, sequence, sock))

    start = time.monotonic()
    for index in range(count):
        connect(start + spread * index / count)
    ready.put(count)
    closed = sent = 0
    marked = None
    while not done.is_set():
        if marked is None and mark.is_set():
            marked = (closed, sent)
        wait = min(max(due[0][0] - time.monotonic(), TICK), 0.1) if due else 0.1
        for key, _ in selector.select(wait):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                closed += 1
                connect(time.monotonic())
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, _, sock = heapq.heappop(due)
            if sock.fileno() < 0:
                continue  # closed and replaced
            try:
                sock.send(b"x")
                sent += 1
                at += interval
            except (BlockingIOError, OSError):
                at = now + TICK  # still connecting, or closed: seen by select
            sequence += 1
            heapq.heappush(due, (at, sequence, sock))
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    results.put((closed - marked[0], sent - marked[1]) if marked else (closed, sent))


def warmUp(timeout):
    """
    Seconds every run waits before its clock starts: the tricklers' first
    bytes are spread over the frame timeout, and all then trickle.
    """
    return timeout + 2 * TICK


def settle(timeout):
    """
    The C{beforeGo} of a run without tricklers: the same wait before the
    clock as a run with them.
    """

    def beforeGo(port):
        time.sleep(warmUp(timeout))
        return lambda: {}

    return beforeGo


class Tricklers:
    """
    The trickling process of one run, started before the clock: called with
    the listener's port, it returns the callable that stops it and returns
    its figures (closes seen, bytes sent, its CPU while the clock ran).
    """

    def __init__(self, count, interval, spread):
        self.count = count
        self.interval = interval
        self.spread = spread

    def __call__(self, port):
        context = multiprocessing.get_context("spawn")
        ready, results = context.Queue(), context.Queue()
        mark, done = context.Event(), context.Event()
        process = context.Process(
            target=trickle,
            args=(port, self.count, self.interval, self.spread, ready, mark, done, results),
            daemon=True,
        )
        process.start()
        ready.get(timeout=60)
        # Every connection trickles before the clock starts.
        time.sleep(warmUp(self.spread))
        mark.set()
        cpu0, wall0 = cpuTimes(process.pid)[1], time.monotonic()

        def finish():
            cpu, wall = cpuTimes(process.pid)[1] - cpu0, time.monotonic() - wall0
            done.set()
            closed, sent = results.get(timeout=30)
            process.join(10)
            return {
                "tricklersClosed": closed,
                "trickleBytes": sent,
                "tricklerCpuShare": cpu / wall,
            }

        return finish


def idleCost(bootstrap, topic, args, seconds):
    """
    One gateway with C{frame-timeout} and no normal client: its reactor
    thread's and whole process's CPU per second idle, then with the
    tricklers, and the trickling process's CPU share.
    """
    workdir, process = gatewayProcess(
        bootstrap, topic, listenSpec(args.framing, f"frame-timeout={args.frame_timeout:g}")
    )

    def window():
        before, at = cpuTimes(pid), time.monotonic()
        time.sleep(seconds)
        after, wall = cpuTimes(pid), time.monotonic() - at
        return [(after[i] - before[i]) / wall for i in (0, 1)]

    finish = None
    try:
        process.start(listeners=1, timeout=60)
        pid = process.process.pid
        time.sleep(2)  # the producer's start-up
        idle = window()
        finish = Tricklers(args.tricklers, args.interval, args.frame_timeout)(
            next(iter(process.ports.values()))
        )
        busy = window()
    finally:
        figures = finish() if finish is not None else {}
        process.stop()
        log = process.log()
        workdir.cleanup()
    return {
        "idle": idle,
        "tricklers": busy,
        **figures,
        "seconds": seconds,
        "frameTimeoutLines": log.count("(frame-timeout, "),
    }


def main(argv=None):
    """
    Run one session; print it, and return its runs by kind and the idle
    phase's figures.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=1_500_000)
    parser.add_argument("--size", type=int, default=100, help="payload bytes")
    parser.add_argument("--clients", type=int, default=10, help="normal client connections")
    parser.add_argument("--tricklers", type=int, default=300, help="trickling connections")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between bytes")
    parser.add_argument("--frame-timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="0: no idle phase")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--kafka-version", default="4")
    parser.add_argument("--broker-name", default="slowloris", help="devkafka's --name")
    parser.add_argument("--run-root", help="devkafka's run folders (default: its home)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    args.framing = "lines"
    args.client_processes = 1
    args.key = "connection"

    from devkafka import DevKafka

    print(
        f"slowloris: {args.messages:,} lines of {args.size} bytes from {args.clients} "
        f"connections; {args.tricklers} tricklers, 1 byte every {args.interval:g} s each; "
        f"frame-timeout {args.frame_timeout:g} s; {args.repeat} rounds; "
        f"{os.cpu_count()} CPUs; load average {loadAverage()}",
        flush=True,
    )
    timeout = f"frame-timeout={args.frame_timeout:g}"
    kinds = [
        ("(a) no frame-timeout, no tricklers", "", None),
        (f"(b) {timeout}, no tricklers", timeout, None),
        (f"(c) {timeout}, {args.tricklers} tricklers", timeout, args.tricklers),
    ]
    broker = DevKafka(
        version=args.kafka_version, name=args.broker_name, port=None, runRoot=args.run_root
    )
    runs = {label: [] for label, _, _ in kinds}
    idle = None
    try:
        bootstrap = broker.start(timeout=120.0)
        for run in range(1, args.repeat + 1):
            shift = (run - 1) % len(kinds)
            for label, options, tricklers in kinds[shift:] + kinds[:shift]:
                topic = createTopic(bootstrap, args.partitions)
                beforeGo = (
                    Tricklers(tricklers, args.interval, args.frame_timeout)
                    if tricklers
                    else settle(args.frame_timeout)
                )
                result = runGateway(
                    bootstrap,
                    topic,
                    args.partitions,
                    args,
                    broker.pid,
                    listenOptions=options,
                    beforeGo=beforeGo,
                )
                result["load"] = os.getloadavg()[0]
                runs[label].append(result)
                extra = ""
                if tricklers:
                    extra = (
                        f"; tricklers closed {result['tricklersClosed']} times, "
                        f"{result['trickleBytes']} bytes trickled, the trickling process "
                        f"{result['tricklerCpuShare']:.1%} of a core"
                    )
                print(
                    f"round {run}: {label}: {result['seconds']:.2f} s, "
                    f"{result['pauses']} back-pressure pauses, load {result['load']:.1f}{extra}",
                    flush=True,
                )
                # The tricklers' own frames, incomplete when they close, and
                # the budget's pauses, counted above, are expected.
                problems = [
                    line
                    for line in result["logProblems"]
                    if "): incomplete (" not in line and "frame-timeout" not in line
                ]
                for line in problems[:5]:
                    print("   ", line)
        if args.idle_seconds:
            idle = idleCost(
                bootstrap, createTopic(bootstrap, args.partitions), args, args.idle_seconds
            )
    finally:
        broker.stop(wipe=True)
    report(args, kinds, runs, idle)
    return runs, idle


def report(args, kinds, runs, idle):
    """
    Print the session's figures: per kind, per round, and the idle phase's.
    """
    rows = []
    for label, results in runs.items():
        seconds = [r["seconds"] for r in results]
        rows.append(
            [
                label,
                " ".join(f"{s:.2f}" for s in seconds),
                rate(args.messages / median(seconds)),
                f"{perMessage(results, args.messages, 'cpuMain'):.0f}",
                f"{perMessage(results, args.messages, 'cpuAll'):.0f}",
            ]
        )
    print()
    headers = [
        "kind",
        "seconds per round",
        "median messages/s",
        "reactor ns/msg",
        "process ns/msg",
    ]
    print(table(headers, rows))
    a, b, c = (runs[label] for label, _, _ in kinds)
    rounds = []
    for n, (ra, rb, rc) in enumerate(zip(a, b, c), 1):
        rounds.append(
            [
                str(n),
                f"{ra['seconds'] / rb['seconds']:.3f}",
                f"{rb['seconds'] / rc['seconds']:.3f}",
                f"{rc['cpuMain'] / rb['cpuMain']:.3f}",
                f"{rc['cpuAll'] / rb['cpuAll']:.3f}",
                f"{rc['tricklerCpuShare']:.1%}",
                str(rc["tricklersClosed"]),
                f"{max(r['load'] for r in (ra, rb, rc)):.1f}",
            ]
        )
    print()
    headers = [
        "round",
        "(b)/(a) msg/s",
        "(c)/(b) msg/s",
        "(c)/(b) reactor CPU/msg",
        "(c)/(b) process CPU/msg",
        "trickling process CPU",
        "closes in (c)",
        "load",
    ]
    print(table(headers, rounds))
    throughput = [rb["seconds"] / rc["seconds"] for rb, rc in zip(b, c)]
    cpu = [rc["cpuMain"] / rb["cpuMain"] for rb, rc in zip(b, c)]
    print()
    print(
        f"tricklers, (c)/(b) within each round: throughput median {median(throughput):.3f} "
        f"(range {min(throughput):.3f}-{max(throughput):.3f}; target: at least 0.90), "
        f"reactor CPU per message median {median(cpu):.3f} "
        f"(range {min(cpu):.3f}-{max(cpu):.3f})"
    )
    if idle is None:
        return
    extra = idle["tricklers"][0] - idle["idle"][0]
    loaded = median([r["cpuMain"] / r["seconds"] for r in b])
    print(
        f"no normal client, {idle['seconds']:g} s windows: gateway reactor thread "
        f"{idle['idle'][0]:.1%} of a core idle, {idle['tricklers'][0]:.1%} with the "
        f"tricklers (process {idle['idle'][1]:.1%} / {idle['tricklers'][1]:.1%}); "
        f"{idle['tricklersClosed'] / idle['seconds']:.0f} closes and "
        f"{idle['trickleBytes'] / idle['seconds']:.0f} bytes a second; "
        f"the trickling process {idle['tricklerCpuShare']:.1%} of a core"
    )
    print(
        f"the tricklers' reactor CPU, {extra:.1%} of a core, is {extra / loaded:.1%} of the "
        f"reactor's CPU in (b) ({loaded:.0%} of a core)"
    )


def perMessage(results, messages, key):
    """
    The median CPU nanoseconds per message of some runs (C{cpuMain}: the
    reactor thread; C{cpuAll}: the whole gateway process).
    """
    return median([r[key] for r in results]) / messages * 1e9


def loadAverage():
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
