# -*- test-case-name: tests.framing.test_framing -*-
"""
Framings: protocols that cut a client's byte stream into messages.

Plugin authors build on L{FramedProtocolMixin} and report bad input with one
of the reasons below (see C{docs/plugins.md}).
"""

from gateway.framing.base import (
    INCOMPLETE,
    MALFORMED_FRAME,
    MALFORMED_LENGTH,
    TOO_LARGE,
    FramedProtocolMixin,
    PauseableMixin,
)
from gateway.framing.lengthprefix import LengthPrefixedProtocol
from gateway.framing.lines import LinesProtocol

__all__ = [
    "FramedProtocolMixin",
    "PauseableMixin",
    "INCOMPLETE",
    "MALFORMED_FRAME",
    "MALFORMED_LENGTH",
    "TOO_LARGE",
    "LengthPrefixedProtocol",
    "LinesProtocol",
]
