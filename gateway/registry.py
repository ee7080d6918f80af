# -*- test-case-name: tests.test_registry -*-
"""
Finding framing plugins: every module in the C{gateway.plugins} namespace,
and dotted paths (C{package.module:Name}) for plugins that are not installed.

Each plugin is checked against L{IFramingPlugin} when loaded.  A plugin
that fails to load or to verify, or two plugins claiming one name, give an
error naming the module; the other plugins stay available.
"""

from twisted.plugin import getPlugins
from twisted.python.reflect import namedAny
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from gateway.compat.twisted import cachedPlugins
from gateway.framing.plugin import FramingPlugin
from gateway.interfaces import IFramingPlugin, IProducerBackend, IRoutingPlugin

__all__ = [
    "FramingPlugin",
    "FramingError",
    "FramingRegistry",
    "loadFramings",
    "loadBackends",
    "loadRouting",
    "RoutingError",
    "DEFAULT_BACKEND",
]

#: The producer backend used unless another is named.
DEFAULT_BACKEND = "confluent"


class FramingError(ValueError):
    """
    A framing is unknown, or a plugin providing one is broken.
    """


def _importPath(name, error, what):
    """
    The object a dotted path C{package.module:Name} names.

    :raises error: when it does not import.
    """
    module, _, attribute = name.partition(":")
    try:
        return namedAny(f"{module}.{attribute}")
    except Exception as e:
        raise error(f"{what} {name!r} cannot be imported: {e}") from e


def _verified(plugin, origin):
    try:
        verifyObject(IFramingPlugin, plugin)
    except Invalid as e:
        raise FramingError(f"framing plugin {origin} is broken: {e}") from e
    return plugin


class FramingRegistry:
    """
    The framing plugins available to this process.

    :ivar plugins: name to plugin, for every plugin that loaded and verified.
    :ivar origins: name to the C{module.attribute} it came from.
    :ivar errors: one message per plugin that could not be used.
    """

    def __init__(self, package=None):
        """
        :param package: the plugin package to scan; C{gateway.plugins} by
            default.
        """
        if package is None:
            import gateway.plugins as package
        self.plugins = {}
        self.origins = {}
        self.errors = []
        claimed = {}
        for moduleName, pluginName, provided, load in cachedPlugins(package):
            if not any(p.isOrExtends(IFramingPlugin) for p in provided):
                continue
            origin = f"{moduleName}.{pluginName}"
            try:
                plugin = _verified(load(), origin)
            except FramingError as e:
                self.errors.append(str(e))
                continue
            except Exception as e:
                self.errors.append(f"framing plugin {origin} failed to load: {e!r}")
                continue
            claimed.setdefault(plugin.name, []).append((origin, plugin))
        for name, claims in sorted(claimed.items()):
            if len(claims) > 1:
                origins = " and ".join(origin for origin, _ in claims)
                self.errors.append(
                    f"framing {name!r} is provided twice, by {origins}; neither is used"
                )
                continue
            [(self.origins[name], self.plugins[name])] = claims

    def get(self, name):
        """
        The plugin for a C{--listen} framing: an installed plugin's name, or
        the dotted path C{package.module:Name} of a plugin object.

        :raises FramingError: for an unknown name, or a path that does not
            import or does not provide L{IFramingPlugin}.
        """
        if name in self.plugins:
            return self.plugins[name]
        if ":" in name:
            return _verified(_importPath(name, FramingError, "framing"), name)
        known = ", ".join(sorted(self.plugins)) or "none"
        hint = "".join(f"; {error}" for error in self.errors if f"'{name}'" in error)
        raise FramingError(f"unknown framing {name!r}; available: {known}{hint}")


def loadFramings(package=None):
    """
    :return: name to plugin, for every framing plugin that loaded.
    """
    return FramingRegistry(package).plugins


def loadBackends(package=None):
    """
    :return: name to L{IProducerBackend} plugin, for every backend that
        verifies (one that does not is left out; C{--help} names what is
        available).
    """
    if package is None:
        import gateway.plugins as package
    found = {}
    for backend in getPlugins(IProducerBackend, package):
        try:
            verifyObject(IProducerBackend, backend)
        except Invalid:
            continue
        found.setdefault(backend.name, backend)
    return found


class RoutingError(ValueError):
    """
    A routing plugin is unknown, or broken.
    """


def loadRouting(name, package=None):
    """
    The routing plugin a listener's C{routing=} names: an installed
    plugin's name, or the dotted path C{package.module:Name} of a plugin
    object; checked against L{IRoutingPlugin}.

    :raises RoutingError: when there is no such plugin, or it is broken.
    """
    if ":" in name:
        plugin = _importPath(name, RoutingError, "routing plugin")
    else:
        if package is None:
            import gateway.plugins as package
        found = {}
        for candidate in getPlugins(IRoutingPlugin, package):
            found.setdefault(getattr(candidate, "name", None), candidate)
        if name not in found:
            known = ", ".join(sorted(str(n) for n in found)) or "none"
            raise RoutingError(f"unknown routing plugin {name!r}; available: {known}")
        plugin = found[name]
    try:
        verifyObject(IRoutingPlugin, plugin)
    except Invalid as e:
        raise RoutingError(f"routing plugin {name!r} is broken: {e}") from e
    return plugin
