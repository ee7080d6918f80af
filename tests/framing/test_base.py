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
from twisted.python.failure import Failure
from twisted.python.reflect import ObjectNotFound
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import (
    MALFORMED_FRAME,
    TOO_LARGE,
    FramingError,
    FramingFactory,
    FramingPlugin,
    FramingProtocol,
)
from gateway.testing import FramingConformanceMixin, RecordingSink, connectFraming


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


class FramingProtocolTests(SynchronousTestCase):
    """
    What the base does besides what the kit checks.
    """

    def connect(self, **kwargs):
        return connectFraming(comma, **kwargs)

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
