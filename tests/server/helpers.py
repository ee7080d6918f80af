"""
Helpers shared by the server tests: a listener built as the service builds
one, on a L{Clock} and a L{RecordingSink}; PROXY headers; log capture.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from gateway.framing.options import MAX_SIZE, resolveOptions
from gateway.registry import loadFramings
from gateway.server.factory import listenerFactory
from gateway.server.gate import ListenerGate
from gateway.server.listener import ListenerConfig, ListenerStats
from gateway.server.policy import (
    ConnectionPolicy,
    splitOptions,
)
from gateway.testing import RecordingSink
from tests.support.logs import captureLogs, eventsFrom
from tests.support.proxy import proxyV2, proxyWrappingFactory

__all__ = ["FRAMINGS", "PROXY_V1", "proxyV2", "lose", "captureLogs", "eventsFrom", "Listener"]

FRAMINGS = loadFramings()


#: The PROXY v1 header of a client 203.0.113.7:5555 behind a proxy.
PROXY_V1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n"


def lose(protocol):
    """
    Tell a protocol (or a PROXY wrapper) that its connection closed.
    """
    protocol.connectionLost(Failure(ConnectionDone()))


class Listener:
    """
    One listener's protocol factory, built as
    L{gateway.service.GatewayService.addListener} builds it, on a L{Clock}
    and a L{RecordingSink}, with fake transports for its connections.
    """

    def __init__(
        self, options=None, framing="lines", endpoint="tcp:0", descriptors=None, interval=10.0
    ):
        """
        :param options: framing and connection options, as written.
        :param endpoint: the endpoint description; C{haproxy:} makes the
            listener expect a PROXY header.
        :param descriptors: a L{DescriptorGuard}, or L{None}.
        """
        plugin = FRAMINGS[framing]
        framingOptions, connectionOptions = splitOptions(dict(options or {}))
        resolved = resolveOptions(plugin, framingOptions, 1024)
        self.clock = Clock()
        self.stats = ListenerStats()
        self.sink = RecordingSink()
        policy = ConnectionPolicy.fromOptions(connectionOptions, endpoint)
        self.gate = ListenerGate("test", policy, self.stats, self.clock, interval)
        self.config = ListenerConfig(
            name="test",
            framing=plugin.name,
            endpoint=endpoint,
            sink=self.sink,
            maxMessageSize=resolved[MAX_SIZE],
            options=resolved,
            clock=self.clock,
            stats=self.stats,
            gate=self.gate,
            descriptors=descriptors,
            proxied=endpoint.startswith("haproxy:"),
        )
        self.factory = listenerFactory(plugin, self.config)
        self.proxyFactory = proxyWrappingFactory(self.factory)

    def connect(self, host="10.0.0.1", port=40000):
        """
        Connect one client directly.

        :return: C{(protocol, transport)}.
        """
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(transport)
        return protocol, transport

    def connectProxied(self, proxyPort=40000):
        """
        Connect one client through a PROXY-protocol wrapper, as a
        C{haproxy:} endpoint does; the proxy is 127.0.0.1.

        :return: C{(wrapper, transport)}; the framing protocol is
            C{wrapper.wrappedProtocol}.
        """
        wrapper = self.proxyFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", proxyPort))
        wrapper.makeConnection(transport)
        return wrapper, transport
