# -*- test-case-name: tests.framing.test_framing_netstring_syslog -*-
"""
C{netstring}: each message is a djb netstring, C{12:hello world!,}: its
length in ASCII decimal, a colon, the message, a comma.
"""

from twisted.protocols.basic import NetstringReceiver

from gateway.framing.base import (
    MALFORMED_FRAME,
    MALFORMED_LENGTH,
    TOO_LARGE,
    FramedProtocolMixin,
    PauseableMixin,
)

__all__ = ["NetstringProtocol"]

_COLON = b":"
_COMMA = ord(",")
_ZERO = ord("0")


class NetstringProtocol(PauseableMixin, FramedProtocolMixin, NetstringReceiver):
    """
    A L{NetstringReceiver} that honours pause and applies the gateway's
    bad-input policy.

    L{NetstringReceiver} is kept as the base for its attributes and
    C{sendString}; its C{dataReceived} is replaced because it neither stops
    delivering while paused nor says why a netstring is bad.  This one is on
    the same single-buffer, offset-based pattern as the other framings: per
    message one C{bytes.find} for the colon (searched only as far as the
    limit's digits reach), one C{int} of the digits and one slice.

    Bad input (see L{gateway.framing.base}):

      - C{malformed-length}: an empty length, a byte that is not an ASCII
        digit before the colon, or a leading zero (only C{0:} may start
        with one);
      - C{too-large}: a length over C{MAX_LENGTH}, decided from the digits
        as soon as they exceed it (more digits than the limit has, or a
        value over it), without waiting for the colon;
      - C{malformed-frame}: the byte after the message is not a comma.

    C{0:,} is an empty message.  No options besides C{max-size}.

    :ivar paused: whether delivery is paused (see L{pauseProducing}).
    """

    paused = False
    _remainingData = b""

    def stringReceived(self, string):
        """
        Publish one message (used by callers of the L{NetstringReceiver} API).
        """
        self._send(string)

    def dataReceived(self, data):
        """
        Publish every complete netstring in the buffer unless paused; close
        the connection on a malformed or over-limit one.
        """
        if self.frameFailed:
            return
        buffer = self._remainingData + data if self._remainingData else data
        # Emptied while delivering: resumeProducing from inside send (which
        # calls dataReceived(b"")) then finds nothing, and this loop goes on.
        self._remainingData = b""
        size = len(buffer)
        offset = 0
        limit = self.MAX_LENGTH
        maxDigits = len(str(limit))
        send = self._send
        while offset < size and not self.paused:
            colon = buffer.find(_COLON, offset, offset + maxDigits + 1)
            if colon < 0:
                # No colon yet: judge the digits seen so far.
                error = _judgeLengthStart(
                    buffer[offset : offset + maxDigits + 1], limit, maxDigits
                )
                if error is not None:
                    self._fail(*error, size - offset)
                    return
                break
            digits = buffer[offset:colon]
            if not digits.isdigit() or (buffer[offset] == _ZERO and colon > offset + 1):
                self._fail(MALFORMED_LENGTH, None, size - offset)
                return
            length = int(digits)
            if length > limit:
                self._fail(TOO_LARGE, length, size - offset)
                return
            start = colon + 1
            end = start + length
            if end >= size:
                break
            if buffer[end] != _COMMA:
                self._fail(MALFORMED_FRAME, length, size - offset)
                return
            offset = end + 1
            send(buffer[start:end])
        self._remainingData = buffer[offset:] if offset else buffer

    def _fail(self, reason, size, buffered):
        """
        Drop the buffer and apply the bad-input policy.

        :param reason: the reason.
        :param size: the message's declared size, or L{None}.
        :param buffered: the bytes dropped, from the bad frame on.
        """
        self._remainingData = b""
        sizes = {"buffered": buffered}
        if size is not None:
            sizes["size"] = size
        self.frameError(reason, **sizes)

    def bufferedByteCount(self):
        """
        :return: bytes of an incomplete length or netstring.
        """
        return len(self._remainingData)


def _judgeLengthStart(head, limit, maxDigits):
    """
    Judge the start of a length whose colon has not arrived yet.

    :param head: the bytes from the start of the length, at most
        C{maxDigits + 1} of them, at least one.
    :param limit: the largest length allowed.
    :param maxDigits: the digits in C{limit}.
    :return: L{None} while it may still become a valid length, else
        C{(reason, size)} with the size declared so far (or L{None}).
    """
    if not head.isdigit() or (head[0] == _ZERO and len(head) > 1):
        return (MALFORMED_LENGTH, None)
    if len(head) > maxDigits or int(head) > limit:
        return (TOO_LARGE, int(head))
    return None
