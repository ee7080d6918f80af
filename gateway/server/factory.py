# -*- test-case-name: tests.server.test_factory -*-
"""
The protocol factory of every listener: the framing plugin's protocol class,
subclassed once per listener with what all its connections share (the
factory, the size limit, the framing's settings) and the listener's
connection hygiene (L{gateway.server.hygiene}) composed onto it.

What is the same for every connection of a listener lives on that class,
not on each connection: a gateway holding 20,000 idle connections pays for
it once.
"""

from gateway.framing.plugin import FramingFactory
from gateway.server.handshake import tlsProtocol
from gateway.server.hygiene import hygieneNamespace

__all__ = ["GatewayFactory", "listenerFactory"]


class GatewayFactory(FramingFactory):
    """
    Build one framing protocol per client connection, with the listener's
    connection hygiene.

    :ivar protocol: the framing's protocol class.
    :ivar config: the listener's L{gateway.server.listener.ListenerConfig}.
    """

    def listenerProtocol(self):
        """
        :return: the framing's class for this listener, with its hygiene
            (and its TLS handshake, on a TLS listener).
        """
        protocol = self.protocol
        if getattr(self.config, "tls", None) is not None:
            protocol = tlsProtocol(protocol, self.config)
        namespace = protocol.listenerNamespace(self)
        namespace.update(hygieneNamespace(protocol, self.config))
        return type(protocol.__name__, (protocol,), namespace)


def listenerFactory(plugin, config):
    """
    The protocol factory serving one listener.

    A plugin with a C{protocolClass()} (every L{gateway.framing.FramingPlugin})
    gets a L{GatewayFactory} of that class; any other
    L{gateway.interfaces.IFramingPlugin} builds its own factory with
    C{buildFactory}, used as it is (without the gateway's connection
    hygiene).

    :param plugin: the framing plugin.
    :param config: the listener's L{gateway.server.listener.ListenerConfig}.
    :return: an L{twisted.internet.interfaces.IProtocolFactory}.
    """
    protocolClass = getattr(plugin, "protocolClass", None)
    if protocolClass is None:
        return plugin.buildFactory(config)
    return GatewayFactory(protocolClass(), config)
