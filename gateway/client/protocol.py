# -*- test-case-name: tests.client.test_client -*-
"""
One connection of a L{gateway.client.client.GatewayClient}: it writes the
frames its client gives it and hands back each reply it reads.  Everything
that outlives a connection (the session, the unacknowledged messages) is the
client's, so a reconnection is only a new one of these.
"""

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from gateway.client.framing import FramingError

__all__ = ["ClientProtocol", "ClientProtocolFactory"]


class ClientProtocol(Protocol):
    """
    Write frames; cut what the gateway writes back into replies.

    :ivar client: the owner, told of the connection (C{connectionMade}),
        each reply (C{replyReceived}) and the loss (C{connectionLost}).
    """

    log = Logger()
    _buffer = b""

    def __init__(self, client):
        self.client = client

    def connectionMade(self):
        self.client.connectionMade(self)

    def writeFrames(self, frames):
        """
        Write already framed messages, in order.
        """
        self.transport.writeSequence(frames)

    def dataReceived(self, data):
        buffer = self._buffer + data
        try:
            replies, consumed = self.client.framing.parse(buffer)
        except FramingError as e:
            replies, consumed = e.frames, len(buffer)
            self.log.warn(
                "gateway client: the gateway's reply is not {framing} ({reason}); reconnecting",
                framing=self.client.framing.name,
                reason=e.reason,
            )
            self.transport.loseConnection()
        self._buffer = buffer[consumed:]
        for reply in replies:
            self.client.replyReceived(self, reply)

    def connectionLost(self, reason):
        self.client.connectionLost(self, reason)


class ClientProtocolFactory(Factory):
    """
    Build the L{ClientProtocol} of each connection for one client.
    """

    noisy = False

    def __init__(self, client):
        self.client = client

    def buildProtocol(self, addr):
        return ClientProtocol(self.client)
