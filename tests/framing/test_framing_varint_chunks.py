# -*- test-case-name: tests.framing.test_framing_varint_chunks -*-
"""
The C{varint} and C{chunks} framings against the conformance kit, plus what
is particular to each: varint decoding and its bad input, chunk cutting by
size, idle time and close, and pausing.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from gateway.framing.base import MALFORMED_LENGTH, TOO_LARGE
from gateway.framing.chunks import ChunksProtocol
from gateway.framing.options import OptionError, resolveOptions
from gateway.framing.varint import VarintProtocol, encodeVarint
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin, connectFraming

FRAMINGS = loadFramings()


def referenceVarint(value):
    """
    Encode C{value} as protobuf does, written independently of
    L{encodeVarint}: the binary digits cut into 7-bit groups, least
    significant group first, the high bit set on every group but the last.
    """
    digits = bin(value)[2:]
    digits = "0" * (-len(digits) % 7) + digits
    groups = [int(digits[i : i + 7], 2) for i in range(0, len(digits), 7)][::-1]
    return bytes([0x80 | g for g in groups[:-1]] + [groups[-1]])


def resumeInsideDelivery(protocol, stream, data):
    """
    Buffer C{data} while paused, then resume; the first delivery pauses and
    resumes again from inside C{send}, as a producer that fills and drains
    at once would.
    """
    original = stream.send

    def sendPauseResume(payload):
        original(payload)
        if len(stream.messages) == 1:
            protocol.pauseProducing()
            protocol.resumeProducing()

    protocol._send = sendPauseResume
    protocol.pauseProducing()
    protocol.dataReceived(data)
    protocol.resumeProducing()


def receiveInsideDelivery(protocol, stream, data, late):
    """
    Give the protocol C{data}; the first delivery hands it C{late} from
    inside C{send}.
    """
    original = stream.send

    def sendThenReceive(payload):
        original(payload)
        if len(stream.messages) == 1:
            protocol.dataReceived(late)

    protocol._send = sendThenReceive
    protocol.dataReceived(data)


class VarintConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{varint} with a 1024-byte limit.
    """

    plugin = FRAMINGS["varint"]
    malformed = [
        (b"\x80" * 11, MALFORMED_LENGTH),
        # 2 ** 64: zero groups stay under the limit, the 10th byte overflows.
        (b"\x80" * 9 + b"\x02", MALFORMED_LENGTH),
        # A non-minimal zero padded past 10 bytes.
        (b"\x80" * 10 + b"\x00", MALFORMED_LENGTH),
    ]

    def encode(self, messages):
        return b"".join(referenceVarint(len(m)) + m for m in messages)

    def messageStrategy(self):
        """
        Messages whose varints take one, two and three bytes, within
        C{maxSize}.
        """
        from hypothesis import strategies as st

        sizes = [n for n in (127, 128, 300, 16383, 16384, 20000) if n <= self.maxSize]
        sizes.append(self.maxSize)
        sized = st.sampled_from(sizes).map(lambda n: b"m" * n)
        return st.lists(st.one_of(st.binary(max_size=80), sized), max_size=12)


class LargeVarintConformance(VarintConformance):
    """
    C{varint} with a limit past two-byte varints, so three-byte ones round
    trip.
    """

    maxSize = 32768


class SmallVarintConformance(VarintConformance):
    """
    C{varint} with a limit below 127, so a one-byte varint can be over it.
    """

    maxSize = 100


class VarintTests(SynchronousTestCase):
    """
    What is particular to C{varint}.
    """

    def connect(self, maxSize=1024):
        return connectFraming(FRAMINGS["varint"], maxMessageSize=maxSize)

    def test_knownEncodings(self):
        """
        The reference encoder and L{encodeVarint} give protobuf's documented
        encodings, and agree on boundaries up to C{2 ** 64 - 1}.
        """
        known = {
            0: b"\x00",
            1: b"\x01",
            127: b"\x7f",
            128: b"\x80\x01",
            150: b"\x96\x01",
            300: b"\xac\x02",
            2**64 - 1: b"\xff" * 9 + b"\x01",
        }
        for value, encoded in known.items():
            self.assertEqual(referenceVarint(value), encoded)
        for bits in range(0, 65):
            for value in {2**bits - 1, 2**bits, 2**bits + 1}:
                if value < 2**64:
                    self.assertEqual(encodeVarint(value), referenceVarint(value))
        self.assertRaises(ValueError, encodeVarint, 2**64)

    def test_protobufAgrees(self):
        """
        Where the C{protobuf} package is installed, its encoder agrees with
        the reference encoder.
        """
        try:
            from google.protobuf.internal.encoder import _VarintBytes
        except ImportError:
            raise SkipTest("protobuf is not installed") from None
        for value in (0, 1, 127, 128, 300, 16384, 2**35, 2**64 - 1):
            self.assertEqual(_VarintBytes(value), referenceVarint(value))

    def test_roundTripBoundaries(self):
        """
        Messages at every varint width boundary round trip, read whole or
        one byte at a time.
        """
        sizes = [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21]
        messages = [bytes([n % 251]) * n for n in sizes]
        stream = b"".join(referenceVarint(len(m)) + m for m in messages)
        protocol, transport, sink = self.connect(maxSize=2**21)
        protocol.dataReceived(stream)
        self.assertEqual(sink.streams[0].messages, messages)
        small = b"".join(referenceVarint(len(m)) + m for m in messages[:6])
        protocol, transport, sink = self.connect(maxSize=2**21)
        for index in range(len(small)):
            protocol.dataReceived(small[index : index + 1])
        self.assertEqual(sink.streams[0].messages, messages[:6])
        self.assertFalse(transport.disconnecting)

    def test_tooLargeFromPartialVarint(self):
        """
        The connection closes as soon as the varint read so far is over the
        limit, before its last byte arrives, and nothing stays buffered.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\xff")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\xff")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(protocol.bufferedByteCount(), 0)
        # Under a limit below 127, the first byte alone can decide.
        protocol, transport, sink = self.connect(maxSize=100)
        protocol.dataReceived(b"\xe5")
        self.assertEqual(protocol.frameFailed, TOO_LARGE)

    def test_partialVarintAtLimitWaits(self):
        """
        A varint whose value so far is not over the limit waits for its next
        byte; a length of exactly the limit is accepted.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x80")
        self.assertEqual(protocol.bufferedByteCount(), 1)
        protocol.dataReceived(b"\x08" + b"z" * 1024)
        self.assertEqual(sink.streams[0].messages, [b"z" * 1024])
        self.assertFalse(transport.disconnecting)

    def test_nonMinimalAccepted(self):
        """
        Non-minimal varints are accepted, as protobuf's parsers do, up to
        10 bytes.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x80\x00" + b"\x81\x80\x00x" + b"\x80" * 9 + b"\x00")
        self.assertEqual(sink.streams[0].messages, [b"", b"x", b""])
        self.assertFalse(transport.disconnecting)

    def test_tenthByteDecides(self):
        """
        A 10th byte that continues the varint closes the connection without
        waiting for an 11th.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x80" * 10)
        self.assertEqual(protocol.frameFailed, MALFORMED_LENGTH)

    def test_overflowIsMalformedEvenUnderLimit(self):
        """
        With a limit past 64 bits, C{2 ** 64 - 1} is a valid length but
        C{2 ** 64} is malformed.
        """
        protocol, transport, sink = self.connect(maxSize=2**70)
        protocol.dataReceived(referenceVarint(2**64 - 1) + b"body")
        self.assertFalse(transport.disconnecting)
        protocol, transport, sink = self.connect(maxSize=2**70)
        protocol.dataReceived(referenceVarint(2**64))
        self.assertEqual(protocol.frameFailed, MALFORMED_LENGTH)

    def test_reasonIndependentOfReads(self):
        """
        A bad varint gets the same reason read whole or one byte at a time;
        a value over the limit is C{too-large} even if later bytes would make
        it malformed.
        """
        for data, reason in [
            (b"\xff" * 11, TOO_LARGE),
            (b"\x80" * 11, MALFORMED_LENGTH),
            (b"\x80" * 9 + b"\x02", MALFORMED_LENGTH),
            (b"\x81\x80\x80\x01", TOO_LARGE),
        ]:
            whole, _, _ = self.connect()
            whole.dataReceived(data)
            byByte, _, _ = self.connect()
            for index in range(len(data)):
                byByte.dataReceived(data[index : index + 1])
            self.assertEqual((whole.frameFailed, byByte.frameFailed), (reason, reason), data)

    def test_bytesReceivedInsideDelivery(self):
        """
        Bytes given to C{dataReceived} from inside a delivery are parsed
        after the rest of the read being delivered.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        receiveInsideDelivery(protocol, stream, b"\x01a\x01b\x02c", b"d\x01e")
        self.assertEqual(stream.messages, [b"a", b"b", b"cd", b"e"])
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        receiveInsideDelivery(protocol, stream, b"\x01a\x01b", b"\x01c")
        self.assertEqual(stream.messages, [b"a", b"b", b"c"])

    def test_sendString(self):
        """
        C{sendString} writes the varint length and the string.
        """
        protocol, transport, sink = self.connect()
        protocol.sendString(b"q" * 300)
        self.assertEqual(transport.value(), b"\xac\x02" + b"q" * 300)

    def test_registered(self):
        """
        Both framings are built-in plugins naming their protocol classes.
        """
        self.assertIs(FRAMINGS["varint"].buildFactory(None).protocol, VarintProtocol)
        self.assertIs(FRAMINGS["chunks"].buildFactory(None).protocol, ChunksProtocol)


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
