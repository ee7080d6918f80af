# -*- test-case-name: tests.test_registry -*-
"""
L{FramingPlugin}: the plugin object most framings need, naming a protocol
class that is imported only when a listener uses it.
"""

from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import implementer

from gateway.interfaces import IFramingPlugin

__all__ = ["FramingPlugin"]


@implementer(IPlugin, IFramingPlugin)
class FramingPlugin:
    """
    A framing built on L{gateway.server.factory.GatewayFactory}, whose protocol class
    is imported only when a listener uses it, so that listing plugins
    (C{twistd gateway --help}) stays cheap.

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

    def buildFactory(self, listener):
        """
        See L{IFramingPlugin.buildFactory}: a L{GatewayFactory} of the
        protocol class.
        """
        from gateway.server.factory import GatewayFactory

        return GatewayFactory(namedAny(self.protocolPath), listener)

    def __repr__(self):
        return f"<FramingPlugin {self.name!r} {self.protocolPath}>"
