# -*- test-case-name: tests.test_framing -*-
"""
C{length-prefixed}: each message follows its length as a 4-byte big-endian
unsigned integer.
"""

from twisted.protocols.basic import Int32StringReceiver

from gateway.framing._base import FramedProtocolMixin

__all__ = ["LengthPrefixedProtocol"]


class LengthPrefixedProtocol(FramedProtocolMixin, Int32StringReceiver):
    """
    L{Int32StringReceiver} publishing every string it receives.

    Its C{dataReceived} already slices messages out of one buffer by offset
    and stops while paused, which is all the gateway needs.
    """

    def messageStreamOpened(self, send):
        """
        Bind the stream's C{send} as C{stringReceived}, saving one Python call
        per message on the hot path.
        """
        self.stringReceived = send

    def stringReceived(self, string):
        """
        Not reached once connected (see L{messageStreamOpened}).
        """
        self._send(string)

    def lengthLimitExceeded(self, length):
        """
        A length prefix above the limit: close the connection.
        """
        self.messageTooLarge(length)

    def dataReceived(self, data):
        """
        Ignore bytes that arrive after an over-limit frame closed the
        connection, instead of parsing the same oversized prefix again.
        """
        if not self.overLimit:
            Int32StringReceiver.dataReceived(self, data)

    def bufferedByteCount(self):
        """
        :return: bytes of an incomplete prefix or message.
        """
        return len(self._unprocessed)
