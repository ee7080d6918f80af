# -*- test-case-name: tests.framing.test_base -*-
"""
Tests for L{gateway.framing.base.FramingProtocol}, the base every framing is
built on, through the smallest framing that can be written on it (the
conformance kit applied to it too), and for L{FramingFactory} and
L{FramingPlugin}.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent
from twisted.python.failure import Failure
from twisted.python.reflect import ObjectNotFound
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import (
    INCOMPLETE,
    MALFORMED_FRAME,
    TOO_LARGE,
    FramingError,
    FramingFactory,
    FramingPlugin,
    FramingProtocol,
)
from gateway.testing import FramingConformanceMixin, RecordingSink, connectFraming
from tests.support.logs import captureLogs, eventsFrom


class CommaProtocol(FramingProtocol):
    """
    Messages ended by a comma; a C{!} anywhere is bad input.
    """

    def parseFrames(self, buffer, limit):
        frames = buffer.split(b",")
        rest = frames.pop()
        for index, frame in enumerate(frames + [rest]):
            if b"!" in frame:
                consumed = sum(map(len, frames[:index])) + index
                raise FramingError(MALFORMED_FRAME, frames[:index], consumed, size=len(frame))
            if len(frame) > limit:
                consumed = sum(map(len, frames[:index])) + index
                raise FramingError(TOO_LARGE, frames[:index], consumed, size=len(frame))
        return frames, len(buffer) - len(rest)

    def encodeFrame(self, payload):
        return payload + b","


comma = FramingPlugin("comma", "messages ended by a comma", f"{__name__}.CommaProtocol")


class CommaConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    The conformance kit passes for the smallest framing on the base.
    """

    plugin = comma
    malformed = [(b"ab!,", MALFORMED_FRAME), (b"!", MALFORMED_FRAME)]

    def encode(self, messages):
        return b"".join(m + b"," for m in messages)

    def messageStrategy(self):
        from hypothesis import strategies as st

        clean = st.binary(max_size=40).map(lambda m: m.replace(b",", b"").replace(b"!", b""))
        return st.lists(clean, max_size=20)


class TopicSink(RecordingSink):
    """
    A recording sink with a topic, as the router has.
    """

    topic = "events"


class FramingProtocolTests(SynchronousTestCase):
    """
    What the base does besides what the kit checks.
    """

    def connect(self, **kwargs):
        return connectFraming(comma, **kwargs)

    def pausingOn(self, protocol, stream, payload):
        """
        Make the connection's deliveries pause it right after C{payload}.
        """

        def sendThenPause(message):
            stream.send(message)
            if message == payload:
                protocol.pauseProducing()

        protocol._send = sendThenPause

    def test_badInputEvent(self):
        """
        Bad input is logged as one warning carrying the listener, the peer,
        the connection's number, the topic, the reason, the limit, the sizes
        the parser gave and how many connections of the listener were closed
        for that reason; the event renders.
        """
        events = captureLogs(self)
        sink = TopicSink()
        first = self.connect(sink=sink, name="edge", maxMessageSize=10)[0]
        config = first.factory.config
        second = connectFraming(comma, config=config)[0]
        first.dataReceived(b"ab!,")
        second.dataReceived(b"01234567890,")
        [one, two] = eventsFrom(events, __name__, "warn")
        fields = ("listener", "peer", "connection", "topic", "reason", "limit", "size", "total")
        self.assertEqual(
            [tuple(e[k] for k in fields) for e in (one, two)],
            [
                (
                    "edge",
                    "127.0.0.1:40000",
                    first.connectionId,
                    "events",
                    MALFORMED_FRAME,
                    10,
                    3,
                    1,
                ),
                ("edge", "127.0.0.1:40000", second.connectionId, "events", TOO_LARGE, 10, 11, 1),
            ],
        )
        self.assertEqual(one["sizes"], "size 3")
        line = formatEvent(one)
        self.assertNotIn("Unable to format", line)
        for part in ("edge", "127.0.0.1:40000", MALFORMED_FRAME, "10", "size 3"):
            self.assertIn(part, line)

    def test_badInputCountedPerListener(self):
        """
        Each connection closed for the same reason adds one to the
        listener's count, and the event carries the running total.
        """
        events = captureLogs(self)
        first = self.connect()[0]
        second = connectFraming(comma, config=first.factory.config)[0]
        first.dataReceived(b"!")
        second.dataReceived(b"!")
        self.assertEqual(first.factory.config.stats.frameErrors[MALFORMED_FRAME], 2)
        self.assertEqual([e["total"] for e in eventsFrom(events, __name__)], [1, 2])

    def test_incompleteAtCloseEvent(self):
        """
        A connection closed in the middle of a frame is counted as
        L{INCOMPLETE}, with the bytes it left buffered.
        """
        events = captureLogs(self)
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"a,bcd")
        protocol.connectionLost(Failure(ConnectionDone()))
        [event] = eventsFrom(events, __name__)
        self.assertEqual((event["reason"], event["buffered"]), (INCOMPLETE, 3))
        self.assertEqual(sink.streams[0].messages, [b"a"])
        self.assertTrue(sink.streams[0].closed)

    def test_messageTooLarge(self):
        """
        C{messageTooLarge}, for framings that find an oversized frame
        themselves, closes the connection for L{TOO_LARGE} with the size.
        """
        events = captureLogs(self)
        protocol, transport, sink = self.connect()
        protocol.messageTooLarge(5000)
        [event] = eventsFrom(events, __name__)
        self.assertEqual(
            (protocol.frameFailed, event["reason"], event["size"]), (TOO_LARGE, TOO_LARGE, 5000)
        )
        self.assertTrue(transport.disconnecting)

    def test_frameErrorOutsideDelivery(self):
        """
        Bad input found outside a delivery (a malformed PROXY header, found
        by the server layer) holds the connection all the same: bytes read
        afterwards are neither delivered nor buffered, even once resumed.
        """
        protocol, transport, sink = self.connect()
        protocol.frameError("malformed-proxy-header")
        protocol.dataReceived(b"a,b")
        protocol.resumeProducing()
        protocol.dataReceived(b"c,")
        self.assertEqual((sink.streams[0].messages, protocol.bufferedByteCount()), ([], 0))

    def test_resumeAfterFailure(self):
        """
        A connection closed for bad input and then resumed (the router
        resumes every client) delivers nothing more.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"a,!")
        protocol.resumeProducing()
        protocol.dataReceived(b"b,")
        self.assertEqual(sink.streams[0].messages, [b"a"])

    def test_pausedInsideDeliveryHoldsLaterBytes(self):
        """
        Bytes read after a delivery paused the connection are buffered, not
        delivered, until it is resumed; then everything comes in order.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        self.pausingOn(protocol, stream, b"a")
        protocol.dataReceived(b"a,b,")
        protocol.dataReceived(b"c,")
        self.assertEqual(stream.messages, [b"a"])
        protocol._send = stream.send
        protocol.resumeProducing()
        self.assertEqual(stream.messages, [b"a", b"b", b"c"])

    def test_resumeDeliversPendingThenBuffered(self):
        """
        Resuming delivers the frames held by the pause, then those the bytes
        read meanwhile complete, each once: bytes read later deliver only
        their own frames.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        self.pausingOn(protocol, stream, b"a")
        protocol.dataReceived(b"a,b,")
        protocol.dataReceived(b"c,d,e")
        protocol._send = stream.send
        protocol.resumeProducing()
        self.assertEqual(
            (stream.messages, protocol.bufferedByteCount()), ([b"a", b"b", b"c", b"d"], 1)
        )
        protocol.dataReceived(b",")
        self.assertEqual(stream.messages, [b"a", b"b", b"c", b"d", b"e"])

    def test_bytesArrivingInsideResumedDelivery(self):
        """
        Bytes read from inside the delivery that resuming starts are parsed
        after the frames being delivered, in order.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        self.pausingOn(protocol, stream, b"a")
        protocol.dataReceived(b"a,b,c,")

        def sendThenReceive(payload):
            stream.send(payload)
            if payload == b"b":
                protocol.dataReceived(b"d,")

        protocol._send = sendThenReceive
        protocol.resumeProducing()
        self.assertEqual(stream.messages, [b"a", b"b", b"c", b"d"])

    def test_badInputAfterPausedResume(self):
        """
        Bad input found while resuming, after a frame whose delivery pauses
        again, keeps the bytes from the bad frame on buffered; the next
        resume closes the connection for it.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        self.pausingOn(protocol, stream, b"a")
        protocol.dataReceived(b"a,b,")
        protocol.dataReceived(b"c,d!")
        self.pausingOn(protocol, stream, b"c")
        protocol.resumeProducing()
        self.assertEqual((stream.messages, protocol.bufferedByteCount()), ([b"a", b"b", b"c"], 2))
        protocol.resumeProducing()
        self.assertEqual(protocol.frameFailed, MALFORMED_FRAME)
        self.assertEqual(stream.messages, [b"a", b"b", b"c"])

    def test_closedWhilePausedPublishesPending(self):
        """
        A connection closed while a pause holds parsed frames publishes
        them, then the whole frames still buffered; bad input after them is
        counted with its reason and sizes.
        """
        events = captureLogs(self)
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        self.pausingOn(protocol, stream, b"a")
        protocol.dataReceived(b"a,b,")
        protocol.dataReceived(b"c,d!")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(stream.messages, [b"a", b"b", b"c"])
        self.assertEqual(dict(protocol.factory.config.stats.frameErrors), {MALFORMED_FRAME: 1})
        [event] = eventsFrom(events, __name__)
        self.assertEqual((event["reason"], event["size"]), (MALFORMED_FRAME, 2))

    def test_takeBuffered(self):
        """
        C{takeBuffered} returns the bytes not parsed yet and leaves nothing
        buffered.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"a,bc")
        self.assertEqual((protocol.takeBuffered(), protocol.bufferedByteCount()), (b"bc", 0))

    def test_framingErrorReason(self):
        """
        A L{FramingError}'s message is its reason, so a traceback names it.
        """
        self.assertEqual(str(FramingError(TOO_LARGE, size=3)), TOO_LARGE)

    def test_unimplementedNamesTheFraming(self):
        """
        A framing missing C{parseFrames} or C{encodeFrame} is named by the
        error.
        """

        class Half(FramingProtocol):
            pass

        for call in (lambda: Half().parseFrames(b"", 1), lambda: Half().encodeFrame(b"")):
            error = self.assertRaises(NotImplementedError, call)
            self.assertIn("Half", str(error))

    def test_framesBeforeErrorPublished(self):
        """
        The whole frames a parser found before bad input are published, then
        the connection is closed for the bad input.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"a,b,c!,d,")
        self.assertEqual(sink.streams[0].messages, [b"a", b"b"])
        self.assertEqual(protocol.frameFailed, MALFORMED_FRAME)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_errorAfterPauseFoundOnResume(self):
        """
        A pause while delivering the frames before bad input holds the rest;
        the bad input closes the connection once resumed, after them.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]

        def sendThenPause(payload):
            stream.send(payload)
            protocol.pauseProducing()

        protocol._send = sendThenPause
        protocol.dataReceived(b"a,b,c!")
        self.assertEqual((stream.messages, protocol.frameFailed), ([b"a"], None))
        protocol._send = stream.send
        protocol.resumeProducing()
        self.assertEqual((stream.messages, protocol.frameFailed), ([b"a", b"b"], MALFORMED_FRAME))
        self.assertTrue(transport.disconnecting)

    def test_nothingAfterFailure(self):
        """
        After bad input, further bytes are ignored and the policy applies
        once: one event counted.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"!")
        protocol.dataReceived(b"a,!,")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(sink.streams[0].messages, [])
        self.assertEqual(dict(protocol.factory.config.stats.frameErrors), {MALFORMED_FRAME: 1})

    def test_bytesArrivingInsideDelivery(self):
        """
        Bytes received from inside a delivery are parsed after the frames
        being delivered, in order.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]

        def sendThenReceive(payload):
            stream.send(payload)
            if payload == b"a":
                protocol.dataReceived(b"c,d")

        protocol._send = sendThenReceive
        protocol.dataReceived(b"a,b,")
        self.assertEqual(stream.messages, [b"a", b"b", b"c"])
        self.assertEqual(protocol.bufferedByteCount(), 1)

    def test_pauseInsideResumeKeepsTransportPaused(self):
        """
        A delivery started by C{resumeProducing} that pauses again leaves the
        transport paused.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        protocol.pauseProducing()
        protocol.dataReceived(b"a,b,")

        def sendThenPause(payload):
            stream.send(payload)
            protocol.pauseProducing()

        protocol._send = sendThenPause
        protocol.resumeProducing()
        self.assertEqual(stream.messages, [b"a"])
        self.assertEqual(transport.producerState, "paused")

    def test_encodeFrame(self):
        """
        C{encodeFrame} frames a payload so that the framing reads it back;
        a framing that does not define it cannot encode.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(protocol.encodeFrame(b"back"))
        self.assertEqual(sink.streams[0].messages, [b"back"])
        self.assertRaises(NotImplementedError, FramingProtocol().encodeFrame, b"x")
        self.assertRaises(NotImplementedError, FramingProtocol().parseFrames, b"x", 1)

    def test_idleConnectionState(self):
        """
        An idle connection holds only its own state: the transport, its
        number, its peer and its stream, nothing shared with the listener.
        """
        protocol, transport, sink = self.connect()
        self.assertEqual(
            set(vars(protocol)),
            {"transport", "connected", "connectionId", "peer", "_stream", "_send"},
        )


class FramingFactoryTests(SynchronousTestCase):
    """
    L{FramingFactory} and L{FramingPlugin.buildFactory}.
    """

    def test_oneClassPerListener(self):
        """
        The factory's protocols share one subclass of the framing holding
        the factory, the limit and the options; connections are numbered.
        """
        config = connectFraming(comma, maxMessageSize=77)[0].factory.config
        factory = comma.buildFactory(config)
        self.assertIsInstance(factory, FramingFactory)
        self.assertIs(factory.protocol, CommaProtocol)
        first = factory.buildProtocol(None)
        second = factory.buildProtocol(None)
        self.assertIs(type(first), type(second))
        self.assertEqual(type(first).__dict__["MAX_LENGTH"], 77)
        self.assertIs(type(first).__dict__["factory"], factory)
        self.assertIs(type(first).options, config.options)
        self.assertEqual(
            (type(first).__module__, type(first).__doc__),
            (CommaProtocol.__module__, CommaProtocol.__doc__),
        )
        self.assertEqual((first.connectionId, second.connectionId), (1, 2))
        first.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 1)))
        first.dataReceived(b"x,")
        self.assertEqual(config.sink.messages, [("10.0.0.9:1", b"x")])

    def test_protocolClassImportedOnUse(self):
        """
        L{FramingPlugin.protocolClass} imports the class named by the
        dotted path when called.
        """
        self.assertIs(comma.protocolClass(), CommaProtocol)
        broken = FramingPlugin("broken", "-", "no.such.module.Protocol")
        self.assertRaises(ObjectNotFound, broken.protocolClass)

    def test_recordingSinkUnused(self):
        """
        A factory builds protocols without opening any stream until a
        connection is made.
        """
        sink = RecordingSink()
        protocol, _, _ = connectFraming(comma, sink=sink)
        protocol.factory.buildProtocol(None)
        self.assertEqual(len(sink.streams), 1)


class _BatchStream:
    """
    A stream with C{sendMany}, taking at most C{room} frames per call.
    """

    def __init__(self, room):
        self.room = room
        self.messages = []
        self.batches = []
        self.sent = []

    def sendMany(self, frames):
        taken = frames[: self.room]
        self.batches.append(list(frames))
        self.messages.extend(taken)
        return len(taken)

    def send(self, payload):
        self.sent.append(payload)
        self.messages.append(payload)

    def close(self):
        pass


class _BatchSink:
    def __init__(self, room):
        self.room = room
        self.streams = []

    def openStream(self, listener, peer, producer):
        stream = _BatchStream(self.room)
        self.streams.append(stream)
        return stream


class SendManyTests(SynchronousTestCase):
    """
    A stream with C{sendMany} gets a read's frames in one call; what it
    does not take is sent one by one, in order.
    """

    def test_restSentInOrder(self):
        """
        The frames of one read go to C{sendMany} in one call, and those it
        did not take to C{send}, after them.
        """
        sink = _BatchSink(room=2)
        protocol, _, _ = connectFraming(comma, sink=sink)
        protocol.dataReceived(b"a,b,c,d")
        [stream] = sink.streams
        self.assertEqual(stream.batches, [[b"a", b"b", b"c"]])
        self.assertEqual(stream.sent, [b"c"])
        self.assertEqual(stream.messages, [b"a", b"b", b"c"])

    def test_allTaken(self):
        """
        When C{sendMany} takes every frame, none is sent again.
        """
        sink = _BatchSink(room=10)
        protocol, _, _ = connectFraming(comma, sink=sink)
        protocol.dataReceived(b"a,b,")
        protocol.dataReceived(b"c,")
        [stream] = sink.streams
        self.assertEqual(stream.batches, [[b"a", b"b"], [b"c"]])
        self.assertEqual(stream.sent, [])
