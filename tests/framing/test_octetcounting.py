# -*- test-case-name: tests.framing.test_octetcounting -*-
"""
The C{octet-counting} framing (RFC 6587) against the conformance kit, alone
and mixed with newline-terminated frames, plus what is particular to it.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import INCOMPLETE, MALFORMED_LENGTH, TOO_LARGE, FramingError
from gateway.framing.octetcounting import OctetCountingProtocol
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin, connectFraming

FRAMINGS = loadFramings()

#: RFC 5424 section 6.5's first two examples, as RFC 6587 would carry them.
SYSLOG_SU = (
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
    b"\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"
)


SYSLOG_EVNT = (
    b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
    b"%% It's time to make the do-nuts."
)


def octetCounted(message):
    """
    :return: C{message} as an RFC 6587 octet-counted frame.
    """
    return b"%d %s" % (len(message), message)


def forNewlineFrame(message):
    """
    Make C{message} something a newline-terminated frame can carry and that
    is not mistaken for an octet-counted frame: no C{LF}, not empty, not
    starting with a digit.
    """
    message = message.replace(b"\n", b"").lstrip(b"0123456789")
    return message or b"-"


class OctetCountingConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{octet-counting} alone (RFC 6587 3.4.1): it cannot express an empty
    message, since C{MSG-LEN} starts with a non-zero digit.
    """

    plugin = FRAMINGS["octet-counting"]
    supportsEmptyMessages = False
    malformed = [
        (b"5x hello", MALFORMED_LENGTH),
        (b"05 hello", MALFORMED_LENGTH),
        (b"0 ", MALFORMED_LENGTH),
        (b"5:hello", MALFORMED_LENGTH),
        (b" 5 hello", MALFORMED_LENGTH),
        (b"abc", MALFORMED_LENGTH),
        (b"<34>1 - - - - - -\n", MALFORMED_LENGTH),
        (b"1025 ", TOO_LARGE),
        (b"99999", TOO_LARGE),
    ]

    def encode(self, messages):
        return b"".join(map(octetCounted, messages))

    def test_tooLargeFromDigitsAlone(self):
        """
        A C{MSG-LEN} over the limit closes the connection as soon as its
        digits exceed the limit, before the space arrives.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"102")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"5")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_lengthAtLimit(self):
        """
        A message exactly as long as the limit is published.
        """
        protocol, transport, sink = self.connect()
        message = b"m" * self.maxSize
        protocol.dataReceived(octetCounted(message))
        self.assertEqual(sink.streams[0].messages, [message])
        self.assertFalse(transport.disconnecting)

    def test_transparent(self):
        """
        An octet-counted message may hold any bytes, spaces and newlines
        included; they are published as counted.
        """
        protocol, transport, sink = self.connect()
        messages = [SYSLOG_SU + b"\n", b"12 34\n56 ", b"\r\n"]
        protocol.dataReceived(b"".join(map(octetCounted, messages)))
        self.assertEqual(sink.streams[0].messages, messages)

    def test_strayNewlineRefused(self):
        """
        Without C{allow-newline}, an C{LF} after a counted frame (not
        counted in C{MSG-LEN}) is a malformed length; the frame before it
        is published.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(octetCounted(SYSLOG_SU) + b"\n")
        self.assertEqual(sink.streams[0].messages, [SYSLOG_SU])
        self.assertEqual(protocol.frameFailed, MALFORMED_LENGTH)

    def test_stopProducing(self):
        """
        C{stopProducing} stops the transport and delivers nothing more.
        """
        protocol, transport, sink = self.connect()
        protocol.stopProducing()
        self.assertEqual(transport.producerState, "stopped")
        protocol.dataReceived(self.encode([b"late"]))
        self.assertEqual(sink.streams[0].messages, [])


class MixedFramingConformance(OctetCountingConformance):
    """
    C{octet-counting(allow-newline=true)}: octet-counted and
    newline-terminated frames alternate on one connection, starting with an
    octet-counted one.
    """

    options = {"allow-newline": "true"}
    #: Index parity of the messages sent octet-counted.
    countedParity = 0
    malformed = [
        (b"5x hello", MALFORMED_LENGTH),
        (b"05 hello", MALFORMED_LENGTH),
        (b"12abc\n", MALFORMED_LENGTH),
        (b"1025 ", TOO_LARGE),
        (b"<" + b"x" * 1024, TOO_LARGE),
        (b"<" + b"x" * 2000 + b"\n", TOO_LARGE),
    ]

    def encode(self, messages):
        return b"".join(
            octetCounted(m) if index % 2 == self.countedParity else m + b"\n"
            for index, m in enumerate(messages)
        )

    def messageStrategy(self):
        from hypothesis import strategies as st

        def clean(messages):
            return [
                m if index % 2 == self.countedParity else forNewlineFrame(m)
                for index, m in enumerate(messages)
            ]

        return st.lists(st.binary(min_size=1, max_size=80), max_size=25).map(clean)

    def test_strayNewlineRefused(self):
        """
        Overrides the strict variant's test, whose refusal does not apply:
        with C{allow-newline}, an C{LF} after a counted frame is an empty
        newline-terminated frame, skipped without publishing anything.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(
            octetCounted(SYSLOG_SU) + b"\n" + octetCounted(SYSLOG_EVNT) + b"\n\n"
        )
        self.assertEqual(sink.streams[0].messages, [SYSLOG_SU, SYSLOG_EVNT])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_rfc6587Mixed(self):
        """
        RFC 5424 messages sent octet-counted (3.4.1) and newline-terminated
        (3.4.2) on one connection, cut into small reads, come out whole and
        in order; a C{CR} before the C{LF} is kept.
        """
        protocol, transport, sink = self.connect()
        stream = (
            octetCounted(SYSLOG_SU)
            + SYSLOG_EVNT
            + b"\n"
            + octetCounted(SYSLOG_EVNT)
            + SYSLOG_SU
            + b"\r\n"
        )
        for index in range(0, len(stream), 7):
            protocol.dataReceived(stream[index : index + 7])
        self.assertEqual(
            sink.streams[0].messages,
            [SYSLOG_SU, SYSLOG_EVNT, SYSLOG_EVNT, SYSLOG_SU + b"\r"],
        )
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_newlineFrameAtLimit(self):
        """
        A newline-terminated message exactly as long as the limit is
        published; a partial one that long is kept waiting for its C{LF}.
        """
        protocol, transport, sink = self.connect()
        message = b"<" + b"m" * (self.maxSize - 1)
        protocol.dataReceived(message)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\n")
        self.assertEqual(sink.streams[0].messages, [message])

    def test_newlineFrameOverLimit(self):
        """
        A newline-terminated message is too large as soon as more than the
        limit has arrived without an C{LF}.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"<" + b"m" * (self.maxSize - 1))
        protocol.dataReceived(b"m")
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_unterminatedLineIncomplete(self):
        """
        A connection closing after a newline-terminated frame without its
        C{LF} publishes nothing of it and counts C{incomplete}.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"first\nsecond")
        self.finish(protocol)
        self.assertEqual(sink.streams[0].messages, [b"first"])
        self.assertEqual(protocol.factory.config.stats.frameErrors[INCOMPLETE], 1)


class NewlineFirstConformance(MixedFramingConformance):
    """
    C{octet-counting(allow-newline=true)} with the alternation starting on a
    newline-terminated frame, so the kit's single-message cases (over the
    limit, cut mid-frame) exercise that kind.
    """

    countedParity = 1

    def sampleMessages(self):
        return [b"first", b"a little longer second message", b"third"]


class OctetCountingPluginTests(SynchronousTestCase):
    """
    How the framing is declared.
    """

    def test_registered(self):
        """
        The framing is an installed plugin naming its protocol class.
        """
        self.assertIs(
            FRAMINGS["octet-counting"].buildFactory(None).protocol,
            OctetCountingProtocol,
        )
        self.assertIs(FRAMINGS["octet-counting"].protocolClass(), OctetCountingProtocol)

    def test_allowNewlineDefault(self):
        """
        C{allow-newline} is a boolean, off unless given.
        """
        [option] = FRAMINGS["octet-counting"].options
        self.assertEqual(
            (option.name, option.default, option.kind), ("allow-newline", False, "bool")
        )
        protocol, transport, sink = connectFraming(FRAMINGS["octet-counting"])
        self.assertFalse(protocol.allowNewline)
        protocol, transport, sink = connectFraming(
            FRAMINGS["octet-counting"], options={"allow-newline": "yes"}
        )
        self.assertTrue(protocol.allowNewline)


def parsed(buffer, limit=100, allowNewline=False):
    """
    :return: what L{OctetCountingProtocol.parseFrames} makes of C{buffer}:
        its C{(frames, consumed)}, or for bad input C{(reason, frames,
        consumed, sizes)} of the L{FramingError}.
    """
    protocol = OctetCountingProtocol()
    protocol.allowNewline = allowNewline
    try:
        return protocol.parseFrames(buffer, limit)
    except FramingError as e:
        return (e.reason, e.frames, e.consumed, e.sizes)


class OctetCountingParserTests(SynchronousTestCase):
    """
    L{OctetCountingProtocol.parseFrames} on whole buffers: the frames, the
    bytes they took, and for bad input the error's every field.
    """

    def test_counted(self):
        """
        Whole counted frames are returned with the bytes they took; a
        partial one is left in the buffer.
        """
        self.assertEqual(parsed(b"1 a2 bc3 x"), ([b"a", b"bc"], 7))
        self.assertEqual(parsed(b"100 " + b"m" * 100), ([b"m" * 100], 104))
        self.assertEqual(parsed(b"1 a10"), ([b"a"], 3))
        self.assertEqual(parsed(b"1 a100"), ([b"a"], 3))
        self.assertEqual(parsed(b"9 123456789"), ([b"123456789"], 11))

    def test_countedErrors(self):
        """
        Bad counted frames after good ones carry those frames, the bytes
        they took, the bytes buffered from the bad one on, and the declared
        size when there is one.
        """
        self.assertEqual(parsed(b"1 a101 x"), (TOO_LARGE, [b"a"], 3, {"buffered": 5, "size": 101}))
        self.assertEqual(parsed(b"1 a1000"), (TOO_LARGE, [b"a"], 3, {"buffered": 4, "size": 1000}))
        self.assertEqual(parsed(b"1 a101"), (TOO_LARGE, [b"a"], 3, {"buffered": 3, "size": 101}))
        self.assertEqual(parsed(b"1 a1x a"), (MALFORMED_LENGTH, [b"a"], 3, {"buffered": 4}))
        self.assertEqual(parsed(b"1 a01 a"), (MALFORMED_LENGTH, [b"a"], 3, {"buffered": 4}))
        self.assertEqual(parsed(b"1 a0"), (MALFORMED_LENGTH, [b"a"], 3, {"buffered": 1}))
        self.assertEqual(parsed(b"1 ax"), (MALFORMED_LENGTH, [b"a"], 3, {"buffered": 1}))

    def test_tooLargeJudgedOnLimitDigitsPlusOne(self):
        """
        Without a space within the limit's digits plus one, the length is
        judged on those bytes alone: its declared size is theirs, whatever
        follows.
        """
        self.assertEqual(
            parsed(b"1 a12345 x"), (TOO_LARGE, [b"a"], 3, {"buffered": 7, "size": 1234})
        )
        self.assertEqual(
            parsed(b"1 a1234x"), (TOO_LARGE, [b"a"], 3, {"buffered": 5, "size": 1234})
        )

    def test_newlineFirst(self):
        """
        With C{allow-newline}, a bare C{LF} at the very start of the buffer
        is skipped like any other empty frame.
        """
        self.assertEqual(parsed(b"\nab\n", allowNewline=True), ([b"ab"], 4))
        self.assertEqual(parsed(b"\n", allowNewline=True), ([], 1))

    def test_newlineFrames(self):
        """
        With C{allow-newline}, a frame not starting with a digit (C{0} to
        C{9}) ends at its C{LF}; empty ones are skipped; one of exactly the
        limit is published, a longer one is too large once more than the
        limit arrived without an C{LF}.
        """
        self.assertEqual(
            parsed(b"ab\n\n9 123456789", allowNewline=True), ([b"ab", b"123456789"], 15)
        )
        self.assertEqual(parsed(b"1 a\n/x\n:y\n", allowNewline=True), ([b"a", b"/x", b":y"], 10))
        self.assertEqual(
            parsed(b"0x\n", allowNewline=True), (MALFORMED_LENGTH, [], 0, {"buffered": 3})
        )
        self.assertEqual(
            parsed(b"<" + b"m" * 3 + b"\n", limit=4, allowNewline=True), ([b"<mmm"], 5)
        )
        self.assertEqual(
            parsed(b"1 a<" + b"m" * 4 + b"\n", limit=4, allowNewline=True),
            (TOO_LARGE, [b"a"], 3, {"buffered": 6, "size": 6}),
        )
        self.assertEqual(parsed(b"1 a<mmm", limit=4, allowNewline=True), ([b"a"], 3))
        self.assertEqual(
            parsed(b"1 a<mmmm", limit=4, allowNewline=True),
            (TOO_LARGE, [b"a"], 3, {"buffered": 5, "size": 5}),
        )

    def test_encodeFrame(self):
        """
        C{encodeFrame} writes the length, a space and the payload; an empty
        payload cannot be counted.
        """
        protocol = OctetCountingProtocol()
        self.assertEqual(protocol.encodeFrame(b"hello"), b"5 hello")
        error = self.assertRaises(ValueError, protocol.encodeFrame, b"")
        self.assertEqual(str(error), "an octet-counted frame cannot be empty")
