# -*- test-case-name: tests.integration.test_producepath -*-
"""
The accelerated produce path (the optional C extension, what users get when
it is built) and the pure-Python path (C{GATEWAY_PURE_PYTHON=1}, what they
get without a compiler) put the same records in Kafka, whole reads and reads
cut by a full client queue alike, in ack mode too, and with mimalloc
preloaded as the launchers start the gateway; the start line says which path
and which C{malloc} run.
"""

import random

import pytest

from devkafka import consume
from gateway.allocator import PRELOAD
from tests.compat.test_confluent_kafka import canCompile
from tests.integration.support.process import CLEAN_EXIT, Gateways
from tests.integration.support.sockets import sendInRandomPieces
from tests.integration.support.topics import checkRecords, newTopic
from tests.integration.test_acks_kafka import AckReader

#: What each run's start line names (the extension only where it was built).
PATHS = {
    "default": "C extension" if canCompile() else "Python (the C extension is not built)",
    "pure": "Python (GATEWAY_PURE_PYTHON is set)",
}
#: Each run's environment: "mimalloc" is the default path as the launchers
#: start it (L{PRELOAD}).
ENV = {
    "default": {"GATEWAY_PURE_PYTHON": "", "LD_PRELOAD": ""},
    "pure": {"GATEWAY_PURE_PYTHON": "1", "LD_PRELOAD": ""},
    "mimalloc": {"GATEWAY_PURE_PYTHON": "", "LD_PRELOAD": PRELOAD},
}
PATHS["mimalloc"] = PATHS["default"]
#: The library each run's start line names as C{malloc}'s.
MALLOC = {"default": "libc.so.6", "pure": "libc.so.6", "mimalloc": PRELOAD}


@pytest.fixture
def gateway(kafka, tmp_path):
    gateways = Gateways(tmp_path, kafka.bootstrap)
    yield gateways.start
    gateways.stopAll()


def run(kafka, gateway, path, messages, *args):
    """
    Three clients send C{messages} lines each, cut at random places, to a
    gateway on the given path; every record is read back and checked.

    :return: the records' C{(connection index, value, header names)}, in
        order per connection, and the gateway's log.
    """
    topic = newTopic(kafka, partitions=1)
    process = gateway(
        "--topic", topic, "--listen", "lines=tcp:0:interface=127.0.0.1", *args, env=ENV[path]
    )
    # The same messages on both paths, cut into reads differently.
    content, cuts = random.Random(messages), random.Random(path)
    sent = {}
    peers = []
    for client in range(3):
        sock = process.connect("lines")
        host, port = sock.getsockname()[:2]
        lines = [
            b"%d:%06d:" % (client, n) + b"x" * content.randint(0, 120) for n in range(messages)
        ]
        sent[f"{host}:{port}"] = lines
        peers.append(f"{host}:{port}")
        sendInRandomPieces(sock, b"".join(line + b"\n" for line in lines), cuts)
        sock.close()
    total = 3 * messages
    records = consume(kafka.bootstrap, topic, count=total, timeout=120)
    assert process.stop() in CLEAN_EXIT
    log = process.log()
    assert f"; produce path: {PATHS[path]}; malloc: {MALLOC[path]}" in log
    assert f"Kafka producer stopped: {total} records delivered, 0 not delivered" in log
    checkRecords(records, sent)
    return [
        (peers.index(r.key.decode().partition("/")[2]), r.value, sorted(dict(r.headers)))
        for r in records
    ], log


def test_samePathsSameRecords(kafka, gateway):
    """
    Both paths: every message once, in order per connection, with its key
    and both provenance headers; and the same records.
    """
    default, _ = run(kafka, gateway, "default", 3000)
    pure, _ = run(kafka, gateway, "pure", 3000)
    assert sorted(default) == sorted(pure)


@pytest.mark.parametrize("path", ["default", "pure"])
def test_fullQueueHeldInOrder(kafka, gateway, path):
    """
    A client queue of 200 records, far fewer than a read holds: the reads
    are cut where the queue fills, the rest waits in the backlog (clients
    paused), and Kafka still gets every record once, in order.
    """
    _, log = run(
        kafka,
        gateway,
        path,
        20000,
        "--kafka-option",
        "queue.buffering.max.messages=200",
    )
    assert "pausing" in log and "the producer's queue is full" in log


@pytest.mark.parametrize("path", ["default", "pure", "mimalloc"])
def test_ackModeBothPaths(kafka, gateway, path):
    """
    Ack mode on both paths (the extension numbers a read's records and
    counts their confirmations in C), and on the extension's as the
    launchers start it (mimalloc preloaded), with a client queue of 200 records so
    that reads are cut and the rest waits in the backlog: each of three
    clients gets C{ACK} of its last message, and Kafka holds every message
    once, in order, numbered from 1 in C{gateway-seq}.
    """
    messages = 5000
    topic = newTopic(kafka, partitions=1)
    process = gateway(
        "--topic",
        topic,
        "--listen",
        "lines(ack=on)=tcp:0:interface=127.0.0.1",
        "--kafka-option",
        "queue.buffering.max.messages=200",
        env=ENV[path],
    )
    cuts = random.Random(path)
    readers, sent = [], {}
    for client in range(3):
        reader = AckReader(process)
        host, port = reader.sock.getsockname()[:2]
        lines = [b"%d:%06d" % (client, n) for n in range(messages)]
        sent[f"{host}:{port}"] = lines
        sendInRandomPieces(reader.sock, b"".join(line + b"\n" for line in lines), cuts)
        readers.append(reader)
    for reader in readers:
        reader.waitForAck(messages, 120)
        assert (reader.nacks, reader.other) == ([], [])
        reader.close()
    records = consume(kafka.bootstrap, topic, count=3 * messages, timeout=120)
    assert process.stop() in CLEAN_EXIT
    assert f"; produce path: {PATHS[path]}; malloc: {MALLOC[path]}" in process.log()
    byPeer = {}
    for r in records:
        headers = dict(r.headers)
        assert headers.pop("gateway-listener") == b"lines"
        peer = headers.pop("gateway-peer").decode()
        assert r.key.decode() == f"lines/{peer}"
        byPeer.setdefault(peer, []).append((int(headers.pop("gateway-seq")), r.value))
        assert headers == {}
    assert byPeer == {
        peer: [(n + 1, line) for n, line in enumerate(lines)] for peer, lines in sent.items()
    }
