# -*- test-case-name: tests.kafka.test_producer -*-
"""
Tests for L{KafkaProducerService} on the confluent backend with a fake
C{Producer} and a L{Clock}.  The real client is exercised by the integration
tests.
"""

import os
import shutil
import tempfile
from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.producer import (
    RECORD_OVERHEAD,
    KafkaProducerService,
    ackProblem,
    producerConfig,
)
from gateway.kafka.records import Record, RecordFile
from tests.fakes import FakeKafkaError, fakeBackend


class RecordingObserver:
    def __init__(self):
        self.events = []

    def producerBlocked(self):
        self.events.append("blocked")

    def producerUnblocked(self):
        self.events.append("unblocked")

    def deliveryFailed(self, record, error):
        self.events.append(("failed", error.code, record.value))

    def polled(self):
        pass

    def restoreRecord(self, record):
        return record


class ProducerConfigTests(SynchronousTestCase):
    """
    L{producerConfig}.
    """

    def test_safeDefaults(self):
        """
        The producer waits for all in-sync replicas, is idempotent, never
        expires records and reports only failed deliveries.
        """
        config = producerConfig("h:1")
        self.assertEqual(config["bootstrap.servers"], "h:1")
        self.assertEqual(config["acks"], "all")
        self.assertIs(config["enable.idempotence"], True)
        self.assertEqual(config["message.timeout.ms"], 0)
        self.assertIs(config["delivery.report.only.error"], True)

    def test_userOptionsWin(self):
        """
        Options given by the user override the defaults.
        """
        config = producerConfig("h:1", {"linger.ms": "50", "acks": "1"})
        self.assertEqual((config["linger.ms"], config["acks"]), ("50", "1"))

    def test_sizes(self):
        """
        The client's size limit leaves room for the largest accepted message;
        its queue is capped to the byte budget.
        """
        self.assertEqual(producerConfig("h:1", maxMessageSize=10)["message.max.bytes"], 1000000)
        self.assertGreater(
            producerConfig("h:1", maxMessageSize=4_000_000)["message.max.bytes"], 4_000_000
        )
        self.assertEqual(
            producerConfig("h:1", budget=64 * 1024 * 1024)["queue.buffering.max.kbytes"],
            65536,
        )


class ProducerServiceMixin:
    def setUp(self):
        self.clock = Clock()
        self.observer = RecordingObserver()
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory)
        self.spoolPath = os.path.join(self.directory, "spool.jsonl")
        self.deadPath = os.path.join(self.directory, "dead.jsonl")
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def makeService(self, capacity=1000, drainTimeout=30.0, start=True, recreateAfter=120.0):
        self.backend = fakeBackend(capacity)
        service = KafkaProducerService(
            self.backend,
            producerConfig("h:1"),
            clock=self.clock,
            pollInterval=0.1,
            drainTimeout=drainTimeout,
            spoolPath=self.spoolPath,
            deadLetterPath=self.deadPath,
            retryPolicy=lambda attempt: 2.0**attempt,
            recreateAfter=recreateAfter,
        )
        service.observer = self.observer
        if start:
            service.privilegedStartService()
            service.startService()
        return service

    def producer(self, index=-1):
        return self.backend.producers[index]

    def values(self, index=-1):
        return [m.value() for m in self.producer(index).produced]


class KafkaProducerServiceTests(ProducerServiceMixin, SynchronousTestCase):
    """
    Producing, back-pressure, refusals and retries.
    """

    def test_oneClientWithCallbacks(self):
        """
        Starting creates one client whose delivery, error and statistics
        callbacks lead back to the service; starting again creates no other.
        """
        service = self.makeService()
        service.startService()
        self.assertEqual(len(self.backend.producers), 1)
        config = self.producer().config
        for callback in ("on_delivery", "error_cb", "stats_cb"):
            self.assertTrue(callable(config[callback]))
        self.assertEqual(config["bootstrap.servers"], "h:1")

    def test_produceManyHandsRecordsToClient(self):
        """
        C{produceMany} passes the topic, each value, the key and the headers
        to the client, in order, and counts what it took as accepted and
        produced.
        """
        service = self.makeService()
        taken = service.produceMany("t", [b"a", b"bb"], b"k", [("h", b"v")])
        self.assertEqual(taken, 2)
        self.assertEqual(
            [(m.topic(), m.value(), m.key(), m.headers()) for m in self.producer().produced],
            [("t", b"a", b"k", [("h", b"v")]), ("t", b"bb", b"k", [("h", b"v")])],
        )
        self.assertEqual((service.accepted, service.produced), (2, 2))

    def test_produceManyBeforeStartTakesNothing(self):
        """
        Before the start there is no client: C{produceMany} takes nothing
        and counts nothing (the caller offers each record to C{produce}).
        """
        service = self.makeService(start=False)
        self.assertEqual(service.produceMany("t", [b"a"], b"k", None), 0)
        self.assertEqual((service.accepted, service.produced), (0, 0))

    def test_produceTrackedManyHandsRecordsToClient(self):
        """
        C{produceTrackedMany} passes everything to the client's
        C{produceTrackedMany} and counts what it took; with a backlog, or a
        client without one (the fake here, and before the start), it takes
        nothing.
        """
        service = self.makeService(start=False)
        args = ("t", [b"a", b"b"], b"k", [("h", b"v")], "gateway-seq", object(), 7)
        self.assertEqual(service.produceTrackedMany(*args), 0)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(service.produceTrackedMany(*args), 0)
        calls = []

        def produceTrackedMany(*given):
            calls.append(given)
            return 1

        service._produceTrackedMany = produceTrackedMany
        self.assertEqual(service.produceTrackedMany(*args), 1)
        self.assertEqual(calls, [args])
        self.assertEqual((service.accepted, service.produced), (1, 1))
        service._backlog.hold(Record("t", b"k", [], b"held"))
        self.assertEqual(service.produceTrackedMany(*args), 0)
        self.assertEqual(len(calls), 1)

    def test_produceHandsRecordToClient(self):
        """
        C{produce} passes topic, value, key and headers to the client.
        """
        service = self.makeService()
        service.produce("t", b"payload", b"k", [("h", b"v")])
        [message] = self.producer().produced
        self.assertEqual(
            (message.topic(), message.value(), message.key(), message.headers()),
            ("t", b"payload", b"k", [("h", b"v")]),
        )
        self.assertEqual((service.accepted, service.produced), (1, 1))

    def test_pollOnTimer(self):
        """
        The client is polled on the reactor's clock, not per message.
        """
        service = self.makeService()
        for _i in range(10):
            service.produce("t", b"m")
        self.assertEqual(self.producer().polls, 0)
        self.clock.advance(0.1)
        self.assertEqual(self.producer().polls, 1)

    def test_fullQueueBacklogsInOrder(self):
        """
        A full client queue puts records in a backlog, in order, and every
        record joining it tells the observer to block; once the queue has
        room the backlog goes first and the observer is told to unblock.
        """
        service = self.makeService(capacity=2)
        for i in range(5):
            service.produce("t", b"%d" % i)
        self.assertEqual(self.observer.events, ["blocked"] * 3)
        self.assertEqual((service.pending(), service.backlogBytes), (5, 3))
        self.producer().confirm()
        self.clock.advance(0.1)
        self.producer().confirm()
        self.clock.advance(0.1)
        self.assertEqual(self.observer.events[-1], "unblocked")
        self.assertEqual(self.values(), [b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual(service.backlogBytes, 0)

    def test_heldBytesAndBrokers(self):
        """
        Bytes held are the payloads of the backlog and of the client's queue
        (from its statistics) plus a fixed overhead per record; the brokers
        up come from the statistics too.
        """
        service = self.makeService(capacity=1)
        service.produce("t", b"queued")
        service.produce("t", b"backlog!")
        self.assertIsNone(service.brokersUp())
        self.producer().reportStatistics()
        self.producer().poll(0)
        self.assertEqual(service.heldBytes(), 6 + 8 + 2 * RECORD_OVERHEAD)
        self.assertEqual(service.brokersUp(), 1)

    def test_latencyAndBytesFromStatistics(self):
        """
        Delivery latency quantiles (the worst broker's, in seconds) and the
        bytes sent come from the client's statistics, not from per-message
        work; a stage without samples is left out.
        """
        import json

        service = self.makeService()
        self.assertEqual(service.latency(), {})
        window = {"cnt": 10, "p50": 2000, "p95": 9000, "p99": 20000}
        self.producer().config["stats_cb"](
            json.dumps(
                {
                    "msg_size": 0,
                    "brokers": {
                        "b/1": {
                            "nodeid": 1,
                            "state": "UP",
                            "txbytes": 700,
                            "int_latency": window,
                            "rtt": {"cnt": 0},
                        },
                        "b/2": {
                            "nodeid": 2,
                            "state": "UP",
                            "txbytes": 300,
                            "int_latency": dict(window, p99=50000),
                            "rtt": {"cnt": 0},
                        },
                        "b/bootstrap": {"nodeid": -1, "state": "UP", "txbytes": 24},
                    },
                }
            )
        )
        self.assertEqual(service.latency(), {"queue": {"0.5": 0.002, "0.95": 0.009, "0.99": 0.05}})
        self.assertEqual(service.bytesSent(), 1024)

    def test_refusedAtProduceGoesToDeadLetters(self):
        """
        A record the client refuses at once (too large) is written to the
        dead-letter file, counted and logged; the next record goes through.
        """
        service = self.makeService()
        service.produce("t", b"x" * 200_000, b"k", [])
        service.produce("t", b"ok")
        self.assertEqual((service.deadLettered, service.produced), (1, 1))
        [record] = RecordFile(self.deadPath).read()
        self.assertEqual(record, Record("t", b"k", [], b"x" * 200_000))
        self.assertTrue(any(e.get("size") == 200_000 for e in self.events))

    def test_refusedDeliveryGoesToDeadLetters(self):
        """
        A delivery Kafka refuses for good reaches the observer and the
        dead-letter file, with its reason.
        """
        service = self.makeService()
        service.produce("t", b"doomed")
        self.producer().fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED"))
        self.clock.advance(0.1)
        self.assertEqual(
            self.observer.events, [("failed", "TOPIC_AUTHORIZATION_FAILED", b"doomed")]
        )
        self.assertEqual(service.deadLettered, 1)
        with open(self.deadPath) as f:
            self.assertIn("TOPIC_AUTHORIZATION_FAILED", f.read())

    def test_tooLargeBatchRefusesOnlyTheLargest(self):
        """
        When the broker refuses a batch because one record is too large,
        only the largest record of the batch is dead-lettered; its
        batch-mates are produced again, in order.
        """
        service = self.makeService()
        for value in (b"small-1", b"x" * 5000, b"small-2"):
            service.produce("t", value)
        tooLarge = FakeKafkaError("MSG_SIZE_TOO_LARGE")
        for _i in range(3):
            self.producer().fail(tooLarge)
        self.clock.advance(0.1)
        self.assertEqual(service.deadLettered, 1)
        self.assertEqual([r.value for r in RecordFile(self.deadPath).read()], [b"x" * 5000])
        self.assertEqual(self.values()[3:], [b"small-1", b"small-2"])

    def test_reportedRecordsRestoredByObserver(self):
        """
        A failed record goes through the observer's C{restoreRecord} before
        it is spooled or dead-lettered (to get back what the client's report
        lacks).
        """
        self.observer.restoreRecord = lambda record: record._replace(headers=[("h", b"v")])
        service = self.makeService()
        service.produce("t", b"doomed")
        self.producer().fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED"))
        self.clock.advance(0.1)
        [record] = RecordFile(self.deadPath).read()
        self.assertEqual(record.headers, [("h", b"v")])

    def test_timedOutIsProducedAgain(self):
        """
        A record a client timeout gave up on is produced again, first, not
        dropped or dead-lettered.
        """
        service = self.makeService()
        service.produce("t", b"slow")
        service.produce("t", b"next")
        self.producer().fail(FakeKafkaError("_MSG_TIMED_OUT", retriable=True))
        self.clock.advance(0.1)
        self.assertEqual(self.values(), [b"slow", b"next", b"slow"])
        self.assertEqual((service.requeued, service.deadLettered), (1, 0))

    def test_fatalErrorRecreatesClient(self):
        """
        A fatal error recreates the client after the backoff delay, and what
        the old client had not confirmed is produced first by the new one,
        in order.
        """
        service = self.makeService()
        for value in (b"a", b"b"):
            service.produce("t", value)
        self.producer().confirm(1)
        self.producer().reportError(FakeKafkaError("_FENCED", fatal=True))
        self.clock.advance(0.1)
        self.assertEqual(len(self.backend.producers), 1)
        service.produce("t", b"c")
        self.clock.advance(1.0)
        self.assertEqual(len(self.backend.producers), 2)
        # b was never confirmed and c was queued in the old client: both
        # come back first, in order.
        self.assertEqual(self.values(0), [b"a", b"b", b"c"])
        self.assertEqual(self.values(), [b"b", b"c"])
        self.assertEqual((service.recreations, service.requeued), (1, 2))

    def test_failedDuringPendingRecreationWaitsForNewClient(self):
        """
        A record the old client gives up on while a recreation waits for its
        delay is not produced to that client again: the new one produces it
        first, once, and in its place before what the old one still held.
        """
        service = self.makeService()
        for value in (b"a", b"b"):
            service.produce("t", value)
        self.producer().reportError(FakeKafkaError("_FENCED", fatal=True))
        self.clock.advance(0.1)
        self.producer().fail(FakeKafkaError("_MSG_TIMED_OUT", retriable=True))
        self.clock.advance(0.1)
        self.assertEqual(self.values(0), [b"a", b"b"])
        self.clock.advance(1.0)
        self.assertEqual(len(self.backend.producers), 2)
        self.assertEqual(self.values(0), [b"a", b"b"])
        self.assertEqual(self.values(), [b"a", b"b"])
        self.assertEqual(service.requeued, 2)

    def test_longOutageRecreatesClient(self):
        """
        When every broker stays down for C{recreateAfter} seconds the client
        is recreated (after the backoff delay) and its unconfirmed records
        are produced again; a shorter outage recreates nothing.
        """
        service = self.makeService(recreateAfter=60)
        service.produce("t", b"waiting")
        down = FakeKafkaError("_ALL_BROKERS_DOWN", "1/1 brokers are down")
        self.producer().brokerState = "DOWN"
        self.producer().reportError(down)
        self.producer().reportStatistics()
        self.clock.pump([0.1] * 300)
        self.producer().brokerState = "UP"
        self.producer().reportStatistics()
        self.clock.pump([0.1] * 400)
        self.assertEqual(len(self.backend.producers), 1)
        self.producer().brokerState = "DOWN"
        self.producer().reportError(down)
        self.producer().reportStatistics()
        self.clock.pump([0.1] * 620)
        self.assertEqual(len(self.backend.producers), 2)
        self.assertEqual(self.values(), [b"waiting"])

    def test_clientTypeErrorIsRefusal(self):
        """
        A L{TypeError} raised by the client's C{produce} (a bug in the client
        or a record it cannot take) is handled like any other refusal: the
        record is dead-lettered with the error's type and text, nothing is
        raised to the caller (a protocol), and later records go through.
        """
        service = self.makeService()
        self.producer().refusing[b"first"] = TypeError("a bytes-like object is required")
        service.produce("t", b"first", b"k", [("h", b"v")])
        service.produce("t", b"second")
        self.assertEqual((service.deadLettered, service.produced), (1, 1))
        [dead] = RecordFile(self.deadPath).read()
        self.assertEqual((dead.key, dead.headers, dead.value), (b"k", [("h", b"v")], b"first"))
        with open(self.deadPath) as f:
            self.assertIn("TypeError: a bytes-like object is required", f.read())
        self.assertEqual(self.values(), [b"second"])

    def test_clientTypeErrorFromBacklogIsRefusal(self):
        """
        A L{TypeError} from the client while the backlog is moved into it
        dead-letters that record only; the rest of the backlog follows.
        """
        service = self.makeService(capacity=1)
        for value in (b"0", b"1", b"2"):
            service.produce("t", value)
        self.producer().refusing[b"1"] = TypeError("bad record")
        self.producer().confirm()
        self.clock.advance(0.1)
        self.assertEqual(service.deadLettered, 1)
        self.assertEqual([r.value for r in RecordFile(self.deadPath).read()], [b"1"])
        self.producer().confirm()
        self.clock.advance(0.1)
        self.assertEqual(self.values(), [b"0", b"2"])

    def test_noClientBetweenFatalErrorAndRecreation(self):
        """
        Between a fatal error and the recreation there may be no client (a
        recreation the backend refused): records offered then wait in the
        backlog, clients are paused, and the new client produces them after
        what the old one had not confirmed.
        """
        service = self.makeService()
        service.produce("t", b"a")
        self.producer().reportError(FakeKafkaError("_FENCED", fatal=True))
        self.clock.advance(0.1)
        self.backend.refuse = RuntimeError("resolver down")
        self.clock.advance(1.0)
        self.assertFalse(service.hasClient())
        service.produce("t", b"b")
        service.produce("t", b"c")
        self.assertEqual(self.observer.events, ["blocked", "blocked"])
        self.assertEqual(service.pending(), 3)
        self.backend.refuse = None
        self.clock.advance(2.0)
        self.assertTrue(service.hasClient())
        self.assertEqual(self.values(), [b"a", b"b", b"c"])
        self.assertEqual(self.observer.events[-1], "unblocked")
        self.assertEqual(service.recreations, 1)

    def test_badConfigurationFailsStart(self):
        """
        A configuration the client refuses stops the start with an error
        saying so, before any listener could bind.
        """

        class Refusing:
            name = "refusing"

            def connect(self, config, events, reactor):
                raise RuntimeError('No such configuration property: "lingr.ms"')

        service = KafkaProducerService(Refusing(), producerConfig("h:1"), clock=self.clock)
        error = self.assertRaises(ValueError, service.privilegedStartService)
        self.assertIn("lingr.ms", str(error))


class HeldRecordTests(ProducerServiceMixin, SynchronousTestCase):
    """
    Records held by the service (backlog, spool) keep every field, and the
    counters and status figures are exact.
    """

    def test_backlogKeepsFields(self):
        """
        A record the client's full queue refused, and one produced while a
        backlog exists, reach the client later with their topic, key and
        headers.
        """
        service = self.makeService(capacity=1)
        service.produce("t", b"first")
        service.produce("u", b"refused", b"k1", [("h", b"1")])
        service.produce("w", b"queued", b"k2", [("h", b"2")])
        self.producer().confirm()
        self.clock.advance(0.1)
        self.producer().confirm()
        self.clock.advance(0.1)
        self.assertEqual(
            [(m.topic(), m.key(), m.headers(), m.value()) for m in self.producer().produced],
            [
                ("t", None, None, b"first"),
                ("u", b"k1", [("h", b"1")], b"refused"),
                ("w", b"k2", [("h", b"2")], b"queued"),
            ],
        )

    def test_producedBeforeStart(self):
        """
        A record produced before the service starts waits in the backlog
        (the clients are told to pause), not in the spool, and goes to the
        client once it exists.
        """
        service = self.makeService(start=False)
        service.produce("t", b"early")
        self.assertEqual((service.spooled, self.observer.events), (0, ["blocked"]))
        service.privilegedStartService()
        service.startService()
        self.clock.advance(0.1)
        self.assertEqual(self.values(), [b"early"])

    def test_stopUnstarted(self):
        """
        Stopping a service that never started has nothing to drain.
        """
        service = self.makeService(start=False)
        self.assertIsNone(service.stopService())

    def test_pollLoopFailureLogged(self):
        """
        An exception escaping a poll stops the poll loop and is logged as a
        failure, with the exception.
        """

        class Broken(RecordingObserver):
            def polled(self):
                raise ZeroDivisionError()

        service = self.makeService()
        service.observer = Broken()
        self.clock.advance(0.1)
        [event] = [e for e in self.events if "log_failure" in e]
        self.assertIsInstance(event["log_failure"].value, ZeroDivisionError)
        self.assertEqual(event["log_level"].name, "critical")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_noTimersLeftAfterDrain(self):
        """
        Once drained, the service leaves no timer on the clock: the poll
        loop stopped with the drain.
        """
        service = self.makeService()
        service.produce("t", b"a")
        d = service.stopService()
        self.producer().confirm()
        self.clock.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tooLargeInSuccessivePolls(self):
        """
        Records refused as too large in two successive polls are each
        dead-lettered.
        """
        service = self.makeService()
        for value in (b"a" * 10, b"b" * 10):
            service.produce("t", value)
        for _ in range(2):
            self.producer().fail(FakeKafkaError("MSG_SIZE_TOO_LARGE"))
            self.clock.advance(0.1)
        self.assertEqual(service.deadLettered, 2)

    def test_requeuedCounted(self):
        """
        Records the client gave up on (retriable failures) in two polls are
        both counted as produced again.
        """
        service = self.makeService()
        for value in (b"a", b"b"):
            service.produce("t", value)
        for _ in range(2):
            self.producer().fail(FakeKafkaError("_MSG_TIMED_OUT", retriable=True))
            self.clock.advance(0.1)
        self.assertEqual(service.requeued, 2)

    def test_spooledRecordsCounted(self):
        """
        Records loaded from the spool count as accepted, with those produced
        afterwards.
        """
        RecordFile(self.spoolPath).replace(
            [Record("t", None, [], b"a"), Record("t", None, [], b"b")]
        )
        service = self.makeService()
        service.produce("t", b"new")
        self.assertEqual(service.accepted, 3)
        [loaded] = [e for e in self.events if "path" in e]
        self.assertEqual((loaded["count"], loaded["path"]), (2, self.spoolPath))
        line = formatEvent(loaded)
        self.assertNotIn("Unable to format", line)
        self.assertIn(self.spoolPath, line)

    def test_lateRecordsCounted(self):
        """
        Each record appended to the spool after the drain counts once as
        spooled.
        """
        service = self.makeService()
        d = service.stopService()
        self.clock.advance(0.1)
        self.successResultOf(d)
        service.produce("t", b"late", b"k", [("h", b"v")])
        service.produce("t", b"later")
        self.assertEqual(service.spooled, 2)
        [late, later] = RecordFile(self.spoolPath).read()
        self.assertEqual((late.key, late.headers, later.value), (b"k", [("h", b"v")], b"later"))

    def test_lastDeliveryAge(self):
        """
        The status gives no delivery age before the first confirmed
        delivery, then the seconds since the poll that saw it.
        """
        service = self.makeService()
        self.assertIsNone(service.status()["lastDeliveryAge"])
        service.produce("t", b"a")
        self.producer().confirm()
        self.clock.advance(0.1)
        self.clock.advance(2.0)
        self.assertAlmostEqual(service.status()["lastDeliveryAge"], 2.0)


class DrainAndSpoolTests(ProducerServiceMixin, SynchronousTestCase):
    """
    Stopping, the spool, and the next start.
    """

    def test_stopDrains(self):
        """
        Stopping polls until everything is confirmed, without blocking, then
        fires with nothing left and writes no spool.
        """
        service = self.makeService()
        service.produce("t", b"a")
        d = service.stopService()
        self.assertNoResult(d)
        self.producer().confirm()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertFalse(os.path.exists(self.spoolPath))
        self.assertTrue(any(e.get("delivered") == 1 and e.get("left") == 0 for e in self.events))

    def test_drainTimeoutSpoolsTheRest(self):
        """
        What Kafka has not confirmed by the drain deadline (queued or in the
        backlog) is written to the spool in order, and the exact counts are
        logged.
        """
        service = self.makeService(capacity=2, drainTimeout=1.0)
        for value in (b"1", b"2", b"3", b"4"):
            service.produce("t", value)
        self.producer().confirm(1)
        self.clock.advance(0.1)
        d = service.stopService()
        self.clock.pump([0.1] * 11)
        self.assertEqual(self.successResultOf(d), 3)
        spooled = [r.value for r in RecordFile(self.spoolPath).read()]
        self.assertEqual(spooled, [b"2", b"3", b"4"])
        self.assertEqual(service.delivered(), 1)
        [summary] = [e for e in self.events if "left" in e]
        self.assertEqual((summary["delivered"], summary["left"]), (1, 3))

    def test_drainDeadline(self):
        """
        The drain still polls just before its deadline and ends at it; the
        start and the end of the drain are logged with the records pending,
        and the summary with what was spooled and dead-lettered.
        """
        service = self.makeService(drainTimeout=1.0)
        for value in (b"1", b"2"):
            service.produce("t", value)
        d = service.stopService()
        self.clock.advance(0.99)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d), 2)
        [start] = [e for e in self.events if "pending" in e]
        [summary] = [e for e in self.events if "left" in e]
        self.assertEqual(start["pending"], 2)
        self.assertEqual((summary["left"], summary["spooled"], summary["deadLettered"]), (2, 2, 0))

    def test_nextStartProducesSpoolFirst(self):
        """
        The next start produces the spool before anything new, and removes
        the spool once everything is confirmed.
        """
        RecordFile(self.spoolPath).replace([Record("t", b"k", [("h", b"v")], b"old")])
        service = self.makeService()
        service.produce("t", b"new")
        self.assertFalse(os.path.exists(self.spoolPath))
        self.assertTrue(os.path.exists(self.spoolPath + ".replaying"))
        self.clock.advance(0.1)
        self.assertEqual(self.values(), [b"old", b"new"])
        self.assertTrue(os.path.exists(self.spoolPath + ".replaying"))
        self.assertEqual(self.producer().produced[0].headers(), [("h", b"v")])
        self.producer().confirm()
        self.clock.advance(0.1)
        self.assertFalse(os.path.exists(self.spoolPath + ".replaying"))

    def test_crashWhileReplayingKeepsRecords(self):
        """
        If the gateway dies before the spooled records are confirmed, the
        next start produces them again (the replaying file was kept).
        """
        RecordFile(self.spoolPath).replace([Record("t", None, [], b"old")])
        self.makeService()
        self.makeService()
        self.clock.advance(0.1)
        self.assertEqual(self.values(), [b"old"])

    def test_lateRecordsGoToSpool(self):
        """
        A record arriving after the drain (a connection closing with whole
        messages buffered) is appended to the spool, not lost.
        """
        service = self.makeService()
        d = service.stopService()
        self.clock.advance(0.1)
        self.successResultOf(d)
        service.produce("t", b"late")
        self.assertEqual([r.value for r in RecordFile(self.spoolPath).read()], [b"late"])

    def test_stopWithoutClientSpoolsAtOnce(self):
        """
        Stopping while there is no client (its recreation was refused)
        spools the backlog at once, without waiting for a drain deadline.
        """
        service = self.makeService()
        self.producer().reportError(FakeKafkaError("_FENCED", fatal=True))
        self.clock.advance(0.1)
        self.backend.refuse = RuntimeError("resolver down")
        self.clock.advance(1.0)
        service.produce("t", b"waiting")
        d = service.stopService()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual([r.value for r in RecordFile(self.spoolPath).read()], [b"waiting"])

    def test_spoolDirectoryRemovedStopEnds(self):
        """
        A stop whose spool cannot be written (its directory removed) still
        ends at the drain deadline, counts every record left as not kept
        and says so, as an error, in its last line.
        """
        service = self.makeService(drainTimeout=1.0)
        for value in (b"1", b"2"):
            service.produce("t", value)
        shutil.rmtree(self.directory)
        d = service.stopService()
        self.clock.pump([0.1] * 11)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual((service.spooled, service.unkept), (0, 2))
        [summary] = [e for e in self.events if "left" in e]
        self.assertEqual(summary["log_level"].name, "error")
        self.assertEqual((summary["left"], summary["spooled"], summary["unkept"]), (2, 0, 2))
        self.assertIn(f"cannot write the spool {self.spoolPath}", summary["why"])
        os.mkdir(self.directory)

    def test_stopFailureStillEnds(self):
        """
        Whatever fails while finishing the stop, the stop's L{Deferred}
        fires (with what was pending), the failure is logged, and the
        records are counted as not kept.
        """
        service = self.makeService(drainTimeout=0.0)
        service.produce("t", b"1")

        def broken(records):
            raise RuntimeError("broken")

        service.storage.save = broken
        d = service.stopService()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(service.unkept, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_stopFailureBeforeCounting(self):
        """
        A stop that fails before it counts what is left counts every
        pending record as not kept, and logs the failure as the producer's
        stop failing.
        """
        service = self.makeService(drainTimeout=0.0)
        for value in (b"1", b"2", b"3"):
            service.produce("t", value)

        def broken():
            raise RuntimeError("broken")

        service._keeper.close = broken
        d = service.stopService()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 3)
        self.assertEqual(service.unkept, 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        [event] = [e for e in self.events if e.get("log_failure") is not None]
        self.assertEqual(event["log_format"], "the Kafka producer's stop failed")

    def test_unkeptLine(self):
        """
        Records the spool cannot take at the stop are said lost in the stop's
        line, with why.
        """
        service = self.makeService(drainTimeout=0.0)
        service.produce("t", b"1")
        shutil.rmtree(self.directory)
        self.addCleanup(os.makedirs, self.directory, exist_ok=True)
        d = service.stopService()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 1)
        [line] = [formatEvent(e) for e in self.events if "unkept" in e]
        self.assertTrue(
            line.startswith(
                "Kafka producer stopped: 0 records delivered, 1 not delivered "
                "(0 spooled), 0 dead-lettered, 1 could not be kept ("
            ),
            line,
        )
        self.assertTrue(line.endswith("): lost"), line)

    def test_storageProblemsSeenWhileRunning(self):
        """
        While running, the producer notices within a few seconds that the
        spool cannot be written, and when it can again.
        """
        service = self.makeService()
        self.assertEqual(service.storageProblems, [])
        shutil.rmtree(self.directory)
        self.clock.pump([0.1] * 60)
        self.assertEqual(len(service.storageProblems), 2)
        os.mkdir(self.directory)
        self.clock.pump([0.1] * 60)
        self.assertEqual(service.storageProblems, [])

    def test_noSpoolConfiguredLogsLoss(self):
        """
        Without a spool, records left at stop are counted and logged as
        lost.
        """
        self.backend = fakeBackend()
        service = KafkaProducerService(
            self.backend,
            producerConfig("h:1"),
            clock=self.clock,
            pollInterval=0.1,
            drainTimeout=0.0,
        )
        service.privilegedStartService()
        service.startService()
        service.produce("t", b"x")
        d = service.stopService()
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), 1)
        [lost] = [e for e in self.events if "lost" in e.get("log_format", "")]
        self.assertEqual((lost["log_level"].name, lost["count"]), ("error", 1))


class _Tracker:
    """
    An ack-mode connection as the producer sees it: it is told each
    outcome.
    """

    deliveryCallback = None

    def __init__(self):
        self.settled = []
        self.delivered = lambda error, value: None

    def settle(self, seq, reason):
        self.settled.append((seq, reason))


class TrackedRecordTests(ProducerServiceMixin, SynchronousTestCase):
    """
    L{KafkaProducerService.produceTracked} and the conditions of ack mode
    (L{ackProblem}, L{KafkaProducerService.confirmDeliveries}).
    """

    def test_counts(self):
        """
        Every record is accepted; only those the client takes at once are
        produced, and only they are said to be taken.
        """
        from confluent_kafka import KafkaException

        service = self.makeService(capacity=2)
        self.addCleanup(service.stopService)
        self.producer().refusing[b"big"] = KafkaException(FakeKafkaError("MSG_SIZE_TOO_LARGE"))
        tracker = _Tracker()
        taken = [
            service.produceTracked("t", value, b"k", [("h", b"v")], tracker, seq)
            for seq, value in enumerate([b"a", b"big", b"b", b"c"], 1)
        ]
        self.assertEqual(taken, [True, False, True, False])
        self.assertEqual((service.accepted, service.produced), (4, 2))

    def test_beforeStartHeld(self):
        """
        Before the start there is no client: a tracked record waits, it is
        not refused.
        """
        service = self.makeService(start=False)
        tracker = _Tracker()
        self.assertFalse(service.produceTracked("t", b"a", None, [], tracker, 1))
        self.assertEqual((service.deadLettered, tracker.settled), (0, []))
        self.assertEqual(service.pending(), 1)

    def test_refusedAtProduceKeepsFields(self):
        """
        A record the client refuses at once is dead-lettered whole, and its
        number refused with the reason.
        """
        from confluent_kafka import KafkaException

        service = self.makeService()
        self.addCleanup(service.stopService)
        self.producer().refusing[b"big"] = KafkaException(FakeKafkaError("MSG_SIZE_TOO_LARGE"))
        tracker = _Tracker()
        service.produceTracked("t", b"big", b"k", [("h", b"v")], tracker, 7)
        self.assertEqual(
            [r[:4] for r in RecordFile(self.deadPath).read()], [("t", b"k", [("h", b"v")], b"big")]
        )
        self.assertEqual(tracker.settled, [(7, "too-large")])

    def test_heldKeepsFields(self):
        """
        A record the client has no room for waits whole, and is produced
        with its fields once there is room.
        """
        service = self.makeService(capacity=1)
        self.addCleanup(service.stopService)
        tracker = _Tracker()
        service.produceTracked("t", b"a", b"k", [("h", b"v")], tracker, 1)
        service.produceTracked("u", b"b", b"j", [("g", b"w")], tracker, 2)
        self.producer().confirm()
        service._poll()
        [message] = self.producer().queue
        self.assertEqual(
            (message.topic(), message.key(), message.headers(), message.value()),
            ("u", b"j", [("g", b"w")], b"b"),
        )

    def test_ackProblem(self):
        """
        Ack mode needs a backend confirming each delivery and C{acks=all}
        (the default, also written C{-1}); the reasons are one line each.
        """
        confirming = SimpleNamespace(name="c", confirmsDeliveries=True)
        self.assertEqual(
            [ackProblem(confirming, config) for config in ({}, {"acks": "-1"}, {"acks": "ALL"})],
            [None, None, None],
        )
        self.assertEqual(
            ackProblem(confirming, {"acks": "1"}),
            "ack=on acknowledges what every in-sync replica has: it needs the "
            "producer property acks=all, not acks=1",
        )
        self.assertEqual(
            ackProblem(SimpleNamespace(name="p"), {}),
            "ack=on needs a producer backend that confirms each delivery; "
            "'p' does not (use --kafka-backend confluent)",
        )

    def test_confirmDeliveries(self):
        """
        C{confirmDeliveries} raises the backend's problem; once deliveries
        are confirmed, asking again is nothing, even after the start; asked
        first after the start, it is refused.
        """
        service = self.makeService(start=False)
        self.backend.confirmsDeliveries = False
        with self.assertRaises(ValueError) as raised:
            service.confirmDeliveries()
        self.assertEqual(str(raised.exception), ackProblem(self.backend, service.config))
        self.backend.confirmsDeliveries = True
        service.confirmDeliveries()
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        service.confirmDeliveries()
        late = self.makeService()
        self.addCleanup(late.stopService)
        with self.assertRaises(ValueError) as raised:
            late.confirmDeliveries()
        self.assertEqual(
            str(raised.exception), "listeners with ack=on must be added before the gateway starts"
        )
