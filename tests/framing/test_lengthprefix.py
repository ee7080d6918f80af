# -*- test-case-name: tests.framing.test_lengthprefix -*-
"""
The C{length-prefixed} framing against the conformance kit, in its prefix
sizes, byte orders and self-counting variant.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import MALFORMED_LENGTH, TOO_LARGE, FramingError
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin, connectFraming

FRAMINGS = loadFramings()


class LengthPrefixedConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{length-prefixed} with its default 4-byte big-endian prefix.
    """

    plugin = FRAMINGS["length-prefixed"]
    fmt = "!I"
    includesPrefix = False

    def encode(self, messages):
        size = struct.calcsize(self.fmt)
        extra = size if self.includesPrefix else 0
        return b"".join(struct.pack(self.fmt, len(m) + extra) + m for m in messages)

    def test_hugeLengthRefusedBeforeBuffering(self):
        """
        A prefix announcing the largest length closes the connection at once,
        before any of the body is buffered.
        """
        protocol, transport, sink = self.connect()
        largest = 2 ** (8 * struct.calcsize(self.fmt)) - 1
        protocol.dataReceived(struct.pack(self.fmt, largest) + b"body")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.bufferedByteCount(), 0)


class TwoByteLittleEndianConformance(LengthPrefixedConformance):
    """
    C{length-prefixed(prefix-size=2,byte-order=little)}.
    """

    options = {"prefix-size": "2", "byte-order": "little"}
    fmt = "<H"


class OneByteConformance(LengthPrefixedConformance):
    """
    C{length-prefixed(prefix-size=1)}, with a limit the prefix can express.
    """

    options = {"prefix-size": "1"}
    fmt = "!B"
    maxSize = 100


class SelfCountingConformance(LengthPrefixedConformance):
    """
    C{length-prefixed(prefix-size=8,includes-prefix=true)}: the length
    counts the prefix's own 8 bytes.
    """

    options = {"prefix-size": "8", "includes-prefix": "true"}
    fmt = "!Q"
    includesPrefix = True
    malformed = [(struct.pack("!Q", 7), MALFORMED_LENGTH)]


class LengthPrefixedDetailsTests(SynchronousTestCase):
    """
    What C{length-prefixed}'s L{FramingError}s carry, its per-listener
    settings, and its frame encoding.
    """

    def connect(self, **options):
        return connectFraming(FRAMINGS["length-prefixed"], options=options, maxMessageSize=10)

    def parseError(self, protocol, buffer):
        """
        :return: the L{FramingError} parsing C{buffer} raises, as
            C{(reason, frames, consumed, sizes)}.
        """
        error = self.assertRaises(FramingError, protocol.parseFrames, buffer, protocol.MAX_LENGTH)
        return error.reason, list(error.frames), error.consumed, error.sizes

    def test_tooLargeAfterFrames(self):
        """
        A length over the limit after whole messages is refused with the
        declared size; the messages before it and the bytes they took come
        with the error.
        """
        protocol, transport, sink = self.connect()
        buffer = struct.pack("!I", 2) + b"ab" + struct.pack("!I", 11) + b"x"
        self.assertEqual(self.parseError(protocol, buffer), (TOO_LARGE, [b"ab"], 6, {"size": 11}))

    def test_malformedLengthAfterFrames(self):
        """
        A self-counting length smaller than its prefix is malformed, logged
        with the length as declared.
        """
        protocol, transport, sink = self.connect(**{"prefix-size": "2", "includes-prefix": "true"})
        buffer = struct.pack("!H", 3) + b"a" + struct.pack("!H", 1)
        self.assertEqual(
            self.parseError(protocol, buffer), (MALFORMED_LENGTH, [b"a"], 3, {"declared": 1})
        )

    def test_listenerSettings(self):
        """
        A listener's class holds its prefix's struct format, size and
        whether the length counts the prefix.
        """
        protocol, transport, sink = self.connect(
            **{"prefix-size": "2", "byte-order": "little", "includes-prefix": "true"}
        )
        cls = type(protocol)
        self.assertEqual((cls.structFormat, cls.prefixLength, cls.includesPrefix), ("<H", 2, True))

    def test_encodeFrame(self):
        """
        A frame is the payload after its length in the listener's prefix,
        counting the prefix when the listener's lengths do.
        """
        plain = self.connect(**{"prefix-size": "2", "byte-order": "little"})[0]
        counting = self.connect(**{"prefix-size": "2", "includes-prefix": "true"})[0]
        self.assertEqual(plain.encodeFrame(b"abc"), b"\x03\x00abc")
        self.assertEqual(counting.encodeFrame(b"abc"), b"\x00\x05abc")
