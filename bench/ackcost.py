"""
What ack mode costs per record, thread by thread, with no sockets.

The gateway's Kafka client (L{gateway.kafka.confluent.ConfluentClient}, on
the C extension's path) produces N records to a real local Kafka, a read of
64 values at a time for each of ten keys as ten connections would, with the
two headers the router adds, and polls as the producer service does:

  - without acks: C{produceMany};
  - ack=on: C{produceTrackedMany}, each record numbered in its
    C{gateway-seq} header and tracked, every delivery reported and handed
    back by number to its stream's C{settleRange} (a counter here), as
    L{gateway.kafka.producer.KafkaProducerService.confirmDeliveries} sets
    the client up.

Each run ends when librdkafka has no record left and, with acks, every
record is settled.  Per record it prints the CPU of the producing thread
(the gateway's reactor), of librdkafka's threads (the rest of this
process) and of the broker's JVM, and the rate; then the medians of each
mode and what ack mode adds in each place.  The modes alternate, the order
flips every round, and one unrecorded round comes first.  What this leaves
out of ack mode: framing, the ACK writes to the clients, and the clients
reading them (C{bench/throughput.py --acks} has all of it).

Run from the repository root, as the launchers run the gateway:

    LD_PRELOAD=libmimalloc.so.2 .venv/bin/python bench/ackcost.py \\
        [--records 1500000] [--size 100] [--repeat 5]
"""

import argparse
import os
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import cpuTimes, rate, table  # noqa: E402
from throughput import createTopic  # noqa: E402

#: Values per call, as a 64 KiB read of 100-byte lines gives about.
READ = 64
CONNECTIONS = 10
MODES = ("without acks", "ack=on")


class Events:
    """
    The producer service's side of the client: counts failures (there
    should be none).
    """

    def __init__(self):
        self.failed = 0

    def deliveryFailed(self, record, error):
        self.failed += 1

    def clientError(self, error):
        pass


class Stream:
    """
    An ack-mode stream, as far as the client sees it: numbers settled.
    """

    def __init__(self):
        self.settled = 0

    def settleRange(self, first, last):
        self.settled += last - first + 1


def runOnce(bootstrap, brokerPid, acks, records, size):
    """
    One run.

    :return: a dict of seconds and CPU seconds.
    """
    from twisted.logger import Logger

    from gateway.acks import SEQ_HEADER
    from gateway.kafka.config import producerConfig
    from gateway.kafka.confluent import ConfluentClient
    from gateway.router import LISTENER_HEADER, PEER_HEADER

    topic = createTopic(bootstrap, 4)
    config = producerConfig(bootstrap)
    if acks:
        config["delivery.report.only.error"] = False
    events = Events()
    client = ConfluentClient(config, events, Logger())
    if client.producePath != "C extension":
        raise SystemExit(f"ackcost: needs the C extension ({client.producePath})")
    client.produce(topic, b"warm-up", b"k")
    while client.pendingCount():
        client.poll()
        time.sleep(0.01)
    values = [b"%0*d" % (size, i) for i in range(READ)]
    keys = [b"bench/127.0.0.1:%d" % (40000 + c) for c in range(CONNECTIONS)]
    headers = [
        [(LISTENER_HEADER, b"bench"), (PEER_HEADER, b"127.0.0.1:%d" % (40000 + c))]
        for c in range(CONNECTIONS)
    ]
    streams = [Stream() for _ in range(CONNECTIONS)]
    issued = [0] * CONNECTIONS
    produceMany, produceTracked = client.produceMany, client.produceTrackedMany
    _, process0 = cpuTimes(os.getpid())
    _, broker0 = cpuTimes(brokerPid)
    thread0, start = time.thread_time(), time.monotonic()
    sent = calls = 0
    while sent < records:
        c = calls % CONNECTIONS
        calls += 1
        if acks:
            taken = produceTracked(
                topic, values, keys[c], headers[c], SEQ_HEADER, streams[c], issued[c] + 1
            )
            issued[c] += taken
        else:
            taken = produceMany(topic, values, keys[c], headers[c])
        sent += taken
        if taken < READ:
            # The queue is full: serve the reports, let the broker catch up.
            client.poll()
            time.sleep(0.001)
        elif calls % 20 == 0:
            client.poll()
    while client.pendingCount():
        client.poll()
        time.sleep(0.001)
    client.poll()
    thread1, end = time.thread_time(), time.monotonic()
    _, process1 = cpuTimes(os.getpid())
    _, broker1 = cpuTimes(brokerPid)
    settled = sum(s.settled for s in streams)
    client.close()
    if events.failed or (acks and settled != sent):
        raise SystemExit(f"ackcost: {events.failed} failed, {settled} of {sent} settled")
    return {
        "records": sent,
        "seconds": end - start,
        "reactor": thread1 - thread0,
        "librdkafka": (process1 - process0) - (thread1 - thread0),
        "broker": broker1 - broker0,
    }


def ns(run, field):
    return run[field] / run["records"] * 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_500_000, help="records per run")
    parser.add_argument("--size", type=int, default=100, help="value bytes")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each one run per mode")
    parser.add_argument("--kafka-version", default="4")
    args = parser.parse_args(argv)
    if min(args.records, args.size, args.repeat) < 1:
        parser.error("--records, --size and --repeat must be positive")

    from devkafka import DevKafka
    from gateway.allocator import mallocLibrary

    print(
        f"ack mode's cost per record: {args.records:,} records of {args.size} bytes per run, "
        f"{CONNECTIONS} keys, {READ} values per call; malloc: {mallocLibrary()}; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    broker = DevKafka(version=args.kafka_version, name="ackcost", port=None)
    bootstrap = broker.start(timeout=120.0)
    runs = {mode: [] for mode in MODES}
    try:
        for round in range(args.repeat + 1):
            order = MODES if round % 2 else MODES[::-1]
            for mode in order:
                run = runOnce(bootstrap, broker.pid, mode == "ack=on", args.records, args.size)
                if round:
                    runs[mode].append(run)
                label = f"round {round}" if round else "warm-up, not recorded"
                print(
                    f"{label}: {mode}: {rate(run['records'] / run['seconds'])} records/s",
                    flush=True,
                )
    finally:
        broker.stop(wipe=True)

    fields = ("reactor", "librdkafka", "broker")
    rows = [
        [mode, rate(r["records"] / r["seconds"]), *(f"{ns(r, f):.0f}" for f in fields)]
        for mode in MODES
        for r in runs[mode]
    ]
    print()
    print(
        table(
            ["mode", "records/s", "reactor ns", "librdkafka threads ns", "broker JVM ns"],
            rows,
        )
    )
    medians = {mode: {f: median(ns(r, f) for r in runs[mode]) for f in fields} for mode in MODES}
    without, ack = medians["without acks"], medians["ack=on"]
    print()
    print(
        "medians per record, without acks -> ack=on: "
        + "; ".join(
            f"{f} {without[f]:.0f} -> {ack[f]:.0f} ns ({ack[f] - without[f]:+.0f})" for f in fields
        )
        + f"; all three {sum(without.values()):.0f} -> {sum(ack.values()):.0f} ns "
        f"({sum(ack.values()) / sum(without.values()):.2f}x)"
    )


if __name__ == "__main__":
    main()
