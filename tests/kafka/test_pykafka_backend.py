# -*- test-case-name: tests.kafka.test_pykafka_backend -*-
"""
Tests for the C{pykafka} producer backend with a fake pykafka client and a
thread pool that runs its jobs when the test says so, on the test's thread
(like Buildbot's C{NonThreadPool}): no real thread, no network.  The real
library against a real Kafka 3.9 is exercised by
C{tests/integration/test_backend_contract.py}.
"""

import queue
import struct
import subprocess
import sys
import zlib
from collections import namedtuple

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.interfaces import IProducerBackend, IProducerClient
from gateway.kafka._pykafka import PykafkaBackend, translateConfig
from gateway.kafka._pykafkaworker import (
    UnsupportedBroker,
    checkBroker,
    crc32Partitioner,
    probeBroker,
)
from gateway.kafka.config import producerConfig
from gateway.kafka.producer import KafkaProducerService
from gateway.kafka.records import Record
from gateway.registry import loadBackends

# pykafka's exceptions, by name: the backend tells them apart that way.


class ProducerQueueFullError(Exception):
    pass


class MessageSizeTooLarge(Exception):
    ERROR_CODE = 10


class SocketDisconnectedError(Exception):
    pass


class NoBrokersAvailableError(Exception):
    pass


class FakeMessage:
    def __init__(self, value, key):
        self.value, self.partition_key = value, key


class FakeProducer:
    """
    A pykafka producer whose queue holds C{capacity} records until the test
    reports on them with L{deliver}.
    """

    def __init__(self, capacity, **kwargs):
        self.kwargs = kwargs
        self.capacity = capacity
        self.queue = []
        self.produced = []
        self.reports = queue.Queue()
        self.stopped = False
        self._worker_exception = None

    def produce(self, message, partition_key=None):
        if len(self.queue) >= self.capacity:
            raise ProducerQueueFullError("Queue full for broker 1")
        m = FakeMessage(message, partition_key)
        self.queue.append(m)
        self.produced.append(m)
        return m

    def deliver(self, count=None, error=None):
        """
        Kafka answered for the C{count} oldest records (all by default).
        """
        count = len(self.queue) if count is None else count
        for m in self.queue[:count]:
            self.reports.put((m, error))
        del self.queue[:count]

    def get_delivery_report(self, block=True, timeout=None):
        assert not block
        return self.reports.get_nowait()

    def stop(self):
        self.stopped = True


class FakeTopic:
    def __init__(self, client, name):
        self.client, self.name = client, name

    def get_producer(self, **kwargs):
        producer = FakeProducer(self.client.capacity, **kwargs)
        self.client.producers.append(producer)
        return producer


FakeBroker = namedtuple("FakeBroker", "connected")


class FakeClientFactory:
    """
    Stands for C{pykafka.KafkaClient}: calling it makes a client (or raises
    the exceptions in C{failures} first, one per call).
    """

    def __init__(self, capacity=1000):
        self.capacity = capacity
        self.calls = []
        self.failures = []
        self.producers = []
        self.brokers = {1: FakeBroker(True), 2: FakeBroker(False)}

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.failures:
            raise self.failures.pop(0)
        return FakeClient(self)


class FakeTopics:
    def __init__(self, factory):
        self.factory = factory

    def __getitem__(self, name):
        return FakeTopic(self.factory, name)


class FakeClient:
    def __init__(self, factory):
        self.topics = FakeTopics(factory)
        self.brokers = factory.brokers


class ManualPool:
    """
    A thread pool whose jobs run on the test's thread when L{run} is called
    (or at once, with C{autorun}).
    """

    def __init__(self):
        self.jobs = []
        self.started = self.stopped = False
        self.autorun = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.jobs.append((onResult, f, args, kwargs))
        if self.autorun:
            self.run()

    def run(self):
        """
        Run the jobs queued so far, and those they queue.
        """
        while self.jobs:
            onResult, f, args, kwargs = self.jobs.pop(0)
            try:
                result = f(*args, **kwargs)
            except BaseException:
                onResult(False, Failure())
            else:
                onResult(True, result)


class FakeReactor(Clock):
    """
    A clock whose C{callFromThread} calls at once (the pool's jobs run on the
    test's thread anyway).
    """

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class RecordingEvents:
    def __init__(self):
        self.failed = []
        self.errors = []

    def deliveryFailed(self, record, error):
        self.failed.append((record, error))

    def clientError(self, error):
        self.errors.append(error)


class BackendMixin:
    def setUp(self):
        self.factory = FakeClientFactory()
        self.pool = ManualPool()
        self.probed = []
        self.probeError = None
        self.reactor = FakeReactor()
        self.events = RecordingEvents()
        self.backend = PykafkaBackend(
            clientFactory=self.factory,
            poolFactory=lambda: self.pool,
            probe=self.probe,
        )
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def probe(self, hosts):
        self.probed.append(hosts)
        if self.probeError is not None:
            raise self.probeError

    def connect(self, **options):
        config = producerConfig("k1:9092,k2:9092", options)
        self.client = self.backend.connect(config, self.events, self.reactor)
        self.pool.run()
        return self.client

    def producer(self):
        [producer] = self.factory.producers
        return producer

    def cycle(self):
        """
        One poll from the reactor and the pump it starts on the worker, then
        the poll that serves what the pump brought back.
        """
        self.client.poll()
        self.pool.run()
        self.client.poll()


class ConfigTests(SynchronousTestCase):
    """
    L{translateConfig} and L{PykafkaBackend.checkConfig}.
    """

    def test_gatewayDefaults(self):
        """
        The gateway's own configuration maps onto pykafka: acks=all is
        C{required_acks=-1}, C{message.max.bytes} the request size, the
        queue bounds come from the message count and the byte budget; the
        librdkafka-only defaults (idempotence, timeouts, keepalive) are
        accepted without effect.
        """
        config = producerConfig("h:1,h:2", maxMessageSize=2_000_000, budget=1 << 20)
        settings = translateConfig(config)
        self.assertEqual(settings["hosts"], "h:1,h:2")
        self.assertEqual(settings["required_acks"], -1)
        self.assertEqual(settings["linger_ms"], 5)
        self.assertEqual(settings["max_request_size"], 2_000_000 + 65536)
        self.assertEqual(settings["maxMessages"], 1_000_000)
        self.assertEqual(settings["maxKbytes"], 1024)
        PykafkaBackend().checkConfig(config)

    def test_stringsFromTheCommandLine(self):
        """
        C{--kafka-option} values are strings; numbers and acks are coerced.
        """
        settings = translateConfig(
            {
                "bootstrap.servers": "h:1",
                "acks": "1",
                "linger.ms": "20",
                "retries": "7",
                "compression.type": "gzip",
                "security.protocol": "PLAINTEXT",
            }
        )
        self.assertEqual(
            (
                settings["required_acks"],
                settings["linger_ms"],
                settings["max_retries"],
                settings["compression"],
            ),
            (1, 20, 7, "gzip"),
        )

    def test_unsupportedKeys(self):
        """
        Properties this backend cannot honour (TLS, SASL, transactions, a
        custom partitioner) are refused, every one named, with the way out.
        """
        with self.assertRaises(ValueError) as caught:
            PykafkaBackend().checkConfig(
                {
                    "bootstrap.servers": "h:1",
                    "ssl.ca.location": "/ca",
                    "sasl.mechanism": "PLAIN",
                    "security.protocol": "SASL_SSL",
                    "transactional.id": "t",
                    "linger.ms": 5,
                }
            )
        message = str(caught.exception)
        for key in (
            "ssl.ca.location",
            "sasl.mechanism",
            "security.protocol=SASL_SSL",
            "transactional.id",
        ):
            self.assertIn(key, message)
        self.assertNotIn("linger.ms", message)
        self.assertIn("--kafka-backend confluent", message)

    def test_badValues(self):
        """
        A value that is not a number, or a compression pykafka cannot do
        here, is refused naming the property.
        """
        for key, value in [("linger.ms", "soon"), ("compression.type", "zstd"), ("acks", "most")]:
            with self.assertRaises(ValueError) as caught:
                translateConfig({"bootstrap.servers": "h:1", key: value})
            self.assertIn(key, str(caught.exception))

    def test_noBootstrap(self):
        """
        Without bootstrap servers there is nothing to connect to.
        """
        self.assertRaises(ValueError, translateConfig, {"acks": "all"})


class PluginTests(SynchronousTestCase):
    """
    The backend as a plugin.
    """

    def test_found(self):
        """
        C{loadBackends} finds the C{pykafka} backend next to C{confluent}, and
        it provides L{IProducerBackend}.
        """
        backends = loadBackends()
        self.assertIn("confluent", backends)
        verifyObject(IProducerBackend, backends["pykafka"])

    def test_scanImportsNoPykafka(self):
        """
        Scanning the plugins (what C{twistd gateway --help} does) imports
        neither pykafka nor a reactor.
        """
        code = (
            "import sys; from gateway.registry import loadBackends; "
            "loadBackends(); print('pykafka' in sys.modules, "
            "'twisted.internet.reactor' in sys.modules)"
        )
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual(output.split(), ["False", "False"])


class ConnectTests(BackendMixin, SynchronousTestCase):
    """
    L{PykafkaBackend.connect}.
    """

    def test_connects(self):
        """
        The client provides L{IProducerClient}; its pool is started, and the
        pykafka client is created at once on the pool, with the bootstrap
        servers and the old protocol version, after the broker check.
        """
        client = self.connect()
        verifyObject(IProducerClient, client)
        self.assertTrue(self.pool.started)
        self.assertEqual(self.probed, ["k1:9092,k2:9092"] * 2)
        [call] = self.factory.calls
        self.assertEqual(call["hosts"], "k1:9092,k2:9092")
        self.assertEqual(call["broker_version"], "0.10.0")
        self.assertEqual(client.brokersUp(), 1)

    def test_headersWarning(self):
        """
        The backend says once, at start, that records carry no headers.
        """
        self.connect()
        self.connect()
        warnings = [e for e in self.log if "no headers" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)

    def test_recreationProbesOffTheReactor(self):
        """
        A client created again for the same producer (after a fatal error)
        does not ask the broker on the reactor: only its worker does.
        """
        self.connect()
        self.connect()
        self.assertEqual(len(self.probed), 3)

    def test_kafka4Refused(self):
        """
        A broker that no longer takes the old message format stops the
        start with a message naming the way out; no thread is started.
        """
        self.probeError = UnsupportedBroker("Kafka 4 ...; use --kafka-backend confluent")
        with self.assertRaises(ValueError) as caught:
            self.connect()
        self.assertIn("--kafka-backend confluent", str(caught.exception))
        self.assertFalse(self.pool.started)

    def test_brokerDownAtStart(self):
        """
        A broker that cannot be asked at start does not stop it (as with
        the confluent backend): records wait, the worker keeps trying with a
        growing delay and reports the outage as a client error.
        """
        self.probeError = OSError("connection refused")
        self.connect()
        self.client.produce("t", b"v", b"k", [])
        self.cycle()
        self.assertEqual(self.factory.calls, [])
        [error] = self.events.errors
        self.assertTrue(error.allBrokersDown)
        self.assertTrue(error.retriable)
        self.assertEqual(self.client.pendingCount(), 1)
        self.assertIsNone(self.client.brokersUp())

    def test_kafka4Later(self):
        """
        A Kafka 4 broker met after the start is a client error naming the
        problem, not fatal: the worker asks again later.
        """
        self.probeError = OSError("down")
        self.connect()
        self.probeError = UnsupportedBroker("Kafka 4")
        self.client.produce("t", b"v", b"k", [])
        self.client._worker._retryAt = 0
        self.cycle()
        self.assertEqual(self.events.errors[-1].code, "UNSUPPORTED_BROKER")
        self.assertFalse(self.events.errors[-1].fatal)


class ProduceTests(BackendMixin, SynchronousTestCase):
    """
    Producing, delivery reports and accounting.
    """

    def test_produceDoesNotCallPykafka(self):
        """
        C{produce} only takes the record; pykafka sees it when the worker
        runs, in order, with the key as the partition key, on a producer
        made for the gateway's guarantees.
        """
        self.connect()
        for n in range(3):
            self.client.produce("t", b"v%d" % n, b"key", [("h", b"1")])
        self.assertEqual(self.factory.producers, [])
        self.assertEqual(self.client.pendingCount(), 3)
        self.assertEqual(self.client.pendingBytes(), 6)
        self.pool.run()
        producer = self.producer()
        self.assertEqual(
            [(m.value, m.partition_key) for m in producer.produced],
            [(b"v0", b"key"), (b"v1", b"key"), (b"v2", b"key")],
        )
        kwargs = producer.kwargs
        self.assertEqual(
            (
                kwargs["sync"],
                kwargs["delivery_reports"],
                kwargs["block_on_queue_full"],
                kwargs["required_acks"],
                kwargs["partitioner"],
            ),
            (False, True, False, -1, crc32Partitioner),
        )

    def test_successes(self):
        """
        Delivered records leave the pending count and bytes, without any
        report to the events object.
        """
        self.connect()
        for _n in range(3):
            self.client.produce("t", b"abcd", b"k", [])
        self.pool.run()
        self.producer().deliver(2)
        self.cycle()
        self.assertEqual((self.client.pendingCount(), self.client.pendingBytes()), (1, 4))
        self.producer().deliver()
        self.cycle()
        self.assertEqual((self.client.pendingCount(), self.client.pendingBytes()), (0, 0))
        self.assertEqual(self.events.failed, [])

    def test_failures(self):
        """
        A failed delivery is reported with the record as the gateway gave it
        (headers included) and pykafka's error translated: a record too
        large is refused for good, a lost connection may be retried.
        """
        self.connect()
        self.client.produce("t", b"big", b"k", [("h", b"1")])
        self.client.produce("t", b"small", b"k", [])
        self.pool.run()
        self.producer().deliver(1, MessageSizeTooLarge("error code 10"))
        self.producer().deliver(1, SocketDisconnectedError("gone"))
        self.cycle()
        [(big, tooLarge), (small, lost)] = self.events.failed
        self.assertEqual(big, Record("t", b"k", [("h", b"1")], b"big"))
        self.assertEqual(
            (tooLarge.code, tooLarge.retriable, tooLarge.purged),
            ("MessageSizeTooLarge", False, False),
        )
        self.assertEqual(small.value, b"small")
        self.assertTrue(lost.retriable)
        self.assertEqual(self.client.pendingCount(), 0)

    def test_queueFull(self):
        """
        Records pykafka's queue cannot take wait on the worker, in order, and
        go when it has room: none is lost, none reported.
        """
        self.factory.capacity = 2
        self.connect()
        for n in range(5):
            self.client.produce("t", b"%d" % n, b"k", [])
        self.pool.run()
        producer = self.producer()
        self.assertEqual(len(producer.produced), 2)
        for _ in range(3):
            producer.deliver()
            self.cycle()
        self.assertEqual([m.value for m in producer.produced], [b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual(self.client.pendingCount(), 0)
        self.assertEqual(self.events.failed, [])

    def test_bounded(self):
        """
        Above the record count or the byte budget, C{produce} raises
        L{BufferError} and does not take the record; one record larger than
        the whole budget still goes when nothing else is pending.
        """
        self.connect(**{"queue.buffering.max.messages": 2, "queue.buffering.max.kbytes": 1})
        self.client.produce("t", b"x" * 2000, b"k", [])
        self.assertRaises(BufferError, self.client.produce, "t", b"y", b"k", [])
        self.pool.run()
        self.producer().deliver()
        self.cycle()
        self.client.produce("t", b"a", b"k", [])
        self.client.produce("t", b"b", b"k", [])
        self.assertRaises(BufferError, self.client.produce, "t", b"c", b"k", [])
        self.assertEqual(self.client.pendingCount(), 2)

    def test_tooLargeForTheClient(self):
        """
        A record over C{message.max.bytes} is refused by C{produce} itself,
        as librdkafka does, and is not taken.
        """
        self.connect(**{"message.max.bytes": 1000})
        with self.assertRaises(ValueError) as caught:
            self.client.produce("t", b"x" * 1000, b"k", [])
        self.assertIn("MSG_SIZE_TOO_LARGE", str(caught.exception))
        self.assertEqual(self.client.pendingCount(), 0)

    def test_deadProducerThread(self):
        """
        A pykafka producer whose own thread died is a fatal client error,
        reported once, so that the gateway recreates the client.
        """
        self.connect()
        self.client.produce("t", b"v", b"k", [])
        self.pool.run()
        self.producer()._worker_exception = (RuntimeError, RuntimeError("x"), None)
        self.cycle()
        self.cycle()
        [error] = self.events.errors
        self.assertTrue(error.fatal)


class PurgeTests(BackendMixin, SynchronousTestCase):
    """
    L{PykafkaClient.purge} and L{PykafkaClient.close}.
    """

    def test_purge(self):
        """
        Purging reports every record not yet confirmed as purged, once and at
        once, wherever it was (sent, waiting on the worker, not yet handed
        over); delivered ones are not reported; what pykafka had not taken
        is never produced; a report arriving later is ignored.
        """
        self.factory.capacity = 2
        self.connect()
        for n in range(4):
            self.client.produce("t", b"%d" % n, b"k", [])
        self.pool.run()
        producer = self.producer()
        producer.deliver(1)
        self.cycle()
        self.client.produce("t", b"4", b"k", [])
        self.client.purge()
        self.assertEqual(self.client.pendingCount(), 0)
        self.assertEqual(self.client.pendingBytes(), 0)
        self.assertEqual(
            [(r.value, e.purged) for r, e in self.events.failed],
            [(b"1", True), (b"2", True), (b"3", True), (b"4", True)],
        )
        self.pool.run()
        producer.deliver()
        self.cycle()
        self.assertEqual([m.value for m in producer.produced], [b"0", b"1", b"2"])
        self.assertEqual(len(self.events.failed), 4)
        self.assertRaises(BufferError, self.client.produce, "t", b"5", b"k", [])

    def test_serviceDrains(self):
        """
        L{KafkaProducerService} on this backend stops with exact counts: what
        was delivered, and what was purged at the deadline (spooled); the
        pykafka producer is stopped on the worker and the pool after it.
        """
        service = KafkaProducerService(
            self.backend,
            producerConfig("h:1"),
            self.reactor,
            drainTimeout=1.0,
        )
        self.pool.autorun = True
        service.startService()
        for n in range(3):
            service.produce("t", b"%d" % n, b"k", [])
        self.producer().deliver(2)
        stopped = service.stopService()
        self.reactor.advance(2)
        self.assertEqual(self.successResultOf(stopped), 1)
        self.assertEqual(service.delivered(), 2)
        self.assertTrue(self.producer().stopped)
        self.assertTrue(self.pool.stopped)
        self.assertIn(
            "2 records delivered, 1 not delivered",
            "".join(
                e["log_format"].format(**e)
                for e in self.log
                if "stopped" in e.get("log_format", "")
            ),
        )

    def test_closeGivesUp(self):
        """
        A producer that does not stop within the close timeout is left
        behind with a warning (its thread is a daemon), and the pool is not
        joined.
        """
        self.connect()
        self.client._closeTimeout = 0.01
        self.client.close()
        self.assertFalse(self.pool.stopped)
        self.assertTrue(any("did not stop" in e.get("log_format", "") for e in self.log))


def apiVersionsReply(produce, correlationId=1):
    body = struct.pack(">ihi", correlationId, 0, 2)
    body += struct.pack(">hhh", 18, 0, 3) + struct.pack(">hhh", 0, *produce)
    return struct.pack(">i", len(body)) + body


class FakeSocket:
    """
    A broker connection answering from a script: each C{sendall} queues the
    next scripted reply (C{None}: the broker closes the connection).
    """

    def __init__(self, replies):
        self.replies = list(replies)
        self.sent = []
        self.buffer = b""
        self.closed = False

    def settimeout(self, timeout):
        pass

    def sendall(self, data):
        self.sent.append(data)
        reply = self.replies.pop(0)
        self.buffer += reply if reply is not None else b""

    def recv(self, size):
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self):
        self.closed = True


class ProbeTests(SynchronousTestCase):
    """
    L{probeBroker} and L{checkBroker}: the Kafka 4 check.
    """

    def connector(self, *replies, refuse=()):
        self.sockets = []

        def connect(address, timeout):
            if address in refuse:
                raise ConnectionRefusedError(address)
            sock = FakeSocket(replies)
            self.sockets.append(sock)
            return sock

        return connect

    def test_kafka39(self):
        """
        Kafka 3.9 advertises Produce v0-v11 and answers an empty Produce v0:
        accepted.  The requests are ApiVersions v0 and Produce v0 without a
        topic, and the connection is closed afterwards.
        """
        produced = struct.pack(">ii", 4, 2) + struct.pack(">i", 0)
        connect = self.connector(apiVersionsReply((0, 11)), produced)
        self.assertEqual(probeBroker("h:9", connect=connect), (0, 11, True))
        [sock] = self.sockets
        self.assertEqual(sock.sent[0][4:12], struct.pack(">hhi", 18, 0, 1))
        self.assertEqual(sock.sent[1][4:12], struct.pack(">hhi", 0, 0, 2))
        self.assertEqual(sock.sent[1][-10:], struct.pack(">hii", 1, 1000, 0))
        self.assertTrue(sock.closed)
        checkBroker("h:9", connect=self.connector(apiVersionsReply((0, 11)), produced))

    def test_kafka4(self):
        """
        Kafka 4 still advertises Produce v0 but closes the connection on it:
        refused, naming the broker and the confluent backend.
        """
        connect = self.connector(apiVersionsReply((0, 13)), None)
        with self.assertRaises(UnsupportedBroker) as caught:
            checkBroker("h:9", connect=connect)
        message = str(caught.exception)
        self.assertIn("h:9", message)
        self.assertIn("Kafka 4", message)
        self.assertIn("--kafka-backend confluent", message)

    def test_noOldProduce(self):
        """
        A broker advertising no Produce version below 3 is refused without
        being sent one.
        """
        connect = self.connector(apiVersionsReply((3, 13)), b"")
        self.assertRaises(UnsupportedBroker, checkBroker, "h:9", connect=connect)

    def test_firstAnswerDecides(self):
        """
        Brokers that cannot be reached are skipped; none reachable is an
        L{OSError} naming each.
        """
        produced = struct.pack(">ii", 4, 2) + struct.pack(">i", 0)
        checkBroker(
            "a:1,b:2",
            connect=self.connector(apiVersionsReply((0, 11)), produced, refuse={("a", 1)}),
        )
        with self.assertRaises(OSError) as caught:
            checkBroker("a:1,b:2", connect=self.connector(refuse={("a", 1), ("b", 2)}))
        self.assertIn("a:1", str(caught.exception))
        self.assertIn("b:2", str(caught.exception))


class PartitionerTests(SynchronousTestCase):
    """
    L{crc32Partitioner}.
    """

    def test_likeLibrdkafka(self):
        """
        A key goes to partition CRC-32(key) mod count, as librdkafka's default
        partitioner does, whatever order pykafka lists partitions in.
        """
        Partition = namedtuple("Partition", "id")
        partitions = [Partition(2), Partition(0), Partition(1)]
        for key in (b"lines/127.0.0.1:5000", b"", b"x" * 100):
            self.assertEqual(crc32Partitioner(partitions, key).id, zlib.crc32(key) % 3)
        self.assertIn(crc32Partitioner(partitions, None), partitions)
