# -*- test-case-name: tests.framing.test_lengthprefix -*-
"""
The C{length-prefixed} framing against the conformance kit, in its prefix
sizes, byte orders and self-counting variant.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing import MALFORMED_LENGTH
from gateway.registry import loadFramings
from gateway.testing import FramingConformanceMixin

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
