# -*- test-case-name: tests.framing.test_varint -*-
"""
The C{varint} framing against the conformance kit, plus what is particular
to it: varint decoding, its bad input, and its encoding.
"""

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from gateway.framing import MALFORMED_LENGTH, TOO_LARGE, FramingError
from gateway.framing.varint import VarintProtocol, encodeVarint
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin, connectFraming
from tests.framing.helpers import receiveInsideDelivery

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
        The framing is a built-in plugin naming its protocol class.
        """
        self.assertIs(FRAMINGS["varint"].buildFactory(None).protocol, VarintProtocol)
        self.assertIs(FRAMINGS["varint"].protocolClass(), VarintProtocol)


def parsed(buffer, limit=1024):
    """
    :return: what L{VarintProtocol.parseFrames} makes of C{buffer}: its
        C{(frames, consumed)}, or for bad input C{(reason, frames, consumed,
        sizes)} of the L{FramingError}.
    """
    try:
        return VarintProtocol().parseFrames(buffer, limit)
    except FramingError as e:
        return (e.reason, e.frames, e.consumed, e.sizes)


class VarintParserTests(SynchronousTestCase):
    """
    L{VarintProtocol.parseFrames} on whole buffers: the frames, the bytes
    they took, and for bad input the error's every field.
    """

    def test_frames(self):
        """
        Whole messages after one-, two- and three-byte varints are returned
        with the bytes they took; a partial message or varint is left.
        """
        self.assertEqual(parsed(b"\x01a\x00\x02bc\x03x"), ([b"a", b"", b"bc"], 6))
        self.assertEqual(parsed(b"\x80\x01" + b"m" * 128 + b"\x01z"), ([b"m" * 128, b"z"], 132))
        self.assertEqual(parsed(b"\x81\x80\x00q", limit=2**20), ([b"q"], 4))
        self.assertEqual(parsed(b"\x01a\x80"), ([b"a"], 2))
        self.assertEqual(parsed(b"\x01a\x80\x80"), ([b"a"], 2))
        self.assertEqual(parsed(b"\x01a\x80\x80\x80\x80", limit=2**40), ([b"a"], 2))

    def test_errors(self):
        """
        Bad varints after good messages carry those messages, the bytes
        they took, and the declared size or the varint's bytes.
        """
        self.assertEqual(parsed(b"\x01a\x81\x08"), (TOO_LARGE, [b"a"], 2, {"size": 1025}))
        self.assertEqual(parsed(b"\x01a\xff\xff"), (TOO_LARGE, [b"a"], 2, {"size": 16383}))
        self.assertEqual(parsed(b"\x01a\x65", limit=100), (TOO_LARGE, [b"a"], 2, {"size": 101}))
        self.assertEqual(
            parsed(b"\x01a" + b"\x80" * 10, limit=2**70),
            (MALFORMED_LENGTH, [b"a"], 2, {"prefixBytes": 10}),
        )
        self.assertEqual(
            parsed(b"\x80" * 9 + b"\x02", limit=2**70),
            (MALFORMED_LENGTH, [], 0, {"prefixBytes": 10}),
        )

    def test_tenthByteOne(self):
        """
        A 10th byte of 1 is the 64th bit: a length of C{2 ** 63}, valid
        (too large for any real limit); of 0, a non-minimal zero.
        """
        self.assertEqual(parsed(b"\x80" * 9 + b"\x01", limit=2**70), ([], 0))
        self.assertEqual(
            parsed(b"\x80" * 9 + b"\x01", limit=2**62), (TOO_LARGE, [], 0, {"size": 2**63})
        )
        self.assertEqual(parsed(b"\x80" * 9 + b"\x00"), ([b""], 10))

    def test_longVarintReachingLimit(self):
        """
        A varint of three bytes or more whose value reaches exactly the
        limit before its last byte is read on to that byte.
        """
        self.assertEqual(parsed(b"\x80\x81\x00" + b"m" * 128, limit=128), ([b"m" * 128], 131))

    def test_encodeVarintRange(self):
        """
        L{encodeVarint} refuses negative values and values of 64 bits or
        more, saying so.
        """
        error = self.assertRaises(ValueError, encodeVarint, -1)
        self.assertEqual(str(error), "a varint holds 0 to 2**64-1, not -1")
        self.assertRaises(ValueError, encodeVarint, 2**64)
        self.assertEqual(encodeVarint(2**64 - 1), b"\xff" * 9 + b"\x01")
