# -*- test-case-name: tests.test_interfaces -*-
"""
The contracts between the gateway's pieces, and the ones plugin authors implement.

A framing plugin turns a listener's configuration into a protocol factory;
its protocols cut a byte stream into messages and hand each one to a message
stream opened on the L{IMessageSink}, which owns topic, key, headers and
back-pressure.
"""

from zope.interface import Attribute, Interface

__all__ = [
    "IFramingPlugin",
    "IMessageSink",
    "IMessageStream",
    "IProducerBackend",
    "IProducerClient",
    "IProducerEvents",
    "IRoutingPlugin",
]


class IFramingPlugin(Interface):
    """
    A named way of cutting a TCP byte stream into messages.

    Found with C{twisted.plugin.getPlugins(IFramingPlugin, gateway.plugins)};
    the object must also provide L{twisted.plugin.IPlugin}.
    """

    name = Attribute("Short name used in C{--listen NAME=ENDPOINT}, e.g. C{'lines'}.")
    description = Attribute("One line shown in C{twistd gateway --help}.")
    options = Attribute(
        "The options the framing accepts besides C{max-size}: a sequence of "
        "L{gateway.framing.options.FramingOption} (name, coercer, default, "
        "help, kind)."
    )

    def buildFactory(listener):
        """
        Build the protocol factory serving one listener.

        :param listener: a L{gateway.server.listener.ListenerConfig} naming the
            listener, its message sink, its resolved C{options} (every
            declared option plus C{max-size}) and its clock.
        :return: an L{twisted.internet.interfaces.IProtocolFactory}.
        """


class IMessageStream(Interface):
    """
    One client connection's way into Kafka, opened once per connection so that
    everything constant (topic, key, headers) is prepared once, not per message.
    """

    def send(payload):
        """
        Publish one complete message.  This is the hot path: it returns nothing
        and allocates no per-message Deferred.

        :param payload: the message, without framing.
        :type payload: L{bytes}
        """

    def close():
        """
        The connection is gone; release what the stream holds.
        """


class IMessageSink(Interface):
    """
    Where framing protocols deliver messages: it decides the Kafka record and
    pauses or resumes client connections when Kafka cannot keep up.
    """

    def openStream(listener, peer, producer):
        """
        Open the stream for a new client connection.

        :param listener: the listener's name.
        :type listener: L{str}
        :param peer: the client's address, as C{host:port}.
        :type peer: L{str}
        :param producer: the connection's L{twisted.internet.interfaces.IPushProducer}
            (the framing protocol), paused and resumed for back-pressure.
        :rtype: L{IMessageStream}
        """


class IProducerBackend(Interface):
    """
    A Kafka client library the gateway's one producer can run on (C{confluent}
    by default, C{pykafka} for clusters up to Kafka 3.9).

    Found with C{getPlugins(IProducerBackend, gateway.plugins)}.

    Optional: a backend whose C{confirmsDeliveries} is true (needed by
    listeners with C{ack=on}) makes clients, connected with
    C{delivery.report.only.error} false, with two more methods:
    C{produceTracked(topic, value, key, headers, tracker)}, which reports
    each record's outcome to C{tracker.delivered(error, value)} (L{None} or
    a C{DeliveryError}) in the order produced, and may keep a callback in
    C{tracker.deliveryCallback}; and C{produceRecord(record)} for a record
    with a C{Receipt}, which calls C{record.receipt.confirmed()} once Kafka
    confirmed it and reports a failure with L{IProducerEvents.deliveryFailed}
    carrying that same record (receipt and headers included).  A client may
    also have C{produceTrackedMany(topic, values, key, headers, seqHeader,
    tracker, first)}: a read's records numbered from C{first} (in their
    C{seqHeader} header), returning how many it took, whose outcomes it
    hands over by number: C{tracker.settleRange(first, last)} for confirmed
    ones, L{IProducerEvents.deliveryFailed} with a C{Receipt} for a failed
    one.
    """

    name = Attribute("Short name used in C{--kafka-backend}, e.g. C{'confluent'}.")
    description = Attribute("One line shown in C{twistd gateway --help}.")

    def checkConfig(config):
        """
        Judge a producer configuration without connecting anywhere.

        :param config: the librdkafka-style property dictionary.
        :raises ValueError: explaining what is wrong.
        """

    def connect(config, events, reactor):
        """
        Create a producer client.  Must not block the reactor.

        :param config: the property dictionary.
        :param events: an L{IProducerEvents} to report to, from the reactor
            thread only, during L{IProducerClient.poll}.
        :param reactor: the reactor (for backends that need threads).
        :rtype: L{IProducerClient}
        """


class IProducerClient(Interface):
    """
    One live producer of a backend.
    """

    def produce(topic, value, key=None, headers=None):
        """
        Queue one record; never blocks.  The hot path.

        Every C{produce} in the gateway (this one, the producer service's,
        the message stream's call) takes its arguments in this order, which
        is confluent-kafka's own, so that its C{Producer.produce} can be the
        client's C{produce} with no Python call in between.  The service
        passes a client C{headers} by keyword (confluent-kafka's fourth
        positional argument is the partition).

        :param topic: the topic's name.
        :type topic: L{str}
        :param value: the payload.
        :type value: L{bytes}
        :param key: the record's key, or L{None}.
        :param headers: a list of C{(name, bytes)} pairs, or L{None}.
        :raises BufferError: when the backend's queue is full (the record was
            not taken).
        :raises Exception: when the record can never be produced (e.g. too
            large); it was not taken.
        """

    def poll():
        """
        Serve pending delivery failures and errors to the events object.
        """

    def pendingCount():
        """
        :return: records taken and not yet confirmed or reported failed.
        """

    def pendingBytes():
        """
        :return: payload bytes of those records (may lag by a statistics
            interval).
        """

    def brokersUp():
        """
        :return: how many brokers the client is connected to, or L{None}
            when it does not know yet.
        """

    def bytesSent():
        """
        :return: bytes sent to the brokers by this client so far (requests
            included), or L{None} when the backend does not know.
        """

    def purge():
        """
        Give up on everything not yet confirmed: each such record is reported
        through L{IProducerEvents.deliveryFailed} with a purged error, during
        this call or the following polls, until L{pendingCount} is 0.
        """

    def close():
        """
        Release the client (after L{purge} or once nothing is pending).
        """


class IProducerEvents(Interface):
    """
    What a producer client reports to the producer service.
    """

    def deliveryFailed(record, error):
        """
        A record was not delivered.

        :param record: a L{gateway.kafka.records.Record}.
        :param error: a L{gateway.kafka.records.DeliveryError}.
        """

    def clientError(error):
        """
        A client-wide error (all brokers down, a fatal error).

        :param error: a L{gateway.kafka.records.DeliveryError}.
        """


class IRoutingPlugin(Interface):
    """
    Routing that a topic template cannot say: asked once per connection for
    that connection's router, which chooses the topic, key and extra headers
    once, or per message when the plugin declares it must.

    Found with C{getPlugins(IRoutingPlugin, gateway.plugins)} (the object
    must also provide L{twisted.plugin.IPlugin}), or named by a dotted path
    C{package.module:Name}; a listener uses it with C{routing=NAME}.
    """

    name = Attribute("Short name used in C{routing=NAME}, e.g. C{'json-type'}.")
    description = Attribute("One line shown in C{twistd gateway --help}.")
    perMessage = Attribute(
        "L{True} when the connection routers choose per message: their "
        "C{route(payload)} is then called for every message (a Python call "
        "on the hot path, see docs/routing.md for its cost)."
    )

    def connectionRouter(connection):
        """
        Route one connection.  Called once, when the connection is made.

        :param connection: a L{gateway.routing.RoutingContext}: the
            listener, the peer, and the C{topic}, C{key} and C{headers} the
            listener's own options chose.
        :return: an object with C{topic} (L{str}), C{key} (L{bytes} or
            L{None}) and C{headers} (a list of C{(str, bytes)} or L{None},
            including C{connection.headers} to keep the gateway's) used for
            every message; and, when C{perMessage}, a C{route(payload)}
            returning C{(topic, key, headers)} for one message.
        """
