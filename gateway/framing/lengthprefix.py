# -*- test-case-name: tests.framing.test_lengthprefix -*-
"""
C{length-prefixed}: each message follows its length, an unsigned integer of
1, 2, 4 or 8 bytes, big- or little-endian, that may count its own bytes.
"""

from struct import Struct

from gateway.framing.base import MALFORMED_LENGTH, TOO_LARGE, FramingError, FramingProtocol

__all__ = ["LengthPrefixedProtocol", "PREFIX_FORMATS"]

#: Prefix size to the struct code of an unsigned integer that size.
PREFIX_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

#: No whole message yet.
_NOTHING = ((), 0)


class LengthPrefixedProtocol(FramingProtocol):
    """
    Length-prefixed messages, the prefix read with C{struct.unpack_from} at
    an offset into the buffer and each message cut with one slice.

    Options: C{prefix-size} (1, 2, 4, 8), C{byte-order} (C{big},
    C{little}), C{includes-prefix} (the length counts the prefix's bytes).

    A length over C{max-size} is C{too-large} and a self-counting length
    smaller than the prefix is C{malformed-length}, both decided from the
    prefix alone.
    """

    prefixLength = 4
    includesPrefix = False
    structFormat = "!I"
    _prefix = Struct("!I")
    _unpackFrom = _prefix.unpack_from
    _adjust = 0

    @classmethod
    def listenerAttributes(cls, options):
        """
        The prefix's size, byte order and whether it counts itself.
        """
        size = options.get("prefix-size", 4)
        order = "<" if options.get("byte-order", "big") == "little" else "!"
        structFormat = order + PREFIX_FORMATS[size]
        includesPrefix = options.get("includes-prefix", False)
        prefix = Struct(structFormat)
        return {
            "prefixLength": size,
            "structFormat": structFormat,
            "_prefix": prefix,
            "_unpackFrom": prefix.unpack_from,
            "includesPrefix": includesPrefix,
            "_adjust": size if includesPrefix else 0,
        }

    def parseFrames(self, buffer, limit):
        """
        Every whole message in C{buffer}.
        """
        size = len(buffer)
        prefixLength = self.prefixLength
        if size < prefixLength:
            return _NOTHING
        unpackFrom = self._unpackFrom
        adjust = self._adjust
        frames = []
        offset = 0
        while size - offset >= prefixLength:
            (length,) = unpackFrom(buffer, offset)
            length -= adjust
            if length < 0:
                raise FramingError(MALFORMED_LENGTH, frames, offset, declared=length + adjust)
            if length > limit:
                raise FramingError(TOO_LARGE, frames, offset, size=length)
            start = offset + prefixLength
            end = start + length
            if end > size:
                break
            frames.append(buffer[start:end])
            offset = end
        return frames, offset

    supportsAcks = True

    def encodeFrame(self, payload):
        """
        C{payload} after its length prefix.
        """
        adjust = self.prefixLength if self.includesPrefix else 0
        return self._prefix.pack(len(payload) + adjust) + payload
