# -*- test-case-name: tests.test_router -*-
"""
The message sink: decides each connection's Kafka record (topic, key,
headers) once, and pauses or resumes every client when the producer
cannot take more.
"""

from functools import partial

from twisted.logger import Logger
from zope.interface import implementer

from gateway.interfaces import IMessageSink, IMessageStream

__all__ = ["Router", "MessageStream", "LISTENER_HEADER", "PEER_HEADER"]

LISTENER_HEADER = "gateway-listener"
PEER_HEADER = "gateway-peer"


@implementer(IMessageStream)
class MessageStream:
    """
    One connection's path to the producer, with its record fields prepared.

    Every record of a connection has the same key (listener and peer), so
    Kafka's partitioner puts them all on one partition, in order.

    :ivar send: publish one payload; a C{partial} of the producer's
        C{produce}, so the hot path is a single call.
    """

    __slots__ = ("send", "_router", "_protocol")

    def __init__(self, router, listener, peer, protocol):
        """
        :param router: the L{Router} that opened the stream.
        :param listener: the listener's name.
        :param peer: the client's address as C{host:port}.
        :param protocol: the connection's framing protocol.
        """
        key = f"{listener}/{peer}".encode()
        headers = [
            (LISTENER_HEADER, listener.encode()),
            (PEER_HEADER, peer.encode()),
        ]
        self.send = partial(router.producer.produce, router.topic, key, headers)
        self._router = router
        self._protocol = protocol

    def close(self):
        """
        Forget the connection's protocol: it is no longer paused or resumed.
        """
        self._router.clients.pop(self._protocol, None)


@implementer(IMessageSink)
class Router:
    """
    Route every connection's messages to one topic through one producer.

    :ivar producer: the L{gateway.kafka.producer.KafkaProducerService}.
    :ivar topic: the Kafka topic every message goes to.
    :ivar clients: the framing protocols of the open connections, oldest
        first (a L{dict} used as an ordered set).
    :ivar paused: L{True} while clients are paused for back-pressure.
    """

    log = Logger()

    def __init__(self, producer, topic):
        """
        :param producer: the process's one
            L{gateway.kafka.producer.KafkaProducerService}; the router becomes
            its observer.
        :param topic: the Kafka topic.
        """
        self.producer = producer
        self.topic = topic
        self.clients = {}
        self.paused = False
        self.stopped = False
        producer.observer = self

    def openStream(self, listener, peer, producer):
        """
        See L{IMessageSink.openStream}.  A connection made while clients are
        paused starts paused.
        """
        self.clients[producer] = None
        if self.paused:
            producer.pauseProducing()
        return MessageStream(self, listener, peer, producer)

    def producerBlocked(self):
        """
        The producer's queue is full: stop reading from every client, so
        TCP's flow control slows the senders instead of memory growing.
        """
        if not self.paused:
            self.paused = True
            self.log.warn(
                "producer queue full: pausing {count} client connections",
                count=len(self.clients),
            )
            for client in list(self.clients):
                client.pauseProducing()

    def stopReading(self):
        """
        The gateway is stopping: pause every client for good, so what the
        producer drains is all there is.
        """
        self.stopped = True
        self.paused = True
        for client in list(self.clients):
            client.pauseProducing()

    def producerUnblocked(self):
        """
        The producer took its backlog: resume every client (unless stopping).
        """
        if self.paused and not self.stopped:
            self.paused = False
            self.log.info(
                "producer queue drained: resuming {count} client connections",
                count=len(self.clients),
            )
            for client in list(self.clients):
                client.resumeProducing()
                if self.paused:
                    # A resumed client's buffered messages filled the queue
                    # again, and producerBlocked paused everyone, including
                    # the clients already resumed; resuming the rest now
                    # would let them read into an unbounded backlog.
                    return

    def deliveryFailed(self, error, message):
        """
        Kafka refused a record for good: log it with its provenance.

        :param error: the L{confluent_kafka.KafkaError}.
        :param message: the failed L{confluent_kafka.Message}.
        """
        headers = dict(message.headers() or ())
        self.log.error(
            "delivery to {topic} failed for a {size}-byte message from "
            "{peer} on {listener}: {reason}",
            topic=message.topic(),
            size=len(message.value() or b""),
            peer=headers.get(PEER_HEADER, b"?").decode(errors="replace"),
            listener=headers.get(LISTENER_HEADER, b"?").decode(errors="replace"),
            reason=error.str(),
            code=error.name(),
        )
