# -*- test-case-name: tests.test_framing -*-
"""
Helpers for testing framings, public so plugin authors can use them too.
"""

from twisted.internet.testing import StringTransport
from zope.interface import implementer

from gateway.interfaces import IMessageSink, IMessageStream
from gateway.listener import ListenerConfig

__all__ = ["RecordingSink", "connectFraming"]


@implementer(IMessageStream)
class _RecordingStream:
    def __init__(self, sink, listener, peer):
        self.sink = sink
        self.listener = listener
        self.peer = peer
        self.messages = []
        self.closed = False

    def send(self, payload):
        self.messages.append(payload)
        self.sink.messages.append((self.peer, payload))

    def close(self):
        self.closed = True


@implementer(IMessageSink)
class RecordingSink:
    """
    An L{IMessageSink} that records every message instead of producing it.

    :ivar messages: C{(peer, payload)} pairs in arrival order.
    :ivar streams: every stream opened, in order.
    """

    def __init__(self):
        self.messages = []
        self.streams = []

    def openStream(self, listener, peer, producer):
        stream = _RecordingStream(self, listener, peer)
        self.streams.append(stream)
        return stream


def connectFraming(plugin, sink=None, maxMessageSize=1024, name="test",
                   peerPort=40000):
    """
    Build one connected protocol of a framing plugin on a L{StringTransport}.

    :param plugin: an L{gateway.interfaces.IFramingPlugin}.
    :param sink: the sink; a new L{RecordingSink} when L{None}.
    :param maxMessageSize: the listener's limit.
    :param name: the listener's name.
    :param peerPort: the fake client's port, to tell connections apart.
    :return: C{(protocol, transport, sink)}.
    """
    from twisted.internet.address import IPv4Address

    sink = RecordingSink() if sink is None else sink
    config = ListenerConfig(
        name=name, framing=plugin.name, endpoint="tcp:0", sink=sink,
        maxMessageSize=maxMessageSize,
    )
    factory = plugin.buildFactory(config)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
    transport = StringTransport(
        peerAddress=IPv4Address("TCP", "127.0.0.1", peerPort)
    )
    protocol.makeConnection(transport)
    return protocol, transport, sink
