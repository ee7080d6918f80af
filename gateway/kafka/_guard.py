# -*- test-case-name: tests.kafka.test_health -*-
"""
A workaround for C{ClientService} (Twisted 26.10): a connection lost before
C{prepareConnection} succeeded makes its C{connectionLost} raise automat's
C{NoTransition}.  The health service wraps its broker endpoints in
L{GuardedEndpoint} so that such a loss is absorbed.
"""

from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from gateway.compat.automat import NoTransition

__all__ = ["GuardedEndpoint"]


class _LossGuard(Protocol):
    """
    Sits between a transport and C{ClientService}'s protocol wrapper.

    C{ClientService} (Twisted 26.10) has no transition for a connection lost
    before C{prepareConnection} succeeded: closing a connection whose first
    probe failed makes C{connectionLost} raise automat's C{NoTransition},
    logged as an unhandled error.  The service already counted that attempt
    as failed, so the exception is dropped here; the wrapped protocol has
    seen the loss by then.
    """

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def makeConnection(self, transport):
        Protocol.makeConnection(self, transport)
        self.wrapped.makeConnection(transport)

    def dataReceived(self, data):
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason):
        try:
            self.wrapped.connectionLost(reason)
        except NoTransition:
            pass


class _GuardFactory(Factory):
    noisy = False

    def __init__(self, factory):
        self._factory = factory

    def buildProtocol(self, addr):
        wrapped = self._factory.buildProtocol(addr)
        return None if wrapped is None else _LossGuard(wrapped)


@implementer(IStreamClientEndpoint)
class GuardedEndpoint:
    """
    An endpoint whose connections get a L{_LossGuard}; C{connect} still
    fires with the protocol C{ClientService} built.  Failed attempts are
    reported to C{onFailure} before C{ClientService} sees them.
    """

    def __init__(self, endpoint, name, onFailure):
        self._endpoint, self._name, self._onFailure = endpoint, name, onFailure

    def __repr__(self):
        return f"<Kafka broker {self._name}>"

    def connect(self, factory):
        d = self._endpoint.connect(_GuardFactory(factory))
        return d.addCallbacks(lambda guard: guard.wrapped, self._onFailure)
