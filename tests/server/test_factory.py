# -*- test-case-name: tests.server.test_factory -*-
"""
Tests for L{gateway.server.factory}: one protocol class per listener,
holding what its connections share.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.lengthprefix import LengthPrefixedProtocol
from gateway.framing.lines import LinesProtocol
from tests.server.helpers import (
    Listener,
)


class ListenerFactoryTests(SynchronousTestCase):
    """
    The protocol class a listener's factory builds its connections from.
    """

    def test_listenerProtocolClass(self):
        """
        Every connection of a listener is an instance of one subclass of the
        framing's protocol, with C{factory} and C{MAX_LENGTH} on the class,
        not on each connection; the factory's C{protocol} stays the
        plugin's class.
        """
        for framing, plugin in [
            ("lines", LinesProtocol),
            ("length-prefixed", LengthPrefixedProtocol),
        ]:
            listener = Listener({"max-size": "777"}, framing=framing)
            first, _ = listener.connect(port=1)
            second, _ = listener.connect(port=2)
            self.assertIs(listener.factory.protocol, plugin)
            self.assertIs(type(first), type(second))
            self.assertIsNot(type(first), plugin)
            self.assertTrue(issubclass(type(first), plugin))
            self.assertEqual(type(first).__name__, plugin.__name__)
            self.assertIs(type(first).__dict__["factory"], listener.factory)
            self.assertEqual(type(first).__dict__["MAX_LENGTH"], 777)
            self.assertNotIn("factory", vars(first))
            self.assertNotIn("MAX_LENGTH", vars(first))
            self.assertEqual((first.connectionId, second.connectionId), (1, 2))
            self.assertNotIn("factory", plugin.__dict__)

    def test_twoListenersKeepTheirOwnClass(self):
        """
        Two listeners of one framing each have their own class, limit and
        counters.
        """
        small, large = Listener({"max-size": "10"}), Listener({"max-size": "20"})
        a, _ = small.connect()
        b, _ = large.connect()
        self.assertEqual((a.MAX_LENGTH, b.MAX_LENGTH), (10, 20))
        a.dataReceived(b"x\n")
        self.assertEqual((small.stats.bytesReceived, large.stats.bytesReceived), (2, 0))
