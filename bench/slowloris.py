"""
Slowloris: a normal client's throughput with and without hundreds of
connections trickling bytes of a frame they never complete.

Starts a local Kafka (C{devkafka}, broker name "bench") and, in one session,
interleaved (each run starting with another kind), runs
C{bench/throughput.py}'s gateway run (C clients sending M
lines as fast as they can, timed until Kafka holds them all) three ways:

  (a) C{frame-timeout} off, no tricklers: the reference;
  (b) C{frame-timeout=T} on, no tricklers: what the option itself costs;
  (c) C{frame-timeout=T} on, N tricklers: each trickling connection sends
      one byte every I seconds and never a newline; the gateway closes it
      about T seconds after its first byte and it reconnects at once, so N
      are trickling all along.

Prints each run's seconds, the median and best messages/s, the gateway's CPU
per message (its reactor thread, and the whole process), the ratios of the
medians, (b)/(a) and (c)/(b), and how often the tricklers were closed.  On
a loaded machine wall time varies run to run far more than the effect
measured; CPU per message varies much less.

Run from the repository root:

    .venv/bin/python bench/slowloris.py [--messages 1500000] [--clients 10]
        [--tricklers 300] [--interval 0.5] [--frame-timeout 2] [--repeat 3]
"""

import argparse
import multiprocessing
import os
import selectors
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration

from _common import rate, table  # noqa: E402
from throughput import createTopic, median, runGateway  # noqa: E402


def trickle(port, count, interval, ready, done, results):
    """
    The trickling client process: keep C{count} connections open, each
    sending one C{x} every C{interval} seconds (spread over the interval);
    reconnect every one the gateway closes.
    """
    selector = selectors.DefaultSelector()

    def connect():
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        return sock

    socks = [connect() for _ in range(count)]
    ready.put(count)
    closed = sent = 0
    step = interval / count
    index = 0
    nextSend = time.monotonic()
    while not done.is_set():
        timeout = max(0.0, nextSend - time.monotonic())
        for key, _ in selector.select(min(timeout, 0.05)):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                closed += 1
                socks[socks.index(sock)] = connect()
        now = time.monotonic()
        while nextSend <= now:
            try:
                socks[index].send(b"x")
                sent += 1
            except OSError:
                pass  # closed meanwhile: replaced at the next select
            index = (index + 1) % count
            nextSend += step
    for sock in socks:
        sock.close()
    results.put((closed, sent))


class Tricklers:
    """
    The trickling process of one run, started before the clock.
    """

    def __init__(self, count, interval):
        self.count = count
        self.interval = interval

    def __call__(self, port):
        context = multiprocessing.get_context("spawn")
        ready, results, done = context.Queue(), context.Queue(), context.Event()
        process = context.Process(
            target=trickle,
            args=(port, self.count, self.interval, ready, done, results),
            daemon=True,
        )
        process.start()
        ready.get(timeout=60)
        # Let every trickler start its frame before the clock starts.
        time.sleep(self.interval)

        def finish():
            done.set()
            closed, sent = results.get(timeout=30)
            process.join(10)
            return {"tricklersClosed": closed, "trickleBytes": sent}

        return finish


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=1_500_000)
    parser.add_argument("--size", type=int, default=100, help="payload bytes")
    parser.add_argument("--clients", type=int, default=10, help="normal client connections")
    parser.add_argument("--tricklers", type=int, default=300, help="trickling connections")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between bytes")
    parser.add_argument("--frame-timeout", type=float, default=2.0, help="seconds")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--kafka-version", default="4")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    args.framing = "lines"
    args.client_processes = 1
    args.key = "connection"

    from devkafka import DevKafka

    print(
        f"slowloris: {args.messages:,} lines of {args.size} bytes from {args.clients} "
        f"connections; {args.tricklers} tricklers, 1 byte every {args.interval:g} s each; "
        f"frame-timeout {args.frame_timeout:g} s; {args.repeat} runs each; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    timeout = f"frame-timeout={args.frame_timeout:g}"
    kinds = [
        ("(a) no frame-timeout, no tricklers", "", None),
        (f"(b) {timeout}, no tricklers", timeout, None),
        (f"(c) {timeout}, {args.tricklers} tricklers", timeout, args.tricklers),
    ]
    broker = DevKafka(version=args.kafka_version, name="bench", port=None)
    runs = {label: [] for label, _, _ in kinds}
    try:
        bootstrap = broker.start(timeout=120.0)
        for run in range(1, args.repeat + 1):
            # Each run starts with another kind, so no kind always goes first.
            shift = (run - 1) % len(kinds)
            for label, options, tricklers in kinds[shift:] + kinds[:shift]:
                topic = createTopic(bootstrap, args.partitions)
                beforeGo = Tricklers(tricklers, args.interval) if tricklers else None
                result = runGateway(
                    bootstrap,
                    topic,
                    args.partitions,
                    args,
                    broker.pid,
                    listenOptions=options,
                    beforeGo=beforeGo,
                )
                runs[label].append(result)
                extra = ""
                if tricklers:
                    extra = (
                        f", tricklers closed {result['tricklersClosed']} times, "
                        f"{result['trickleBytes']} bytes trickled"
                    )
                print(
                    f"run {run}: {label}: {result['seconds']:.2f} s, "
                    f"{result['pauses']} back-pressure pauses{extra}",
                    flush=True,
                )
                # The tricklers' own frames, incomplete when they close at
                # the end, are expected.
                problems = [
                    line for line in result["logProblems"] if "): incomplete (" not in line
                ]
                for line in problems[:5]:
                    print("   ", line)
    finally:
        broker.stop(wipe=True)

    rows = []
    for label, results in runs.items():
        seconds = [r["seconds"] for r in results]
        rows.append(
            [
                label,
                " ".join(f"{s:.2f}" for s in seconds),
                rate(args.messages / median(seconds)),
                rate(args.messages / min(seconds)),
                f"{cpuPerMessage(results, args.messages, 'cpuMain'):.0f}",
                f"{cpuPerMessage(results, args.messages, 'cpuAll'):.0f}",
            ]
        )
    print()
    print(
        table(
            [
                "kind",
                "seconds per run",
                "median messages/s",
                "best messages/s",
                "reactor thread CPU ns/msg",
                "process CPU ns/msg",
            ],
            rows,
        )
    )
    a, b, c = (median([r["seconds"] for r in runs[label]]) for label, _, _ in kinds)
    cpuA, cpuB, cpuC = (
        cpuPerMessage(runs[label], args.messages, "cpuMain") for label, _, _ in kinds
    )
    print()
    print(
        f"option cost, (b)/(a): throughput {a / b:.3f}, reactor CPU per message {cpuB / cpuA:.3f}"
    )
    print(
        f"tricklers, (c)/(b): throughput {b / c:.3f} (target: at least 0.90), "
        f"reactor CPU per message {cpuC / cpuB:.3f}"
    )


def cpuPerMessage(results, messages, key):
    """
    The median CPU nanoseconds per message of some runs (C{cpuMain}: the
    reactor thread, which the tricklers' reads and timers load;
    C{cpuAll}: the whole gateway process).
    """
    return median([r[key] for r in results]) / messages * 1e9


if __name__ == "__main__":
    main()
