# -*- test-case-name: tests.test_service -*-
"""
L{GatewayService}: the service tree of one gateway process, and the public
Python API that C{.tac} files and C{gateway.tap.makeService} share.

The producer is the first child, the health service the second, and the
listeners come after them: C{MultiService} stops children in reverse order,
so listeners stop accepting before the producer drains.
"""

from twisted.application.internet import backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from gateway.framing.options import MAX_SIZE, resolveOptions
from gateway.kafka.health import BrokerHealthService
from gateway.kafka.producer import KafkaProducerService, producerConfig
from gateway.ops.http import HTTPService
from gateway.registry import DEFAULT_BACKEND, FramingRegistry, loadBackends
from gateway.router import DEFAULT_BUDGET, Router
from gateway.server.descriptors import DEFAULT_RESERVE, DescriptorGuard, raiseDescriptorLimit
from gateway.server.factory import listenerFactory
from gateway.server.gate import ListenerGate
from gateway.server.listener import (
    ListenerConfig,
    ListenerService,
    ListenerStats,
)
from gateway.server.policy import ConnectionPolicy, splitOptions

__all__ = [
    "GatewayService",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SPOOL",
    "DEFAULT_DEAD_LETTER",
]

#: Large enough for most client messages and safely under Kafka's default
#: broker limit (C{message.max.bytes} = 1048588) with key and headers.
DEFAULT_MAX_MESSAGE_SIZE = 512 * 1024

#: Records not delivered at stop, produced first at the next start.
DEFAULT_SPOOL = "gateway-spool.jsonl"

#: Records Kafka refused for good.
DEFAULT_DEAD_LETTER = "gateway-dead-letter.jsonl"


class GatewayService(MultiService):
    """
    One producer, one router, any number of listeners.

    :ivar producer: the L{KafkaProducerService} shared by every listener.
    :ivar router: the L{Router} every connection's messages go through.
    :ivar listeners: the L{ListenerService}s, in the order added.
    :ivar descriptors: the L{DescriptorGuard}, or L{None}.
    :ivar workerIndex: this process's number among the gateway's workers
        (1 when there is one process).
    :ivar workerCount: how many worker processes share the listeners.
    """

    workerIndex = 1
    workerCount = 1

    log = Logger()

    def __init__(
        self,
        topic,
        bootstrapServers="127.0.0.1:9092",
        kafkaOptions=None,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        drainTimeout=30.0,
        reactor=None,
        backend=DEFAULT_BACKEND,
        budget=DEFAULT_BUDGET,
        spoolPath=DEFAULT_SPOOL,
        deadLetterPath=DEFAULT_DEAD_LETTER,
        healthInterval=5.0,
        headers=True,
        http=None,
        reserveDescriptors=DEFAULT_RESERVE,
    ):
        """
        :param topic: the Kafka topic every message goes to.
        :param bootstrapServers: C{host:port[,host:port...]} of the cluster.
        :param kafkaOptions: producer properties (librdkafka's names).
        :param maxMessageSize: the default message size limit of listeners.
        :param drainTimeout: seconds to wait for Kafka when stopping.
        :param reactor: the reactor; the global one when L{None}.
        :param backend: a producer backend's name (C{"confluent"},
            C{"pykafka"}) or an L{IProducerBackend}.
        :param budget: bytes accepted from clients and not yet confirmed by
            Kafka that the gateway holds at most.
        :param spoolPath: where records not delivered at stop wait for the
            next start (L{None}: nowhere, they are lost and logged).
        :param deadLetterPath: where records Kafka refused for good go
            (L{None}: only logged).
        :param healthInterval: seconds between health probes of each broker
            (L{None}: no health service).
        :param headers: add the C{gateway-listener} and C{gateway-peer}
            headers to every record.
        :param http: a server endpoint description for C{/healthz},
            C{/readyz}, C{/metrics}, C{/status.json} and the status page
            (L{None}: no HTTP).
        :param reserveDescriptors: descriptors kept for Kafka, HTTP, logs
            and the spool: listeners stop accepting before client
            connections would take them (L{None}: no guard).
        """
        MultiService.__init__(self)
        if not topic:
            raise ValueError("a Kafka topic is required")
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.maxMessageSize = _positive("maxMessageSize", maxMessageSize)
        budget = _positive("budget", budget)
        if isinstance(backend, str):
            backends = loadBackends()
            if backend not in backends:
                raise ValueError(
                    f"unknown producer backend {backend!r}; available: "
                    + ", ".join(sorted(backends))
                )
            backend = backends[backend]
        config = producerConfig(bootstrapServers, kafkaOptions, self.maxMessageSize, budget)
        backend.checkConfig(config)
        self.producer = KafkaProducerService(
            backend,
            config,
            clock=reactor,
            drainTimeout=drainTimeout,
            spoolPath=spoolPath,
            deadLetterPath=deadLetterPath,
        )
        self.producer.setServiceParent(self)
        self.router = Router(self.producer, topic, budget=budget, headers=headers)
        self.health = None
        if healthInterval is not None:
            self.health = BrokerHealthService(
                reactor,
                bootstrapServers,
                producerStatus=self._producerStatus,
                interval=healthInterval,
                # Reconnect the probe at least as often as it probes, so
                # readiness follows a recovered broker within an interval.
                retryPolicy=backoffPolicy(
                    initialDelay=0.5, maxDelay=max(healthInterval, 1.0), factor=2
                ),
            )
            self.health.addObserver(self.router.healthChanged)
            self.health.setServiceParent(self)
        self.http = None
        if http is not None:
            try:
                endpoint = serverFromString(reactor, http)
            except Exception as e:
                raise ValueError(f"malformed HTTP endpoint {http!r}: {e}") from e
            self.http = HTTPService(self, endpoint, http)
            self.http.setServiceParent(self)
        self.listeners = []
        self.descriptors = None
        if reserveDescriptors is not None:
            if (
                isinstance(reserveDescriptors, bool)
                or not isinstance(reserveDescriptors, int)
                or reserveDescriptors < 0
            ):
                raise ValueError(
                    "reserveDescriptors must be a whole number "
                    f"of descriptors, not {reserveDescriptors!r}"
                )
            self.descriptors = DescriptorGuard(self.listeners, reactor, reserve=reserveDescriptors)
        self._registry = None
        self._limitRaised = False

    def addListener(self, framing, endpoint, name=None, maxMessageSize=None, options=None):
        """
        Listen on C{endpoint} with the framing named C{framing}.

        :param framing: a framing plugin's name, e.g. C{"lines"}, or the
            dotted path C{package.module:Name} of a plugin object.
        :param endpoint: a server endpoint description, e.g.
            C{"tcp:9000:interface=127.0.0.1"}.
        :param name: the listener's name in record headers and logs; the
            framing's name by default (with C{-2}, C{-3}... when repeated).
        :param maxMessageSize: this listener's limit; the gateway's default
            when L{None} (C{options["max-size"]} also sets it).
        :param options: the framing's options and the connection options
            (L{gateway.server.policy.CONNECTION_OPTIONS}: caps, timeouts,
            keepalive, backlog), by name; values as written on the command
            line (L{str}) or Python values.
        :return: the L{ListenerService}.
        :raises gateway.registry.FramingError: for an unknown framing.
        :raises ValueError: for a malformed endpoint, option or limit.
        """
        plugin = self.registry().get(framing)
        given, connection = splitOptions(dict(options or {}))
        if maxMessageSize is not None:
            given.setdefault(MAX_SIZE, _positive("maxMessageSize", maxMessageSize))
        resolved = resolveOptions(plugin, given, self.maxMessageSize)
        policy = ConnectionPolicy.fromOptions(connection, endpoint)
        try:
            endpointObject = serverFromString(self.reactor, endpoint)
        except Exception as e:
            raise ValueError(f"malformed endpoint {endpoint!r}: {e}") from e
        name = name or self._uniqueName(plugin.name)
        stats = ListenerStats()
        config = ListenerConfig(
            name=name,
            framing=plugin.name,
            endpoint=endpoint,
            sink=self.router,
            maxMessageSize=resolved[MAX_SIZE],
            options=resolved,
            clock=self.reactor,
            stats=stats,
            gate=ListenerGate(name, policy, stats, self.reactor),
            descriptors=self.descriptors,
            proxied=endpoint.strip().lower().startswith("haproxy:"),
        )
        listener = ListenerService(config, endpointObject, listenerFactory(plugin, config))
        listener.setServiceParent(self)
        self.listeners.append(listener)
        self.router.listeners.append(listener)
        return listener

    def registry(self):
        """
        :return: the L{FramingRegistry} of this process (loaded once); its
            errors are logged when it is loaded.
        """
        if self._registry is None:
            self._registry = FramingRegistry()
            for error in self._registry.errors:
                self.log.error("framing plugin not loaded: {error}", error=error)
        return self._registry

    def privilegedStartService(self):
        """
        Raise the descriptor limit before anything binds or connects.
        """
        self._raiseDescriptorLimit()
        MultiService.privilegedStartService(self)

    def startService(self):
        """
        Start the children, then size the descriptor guard: what is open
        by then (listening sockets, logs) is not the clients'.
        """
        self._raiseDescriptorLimit()
        MultiService.startService(self)
        if self.descriptors is not None:
            self.descriptors.start()

    def stopService(self):
        """
        Stop reading from clients, then stop children: listeners close their
        ports, and the producer drains what was already read.
        """
        if self.descriptors is not None:
            self.descriptors.stop()
        self.router.stopReading()
        return MultiService.stopService(self)

    def _raiseDescriptorLimit(self):
        if self.descriptors is not None and not self._limitRaised:
            self._limitRaised = True
            raiseDescriptorLimit()

    def _producerStatus(self):
        status = self.producer.status()
        status["budgetFraction"] = self.router.budgetFraction()
        return status

    def _uniqueName(self, framing):
        taken = {listener.name for listener in self.listeners}
        name, suffix = framing, 1
        while name in taken:
            suffix += 1
            name = f"{framing}-{suffix}"
        return name


def _positive(what, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value
