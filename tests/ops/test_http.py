# -*- test-case-name: tests.ops.test_http -*-
"""
Tests for L{gateway.ops.http}: the HTTP service binds the gateway's site on
its own endpoint when the privileged start runs (before twistd drops
privileges), raises when it cannot bind, logs where it listens, and stops
listening when stopped.
"""

from twisted.internet.defer import succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock, RaisingMemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from gateway.ops.http import HTTPService
from gateway.service import GatewayService
from tests.fakes import fakeBackend
from tests.support.logs import captureLogs, eventsFrom


def gatewayOn(reactor):
    """
    :return: a gateway (not started) on C{reactor} with the fake producer.
    """
    return GatewayService(
        topic="t",
        reactor=reactor,
        backend=fakeBackend(),
        bootstrapServers="127.0.0.1:9092",
        healthInterval=None,
        spoolPath=None,
        deadLetterPath=None,
    )


class HTTPServiceTests(SynchronousTestCase):
    """
    L{HTTPService}.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.gateway = gatewayOn(self.reactor)
        endpoint = TCP4ServerEndpoint(self.reactor, 8080, interface="127.0.0.1")
        self.service = HTTPService(self.gateway, endpoint, "tcp:8080:interface=127.0.0.1")

    def test_privilegedStartBindsTheSite(self):
        """
        The privileged start listens on the endpoint with the gateway's site
        (its resources at C{healthz}, C{readyz}, C{metrics}, C{status.json})
        and logs the address.
        """
        events = captureLogs(self)
        self.service.privilegedStartService()
        ((port, factory, _, interface),) = self.reactor.tcpServers
        self.assertEqual((port, interface), (8080, "127.0.0.1"))
        self.assertIsInstance(factory, Site)
        children = factory.resource.listNames()
        for name in (b"healthz", b"readyz", b"metrics", b"status.json"):
            self.assertIn(name, children)
        self.assertIsNotNone(self.service.port)
        (logged,) = eventsFrom(events, "gateway.ops.http")
        self.assertEqual(logged["log_format"], "http listening on {address}")
        self.assertEqual(logged["endpoint"], "tcp:8080:interface=127.0.0.1")

    def test_startBindsOnce(self):
        """
        L{HTTPService.startService} after the privileged start does not bind
        again; without it, it binds.
        """
        self.service.privilegedStartService()
        self.service.startService()
        self.assertEqual(len(self.reactor.tcpServers), 1)
        self.assertTrue(self.service.running)
        other = HTTPService(self.gateway, TCP4ServerEndpoint(self.reactor, 8081), "tcp:8081")
        other.startService()
        self.assertEqual(len(self.reactor.tcpServers), 2)

    def test_bindFailureRaises(self):
        """
        A port that cannot be bound raises from the privileged start, so
        the gateway does not start without its HTTP endpoints.
        """
        refusing = RaisingMemoryReactor(listenException=CannotListenError("127.0.0.1", 8080, None))
        service = HTTPService(self.gateway, TCP4ServerEndpoint(refusing, 8080), "tcp:8080")
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.assertIsNone(service.port)

    def test_stopStopsListening(self):
        """
        Stopping stops listening (the Deferred of the port's
        C{stopListening} is returned, for twistd to wait on) and forgets the
        port; stopping again is harmless.
        """
        self.service.startService()
        stopped = []
        self.service.port.stopListening = lambda: stopped.append(True) or succeed("stopped")
        self.assertEqual(self.successResultOf(self.service.stopService()), "stopped")
        self.assertEqual(stopped, [True])
        self.assertIsNone(self.service.port)
        self.assertFalse(self.service.running)
        self.assertIsNone(self.service.stopService())
