# -*- test-case-name: tests.framing.test_netstring -*-
"""
C{netstring}: each message is a djb netstring, C{12:hello world!,}: its
length in ASCII decimal, a colon, the message, a comma.
"""

from gateway.framing.base import (
    MALFORMED_FRAME,
    MALFORMED_LENGTH,
    TOO_LARGE,
    FramingError,
    FramingProtocol,
)

__all__ = ["NetstringProtocol"]

_COLON = b":"
_COMMA = ord(",")
_ZERO = ord("0")


def _fail(reason, frames, offset, size, buffered):
    """
    :return: the L{FramingError} for a bad netstring (or syslog frame) at
        C{offset}, with C{buffered} bytes from it on and its declared size
        (or L{None}).
    """
    sizes = {"buffered": buffered}
    if size is not None:
        sizes["size"] = size
    return FramingError(reason, frames, offset, **sizes)


class NetstringProtocol(FramingProtocol):
    """
    djb netstrings: per message one C{bytes.find} for the colon (searched
    only as far as the limit's digits reach), one C{int} of the digits and
    one slice.

    Bad input (see L{gateway.framing.base}):

      - C{malformed-length}: an empty length, a byte that is not an ASCII
        digit before the colon, or a leading zero (only C{0:} may start
        with one);
      - C{too-large}: a length over C{MAX_LENGTH}, decided from the digits
        as soon as they exceed it (more digits than the limit has, or a
        value over it), without waiting for the colon;
      - C{malformed-frame}: the byte after the message is not a comma.

    C{0:,} is an empty message.  No options besides C{max-size}.
    """

    def parseFrames(self, buffer, limit):
        """
        Every whole netstring in C{buffer}.
        """
        frames = []
        size = len(buffer)
        offset = 0
        maxDigits = len(str(limit))
        while offset < size:
            colon = buffer.find(_COLON, offset, offset + maxDigits + 1)
            if colon < 0:
                # No colon yet: judge the digits seen so far.
                error = _judgeLengthStart(
                    buffer[offset : offset + maxDigits + 1], limit, maxDigits
                )
                if error is not None:
                    reason, declared = error
                    raise _fail(reason, frames, offset, declared, size - offset)
                break
            digits = buffer[offset:colon]
            if not digits.isdigit() or (buffer[offset] == _ZERO and colon > offset + 1):
                raise _fail(MALFORMED_LENGTH, frames, offset, None, size - offset)
            length = int(digits)
            if length > limit:
                raise _fail(TOO_LARGE, frames, offset, length, size - offset)
            start = colon + 1
            end = start + length
            if end >= size:
                break
            if buffer[end] != _COMMA:
                raise _fail(MALFORMED_FRAME, frames, offset, length, size - offset)
            frames.append(buffer[start:end])
            offset = end + 1
        return frames, offset

    supportsAcks = True

    def encodeFrame(self, payload):
        """
        C{payload} as a netstring.
        """
        return b"%d:%s," % (len(payload), payload)

    def sendString(self, string):
        """
        Send C{string} to the client as a netstring (as Twisted's
        C{NetstringReceiver.sendString} does).
        """
        self.transport.write(self.encodeFrame(string))


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
