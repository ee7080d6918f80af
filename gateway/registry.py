# -*- test-case-name: tests.test_registry -*-
"""
Finding framing plugins: C{getPlugins} over C{gateway.plugins}, each checked
against L{IFramingPlugin} when loaded, duplicates refused by name.
"""

from twisted.plugin import IPlugin, getPlugins
from twisted.python.reflect import namedAny
from zope.interface import implementer
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from gateway.interfaces import IFramingPlugin

__all__ = ["FramingPlugin", "FramingError", "loadFramings"]


class FramingError(ValueError):
    """
    A framing is unknown, or a plugin providing one is broken.
    """


@implementer(IPlugin, IFramingPlugin)
class FramingPlugin:
    """
    A framing whose protocol class is imported only when a listener uses it,
    so listing plugins (C{twistd gateway --help}) stays cheap.

    :ivar name: see L{IFramingPlugin.name}.
    :ivar description: see L{IFramingPlugin.description}.
    :ivar protocolPath: dotted path of the protocol class.
    """

    def __init__(self, name, description, protocolPath):
        self.name = name
        self.description = description
        self.protocolPath = protocolPath

    def buildFactory(self, listener):
        """
        See L{IFramingPlugin.buildFactory}: a L{GatewayFactory} of the
        protocol class.
        """
        from gateway.factory import GatewayFactory

        return GatewayFactory(namedAny(self.protocolPath), listener)

    def __repr__(self):
        return f"<FramingPlugin {self.name!r} {self.protocolPath}>"


def loadFramings(package=None):
    """
    Every framing plugin found, by name.

    :param package: the plugin package to scan; C{gateway.plugins} by default.
    :return: a L{dict} from name to plugin.
    :raises FramingError: when a plugin does not provide L{IFramingPlugin} or
        two plugins share a name; the message names the plugins' modules.
    """
    if package is None:
        import gateway.plugins as package
    found = {}
    for plugin in getPlugins(IFramingPlugin, package):
        origin = getattr(plugin, "__module__", None) or type(plugin).__module__
        try:
            verifyObject(IFramingPlugin, plugin)
        except Invalid as e:
            raise FramingError(
                f"framing plugin {plugin!r} from {origin} is broken: {e}"
            ) from e
        if plugin.name in found:
            raise FramingError(
                f"two framing plugins are named {plugin.name!r}: "
                f"{found[plugin.name]!r} and {plugin!r}"
            )
        found[plugin.name] = plugin
    return found
