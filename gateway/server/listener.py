# -*- test-case-name: tests.server.test_listener -*-
"""
A listener: one endpoint, one framing, one protocol factory.

L{ListenerService} binds in C{privilegedStartService} and raises there if it
cannot, so a port that fails to bind aborts start-up instead of being logged
and forgotten (a bare C{StreamServerEndpointService} only logs it).

Twisted's TCP ports accept connections in batches that grow with the load
(by 20 after every full one), and a batch does not stop when the port stops
reading.  Where a L{gateway.server.descriptors.DescriptorGuard} keeps the
room for client connections, the listener sets each batch, just before it
starts, to at most the room free then (shared with the other listeners),
and accepts nothing when there is none: a batch that overshot the room
would close clients waiting in the backlog, whose data was already sent.
"""

from collections import Counter
from dataclasses import dataclass, field

from twisted.application.service import Service
from twisted.logger import Logger

from gateway.addresses import formatAddress
from gateway.compat.twisted import acceptBatch, beforeEachAcceptBatch, setAcceptBatch
from gateway.server.policy import configurePort

__all__ = [
    "ListenerConfig",
    "ListenerService",
    "ListenerStats",
    "listenNow",
]


@dataclass
class ListenerStats:
    """
    What a listener counts (read by the metrics and the status page, never
    per message).

    :ivar frameErrors: connections closed for bad input, by reason (see
        L{gateway.framing.base}).
    :ivar accepted: connections accepted.
    :ivar closed: connections closed.
    :ivar bytesReceived: bytes read from clients.
    :ivar refused: connections closed at once by a cap, by reason (see
        L{gateway.server.policy}).
    :ivar closedBy: connections the gateway closed for idleness or age, by
        reason.
    """

    frameErrors: Counter = field(default_factory=Counter)
    accepted: int = 0
    closed: int = 0
    bytesReceived: int = 0
    refused: Counter = field(default_factory=Counter)
    closedBy: Counter = field(default_factory=Counter)

    @property
    def open(self):
        """
        Connections open now.
        """
        return self.accepted - self.closed


@dataclass(frozen=True)
class ListenerConfig:
    """
    What a framing plugin needs to build a listener's protocol factory.

    :ivar name: the listener's name, sent in each record's headers.
    :ivar framing: the framing plugin's name.
    :ivar endpoint: the endpoint description the listener binds.
    :ivar sink: the L{gateway.interfaces.IMessageSink} receiving messages.
    :ivar maxMessageSize: the largest message accepted, in bytes.
    :ivar options: the framing's options, resolved: every option it declares
        and C{max-size}.
    :ivar clock: an L{twisted.internet.interfaces.IReactorTime} for framings
        that need timers.
    :ivar stats: the listener's counters.
    :ivar gate: the L{gateway.server.policy.ListenerGate} applying the
        listener's connection caps and timeouts, or L{None} (no caps).
    :ivar descriptors: the process's
        L{gateway.server.descriptors.DescriptorGuard}, or L{None}.
    :ivar proxied: whether connections start with a PROXY protocol header
        (a C{haproxy:} endpoint): the client's address is known only once
        it has been read.
    :ivar tls: the L{gateway.server.tls.TLSSettings} of a TLS listener, or
        L{None}.
    """

    name: str
    framing: str
    endpoint: str
    sink: object
    maxMessageSize: int
    options: dict = field(default_factory=dict)
    clock: object = None
    stats: ListenerStats = field(default_factory=ListenerStats)
    gate: object = None
    descriptors: object = None
    proxied: bool = False
    tls: object = None


def listenNow(endpoint, factory, description):
    """
    Listen, and return the port at once or raise: a server endpoint's
    C{listen} Deferred has already fired for every stream endpoint Twisted
    ships.

    :param description: the endpoint description, for the error.
    :return: the L{twisted.internet.interfaces.IListeningPort}.
    """
    outcome = []
    endpoint.listen(factory).addBoth(outcome.append)
    if not outcome:
        raise RuntimeError(f"endpoint {description!r} did not bind synchronously")
    result = outcome[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


class ListenerService(Service):
    """
    Listen on one server endpoint with one factory while running.

    :ivar port: the L{twisted.internet.interfaces.IListeningPort} once bound.
    """

    log = Logger()

    def __init__(self, config, endpoint, factory):
        """
        :param config: the listener's L{ListenerConfig}.
        :param endpoint: an L{twisted.internet.interfaces.IStreamServerEndpoint}.
        :param factory: the protocol factory built by the framing plugin.
        """
        self.config = config
        self.name = config.name
        self.endpoint = endpoint
        self.factory = factory
        self.port = None
        self.pausedFor = set()

    def privilegedStartService(self):
        """
        Bind now, before twistd drops privileges, and raise if binding fails.
        """
        Service.privilegedStartService(self)
        self.port = listenNow(self.endpoint, self.factory, self.config.endpoint)
        applied = {}
        if self.config.gate is not None:
            applied = configurePort(self.port, self.config.gate.policy)
        self.log.info(
            "listener {listener} ({framing}) listening on {address}{settings}",
            listener=self.name,
            framing=self.config.framing,
            address=formatAddress(self.port.getHost()),
            endpoint=self.config.endpoint,
            settings="".join(f", {k} {v}" for k, v in applied.items()),
        )
        if self.config.descriptors is not None:
            port = self.port
            beforeEachAcceptBatch(port, lambda: self._fitAcceptBatch(port))
        if self.pausedFor:
            self.port.stopReading()

    def startService(self):
        """
        Bind if C{privilegedStartService} was not called (e.g. a bare
        C{startService} from a test or a parent that skips it).
        """
        if self.port is None:
            self.privilegedStartService()
        Service.startService(self)

    @property
    def accepting(self):
        """
        Whether the listener accepts connections now.
        """
        return self.port is not None and not self.pausedFor

    def pauseAccepting(self, reason):
        """
        Stop accepting connections for now (they wait in the kernel's
        backlog); for ports that can (TCP and UNIX ports can).

        :param reason: why, e.g. C{"budget"} or C{"descriptors"}: the
            listener accepts again once every reason is withdrawn.
        """
        first = not self.pausedFor
        self.pausedFor.add(reason)
        if first and self.port is not None and hasattr(self.port, "stopReading"):
            self.port.stopReading()

    def _fitAcceptBatch(self, port):
        """
        Before each read of C{port}'s listening socket: accept at most as
        many connections as the descriptor room has free (Twisted's batch
        is otherwise left to grow as it does), or none, stopping every
        listener, when it is full.

        :return: whether to read the listening socket now.
        """
        guard = self.config.descriptors
        room = guard.room
        if room is None:
            return True
        if room == 0:
            # Read in the same reactor iteration as the batch that filled
            # the room, or after the room shrank (a recount).
            guard.stopAccepting()
            return False
        if acceptBatch(port) > room:
            setAcceptBatch(port, room)
        return True

    def resumeAccepting(self, reason):
        """
        Withdraw one reason not to accept; accept again if it was the last.
        """
        if reason not in self.pausedFor:
            return
        self.pausedFor.discard(reason)
        if not self.pausedFor and self.port is not None and hasattr(self.port, "startReading"):
            self.port.startReading()

    def stopService(self):
        """
        Stop accepting new connections; established ones stay open.

        :return: a L{Deferred} firing when the port is closed, or L{None}.
        """
        Service.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
