# -*- test-case-name: tests.kafka.test_producemany -*-
"""
A read's frames in one call (C{MessageStream.sendMany} ->
L{KafkaProducerService.produceMany} -> the client's C{produceMany}), on both
of its paths: the C extension and the pure-Python loop
(C{GATEWAY_PURE_PYTHON=1}).  A real confluent-kafka producer pointed where
nothing listens stands in for Kafka: C{produce} only queues, a purge reports
every record back as librdkafka does after a recreation or at stop.
"""

import pytest
from twisted.internet.task import Clock

from gateway.compat.confluent_kafka import C_EXTENSION, PURE_PYTHON_ENV
from gateway.kafka.confluent import ConfluentBackend
from gateway.kafka.producer import KafkaProducerService, producerConfig
from gateway.kafka.records import Record, RecordFile
from gateway.registry import loadFramings
from gateway.router import LISTENER_HEADER, PEER_HEADER, Router
from gateway.testing import connectFraming
from tests.compat.test_confluent_kafka import extension

PATHS = {"C": C_EXTENSION, "Python": f"Python ({PURE_PYTHON_ENV} is set)"}


@pytest.fixture(params=sorted(PATHS))
def path(request, monkeypatch):
    """
    Each test runs on both paths; the C one only where the extension is
    built (tests/compat/test_confluent_kafka.py fails where it could be and
    is not).
    """
    if request.param == "C":
        if extension() is None:
            pytest.skip("the C extension is not built (no compiler)")
        monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)
    else:
        monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    return request.param


def gatewayPath(tmp_path, **options):
    """
    A started producer service (offline client), a router and one
    C{lines} connection.

    :return: C{(service, router, protocol)}.
    """
    config = producerConfig("127.0.0.1:1", {"log_level": 0, **options})
    service = KafkaProducerService(
        ConfluentBackend(),
        config,
        Clock(),
        drainTimeout=0,
        spoolPath=str(tmp_path / "spool.jsonl"),
        deadLetterPath=str(tmp_path / "dead.jsonl"),
    )
    service.startService()
    router = Router(service, "t")
    protocol, _, _ = connectFraming(
        loadFramings()["lines"], sink=router, name="lines", maxMessageSize=4096
    )
    return service, router, protocol


def lines(count, start=0):
    return [b"line %d" % n for n in range(start, start + count)]


def test_pathReported(path, tmp_path):
    """
    The service says which path its client runs.
    """
    service, _, _ = gatewayPath(tmp_path)
    assert service.producePath() == PATHS[path]


def test_wholeReadInOneCall(path, tmp_path):
    """
    Every frame of a read is taken and counted, by the service and by the
    connection's stream (per-topic figures), in order.
    """
    service, router, protocol = gatewayPath(tmp_path)
    protocol.dataReceived(b"".join(line + b"\n" for line in lines(50)) + b"tail")
    assert (service.accepted, service.produced) == (50, 50)
    assert router.topicCounts() == {"t": (50, sum(len(line) for line in lines(50)))}
    assert service._keeper.client._producer.__len__() >= 50


def test_fullQueueCutsTheRead(path, tmp_path):
    """
    With room for 3 records, a read of 10 is cut: 3 taken, the 4th held in
    the backlog with every client paused, the other 6 kept by the paused
    connection; nothing is lost or reordered.
    """
    service, router, protocol = gatewayPath(tmp_path, **{"queue.buffering.max.messages": 3})
    protocol.dataReceived(b"".join(line + b"\n" for line in lines(10)))
    assert (service.accepted, service.produced) == (4, 3)
    assert [record.value for record in service._backlog.takeAll()] == lines(1, 3)
    assert router.paused and protocol.paused
    assert protocol._pending == lines(6, 4)
    assert router.topicCounts() == {"t": (4, sum(len(line) for line in lines(4)))}


def test_nothingTakenWhileABacklogExists(path, tmp_path):
    """
    While a backlog exists nothing is taken in one call: the clients are
    paused, and what they sent joins the backlog behind what waits.
    """
    service, router, protocol = gatewayPath(tmp_path)
    waiting = Record("t", None, None, b"waiting")
    service._hold(waiting)
    assert service.produceMany("t", [b"a", b"b"], None, None) == 0
    assert router.paused and protocol.paused
    protocol.publishBuffered()  # as at stop: one by one, behind the backlog
    protocol.dataReceived(b"a\nb\n")
    protocol.publishBuffered()
    assert [r.value for r in service._backlog.takeAll()] == [b"waiting", b"a", b"b"]
    assert service.produced == 0


def test_purgedRecordsProducedAgain(path, tmp_path):
    """
    Records taken in one call are recoverable from their delivery reports:
    purged (as after a recreation), they are produced again, with their
    connection's headers restored, in order.
    """
    service, router, protocol = gatewayPath(tmp_path)
    protocol.dataReceived(b"".join(line + b"\n" for line in lines(5)))
    service._keeper.client._producer.purge(in_queue=True, in_flight=True)
    requeued = []
    produce = service._produce

    def recording(topic, value, key=None, headers=None):
        requeued.append((value, headers))
        produce(topic, value, key, headers=headers)

    service._produce = recording
    service._poll()
    peer = protocol.peer.encode()
    assert service.requeued == 5
    assert requeued == [
        (line, [(LISTENER_HEADER, b"lines"), (PEER_HEADER, peer)]) for line in lines(5)
    ]
    assert service.produced == 10


def test_spooledAtStop(path, tmp_path):
    """
    Stopping without a broker spools every record taken in one call, with
    its headers, in order.
    """
    service, router, protocol = gatewayPath(tmp_path)
    protocol.dataReceived(b"".join(line + b"\n" for line in lines(7)))
    left = []
    service.stopService().addCallback(left.append)
    service.clock.advance(1)
    assert left == [7]
    spooled = RecordFile(str(tmp_path / "spool.jsonl")).read()
    peer = protocol.peer.encode()
    assert [(r.topic, r.value, r.headers) for r in spooled] == [
        ("t", line, [(LISTENER_HEADER, b"lines"), (PEER_HEADER, peer)]) for line in lines(7)
    ]
    assert service.spooled == 7


def test_refusedRecordDeadLettered(path, tmp_path):
    """
    A record the client refuses at once (over C{message.max.bytes}) ends
    the call; it is dead-lettered through the one-by-one path and the rest
    of the read is produced after it, in order.
    """
    service, router, protocol = gatewayPath(tmp_path, **{"message.max.bytes": 1000})
    big = b"x" * 2000
    protocol.dataReceived(b"a\nb\n" + big + b"\nc\nd\n")
    assert (service.accepted, service.produced, service.deadLettered) == (5, 4, 1)
    assert [r.value for r in RecordFile(str(tmp_path / "dead.jsonl")).read()] == [big]
    service._keeper.client.purge()
    assert [r.value for r in service._purged] == [b"a", b"b", b"c", b"d"]
