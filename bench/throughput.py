"""
End-to-end throughput against a real Kafka broker.

Starts a local Kafka (C{devkafka}, broker name "bench"), then, on
fresh topics of the same shape:

  (a) baseline: a Python loop calling confluent-kafka's C{produce()} with the
      gateway's own producer configuration (C{producerConfig}) and the same
      key and headers per connection, C{poll(0)} every 1000 messages, then
      C{flush()};
  (b) the gateway: C{twistd -n gateway} as a subprocess, started as its
      launchers start it (C{LD_PRELOAD=libmimalloc.so.2}; C{--system-malloc}:
      without), C clients (in a separate client process) sending M messages
      in total as fast as they can; timed from the go signal until the
      topic's high watermarks add up to M (Kafka holds every message).

With C{--acks} each round also runs the gateway with C{ack=on} on its
listener (same clients, which then also read their acknowledgements until
each connection has its last one; first in every other round), so the cost
of ack mode is measured in the same session: messages/s with and without,
each round's pair, and when every client had its final C{ACK}.  C{--warmup}
rounds of unrecorded gateway runs come first (the broker's JVM warms up).

Prints messages/s and MB/s of each, the ratio gateway/baseline, the
gateway's CPU (reactor thread vs whole process), its peak RSS (VmHWM) and
its TCP connections to the broker (counted from /proc).  With C{--profile}
a further gateway run is made under cProfile (C{twistd --profile}), and the
top functions by own time are printed.

Run from the repository root:

    .venv/bin/python bench/throughput.py [--messages 500000] [--size 100]
        [--clients 50] [--framing lines|length-prefixed] [--profile] [--acks]
        [--system-malloc] [--warmup 1]
"""

import argparse
import multiprocessing
import os
import pstats
import re
import selectors
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration

from _common import (  # noqa: E402
    FRAMINGS,
    ROOT,
    cpuTimes,
    frame,
    payloads,
    procStatus,
    rate,
    table,
)

#: The bytes a client hands to one C{send()} call at most.
SEND_CHUNK = 256 * 1024
WATERMARK_INTERVAL = 0.05
#: Gateway log lines worth showing after a run: warnings and errors (the
#: log file's "[namespace#level]" tag) and tracebacks, but not the expected
#: back-pressure warning, which is counted on its own.
PROBLEMS = ("#warn]", "#error]", "#critical]", "Traceback", "Unhandled")
#: The router's back-pressure warning (budget or producer queue), as logged.
PAUSE = "[gateway.router.Router#warn] pausing "


# The client process


def _connectionShares(messages, clients):
    """
    How many messages each connection sends: as even as possible.
    """
    base, extra = divmod(messages, clients)
    return [base + (1 if c < extra else 0) for c in range(clients)]


def clientProcess(
    port, framing, size, shares, firstIndex, ready, go, results, done, acks=False, prefix=b""
):
    """
    One client process: connect every connection, build every connection's
    byte stream in advance, wait for C{go}, then write all of them as fast as
    the sockets take them (non-blocking, round robin through a selector).

    :param shares: the number of messages of each of this process's
        connections.
    :param firstIndex: the global index of this process's first message.
    :param acks: the listener has C{ack=on}: also read every connection's
        acknowledgements, until each has the one of its last message.
    :param prefix: see L{_common.payloads}.
    """
    try:
        buffers = []
        index = firstIndex
        for count in shares:
            buffers.append(frame(framing, payloads(count, size, start=index, prefix=prefix)))
            index += count
        sockets = []
        for _ in shares:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setblocking(False)
            sockets.append(sock)
        ready.put(("ready", os.getpid()))
    except BaseException as e:
        ready.put(("error", f"{type(e).__name__}: {e}"))
        raise
    go.wait()
    start = time.monotonic()
    selector = selectors.DefaultSelector()
    pending = 0
    events = selectors.EVENT_WRITE | (selectors.EVENT_READ if acks else 0)
    # In ack mode: the bytes ending each connection's last acknowledgement,
    # and the end of what each has read.
    lastAcks = {}
    for number, (sock, buffer, count) in enumerate(zip(sockets, buffers, shares)):
        if buffer:
            selector.register(sock, events, [memoryview(buffer), 0, number, b""])
            pending += 1
            if acks:
                lastAcks[number] = frame(framing, [b"ACK %d" % count])
    sent = 0
    end = None
    while pending or lastAcks:
        for key, mask in selector.select():
            state = key.data
            view, offset, number, tail = state
            if mask & selectors.EVENT_READ:
                tail = state[3] = (tail + key.fileobj.recv(65536))[-64:]
                if number in lastAcks and tail.endswith(lastAcks[number]):
                    del lastAcks[number]
                    if offset >= len(view):
                        selector.unregister(key.fileobj)
            if not mask & selectors.EVENT_WRITE or offset >= len(view):
                continue
            try:
                n = key.fileobj.send(view[offset : offset + SEND_CHUNK])
            except BlockingIOError:
                continue
            offset += n
            sent += n
            state[1] = offset
            if offset >= len(view):
                pending -= 1
                if not pending:
                    end = time.monotonic()
                if number in lastAcks:
                    selector.modify(key.fileobj, selectors.EVENT_READ, state)
                else:
                    selector.unregister(key.fileobj)
    acked = time.monotonic() if acks else None
    results.put((start, end or time.monotonic(), sent, acked))
    # Keep the connections open until the parent has seen every message in
    # Kafka, so the gateway is measured with all its clients connected.
    done.wait()
    for sock in sockets:
        sock.close()


class Clients:
    """
    The client processes of one run.
    """

    def __init__(self, port, framing, size, messages, clients, processes, acks=False, prefix=b""):
        context = multiprocessing.get_context("spawn")
        self.ready = context.Queue()
        self.results = context.Queue()
        self.go = context.Event()
        self.done = context.Event()
        shares = _connectionShares(messages, clients)
        processes = max(1, min(processes, clients))
        self.processes = []
        index = 0
        for p in range(processes):
            mine = shares[p::processes]
            process = context.Process(
                target=clientProcess,
                args=(
                    port,
                    framing,
                    size,
                    mine,
                    index,
                    self.ready,
                    self.go,
                    self.results,
                    self.done,
                    acks,
                    prefix,
                ),
                daemon=True,
            )
            index += sum(mine)
            self.processes.append(process)

    def start(self, timeout=120.0):
        for process in self.processes:
            process.start()
        for _ in self.processes:
            state, detail = self.ready.get(timeout=timeout)
            if state != "ready":
                raise RuntimeError(f"client process failed: {detail}")

    def collect(self, timeout=60.0):
        return [self.results.get(timeout=timeout) for _ in self.processes]

    def stop(self):
        self.done.set()
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join()


# Kafka helpers


def createTopic(bootstrap, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)
    return name


class Watermarks:
    """
    Count the records a topic holds from its partitions' high watermarks,
    without consuming them.
    """

    def __init__(self, bootstrap, topic, partitions):
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-watermarks-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]

    def total(self):
        return sum(
            self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            for tp in self.partitions
        )

    def close(self):
        self.consumer.close()


def recordFields(listener, clients):
    """
    The key and headers the gateway gives each connection's records (see
    L{gateway.router.MessageStream}), for a baseline of the same shape.
    """
    from gateway.router import LISTENER_HEADER, PEER_HEADER

    fields = []
    for c in range(clients):
        peer = f"127.0.0.1:{40000 + c}"
        fields.append(
            (
                f"{listener}/{peer}".encode(),
                [(LISTENER_HEADER, listener.encode()), (PEER_HEADER, peer.encode())],
            )
        )
    return fields


# (a) the baseline


def runBaseline(bootstrap, topic, warmupTopic, partitions, args, brokerPid):
    from confluent_kafka import Producer

    from gateway.kafka.producer import producerConfig

    shares = _connectionShares(args.messages, args.clients)
    fields = recordFields(args.framing, args.clients)
    # Blocks of up to 1000 messages of one connection, connections taking
    # turns, as the gateway would see them arrive.
    blocks = []
    index = 0
    remaining = list(shares)
    while any(remaining):
        for c, left in enumerate(remaining):
            if not left:
                continue
            n = min(1000, left)
            key, headers = fields[c]
            blocks.append((key, headers, payloads(n, args.size, start=index)))
            index += n
            remaining[c] -= n

    producer = Producer(producerConfig(bootstrap))
    produce, poll = producer.produce, producer.poll
    # Warm up as the gateway's producer is by the time clients send: broker
    # connection up and idempotent producer id acquired (on another topic, so
    # the benchmark topic's metadata is fetched inside the timing, as it is
    # for the gateway).
    produce(warmupTopic, b"warm-up")
    if producer.flush(60):
        raise RuntimeError("baseline: warm-up message not delivered")
    blocked = 0
    _, brokerCpu0 = cpuTimes(brokerPid)
    cpuAll0 = cpuTimes(os.getpid())[1]
    thread0 = time.thread_time()
    start = time.perf_counter()
    for key, headers, block in blocks:
        for value in block:
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    blocked += 1
                    poll(0.01)
        poll(0)
    loopThread = time.thread_time() - thread0
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    cpuAll = cpuTimes(os.getpid())[1] - cpuAll0
    _, brokerCpu1 = cpuTimes(brokerPid)
    del producer
    if left:
        raise RuntimeError(f"baseline: {left} messages not delivered after flush")
    marks = Watermarks(bootstrap, topic, partitions)
    try:
        held = marks.total()
    finally:
        marks.close()
    if held != args.messages:
        raise RuntimeError(f"baseline: topic holds {held} records, not {args.messages}")
    return {
        "seconds": elapsed,
        "queueFull": blocked,
        "cpuMain": loopThread,
        "cpuAll": cpuAll,
        "cpuBroker": brokerCpu1 - brokerCpu0,
    }


# (b) the gateway


def listenSpec(framing, *options):
    """
    :return: a C{--listen} value for the run's loopback listener, with the
        listener options given (empty ones left out).
    """
    given = ",".join(option for option in options if option)
    return (
        f"{framing}({given})=tcp:0:interface=127.0.0.1"
        if given
        else f"{framing}=tcp:0:interface=127.0.0.1"
    )


def gatewayProcess(bootstrap, topic, listen, systemMalloc=False):
    """
    A gateway (not started yet) with one listener, in a temporary folder,
    started as its launchers start it (mimalloc preloaded) or not.

    :param listen: the C{--listen} value (see L{listenSpec}).
    :param systemMalloc: start it without L{gateway.allocator.PRELOAD}.
    :return: the folder (to clean up after the gateway stopped) and the
        L{GatewayProcess}.
    """
    from gateway.allocator import PRELOAD
    from tests.integration.support.process import GatewayProcess

    workdir = tempfile.TemporaryDirectory(prefix="bench-gateway-")
    args = ["--bootstrap-servers", bootstrap, "--topic", topic, "--listen", listen]
    env = {"LD_PRELOAD": "" if systemMalloc else PRELOAD}
    return workdir, GatewayProcess(workdir.name, args, env=env)


def runGateway(
    bootstrap,
    topic,
    partitions,
    args,
    brokerPid,
    profileFile=None,
    listenOptions="",
    beforeGo=None,
    acks=False,
):
    """
    One timed gateway run.

    :param listenOptions: listener options, as written in the parentheses
        of C{--listen} (e.g. C{frame-timeout=5}).
    :param beforeGo: called with the listener's port once the clients are
        connected, before the clock starts; it returns a callable, called
        after the run, returning figures to add to the result.
    :param acks: run the listener with C{ack=on}, the clients reading their
        acks.
    """
    from tests.integration.support.procfs import socketsTo

    brokerPort = int(bootstrap.rsplit(":", 1)[1])
    workdir, process = gatewayProcess(
        bootstrap,
        topic,
        listenSpec(args.framing, listenOptions, f"key={args.key}", "ack=on" if acks else ""),
        getattr(args, "system_malloc", False),
    )
    if profileFile is not None:
        at = process.command.index("gateway")
        process.command[at:at] = [
            f"--profile={profileFile}",
            "--profiler=cprofile",
            "--savestats",
        ]
    clients = None
    marks = None
    finish = None
    result = {}
    try:
        process.start(listeners=1, timeout=60)
        pid = process.process.pid
        port = next(iter(process.ports.values()))
        clients = Clients(
            port,
            args.framing,
            args.size,
            args.messages,
            args.clients,
            args.client_processes,
            acks,
        )
        clients.start()
        marks = Watermarks(bootstrap, topic, partitions)
        # Connect the watermark consumer, and let the gateway accept every
        # connection, before the clock starts.
        if marks.total() != 0:
            raise RuntimeError(f"topic {topic} is not empty")
        time.sleep(0.5)
        if beforeGo is not None:
            finish = beforeGo(port)
        result["brokerConnectionsIdle"] = socketsTo(pid, brokerPort)
        cpuMain0, cpuAll0 = cpuTimes(pid)
        _, brokerCpu0 = cpuTimes(brokerPid)
        start = time.monotonic()
        clients.go.set()
        held = 0
        deadline = start + args.timeout
        midSample = None
        while held < args.messages:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gateway: Kafka holds {held} of {args.messages} messages "
                    f"after {args.timeout:g} s\n{process.log()[-3000:]}"
                )
            if process.process.poll() is not None:
                raise RuntimeError(f"gateway exited early\n{process.log()[-3000:]}")
            time.sleep(WATERMARK_INTERVAL)
            held = marks.total()
            if midSample is None and held >= args.messages // 2:
                midSample = socketsTo(pid, brokerPort)
        end = time.monotonic()
        cpuMain1, cpuAll1 = cpuTimes(pid)
        _, brokerCpu1 = cpuTimes(brokerPid)
        sends = clients.collect()
        result.update(
            seconds=end - start,
            held=held,
            clientSeconds=max(e for _, e, _, _ in sends) - start,
            ackedSeconds=max(a for _, _, _, a in sends) - start if acks else None,
            bytesSent=sum(n for _, _, n, _ in sends),
            cpuMain=cpuMain1 - cpuMain0,
            cpuAll=cpuAll1 - cpuAll0,
            cpuBroker=brokerCpu1 - brokerCpu0,
            brokerConnectionsMid=midSample,
            brokerConnectionsEnd=socketsTo(pid, brokerPort),
            peakRssKb=procStatus(pid, "VmHWM"),
            rssKb=procStatus(pid, "VmRSS"),
        )
    finally:
        if finish is not None:
            result.update(finish())
        if clients is not None:
            clients.stop()
        if marks is not None:
            marks.close()
        code = process.stop()
        log = process.log()
        workdir.cleanup()
    result["exitCode"] = code
    result["pauses"] = log.count(PAUSE)
    result["malloc"] = set(re.findall(r"; malloc: (\S+)", log))
    result["logProblems"] = [
        line
        for line in log.splitlines()
        if any(word in line for word in PROBLEMS) and PAUSE not in line
    ]
    return result


def printProfile(path, messages, top):
    stats = pstats.Stats(str(path))
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)
    total = stats.total_tt
    rows = []
    for (filename, line, name), (cc, nc, tt, ct, _) in entries[:top]:
        where = filename
        if where.startswith(str(ROOT)):
            where = os.path.relpath(where, ROOT)
        elif "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        label = f"{name}" if filename == "~" else f"{where}:{line}({name})"
        calls = f"{nc:,}" if nc == cc else f"{nc:,}/{cc:,}"
        rows.append(
            [
                label,
                calls,
                f"{tt:.3f}",
                f"{tt / total * 100:.1f}%",
                f"{tt / messages * 1e9:.0f}",
                f"{ct:.3f}",
            ]
        )
    print(
        f"top {top} functions by own time (tottime), total {total:.2f} s "
        f"profiled; ns/msg = tottime / messages"
    )
    print(table(["function", "calls", "tottime s", "share", "ns/msg", "cumtime s"], rows))


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def cpuCell(run, messages):
    """
    CPU of the producing thread (the baseline's loop, the gateway's reactor)
    per message, of its whole process, and of the broker, during the run.
    """
    return (
        f"{run['cpuMain'] / messages * 1e9:,.0f}",
        f"{run['cpuAll']:.2f}",
        f"{run['cpuBroker']:.2f}",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=500_000, help="messages in total (M)")
    parser.add_argument("--size", type=int, default=100, help="payload bytes")
    parser.add_argument("--clients", type=int, default=50, help="client TCP connections (C)")
    parser.add_argument(
        "--client-processes", type=int, default=1, help="processes the connections are shared by"
    )
    parser.add_argument("--framing", choices=FRAMINGS, default="lines")
    parser.add_argument(
        "--key",
        choices=("connection", "peer-host", "none"),
        default="connection",
        help="the listener's key strategy (key=none: librdkafka's sticky partitioner)",
    )
    parser.add_argument(
        "--partitions", type=int, default=4, help="partitions of each benchmark topic"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="baseline and gateway runs, alternating"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="rounds of unrecorded gateway runs first (with --acks, ack=on too): "
        "the broker's JVM warms up",
    )
    parser.add_argument("--kafka-version", default="4")
    parser.add_argument(
        "--broker-name",
        default="bench",
        help="the devkafka broker's name (its own folder and ports): give "
        "concurrent benchmarks different names",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds a gateway run may take"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the gateway once under cProfile (with --acks: with ack=on) "
        "and print where its time goes",
    )
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="start the gateway without the mimalloc its launchers preload "
        "(docs/architecture.md, 'The allocator')",
    )
    parser.add_argument(
        "--acks",
        action="store_true",
        help="each round also runs the gateway with ack=on (clients read their acks)",
    )
    parser.add_argument(
        "--keep-broker-data",
        action="store_true",
        help="do not wipe the 'bench' broker's data on stop",
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.clients, args.size, args.repeat) < 1:
        parser.error("--messages, --clients, --size and --repeat must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")

    from devkafka import DevKafka
    from tests.integration.support.process import CLEAN_EXIT

    payloadMb = args.messages * args.size / 1e6
    print(
        f"end-to-end throughput: {args.messages:,} messages of {args.size} bytes "
        f"({payloadMb:.1f} MB of payload), {args.clients} connections in "
        f"{args.client_processes} client process(es), framing {args.framing}, key={args.key}, "
        f"{args.partitions} partitions, {args.repeat} runs each; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    broker = DevKafka(version=args.kafka_version, name=args.broker_name, port=None)
    try:
        began = time.monotonic()
        bootstrap = broker.start(timeout=120.0)
        brokerPid = broker.pid
        print(
            f"Kafka {broker.version} on {bootstrap} (started in {time.monotonic() - began:.1f} s)",
            flush=True,
        )

        def gatewayRun(run, acks):
            topic = createTopic(bootstrap, args.partitions)
            r = runGateway(bootstrap, topic, args.partitions, args, brokerPid, acks=acks)
            if run is None:
                print(
                    f"warm-up, not recorded: {'ack=on' if acks else 'gateway'} "
                    f"{r['seconds']:.2f} s",
                    flush=True,
                )
            elif acks:
                ackGateways.append(r)
                print(
                    f"run {run}: ack=on   {r['seconds']:.2f} s (every client had its last "
                    f"ACK after {r['ackedSeconds']:.2f} s; {r['pauses']} back-pressure pauses)",
                    flush=True,
                )
            else:
                gateways.append(r)
                print(
                    f"run {run}: gateway  {r['seconds']:.2f} s ({r['pauses']} back-pressure "
                    "pauses)",
                    flush=True,
                )

        baselines, gateways, ackGateways = [], [], []
        for _ in range(args.warmup):
            for acks in (False, True) if args.acks else (False,):
                gatewayRun(None, acks)
        for run in range(1, args.repeat + 1):
            if not args.skip_baseline:
                topic = createTopic(bootstrap, args.partitions)
                warmup = createTopic(bootstrap, 1)
                b = runBaseline(bootstrap, topic, warmup, args.partitions, args, brokerPid)
                baselines.append(b)
                print(
                    f"run {run}: baseline {b['seconds']:.2f} s "
                    f"(queue full {b['queueFull']} times)",
                    flush=True,
                )
            # With acks, every other round runs ack=on first, so that neither
            # mode always meets the broker the other one warmed.
            order = (False, True) if args.acks else (False,)
            for acks in order if run % 2 else order[::-1]:
                gatewayRun(run, acks)

        rows = []
        labels = [("baseline: produce() loop", r) for r in baselines]
        labels += [(f"gateway ({args.framing}, {args.clients} conns)", r) for r in gateways]
        labels += [(f"gateway ack=on ({args.framing})", r) for r in ackGateways]
        for label, r in labels:
            rows.append(
                [
                    label,
                    f"{r['seconds']:.2f}",
                    rate(args.messages / r["seconds"]),
                    f"{payloadMb / r['seconds']:.1f}",
                    *cpuCell(r, args.messages),
                ]
            )
        print()
        print(
            table(
                [
                    "run",
                    "seconds",
                    "messages/s",
                    "MB/s",
                    "producing thread CPU ns/msg",
                    "process CPU s",
                    "broker CPU s",
                ],
                rows,
            )
        )
        bestGateway = min(r["seconds"] for r in gateways)
        medianGateway = median([r["seconds"] for r in gateways])
        print()
        print(
            f"gateway best {rate(args.messages / bestGateway)} messages/s "
            f"({payloadMb / bestGateway:.1f} MB/s), median "
            f"{rate(args.messages / medianGateway)} messages/s"
        )
        if baselines:
            bestBaseline = min(r["seconds"] for r in baselines)
            medianBaseline = median([r["seconds"] for r in baselines])
            print(
                f"baseline best {rate(args.messages / bestBaseline)} messages/s "
                f"({payloadMb / bestBaseline:.1f} MB/s), median "
                f"{rate(args.messages / medianBaseline)} messages/s"
            )
            cpuRatio = median([r["cpuMain"] for r in gateways]) / median(
                [r["cpuMain"] for r in baselines]
            )
            print(
                f"ratio gateway/baseline: throughput best {bestBaseline / bestGateway:.2f}, "
                f"median {medianBaseline / medianGateway:.2f}; producing-thread "
                f"CPU per message {cpuRatio:.2f}"
            )
        if ackGateways:
            bestAck = min(r["seconds"] for r in ackGateways)
            medianAck = median([r["seconds"] for r in ackGateways])
            cpuAck = median([r["cpuMain"] for r in ackGateways]) / median(
                [r["cpuMain"] for r in gateways]
            )
            paired = [g["seconds"] / a["seconds"] for g, a in zip(gateways, ackGateways)]
            print(
                f"ack=on best {rate(args.messages / bestAck)} messages/s, median "
                f"{rate(args.messages / medianAck)}; throughput ack=on/off: best "
                f"{bestGateway / bestAck:.2f}, median {medianGateway / medianAck:.2f}, "
                "each round's pair "
                + ", ".join(f"{r:.2f}" for r in paired)
                + f" (median {median(paired):.2f}); "
                f"reactor CPU per message ack=on/off {cpuAck:.2f}; last ACK received "
                + ", ".join(f"{r['ackedSeconds']:.2f}" for r in ackGateways)
                + " s after the start"
            )
        last = gateways[-1]
        print(
            f"gateway (last run): clients had written every byte after "
            f"{last['clientSeconds']:.2f} s; Kafka held all {last['held']:,} "
            f"after {last['seconds']:.2f} s"
        )
        print(
            f"gateway (last run) CPU: reactor thread {last['cpuMain']:.2f} s "
            f"({last['cpuMain'] / last['seconds'] * 100:.0f}% of a core), "
            f"whole process {last['cpuAll']:.2f} s "
            f"({last['cpuAll'] / last['seconds'] * 100:.0f}%); broker "
            f"{last['cpuBroker']:.2f} s; {os.cpu_count()} CPUs x "
            f"{last['seconds']:.2f} s = {os.cpu_count() * last['seconds']:.2f} s"
        )
        print(
            "gateway malloc (its start line): "
            + ", ".join(sorted(set().union(*(r["malloc"] for r in gateways + ackGateways))))
        )
        print(
            "gateway peak RSS (VmHWM): "
            + ", ".join(f"{r['peakRssKb'] / 1024:.1f}" for r in gateways)
            + " MiB"
        )
        print(
            "gateway TCP connections to the broker port (before sending, "
            "mid-run, at the end): "
            + "; ".join(
                f"{r['brokerConnectionsIdle']}, {r['brokerConnectionsMid']}, "
                f"{r['brokerConnectionsEnd']}"
                for r in gateways
            )
            + f" (with {args.clients} client connections)"
        )
        problems = [line for r in gateways + ackGateways for line in r["logProblems"]]
        exits = {
            "clean" if r["exitCode"] in CLEAN_EXIT else str(r["exitCode"])
            for r in gateways + ackGateways
        }
        print(
            f"gateway logs: {sum(r['pauses'] for r in gateways)} back-pressure "
            f"pauses, {len(problems)} problem lines; exits: {', '.join(sorted(exits))}"
        )
        for line in problems[:10]:
            print(f"    {line}")
        if args.profile:
            with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
                profileFile = Path(tmp) / "gateway.pstats"
                topic = createTopic(bootstrap, args.partitions)
                prof = runGateway(
                    bootstrap, topic, args.partitions, args, brokerPid, profileFile, args.acks
                )
                print()
                print(
                    f"under cProfile (slower, not comparable): "
                    f"{prof['seconds']:.2f} s, "
                    f"{rate(args.messages / prof['seconds'])} messages/s, "
                    f"reactor thread CPU {prof['cpuMain']:.2f} s"
                )
                printProfile(profileFile, args.messages, args.profile_top)
    finally:
        broker.stop(wipe=not args.keep_broker_data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
