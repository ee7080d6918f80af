# -*- test-case-name: tests.test_framing -*-
"""
Built-in framings: protocols that cut a client's byte stream into messages.
"""

from gateway.framing.lengthprefix import LengthPrefixedProtocol
from gateway.framing.lines import LinesProtocol

__all__ = ["LengthPrefixedProtocol", "LinesProtocol"]
