# -*- test-case-name: tests.test_router -*-
"""
The message sink: decides each connection's Kafka record (topic, key,
headers) once, and owns the byte budget: bytes accepted from clients and not
yet confirmed by Kafka.  Above the high-water mark, or when the producer's
queue is full, every client is paused and listeners stop accepting; below
the low-water mark they resume, and TCP's flow control does the rest.
"""

from twisted.logger import Logger
from zope.interface import implementer

from gateway.acks import AckStream
from gateway.framing.options import ACK
from gateway.interfaces import IMessageSink, IMessageStream

__all__ = [
    "Router",
    "MessageStream",
    "LISTENER_HEADER",
    "PEER_HEADER",
    "DEFAULT_BUDGET",
]

LISTENER_HEADER = "gateway-listener"
PEER_HEADER = "gateway-peer"

#: Why listeners stop accepting while clients are paused.
BUDGET = "budget"

#: Bytes accepted and not yet confirmed that the gateway holds at most.
DEFAULT_BUDGET = 64 * 1024 * 1024

#: The options of a protocol that has none (a plugin's own factory).
_NO_OPTIONS = {}


@implementer(IMessageStream)
class MessageStream:
    """
    One connection's path to the producer, with its record fields prepared.

    Every record of a connection has the same key (listener and peer), so
    Kafka's partitioner puts them all on one partition, in order.
    """

    __slots__ = ("_produce", "_topic", "_key", "_headers", "_router", "_protocol")

    def __init__(self, router, listener, peer, protocol):
        """
        :param router: the L{Router} that opened the stream.
        :param listener: the listener's name.
        :param peer: the client's address as C{host:port}.
        :param protocol: the connection's framing protocol.
        """
        self._key = f"{listener}/{peer}".encode()
        self._headers = None
        if router.headers:
            # The listener's header is one object shared by its connections.
            self._headers = [router.listenerHeader(listener), (PEER_HEADER, peer.encode())]
        self._produce = router.producer.produce
        self._topic = router.topic
        self._router = router
        self._protocol = protocol

    def send(self, payload):
        """
        Publish one payload: the hot path, a single call to the producer's
        C{produce} (see L{gateway.interfaces.IProducerClient.produce} for its
        argument order).
        """
        self._produce(self._topic, payload, self._key, self._headers)

    def recordFields(self):
        """
        :return: C{(topic, key, headers)} of the connection's records (an
            L{gateway.acks.AckStream} builds its own records from them).
        """
        return self._topic, self._key, self._headers

    def close(self):
        """
        Forget the connection's protocol: it is no longer paused or resumed.
        """
        self._router.clients.pop(self._protocol, None)


@implementer(IMessageSink)
class Router:
    """
    Route every connection's messages to one topic through one producer, and
    keep the bytes held within the budget.

    :ivar producer: the L{gateway.kafka.producer.KafkaProducerService}.
    :ivar topic: the Kafka topic every message goes to.
    :ivar clients: the framing protocols of the open connections, oldest
        first (a L{dict} used as an ordered set).
    :ivar listeners: services with C{pauseAccepting}/C{resumeAccepting}.
    :ivar budget: the byte budget.
    :ivar paused: L{True} while clients are paused.
    :ivar lastHeldBytes: the bytes held at the last budget check.
    """

    log = Logger()

    #: Budget checks happen every this many producer polls.
    CHECK_EVERY = 4

    def __init__(
        self, producer, topic, budget=DEFAULT_BUDGET, highWater=0.8, lowWater=0.5, headers=True
    ):
        """
        :param producer: the process's one producer service; the router
            becomes its observer.
        :param topic: the Kafka topic.
        :param budget: bytes accepted and not yet confirmed that may be held.
        :param highWater: pause above this fraction of the budget.
        :param lowWater: resume below this fraction.
        :param headers: add the C{gateway-listener} and C{gateway-peer}
            headers to every record (the key names both anyway; headers cost
            librdkafka about as much as the rest of a record's path).
        """
        if not 0 < lowWater < highWater <= 1:
            raise ValueError("need 0 < lowWater < highWater <= 1")
        self.producer = producer
        self.topic = topic
        self.headers = headers
        self.budget = budget
        self.highWater = highWater
        self.lowWater = lowWater
        self.clients = {}
        self.listeners = []
        self.paused = False
        self.stopped = False
        self.lastHeldBytes = 0
        self.health = ("starting", "no health probe has answered yet")
        self._queueFull = False
        self._overBudget = False
        self._polls = 0
        self._listenerHeaders = {}
        producer.observer = self

    def openStream(self, listener, peer, producer):
        """
        See L{IMessageSink.openStream}.  A connection made while clients are
        paused starts paused.  On a listener with C{ack=on} an
        L{AckStream} carries the messages and stands in for the connection.
        """
        client = producer
        if getattr(producer, "options", _NO_OPTIONS).get(ACK):
            client = AckStream(self, producer)
        self.clients[client] = None
        if self.paused:
            client.pauseProducing()
        stream = MessageStream(self, listener, peer, client)
        return stream if client is producer else client.compose(stream)

    def listenerHeader(self, listener):
        """
        :return: the C{gateway-listener} header of a listener, made once.
        """
        header = self._listenerHeaders.get(listener)
        if header is None:
            header = self._listenerHeaders[listener] = (LISTENER_HEADER, listener.encode())
        return header

    def budgetFraction(self):
        """
        :return: the bytes held at the last check, as a fraction of the
            budget (health uses it: readiness turns false before it is full).
        """
        return self.lastHeldBytes / self.budget

    def heldBytes(self):
        """
        :return: bytes accepted and not confirmed: the producer's and the
            incomplete frames buffered in every connection.
        """
        partial = sum(client.bufferedByteCount() for client in self.clients)
        return self.producer.heldBytes() + partial

    def healthChanged(self, state, reason):
        """
        The health service's observer: remember the Kafka path's state.
        """
        self.health = (state, reason)

    # Producer observer

    def polled(self):
        """
        After a producer poll: every few polls, compare the bytes held with
        the water marks.
        """
        self._polls += 1
        if self._polls % self.CHECK_EVERY:
            return
        held = self.lastHeldBytes = self.heldBytes()
        if held > self.highWater * self.budget:
            if not self._overBudget:
                self._overBudget = True
                self._pause(
                    f"{held} bytes held, over {self.highWater:.0%} of the "
                    f"{self.budget}-byte budget"
                )
        elif self._overBudget and held < self.lowWater * self.budget:
            self._overBudget = False
            self._resume(f"{held} bytes held, under {self.lowWater:.0%} of the budget")

    def producerBlocked(self):
        """
        The producer's queue is full: pause every client.
        """
        if not self._queueFull:
            self._queueFull = True
            self._pause("the producer's queue is full")

    def producerUnblocked(self):
        """
        The producer took its backlog: resume, unless over budget.
        """
        if self._queueFull:
            self._queueFull = False
            self._resume("the producer's backlog is in its queue")

    def restoreRecord(self, record):
        """
        Give a record reported back without headers (confluent-kafka's
        delivery reports carry none) the headers this router gave it, from
        its key (C{LISTENER/PEER}).
        """
        if record.headers or not self.headers or not record.key:
            return record
        listener, sep, peer = record.key.rpartition(b"/")
        if not sep:
            return record
        return record._replace(headers=[(LISTENER_HEADER, listener), (PEER_HEADER, peer)])

    def deliveryFailed(self, record, error):
        """
        Kafka refused a record for good (already dead-lettered and logged by
        the producer); say whose it was.
        """
        headers = dict(record.headers or ())
        self.log.warn(
            "the refused record came from {peer} on {listener}",
            peer=headers.get(PEER_HEADER, b"?").decode(errors="replace"),
            listener=headers.get(LISTENER_HEADER, b"?").decode(errors="replace"),
            reason=error.code,
        )

    # Pausing

    def _pause(self, why):
        if self.paused:
            return
        self.paused = True
        self.log.warn(
            "pausing {count} client connections: {why}", count=len(self.clients), why=why
        )
        for listener in self.listeners:
            listener.pauseAccepting(BUDGET)
        for client in list(self.clients):
            client.pauseProducing()

    def _resume(self, why):
        if not self.paused or self.stopped or self._queueFull or self._overBudget:
            return
        self.paused = False
        self.log.info(
            "resuming {count} client connections: {why}", count=len(self.clients), why=why
        )
        for listener in self.listeners:
            listener.resumeAccepting(BUDGET)
        for client in list(self.clients):
            client.resumeProducing()
            if self.paused:
                # A resumed client's buffered messages filled the queue
                # again and everyone was paused, including the clients
                # already resumed; resuming the rest now would let them read
                # into an unbounded backlog.
                return

    def stopReading(self):
        """
        The gateway is stopping: pause every client for good and publish the
        whole messages their framings still buffer, so what the producer
        drains is everything that was read.
        """
        self.stopped = True
        self.paused = True
        for client in list(self.clients):
            client.pauseProducing()
            flush = getattr(client, "publishBuffered", None)
            if flush is not None:
                flush()
