# -*- test-case-name: tests.framing.test_netstring -*-
"""
The C{netstring} framing against the conformance kit, plus what is
particular to it: lengths judged from their digits, Twisted's encoding.
"""

from twisted.internet.testing import StringTransport
from twisted.protocols.basic import NetstringReceiver
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import MALFORMED_FRAME, MALFORMED_LENGTH, TOO_LARGE, FramingError
from gateway.framing.netstring import NetstringProtocol
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin

FRAMINGS = loadFramings()


def netstring(message):
    """
    :return: C{message} as a netstring.
    """
    return b"%d:%s," % (len(message), message)


class NetstringConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{netstring} with the kit's limit of 1024 bytes.
    """

    plugin = FRAMINGS["netstring"]
    malformed = [
        (b"1a:x,", MALFORMED_LENGTH),
        (b"01:x,", MALFORMED_LENGTH),
        (b":x,", MALFORMED_LENGTH),
        (b"-1:x,", MALFORMED_LENGTH),
        (b" 1:x,", MALFORMED_LENGTH),
        (b"3:abcX", MALFORMED_FRAME),
        (b"1025:", TOO_LARGE),
        (b"99999", TOO_LARGE),
    ]

    def encode(self, messages):
        return b"".join(map(netstring, messages))

    def test_tooLargeFromDigitsAlone(self):
        """
        A length over the limit closes the connection as soon as its digits
        exceed the limit, before the colon arrives, and nothing is kept.
        """
        protocol, transport, sink = self.connect()
        for digit in b"102":
            protocol.dataReceived(bytes([digit]))
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"5")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_tooManyDigits(self):
        """
        A length with more digits than the limit has is too large, even when
        the limit's digit count is reached with leading digits below it.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"10000")
        self.assertEqual(protocol.frameFailed, TOO_LARGE)

    def test_lengthAtLimit(self):
        """
        A netstring exactly as long as the limit is published.
        """
        protocol, transport, sink = self.connect()
        message = b"m" * self.maxSize
        protocol.dataReceived(netstring(message))
        self.assertEqual(sink.streams[0].messages, [message])
        self.assertFalse(transport.disconnecting)

    def test_leadingZeroDecidedEarly(self):
        """
        C{0} followed by another digit is refused at once (only C{0:} may
        start with a zero), without waiting for the colon.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"0")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"0")
        self.assertEqual(protocol.frameFailed, MALFORMED_LENGTH)

    def test_emptyNetstringAlone(self):
        """
        C{0:,} is one empty message.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"0:,")
        self.assertEqual(sink.streams[0].messages, [b""])

    def test_twistedEncodingRoundTrips(self):
        """
        What Twisted's own L{NetstringReceiver.sendString} writes is read
        back message for message.
        """
        protocol, transport, sink = self.connect()
        writer, writerTransport = NetstringReceiver(), StringTransport()
        writer.makeConnection(writerTransport)
        messages = [b"", b"a:b,c", b"\x00" * 20]
        for message in messages:
            writer.sendString(message)
        self.assertEqual(b"".join(map(protocol.encodeFrame, messages)), writerTransport.value())
        protocol.dataReceived(writerTransport.value())
        self.assertEqual(sink.streams[0].messages, messages)


class SmallLimitNetstringConformance(NetstringConformance):
    """
    C{netstring(max-size=100)}: the limit has three digits.
    """

    maxSize = 100
    malformed = [
        (b"101:", TOO_LARGE),
        (b"1000", TOO_LARGE),
        (b"3:abc;", MALFORMED_FRAME),
        (b"1x", MALFORMED_LENGTH),
    ]

    def test_tooLargeFromDigitsAlone(self):
        """
        With a limit of 100, C{101} is too large before its colon arrives.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"10")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"1")
        self.assertEqual(protocol.frameFailed, TOO_LARGE)

    def test_tooManyDigits(self):
        """
        With a limit of 100, four digits are too large whatever they are.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"0001")
        self.assertEqual(protocol.frameFailed, MALFORMED_LENGTH)
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"1000")
        self.assertEqual(protocol.frameFailed, TOO_LARGE)


class NetstringPluginTests(SynchronousTestCase):
    """
    How the framing is declared.
    """

    def test_registered(self):
        """
        The framing is an installed plugin naming its protocol class.
        """
        self.assertIs(FRAMINGS["netstring"].buildFactory(None).protocol, NetstringProtocol)
        self.assertIs(FRAMINGS["netstring"].protocolClass(), NetstringProtocol)


def parsed(buffer, limit=100):
    """
    :return: what L{NetstringProtocol.parseFrames} makes of C{buffer}: its
        C{(frames, consumed)}, or for bad input C{(reason, frames, consumed,
        sizes)} of the L{FramingError}.
    """
    try:
        return NetstringProtocol().parseFrames(buffer, limit)
    except FramingError as e:
        return (e.reason, e.frames, e.consumed, e.sizes)


class NetstringParserTests(SynchronousTestCase):
    """
    L{NetstringProtocol.parseFrames} on whole buffers: the frames, the bytes
    they took, and for bad input the error's every field.
    """

    def test_wholeAndPartial(self):
        """
        Whole netstrings are returned with the bytes they took; a partial
        one (even lacking only its comma) is left in the buffer.
        """
        self.assertEqual(parsed(b"1:a,2:bc,3:x"), ([b"a", b"bc"], 9))
        self.assertEqual(parsed(b"1:a,0:,3:xyz"), ([b"a", b""], 7))
        self.assertEqual(parsed(b"100:" + b"m" * 100 + b","), ([b"m" * 100], 105))
        self.assertEqual(parsed(b"1:a,10"), ([b"a"], 4))

    def test_errorsAfterFrames(self):
        """
        Bad input after good netstrings carries those frames, the bytes
        they took, the bytes buffered from the bad one on, and its declared
        size when it has one.
        """
        self.assertEqual(
            parsed(b"1:a,3:abcX,"), (MALFORMED_FRAME, [b"a"], 4, {"buffered": 7, "size": 3})
        )
        self.assertEqual(
            parsed(b"1:a,101:xx"), (TOO_LARGE, [b"a"], 4, {"buffered": 6, "size": 101})
        )
        self.assertEqual(parsed(b"1:a,1x:b"), (MALFORMED_LENGTH, [b"a"], 4, {"buffered": 4}))
        self.assertEqual(parsed(b"1:a,01:b,"), (MALFORMED_LENGTH, [b"a"], 4, {"buffered": 5}))

    def test_errorsBeforeColon(self):
        """
        A length judged before its colon arrives: too large with the value
        of the digits so far, or malformed without a size.
        """
        self.assertEqual(
            parsed(b"2:ab,1000"), (TOO_LARGE, [b"ab"], 5, {"buffered": 4, "size": 1000})
        )
        self.assertEqual(
            parsed(b"2:ab,101"), (TOO_LARGE, [b"ab"], 5, {"buffered": 3, "size": 101})
        )
        self.assertEqual(parsed(b"2:ab,00"), (MALFORMED_LENGTH, [b"ab"], 5, {"buffered": 2}))
        self.assertEqual(parsed(b"2:ab,1a"), (MALFORMED_LENGTH, [b"ab"], 5, {"buffered": 2}))
        self.assertEqual(parsed(b"2:ab,0"), ([b"ab"], 5))
        self.assertEqual(parsed(b"2:ab,100"), ([b"ab"], 5))

    def test_tooLargeJudgedOnLimitDigitsPlusOne(self):
        """
        Without a colon within the limit's digits plus one, the length is
        judged on those bytes alone: its declared size is theirs, whatever
        follows.
        """
        self.assertEqual(
            parsed(b"2:ab,12345:x,"), (TOO_LARGE, [b"ab"], 5, {"buffered": 8, "size": 1234})
        )
        self.assertEqual(
            parsed(b"2:ab,12345"), (TOO_LARGE, [b"ab"], 5, {"buffered": 5, "size": 1234})
        )

    def test_zeroLength(self):
        """
        C{0:} may start with a zero; C{00:} may not.
        """
        self.assertEqual(parsed(b"0:,"), ([b""], 3))
        self.assertEqual(parsed(b"00:,"), (MALFORMED_LENGTH, [], 0, {"buffered": 4}))

    def test_encodeFrame(self):
        """
        C{encodeFrame} writes the length, a colon, the payload and a comma;
        C{sendString} writes that to the transport.
        """
        protocol = NetstringProtocol()
        self.assertEqual(protocol.encodeFrame(b"hello"), b"5:hello,")
        protocol.transport = StringTransport()
        protocol.sendString(b"")
        self.assertEqual(protocol.transport.value(), b"0:,")
