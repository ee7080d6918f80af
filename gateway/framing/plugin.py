# -*- test-case-name: tests.framing.test_base -*-
"""
L{FramingPlugin}: the plugin object most framings need, naming a protocol
class that is imported only when a listener uses it; and L{FramingFactory},
the factory of a framing's protocols for one listener.

The framing layer does not build a listener's final factory: the server
layer (C{gateway.server.factory.listenerFactory}) takes the plugin's
protocol class and composes the listener's connection hygiene (caps,
timers, PROXY header, byte counting) onto it.
"""

from itertools import count

from twisted.internet.protocol import Factory
from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import implementer

from gateway.interfaces import IFramingPlugin

__all__ = ["FramingFactory", "FramingPlugin"]


class FramingFactory(Factory):
    """
    Build one framing protocol per connection, of a subclass made once per
    listener (L{gateway.framing.base.FramingProtocol.forListener}) holding
    what every connection shares, and number the connections.

    This alone applies no connection hygiene; the gateway's listeners use
    the server layer's subclass, which does.

    :ivar protocol: the framing's protocol class.
    :ivar config: the listener's configuration
        (L{gateway.server.listener.ListenerConfig}).
    """

    noisy = False

    def __init__(self, protocol, config):
        """
        :param protocol: a L{gateway.framing.base.FramingProtocol} subclass.
        :param config: the listener's configuration.
        """
        self.protocol = protocol
        self.config = config
        self._connectionIds = count(1)
        self._listenerProtocol = None

    def listenerProtocol(self):
        """
        :return: the protocol class for this listener's connections (built
            once, on first use).
        """
        return self.protocol.forListener(self)

    def buildProtocol(self, addr):
        """
        Build the protocol of one connection.
        """
        listenerProtocol = self._listenerProtocol
        if listenerProtocol is None:
            listenerProtocol = self._listenerProtocol = self.listenerProtocol()
        protocol = listenerProtocol()
        protocol.connectionId = next(self._connectionIds)
        return protocol


@implementer(IPlugin, IFramingPlugin)
class FramingPlugin:
    """
    A framing whose protocol class (a L{gateway.framing.base.FramingProtocol}
    subclass) is imported only when a listener uses it, so that listing
    plugins (C{twistd gateway --help}) stays cheap.

    :ivar name: see L{IFramingPlugin.name}.
    :ivar description: see L{IFramingPlugin.description}.
    :ivar options: see L{IFramingPlugin.options}.
    :ivar protocolPath: dotted path of the protocol class.
    """

    def __init__(self, name, description, protocolPath, options=()):
        self.name = name
        self.description = description
        self.protocolPath = protocolPath
        self.options = tuple(options)

    def protocolClass(self):
        """
        :return: the protocol class, imported now.  The gateway's listeners
            build their factory from it, with connection hygiene.
        """
        return namedAny(self.protocolPath)

    def buildFactory(self, listener):
        """
        See L{IFramingPlugin.buildFactory}: a L{FramingFactory} of the
        protocol class, without the listener's connection hygiene (the
        gateway uses L{protocolClass} instead).
        """
        return FramingFactory(self.protocolClass(), listener)

    def __repr__(self):
        return f"<FramingPlugin {self.name!r} {self.protocolPath}>"
