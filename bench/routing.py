"""
Routing micro-benchmark (no Kafka, no sockets): what a routing plugin's
per-message Python call costs on the hot path.

The gateway path of C{bench/framing.py} (lines protocol -> router stream ->
producer service -> librdkafka's C{produce()}, enqueue only), with the
listener routed four ways:

    default        the listener's topic and key, prepared once per connection
    per-connection a routing plugin choosing once per connection (no route())
    per-message    a plugin whose route(payload) returns a prepared tuple
    json-type      the example plugin: orjson.loads and a field per message

each timed with a Python no-op C{produce} (the gateway's own Python) and with
librdkafka's.  Every candidate is first checked to produce every message.

Run from the repository root:

    .venv/bin/python bench/routing.py [--messages 200000] [--repeat 7]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The example plugin's source, found by gateway.plugins' extended path (as
# pytest finds it) when the checkout's gateway is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1] / "plugins" / "gateway-routing-jsontype"))

import framing as hot  # noqa: E402
from _common import rate, table  # noqa: E402

from gateway.registry import loadFramings  # noqa: E402
from gateway.routing import Route, RoutingPlugin, TopicTemplate  # noqa: E402
from gateway.service import DEFAULT_MAX_MESSAGE_SIZE  # noqa: E402
from gateway.testing import connectFraming  # noqa: E402


class PerConnection:
    """
    Chooses once per connection: the listener's own fields.
    """

    def __init__(self, connection):
        self.topic, self.key, self.headers = connection.topic, connection.key, connection.headers


class PerMessage(PerConnection):
    """
    The cheapest per-message router: one Python call returning a tuple.
    """

    def __init__(self, connection):
        PerConnection.__init__(self, connection)
        self._fields = (self.topic, self.key, self.headers)

    def route(self, payload):
        return self._fields


def jsonLines(count):
    """
    C{count} JSON lines of about 100 bytes, a third of them metrics.
    """
    lines = []
    for n in range(count):
        kind = "metric" if n % 3 == 0 else "event"
        line = json.dumps({"type": kind, "n": n, "host": "web-01", "pad": ""}).encode()
        line = line[:-2] + b"x" * max(0, 100 - len(line)) + b'"}'
        lines.append(line)
    return lines


def routes():
    from gateway.plugins.jsontype_routing import jsonType

    return {
        "default": Route(TopicTemplate("bench")),
        "per-connection": Route(
            TopicTemplate("bench"), plugin=RoutingPlugin("c", "c", PerConnection)
        ),
        "per-message": Route(
            TopicTemplate("bench"), plugin=RoutingPlugin("m", "m", PerMessage, True)
        ),
        "json-type": Route(TopicTemplate("bench"), plugin=jsonType),
        # The first row's path again, timed last in each round: how far apart
        # the same path's figures land on this machine.
        "default again": Route(TopicTemplate("bench")),
    }


def gatewayPath(route, messages, chunks):
    from twisted.internet.task import Clock

    from gateway.kafka.confluent import ConfluentBackend
    from gateway.kafka.producer import KafkaProducerService, producerConfig
    from gateway.router import Router

    def prepare(producer):
        service = KafkaProducerService(
            ConfluentBackend(producerFactory=lambda config: producer),
            producerConfig("127.0.0.1:1", hot.ENQUEUE_ONLY),
            Clock(),
            spoolPath=None,
            deadLetterPath=None,
        )
        service.startService()
        router = Router(service, None)
        router.routes["lines"] = route
        protocol, _, _ = connectFraming(
            loadFramings()["lines"],
            sink=router,
            name="lines",
            maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        )

        def run():
            dataReceived = protocol.dataReceived
            for chunk in chunks:
                dataReceived(chunk)
            if service.produced != len(messages):
                raise AssertionError(f"produced {service.produced} of {len(messages)}")

        return run

    return prepare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7, help="best of N rounds")
    args = parser.parse_args(argv)
    messages = jsonLines(args.messages)
    stream = b"".join(line + b"\n" for line in messages)
    chunks = [stream[i : i + 64 * 1024] for i in range(0, len(stream), 64 * 1024)]
    count = len(messages)
    print(
        f"routing: {count:,} JSON lines of ~{len(messages[0])} bytes, 64 KiB reads, "
        f"best of {args.repeat}; librdkafka enqueue only (no broker)"
    )
    candidates = [
        (name, producerName, gatewayPath(route, messages, chunks), makeProducer)
        for name, route in routes().items()
        for producerName, makeProducer in (
            ("no-op produce", hot.StubProducer),
            ("librdkafka", hot._enqueueOnlyProducer),
        )
    ]
    # Rounds of every candidate in turn, best of the rounds: a busy machine's
    # slow spells then fall on every candidate alike.
    best = {}
    for _ in range(args.repeat):
        for name, producerName, prepare, makeProducer in candidates:
            seconds = hot._timeProducing(prepare, 1, makeProducer)
            key = name, producerName
            best[key] = min(seconds, best.get(key, seconds))
    ns = {key: seconds / count * 1e9 for key, seconds in best.items()}
    rows = [
        [
            f"{name}, {producerName}",
            f"{seconds * 1000:.1f}",
            rate(count / seconds),
            f"{ns[name, producerName]:.0f}",
        ]
        for (name, producerName), seconds in best.items()
    ]
    print(table(["route", "best ms", "messages/s", "ns/message"], rows))
    for producerName in ("no-op produce", "librdkafka"):
        base = ns["default", producerName]
        print(
            f"per message, over the default route ({producerName}): "
            + "; ".join(
                f"{name} {ns[name, producerName] - base:+.0f} ns"
                for name in ("per-connection", "per-message", "json-type", "default again")
            )
        )


if __name__ == "__main__":
    main()
