# -*- test-case-name: tests.test_registry -*-
"""
The framings shipped with the gateway, as plugins.  Protocol classes are
named by dotted path and imported only when a listener uses them.
"""

from gateway.framing.options import FramingOption, boolean, byteString, choice
from gateway.framing.plugin import FramingPlugin

lines = FramingPlugin(
    "lines",
    "messages ending with a delimiter (default \\n), which is not published",
    "gateway.framing.lines.LinesProtocol",
    options=[
        FramingOption(
            "delimiter",
            byteString,
            b"\n",
            "the bytes ending each message, with escapes (\\r\\n, \\0, \\x1e)",
            "bytes",
        ),
        FramingOption(
            "strip-cr", boolean, False, "also drop one \\r before the delimiter", "bool"
        ),
    ],
)

lengthPrefixed = FramingPlugin(
    "length-prefixed",
    "each message after its length as an unsigned integer (default 4 bytes, big-endian)",
    "gateway.framing.lengthprefix.LengthPrefixedProtocol",
    options=[
        FramingOption(
            "prefix-size", choice(1, 2, 4, 8), 4, "bytes in the length prefix", "1|2|4|8"
        ),
        FramingOption(
            "byte-order",
            choice("big", "little"),
            "big",
            "byte order of the length prefix",
            "big|little",
        ),
        FramingOption(
            "includes-prefix", boolean, False, "the length counts the prefix's own bytes", "bool"
        ),
    ],
)

netstring = FramingPlugin(
    "netstring",
    "each message as a djb netstring: its length in ASCII decimal, ':', the message, ','",
    "gateway.framing.netstring.NetstringProtocol",
)

octetCounting = FramingPlugin(
    "octet-counting",
    "syslog frames as RFC 6587 3.4.1 counts them: MSG-LEN in ASCII decimal, a space, the message",
    "gateway.framing.octetcounting.OctetCountingProtocol",
    options=[
        FramingOption(
            "allow-newline",
            boolean,
            False,
            "also accept frames ended by \\n (RFC 6587 3.4.2) on the same "
            "connection, told apart by their first byte (a digit starts an "
            "octet-counted frame)",
            "bool",
        ),
    ],
)

# Appended with the varint and chunks framings (kept apart from the imports
# above so that framings added concurrently only ever append to this file).
from gateway.framing.options import integer  # noqa: E402

varint = FramingPlugin(
    "varint",
    "each message after its length as a base-128 varint, as protobuf's writeDelimitedTo",
    "gateway.framing.varint.VarintProtocol",
)

chunks = FramingPlugin(
    "chunks",
    "no framing: the byte stream in chunks of at most max-size bytes, cut when full, "
    "after idle-ms without data, and at close",
    "gateway.framing.chunks.ChunksProtocol",
    options=[
        FramingOption(
            "idle-ms",
            integer(minimum=0),
            200,
            "publish the bytes buffered after this many milliseconds without "
            "data (0: only full chunks, and the rest at close)",
            "milliseconds",
        ),
    ],
)
