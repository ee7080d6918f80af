# -*- test-case-name: tests.framing.test_lines -*-
"""
The C{lines} framing against the conformance kit, with several delimiters,
plus C{strip-cr} and its frame encoding.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import TOO_LARGE
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin, connectFraming

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

        protocol, transport, sink = connectFraming(FRAMINGS["lines"], options={"strip-cr": "true"})
        protocol.dataReceived(b"dos\r\nunix\n\rin\rside\r\r\n")
        self.assertEqual(sink.streams[0].messages, [b"dos", b"unix", b"\rin\rside\r"])
