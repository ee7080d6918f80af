# -*- test-case-name: tests.test_service -*-
"""
L{GatewayService}: the service tree of one gateway process, and the public
Python API that C{.tac} files and C{gateway.tap.makeService} share.

The producer is the first child and the listeners come after it:
C{MultiService} stops children in reverse order, so listeners stop accepting
before the producer drains.
"""

from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from gateway.kafka.producer import KafkaProducerService, producerConfig
from gateway.listener import ListenerConfig, ListenerService
from gateway.framing.options import MAX_SIZE, resolveOptions
from gateway.registry import FramingRegistry
from gateway.router import Router

__all__ = ["GatewayService", "DEFAULT_MAX_MESSAGE_SIZE"]

#: Large enough for most client messages and safely under Kafka's default
#: broker limit (C{message.max.bytes} = 1048588) with key and headers.
DEFAULT_MAX_MESSAGE_SIZE = 512 * 1024


class GatewayService(MultiService):
    """
    One producer, one router, any number of listeners.

    :ivar producer: the L{KafkaProducerService} shared by every listener.
    :ivar router: the L{Router} every connection's messages go through.
    :ivar listeners: the L{ListenerService}s, in the order added.
    """

    log = Logger()

    def __init__(
        self,
        topic,
        bootstrapServers="127.0.0.1:9092",
        kafkaOptions=None,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        drainTimeout=30.0,
        reactor=None,
        producerFactory=None,
    ):
        """
        :param topic: the Kafka topic every message goes to.
        :param bootstrapServers: C{host:port[,host:port...]} of the cluster.
        :param kafkaOptions: librdkafka properties passed to the producer.
        :param maxMessageSize: the default message size limit of listeners.
        :param drainTimeout: seconds to wait for Kafka when stopping.
        :param reactor: the reactor; the global one when L{None}.
        :param producerFactory: builds the producer from its configuration
            (tests); C{confluent_kafka.Producer} by default.
        """
        MultiService.__init__(self)
        if not topic:
            raise ValueError("a Kafka topic is required")
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.maxMessageSize = _positive("maxMessageSize", maxMessageSize)
        self.producer = KafkaProducerService(
            producerConfig(bootstrapServers, kafkaOptions, self.maxMessageSize),
            clock=reactor,
            producerFactory=producerFactory,
            drainTimeout=drainTimeout,
        )
        self.producer.setServiceParent(self)
        self.router = Router(self.producer, topic)
        self.listeners = []
        self._registry = None

    def addListener(self, framing, endpoint, name=None, maxMessageSize=None,
                    options=None):
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
        :param options: the framing's options, by name; values as written on
            the command line (L{str}) or Python values.
        :return: the L{ListenerService}.
        :raises gateway.registry.FramingError: for an unknown framing.
        :raises ValueError: for a malformed endpoint, option or limit.
        """
        plugin = self.registry().get(framing)
        given = dict(options or {})
        if maxMessageSize is not None:
            given.setdefault(MAX_SIZE, _positive("maxMessageSize", maxMessageSize))
        resolved = resolveOptions(plugin, given, self.maxMessageSize)
        try:
            endpointObject = serverFromString(self.reactor, endpoint)
        except Exception as e:
            raise ValueError(f"malformed endpoint {endpoint!r}: {e}") from e
        config = ListenerConfig(
            name=name or self._uniqueName(plugin.name),
            framing=plugin.name,
            endpoint=endpoint,
            sink=self.router,
            maxMessageSize=resolved[MAX_SIZE],
            options=resolved,
            clock=self.reactor,
        )
        listener = ListenerService(config, endpointObject, plugin.buildFactory(config))
        listener.setServiceParent(self)
        self.listeners.append(listener)
        return listener

    def registry(self):
        """
        :return: the L{FramingRegistry} of this process (loaded once); its
            errors are logged when it is loaded.
        """
        if self._registry is None:
            self._registry = FramingRegistry()
            for error in self._registry.errors:
                self.log.error("{error}", error=error)
        return self._registry

    def stopService(self):
        """
        Stop reading from clients, then stop children: listeners close their
        ports, and the producer drains what was already read.
        """
        self.router.stopReading()
        return MultiService.stopService(self)

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
