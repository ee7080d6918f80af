# -*- test-case-name: tests.framing.test_octetcounting -*-
"""
C{octet-counting}: syslog over TCP as RFC 6587 section 3.4.1 frames it,
C{MSG-LEN SP SYSLOG-MSG}, where C{MSG-LEN} is the message's length in ASCII
decimal without leading zeros (C{NONZERO-DIGIT *DIGIT}).

With the option C{allow-newline}, the same connection may also send
non-transparent frames (section 3.4.2: the message followed by C{LF}).  As
rsyslog does, the first byte of each frame tells them apart: a digit starts
an octet-counted frame, anything else a newline-terminated one.
"""

from gateway.framing.base import MALFORMED_LENGTH, TOO_LARGE, FramingProtocol
from gateway.framing.netstring import _fail

__all__ = ["OctetCountingProtocol"]

_SPACE = b" "
_NEWLINE = b"\n"
_ZERO = ord("0")
_NINE = ord("9")


class OctetCountingProtocol(FramingProtocol):
    """
    Syslog octet-counted frames, optionally mixed with newline-terminated
    ones: per message one C{bytes.find} for the space (searched only as far
    as the limit's digits reach), one C{int} and one slice.

    Options: C{allow-newline} (also accept frames ended by C{LF}).

    Bad input (see L{gateway.framing.base}):

      - C{malformed-length}: a C{MSG-LEN} with a byte that is not an ASCII
        digit, a leading zero (C{0} included: a message is never empty), or
        no space after it; without C{allow-newline}, a frame that does not
        start with a digit;
      - C{too-large}: a C{MSG-LEN} over C{MAX_LENGTH}, decided from the
        digits as soon as they exceed it, without waiting for the space; a
        newline-terminated message longer than C{MAX_LENGTH}, decided as
        soon as that many bytes arrived without an C{LF}.

    An empty newline-terminated frame (a bare C{LF}, e.g. after an
    octet-counted frame from a sender that ends each frame with one) is
    skipped: nothing is published, as rsyslog discards empty lines.

    :ivar allowNewline: whether newline-terminated frames are accepted.
    """

    allowNewline = False

    @classmethod
    def listenerAttributes(cls, options):
        """
        C{allow-newline}.
        """
        return {"allowNewline": options.get("allow-newline", False)}

    def parseFrames(self, buffer, limit):
        """
        Every whole frame in C{buffer}.
        """
        frames = []
        size = len(buffer)
        offset = 0
        maxDigits = len(str(limit))
        allowNewline = self.allowNewline
        while offset < size:
            if allowNewline and not _ZERO <= buffer[offset] <= _NINE:
                end = buffer.find(_NEWLINE, offset, offset + limit + 1)
                if end < 0:
                    if size - offset > limit:
                        raise _fail(TOO_LARGE, frames, offset, size - offset, size - offset)
                    break
                if end > offset:
                    frames.append(buffer[offset:end])
                offset = end + 1
                continue
            space = buffer.find(_SPACE, offset, offset + maxDigits + 1)
            if space < 0:
                # No space yet: judge the digits seen so far.
                head = buffer[offset : offset + maxDigits + 1]
                if not head.isdigit() or head[0] == _ZERO:
                    raise _fail(MALFORMED_LENGTH, frames, offset, None, size - offset)
                if len(head) > maxDigits or int(head) > limit:
                    raise _fail(TOO_LARGE, frames, offset, int(head), size - offset)
                break
            digits = buffer[offset:space]
            if not digits.isdigit() or buffer[offset] == _ZERO:
                raise _fail(MALFORMED_LENGTH, frames, offset, None, size - offset)
            length = int(digits)
            if length > limit:
                raise _fail(TOO_LARGE, frames, offset, length, size - offset)
            start = space + 1
            end = start + length
            if end > size:
                break
            frames.append(buffer[start:end])
            offset = end
        return frames, offset

    supportsAcks = True

    def encodeFrame(self, payload):
        """
        C{payload} as an octet-counted frame (which an empty payload cannot
        be: RFC 6587 lengths start with a non-zero digit).
        """
        if not payload:
            raise ValueError("an octet-counted frame cannot be empty")
        return b"%d %s" % (len(payload), payload)
