# -*- test-case-name: tests.kafka.test_health -*-
"""
L{BrokerHealthService}: is the live path to Kafka working?

One persistent connection per bootstrap broker, each owned by a
C{ClientService} that reconnects with backoff, secured as the producer's
(TLS, SASL: L{gateway.kafka.security}), carries an ApiVersions probe every
C{interval} seconds; the producer's own figures complete the picture.
The result is C{starting}, C{ready}, C{degraded} or C{down}; the rules and
thresholds are in C{docs/health.md}.
"""

import re
from collections.abc import Mapping

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.addresses import formatHostPort
from gateway.kafka._guard import GuardedEndpoint
from gateway.kafka._probe import DEFAULT_TIMEOUT, KafkaProbeFactory, ProbeError
from gateway.kafka.sasl import AuthenticationFailed, authenticate

__all__ = [
    "BrokerHealthService",
    "DEGRADED",
    "DOWN",
    "READY",
    "STARTING",
    "parseBootstrap",
    "tcpEndpoint",
]

STARTING = "starting"
READY = "ready"
DEGRADED = "degraded"
DOWN = "down"

#: Seconds between health probes of each broker.
DEFAULT_INTERVAL = 5.0

_ADDRESS = re.compile(
    r"(?:[A-Za-z_]+://)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^\s:,\[\]]+)):(?P<port>\d+)"
)


def parseBootstrap(bootstrap):
    """
    Split a Kafka bootstrap list into addresses.

    :param bootstrap: C{host:port[,host:port...]}; IPv6 as C{[addr]:port};
        a C{SCHEME://} prefix is accepted and ignored.
    :return: a list of C{(host, port)}, duplicates dropped, order kept.
    :raises ValueError: for an empty list or a malformed address.
    """
    brokers = []
    for part in (p.strip() for p in bootstrap.split(",")):
        if not part:
            continue
        match = _ADDRESS.fullmatch(part)
        port = int(match["port"]) if match else 0
        if not 0 < port < 65536:
            raise ValueError(f"bad broker address {part!r}: use host:port or [ipv6]:port")
        address = (match["v6"] or match["host"], port)
        if address not in brokers:
            brokers.append(address)
    if not brokers:
        raise ValueError(f"no broker address in {bootstrap!r}")
    return brokers


def tcpEndpoint(reactor, host, port, timeout):
    """
    The default endpoint to a broker: plain TCP; a name is resolved (and
    every address tried) by L{HostnameEndpoint}, an IP address is used as is.

    :param timeout: seconds a connection attempt may take.
    """
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout)
    return HostnameEndpoint(reactor, host, port, timeout)


class _Broker:
    """
    What the service knows about one bootstrap broker.

    :ivar up: L{True} once its last probe was answered, L{False} once it
        failed, L{None} before either.
    :ivar protocol: the accepted connection's protocol, or L{None}.
    """

    def __init__(self, name):
        self.name = name
        self.service = None
        self.reset()
        self.probesOk = self.probesFailed = self.connections = 0

    def reset(self):
        self.up = None
        self.latency = None
        self.error = None
        self.protocol = None
        self.connectionId = None
        self.inFlight = False


class BrokerHealthService(MultiService):
    """
    Probe every bootstrap broker over its own persistent connection and
    combine the answers with the producer's figures into one state.

    :ivar state: L{STARTING}, L{READY}, L{DEGRADED} or L{DOWN}.
    :ivar reason: why, in words.
    :ivar brokerLatency: broker name (C{host:port}) to the round-trip time
        of its last answered probe in seconds, L{None} while it is down or
        not probed yet.  Updated in place.
    :ivar probesOk: probes answered without error, all brokers.
    :ivar probesFailed: failed checks, all brokers: timeouts, errors, lost
        connections, and rounds where a broker was not connected.
    :ivar producer: the last figures read from C{producerStatus}.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        bootstrap,
        producerStatus=None,
        interval=DEFAULT_INTERVAL,
        probeTimeout=DEFAULT_TIMEOUT,
        latencyThreshold=1.0,
        budgetThreshold=0.5,
        deliveryAgeThreshold=30.0,
        retryPolicy=None,
        endpointFactory=None,
        security=None,
    ):
        """
        :param reactor: an L{IReactorTCP} and L{IReactorTime}: connections,
            timers, reconnect delays and latencies all use it.
        :param bootstrap: C{host:port[,host:port...]}, as given to the
            producer.
        :param producerStatus: L{None}, or a callable returning a mapping or
            an object with C{brokersUp}, C{lastDeliveryAge}, C{pending} and
            C{budgetFraction} (see C{docs/health.md}).
        :param interval: seconds between probes on each connection.
        :param probeTimeout: seconds a probe (and a connection attempt) may
            take before the broker counts as down.
        :param latencyThreshold: a probe slower than this (seconds) makes
            the state C{degraded}.
        :param budgetThreshold: a C{budgetFraction} over this makes the
            state C{degraded}.
        :param deliveryAgeThreshold: records pending while the last delivery
            is older than this (seconds) make the state C{degraded}.
        :param retryPolicy: the reconnect delay policy;
            L{None} means C{backoffPolicy(0.5, 30, 2)}.
        :param endpointFactory: a callable taking C{(reactor, host, port,
            timeout)} and returning an L{IStreamClientEndpoint}, e.g. for
            TLS; L{None} means L{tcpEndpoint}, wrapped in TLS when
            C{security} asks for it.
        :param security: a L{gateway.kafka.security.KafkaSecurity}: each
            connection authenticates with its SASL credentials before its
            first probe; L{None}: plain text, no SASL.
        :raises ValueError: for a bad bootstrap list, or an interval or
            probe timeout that is not positive.
        """
        super().__init__()
        if not (interval > 0 and probeTimeout > 0):
            raise ValueError("the health interval and probe timeout must be positive")
        self._reactor = reactor
        self.interval = interval
        self.probeTimeout = probeTimeout
        self.latencyThreshold = latencyThreshold
        self.budgetThreshold = budgetThreshold
        self.deliveryAgeThreshold = deliveryAgeThreshold
        self._producerStatus = producerStatus
        self._observers = []
        self.brokerLatency = {}
        self.probesOk = self.probesFailed = 0
        self.producer = {}
        self._statusFailed = False
        self._loop = None
        if retryPolicy is None:
            retryPolicy = backoffPolicy(initialDelay=0.5, maxDelay=30, factor=2)
        self._security = security
        if endpointFactory is None:
            endpointFactory = (
                tcpEndpoint if security is None else security.endpointFactory(tcpEndpoint)
            )
        self.brokers = {}
        for host, port in parseBootstrap(bootstrap):
            name = formatHostPort(host, port)
            broker = self.brokers[name] = _Broker(name)
            factory = KafkaProbeFactory(
                reactor,
                probeTimeout,
                onConnectionLost=lambda p, why, b=broker: self._connectionLost(b, p, why),
            )
            endpoint = GuardedEndpoint(
                endpointFactory(reactor, host, port, probeTimeout),
                broker.name,
                lambda why, b=broker: self._connectFailed(b, why),
            )
            broker.service = ClientService(
                endpoint,
                factory,
                retryPolicy=retryPolicy,
                clock=reactor,
                prepareConnection=lambda p, b=broker: self._prepare(b, p),
            )
            broker.service.setServiceParent(self)
        self._reset()

    def addObserver(self, observer):
        """
        Call C{observer(state, reason)} after every change of state.  An
        observer that raises is logged and kept.
        """
        self._observers.append(observer)

    def removeObserver(self, observer):
        """
        Stop calling C{observer}.
        """
        self._observers.remove(observer)

    def isReady(self):
        """
        :return: whether the service runs and its state is C{ready}.
        """
        return bool(self.running) and self.state == READY

    def status(self):
        """
        :return: a snapshot for readiness pages and metrics: C{state},
            C{reason}, C{ready}, C{probesOk}, C{probesFailed}, C{producer}
            and, per broker name, C{up}, C{latency}, C{error}, C{probesOk},
            C{probesFailed}, C{connections}.
        """
        fields = ("up", "latency", "error", "probesOk", "probesFailed", "connections")
        return {
            "state": self.state,
            "reason": self.reason,
            "ready": self.isReady(),
            "probesOk": self.probesOk,
            "probesFailed": self.probesFailed,
            "producer": dict(self.producer),
            "brokers": {b.name: {f: getattr(b, f) for f in fields} for b in self.brokers.values()},
        }

    def startService(self):
        """
        Connect to every broker and start the probe timer.
        """
        self._reset()
        super().startService()
        self._loop = LoopingCall(self._round)
        self._loop.clock = self._reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("Kafka health timer stopped", f)
        )

    def stopService(self):
        """
        Stop the timer and close every connection.

        :return: a L{Deferred} firing once the connections are closed.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()

    def _reset(self):
        self.state, self.reason = STARTING, "no probe answered yet"
        self._answered = self._roundDone = False
        self._pendingSince = None
        for broker in self.brokers.values():
            broker.reset()
            self.brokerLatency[broker.name] = None

    def _prepare(self, broker, protocol):
        # A new connection: it serves only once a first probe is answered.
        def accepted(result):
            broker.protocol = protocol
            broker.connectionId = protocol.connectionId
            broker.connections += 1
            return result

        def rejected(failure):
            protocol.abort()
            return failure

        return self._probe(broker, protocol, first=True).addCallbacks(accepted, rejected)

    def _round(self):
        try:
            for broker in self.brokers.values():
                if broker.inFlight:
                    continue
                if broker.protocol is None:
                    broker.probesFailed += 1
                    self.probesFailed += 1
                    self._brokerDown(broker, broker.error or "not connected")
                    continue
                self._probe(broker, broker.protocol).addErrback(lambda f: None)
            self._roundDone = True
            self._evaluate()
        except Exception:
            self.log.failure("Kafka health round failed")

    def _probe(self, broker, protocol, first=False):
        broker.inFlight = True
        security = self._security
        if first and security is not None and security.sasl:
            d = authenticate(protocol, security.mechanism, security.username, security.password)
            d.addCallback(lambda _: protocol.probe())
        else:
            d = protocol.probe()
        return d.addBoth(self._probed, broker)

    def _probed(self, result, broker):
        broker.inFlight = False
        if not self.running:
            return result
        if not isinstance(result, Failure) and result.errorCode:
            result = Failure(ProbeError(f"ApiVersions error code {result.errorCode}"))
        if isinstance(result, Failure):
            if result.check(AuthenticationFailed) and broker.error != result.getErrorMessage():
                # Retrying cannot help: say so once, not at every reconnection.
                self.log.error(
                    "Kafka health: {broker}: {error}", broker=broker.name, error=result.value
                )
            self._brokerDown(broker, result.getErrorMessage())
            broker.probesFailed += 1
            self.probesFailed += 1
        else:
            broker.up, broker.error, broker.latency = True, None, result.latency
            self.brokerLatency[broker.name] = result.latency
            broker.probesOk += 1
            self.probesOk += 1
            self._answered = True
        self._evaluate()
        return result

    def _connectFailed(self, broker, reason):
        if self.running and not reason.check(CancelledError):
            self._brokerDown(broker, f"cannot connect: {reason.getErrorMessage()}")
            self._evaluate()
        return reason

    def _connectionLost(self, broker, protocol, reason):
        if protocol.connectionId != broker.connectionId:
            return  # a connection whose first probe failed: already counted
        broker.protocol = broker.connectionId = None
        if self.running and broker.up is not False:  # else keep the first reason
            self._brokerDown(broker, f"connection lost: {reason.getErrorMessage()}")
            self._evaluate()

    def _brokerDown(self, broker, why):
        broker.up, broker.error, broker.latency = False, why, None
        self.brokerLatency[broker.name] = None

    def _evaluate(self):
        old = self.state
        self.state, self.reason = self._decide()
        if self.state == old:
            return
        emit = self.log.info if self.state == READY else self.log.warn
        emit("Kafka health {old} -> {new}: {reason}", old=old, new=self.state, reason=self.reason)
        for observer in list(self._observers):
            try:
                observer(self.state, self.reason)
            except Exception:
                self.log.failure("Kafka health observer {observer!r} failed", observer=observer)

    def _decide(self):
        brokers = list(self.brokers.values())
        down = [b for b in brokers if b.up is False]
        up = [b for b in brokers if b.up]
        unknown = [b.name for b in brokers if b.up is None]
        if unknown and (not self._roundDone or not (up or self._answered)):
            return STARTING, f"waiting for a first answer from {', '.join(unknown)}"
        downText = ", ".join(f"{b.name} ({b.error})" for b in down)
        if not up:
            return DOWN, f"no broker answers the probe: {downText}"
        problems = []
        if down:
            problems.append(f"{len(down)} of {len(brokers)} brokers down: {downText}")
        slow = [b for b in up if b.latency > self.latencyThreshold]
        if slow:
            problems.append(
                f"probe latency over {self.latencyThreshold:g} s: "
                + ", ".join(f"{b.name} {b.latency:.3f} s" for b in slow)
            )
        problems += self._producerProblems()
        if problems:
            return DEGRADED, "; ".join(problems)
        slowest = max(b.latency for b in up)
        return READY, (
            f"{len(up)} of {len(brokers)} brokers answer, slowest probe {slowest * 1000:.1f} ms"
        )

    def _readProducer(self):
        if self._producerStatus is None:
            return {}
        try:
            status = self._producerStatus()
        except Exception:
            if not self._statusFailed:
                self.log.failure("Kafka health: producer status failed; ignoring it")
            self._statusFailed = True
            return {}
        self._statusFailed = False
        names = ("brokersUp", "lastDeliveryAge", "pending", "budgetFraction")
        if isinstance(status, Mapping):
            return {name: status.get(name) for name in names}
        return {name: getattr(status, name, None) for name in names}

    def _producerProblems(self):
        self.producer = figures = self._readProducer()
        problems = []
        fraction = figures.get("budgetFraction")
        if fraction is not None and fraction > self.budgetThreshold:
            problems.append(f"byte budget {fraction:.0%} used, over {self.budgetThreshold:.0%}")
        pending = figures.get("pending") or 0
        if pending <= 0:
            self._pendingSince = None
            return problems
        # Stalled: records have waited, and nothing was delivered, for that
        # long.  Counting from when records started to wait (as seen at the
        # rounds) keeps an idle gateway's first record from looking stalled.
        now = self._reactor.seconds()
        if self._pendingSince is None:
            self._pendingSince = now
        stalled = now - self._pendingSince
        age = figures.get("lastDeliveryAge")
        if age is not None:
            stalled = min(stalled, age)
        if stalled > self.deliveryAgeThreshold:
            problems.append(
                f"{pending} records pending, none delivered for {stalled:.0f} s "
                f"(over {self.deliveryAgeThreshold:g} s)"
            )
        if figures.get("brokersUp") == 0:
            problems.append(f"{pending} records pending and the producer has no broker up")
        return problems
