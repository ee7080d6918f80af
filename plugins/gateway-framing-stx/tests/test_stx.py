# -*- test-case-name: test_stx -*-
"""
The C{stx} framing against the gateway's conformance kit, plus what is
particular to it: escapes, the C{ignore} option, sizes counted unescaped.

Run from this directory (C{pytest}) with the plugin installed, or from the
gateway's checkout (C{scripts/test plugins}).  This directory has no
C{__init__.py} on purpose: the gateway's own C{tests} package would
otherwise collide with it.
"""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import INCOMPLETE, MALFORMED_FRAME, TOO_LARGE
from gateway.framing.options import OptionError, resolveOptions
from gateway.registry import FramingRegistry
from gateway.testing import FramingConformanceMixin, connectFraming

try:
    from gateway.plugins import stx_framing
except ImportError as e:
    raise ImportError(
        "gateway.plugins.stx_framing is not importable: install the plugin "
        "(pip install ./plugins/gateway-framing-stx; scripts/test does), or "
        "run 'python -m pytest' in its directory"
    ) from e

STX, ETX, DLE = b"\x02", b"\x03", b"\x10"
SOURCE = Path(__file__).resolve().parent.parent / "gateway" / "plugins" / "stx_framing.py"


def escaped(message):
    """
    The wire form of one message, written out independently of
    L{stx_framing.frame}.
    """
    message = message.replace(DLE, DLE + DLE)
    message = message.replace(STX, DLE + STX).replace(ETX, DLE + ETX)
    return STX + message + ETX


def byteAtATime(stream, limit, ignore=b""):
    """
    A reference decoder, one byte at a time, straight from the format's
    definition.

    :return: the messages published and the reason the connection was
        closed for (L{None} for a clean end).
    """
    messages, current, inFrame, escape = [], bytearray(), False, False
    for byte in stream:
        if not inFrame:
            if byte == STX[0]:
                inFrame, current = True, bytearray()
            elif byte not in ignore:
                return messages, MALFORMED_FRAME
        elif escape or byte not in (STX[0], ETX[0], DLE[0]):
            if escape and byte not in (STX[0], ETX[0], DLE[0]):
                return messages, MALFORMED_FRAME
            escape = False
            current.append(byte)
            if len(current) > limit:
                return messages, TOO_LARGE
        elif byte == DLE[0]:
            escape = True
        elif byte == ETX[0]:
            messages.append(bytes(current))
            inFrame = False
        else:
            return messages, MALFORMED_FRAME
    return messages, INCOMPLETE if inFrame else None


class STXConformance(FramingConformanceMixin, SynchronousTestCase):
    """
    C{stx} with its defaults: nothing allowed between frames.
    """

    plugin = stx_framing.stx
    between = b""
    malformed = [
        # A byte before the first frame.
        (b"x" + escaped(b"a"), MALFORMED_FRAME),
        # An ETX outside a frame.
        (ETX, MALFORMED_FRAME),
        # A bare STX inside a frame, with and without the frame's end.
        (STX + b"a" + STX + b"b" + ETX, MALFORMED_FRAME),
        (STX + b"abc" + STX, MALFORMED_FRAME),
        # A DLE escaping a byte that is not STX, ETX or DLE.
        (STX + b"a" + DLE + b"xb" + ETX, MALFORMED_FRAME),
        (STX + b"abc" + DLE + b"a", MALFORMED_FRAME),
        # A DLE pair then a bare STX: the pair is one escaped DLE.
        (STX + DLE + DLE + STX + ETX, MALFORMED_FRAME),
    ]

    def encode(self, messages):
        return b"".join(self.between + escaped(m) for m in messages)


class IgnoreConformance(STXConformance):
    """
    C{stx(ignore=\\r\\n\\x16)}: line ends and SYN keep-alives between frames
    are skipped.
    """

    options = {"ignore": "\\r\\n\\x16"}
    between = b"\r\n\x16"


class EscapeHeavyConformance(STXConformance):
    """
    C{stx} with messages made mostly of the bytes it escapes, so escapes
    and runs of DLE fall across every read boundary.
    """

    def messageStrategy(self):
        byte = st.sampled_from([STX, ETX, DLE, b"a"])
        message = st.lists(byte, max_size=40).map(b"".join)
        return st.lists(message, max_size=20)


class STXTests(SynchronousTestCase):
    """
    What the conformance kit does not cover.
    """

    def connect(self, options=None, maxMessageSize=16):
        return connectFraming(stx_framing.stx, options=options, maxMessageSize=maxMessageSize)

    def test_found(self):
        """
        Installed, the plugin is found in the C{gateway.plugins} namespace
        under the name C{stx}, with no plugin error.
        """
        registry = FramingRegistry()
        self.assertIs(registry.get("stx"), stx_framing.stx)
        self.assertEqual(registry.origins["stx"], "gateway.plugins.stx_framing.stx")
        self.assertEqual([e for e in registry.errors if "stx" in e], [])

    @settings(max_examples=300, deadline=None)
    @given(
        pieces=st.lists(
            st.sampled_from([STX, ETX, DLE, b"a", b"\n", b"\x02ab\x03", b"abcde"]),
            max_size=40,
        ),
        cuts=st.lists(st.integers(0, 200), max_size=8),
        ignore=st.sampled_from([b"", b"\n"]),
    )
    def test_sameAsByteAtATime(self, pieces, cuts, ignore):
        """
        On any input, valid or not, cut into reads anywhere, the framing
        publishes what a byte-at-a-time decoder does and closes the
        connection for the same reason.
        """
        stream = b"".join(pieces)
        protocol, transport, sink = self.connect(options={"ignore": ignore}, maxMessageSize=8)
        start = 0
        for cut in sorted(cut % (len(stream) + 1) for cut in cuts) + [len(stream)]:
            protocol.dataReceived(stream[start:cut])
            start = max(start, cut)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            (sink.streams[0].messages, protocol.frameFailed),
            byteAtATime(stream, 8, ignore),
        )

    def test_testingThisSource(self):
        """
        The module under test is this checkout's: an installed copy older
        than the source would be tested instead of it (reinstall the plugin,
        or run C{python -m pytest} from the plugin's directory).
        """
        imported = Path(stx_framing.__file__).read_bytes()
        self.assertTrue(
            imported == SOURCE.read_bytes(),
            f"{stx_framing.__file__} differs from {SOURCE}: reinstall the plugin",
        )

    def test_frame(self):
        """
        L{stx_framing.frame} escapes DLE, STX and ETX with DLE and puts the
        result between STX and ETX.
        """
        self.assertEqual(
            stx_framing.frame(b"a\x02b\x03c\x10d"),
            b"\x02a\x10\x02b\x10\x03c\x10\x10d\x03",
        )
        for message in [b"", b"\x10", b"\x10\x10\x02", b"plain"]:
            self.assertEqual(stx_framing.frame(message), escaped(message))

    def test_acknowledgements(self):
        """
        The plugin declares ack support, so a listener takes C{ack=on}; the
        gateway frames its acknowledgements with C{encodeFrame}: C{ACK 12}
        is C{STX ACK 12 ETX} on the wire, and a client's handshake is
        framed like any message.
        """
        resolved = resolveOptions(stx_framing.stx, {"ack": "on"}, 100)
        self.assertTrue(resolved["ack"])
        protocol = stx_framing.STXProtocol()
        self.assertTrue(protocol.supportsAcks)
        self.assertEqual(protocol.encodeFrame(b"ACK 12"), b"\x02ACK 12\x03")
        self.assertEqual(protocol.encodeFrame(b"NACK 3 too-large"), b"\x02NACK 3 too-large\x03")

    def test_escapes(self):
        """
        Escaped STX, ETX and DLE come out as literal bytes, including runs
        of DLE pairs before the escaped byte and before the frame's end.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(
            b"\x02\x10\x02\x10\x03\x10\x10\x03"
            b"\x02\x10\x10\x10\x10\x10\x03\x03"
            b"\x02a\x10\x10\x10\x10\x03"
        )
        self.assertEqual(
            sink.streams[0].messages,
            [b"\x02\x03\x10", b"\x10\x10\x03", b"a\x10\x10"],
        )
        self.assertFalse(transport.disconnecting)

    def test_escapeSplitAcrossReads(self):
        """
        A DLE at the end of one read escapes the first byte of the next.
        """
        protocol, transport, sink = self.connect()
        for chunk in [b"\x02a\x10", b"\x03b\x10", b"\x10\x10", b"\x03\x03"]:
            protocol.dataReceived(chunk)
        self.assertEqual(sink.streams[0].messages, [b"a\x03b\x10\x03"])
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_garbageAfterFrame(self):
        """
        A byte after a frame that does not start another one closes the
        connection as C{malformed-frame}, logged with that byte; the
        message before it is published.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x02ok\x03\n\x02never\x03")
        self.assertEqual(sink.streams[0].messages, [b"ok"])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, MALFORMED_FRAME)
        [event] = [e for e in events if e.get("reason") == MALFORMED_FRAME]
        self.assertEqual(event["byte"], 0x0A)

    def test_malformedBeforeFrameEnds(self):
        """
        A bad escape closes the connection as soon as it arrives, without
        waiting for the frame's end.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x02abc")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\x10")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"z")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, MALFORMED_FRAME)
        self.assertEqual(protocol.bufferedByteCount(), 0)

    def test_limitCountsUnescapedBytes(self):
        """
        C{max-size} counts the message's bytes, not the escapes: a message
        of 16 escaped bytes (34 on the wire) passes the 16-byte limit, one
        of 17 does not.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(escaped(b"\x10" * 16))
        self.assertEqual(sink.streams[0].messages, [b"\x10" * 16])
        protocol.dataReceived(escaped(b"\x02" * 17))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(len(sink.streams[0].messages), 1)

    def test_tooLargeBeforeFrameEnds(self):
        """
        A frame is C{too-large} as soon as more than C{max-size} of its
        bytes have arrived, without its ETX; escapes split across reads are
        counted once.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x02" + b"\x10\x03" * 16)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\x10")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\x02")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(protocol.factory.config.stats.frameErrors[TOO_LARGE], 1)

    def test_ignoreSkipsOnlyThoseBytes(self):
        """
        With C{ignore}, those bytes between frames are skipped; any other
        byte there is still C{malformed-frame}, and inside a frame the
        ignored bytes are part of the message.
        """
        protocol, transport, sink = self.connect(options={"ignore": "\\r\\n"})
        protocol.dataReceived(b"\r\n\x02a\r\nb\x03\n\n\x02c\x03\r")
        self.assertEqual(sink.streams[0].messages, [b"a\r\nb", b"c"])
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\n \x02d\x03")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, MALFORMED_FRAME)
        self.assertEqual(sink.streams[0].messages, [b"a\r\nb", b"c"])

    def test_ignoreRefusesFramingBytes(self):
        """
        C{ignore} cannot name STX, ETX or DLE: that is a usage error naming
        the framing and the option.  Empty is the default.
        """
        for value in ["\\x02", "ab\\x03", "\\x10"]:
            with self.assertRaises(OptionError) as caught:
                resolveOptions(stx_framing.stx, {"ignore": value}, 100)
            self.assertIn("'stx' option ignore=", str(caught.exception))
        resolved = resolveOptions(stx_framing.stx, {"ignore": ""}, 100)
        self.assertEqual(resolved["ignore"], b"")

    def test_pausedFramesAcrossReads(self):
        """
        While paused, frames arriving in pieces are kept, not delivered;
        resuming delivers them in order and keeps the incomplete one.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(b"\x02one\x03\x02tw")
        protocol.pauseProducing()
        for chunk in [b"o\x03\x02thr", b"ee\x10", b"\x02\x03\x02fo"]:
            protocol.dataReceived(chunk)
        self.assertEqual(sink.streams[0].messages, [b"one"])
        protocol.resumeProducing()
        self.assertEqual(sink.streams[0].messages, [b"one", b"two", b"three\x02"])
        protocol.dataReceived(b"ur\x03")
        self.assertEqual(sink.streams[0].messages[-1], b"four")
