# -*- test-case-name: tests.framing.test_framing_netstring_syslog -*-
"""
C{octet-counting}: syslog over TCP as RFC 6587 section 3.4.1 frames it,
C{MSG-LEN SP SYSLOG-MSG}, where C{MSG-LEN} is the message's length in ASCII
decimal without leading zeros (C{NONZERO-DIGIT *DIGIT}).

With the option C{allow-newline}, the same connection may also send
non-transparent frames (section 3.4.2: the message followed by C{LF}).  As
rsyslog does, the first byte of each frame tells them apart: a digit starts
an octet-counted frame, anything else a newline-terminated one.
"""

from twisted.internet.protocol import Protocol

from gateway.framing.base import (
    MALFORMED_LENGTH,
    TOO_LARGE,
    FramedProtocolMixin,
    PauseableMixin,
)

__all__ = ["OctetCountingProtocol"]

_SPACE = b" "
_NEWLINE = b"\n"
_ZERO = ord("0")
_NINE = ord("9")


class OctetCountingProtocol(PauseableMixin, FramedProtocolMixin, Protocol):
    """
    Syslog octet-counted frames, optionally mixed with newline-terminated
    ones.

    No receiver in C{twisted.protocols.basic} fits (a decimal length ended by
    a space, and per frame a choice of two framings), so this is a plain
    L{Protocol} with the single-buffer, offset-based C{dataReceived} of the
    other framings (per message one C{bytes.find} for the space, searched
    only as far as the limit's digits reach, one C{int} and one slice) and
    L{LineReceiver}'s pause semantics: while C{paused} nothing is delivered,
    and C{resumeProducing} delivers what was buffered.

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

    :ivar paused: whether delivery is paused (see L{pauseProducing}).
    :ivar allowNewline: whether newline-terminated frames are accepted.
    """

    paused = False
    allowNewline = False
    _buffer = b""

    def connectionMade(self):
        """
        Take C{allow-newline} from the listener's options.
        """
        self.allowNewline = self.options.get("allow-newline", False)
        FramedProtocolMixin.connectionMade(self)

    def dataReceived(self, data):
        """
        Publish every complete frame in the buffer unless paused; close the
        connection on a malformed or over-limit one.
        """
        if self.frameFailed:
            return
        buffer = self._buffer + data if self._buffer else data
        # Emptied while delivering: resumeProducing from inside send (which
        # calls dataReceived(b"")) then finds nothing, and this loop goes on.
        self._buffer = b""
        size = len(buffer)
        offset = 0
        limit = self.MAX_LENGTH
        maxDigits = len(str(limit))
        allowNewline = self.allowNewline
        send = self._send
        while offset < size and not self.paused:
            if allowNewline and not _ZERO <= buffer[offset] <= _NINE:
                end = buffer.find(_NEWLINE, offset, offset + limit + 1)
                if end < 0:
                    if size - offset > limit:
                        self._fail(TOO_LARGE, size - offset, size - offset)
                        return
                    break
                if end > offset:
                    send(buffer[offset:end])
                offset = end + 1
                continue
            space = buffer.find(_SPACE, offset, offset + maxDigits + 1)
            if space < 0:
                # No space yet: judge the digits seen so far.
                head = buffer[offset : offset + maxDigits + 1]
                if not head.isdigit() or head[0] == _ZERO:
                    self._fail(MALFORMED_LENGTH, None, size - offset)
                    return
                if len(head) > maxDigits or int(head) > limit:
                    self._fail(TOO_LARGE, int(head), size - offset)
                    return
                break
            digits = buffer[offset:space]
            if not digits.isdigit() or buffer[offset] == _ZERO:
                self._fail(MALFORMED_LENGTH, None, size - offset)
                return
            length = int(digits)
            if length > limit:
                self._fail(TOO_LARGE, length, size - offset)
                return
            start = space + 1
            end = start + length
            if end > size:
                break
            offset = end
            send(buffer[start:end])
        self._buffer = buffer[offset:] if offset else buffer

    def _fail(self, reason, size, buffered):
        """
        Drop the buffer and apply the bad-input policy.

        :param reason: the reason.
        :param size: the message's declared or seen size, or L{None}.
        :param buffered: the bytes dropped, from the bad frame on.
        """
        self._buffer = b""
        sizes = {"buffered": buffered}
        if size is not None:
            sizes["size"] = size
        self.frameError(reason, **sizes)

    def bufferedByteCount(self):
        """
        :return: bytes of an incomplete frame.
        """
        return len(self._buffer)
