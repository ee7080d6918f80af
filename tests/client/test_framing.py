# -*- test-case-name: tests.client.test_framing -*-
"""
L{ClientFraming}: every built-in framing with boundaries, byte for byte as
C{docs/framings.md} specifies it, both ways.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.client import ClientFraming
from gateway.framing import FramingError, OptionError
from gateway.registry import FramingRegistry
from tests.client.helpers import FRAMINGS, framing

#: framing, options, a payload and its bytes on the wire.
ENCODINGS = [
    ("lines", {}, b"ACK 5", b"ACK 5\n"),
    ("lines", {"delimiter": "\\r\\n"}, b"ACK 5", b"ACK 5\r\n"),
    ("lines", {"delimiter": "\\x1e"}, b"SESSION a 1", b"SESSION a 1\x1e"),
    ("length-prefixed", {}, b"ACK 5", b"\x00\x00\x00\x05ACK 5"),
    ("length-prefixed", {"prefix-size": "2", "byte-order": "little"}, b"ACK 5", b"\x05\x00ACK 5"),
    ("length-prefixed", {"prefix-size": 1, "includes-prefix": True}, b"ACK 5", b"\x06ACK 5"),
    ("length-prefixed", {"prefix-size": 8}, b"ACK 12", b"\x00" * 7 + b"\x06ACK 12"),
    ("netstring", {}, b"ACK 5", b"5:ACK 5,"),
    ("octet-counting", {}, b"NACK 3 too-large", b"16 NACK 3 too-large"),
    ("varint", {}, b"ACK 5", b"\x05ACK 5"),
    ("varint", {}, b"x" * 300, b"\xac\x02" + b"x" * 300),
]


class EncodingTests(SynchronousTestCase):
    """
    What a client writes and reads, per framing.
    """

    def test_encode(self):
        """
        A message is framed exactly as the framing's spec says.
        """
        for name, options, payload, wire in ENCODINGS:
            self.assertEqual(framing(name, **options).encode(payload), wire, (name, options))

    def test_parse(self):
        """
        Replies are cut out of the same bytes, whole or split anywhere,
        several at a time.
        """
        for name, options, payload, wire in ENCODINGS:
            codec = framing(name, **options)
            if len(payload) > 100:
                continue
            self.assertEqual(codec.parse(wire + wire), ([payload, payload], 2 * len(wire)))
            for cut in range(len(wire)):
                frames, consumed = codec.parse(wire[:cut])
                self.assertEqual((list(frames), consumed), ([], 0), (name, cut))

    def test_gatewayParsesWhatTheClientWrites(self):
        """
        The gateway's own parser, set up with the same options, reads back
        what the client encodes.
        """
        for name, options, payload, wire in ENCODINGS:
            codec = framing(name, **options)
            frames, consumed = codec._codec.parseFrames(codec.encode(payload), 1 << 20)
            self.assertEqual((list(frames), consumed), ([payload], len(wire)))

    def test_badReply(self):
        """
        Bytes that are not a reply in the framing raise L{FramingError}.
        """
        self.assertRaises(FramingError, framing("netstring").parse, b"5:ACK 5;")
        self.assertRaises(FramingError, framing("lines").parse, b"x" * 2000)

    def test_payloadHoldingTheDelimiter(self):
        """
        A line cannot hold its delimiter: refused rather than sent as two.
        """
        e = self.assertRaises(ValueError, framing("lines").encode, b"a\nb")
        self.assertIn("delimiter", str(e))

    def test_emptyOctetCounted(self):
        """
        An octet-counted frame cannot be empty.
        """
        self.assertRaises(ValueError, framing("octet-counting").encode, b"")


class SpecTests(SynchronousTestCase):
    """
    L{ClientFraming.fromSpec}: a framing as C{--listen} writes it.
    """

    registry = FramingRegistry()

    def fromSpec(self, spec):
        return ClientFraming.fromSpec(spec, self.registry)

    def test_name(self):
        """
        A name alone gives the framing with its defaults.
        """
        codec = self.fromSpec("netstring")
        self.assertEqual(codec.name, "netstring")
        self.assertEqual(codec.encode(b"hi"), b"2:hi,")

    def test_options(self):
        """
        Options in parentheses, with the escapes of C{--listen}.
        """
        self.assertEqual(self.fromSpec("lines(delimiter=\\r\\n)").encode(b"a"), b"a\r\n")
        self.assertEqual(
            self.fromSpec("length-prefixed(prefix-size=2, byte-order=little)").encode(b"a"),
            b"\x01\x00a",
        )

    def test_unknownFraming(self):
        """
        An unknown framing is an L{OptionError} naming the ones available.
        """
        e = self.assertRaises(OptionError, self.fromSpec, "morse")
        self.assertIn("unknown framing 'morse'", str(e))
        self.assertIn("lines", str(e))

    def test_badOption(self):
        """
        An unknown option or a bad value is an L{OptionError} naming it.
        """
        e = self.assertRaises(OptionError, self.fromSpec, "lines(colour=red)")
        self.assertIn("'colour'", str(e))
        e = self.assertRaises(OptionError, self.fromSpec, "length-prefixed(prefix-size=3)")
        self.assertIn("prefix-size", str(e))

    def test_maxSize(self):
        """
        C{max-size} is the gateway's limit, meaningless to a client.
        """
        e = self.assertRaises(OptionError, self.fromSpec, "lines(max-size=10)")
        self.assertIn("max-size", str(e))

    def test_malformed(self):
        """
        Unclosed parentheses are an L{OptionError}.
        """
        self.assertRaises(OptionError, self.fromSpec, "lines(delimiter=x")

    def test_chunks(self):
        """
        C{chunks} has no message boundaries: refused in one line.
        """
        e = self.assertRaises(OptionError, ClientFraming, FRAMINGS["chunks"])
        self.assertEqual(str(e), "framing 'chunks' has no message boundaries a client can count")

    def test_withoutProtocolClass(self):
        """
        A plugin without a C{protocolClass()} cannot be used by a client.
        """

        class Plugin:
            name = "opaque"
            options = ()

        e = self.assertRaises(OptionError, ClientFraming, Plugin())
        self.assertIn("'opaque'", str(e))
