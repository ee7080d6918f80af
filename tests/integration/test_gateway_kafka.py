# -*- test-case-name: tests.integration.test_gateway_kafka -*-
"""
The gateway end to end: C{twistd -n gateway} as a subprocess, real client
sockets, a real Apache Kafka broker, and every record read back.
"""

import ctypes.util
import os
import random
import struct
from collections import defaultdict
from pathlib import Path

import pytest

from devkafka import consume
from gateway.allocator import PRELOAD
from tests.integration.support.process import CLEAN_EXIT, GatewayProcess, Gateways
from tests.integration.support.procfs import socketsTo
from tests.integration.support.sockets import sendInRandomPieces
from tests.integration.support.topics import checkRecords, newTopic

ROOT = Path(__file__).resolve().parents[2]


def encode(framing, messages):
    if framing == "lines":
        return b"".join(m + b"\n" for m in messages)
    return b"".join(struct.pack("!I", len(m)) + m for m in messages)


def payload(framing, client, sequence, rng):
    text = b"%d:%d:" % (client, sequence)
    if framing == "lines":
        return text + bytes(rng.choice(b"abcxyz \t\r") for _ in range(rng.randint(0, 80)))
    # Binary payloads, newlines and zero bytes included.
    return text + rng.randbytes(rng.randint(0, 300))


@pytest.fixture
def gateway(kafka, tmp_path):
    """
    A function that starts a gateway with the given arguments against the
    test broker; every gateway started is stopped at the end.
    """
    gateways = Gateways(tmp_path, kafka.bootstrap)
    yield gateways.start
    gateways.stopAll()


@pytest.mark.parametrize("framing", ["lines", "length-prefixed"])
def test_framingEndToEnd(kafka, gateway, framing):
    """
    Five clients each send 300 messages cut at random byte boundaries; Kafka
    holds exactly those messages, in order per connection, with headers
    naming the listener and each client's address.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", f"{framing}=tcp:0:interface=127.0.0.1")
    rng = random.Random(framing)
    sent = {}
    sockets = []
    for client in range(5):
        sock = process.connect(framing)
        sockets.append(sock)
        host, port = sock.getsockname()[:2]
        messages = [payload(framing, client, n, rng) for n in range(300)]
        sent[f"{host}:{port}"] = messages
        sendInRandomPieces(sock, encode(framing, messages), rng)
    for sock in sockets:
        sock.close()
    records = consume(kafka.bootstrap, topic, count=1500, timeout=60)
    checkRecords(records, sent, framing)
    assert process.stop() in CLEAN_EXIT
    assert "Kafka producer stopped: 1500 records delivered, 0 not delivered" in process.log()


def test_startedAsTheLaunchersStartIt(kafka, gateway):
    """
    The tests start the gateway as its launchers do, on mimalloc where the
    loader finds it (unless the test run preloads something itself): its
    start line names the library C{malloc} comes from.
    """
    process = gateway("--topic", newTopic(kafka), "--listen", "lines=tcp:0:interface=127.0.0.1")
    assert process.stop() in CLEAN_EXIT
    if "LD_PRELOAD" in os.environ:
        expected = os.environ["LD_PRELOAD"] or "libc.so.6"
    else:
        expected = PRELOAD if ctypes.util.find_library("mimalloc") else "libc.so.6"
    assert f"; malloc: {expected}" in process.log()


def test_overLimitClosesOnlyThatConnection(kafka, gateway):
    """
    A client sending a message over the limit is disconnected and its
    oversized message is not published; a client on the same listener keeps
    going and all its messages arrive.
    """
    topic = newTopic(kafka, partitions=1)
    process = gateway(
        "--topic",
        topic,
        "--max-message-size",
        "100",
        "--listen",
        "lines=tcp:0:interface=127.0.0.1",
    )
    good = process.connect("lines")
    bad = process.connect("lines")
    good.sendall(b"before\n")
    bad.sendall(b"fine\n" + b"x" * 101 + b"\n")
    bad.settimeout(10)
    assert bad.recv(1) == b""  # the gateway closed it
    good.sendall(b"after\n")
    good.close()
    records = consume(kafka.bootstrap, topic, count=3, timeout=30)
    assert sorted(r.value for r in records) == [b"after", b"before", b"fine"]
    assert "too-large (limit 100 bytes, size 101)" in process.log()
    assert consume(kafka.bootstrap, topic, timeout=2) == records


def test_tacTwoListenersShareOneProducer(kafka, tmp_path):
    """
    C{twistd -ny docs/examples/gateway.tac} runs two listeners with different
    framings; messages sent through both arrive, each with its listener's
    name, through one producer.
    """
    topic = newTopic(kafka)
    process = GatewayProcess(
        tmp_path,
        [],
        tac=ROOT / "docs" / "examples" / "gateway.tac",
        env={
            "GATEWAY_TOPIC": topic,
            "GATEWAY_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "GATEWAY_LINES_ENDPOINT": "tcp:0:interface=127.0.0.1",
            "GATEWAY_LENGTH_PREFIXED_ENDPOINT": "tcp:0:interface=127.0.0.1",
        },
    ).start(listeners=2)
    try:
        with process.connect("devices") as sock:
            sock.sendall(b"from a device\nsecond line\n")
        with process.connect("services") as sock:
            sock.sendall(encode("length-prefixed", [b"\x00binary\nservice"]))
        records = consume(kafka.bootstrap, topic, count=3, timeout=60)
    finally:
        assert process.stop() in CLEAN_EXIT
    byListener = defaultdict(list)
    for record in records:
        byListener[dict(record.headers)["gateway-listener"]].append(record.value)
    assert byListener == {
        b"devices": [b"from a device", b"second line"],
        b"services": [b"\x00binary\nservice"],
    }
    assert process.log().count("Kafka producer created") == 1


def test_manyClientsFewKafkaConnections(kafka, gateway):
    """
    While 200 concurrent clients send 20,000 messages in total, the gateway
    process holds at most 3 TCP connections to the broker (counted from
    /proc), and every message arrives.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", "lines=tcp:0:interface=127.0.0.1")
    brokerPort = int(kafka.bootstrap.rsplit(":", 1)[1])
    clients = [process.connect("lines") for _ in range(200)]
    peak = 0
    for round in range(100):
        for number, sock in enumerate(clients):
            sock.sendall(b"client %d message %d\n" % (number, round))
        if round % 10 == 0:
            peak = max(peak, socketsTo(process.process.pid, brokerPort))
    records = consume(kafka.bootstrap, topic, count=20_000, timeout=120)
    peak = max(peak, socketsTo(process.process.pid, brokerPort))
    for sock in clients:
        sock.close()
    assert len(records) == 20_000
    assert len({r.value for r in records}) == 20_000
    assert 1 <= peak <= 3, f"{peak} connections to the broker"
