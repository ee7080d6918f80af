# -*- test-case-name: tests.test_router -*-
"""
Tests for L{Router}: the record each connection produces, and
back-pressure across connections.
"""

from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.interfaces import IMessageSink, IMessageStream
from gateway.kafka.records import DeliveryError, Record
from gateway.router import LISTENER_HEADER, PEER_HEADER, Router
from gateway.routing import Route, RoutingPlugin
from tests.support.listeners import RecordingListener
from tests.support.logs import captureLogs, eventsFrom


class RecordingProducerService:
    def __init__(self):
        self.records = []
        self.observer = None

    def produce(self, topic, value, key=None, headers=None):
        self.records.append((topic, key, headers, value))


class FakeClient:
    def __init__(self):
        self.state = "producing"

    def pauseProducing(self):
        self.state = "paused"

    def resumeProducing(self):
        self.state = "producing"


class RouterTests(SynchronousTestCase):
    """
    L{Router}.
    """

    def setUp(self):
        self.producer = RecordingProducerService()
        self.router = Router(self.producer, "events")

    def test_interfaces(self):
        """
        The router is an L{IMessageSink} and its streams L{IMessageStream}s.
        """
        verifyObject(IMessageSink, self.router)
        verifyObject(IMessageStream, self.router.openStream("l", "h:1", FakeClient()))

    def test_observesProducer(self):
        """
        The router makes itself the producer's observer.
        """
        self.assertIs(self.producer.observer, self.router)

    def test_recordFields(self):
        """
        Every record of a connection goes to the topic with the listener and
        the peer in its headers and a key that keeps the connection on one
        partition.
        """
        stream = self.router.openStream("lines", "10.0.0.1:5000", FakeClient())
        stream.send(b"a")
        stream.send(b"b")
        [(topic, key, headers, value), second] = self.producer.records
        self.assertEqual((topic, value, second[3]), ("events", b"a", b"b"))
        self.assertEqual(key, b"lines/10.0.0.1:5000")
        self.assertEqual(second[1], key)
        self.assertEqual(
            dict(headers),
            {LISTENER_HEADER: b"lines", PEER_HEADER: b"10.0.0.1:5000"},
        )

    def test_restoreRecord(self):
        """
        A record reported back without headers gets the router's headers
        back from its key; records with headers, or from a router without
        headers, are left alone.
        """
        from gateway.kafka.records import Record

        bare = Record("t", b"lines/[::1]:5000", [], b"v")
        self.assertEqual(
            self.router.restoreRecord(bare).headers,
            [(LISTENER_HEADER, b"lines"), (PEER_HEADER, b"[::1]:5000")],
        )
        kept = Record("t", b"a/b", [("x", b"y")], b"v")
        self.assertIs(self.router.restoreRecord(kept), kept)
        plain = Router(RecordingProducerService(), "t", headers=False)
        self.assertIs(plain.restoreRecord(bare), bare)

    def test_restoreRecordListenerWithSlash(self):
        """
        A listener whose name holds a C{/} gets its whole name back: the key
        is split at its last C{/}, since a peer's C{host:port} never holds
        one.
        """
        bare = Record("t", b"edge/lines/10.0.0.1:5000", [], b"v")
        self.assertEqual(
            self.router.restoreRecord(bare).headers,
            [(LISTENER_HEADER, b"edge/lines"), (PEER_HEADER, b"10.0.0.1:5000")],
        )

    def test_listenerHeaderShared(self):
        """
        The connections of one listener share one C{gateway-listener} header
        object (made once per listener, not per connection); another
        listener gets its own.
        """
        first = self.router.openStream("lines", "h:1", FakeClient())
        second = self.router.openStream("lines", "h:2", FakeClient())
        other = self.router.openStream("netstring", "h:3", FakeClient())
        for stream in (first, second, other):
            stream.send(b"x")
        [one, two, three] = [headers[0] for (_, _, headers, _) in self.producer.records]
        self.assertIs(one, two)
        self.assertEqual(three, (LISTENER_HEADER, b"netstring"))

    def test_closeTwice(self):
        """
        Closing a stream a second time is harmless, and the other
        connections are still paused and resumed.
        """
        client, other = FakeClient(), FakeClient()
        stream = self.router.openStream("l", "h:1", client)
        self.router.openStream("l", "h:2", other)
        stream.close()
        stream.close()
        self.router.producerBlocked()
        self.assertEqual((client.state, other.state), ("producing", "paused"))

    def test_waterMarksChecked(self):
        """
        The water marks must satisfy M{0 < lowWater < highWater <= 1}: a
        high-water mark of exactly 1 is accepted, a low-water mark of 0, equal
        marks or a high-water mark over 1 are refused.
        """
        producer = RecordingProducerService()
        self.assertEqual(Router(producer, "t", lowWater=0.5, highWater=1).highWater, 1)
        for low, high in [(0, 0.8), (0.5, 0.5), (0.5, 1.5), (0.9, 0.8)]:
            with self.assertRaises(ValueError):
                Router(producer, "t", lowWater=low, highWater=high)

    def test_deliveryFailedNamesTheClient(self):
        """
        A record Kafka refused for good is logged as a warning naming its
        peer, its listener and the error code; a record without headers is
        logged with C{?} for both, and undecodable bytes do not stop it.
        """
        events = captureLogs(self)
        record = Record(
            "t", b"k", [(LISTENER_HEADER, b"lines"), (PEER_HEADER, b"10.0.0.1:5")], b"v"
        )
        self.router.deliveryFailed(record, DeliveryError("MSG_SIZE_TOO_LARGE", "too large"))
        self.router.deliveryFailed(
            Record("t", b"k", None, b"v"), DeliveryError("TOPIC_AUTHORIZATION_FAILED", "no")
        )
        self.router.deliveryFailed(
            Record("t", b"k", [(PEER_HEADER, b"\xff"), (LISTENER_HEADER, b"\xfe")], b"v"),
            DeliveryError("X", "x"),
        )
        warnings = eventsFrom(events, "gateway.router", "warn")
        self.assertEqual(
            [(e["peer"], e["listener"], e["reason"]) for e in warnings],
            [
                ("10.0.0.1:5", "lines", "MSG_SIZE_TOO_LARGE"),
                ("?", "?", "TOPIC_AUTHORIZATION_FAILED"),
                ("\ufffd", "\ufffd", "X"),
            ],
        )
        line = formatEvent(warnings[0])
        self.assertIn("10.0.0.1:5", line)
        self.assertIn("lines", line)

    def test_pauseAndResumeLogged(self):
        """
        Pausing is a warning and resuming an info event, each carrying the
        number of client connections and why, and rendering both.
        """
        events = captureLogs(self)
        for i in range(3):
            self.router.openStream("l", f"h:{i}", FakeClient())
        self.router.producerBlocked()
        self.router.producerUnblocked()
        [paused] = eventsFrom(events, "gateway.router", "warn")
        [resumed] = eventsFrom(events, "gateway.router", "info")
        self.assertEqual(
            (paused["count"], paused["why"], resumed["count"], resumed["why"]),
            (3, "the producer's queue is full", 3, "the producer's backlog is in its queue"),
        )
        self.assertIn("3", formatEvent(paused))
        self.assertIn("the producer's queue is full", formatEvent(paused))
        self.assertIn("3", formatEvent(resumed))
        self.assertIn("the producer's backlog is in its queue", formatEvent(resumed))

    def test_withoutHeaders(self):
        """
        A router told not to add headers sends records without any, keyed
        all the same.
        """
        router = Router(RecordingProducerService(), "events", headers=False)
        router.openStream("lines", "10.0.0.1:5000", FakeClient()).send(b"a")
        [(topic, key, headers, value)] = router.producer.records
        self.assertEqual((key, headers, value), (b"lines/10.0.0.1:5000", None, b"a"))

    def test_blockPausesEveryClient(self):
        """
        When the producer blocks, every open connection is paused; when it
        unblocks they resume.  A closed connection is left alone.
        """
        clients = [FakeClient() for i in range(3)]
        streams = [self.router.openStream("l", f"h:{i}", c) for i, c in enumerate(clients)]
        streams[2].close()
        self.router.producerBlocked()
        self.assertEqual([c.state for c in clients], ["paused", "paused", "producing"])
        self.router.producerUnblocked()
        self.assertEqual([c.state for c in clients], ["producing"] * 3)

    def test_blockedAgainWhileResuming(self):
        """
        If resuming one client (the oldest connection is resumed first) fills
        the producer again with its buffered messages, the clients not yet
        resumed stay paused and every client ends paused.
        """
        router = self.router

        class Refiller(FakeClient):
            def resumeProducing(self):
                FakeClient.resumeProducing(self)
                router.producerBlocked()

        clients = [Refiller()] + [FakeClient() for i in range(3)]
        for i, client in enumerate(clients):
            router.openStream("l", f"h:{i}", client)
        router.producerBlocked()
        router.producerUnblocked()
        self.assertTrue(router.paused)
        self.assertEqual([c.state for c in clients], ["paused"] * 4)

    def test_newConnectionWhileBlockedStartsPaused(self):
        """
        A connection made while clients are paused starts paused.
        """
        self.router.producerBlocked()
        client = FakeClient()
        self.router.openStream("l", "h:1", client)
        self.assertEqual(client.state, "paused")

    def test_stopReadingIsFinal(self):
        """
        Once the gateway stops reading, the producer unblocking does not
        resume clients.
        """
        client = FakeClient()
        self.router.openStream("l", "h:1", client)
        self.router.stopReading()
        self.router.producerUnblocked()
        self.assertEqual(client.state, "paused")

    def test_stoppedRouterStaysPaused(self):
        """
        Once the gateway stops reading, the router reports itself paused, a
        connection opened afterwards starts paused, and the producer
        blocking does not pause (or log) anything again.
        """
        events = captureLogs(self)
        self.router.stopReading()
        late = FakeClient()
        self.router.openStream("l", "h:2", late)
        self.router.producerBlocked()
        self.assertEqual((self.router.paused, late.state), (True, "paused"))
        self.assertEqual(eventsFrom(events, "gateway.router"), [])


class BatchingProducerService(RecordingProducerService):
    """
    A producer with C{produceMany} that takes at most C{room} values per
    call, recording each call.
    """

    def __init__(self, room):
        RecordingProducerService.__init__(self)
        self.room = room
        self.batches = []

    def produceMany(self, topic, values, key, headers):
        taken = values[: self.room]
        self.batches.append((topic, key, headers, list(taken)))
        return len(taken)


class SendManyTests(SynchronousTestCase):
    """
    L{gateway.router.MessageStream.sendMany}: a read's payloads in one
    call to the producer's C{produceMany}.
    """

    def test_oneCallWithTheConnectionsFields(self):
        """
        The payloads go to C{produceMany} in one call with the connection's
        topic, key and headers; it returns how many were taken.
        """
        producer = BatchingProducerService(room=10)
        stream = Router(producer, "events").openStream("lines", "10.0.0.1:5000", FakeClient())
        self.assertEqual(stream.sendMany([b"a", b"bb"]), 2)
        [(topic, key, headers, values)] = producer.batches
        self.assertEqual((topic, key, values), ("events", b"lines/10.0.0.1:5000", [b"a", b"bb"]))
        self.assertEqual(dict(headers), {LISTENER_HEADER: b"lines", PEER_HEADER: b"10.0.0.1:5000"})
        self.assertEqual(producer.records, [])

    def test_countsAddUpTakenOnly(self):
        """
        Only what C{produceMany} took is counted, messages and bytes, and
        the counts add up over reads.
        """
        producer = BatchingProducerService(room=2)
        stream = Router(producer, "events").openStream("lines", "h:1", FakeClient())
        self.assertEqual(stream.sendMany([b"a", b"bb", b"cccc"]), 2)
        self.assertEqual(stream.counts(), {"events": (2, 3)})
        self.assertEqual(stream.sendMany([b"ddd"]), 1)
        self.assertEqual(stream.counts(), {"events": (3, 6)})

    def test_producerWithoutProduceMany(self):
        """
        A producer without C{produceMany} takes nothing in one call: the
        framing sends each payload on its own.
        """
        producer = RecordingProducerService()
        stream = Router(producer, "events").openStream("lines", "h:1", FakeClient())
        self.assertEqual(stream.sendMany([b"a"]), 0)
        self.assertEqual(stream.counts(), {"events": (0, 0)})


class HeldProducer:
    """
    A producer service holding a settable number of bytes.
    """

    def __init__(self):
        self.held = 0
        self.observer = None

    def heldBytes(self):
        return self.held

    def produce(self, *args, **kwargs):
        pass


class BufferingClient(FakeClient):
    """
    A client protocol with bytes of incomplete frames buffered.
    """

    def __init__(self, buffered=0):
        FakeClient.__init__(self)
        self.buffered = buffered
        self.pauses = self.resumes = 0

    def bufferedByteCount(self):
        return self.buffered

    def pauseProducing(self):
        self.pauses += 1
        FakeClient.pauseProducing(self)

    def resumeProducing(self):
        self.resumes += 1
        FakeClient.resumeProducing(self)


class BudgetTests(SynchronousTestCase):
    """
    L{Router.polled}: the byte budget's water marks, checked every
    L{Router.CHECK_EVERY} producer polls.
    """

    def setUp(self):
        self.producer = HeldProducer()
        self.router = Router(self.producer, "events", budget=1000, highWater=0.8, lowWater=0.5)
        self.client = BufferingClient()
        self.router.openStream("l", "h:1", self.client)
        self.listener = RecordingListener()
        self.router.listeners.append(self.listener)

    def check(self, held):
        """
        Hold C{held} bytes and poll until the router has checked them once.
        """
        self.producer.held = held
        for _ in range(Router.CHECK_EVERY):
            self.router.polled()

    def test_checkedEveryFewPolls(self):
        """
        The bytes held are read only at every L{Router.CHECK_EVERY}th poll:
        over the high-water mark, nothing happens at the polls before it.
        """
        self.producer.held = 900
        for _ in range(Router.CHECK_EVERY - 1):
            self.router.polled()
        self.assertEqual((self.router.paused, self.router.lastHeldBytes), (False, 0))
        self.router.polled()
        self.assertEqual((self.router.paused, self.router.lastHeldBytes), (True, 900))

    def test_highWaterMarkIsExclusive(self):
        """
        Exactly at the high-water mark (80 % of the budget) clients go on;
        one byte over it, every client is paused and listeners stop
        accepting, for the budget.
        """
        self.check(800)
        self.assertEqual(
            (self.router.paused, self.client.state, self.listener.calls), (False, "producing", [])
        )
        self.check(801)
        self.assertEqual(
            (self.router.paused, self.client.state, self.listener.calls),
            (True, "paused", [("pause", "budget")]),
        )

    def test_bandBetweenMarksKeepsState(self):
        """
        Between the marks nothing changes: clients that were producing go
        on, clients that were paused stay paused, and a repeated check over
        the mark pauses nobody twice.
        """
        self.check(700)
        self.assertFalse(self.router.paused)
        self.check(900)
        self.check(950)
        self.check(600)
        self.check(500)
        self.assertEqual(
            (self.router.paused, self.client.pauses, self.client.resumes), (True, 1, 0)
        )
        self.assertEqual(self.listener.calls, [("pause", "budget")])

    def test_lowWaterMarkResumes(self):
        """
        Below the low-water mark (50 %), clients resume and listeners accept
        again, once.
        """
        self.check(900)
        self.check(499)
        self.check(100)
        self.assertEqual(
            (self.router.paused, self.client.state, self.client.resumes), (False, "producing", 1)
        )
        self.assertEqual(self.listener.calls, [("pause", "budget"), ("resume", "budget")])

    def test_budgetCrossingsLogged(self):
        """
        Crossing the high-water mark logs why with the bytes held and the
        mark; falling under the low-water mark logs the bytes held.
        """
        events = captureLogs(self)
        self.check(901)
        self.check(499)
        [paused] = eventsFrom(events, "gateway.router", "warn")
        [resumed] = eventsFrom(events, "gateway.router", "info")
        self.assertIn("901 bytes held", paused["why"])
        self.assertIn("80%", paused["why"])
        self.assertIn("499 bytes held", resumed["why"])
        self.assertIn("50%", resumed["why"])

    def test_incompleteFramesNotInTheBudget(self):
        """
        Bytes of incomplete frames are not in the budget (pausing cannot
        bring them down): 500 + 301 does not pause.
        """
        self.client.buffered = 301
        self.check(500)
        self.assertEqual((self.router.lastHeldBytes, self.router.paused), (500, False))
        self.assertEqual(self.router.incomplete.lastBytes, 301)
        self.assertEqual(self.router.budgetFraction(), 0.5)

    def test_incompleteCapChecked(self):
        """
        Bytes of incomplete frames over their cap (half the budget by
        default) close the connections holding the most; the others stay
        and nobody is paused.
        """
        self.assertEqual(self.router.incomplete.cap, 500)
        closed = []
        self.client.abandon = closed.append
        other = BufferingClient(200)
        other.abandon = closed.append
        self.router.openStream("l", "h:2", other)
        self.client.buffered = 400
        self.check(0)
        self.assertEqual((closed, self.router.paused), (["incomplete-cap"], False))

    def test_incompleteCapGiven(self):
        """
        The cap can be given.
        """
        router = Router(self.producer, "events", budget=1000, incompleteCap=7)
        self.assertEqual(router.incomplete.cap, 7)

    def test_queueFullKeepsPausedBelowLowWater(self):
        """
        Clients paused because the producer's queue is full stay paused when
        the budget falls below the low-water mark, until the producer takes
        its backlog.
        """
        self.check(900)
        self.router.producerBlocked()
        self.check(10)
        self.assertTrue(self.router.paused)
        self.router.producerUnblocked()
        self.assertEqual((self.router.paused, self.client.state), (False, "producing"))


class _KeyedPerMessage:
    """
    A per-message connection router choosing a key per message.
    """

    topic = key = headers = None

    def __init__(self, connection):
        pass

    def route(self, payload):
        return ("t", payload[:1], None)


class RouterValuesTests(SynchronousTestCase):
    """
    The router's state and fields, value by value.
    """

    def setUp(self):
        self.producer = RecordingProducerService()
        self.router = Router(self.producer, "events")

    def test_closedStreamForgotten(self):
        """
        A closed stream is no longer held, and its counts stay in the
        totals.
        """
        stream = self.router.openStream("l", "10.0.0.1:1", FakeClient())
        stream.send(b"abc")
        stream.close()
        self.assertEqual(list(self.router.streams), [])
        self.assertEqual(self.router.topicCounts(), {"events": (1, 3)})

    def test_incompleteCapOnProducerClock(self):
        """
        The cap on incomplete frames logs on the producer's clock.
        """
        self.producer.clock = Clock()
        router = Router(self.producer, "events")
        self.assertIs(router.incomplete.clock, self.producer.clock)

    def test_restoreRecordUndecodableListener(self):
        """
        A key whose listener part is not UTF-8 names no listener with
        routing options: the record is handed back as it is.
        """
        self.router.routes["l"] = Route(key="peer-host")
        record = Record("t", b"\xff/10.0.0.1:1", [], b"v")
        self.assertIs(self.router.restoreRecord(record), record)

    def test_perMessageKey(self):
        """
        A per-message router's key is the record's.
        """
        self.router.routes["l"] = Route(plugin=RoutingPlugin("p", "d", _KeyedPerMessage, True))
        stream = self.router.openStream("l", "10.0.0.1:1", FakeClient())
        stream.send(b"ab")
        stream.send(b"cd")
        self.assertEqual(
            [(key, value) for _, key, _, value in self.producer.records],
            [(b"a", b"ab"), (b"c", b"cd")],
        )

    def test_routedStreamCloseForgetsClient(self):
        """
        A per-message stream's close forgets its connection: it is paused
        and resumed no more.
        """
        self.router.routes["l"] = Route(plugin=RoutingPlugin("p", "d", _KeyedPerMessage, True))
        client = FakeClient()
        stream = self.router.openStream("l", "10.0.0.1:1", client)
        self.assertEqual(list(self.router.clients), [client])
        stream.close()
        self.assertEqual(list(self.router.clients), [])

    def test_badWaterMarks(self):
        """
        Water marks out of order are refused with the rule they break.
        """
        with self.assertRaises(ValueError) as raised:
            Router(self.producer, "events", highWater=0.5, lowWater=0.5)
        self.assertEqual(str(raised.exception), "need 0 < lowWater < highWater <= 1")
