# -*- test-case-name: tests.client.test_exports -*-
"""
The public surface of L{gateway.client}, pinned.
"""

from twisted.trial.unittest import SynchronousTestCase

import gateway.client


class ExportsTests(SynchronousTestCase):
    """
    L{gateway.client.__all__}.
    """

    def test_all(self):
        """
        C{__all__} names exactly the client's API.
        """
        self.assertEqual(
            sorted(gateway.client.__all__),
            [
                "BlockingClient",
                "ClientFraming",
                "ConnectFailed",
                "Deduplicator",
                "GatewayClient",
                "MessageRefused",
                "Outcome",
                "SEQ_HEADER",
                "SESSION_HEADER",
                "WindowFull",
                "checkSession",
                "clientEndpoint",
                "newSession",
                "sessionAndSeq",
            ],
        )

    def test_everyNameDefined(self):
        """
        Every name in C{__all__} is an attribute of the package.
        """
        for name in gateway.client.__all__:
            self.assertTrue(hasattr(gateway.client, name), name)

    def test_headerNames(self):
        """
        The record headers the gateway writes in ack mode.
        """
        self.assertEqual(gateway.client.SESSION_HEADER, "gateway-session")
        self.assertEqual(gateway.client.SEQ_HEADER, "gateway-seq")
