# -*- test-case-name: tests.framing.test_exports -*-
"""
Framings: protocols that cut a client's byte stream into messages.

This package's names are the plugin author's whole API (see
C{docs/plugins.md}): subclass L{FramingProtocol}, write its C{parseFrames},
declare options with L{FramingOption} and publish it with L{FramingPlugin}.
"""

from gateway.framing.base import (
    INCOMPLETE,
    MALFORMED_FRAME,
    MALFORMED_LENGTH,
    TOO_LARGE,
    FramingError,
    FramingProtocol,
)
from gateway.framing.lengthprefix import LengthPrefixedProtocol
from gateway.framing.lines import LinesProtocol
from gateway.framing.options import (
    MAX_SIZE,
    FramingOption,
    OptionError,
    boolean,
    byteString,
    choice,
    integer,
    unescape,
)
from gateway.framing.plugin import FramingFactory, FramingPlugin

__all__ = [
    "INCOMPLETE",
    "MALFORMED_FRAME",
    "MALFORMED_LENGTH",
    "MAX_SIZE",
    "TOO_LARGE",
    "FramingError",
    "FramingFactory",
    "FramingOption",
    "FramingPlugin",
    "FramingProtocol",
    "LengthPrefixedProtocol",
    "LinesProtocol",
    "OptionError",
    "boolean",
    "byteString",
    "choice",
    "integer",
    "unescape",
]
