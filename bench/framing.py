"""
Framing micro-benchmark (no Kafka, no sockets).

Feeds one pre-built byte stream, cut into reads of several sizes, to each
framing protocol connected to a L{StringTransport}, with a sink whose C{send}
does nothing, and compares the gateway's protocols with the plain Twisted
receivers doing the same job, in the same run:

    lines:            gateway LinesProtocol   vs LineReceiver, LineOnlyReceiver
    length-prefixed:  gateway LengthPrefixedProtocol  vs Int32StringReceiver

plus a "floor" row per framing: a hand-written loop doing only the C-level
split and one Python call per message, i.e. what no protocol can beat.

A second part ("hot path", skip with C{--no-hot-path}) still needs no broker:
it puts a real confluent-kafka producer behind the framing, pointed at an
address where nothing listens, with a queue big enough for every message, so
C{produce()} only enqueues.  It splits one message's cost on the reactor
thread into framing, librdkafka's C{produce()} (with the key only, and with
the key and the two provenance headers the router adds), and the gateway's
own Python around it (protocol -> L{Router} stream -> L{KafkaProducerService}).

Every candidate is first checked to deliver exactly the messages sent; then
each is timed with C{time.perf_counter}, best of C{--repeat} runs, garbage
collection off while timing.

Run from the repository root:

    .venv/bin/python bench/framing.py [--messages 200000] [--size 100] [--repeat 5]
"""

import argparse
import gc
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import frame, payloads, rate, table  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.protocols.basic import (  # noqa: E402
    Int32StringReceiver,
    LineOnlyReceiver,
    LineReceiver,
)
from zope.interface import implementer  # noqa: E402

from gateway.framing.options import ACK  # noqa: E402
from gateway.interfaces import IMessageSink, IMessageStream  # noqa: E402
from gateway.registry import loadFramings  # noqa: E402
from gateway.service import DEFAULT_MAX_MESSAGE_SIZE  # noqa: E402
from gateway.testing import connectFraming  # noqa: E402


def discard(payload):
    """
    The no-op C{send}: a Python call per message, like the real sink's.
    """


# The sink handed to the gateway's protocols


@implementer(IMessageStream)
class _Stream:
    def __init__(self, send):
        self.send = send

    def close(self):
        pass


@implementer(IMessageSink)
class CallbackSink:
    """
    Every stream's C{send} is C{onMessage} itself (no wrapper call).
    """

    def __init__(self, onMessage):
        self.onMessage = onMessage

    def openStream(self, listener, peer, producer):
        return _Stream(self.onMessage)


# Plain Twisted receivers, with the gateway's limit


class PlainLineReceiver(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self, onMessage):
        self.lineReceived = onMessage


class PlainLineOnlyReceiver(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self, onMessage):
        self.lineReceived = onMessage


class PlainInt32StringReceiver(Int32StringReceiver):
    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self, onMessage):
        self.stringReceived = onMessage


def plain(cls):
    def build(onMessage):
        protocol = cls(onMessage)
        protocol.makeConnection(StringTransport())
        return protocol.dataReceived

    return build


def gatewayFraming(name):
    plugin = loadFramings()[name]

    def build(onMessage):
        protocol, _, _ = connectFraming(
            plugin,
            sink=CallbackSink(onMessage),
            maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        )
        return protocol.dataReceived

    return build


# Floors: the least work any protocol must do


def linesFloor(onMessage):
    state = [b""]

    def dataReceived(data):
        lines = (state[0] + data).split(b"\n")
        state[0] = lines.pop()
        for line in lines:
            onMessage(line)

    return dataReceived


def lengthPrefixedFloor(onMessage):
    state = [b""]
    unpack = struct.Struct(">I").unpack_from

    def dataReceived(data):
        buffer = state[0] + data if state[0] else data
        offset, end = 0, len(buffer)
        while end - offset >= 4:
            (length,) = unpack(buffer, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            onMessage(buffer[offset + 4 : stop])
            offset = stop
        state[0] = buffer[offset:]

    return dataReceived


#: framing -> [(label, builder, isReference)]; the reference row is the plain
#: receiver every other row is compared with.
CANDIDATES = {
    "lines": [
        ("twisted LineReceiver", plain(PlainLineReceiver), True),
        ("twisted LineOnlyReceiver", plain(PlainLineOnlyReceiver), False),
        ("gateway LinesProtocol", gatewayFraming("lines"), False),
        ("floor: bytes.split loop", linesFloor, False),
    ],
    "length-prefixed": [
        ("twisted Int32StringReceiver", plain(PlainInt32StringReceiver), True),
        ("gateway LengthPrefixedProtocol", gatewayFraming("length-prefixed"), False),
        ("floor: unpack_from loop", lengthPrefixedFloor, False),
    ],
}


def chunkings(stream, frameSize, messages):
    """
    The ways of cutting C{stream} into reads, as C{(label, [bytes...])}.
    """

    def fixed(size):
        return [stream[i : i + size] for i in range(0, len(stream), size)]

    # Cut in the middle of every frame: every message spans two reads and
    # every read completes exactly one message (the per-read cost, at worst).
    half = frameSize // 2
    cuts = [0] + [i * frameSize + half for i in range(messages)] + [len(stream)]
    split = [stream[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
    return [
        ("64 KiB reads", fixed(64 * 1024)),
        ("1 KiB reads", fixed(1024)),
        ("every message split in 2 reads", split),
    ]


def feed(dataReceived, chunks):
    for chunk in chunks:
        dataReceived(chunk)


def check(label, build, chunks, expected):
    got = []
    feed(build(got.append), chunks)
    if got != expected:
        raise AssertionError(
            f"{label}: delivered {len(got)} messages, expected {len(expected)}"
            + ("" if len(got) != len(expected) else " (contents differ)")
        )


def timeOnce(build, chunks):
    dataReceived = build(discard)
    gcWasEnabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for chunk in chunks:
            dataReceived(chunk)
        return time.perf_counter() - start
    finally:
        if gcWasEnabled:
            gc.enable()


def best(build, chunks, repeat):
    return min(timeOnce(build, chunks) for _ in range(repeat))


# The hot path without a broker: framing + router + producer service +
# librdkafka's produce() (enqueue only)

#: Where nothing listens (port 1), and a queue that takes every message.
ENQUEUE_ONLY = {
    "queue.buffering.max.messages": 10_000_000,
    "queue.buffering.max.kbytes": 4_000_000,
    "log_level": 0,
}


def _enqueueOnlyProducer():
    from confluent_kafka import Producer

    from gateway.kafka.producer import producerConfig

    return Producer(producerConfig("127.0.0.1:1", ENQUEUE_ONLY))


class StubProducer:
    """
    Stands in for librdkafka: C{produce()} is a Python no-op, so the gateway
    path's own Python (message stream, service) can be timed apart.
    """

    def produce(self, topic, value, key=None, headers=None):
        pass

    def poll(self, timeout):
        return 0

    def purge(self):
        pass

    def __len__(self):
        return 0


#: The produce path of each mode of the gateway path, as its client said.
PATHS = {}


class ServiceProducer:
    """
    Lets the producer service create its own client as in the gateway
    (confluent-kafka's own C{Producer}, so the C extension binds where it is
    built, with the gateway's callbacks): C{backend} remembers the client it
    connects; C{purge} closes it after timing.
    """

    def __init__(self):
        self.client = None

    def backend(self):
        from gateway.kafka.confluent import ConfluentBackend

        owner = self

        class Remembering(ConfluentBackend):
            def connect(self, config, events, reactor):
                owner.client = super().connect(config, events, reactor)
                return owner.client

        return Remembering()

    def purge(self):
        if self.client is not None:
            self.client.close()
            self.client = None


def _timeProducing(prepare, repeat, makeProducer=_enqueueOnlyProducer):
    """
    Best of C{repeat} runs of the callable C{prepare(producer)} returns, each
    with a fresh producer whose queue is purged (untimed) afterwards.
    """
    times = []
    for _ in range(repeat):
        producer = makeProducer()
        run = prepare(producer)
        gcWasEnabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        finally:
            if gcWasEnabled:
                gc.enable()
            producer.purge()
            del producer, run
            # The gateway path's service and router refer to each other: collect
            # them now, so the producer is destroyed and its librdkafka threads
            # (retrying the unreachable broker) do not run during later timings.
            gc.collect()
    return min(times)


def hotPath(framing, messages, chunks, repeat):
    """
    :return: rows C{(label, seconds)} for one framing, 64 KiB reads.
    """
    from twisted.internet.task import Clock

    from gateway.kafka.producer import KafkaProducerService, producerConfig
    from gateway.router import LISTENER_HEADER, PEER_HEADER, Router

    topic = "bench"
    peer = "127.0.0.1:40000"
    key = f"{framing}/{peer}".encode()
    headers = [(LISTENER_HEADER, framing.encode()), (PEER_HEADER, peer.encode())]

    def keyOnly(producer):
        def run():
            produce = producer.produce
            for value in messages:
                produce(topic, value, key)

        return run

    def keyAndHeaders(producer):
        def run():
            produce = producer.produce
            for value in messages:
                produce(topic, value, key, headers=headers)

        return run

    def gatewayPath(producer, mode="default"):
        """
        The gateway's own path into C{producer}: C{mode} C{"default"} (one
        call per read, on whichever path the client binds: the C extension
        when built), C{"python"} (one call per read, the pure-Python loop:
        C{GATEWAY_PURE_PYTHON=1}), C{"per-message"} (one call per message,
        the path before reads went in one call) or C{"ack"} (the default
        path on a listener with C{ack=on}: each record numbered in its
        C{gateway-seq} header and tracked).
        """
        import os

        from gateway.compat.confluent_kafka import PURE_PYTHON_ENV
        from gateway.kafka.confluent import ConfluentBackend

        backend = getattr(producer, "backend", None)
        backend = (
            backend() if backend else ConfluentBackend(producerFactory=lambda config: producer)
        )
        before = os.environ.get(PURE_PYTHON_ENV)
        os.environ[PURE_PYTHON_ENV] = "1" if mode == "python" else ""
        try:
            service = KafkaProducerService(
                backend,
                producerConfig("127.0.0.1:1", ENQUEUE_ONLY),
                Clock(),
                spoolPath=None,
                deadLetterPath=None,
            )
            if mode == "ack":
                service.confirmDeliveries()
            service.startService()
        finally:
            if before is None:
                del os.environ[PURE_PYTHON_ENV]
            else:
                os.environ[PURE_PYTHON_ENV] = before
        protocol, _, _ = connectFraming(
            loadFramings()[framing],
            {ACK: "on"} if mode == "ack" else None,
            sink=Router(service, topic),
            name=framing,
            maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        )
        if mode == "per-message":
            protocol.__dict__.pop("_sendMany", None)
        PATHS[mode] = service.producePath()

        def run():
            dataReceived = protocol.dataReceived
            for chunk in chunks:
                dataReceived(chunk)
            if service.produced != len(messages):
                raise AssertionError(
                    f"gateway path produced {service.produced} of {len(messages)}"
                )

        return run

    framingOnly = dict((label, build) for label, build, _ in CANDIDATES[framing])
    gatewayLabel = next(label for label in framingOnly if label.startswith("gateway"))
    return [
        (f"A  {gatewayLabel}, no-op send", best(framingOnly[gatewayLabel], chunks, repeat)),
        (
            "B  gateway path, stub producer (Python no-op produce)",
            _timeProducing(gatewayPath, repeat, StubProducer),
        ),
        ("C  bare loop: produce(topic, value, key)", _timeProducing(keyOnly, repeat)),
        (
            "D  bare loop: produce(..., key, headers=<2 headers>)",
            _timeProducing(keyAndHeaders, repeat),
        ),
        (
            "E  gateway path, one call per read (default path)",
            _timeProducing(gatewayPath, repeat, ServiceProducer),
        ),
        (
            "F  gateway path, one call per read (pure Python)",
            _timeProducing(
                lambda producer: gatewayPath(producer, "python"), repeat, ServiceProducer
            ),
        ),
        (
            "G  gateway path, one call per message (before)",
            _timeProducing(
                lambda producer: gatewayPath(producer, "per-message"), repeat, ServiceProducer
            ),
        ),
        (
            "H  gateway path, ack=on, one call per read (default path)",
            _timeProducing(lambda producer: gatewayPath(producer, "ack"), repeat, ServiceProducer),
        ),
    ]


def printHotPath(framing, messages, stream, repeat):
    count = len(messages)
    chunks = [stream[i : i + 64 * 1024] for i in range(0, len(stream), 64 * 1024)]
    rows = hotPath(framing, messages, chunks, repeat)
    ns = [seconds / count * 1e9 for _, seconds in rows]
    framingNs, stubNs, keyNs, headersNs, gatewayNs, pythonNs, beforeNs, ackNs = ns
    print()
    print(f"[{framing}] hot path, 64 KiB reads, librdkafka enqueue only (no broker)")
    print(
        table(
            ["path", "best ms", "messages/s", "ns/message"],
            [
                [label, f"{seconds * 1000:.1f}", rate(count / seconds), f"{n:.0f}"]
                for (label, seconds), n in zip(rows, ns)
            ],
        )
    )
    print(
        f"per message: framing (A) {framingNs:.0f} ns; router + service glue "
        f"(B-A) {stubNs - framingNs:.0f} ns; produce() (C) {keyNs:.0f} ns with "
        f"the key only, (D) {headersNs:.0f} ns with the two headers "
        f"(+{headersNs - keyNs:.0f}); the gateway path (E) costs "
        f"{gatewayNs / headersNs:.2f}x a bare produce() loop with the same "
        f"record (D) and {gatewayNs / keyNs:.2f}x one with the key only (C); "
        f"one call per read: {gatewayNs:.0f} ns (E, {PATHS['default']}), "
        f"{pythonNs:.0f} ns (F, pure Python), against {beforeNs:.0f} ns one call "
        f"per message (G): E/G {gatewayNs / beforeNs:.2f}, F/G {pythonNs / beforeNs:.2f}; "
        f"ack=on (H, {PATHS['ack']}) {ackNs:.0f} ns, +{ackNs - gatewayNs:.0f} over E "
        f"(H/E {ackNs / gatewayNs:.2f})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100, help="payload bytes")
    parser.add_argument("--repeat", type=int, default=5, help="best of N")
    parser.add_argument(
        "--framing",
        choices=sorted(CANDIDATES),
        action="append",
        help="only this framing (repeatable); default: all",
    )
    parser.add_argument(
        "--no-hot-path",
        dest="hotPath",
        action="store_false",
        help="skip the framing + router + producer part",
    )
    args = parser.parse_args(argv)

    # Twisted keeps log events (and the objects they name, such as a producer
    # service and its librdkafka producer) in a start-up buffer until logging
    # begins; begin it, to nowhere, so every producer here can be destroyed.
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([], discardBuffer=True, redirectStandardIO=False)

    messages = payloads(args.messages, args.size)
    print(
        f"framing micro-benchmark: {args.messages:,} messages of {args.size} "
        f"bytes, best of {args.repeat}, Python {sys.version.split()[0]}"
    )
    for framing in args.framing or list(CANDIDATES):
        stream = frame(framing, messages)
        frameSize = len(stream) // args.messages
        for chunkLabel, chunks in chunkings(stream, frameSize, args.messages):
            rows = []
            results = []
            for label, build, _ in CANDIDATES[framing]:
                check(label, build, chunks, messages)
                results.append(best(build, chunks, args.repeat))
            reference = next(t for t, (_, _, isRef) in zip(results, CANDIDATES[framing]) if isRef)
            refLabel = next(lab for lab, _, isRef in CANDIDATES[framing] if isRef)
            for (label, _, _), seconds in zip(CANDIDATES[framing], results):
                rows.append(
                    [
                        label,
                        f"{seconds * 1000:.1f}",
                        rate(args.messages / seconds),
                        f"{seconds / args.messages * 1e9:.0f}",
                        f"{reference / seconds:.2f}x",
                    ]
                )
            print()
            print(f"[{framing}] {chunkLabel}: {len(chunks):,} reads, {len(stream) / 1e6:.1f} MB")
            print(
                table(
                    [
                        "protocol",
                        "best ms",
                        "messages/s",
                        "ns/message",
                        f"speed vs {refLabel.split()[-1]}",
                    ],
                    rows,
                )
            )
    # Last, so no librdkafka thread ever runs during the framing timings.
    if args.hotPath:
        for framing in args.framing or list(CANDIDATES):
            printHotPath(framing, messages, frame(framing, messages), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
