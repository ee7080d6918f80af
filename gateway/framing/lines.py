# -*- test-case-name: tests.framing.test_lines -*-
"""
C{lines}: each message ends with a delimiter (C{\\n} by default), which is
not published.
"""

from gateway.framing.base import TOO_LARGE, FramingError, FramingProtocol

__all__ = ["LinesProtocol"]

_CR = b"\r"
#: No whole line yet.
_NOTHING = ((), 0)


class LinesProtocol(FramingProtocol):
    """
    Lines cut with one C{bytes.split} per read.

    Twisted's C{LineReceiver} splits off one line at a time and copies the
    rest of the buffer each time, which is quadratic in the lines per read
    (see C{bench/framing.py}); this splits a whole read at once, with one
    C-level length check per read (the per-line check only runs when some
    line is known to be too long).

    Options: C{delimiter} (bytes), C{strip-cr} (drop one C{\\r} before the
    delimiter, which is then not counted against the limit).

    A line over C{max-size} is C{too-large}, decided as soon as that many
    bytes arrived without a delimiter.
    """

    delimiter = b"\n"
    stripCR = False
    _slack = 0

    @classmethod
    def listenerAttributes(cls, options):
        """
        The delimiter, C{strip-cr}, and the longest incomplete line that can
        still become one within the limit (see L{parseFrames}).
        """
        delimiter = options.get("delimiter", cls.delimiter)
        stripCR = options.get("strip-cr", cls.stripCR)
        return {
            "delimiter": delimiter,
            "stripCR": stripCR,
            # The rest may end with the start of a multi-byte delimiter (and
            # a \r), so it is too long only past the limit plus those bytes.
            "_slack": len(delimiter) - 1 + stripCR,
        }

    def parseFrames(self, buffer, limit):
        """
        Every whole line in C{buffer}, without its delimiter.  A buffer no
        longer than the limit cannot hold a line over it, so the lengths are
        only looked at in longer ones.
        """
        delimiter = self.delimiter
        lines = buffer.split(delimiter)
        rest = lines.pop()
        if not lines:
            if len(rest) > limit + self._slack:
                raise FramingError(TOO_LARGE, size=len(rest))
            return _NOTHING
        if self.stripCR:
            lines = [line[:-1] if line[-1:] == _CR else line for line in lines]
        if len(buffer) > limit:
            if max(map(len, lines)) > limit:
                index = next(i for i, line in enumerate(lines) if len(line) > limit)
                raw = buffer.split(delimiter, index)[:index]
                consumed = sum(map(len, raw)) + index * len(delimiter)
                raise FramingError(TOO_LARGE, lines[:index], consumed, size=len(lines[index]))
            if len(rest) > limit + self._slack:
                raise FramingError(TOO_LARGE, lines, len(buffer) - len(rest), size=len(rest))
        return lines, len(buffer) - len(rest)

    supportsAcks = True

    def encodeFrame(self, payload):
        """
        C{payload} and the delimiter.
        """
        return payload + self.delimiter
