# -*- test-case-name: tests.test_registry -*-
"""
The framings shipped with the gateway, as plugins.  Protocol classes are
named by dotted path and imported only when a listener uses them.
"""

from gateway.framing.options import FramingOption, boolean, byteString, choice
from gateway.registry import FramingPlugin

lines = FramingPlugin(
    "lines",
    "messages ending with a delimiter (default \\n), which is not published",
    "gateway.framing.lines.LinesProtocol",
    options=[
        FramingOption("delimiter", byteString, b"\n",
                      "the bytes ending each message, with escapes (\\r\\n, \\0, \\x1e)",
                      "bytes"),
        FramingOption("strip-cr", boolean, False,
                      "also drop one \\r before the delimiter", "bool"),
    ],
)

lengthPrefixed = FramingPlugin(
    "length-prefixed",
    "each message after its length as an unsigned integer (default 4 bytes, big-endian)",
    "gateway.framing.lengthprefix.LengthPrefixedProtocol",
    options=[
        FramingOption("prefix-size", choice(1, 2, 4, 8), 4,
                      "bytes in the length prefix", "1|2|4|8"),
        FramingOption("byte-order", choice("big", "little"), "big",
                      "byte order of the length prefix", "big|little"),
        FramingOption("includes-prefix", boolean, False,
                      "the length counts the prefix's own bytes", "bool"),
    ],
)
