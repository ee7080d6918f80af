# -*- test-case-name: tests.test_registry -*-
"""
Tests for framing plugin discovery.
"""

import shutil
import sys
import tempfile

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.framing import LengthPrefixedProtocol, LinesProtocol
from gateway.interfaces import IFramingPlugin
from gateway.registry import FramingError, FramingRegistry, loadFramings


class LoadFramingsTests(SynchronousTestCase):
    """
    L{loadFramings}.
    """

    def test_builtins(self):
        """
        The built-in framings are found through the plugin system, provide
        L{IFramingPlugin} and build factories of their protocols.
        """
        framings = loadFramings()
        self.assertEqual({"lines", "length-prefixed"} - set(framings), set())
        for plugin in framings.values():
            verifyObject(IFramingPlugin, plugin)
        self.assertIs(framings["lines"].buildFactory(None).protocol, LinesProtocol)
        self.assertIs(
            framings["length-prefixed"].buildFactory(None).protocol,
            LengthPrefixedProtocol,
        )

    def makePluginPackage(self, source):
        """
        A throwaway plugin package holding one module with C{source}.
        """
        base = FilePath(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, base.path)
        package = base.child("fakeplugins")
        package.makedirs()
        package.child("__init__.py").setContent(b"")
        package.child("extra.py").setContent(source.encode())
        sys.path.insert(0, base.path)
        self.addCleanup(sys.path.remove, base.path)
        self.addCleanup(sys.modules.pop, "fakeplugins", None)
        self.addCleanup(sys.modules.pop, "fakeplugins.extra", None)
        import fakeplugins

        return fakeplugins

    def test_duplicateName(self):
        """
        Two plugins with one name are both refused, with an error naming both
        modules; the other plugins stay available.
        """
        package = self.makePluginPackage(
            "from gateway.registry import FramingPlugin\n"
            "a = FramingPlugin('same', 'a', 'x.A')\n"
            "b = FramingPlugin('same', 'b', 'x.B')\n"
            "c = FramingPlugin('other', 'c', 'x.C')\n"
        )
        registry = FramingRegistry(package)
        self.assertEqual(sorted(registry.plugins), ["other"])
        [error] = registry.errors
        self.assertIn("fakeplugins.extra.a", error)
        self.assertIn("fakeplugins.extra.b", error)
        self.assertRaises(FramingError, registry.get, "same")

    def test_brokenPlugin(self):
        """
        A plugin that claims L{IFramingPlugin} without implementing it is
        reported with its module and what is missing, without hiding the
        other plugins.
        """
        package = self.makePluginPackage(
            "from zope.interface import implementer\n"
            "from twisted.plugin import IPlugin\n"
            "from gateway.interfaces import IFramingPlugin\n"
            "from gateway.registry import FramingPlugin\n"
            "@implementer(IPlugin, IFramingPlugin)\n"
            "class Broken:\n"
            "    name = 'broken'\n"
            "broken = Broken()\n"
            "fine = FramingPlugin('fine', 'ok', 'x.Fine')\n"
        )
        registry = FramingRegistry(package)
        self.assertEqual(sorted(registry.plugins), ["fine"])
        [error] = registry.errors
        self.assertIn("fakeplugins.extra.broken", error)
        self.assertIn("buildFactory", error)

    def test_dottedPath(self):
        """
        A plugin that is not installed is found by its dotted path and
        verified; a path to something else is refused.
        """
        registry = FramingRegistry()
        plugin = registry.get("gateway.plugins.gateway_builtin:lines")
        self.assertEqual(plugin.name, "lines")
        self.assertRaises(FramingError, registry.get, "gateway.registry:FramingError")
        self.assertRaises(FramingError, registry.get, "nope.nothing:Here")

    def test_unknownNameListsKnown(self):
        """
        An unknown name is refused with the names available.
        """
        error = self.assertRaises(FramingError, FramingRegistry().get, "xml")
        self.assertIn("lines", str(error))
