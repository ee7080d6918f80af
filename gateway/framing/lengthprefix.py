# -*- test-case-name: tests.framing.test_framing -*-
"""
C{length-prefixed}: each message follows its length, an unsigned integer of
1, 2, 4 or 8 bytes, big- or little-endian, that may count its own bytes.
"""

from struct import Struct

from twisted.protocols.basic import IntNStringReceiver

from gateway.framing.base import MALFORMED_LENGTH, FramedProtocolMixin

__all__ = ["LengthPrefixedProtocol", "PREFIX_FORMATS"]

#: Prefix size to the struct code of an unsigned integer that size.
PREFIX_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class LengthPrefixedProtocol(FramedProtocolMixin, IntNStringReceiver):
    """
    An L{IntNStringReceiver} whose prefix is set per listener.

    Options: C{prefix-size} (1, 2, 4, 8), C{byte-order} (C{big},
    C{little}), C{includes-prefix} (the length counts the prefix's bytes).

    It has its own C{dataReceived}, on the same single-buffer, offset-based
    pattern as Twisted's, because Twisted's cannot subtract a self-counting
    prefix; it also reads the prefix with C{unpack_from} instead of slicing.
    """

    prefixLength = 4
    includesPrefix = False
    _prefix = Struct("!I")

    def connectionMade(self):
        """
        Set the prefix from the listener's options.
        """
        options = self.options
        self.prefixLength = options.get("prefix-size", 4)
        order = "<" if options.get("byte-order", "big") == "little" else "!"
        self.structFormat = order + PREFIX_FORMATS[self.prefixLength]
        self._prefix = Struct(self.structFormat)
        self.includesPrefix = options.get("includes-prefix", False)
        FramedProtocolMixin.connectionMade(self)

    def stringReceived(self, string):
        """
        Publish one message.
        """
        self._send(string)

    _busyReceiving = False

    def dataReceived(self, data):
        """
        Publish every complete message in the buffer unless paused; close the
        connection on a length over the limit or below the prefix's own size.
        """
        if self.frameFailed:
            return
        if self._busyReceiving:
            # Re-entered from a delivery (resumeProducing): the loop below
            # carries on; keep what arrived for after it.
            self._unprocessed += data
            return
        buffer = self._unprocessed + data if self._unprocessed else data
        self._unprocessed = b""
        offset = 0
        size = len(buffer)
        prefixLength = self.prefixLength
        unpackFrom = self._prefix.unpack_from
        adjust = prefixLength if self.includesPrefix else 0
        limit = self.MAX_LENGTH
        send = self._send
        self._busyReceiving = True
        try:
            while size - offset >= prefixLength and not self.paused:
                (length,) = unpackFrom(buffer, offset)
                length -= adjust
                if length < 0:
                    self.frameError(MALFORMED_LENGTH, declared=length + adjust)
                    return
                if length > limit:
                    self.messageTooLarge(length)
                    return
                start = offset + prefixLength
                end = start + length
                if end > size:
                    break
                offset = end
                send(buffer[start:end])
            self._unprocessed = (buffer[offset:] if offset else buffer) + self._unprocessed
        finally:
            self._busyReceiving = False

    def bufferedByteCount(self):
        """
        :return: bytes of an incomplete prefix or message.
        """
        return len(self._unprocessed)
