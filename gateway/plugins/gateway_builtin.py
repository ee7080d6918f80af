# -*- test-case-name: tests.test_registry -*-
"""
The framings shipped with the gateway, as plugins.
"""

from gateway.registry import FramingPlugin

lines = FramingPlugin(
    "lines",
    "newline-terminated messages (the newline is not published)",
    "gateway.framing.lines.LinesProtocol",
)

lengthPrefixed = FramingPlugin(
    "length-prefixed",
    "each message after its length, a 4-byte big-endian unsigned integer",
    "gateway.framing.lengthprefix.LengthPrefixedProtocol",
)
