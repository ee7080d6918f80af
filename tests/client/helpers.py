# -*- test-case-name: tests.client.test_client -*-
"""
Test doubles for the client: an endpoint whose connection attempts the test
answers one by one, each connection on a L{StringTransport}.
"""

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from gateway.client import ClientFraming
from gateway.registry import loadFramings

FRAMINGS = loadFramings()


def framing(name="lines", **options):
    """
    The client's side of a built-in framing.
    """
    return ClientFraming(FRAMINGS[name], options)


class ScriptedEndpoint:
    """
    An L{twisted.internet.interfaces.IStreamClientEndpoint} whose attempts
    wait until the test calls L{accept} or L{refuse}.

    :ivar attempts: the attempts not answered yet, C{(factory, Deferred)}.
    :ivar connections: C{(protocol, transport)} of every connection made.
    """

    def __init__(self):
        self.attempts = []
        self.connections = []

    def connect(self, factory):
        attempt = Deferred()
        self.attempts.append((factory, attempt))
        return attempt

    def accept(self):
        """
        Answer the oldest attempt with a connection.

        :return: C{(protocol, transport)}.
        """
        factory, attempt = self.attempts.pop(0)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        attempt.callback(protocol)
        return protocol, transport

    def refuse(self):
        """
        Fail the oldest attempt.
        """
        _, attempt = self.attempts.pop(0)
        attempt.errback(Failure(ConnectionRefusedError()))


def drop(protocol, transport):
    """
    Close a connection from the gateway's side.
    """
    from twisted.internet.error import ConnectionLost

    transport.loseConnection()
    protocol.connectionLost(Failure(ConnectionLost()))
