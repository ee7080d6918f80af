# -*- test-case-name: tests.test_router -*-
"""
The message sink: decides each connection's Kafka record (topic, key,
headers) once, and owns the byte budget: bytes accepted from clients and not
yet confirmed by Kafka.  Above the high-water mark, or when the producer's
queue is full, every client is paused and listeners stop accepting; below
the low-water mark they resume, and TCP's flow control does the rest.

Bytes of incomplete frames are not in the budget: a paused client cannot
complete its frame, so counting them would let clients that never finish a
frame pause everyone for good.  They have their own caps instead
(L{gateway.server.incomplete}): one frame's is the message size limit,
enforced by each framing; the total's is checked with the budget, and when
exceeded the connections holding the most incomplete bytes are closed.
"""

from cryptography.x509.oid import NameOID
from twisted.logger import Logger
from zope.interface import implementer

from gateway.acks import AckStream
from gateway.framing.options import ACK
from gateway.interfaces import IMessageSink, IMessageStream
from gateway.routing import Route, RoutingContext
from gateway.server.incomplete import IncompleteCap

__all__ = [
    "Router",
    "MessageStream",
    "RoutedStream",
    "LISTENER_HEADER",
    "PEER_HEADER",
    "CLIENT_CERT_HEADER",
    "DEFAULT_BUDGET",
]

LISTENER_HEADER = "gateway-listener"
PEER_HEADER = "gateway-peer"
#: The verified client certificate's subject (L{gateway.server.tls}).
CLIENT_CERT_HEADER = "gateway-client-cert"

#: Why listeners stop accepting while clients are paused.
BUDGET = "budget"

#: Bytes accepted and not yet confirmed that the gateway holds at most.
DEFAULT_BUDGET = 64 * 1024 * 1024

#: The options of a protocol that has none (a plugin's own factory).
_NO_OPTIONS = {}

#: The route of a listener given no routing options.
_DEFAULT_ROUTE = Route()

#: The route of an ack-mode listener given none: keyed by session.
_ACK_ROUTE = Route(key="session")


def clientCommonName(protocol):
    """
    :param protocol: a TLS connection's protocol, its handshake done.
    :return: the common name of the client's verified certificate (the
        first, if several), C{""} for a certificate without one, or L{None}
        without a certificate.
    """
    certificate = protocol.transport.getPeerCertificate()
    if certificate is None:
        return None
    names = certificate.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _takeNone(topic, values, key, headers):
    """
    The C{produceMany} of a producer without one: it takes nothing, so the
    framing sends each payload on its own.
    """
    return 0


def _addCounts(totals, counts):
    for topic, (messages, size) in counts.items():
        before = totals.get(topic, (0, 0))
        totals[topic] = (before[0] + messages, before[1] + size)


@implementer(IMessageStream)
class MessageStream:
    """
    One connection's path to the producer, with its record fields prepared
    once, when the connection is made, by the listener's route
    (L{Router.connectionRoute}).

    With the default key (C{key=connection}) every record of a connection
    has the same key (listener and peer), so Kafka's partitioner puts them
    all on one partition, in order.

    The verified client certificate's subject goes into every record's
    C{gateway-client-cert} header; the router can give it back to records
    reported without headers only when the key names the connection
    (L{Router.restoreRecord}).

    :ivar messages: messages sent (per-topic figures add these up on scrape).
    :ivar bytes: their payload bytes.
    """

    __slots__ = (
        "_produce",
        "_produceMany",
        "_topic",
        "_key",
        "_headers",
        "_router",
        "_protocol",
        "_context",
        "messages",
        "bytes",
    )

    def __init__(self, router, protocol, route):
        """
        :param router: the L{Router} that opened the stream.
        :param protocol: the connection's framing protocol.
        :param route: the connection's L{gateway.routing.RoutingContext}
            (L{Router.connectionRoute}).
        """
        self._context = route
        self._topic = route.topic
        self._key = route.key
        self._headers = route.headers
        subject = getattr(protocol, "clientSubject", None)
        if subject is not None:
            self._headers = [*(self._headers or ()), (CLIENT_CERT_HEADER, subject)]
            if route.chosen is None and route.key == route.connectionKey():
                router.clientSubjects[self._key] = subject
        self._produce = router.producer.produce
        self._produceMany = getattr(router.producer, "produceMany", _takeNone)
        self._router = router
        self._protocol = protocol
        self.messages = self.bytes = 0
        router.streams[self] = None

    def send(self, payload):
        """
        Publish one payload: the hot path, a single call to the producer's
        C{produce} (see L{gateway.interfaces.IProducerClient.produce} for its
        argument order), after two counts.
        """
        self.messages += 1
        self.bytes += len(payload)
        self._produce(self._topic, payload, self._key, self._headers)

    def sendMany(self, payloads):
        """
        Publish a read's payloads with one call to the producer's
        C{produceMany}, as far as it takes them now; the framing sends the
        rest one by one (L{send}), which keeps the order and lets the
        producer hold them.

        :param payloads: a L{list} or L{tuple} of payloads.
        :return: how many were taken (and counted).
        """
        taken = self._produceMany(self._topic, payloads, self._key, self._headers)
        if taken:
            self.messages += taken
            self.bytes += sum(map(len, payloads if taken == len(payloads) else payloads[:taken]))
        return taken

    def counts(self):
        """
        :return: C{{topic: (messages, bytes)}} sent so far (nothing while
            the topic waits for a session).
        """
        if self._topic is None:
            return {}
        return {self._topic: (self.messages, self.bytes)}

    def recordFields(self):
        """
        :return: C{(topic, key, headers)} of the connection's records (an
            L{gateway.acks.AckStream} builds its own records from them).
        """
        return self._topic, self._key, self._headers

    def sessionStarted(self, sessionId):
        """
        An ack-mode session's handshake arrived: resolve the connection's
        route again, once, with the session known (C{key=session},
        C{{session}}).

        :param sessionId: the session's id (L{bytes}, printable ASCII).
        :return: the new L{recordFields}.
        """
        context = self._context
        context.session = sessionId.decode("ascii")
        if context.chosen is None:
            route = self._router.routes.get(context.listener, _ACK_ROUTE)
            route.resolve(context, self._router.topic)
            self._topic, self._key = context.topic, context.key
        return self.recordFields()

    def close(self):
        """
        Forget the connection's protocol: it is no longer paused or resumed;
        its counts join the router's totals.
        """
        router = self._router
        router.clients.pop(self._protocol, None)
        router.clientSubjects.pop(self._context.connectionKey(), None)
        router.closeStream(self)


class RoutedStream(MessageStream):
    """
    The stream of a connection whose routing plugin chooses per message:
    one Python call to its C{route(payload)} before each C{produce}.
    """

    __slots__ = ("_route", "_counts")

    #: Each payload is routed on its own: no batch (see L{send}).
    sendMany = None

    def __init__(self, router, protocol, route):
        """
        :param route: the connection's L{gateway.routing.RoutingContext},
            whose C{chosen} connection router has a C{route(payload)}.
        """
        MessageStream.__init__(self, router, protocol, route)
        self._route = route.chosen.route
        self._counts = {}

    def send(self, payload):
        """
        Publish one payload where the plugin's router says.
        """
        topic, key, headers = self._route(payload)
        counts = self._counts.get(topic)
        if counts is None:
            counts = self._counts[topic] = [0, 0]
        counts[0] += 1
        counts[1] += len(payload)
        self._produce(topic, payload, key, headers)

    def counts(self):
        """
        :return: C{{topic: (messages, bytes)}} sent so far.
        """
        return {topic: tuple(pair) for topic, pair in self._counts.items()}


@implementer(IMessageSink)
class Router:
    """
    Route every connection's messages through one producer as its
    listener's route says, and keep the bytes held within the budget.

    :ivar producer: the L{gateway.kafka.producer.KafkaProducerService}.
    :ivar topic: the Kafka topic of listeners that name none (or L{None}).
    :ivar routes: listener name to its L{gateway.routing.Route} (a listener
        without one routes to C{topic}, keyed by connection).
    :ivar streams: the open connections' message streams (a L{dict} used as
        a set), whose counts L{topicCounts} adds up.
    :ivar clients: the framing protocols of the open connections, oldest
        first (a L{dict} used as an ordered set).
    :ivar listeners: services with C{pauseAccepting}/C{resumeAccepting}.
    :ivar budget: the byte budget.
    :ivar paused: L{True} while clients are paused.
    :ivar lastHeldBytes: the bytes held at the last budget check.
    :ivar incomplete: the L{IncompleteCap} on the bytes of incomplete
        frames, checked with the budget.
    """

    log = Logger()

    #: Budget checks happen every this many producer polls.
    CHECK_EVERY = 4

    def __init__(
        self,
        producer,
        topic,
        budget=DEFAULT_BUDGET,
        highWater=0.8,
        lowWater=0.5,
        headers=True,
        incompleteCap=None,
    ):
        """
        :param producer: the process's one producer service; the router
            becomes its observer.
        :param topic: the Kafka topic of listeners that name none (L{None}
            when every listener does).
        :param budget: bytes accepted and not yet confirmed that may be held.
        :param highWater: pause above this fraction of the budget.
        :param lowWater: resume below this fraction.
        :param headers: add the C{gateway-listener} and C{gateway-peer}
            headers to every record (the key names both anyway; headers cost
            librdkafka about as much as the rest of a record's path).
        :param incompleteCap: bytes of incomplete frames held at most, all
            connections together (L{None}: the default for the budget, see
            L{gateway.server.incomplete.defaultCap}).
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
        self.incomplete = IncompleteCap(budget, incompleteCap, getattr(producer, "clock", None))
        self._queueFull = False
        self._overBudget = False
        self._polls = 0
        self._listenerHeaders = {}
        #: Open connections' verified client certificate subjects, by key.
        self.clientSubjects = {}
        self.routes = {}
        self.streams = {}
        self._closedCounts = {}
        producer.observer = self

    def openStream(self, listener, peer, producer):
        """
        See L{IMessageSink.openStream}.  A connection made while clients are
        paused starts paused.  On a listener with C{ack=on} an
        L{AckStream} carries the messages and stands in for the connection.
        """
        client = producer
        ack = getattr(producer, "options", _NO_OPTIONS).get(ACK)
        if ack:
            client = AckStream(self, producer)
        self.clients[client] = None
        if self.paused:
            client.pauseProducing()
        spec = self.routes.get(listener, _ACK_ROUTE if ack else _DEFAULT_ROUTE)
        known = {}
        if spec.needs("client_cert_cn"):
            known["clientCertCN"] = clientCommonName(producer)
        route = self.connectionRoute(listener, peer, spec, **known)
        if route.chosen is not None and spec.plugin.perMessage:
            stream = RoutedStream(self, client, route)
        else:
            stream = MessageStream(self, client, route)
        return stream if client is producer else client.compose(stream)

    def connectionRoute(self, listener, peer, spec=None, **known):
        """
        Route one connection: the listener's topic template and key
        strategy resolved, then its routing plugin's connection router
        asked, once.

        :param spec: the listener's L{gateway.routing.Route} (default: its
            own in L{routes}).
        :param known: further fields of the L{gateway.routing.RoutingContext}
            known by then (C{session}, C{clientCertCN}): a stream whose
            route needs them opens once they are.

        :return: a L{gateway.routing.RoutingContext} with the C{topic},
            C{key} and C{headers} of the connection's records (and, when a
            plugin routes it, C{chosen}: the plugin's connection router).
        """
        headers = None
        if self.headers:
            # The listener's header is one object shared by its connections.
            headers = [self.listenerHeader(listener), (PEER_HEADER, peer.encode())]
        route = self.routes.get(listener, _DEFAULT_ROUTE) if spec is None else spec
        context = RoutingContext.forConnection(listener, peer, headers)
        for name, value in known.items():
            setattr(context, name, value)
        context = route.resolve(context, self.topic)
        if route.plugin is not None:
            chosen = route.plugin.connectionRouter(context)
            context.chosen = chosen
            context.topic, context.key, context.headers = chosen.topic, chosen.key, chosen.headers
        return context

    def closeStream(self, stream):
        """
        A stream's connection is gone: keep its counts in the totals.
        """
        if self.streams.pop(stream, False) is None:
            _addCounts(self._closedCounts, stream.counts())

    def topicCounts(self):
        """
        Messages and payload bytes sent per topic, closed connections'
        and open ones' added up now (read on scrape, never per message).

        :return: C{{topic: (messages, bytes)}}.
        """
        totals = dict(self._closedCounts)
        for stream in self.streams:
            _addCounts(totals, stream.counts())
        return totals

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
        :return: bytes accepted and not confirmed by Kafka (the producer's):
            the budget's measure.  Incomplete frames are not in it (see
            L{incomplete}).
        """
        return self.producer.heldBytes()

    # Producer observer

    def polled(self):
        """
        After a producer poll: every few polls, compare the bytes held with
        the water marks.
        """
        self._polls += 1
        if self._polls % self.CHECK_EVERY:
            return
        self.incomplete.check(self.clients)
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
        delivery reports carry none; the C extension's failures carry
        theirs) the headers this router gave it, from
        its key, when that key names the connection (C{LISTENER/PEER} of a
        listener with C{key=connection} and no routing plugin): the
        provenance headers always, C{gateway-client-cert} while its
        connection is open.  Records keyed otherwise (C{peer-host},
        C{none}, a plugin's key) are handed back as they are: their key
        does not say which connection sent them.  Ack-mode records never
        need this: their stream hands them back whole.
        """
        if record.headers or not record.key:
            return record
        listener, sep, peer = record.key.rpartition(b"/")
        if not sep:
            return record
        route = (
            self.routes.get(listener.decode("utf-8", "replace")) if self.routes else _DEFAULT_ROUTE
        )
        if route is None or route.key != "connection" or route.plugin is not None:
            return record
        subject = self.clientSubjects.get(record.key)
        headers = [] if subject is None else [(CLIENT_CERT_HEADER, subject)]
        if self.headers:
            headers[:0] = [(LISTENER_HEADER, listener), (PEER_HEADER, peer)]
        return record._replace(headers=headers) if headers else record

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
