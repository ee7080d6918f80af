# -*- test-case-name: tests.test_framing -*-
"""
Tests for the built-in framings, driven through their plugins on
L{StringTransport}s.
"""

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.registry import loadFramings
from gateway.testing import RecordingSink, connectFraming

FRAMINGS = loadFramings()


def encodeLines(messages):
    return b"".join(m + b"\n" for m in messages)


def encodeLengthPrefixed(messages):
    return b"".join(struct.pack("!I", len(m)) + m for m in messages)


def splitAt(data, cuts):
    """
    Cut C{data} at the given offsets (any order, duplicates allowed).
    """
    points = sorted({c % (len(data) + 1) for c in cuts}) if data else []
    chunks, start = [], 0
    for point in points + [len(data)]:
        chunks.append(data[start:point])
        start = point
    return chunks


lineMessages = st.lists(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=30
)
anyMessages = st.lists(st.binary(max_size=60), max_size=30)
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=40)


class FramingMixin:
    """
    Behaviour every framing must have; subclasses name the framing and how to
    encode messages in it.
    """

    framing = None
    messageStrategy = None

    def encode(self, messages):
        raise NotImplementedError()

    @settings(
        max_examples=200,
        deadline=None,
        # One property shared by every framing test class, on purpose.
        suppress_health_check=[HealthCheck.differing_executors],
    )
    @given(data=st.data(), cuts=cuts)
    def test_anyChunking(self, data, cuts):
        """
        However the stream is cut into reads, the same messages come out in
        the same order.
        """
        messages = data.draw(self.messageStrategy)
        protocol, transport, sink = self.connect()
        for chunk in splitAt(self.encode(messages), cuts):
            protocol.dataReceived(chunk)
        self.assertEqual(sink.streams[0].messages, messages)

    def connect(self, **kwargs):
        return connectFraming(FRAMINGS[self.framing], **kwargs)

    def test_roundTrip(self):
        """
        Messages written in one read come out in order, empty ones included.
        """
        protocol, transport, sink = self.connect()
        messages = [b"one", b"", b"three" * 10]
        protocol.dataReceived(self.encode(messages))
        self.assertEqual(sink.streams[0].messages, messages)

    def test_byteByByte(self):
        """
        The same messages come out when every byte arrives in its own read.
        """
        protocol, transport, sink = self.connect()
        messages = [b"alpha", b"beta", b"", b"gamma"]
        for i, byte in enumerate(self.encode(messages)):
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(sink.streams[0].messages, messages)

    def test_incompleteFrameNotPublished(self):
        """
        Bytes of an unfinished frame are kept, not published, and logged when
        the connection closes.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        protocol, transport, sink = self.connect()
        data = self.encode([b"whole", b"partial"])
        protocol.dataReceived(data[:-3])
        self.assertEqual(sink.streams[0].messages, [b"whole"])
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(sink.streams[0].closed)
        self.assertTrue(any(e.get("pending") for e in events))

    def test_overLimitClosesConnection(self):
        """
        A frame over the limit closes that connection, is logged with the
        peer and size, and is not published; messages before it are.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        protocol, transport, sink = self.connect(maxMessageSize=10)
        protocol.dataReceived(self.encode([b"ok", b"x" * 11, b"after"]))
        self.assertEqual(sink.streams[0].messages, [b"ok"])
        self.assertTrue(transport.disconnecting)
        [event] = [e for e in events if e.get("limit") == 10]
        self.assertEqual(event["peer"], "127.0.0.1:40000")
        self.assertEqual(event["size"], 11)
        self.assertEqual(event["listener"], "test")

    def test_exactlyAtLimit(self):
        """
        A message of exactly the limit is accepted.
        """
        protocol, transport, sink = self.connect(maxMessageSize=10)
        protocol.dataReceived(self.encode([b"x" * 10]))
        self.assertEqual(sink.streams[0].messages, [b"x" * 10])
        self.assertFalse(transport.disconnecting)

    def test_otherConnectionsUnaffected(self):
        """
        One client going over the limit leaves another connection's messages
        and transport alone.
        """
        sink = RecordingSink()
        bad, badTransport, _ = self.connect(sink=sink, maxMessageSize=10)
        good, goodTransport, _ = self.connect(
            sink=sink, maxMessageSize=10, peerPort=40001
        )
        bad.dataReceived(self.encode([b"y" * 50]))
        good.dataReceived(self.encode([b"fine", b"still"]))
        self.assertTrue(badTransport.disconnecting)
        self.assertFalse(goodTransport.disconnecting)
        self.assertEqual(sink.streams[1].messages, [b"fine", b"still"])

    def test_pauseHoldsBufferedMessages(self):
        """
        While paused, messages already buffered are not delivered, and the
        transport is paused; resuming delivers them in order.
        """
        protocol, transport, sink = self.connect()
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        protocol.dataReceived(self.encode([b"a", b"b"]))
        self.assertEqual(sink.streams[0].messages, [])
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(sink.streams[0].messages, [b"a", b"b"])

    def test_pauseInsideDelivery(self):
        """
        A pause requested while a message is being delivered (a full producer)
        stops delivery of the rest of the read until resumed.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        original = protocol._send

        def sendThenPause(payload):
            original(payload)
            if payload == b"first":
                protocol.pauseProducing()

        protocol._send = sendThenPause
        if protocol.__dict__.get("stringReceived") is original:
            protocol.stringReceived = sendThenPause
        protocol.dataReceived(self.encode([b"first", b"second", b"third"]))
        self.assertEqual(stream.messages, [b"first"])
        protocol.resumeProducing()
        self.assertEqual(stream.messages, [b"first", b"second", b"third"])


class LinesTests(FramingMixin, SynchronousTestCase):
    """
    The C{lines} framing.
    """

    framing = "lines"
    messageStrategy = lineMessages

    def encode(self, messages):
        return encodeLines(messages)

    def test_unterminatedLineOverLimit(self):
        """
        A line that grows past the limit without a newline closes the
        connection without waiting for its end.
        """
        protocol, transport, sink = self.connect(maxMessageSize=10)
        protocol.dataReceived(b"z" * 11)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(sink.streams[0].messages, [])


class LengthPrefixedTests(FramingMixin, SynchronousTestCase):
    """
    The C{length-prefixed} framing.
    """

    framing = "length-prefixed"
    messageStrategy = anyMessages

    def encode(self, messages):
        return encodeLengthPrefixed(messages)

    def test_hugeLengthRefusedBeforeBuffering(self):
        """
        A prefix announcing 4 GiB closes the connection at once, before any
        of the body is buffered.
        """
        protocol, transport, sink = self.connect(maxMessageSize=10)
        protocol.dataReceived(struct.pack("!I", 2**32 - 1) + b"body")
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(b"more" * 100)
        self.assertEqual(sink.streams[0].messages, [])
