# -*- test-case-name: tests.framing.test_exports -*-
"""
Tests for the public surface of L{gateway.framing}: the plugin author's
whole API, pinned so that a change to it is a decision, not an accident.
"""

from twisted.trial.unittest import SynchronousTestCase

import gateway.framing
from gateway.framing import base, options, plugin


class ExportsTests(SynchronousTestCase):
    """
    L{gateway.framing.__all__}.
    """

    def test_all(self):
        """
        C{__all__} names exactly the plugin author's API.
        """
        self.assertEqual(
            sorted(gateway.framing.__all__),
            sorted(
                [
                    "INCOMPLETE",
                    "MALFORMED_FRAME",
                    "MALFORMED_LENGTH",
                    "MAX_SIZE",
                    "TOO_LARGE",
                    "FramingError",
                    "FramingFactory",
                    "FramingOption",
                    "FramingPlugin",
                    "FramingProtocol",
                    "LengthPrefixedProtocol",
                    "LinesProtocol",
                    "OptionError",
                    "boolean",
                    "byteString",
                    "choice",
                    "integer",
                    "unescape",
                ]
            ),
        )

    def test_everyNameDefined(self):
        """
        Every name in C{__all__} is an attribute of the package.
        """
        for name in gateway.framing.__all__:
            self.assertTrue(hasattr(gateway.framing, name), name)

    def test_sameObjects(self):
        """
        The package re-exports the objects of its modules, not copies.
        """
        self.assertIs(gateway.framing.FramingProtocol, base.FramingProtocol)
        self.assertIs(gateway.framing.FramingError, base.FramingError)
        self.assertIs(gateway.framing.FramingPlugin, plugin.FramingPlugin)
        self.assertIs(gateway.framing.FramingFactory, plugin.FramingFactory)
        self.assertIs(gateway.framing.FramingOption, options.FramingOption)
        self.assertIs(gateway.framing.unescape, options.unescape)

    def test_reasons(self):
        """
        The reasons are the short strings counted and logged.
        """
        self.assertEqual(
            (
                gateway.framing.TOO_LARGE,
                gateway.framing.MALFORMED_LENGTH,
                gateway.framing.MALFORMED_FRAME,
                gateway.framing.INCOMPLETE,
            ),
            ("too-large", "malformed-length", "malformed-frame", "incomplete"),
        )

    def test_noServerLayer(self):
        """
        The framing package imports nothing from the layers above it (the
        server, Kafka, router, ops layers or the composition root), so a
        plugin importing only C{gateway.framing} pulls none of them in.
        """
        import subprocess
        import sys

        code = (
            "import sys, gateway.framing, gateway.framing.chunks, "
            "gateway.framing.netstring, gateway.framing.octetcounting, "
            "gateway.framing.varint\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('gateway.server', "
            "'gateway.kafka', 'gateway.router', 'gateway.ops', 'gateway.service', "
            "'gateway.tap', 'gateway.registry')))\n"
            "print(bad)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual(out.strip(), "[]")
