# -*- test-case-name: tests.server.test_factory -*-
"""
The protocol factory every built-in framing uses: it hands each protocol its
listener's configuration, limit and a connection number.

What is the same for every connection of a listener (the factory, the size
limit, the byte counter) lives on a subclass of the framing's protocol made
once per listener, not on each connection: a gateway holding 20,000 idle
connections pays for it once.
"""

from itertools import count

from twisted.internet.protocol import Factory

__all__ = ["GatewayFactory", "listenerProtocol"]


def listenerProtocol(protocol, factory):
    """
    Subclass a framing protocol for one listener: class attributes
    C{factory} and C{MAX_LENGTH}, and a C{dataReceived} that counts the
    bytes read (and restarts the idle timer when the listener has one)
    before the framing's own.

    :param protocol: the framing protocol class (a
        L{gateway.framing.base.FramedProtocolMixin} subclass).
    :param factory: the listener's L{GatewayFactory}.
    :return: the subclass.
    """
    config = factory.config
    stats = config.stats
    frame = protocol.dataReceived
    gate = config.gate
    if gate is not None and gate.policy.idleTimeout is not None:

        def dataReceived(self, data):
            stats.bytesReceived += len(data)
            self.resetTimeout()
            frame(self, data)

    else:

        def dataReceived(self, data):
            stats.bytesReceived += len(data)
            frame(self, data)

    return type(
        protocol.__name__,
        (protocol,),
        {
            "__module__": protocol.__module__,
            "__doc__": protocol.__doc__,
            "factory": factory,
            "MAX_LENGTH": config.maxMessageSize,
            "dataReceived": dataReceived,
        },
    )


class GatewayFactory(Factory):
    """
    Build one framing protocol per client connection.

    :ivar protocol: the framing protocol class.
    :ivar config: the listener's L{gateway.server.listener.ListenerConfig}.
    """

    noisy = False

    def __init__(self, protocol, config):
        """
        :param protocol: the framing protocol class (a
            L{gateway.framing.base.FramedProtocolMixin} subclass).
        :param config: the listener's L{gateway.server.listener.ListenerConfig}.
        """
        self.protocol = protocol
        self.config = config
        self._connectionIds = count(1)
        self._listenerProtocol = None

    def buildProtocol(self, addr):
        """
        Build a protocol for one connection, with the listener's limit.
        """
        if self._listenerProtocol is None:
            self._listenerProtocol = listenerProtocol(self.protocol, self)
        protocol = self._listenerProtocol()
        protocol.connectionId = next(self._connectionIds)
        return protocol
