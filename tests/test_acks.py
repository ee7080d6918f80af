# -*- test-case-name: tests.test_acks -*-
"""
Tests for L{gateway.acks}: ack mode's numbering, sessions, batching, NACKs
and the bound on unread acknowledgements, on a clock, with the real router
and producer service on the fake confluent producer.  The encodings are
checked byte for byte against C{docs/framings.md}.
"""

from pathlib import Path

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.acks import (
    BAD_SESSION,
    NO_SESSION,
    SEQ_HEADER,
    SESSION_HEADER,
    UNREAD_LIMIT,
    parseSession,
)
from gateway.framing.lengthprefix import LengthPrefixedProtocol
from gateway.framing.lines import LinesProtocol
from gateway.framing.netstring import NetstringProtocol
from gateway.framing.octetcounting import OctetCountingProtocol
from gateway.framing.options import ACK, ACK_INTERVAL
from gateway.framing.varint import VarintProtocol
from gateway.interfaces import IMessageStream
from gateway.kafka.config import producerConfig
from gateway.kafka.producer import KafkaProducerService
from gateway.kafka.records import DeliveryError, Receipt, Record
from gateway.router import LISTENER_HEADER, PEER_HEADER, MessageStream, Router
from gateway.routing import Route, TopicTemplate
from gateway.settings import SettingsError, checkSettings
from tests.fakes import FakeKafkaError, fakeBackend
from tests.support.acks import ackConnection

#: A failure the producer produces again.
FakeDeliveryError = DeliveryError("_MSG_TIMED_OUT", "timed out", retriable=True)


class AckModeMixin:
    """
    A router and a started producer service on the fake confluent producer,
    with delivery confirmation on.
    """

    def setUp(self):
        self.clock = Clock()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.backend = fakeBackend()
        self.producer = KafkaProducerService(
            self.backend, producerConfig("h:1"), clock=self.clock, pollInterval=0.1
        )
        self.producer.confirmDeliveries()
        self.producer.startService()
        self.addCleanup(self.producer.stopService)
        self.router = Router(self.producer, "events")

    @property
    def kafka(self):
        """
        The fake librdkafka producer.
        """
        return self.backend.producers[-1]

    def connect(self, **kwargs):
        return ackConnection(self.router, self.clock, **kwargs)

    def records(self):
        """
        What the producer took: C{(key, headers as a dict, value)} each.
        """
        return [(m.key(), dict(m.headers()), m.value()) for m in self.kafka.produced]

    def confirm(self, count=None):
        """
        Kafka confirms the C{count} oldest records; the producer polls, and
        the reactor runs what was scheduled at once.
        """
        self.kafka.confirm(count)
        self.producer._poll()
        self.clock.advance(0)


class NumberingTests(AckModeMixin, SynchronousTestCase):
    """
    Records of an ack-mode connection are numbered, with or without a
    session.
    """

    def test_streamStandsInForConnection(self):
        """
        The stream is an L{IMessageStream}, and the router's client for the
        connection is the stream; a listener without C{ack=on} gets a plain
        L{MessageStream}.
        """
        protocol, _ = self.connect()
        stream = protocol._stream
        verifyObject(IMessageStream, stream)
        self.assertEqual(list(self.router.clients), [stream])
        plain, _ = self.connect(options={"ack": False}, port=5001)
        self.assertIsInstance(plain._stream, MessageStream)

    def test_numberedFromOne(self):
        """
        Without a handshake the records carry C{gateway-seq} from 1, next to
        the provenance headers, with the connection's key.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\n")
        self.assertEqual(
            self.records(),
            [
                (
                    b"acks/10.0.0.1:5000",
                    {LISTENER_HEADER: b"acks", PEER_HEADER: b"10.0.0.1:5000", SEQ_HEADER: b"1"},
                    b"a",
                ),
                (
                    b"acks/10.0.0.1:5000",
                    {LISTENER_HEADER: b"acks", PEER_HEADER: b"10.0.0.1:5000", SEQ_HEADER: b"2"},
                    b"b",
                ),
            ],
        )
        self.assertEqual(transport.value(), b"")

    def test_session(self):
        """
        A first message C{SESSION <id> <first-seq>} is no record and gets no
        reply; the records count from C{first-seq}, carry the session's
        header and have its id as key; the acks count in that sequence.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"SESSION host-1/app 41\nx\ny\n")
        records = self.records()
        self.assertEqual([value for _, _, value in records], [b"x", b"y"])
        self.assertEqual({key for key, _, _ in records}, {b"host-1/app"})
        self.assertEqual([h[SEQ_HEADER] for _, h, _ in records], [b"41", b"42"])
        self.assertEqual({h[SESSION_HEADER] for _, h, _ in records}, {b"host-1/app"})
        self.assertEqual(transport.value(), b"")
        self.confirm()
        self.assertEqual(transport.value(), b"ACK 42\n")

    def test_sessionOnlyFirst(self):
        """
        A C{SESSION} message after the first is an ordinary record.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"a\nSESSION s 1\n")
        self.assertEqual([v for _, _, v in self.records()], [b"a", b"SESSION s 1"])

    def test_badSession(self):
        """
        A first message starting with C{SESSION } that is not a valid
        handshake closes the connection as bad input, counted as
        C{bad-session}; nothing after it is published.
        """
        bad = [
            b"SESSION  1",
            b"SESSION a",
            b"SESSION a 0",
            b"SESSION a -1",
            b"SESSION a 1x",
            b"SESSION a 1 2",
            b"SESSION " + b"i" * 65 + b" 1",
            b"SESSION \xc3\xa9 1",
            b"SESSION a\tb 1",
        ]
        for port, handshake in enumerate(bad, 6000):
            protocol, transport = self.connect(port=port)
            protocol.dataReceived(handshake + b"\nafter\n")
            self.assertTrue(transport.disconnecting, handshake)
            self.assertEqual(protocol.frameFailed, BAD_SESSION)
        self.assertEqual(protocol.factory.config.stats.frameErrors[BAD_SESSION], 1)
        self.assertEqual(self.records(), [])

    def test_parseSession(self):
        """
        L{parseSession} returns the id and the first number; 64 printable
        characters are the longest id.
        """
        self.assertEqual(parseSession(b"SESSION " + b"~" * 64 + b" 7"), (b"~" * 64, 7))
        self.assertRaises(ValueError, parseSession, b"SESSION a " + b"9" * 20)


class AcknowledgementTests(AckModeMixin, SynchronousTestCase):
    """
    C{ACK} and C{NACK} writes.
    """

    def test_batchedWithinInterval(self):
        """
        The first confirmation is acknowledged at once; more within
        C{ack-interval} wait for its end (one write); the confirmation of
        the last outstanding message is acknowledged at once.
        """
        protocol, transport = self.connect(options={"ack-interval": 0.5})
        protocol.dataReceived(b"1\n2\n3\n4\n")
        self.confirm(1)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.confirm(1)
        self.clock.advance(0.25)
        self.confirm(1)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.clock.advance(0.25)
        self.assertEqual(transport.value(), b"ACK 1\nACK 3\n")
        self.confirm(1)
        self.assertEqual(transport.value(), b"ACK 1\nACK 3\nACK 4\n")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"ACK 1\nACK 3\nACK 4\n")

    def test_cumulativeOutOfOrder(self):
        """
        A message confirmed before an earlier one is acknowledged only with
        it: C{ACK k} means every message up to k.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\nc\n")
        stream = protocol._stream
        stream.settle(3, None)
        stream.settle(2, None)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        stream.settle(1, None)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 3\n")

    def test_oneCallbackPerConnection(self):
        """
        A record the client takes holds no Python object of its own: every
        record of a connection has the same delivery callback.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"a\nb\nc\n")
        callbacks = {id(m.callback) for m in self.kafka.produced}
        self.assertEqual(callbacks, {id(protocol._stream.deliveryCallback)})

    def test_outOfOrderFoundByPayload(self):
        """
        An outcome reported out of order is matched to the record by its
        payload, never taken for the oldest record's, and logged.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\nc\n")
        stream = protocol._stream
        stream.delivered(None, b"b")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        stream.delivered(None, b"a")
        stream.delivered(None, b"c")
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 3\n")
        self.assertEqual(
            [e["seq"] for e in self.events if "out of order" in e.get("log_format", "")], [2]
        )

    def test_unknownReportAcknowledgesNothing(self):
        """
        A report matching no record in flight acknowledges nothing and is
        logged; a failed one is still handed back to the producer.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\n")
        stream = protocol._stream
        stream.delivered(None, b"zzz")
        failures = self.producer.failureReports
        stream.delivered(FakeDeliveryError, b"zzz")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.producer.failureReports, failures + 1)
        self.assertEqual(
            len([e for e in self.events if "no record in flight" in e.get("log_format", "")]), 2
        )

    def test_nackThenPastIt(self):
        """
        A record Kafka refuses for good gets C{NACK <seq> <reason>}, and the
        cumulative acknowledgement then moves past it.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\nc\n")
        self.confirm(1)
        self.kafka.fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED"))
        self.producer._poll()
        self.assertEqual(transport.value(), b"ACK 1\nNACK 2 not-authorized\n")
        self.clock.advance(0.01)
        self.assertEqual(transport.value(), b"ACK 1\nNACK 2 not-authorized\nACK 2\n")
        self.confirm()
        self.assertEqual(transport.value(), b"ACK 1\nNACK 2 not-authorized\nACK 2\nACK 3\n")

    def test_nackTooLargeAtProduce(self):
        """
        A record the client refuses at C{produce} (over its own
        C{message.max.bytes}) is NACKed C{too-large} at once.
        """
        from confluent_kafka import KafkaException

        protocol, transport = self.connect()
        self.kafka.refusing[b"big"] = KafkaException(FakeKafkaError("MSG_SIZE_TOO_LARGE"))
        protocol.dataReceived(b"big\nok\n")
        self.assertEqual(transport.value(), b"NACK 1 too-large\n")
        self.confirm()
        self.assertEqual(transport.value(), b"NACK 1 too-large\nACK 2\n")

    def test_retriedKeepsItsReceipt(self):
        """
        A record a client gave up on (timed out) is produced again with its
        receipt, and acknowledged once confirmed.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\n")
        self.kafka.fail(FakeKafkaError("_MSG_TIMED_OUT", retriable=True))
        self.producer._poll()
        self.producer._poll()
        self.clock.advance(0)
        self.assertEqual([m.value() for m in self.kafka.queue], [b"b", b"a"])
        self.confirm(1)
        self.assertEqual(transport.value(), b"")
        self.confirm()
        self.assertEqual(transport.value(), b"ACK 2\n")

    def test_backloggedKeepsItsReceipt(self):
        """
        Records waiting in the backlog (the client's queue full) keep their
        receipts.
        """
        self.kafka.capacity = 1
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\n")
        self.confirm()
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.producer._poll()
        self.confirm()
        self.assertEqual(transport.value(), b"ACK 1\nACK 2\n")

    def test_spooledNeverAcknowledged(self):
        """
        Records the producer gives up on at its stop are spooled or lost,
        never acknowledged.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\n")
        self.producer.drainTimeout = 0
        self.producer.stopService()
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"")

    def test_nothingAfterClose(self):
        """
        Once the connection is lost nothing is written and its timer is
        cancelled.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\n")
        self.confirm(1)
        protocol.connectionLost(None)
        self.confirm()
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.assertEqual([c for c in self.clock.getDelayedCalls() if "Ack" in repr(c.func)], [])
        self.assertEqual(self.router.clients, {})


class TrackedPathTests(AckModeMixin, SynchronousTestCase):
    """
    With the C extension (its C{produceTrackedMany} stood in for here), a
    read's records go to the client in one call, numbered, and come back by
    number: runs of confirmed numbers (L{AckStream.settleRange}) and failed
    records carrying a L{Receipt}.
    """

    def setUp(self):
        AckModeMixin.setUp(self)
        #: What the stand-in took: (values, headers, first) per call.
        self.taken = []
        #: How many more records it takes.
        self.room = 1000
        self.keys = set()
        self.producer._produceTrackedMany = self.produceTrackedMany

    def produceTrackedMany(self, topic, values, key, headers, seqHeader, tracker, first):
        taken = min(len(values), self.room)
        self.room -= taken
        if taken:
            self.assertEqual((topic, seqHeader), ("events", SEQ_HEADER))
            self.assertIs(tracker, self.stream)
            self.keys.add(key)
            self.taken.append((list(values[:taken]), dict(headers), first))
        return taken

    def connect(self, **kwargs):
        protocol, transport = AckModeMixin.connect(self, **kwargs)
        self.stream = protocol._stream
        return protocol, transport

    def test_readInOneCall(self):
        """
        The first read goes message by message (its first may be the
        handshake); each later read is one call, numbered on; the
        provenance headers are the connection's, without the number (the
        extension adds it); the counts are the stream's.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"a\nb\n")
        protocol.dataReceived(b"c\ndd\n")
        provenance = {LISTENER_HEADER: b"acks", PEER_HEADER: b"10.0.0.1:5000"}
        self.assertEqual(
            self.taken,
            [([b"a"], provenance, 1), ([b"b"], provenance, 2), ([b"c", b"dd"], provenance, 3)],
        )
        self.assertEqual(self.kafka.produced, [])
        self.assertEqual(self.keys, {b"acks/10.0.0.1:5000"})
        self.assertEqual(self.stream.issued, 4)
        self.assertEqual(self.router.topicCounts(), {"events": (4, 5)})

    def test_sessionThenOneCall(self):
        """
        After a handshake the records carry the session's header and number
        from its first sequence number.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"SESSION s1 41\n")
        protocol.dataReceived(b"a\nb\n")
        [(values, headers, first)] = self.taken
        self.assertEqual((values, headers[SESSION_HEADER], first), ([b"a", b"b"], b"s1", 41))
        self.assertEqual(self.keys, {b"s1"})

    def test_rangesAcknowledged(self):
        """
        A run of confirmed numbers advances the acknowledgement at once when
        it is the next one; a run ahead of a gap waits for the gap; a run
        already confirmed changes nothing and schedules no write.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"0\n")
        protocol.dataReceived(b"1\n2\n3\n4\n5\n")
        self.stream.settleRange(4, 6)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"")
        self.stream.settleRange(1, 3)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 6\n")
        pending = list(self.clock.getDelayedCalls())  # the producer's poll
        self.stream.settleRange(2, 3)
        self.stream.settleRange(5, 6)
        self.assertEqual(self.clock.getDelayedCalls(), pending)
        self.clock.advance(0)
        self.assertEqual((self.stream.confirmed, transport.value()), (6, b"ACK 6\n"))

    def test_failedRecordByReceipt(self):
        """
        A record the extension reports failed comes back with a L{Receipt}:
        produced again (here through the pure path: the stand-in is full)
        and acknowledged when Kafka confirms it; a refusal is a C{NACK}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\n")
        protocol.dataReceived(b"b\nc\n")
        self.room = 0
        headers = [(LISTENER_HEADER, b"acks"), (SEQ_HEADER, b"2")]
        self.producer.deliveryFailed(
            Record("events", b"k", headers, b"b", Receipt(self.stream, 2)), FakeDeliveryError
        )
        self.stream.settleRange(1, 1)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.producer._poll()
        self.assertEqual(self.records(), [(b"k", dict(headers), b"b")])
        self.confirm()
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"ACK 1\nACK 2\n")
        refused = DeliveryError("MSG_SIZE_TOO_LARGE", "too large")
        self.producer.deliveryFailed(
            Record("events", b"k", [], b"c", Receipt(self.stream, 3)), refused
        )
        self.producer._poll()
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 1\nACK 2\nNACK 3 too-large\nACK 3\n")

    def test_restOnePerRecord(self):
        """
        What the extension does not take goes one by one through the pure
        path, reported in order there; both are acknowledged together.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\n")
        self.room = 1
        protocol.dataReceived(b"b\nc\nd\n")
        self.assertEqual([first for _, _, first in self.taken], [1, 2])
        self.assertEqual([value for _, _, value in self.records()], [b"c", b"d"])
        self.assertEqual([headers[SEQ_HEADER] for _, headers, _ in self.records()], [b"3", b"4"])
        self.confirm()
        self.stream.settleRange(1, 2)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 4\n")


class UnreadAcksTests(AckModeMixin, SynchronousTestCase):
    """
    A client that does not read its acknowledgements stops being read.
    """

    def test_transportBufferIsSmall(self):
        """
        The transport pauses the stream once more than L{UNREAD_LIMIT} bytes
        wait to be sent.
        """
        _, transport = self.connect()
        self.assertEqual(transport.bufferSize, UNREAD_LIMIT)
        self.assertTrue(transport.streaming)
        self.assertIsNotNone(transport.producer)

    def test_pausedUntilRead(self):
        """
        While the acknowledgements are unread the connection stays paused,
        even when the router resumes every client; once they are sent it
        reads again.
        """
        protocol, transport = self.connect()
        transport.producer.pauseProducing()
        self.assertTrue(protocol.paused)
        self.assertEqual(transport.producerState, "paused")
        self.router._pause("test")
        self.router._resume("test")
        self.assertTrue(protocol.paused)
        transport.producer.resumeProducing()
        self.assertFalse(protocol.paused)
        self.assertEqual(transport.producerState, "producing")

    def test_budgetPauseOutlastsRead(self):
        """
        Acknowledgements read while the router has every client paused do
        not resume the connection; the router's resume does.
        """
        protocol, transport = self.connect()
        self.router._pause("test")
        transport.producer.pauseProducing()
        transport.producer.resumeProducing()
        self.assertTrue(protocol.paused)
        self.router._resume("test")
        self.assertFalse(protocol.paused)


class EncodingTests(AckModeMixin, SynchronousTestCase):
    """
    Every built-in framing's acknowledgements, byte for byte as
    C{docs/framings.md} gives them.
    """

    def acknowledgements(self, framing, frames, options=None):
        """
        Send two messages; Kafka refuses the first and confirms the second.

        :return: what the gateway wrote.
        """
        protocol, transport = self.connect(framing=framing, options=options)
        protocol.dataReceived(frames)
        self.kafka.fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED"))
        self.confirm()
        return transport.value()

    def test_lines(self):
        """
        C{lines}: the payload and the delimiter.
        """
        self.assertEqual(
            self.acknowledgements(LinesProtocol, b"a\nb\n"),
            b"NACK 1 not-authorized\nACK 2\n",
        )

    def test_linesDelimiter(self):
        """
        C{lines(delimiter=\\r\\n)}: the listener's own delimiter.
        """
        self.assertEqual(
            self.acknowledgements(LinesProtocol, b"a\r\nb\r\n", {"delimiter": b"\r\n"}),
            b"NACK 1 not-authorized\r\nACK 2\r\n",
        )

    def test_lengthPrefixed(self):
        """
        C{length-prefixed}: a 4-byte big-endian length, then the payload.
        """
        self.assertEqual(
            self.acknowledgements(LengthPrefixedProtocol, b"\0\0\0\1a\0\0\0\1b"),
            b"\0\0\0\x15NACK 1 not-authorized\0\0\0\x05ACK 2",
        )

    def test_netstring(self):
        """
        C{netstring}: C{<length>:<payload>,}.
        """
        self.assertEqual(
            self.acknowledgements(NetstringProtocol, b"1:a,1:b,"),
            b"21:NACK 1 not-authorized,5:ACK 2,",
        )

    def test_octetCounting(self):
        """
        C{octet-counting}: C{<length> <payload>}.
        """
        self.assertEqual(
            self.acknowledgements(OctetCountingProtocol, b"1 a1 b"),
            b"21 NACK 1 not-authorized5 ACK 2",
        )

    def test_varint(self):
        """
        C{varint}: the length as a protobuf varint, then the payload.
        """
        self.assertEqual(
            self.acknowledgements(VarintProtocol, b"\1a\1b"),
            b"\x15NACK 1 not-authorized\x05ACK 2",
        )


class ConfigurationTests(SynchronousTestCase):
    """
    Where C{ack=on} is refused, with a one-line reason.
    """

    def check(self, framing="lines", options=None, **settings):
        """
        Check a gateway with one listener with C{ack=on}.
        """
        options = {"ack": "on", **(options or {})}
        return checkSettings(
            [{"framing": framing, "endpoint": "tcp:9000", "options": options}],
            topic="t",
            **settings,
        )

    def test_accepted(self):
        """
        C{ack=on} and C{ack-interval} as the command line writes them.
        """
        [listener] = self.check(options={"ack-interval": "0.05"}).listeners
        self.assertEqual((listener.options[ACK], listener.options[ACK_INTERVAL]), (True, 0.05))

    def test_framingWithoutBoundaries(self):
        """
        C{chunks} cannot write acknowledgements.
        """
        e = self.assertRaises(SettingsError, self.check, "chunks")
        self.assertIn("framing 'chunks' option ack=on: this framing cannot write", str(e))

    def test_badInterval(self):
        """
        C{ack-interval} is a number of seconds.
        """
        e = self.assertRaises(SettingsError, self.check, options={"ack-interval": "soon"})
        self.assertIn("ack-interval='soon'", str(e))

    def test_backendWithoutConfirmations(self):
        """
        The C{pykafka} backend does not confirm deliveries one by one.
        """
        e = self.assertRaises(SettingsError, self.check, backend="pykafka")
        self.assertIn("'pykafka' does not", str(e))

    def test_acksAll(self):
        """
        Acknowledgements mean every in-sync replica has the record.
        """
        options = {"acks": "1", "enable.idempotence": "false"}
        e = self.assertRaises(SettingsError, self.check, kafkaOptions=options)
        self.assertIn("needs the producer property acks=all, not acks=1", str(e))

    def test_afterStart(self):
        """
        Deliveries are confirmed by a client created so: an ack listener
        added after the start is refused.
        """
        producer = KafkaProducerService(fakeBackend(), producerConfig("h:1"), clock=Clock())
        producer.startService()
        self.addCleanup(producer.stopService)
        self.assertRaises(ValueError, producer.confirmDeliveries)

    def test_confirmationsAsked(self):
        """
        With an ack listener, the client reports every delivery.
        """
        producer = KafkaProducerService(fakeBackend(), producerConfig("h:1"), clock=Clock())
        self.assertTrue(producer.config["delivery.report.only.error"])
        producer.confirmDeliveries()
        producer.startService()
        self.addCleanup(producer.stopService)
        self.assertIs(producer.backend.producers[0].config["delivery.report.only.error"], False)


#: The framings of the table in C{docs/framings.md}, by name.
DOCUMENTED = {
    "lines": LinesProtocol,
    "length-prefixed": LengthPrefixedProtocol,
    "netstring": NetstringProtocol,
    "octet-counting": OctetCountingProtocol,
    "varint": VarintProtocol,
}


def documentedEncodings():
    """
    The rows of the acknowledgement table in C{docs/framings.md}: framing
    name to the bytes of C{ACK 2}, C{NACK 1 not-authorized} and
    C{SESSION app-1 41}, unescaped.
    """
    text = (Path(__file__).resolve().parent.parent / "docs" / "framings.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        if name in DOCUMENTED and len(cells) == 4 and "SESSION" in cells[3]:
            rows[name] = [
                cell.strip("`").encode("ascii").decode("unicode_escape").encode("latin-1")
                for cell in cells[1:]
            ]
    return rows


class DocumentedEncodingTests(AckModeMixin, SynchronousTestCase):
    """
    Each built-in framing's acknowledgements and handshake, byte for byte as
    the table in C{docs/framings.md} writes them.
    """

    def test_everyFramingDocumented(self):
        """
        The table has a row for every built-in framing that takes C{ack=on}.
        """
        self.assertEqual(sorted(documentedEncodings()), sorted(DOCUMENTED))

    def test_acknowledgements(self):
        """
        Two messages, the first refused: the gateway writes the documented
        C{NACK 1 not-authorized}, then C{ACK 2}.
        """
        for port, (name, (ack, nack, _)) in enumerate(documentedEncodings().items(), 7000):
            protocol, transport = self.connect(framing=DOCUMENTED[name], port=port)
            protocol.dataReceived(protocol.encodeFrame(b"a") + protocol.encodeFrame(b"b"))
            self.kafka.fail(FakeKafkaError("TOPIC_AUTHORIZATION_FAILED"))
            self.confirm()
            self.assertEqual(transport.value(), nack + ack, name)

    def test_handshake(self):
        """
        The documented C{SESSION app-1 41} starts a session: the next
        message is record 41 of session C{app-1}, keyed by it.
        """
        for port, (name, (_, _, session)) in enumerate(documentedEncodings().items(), 7100):
            protocol, transport = self.connect(framing=DOCUMENTED[name], port=port)
            before = len(self.records())
            protocol.dataReceived(session + protocol.encodeFrame(b"x"))
            [(key, headers, value)] = self.records()[before:]
            self.assertEqual(
                (key, headers[SESSION_HEADER], headers[SEQ_HEADER], value),
                (b"app-1", b"app-1", b"41", b"x"),
                name,
            )
            self.assertEqual(transport.value(), b"", name)


class SessionRoutingTests(AckModeMixin, SynchronousTestCase):
    """
    The listener's routing chooses an ack-mode connection's key and topic
    (L{gateway.routing.Route.resolve}), again once when the handshake
    arrives.
    """

    def topics(self):
        """
        The topics of the records the producer took.
        """
        return [m.topic() for m in self.kafka.produced]

    def test_sessionTemplate(self):
        """
        C{{session}} is resolved when the handshake arrives: the records go
        to the session's topic, keyed by the session; the messages count
        for that topic.
        """
        self.router.routes["acks"] = Route(TopicTemplate("s.{session}"), "session")
        protocol, transport = self.connect()
        self.assertEqual(self.router.topicCounts(), {})
        protocol.dataReceived(b"SESSION dev/1 5\nx\nyy\n")
        self.assertEqual(self.topics(), ["s.dev_1", "s.dev_1"])
        self.assertEqual({key for key, _, _ in self.records()}, {b"dev/1"})
        self.assertEqual(self.router.topicCounts(), {"s.dev_1": (2, 3)})
        self.confirm()
        self.assertEqual(transport.value(), b"ACK 6\n")

    def test_sessionTemplateWithoutHandshake(self):
        """
        A connection to a C{{session}} topic that sends no handshake is
        closed as C{no-session}; nothing is published.
        """
        self.router.routes["acks"] = Route(TopicTemplate("s.{session}"), "session")
        protocol, transport = self.connect()
        protocol.dataReceived(b"x\ny\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, NO_SESSION)
        self.assertEqual(protocol.factory.config.stats.frameErrors[NO_SESSION], 1)
        self.assertEqual(self.records(), [])

    def test_keyChosenByRoute(self):
        """
        The session does not override a key the listener chose: with
        C{key=connection} or C{key=peer-host} the records keep it, and
        still carry the session's header.
        """
        for port, (key, expected) in enumerate(
            [("connection", b"acks/10.0.0.1:%d"), ("peer-host", b"10.0.0.1")], 5100
        ):
            self.router.routes["acks"] = Route(key=key)
            protocol, _ = self.connect(port=port)
            protocol.dataReceived(b"SESSION s 1\nx\n")
            [(recordKey, headers, _)] = self.records()[-1:]
            self.assertEqual(recordKey, expected.replace(b"%d", b"%d" % port))
            self.assertEqual(headers[SESSION_HEADER], b"s")

    def test_defaultKeySession(self):
        """
        An ack listener without a route keys by session after the
        handshake, by connection without one.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"x\n")
        protocol, _ = self.connect(port=5001)
        protocol.dataReceived(b"SESSION s 1\ny\n")
        self.assertEqual([key for key, _, _ in self.records()], [b"acks/10.0.0.1:5000", b"s"])
        self.assertEqual(self.router.topicCounts(), {"events": (2, 2)})


class EdgeTests(AckModeMixin, SynchronousTestCase):
    """
    The handshake's limits and errors, the records handed back after a
    failure, the logs of outcomes out of order, and the acknowledgement
    timer, value by value.
    """

    def test_parseSessionErrors(self):
        """
        Each way a handshake can be wrong has its own error; only a single
        space separates the fields; the largest first number is
        C{2 ** 63 - 1}.
        """
        shape = "not SESSION <id> <first-seq>"
        badId = "the id must be 1 to 64 printable ASCII characters without spaces"
        badSeq = "the first sequence number must be a whole number from 1"
        for payload, error in [
            (b"SESSION a", shape),
            (b"SESSION a\t1", shape),
            (b"SESSION  a 1", shape),
            (b"SESSION a\tb 1", badId),
            (b"SESSION a 0", badSeq),
            (b"SESSION a 9223372036854775808", badSeq),
        ]:
            with self.assertRaises(ValueError) as raised:
                parseSession(payload)
            self.assertEqual(str(raised.exception), error, payload)
        self.assertEqual(parseSession(b"SESSION a 9223372036854775807"), (b"a", 2**63 - 1))

    def frameErrorEvent(self):
        [event] = [
            e for e in self.events if e.get("log_namespace", "").startswith("gateway.framing")
        ]
        return event

    def test_badSessionLogged(self):
        """
        A bad handshake's line gives its size and what is wrong with it.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"SESSION a 0\n")
        event = self.frameErrorEvent()
        self.assertEqual(
            (event["reason"], event["size"], event["problem"]),
            (BAD_SESSION, 11, "the first sequence number must be a whole number from 1"),
        )

    def test_noSessionLogged(self):
        """
        A first message that is no handshake, on a C{{session}} topic, is
        logged with its size.
        """
        self.router.routes["acks"] = Route(TopicTemplate("s.{session}"), "session")
        protocol, _ = self.connect()
        protocol.dataReceived(b"xyz\n")
        event = self.frameErrorEvent()
        self.assertEqual((event["reason"], event["size"]), (NO_SESSION, 3))

    def test_sessionId(self):
        """
        The stream keeps the handshake's session id.
        """
        protocol, _ = self.connect()
        self.assertIsNone(protocol._stream.sessionId)
        protocol.dataReceived(b"SESSION host-1/app 41\n")
        self.assertEqual(protocol._stream.sessionId, b"host-1/app")

    def queued(self):
        """
        What waits in the fake client's queue: C{(topic, key, headers as a
        dict, value)} each.
        """
        return [(m.topic(), m.key(), dict(m.headers()), m.value()) for m in self.kafka.queue]

    def test_failedRecordProducedAgainWhole(self):
        """
        A record that failed is produced again with its topic, key, headers
        and number; one the stream cannot number, with its topic, key and
        headers but no number.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"SESSION s 7\na\n")
        self.kafka.fail(FakeKafkaError("_MSG_TIMED_OUT", retriable=True))
        protocol._stream.delivered(FakeDeliveryError, b"zzz")
        self.producer._poll()
        self.producer._poll()
        self.clock.advance(0)
        headers = {LISTENER_HEADER: b"acks", PEER_HEADER: b"10.0.0.1:5000", SESSION_HEADER: b"s"}
        self.assertEqual(
            sorted(self.queued(), key=lambda r: r[3]),
            [
                ("events", b"s", {**headers, SEQ_HEADER: b"7"}, b"a"),
                ("events", b"s", headers, b"zzz"),
            ],
        )

    def test_outOfOrderLines(self):
        """
        An outcome out of order is logged with its number and the oldest
        still in flight; one for no record in flight with the count in
        flight.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"a\nb\nc\n")
        stream = protocol._stream
        stream.delivered(None, b"c")
        stream.delivered(None, b"zzz")
        lines = [formatEvent(e) for e in self.events if "ack mode" in e.get("log_format", "")]
        self.assertEqual(
            lines,
            [
                "ack mode: delivery reports out of order (seq 3 before 1); "
                "are the connection's records on more than one partition?",
                "ack mode: a delivery report for no record in flight (2 in flight)",
            ],
        )

    def test_nackReasonNotAscii(self):
        """
        A refusal's reason is written in ASCII, anything else replaced.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\n")
        protocol._stream.settle(1, "n\u00e9")
        self.assertEqual(transport.value(), b"NACK 1 n?\n")

    def test_settledTwice(self):
        """
        A number settled again is ignored: nothing written, nothing held.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\n")
        stream = protocol._stream
        stream.settle(1, None)
        self.clock.advance(1)
        stream.settle(1, None)
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.assertEqual(stream._ahead, set())

    def test_gapHeld(self):
        """
        Numbers settled past a gap wait for it; the prefix before the gap
        is acknowledged.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a\nb\nc\nd\n")
        stream = protocol._stream
        stream.settle(2, None)
        stream.settle(4, None)
        stream.settle(1, None)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 2\n")
        stream.settle(3, None)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"ACK 2\nACK 4\n")

    def ackTimers(self):
        return [c for c in self.clock.getDelayedCalls() if "Ack" in repr(c.func)]

    def test_oneTimer(self):
        """
        However many confirmations come in, one timer at most waits to
        write the next C{ACK}, an C{ack-interval} after the last write
        (whatever the time); the last outstanding confirmation brings it
        forward to now.
        """
        self.clock.advance(100)
        protocol, transport = self.connect(options={"ack-interval": 0.5})
        protocol.dataReceived(b"1\n2\n3\n4\n")
        self.confirm(1)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.confirm(1)
        self.confirm(1)
        self.assertEqual(len(self.ackTimers()), 1)
        self.clock.advance(0.4)
        self.assertEqual(transport.value(), b"ACK 1\n")
        self.clock.advance(0.1)
        self.assertEqual(transport.value(), b"ACK 1\nACK 3\n")
        self.assertEqual(self.ackTimers(), [])
        self.confirm(1)
        self.assertEqual(transport.value(), b"ACK 1\nACK 3\nACK 4\n")
        self.assertEqual(self.ackTimers(), [])

    def test_resumedBeforeAnyAck(self):
        """
        A connection that has had no acknowledgement yet is resumed with
        every client.
        """
        protocol, _ = self.connect()
        self.router._pause("test")
        self.assertTrue(protocol.paused)
        self.router._resume("test")
        self.assertFalse(protocol.paused)
