# -*- test-case-name: tests.framing.test_chunks -*-
"""
The C{chunks} framing against the conformance kit (where it applies), plus
what is particular to it: cutting by size, idle time and close, pausing,
and its one timer.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.chunks import ChunksProtocol
from gateway.framing.options import OptionError, resolveOptions
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin, connectFraming
from tests.framing.helpers import receiveInsideDelivery, resumeInsideDelivery

FRAMINGS = loadFramings()


class ChunksConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{chunks} with the default idle time and a limit small enough that the
    sample messages make several chunks.
    """

    plugin = FRAMINGS["chunks"]
    emitsWholeMessages = False
    maxSize = 8

    def encode(self, messages):
        return b"".join(messages)

    def oversized(self):
        """
        A stream several times C{maxSize} long: not bad input for chunks.
        """
        return b"x" * (3 * self.maxSize + 1)

    def test_overLimit(self):
        """
        Replaces the kit's test, as chunks has no "over the limit": a stream
        longer than C{max-size} is cut into chunks of exactly C{max-size} as
        it arrives, the rest waits, the connection stays open and no
        bad-input event is counted.
        """
        protocol, transport, sink = self.connect()
        stream = self.oversized()
        full, rest = divmod(len(stream), self.maxSize)
        protocol.dataReceived(stream)
        self.assertEqual(sink.streams[0].messages, [b"x" * self.maxSize] * full)
        self.assertEqual(protocol.bufferedByteCount(), rest)
        self.assertFalse(transport.disconnecting)
        self.assertIsNone(protocol.frameFailed)
        self.assertEqual(sum(protocol.factory.config.stats.frameErrors.values()), 0)

    def test_bufferStaysBounded(self):
        """
        Replaces the kit's test, which expects a close: after each read is
        processed the buffer holds less than C{max-size}, whether the bytes
        come one at a time or in reads larger than the limit.
        """
        protocol, transport, sink = self.connect()
        stream = self.oversized() + b"y" * (2 * self.maxSize)
        for index in range(len(stream)):
            protocol.dataReceived(stream[index : index + 1])
            self.assertLess(protocol.bufferedByteCount(), self.maxSize)
        for size in (self.maxSize - 1, self.maxSize, 5 * self.maxSize + 3):
            protocol.dataReceived(b"z" * size)
            self.assertLess(protocol.bufferedByteCount(), self.maxSize)
        self.assertFalse(transport.disconnecting)

    def test_otherConnectionsUnaffected(self):
        """
        Replaces the kit's test, which needs bad input to close a connection
        and chunks has none: two connections on one listener are cut
        separately, and one closing publishes only its own remainder.
        """
        first, firstTransport, sink = self.connect()
        second, secondTransport, _ = self.connect(config=first.factory.config, peerPort=40001)
        first.dataReceived(self.oversized())
        messages = self.sampleMessages()
        second.dataReceived(self.encode(messages))
        self.finish(first)
        self.assertFalse(secondTransport.disconnecting)
        self.finish(second)
        self.assertSameMessages(sink.streams[0].messages, [self.oversized()])
        self.assertSameMessages(sink.streams[1].messages, messages)


class NoIdleChunksConformance(ChunksConformance):
    """
    C{chunks(idle-ms=0)} with one-byte chunks.
    """

    options = {"idle-ms": "0"}
    maxSize = 1


class LargeChunksConformance(ChunksConformance):
    """
    C{chunks(idle-ms=50)} with a 1024-byte limit and longer samples.
    """

    options = {"idle-ms": "50"}
    maxSize = 1024

    def sampleMessages(self):
        return [b"first" * 300, b"second" * 100, b"3"]


class ChunksTests(SynchronousTestCase):
    """
    What is particular to C{chunks}: cutting by size, idle time and close,
    pausing, and its one timer.
    """

    def connect(self, maxSize=1024, **options):
        self.clock = Clock()
        protocol, transport, sink = connectFraming(
            FRAMINGS["chunks"], options=options, maxMessageSize=maxSize, clock=self.clock
        )
        self.published = sink.streams[0].messages
        return protocol, transport, sink.streams[0]

    def close(self, protocol):
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_cutWhenFull(self):
        """
        Full chunks are published as they fill, without a timer when nothing
        is left over.
        """
        protocol, transport, stream = self.connect(maxSize=4)
        protocol.dataReceived(b"abcdefgh")
        self.assertEqual(self.published, [b"abcd", b"efgh"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        protocol.dataReceived(b"ij")
        protocol.dataReceived(b"kl")
        self.assertEqual(self.published, [b"abcd", b"efgh", b"ijkl"])

    def test_idleCut(self):
        """
        Bytes buffered are published once the connection has been idle for
        C{idle-ms}, not before.
        """
        protocol, transport, stream = self.connect(**{"idle-ms": "200"})
        protocol.dataReceived(b"abc")
        self.clock.advance(0.199)
        self.assertEqual(self.published, [])
        self.clock.advance(0.001)
        self.assertEqual(self.published, [b"abc"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idleTimeFromLastRead(self):
        """
        Idle time counts from the last read, with one timer re-armed when it
        fires early rather than reset on every read.
        """
        protocol, transport, stream = self.connect()
        protocol.dataReceived(b"abc")
        [timer] = self.clock.getDelayedCalls()
        self.clock.advance(0.15)
        protocol.dataReceived(b"def")
        self.assertEqual(self.clock.getDelayedCalls(), [timer])
        self.clock.advance(0.05)
        self.assertEqual(self.published, [])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.15)
        self.assertEqual(self.published, [b"abcdef"])

    def test_noIdleCutWhenZero(self):
        """
        With C{idle-ms=0} no timer is armed and bytes wait for a full chunk
        or the close.
        """
        protocol, transport, stream = self.connect(**{"idle-ms": "0"})
        protocol.dataReceived(b"abc")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(3600)
        self.assertEqual(self.published, [])
        self.close(protocol)
        self.assertEqual(self.published, [b"abc"])

    def test_remainderAtClose(self):
        """
        At close the remainder is published before the stream closes, and no
        C{incomplete} event is counted.
        """
        protocol, transport, stream = self.connect(maxSize=4)
        protocol.dataReceived(b"abcdef")
        self.close(protocol)
        self.assertEqual(self.published, [b"abcd", b"ef"])
        self.assertTrue(stream.closed)
        self.assertEqual(sum(protocol.factory.config.stats.frameErrors.values()), 0)

    def test_timerCancelledAtClose(self):
        """
        Closing the connection cancels a pending idle timer.
        """
        protocol, transport, stream = self.connect()
        protocol.dataReceived(b"abc")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.close(protocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.published, [b"abc"])

    def test_noPublishingWhilePaused(self):
        """
        While paused nothing is published, even when the idle time passes or
        a full chunk is buffered; resuming publishes the full chunks and
        restarts the idle time for the rest.
        """
        protocol, transport, stream = self.connect(maxSize=4)
        protocol.dataReceived(b"ab")
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        protocol.dataReceived(b"cdef")
        self.clock.advance(1)
        self.assertEqual(self.published, [])
        protocol.resumeProducing()
        self.assertEqual(self.published, [b"abcd"])
        self.clock.advance(0.199)
        self.assertEqual(self.published, [b"abcd"])
        self.clock.advance(0.001)
        self.assertEqual(self.published, [b"abcd", b"ef"])

    def test_closeWhilePausedPublishes(self):
        """
        A connection closed while paused still publishes what it buffered,
        in chunks of at most C{max-size}: the client sent it.
        """
        protocol, transport, stream = self.connect(maxSize=4)
        protocol.pauseProducing()
        protocol.dataReceived(b"abcdefghij")
        self.close(protocol)
        self.assertEqual(self.published, [b"abcd", b"efgh", b"ij"])

    def test_resumeInsideDelivery(self):
        """
        A pause and a resume from inside a delivery, while draining a buffer
        filled during a pause, publish each byte once, in order.
        """
        protocol, transport, stream = self.connect(maxSize=2)
        resumeInsideDelivery(protocol, stream, b"abcdefg")
        self.close(protocol)
        self.assertEqual(self.published, [b"ab", b"cd", b"ef", b"g"])

    def test_bytesReceivedInsideDelivery(self):
        """
        Bytes given to C{dataReceived} from inside a delivery are cut after
        the rest of the read being delivered.
        """
        protocol, transport, stream = self.connect(maxSize=2)
        receiveInsideDelivery(protocol, stream, b"abcde", b"fghi")
        self.assertEqual(self.published, [b"ab", b"cd", b"ef", b"gh"])
        self.assertEqual(protocol.bufferedByteCount(), 1)

    def test_idleOptionChecked(self):
        """
        C{idle-ms} is a whole number of milliseconds, at least 0.
        """
        plugin = FRAMINGS["chunks"]
        self.assertEqual(resolveOptions(plugin, {}, 10)["idle-ms"], 200)
        self.assertEqual(resolveOptions(plugin, {"idle-ms": "0"}, 10)["idle-ms"], 0)
        for bad in ("-1", "soon", "1.5"):
            self.assertRaises(OptionError, resolveOptions, plugin, {"idle-ms": bad}, 10)

    def test_registered(self):
        """
        The framing is a built-in plugin naming its protocol class.
        """
        self.assertIs(FRAMINGS["chunks"].buildFactory(None).protocol, ChunksProtocol)
        self.assertIs(FRAMINGS["chunks"].protocolClass(), ChunksProtocol)

    def test_noEmptyChunkAfterFullCut(self):
        """
        An idle timer armed for bytes that a full chunk then took publishes
        nothing when it fires: no empty chunk.
        """
        protocol, transport, stream = self.connect(maxSize=4)
        protocol.dataReceived(b"ab")
        self.clock.advance(0.1)
        protocol.dataReceived(b"cd")
        self.clock.advance(1)
        self.assertEqual(self.published, [b"abcd"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idleInMilliseconds(self):
        """
        C{idle-ms} is in thousandths of a second: 1000 is one second.
        """
        protocol, transport, stream = self.connect(**{"idle-ms": "1000"})
        protocol.dataReceived(b"abc")
        self.clock.advance(0.9995)
        self.assertEqual(self.published, [])
        self.clock.advance(0.0005)
        self.assertEqual(self.published, [b"abc"])
