# -*- test-case-name: tests.test_framing -*-
"""
The protocol factory every built-in framing uses: it hands each protocol its
listener's configuration, limit and a connection number.
"""

from itertools import count

from twisted.internet.protocol import Factory

__all__ = ["GatewayFactory"]


class GatewayFactory(Factory):
    """
    Build one framing protocol per client connection.

    :ivar config: the listener's L{gateway.listener.ListenerConfig}.
    """

    noisy = False

    def __init__(self, protocol, config):
        """
        :param protocol: the framing protocol class (a
            L{gateway.framing._base.FramedProtocolMixin} subclass).
        :param config: the listener's L{gateway.listener.ListenerConfig}.
        """
        self.protocol = protocol
        self.config = config
        self._connectionIds = count(1)

    def buildProtocol(self, addr):
        """
        Build a protocol for one connection, with the listener's limit.
        """
        protocol = self.protocol()
        protocol.factory = self
        protocol.MAX_LENGTH = self.config.maxMessageSize
        protocol.connectionId = next(self._connectionIds)
        return protocol
