"""
A connection of a listener with C{ack=on}, on a string transport, for the
ack-mode unit tests.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from gateway.framing.lines import LinesProtocol
from gateway.framing.plugin import FramingFactory
from gateway.server.listener import ListenerConfig


class AckTransport(StringTransport):
    """
    A string transport with Twisted's write buffer size, which ack mode
    lowers.
    """

    bufferSize = 65536


def ackConnection(router, clock, framing=LinesProtocol, options=None, port=5000):
    """
    Connect one client to a listener with C{ack=on}.

    :param router: the L{gateway.router.Router} (the listener's sink).
    :param clock: the listener's clock.
    :param framing: the framing's protocol class.
    :param options: the listener's options, over C{ack=on}.
    :return: C{(protocol, transport)}.
    """
    config = ListenerConfig(
        name="acks",
        framing="test",
        endpoint="tcp:0",
        sink=router,
        maxMessageSize=200_000,
        options={"ack": True, "max-size": 200_000, **(options or {})},
        clock=clock,
    )
    protocol = FramingFactory(framing, config).buildProtocol(None)
    transport = AckTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", port))
    protocol.makeConnection(transport)
    return protocol, transport
