# -*- test-case-name: tests.framing.test_framing -*-
"""
The built-in framings against the conformance kit, in several option
combinations, plus what is particular to each.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.base import MALFORMED_LENGTH, TOO_LARGE
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin

FRAMINGS = loadFramings()


class LinesConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{lines} with its default newline delimiter.
    """

    plugin = FRAMINGS["lines"]
    delimiter = b"\n"

    def encode(self, messages):
        return b"".join(m + self.delimiter for m in messages)

    def messageStrategy(self):
        from hypothesis import strategies as st

        def clean(message):
            while self.delimiter in message:
                message = message.replace(self.delimiter, b"")
            # A message ending with part of the delimiter would merge with it.
            while message and self.delimiter.startswith(message[-1:]) and len(self.delimiter) > 1:
                message = message[:-1]
            return message

        return st.lists(st.binary(max_size=80).map(clean), max_size=25)

    def test_lineOverLimitWithoutDelimiter(self):
        """
        A line that grows past the limit without a delimiter closes the
        connection without waiting for its end.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"z" * (self.maxSize + len(self.delimiter)))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)


class CRLFLinesConformance(LinesConformance):
    """
    C{lines} with a two-byte delimiter given as an escaped option.
    """

    options = {"delimiter": "\\r\\n"}
    delimiter = b"\r\n"


class NulLinesConformance(LinesConformance):
    """
    C{lines} with a NUL delimiter, as Graylog's GELF over TCP uses.
    """

    options = {"delimiter": "\\0"}
    delimiter = b"\0"


class StripCRTests(SynchronousTestCase):
    """
    C{lines(strip-cr=true)}.
    """

    def test_stripsOneCarriageReturn(self):
        """
        One C{\\r} before the newline is dropped, other C{\\r} bytes kept.
        """
        from gateway.testing import connectFraming

        protocol, transport, sink = connectFraming(FRAMINGS["lines"], options={"strip-cr": "true"})
        protocol.dataReceived(b"dos\r\nunix\n\rin\rside\r\r\n")
        self.assertEqual(sink.streams[0].messages, [b"dos", b"unix", b"\rin\rside\r"])


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
