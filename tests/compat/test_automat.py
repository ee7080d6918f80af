# -*- test-case-name: tests.compat.test_automat -*-
"""
L{gateway.compat.automat} against the installed Automat and Twisted: the
exception an Automat machine raises for an input it has no transition for,
and the C{ClientService} case the health service's guard absorbs.
"""

from automat import MethodicalMachine
from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.compat.automat import NoTransition


class Door:
    """
    A two-state Automat machine: it can be opened only when closed.
    """

    _machine = MethodicalMachine()

    @_machine.state(initial=True)
    def closed(self):
        "Closed."

    @_machine.state()
    def opened(self):
        "Open."

    @_machine.input()
    def open(self):
        "Open it."

    closed.upon(open, enter=opened, outputs=[])


class ConnectingEndpoint:
    """
    An endpoint whose connections succeed at once, on a
    L{StringTransport}.
    """

    def connect(self, factory):
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(StringTransport())
        return succeed(self.protocol)


class NoTransitionTests(SynchronousTestCase):
    """
    L{NoTransition}.
    """

    def test_automatRaisesIt(self):
        """
        An input without a transition from the current state raises
        L{NoTransition}.
        """
        door = Door()
        door.open()
        self.assertRaises(NoTransition, door.open)

    def test_clientServiceLossBeforePrepare(self):
        """
        Twisted's C{ClientService} still raises L{NoTransition} (out of the
        protocol's C{connectionLost}) for a connection lost before its
        C{prepareConnection} succeeded: the case
        L{gateway.kafka._guard.GuardedEndpoint} absorbs.  When this test
        fails, Twisted has fixed it and the guard can go.
        """
        endpoint = ConnectingEndpoint()
        service = ClientService(
            endpoint,
            Factory.forProtocol(Protocol),
            clock=Clock(),
            prepareConnection=lambda protocol: Deferred(),
        )
        service.startService()
        self.addCleanup(service.stopService)
        self.assertRaises(
            NoTransition, endpoint.protocol.connectionLost, Failure(ConnectionDone())
        )
