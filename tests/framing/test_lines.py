# -*- test-case-name: tests.framing.test_lines -*-
"""
The C{lines} framing against the conformance kit, with several delimiters,
plus C{strip-cr} and its frame encoding.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import TOO_LARGE, FramingError
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


class LinesLimitTests(SynchronousTestCase):
    """
    Where C{lines} draws the limit, and what its L{FramingError}s carry:
    the whole lines before the bad one and the bytes they took, so the base
    publishes exactly those.
    """

    def connect(self, **options):
        return connectFraming(FRAMINGS["lines"], options=options, maxMessageSize=10)

    def parseError(self, protocol, buffer):
        """
        :return: the L{FramingError} parsing C{buffer} raises, as
            C{(reason, frames, consumed, sizes)}.
        """
        error = self.assertRaises(FramingError, protocol.parseFrames, buffer, protocol.MAX_LENGTH)
        return error.reason, list(error.frames), error.consumed, error.sizes

    def test_tooLongWithoutDelimiter(self):
        """
        A lone incomplete line over the limit is refused with its size.
        """
        protocol, transport, sink = self.connect()
        self.assertEqual(self.parseError(protocol, b"z" * 11), (TOO_LARGE, [], 0, {"size": 11}))

    def test_tooLongLineAfterLines(self):
        """
        A line over the limit after whole lines (one exactly at the limit)
        is refused with its size; the lines before it and the bytes they
        took, delimiters included, come with the error.
        """
        protocol, transport, sink = self.connect(delimiter="\\r\\n")
        buffer = b"a b\r\n" + b"c" * 10 + b"\r\n" + b"d" * 11 + b"\r\nnext\r\n"
        self.assertEqual(
            self.parseError(protocol, buffer),
            (TOO_LARGE, [b"a b", b"c" * 10], 17, {"size": 11}),
        )

    def test_tooLongRestAfterLines(self):
        """
        Whole lines followed, in the same read, by an incomplete line
        already over the limit: the lines are published, then the
        connection is closed for the rest, with its size.
        """
        protocol, transport, sink = self.connect()
        self.assertEqual(
            self.parseError(protocol, b"ok\nfine\n" + b"z" * 11),
            (TOO_LARGE, [b"ok", b"fine"], 8, {"size": 11}),
        )
        protocol.dataReceived(b"ok\nfine\n" + b"z" * 11)
        self.assertEqual(
            (sink.streams[0].messages, protocol.frameFailed), ([b"ok", b"fine"], TOO_LARGE)
        )

    def test_restAtLimitAfterLines(self):
        """
        After whole lines, an incomplete line of exactly the limit may still
        end: it is kept, and published when its delimiter comes.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"ok\n" + b"z" * 10)
        protocol.dataReceived(b"\n")
        self.assertEqual(
            (sink.streams[0].messages, protocol.frameFailed), ([b"ok", b"z" * 10], None)
        )

    def test_delimiterSplitAfterLineAtLimit(self):
        """
        A line of exactly the limit whose two-byte delimiter is cut after
        its first byte is not refused, whether other lines came before it
        in the read or not.
        """
        for before in (b"", b"ok\r\n"):
            protocol, transport, sink = self.connect(delimiter="\\r\\n")
            protocol.dataReceived(before + b"z" * 10 + b"\r")
            protocol.dataReceived(b"\n")
            self.assertEqual(sink.streams[0].messages, before[:2].split() + [b"z" * 10])
            self.assertIsNone(protocol.frameFailed)

    def test_stripCRLineAtLimit(self):
        """
        With C{strip-cr}, a line of exactly the limit whose C{\\r\\n} is cut
        after the C{\\r} is not refused: the C{\\r} does not count.
        """
        protocol, transport, sink = self.connect(**{"strip-cr": "true"})
        protocol.dataReceived(b"z" * 10 + b"\r")
        protocol.dataReceived(b"\n")
        self.assertEqual((sink.streams[0].messages, protocol.frameFailed), ([b"z" * 10], None))

    def test_encodeFrame(self):
        """
        A frame is the payload and the listener's delimiter.
        """
        protocol, transport, sink = self.connect(delimiter="\\r\\n")
        self.assertEqual(protocol.encodeFrame(b"x"), b"x\r\n")
