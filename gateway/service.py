# -*- test-case-name: tests.test_service -*-
"""
L{GatewayService}: the service tree of one gateway process, and the public
Python API that C{.tac} files and C{gateway.tap.makeService} share.

The producer is the first child, the health service the second, and the
listeners come after them: C{MultiService} stops children in reverse order,
so listeners stop accepting before the producer drains.

A stop that could not keep every record (the spool or the dead-letter file
could not be written) says how many in its last log line and, under
C{twistd}, makes the process exit with L{EXIT_UNKEPT} (see
L{exitWithStatus}).
"""

import os
import sys

from twisted.application.internet import backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from gateway.framing.options import ACK, MAX_SIZE
from gateway.kafka.health import BrokerHealthService
from gateway.kafka.producer import KafkaProducerService
from gateway.kafka.security import securityFromConfig
from gateway.ops.http import HTTPService
from gateway.router import Router
from gateway.server.descriptors import DescriptorGuard, raiseDescriptorLimit
from gateway.server.factory import listenerFactory
from gateway.server.gate import ListenerGate
from gateway.server.listener import (
    ListenerConfig,
    ListenerService,
    ListenerStats,
)
from gateway.server.tls import CertificateReloader, ServerTLS, tlsFactory
from gateway.settings import (
    DEFAULT_BACKEND,
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_BUDGET,
    DEFAULT_DEAD_LETTER,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RESERVE,
    DEFAULT_SPOOL,
    SettingsCheck,
)

__all__ = [
    "EXIT_UNKEPT",
    "GatewayService",
    "exitWithStatus",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SPOOL",
    "DEFAULT_DEAD_LETTER",
]

#: The exit status of a process whose stop lost records it could not write
#: to the spool or the dead-letter file.
EXIT_UNKEPT = 3


class GatewayService(MultiService):
    """
    One producer, one router, any number of listeners.

    :ivar producer: the L{KafkaProducerService} shared by every listener.
    :ivar router: the L{Router} every connection's messages go through.
    :ivar listeners: the L{ListenerService}s, in the order added.
    :ivar descriptors: the L{DescriptorGuard}, or L{None}.
    :ivar settings: the L{GatewaySettings<gateway.settings.GatewaySettings>}
        it was built from (without the listeners added since).
    :ivar workerIndex: this process's number among the gateway's workers
        (1 when there is one process).
    :ivar workerCount: how many worker processes share the listeners.
    :ivar certificates: the L{CertificateReloader} of the TLS listeners, or
        L{None} when there is none.
    :ivar exitStatus: 0, or L{EXIT_UNKEPT} once a stop lost records.
    """

    log = Logger()

    def __init__(
        self,
        topic,
        bootstrapServers=DEFAULT_BOOTSTRAP_SERVERS,
        kafkaOptions=None,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        drainTimeout=DEFAULT_DRAIN_TIMEOUT,
        reactor=None,
        backend=DEFAULT_BACKEND,
        budget=DEFAULT_BUDGET,
        spoolPath=DEFAULT_SPOOL,
        deadLetterPath=DEFAULT_DEAD_LETTER,
        healthInterval=DEFAULT_HEALTH_INTERVAL,
        headers=True,
        http=None,
        reserveDescriptors=DEFAULT_RESERVE,
        incompleteCap=None,
        *,
        settings=None,
    ):
        """
        :param topic: the Kafka topic of listeners that name none (their
            C{topic=} option); L{None} when every listener names one.
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
        :param incompleteCap: bytes of incomplete frames held at most, all
            connections together (L{None}: half the budget; see
            L{gateway.server.incomplete}).
        :param settings: L{GatewaySettings<gateway.settings.GatewaySettings>}
            already checked (see L{fromSettings}), which the other
            parameters (but C{reactor}) are then not.
        :raises ValueError: naming the setting that is wrong
            (L{SettingsError<gateway.settings.SettingsError>}, or the
            backend's own error for producer properties).
        """
        MultiService.__init__(self)
        if settings is None:
            settings = SettingsCheck().gateway(
                topic=topic,
                bootstrapServers=bootstrapServers,
                kafkaOptions=kafkaOptions,
                maxMessageSize=maxMessageSize,
                drainTimeout=drainTimeout,
                backend=backend,
                budget=budget,
                spoolPath=spoolPath,
                deadLetterPath=deadLetterPath,
                healthInterval=healthInterval,
                headers=headers,
                http=http,
                reserveDescriptors=reserveDescriptors,
                incompleteCap=incompleteCap,
            )
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.settings = settings
        self.maxMessageSize = settings.maxMessageSize
        self.workerIndex = settings.workerIndex
        self.workerCount = settings.workers
        self.producer = KafkaProducerService(
            settings.backend,
            settings.config,
            clock=reactor,
            drainTimeout=settings.drainTimeout,
            spoolPath=settings.spoolPath,
            deadLetterPath=settings.deadLetterPath,
        )
        self.producer.setServiceParent(self)
        self.router = Router(
            self.producer,
            settings.topic,
            budget=settings.budget,
            headers=settings.headers,
            incompleteCap=settings.incompleteCap,
        )
        self.health = None
        healthInterval = settings.healthInterval
        if healthInterval is not None:
            self.health = BrokerHealthService(
                reactor,
                settings.bootstrapServers,
                producerStatus=self._producerStatus,
                interval=healthInterval,
                # Reconnect the probe at least as often as it probes, so
                # readiness follows a recovered broker within an interval.
                retryPolicy=backoffPolicy(
                    initialDelay=0.5, maxDelay=max(healthInterval, 1.0), factor=2
                ),
                security=securityFromConfig(settings.config),
            )
            self.health.setServiceParent(self)
        self.http = None
        if settings.http is not None:
            endpoint = serverFromString(reactor, settings.http)
            self.http = HTTPService(self, endpoint, settings.http)
            self.http.setServiceParent(self)
        self.listeners = []
        self.descriptors = None
        if settings.reserveDescriptors is not None:
            self.descriptors = DescriptorGuard(
                self.listeners, reactor, reserve=settings.reserveDescriptors
            )
        self.certificates = None
        self._registryLogged = False
        self._limitRaised = False
        self.exitStatus = 0
        for listener in settings.listeners:
            self.addCheckedListener(listener)

    @classmethod
    def fromSettings(cls, settings, reactor=None):
        """
        Build the gateway from settings already checked, with their
        listeners, without checking anything again.

        :param settings: L{GatewaySettings<gateway.settings.GatewaySettings>}
            from L{checkSettings<gateway.settings.checkSettings>}.
        :param reactor: the reactor; the global one when L{None}.
        """
        return cls(settings.topic, reactor=reactor, settings=settings)

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
            keepalive, backlog, and C{topic}, C{key}, C{routing}: see
            docs/routing.md), by name; values as written on the command
            line (L{str}) or Python values.
        :return: the L{ListenerService}.
        :raises gateway.registry.FramingError: for an unknown framing.
        :raises ValueError: for a malformed endpoint, option or limit.
        """
        checked = self.settings.check.listener(
            framing,
            endpoint,
            name=name,
            maxMessageSize=maxMessageSize,
            options=options,
            default=self.maxMessageSize,
            topic=self.settings.topic,
        )
        return self.addCheckedListener(checked)

    def addCheckedListener(self, listener):
        """
        Listen as settings already checked say.

        :param listener: L{ListenerSettings<gateway.settings.ListenerSettings>}
            from L{SettingsCheck.listener<gateway.settings.SettingsCheck.listener>}.
        :return: the L{ListenerService}.
        """
        self.registry()
        plugin = listener.plugin
        if listener.options.get(ACK):
            self.producer.confirmDeliveries()
        name = listener.name or self._uniqueName(plugin.name)
        stats = ListenerStats()
        config = ListenerConfig(
            name=name,
            framing=plugin.name,
            endpoint=listener.endpoint,
            sink=self.router,
            maxMessageSize=listener.options[MAX_SIZE],
            options=listener.options,
            clock=self.reactor,
            stats=stats,
            gate=ListenerGate(name, listener.policy, stats, self.reactor),
            descriptors=self.descriptors,
            proxied=listener.endpoint.strip().lower().startswith("haproxy:"),
            tls=listener.tls,
        )
        endpoint = serverFromString(self.reactor, listener.endpoint)
        factory = listenerFactory(plugin, config)
        if listener.tls is not None:
            factory = tlsFactory(self._serverTLS(name, listener.tls), factory, self.reactor)
        service = ListenerService(config, endpoint, factory)
        service.setServiceParent(self)
        self.listeners.append(service)
        self.router.listeners.append(service)
        self.router.routes[name] = listener.route
        return service

    def _serverTLS(self, name, settings):
        """
        :return: a TLS listener's L{ServerTLS}, reloaded on C{SIGHUP} by
            C{self.certificates} (made with the first).
        """
        if self.certificates is None:
            self.certificates = CertificateReloader(self.reactor)
            self.certificates.setServiceParent(self)
        tls = ServerTLS(name, settings)
        self.certificates.listeners.append(tls)
        return tls

    def registry(self):
        """
        :return: the L{FramingRegistry} of this process (loaded once); its
            errors are logged when it is loaded.
        """
        registry = self.settings.check.registry
        if not self._registryLogged:
            self._registryLogged = True
            for error in registry.errors:
                self.log.error("framing plugin not loaded: {error}", error=error)
        return registry

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
        stopped = MultiService.stopService(self)
        stopped.addCallback(self._stopped)
        return stopped

    def _stopped(self, result):
        if self.producer.unkept:
            self.exitStatus = EXIT_UNKEPT
        return result

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


def exitWithStatus(reactor, service, pidfile=None, exit=os._exit):
    """
    Make the process exit with C{service.exitStatus} once the reactor has
    shut down, when it is not 0: twistd itself exits 0 (or by the signal
    that stopped it) whatever its services did.

    The log is written unbuffered by twistd's log file, and the standard
    streams are flushed first.  Exiting here skips twistd's own stop, so
    its pidfile is removed here, as twistd would.

    :param reactor: the reactor that runs C{service}.
    :param service: a L{GatewayService}.
    :param pidfile: twistd's C{--pidfile}, if any.
    :param exit: L{os._exit}.
    """

    def atShutdown():
        if service.exitStatus:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            if pidfile:
                try:
                    os.remove(pidfile)
                except OSError:
                    pass
            exit(service.exitStatus)

    reactor.addSystemEventTrigger("after", "shutdown", atShutdown)
