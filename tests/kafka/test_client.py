# -*- test-case-name: tests.kafka.test_client -*-
"""
Tests for L{ClientKeeper} and L{NoClient}: creating, closing and recreating
the producer service's client, on a scripted backend and a L{Clock}.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gateway.interfaces import IProducerClient
from gateway.kafka import client as clientModule
from gateway.kafka.client import NO_CLIENT, ClientKeeper, NoClient
from gateway.kafka.records import DeliveryError, Record

FATAL = DeliveryError("_FENCED", "fenced", fatal=True)
ALL_DOWN = DeliveryError("_ALL_BROKERS_DOWN", "1/1 brokers are down", allBrokersDown=True)


@implementer(IProducerClient)
class ScriptedClient:
    """
    A client whose pending records, brokers and byte count the test sets.
    """

    def __init__(self, events):
        self.events = events
        self.pending = []
        self.up = 1
        self.sent = 0
        self.polls = 0
        self.purged = self.closed = False

    def produce(self, topic, value, key=None, headers=None):
        self.pending.append(Record(topic, key, headers, value))

    def poll(self):
        self.polls += 1
        if self.purged:
            # Purged records are reported one poll at a time.
            record = self.pending.pop(0)
            self.events.deliveryFailed(record, DeliveryError("_PURGE_QUEUE", "", purged=True))

    def pendingCount(self):
        return len(self.pending)

    def pendingBytes(self):
        return sum(len(r.value) for r in self.pending)

    def brokersUp(self):
        return self.up

    def bytesSent(self):
        return self.sent

    def purge(self):
        self.purged = True

    def close(self):
        self.closed = True


class ScriptedBackend:
    name = "scripted"

    def __init__(self):
        self.clients = []
        self.refuse = None
        self.producePath = None

    def connect(self, config, events, reactor):
        if self.refuse is not None:
            raise self.refuse
        client = ScriptedClient(events)
        if self.producePath is not None:
            client.producePath = self.producePath
        self.clients.append(client)
        return client


class Events:
    def __init__(self):
        self.failed = []

    def deliveryFailed(self, record, error):
        self.failed.append((record.value, error.code))

    def clientError(self, error):
        pass


class NoClientTests(SynchronousTestCase):
    """
    L{NoClient}: the client in place while there is none.
    """

    def test_interface(self):
        """
        L{NO_CLIENT} is an L{IProducerClient} and a L{NoClient}.
        """
        self.assertIsInstance(NO_CLIENT, NoClient)
        verifyObject(IProducerClient, NO_CLIENT)

    def test_takesNothing(self):
        """
        Its C{produce} raises L{BufferError} (the record was not taken, as
        from a full queue), whatever the record; it holds nothing and knows
        no broker.
        """
        self.assertRaises(BufferError, NO_CLIENT.produce, "t", b"v", b"k", headers=[])
        self.assertRaises(BufferError, NO_CLIENT.produce, "t", b"v")
        self.assertEqual(
            (NO_CLIENT.pendingCount(), NO_CLIENT.pendingBytes(), NO_CLIENT.bytesSent()),
            (0, 0, 0),
        )
        self.assertIsNone(NO_CLIENT.brokersUp())
        self.assertEqual(NO_CLIENT.latency(), {})

    def test_produceManyTakesNothing(self):
        """
        Its C{produceMany} takes nothing: each record is then offered to
        C{produce}, which holds it.
        """
        self.assertEqual(NO_CLIENT.produceMany("t", [b"a", b"b"], None, None), 0)

    def test_refusalSays(self):
        """
        Its L{BufferError} says there is no client.
        """
        error = self.assertRaises(BufferError, NO_CLIENT.produce, "t", b"v")
        self.assertEqual(str(error), "no Kafka producer client")

    def test_recordsAndTrackedRefused(self):
        """
        A record handed back, and an ack-mode record, are refused the same
        way.
        """
        for error in (
            self.assertRaises(BufferError, NO_CLIENT.produceRecord, Record("t", None, [], b"v")),
            self.assertRaises(BufferError, NO_CLIENT.produceTracked, "t", b"v", None, [], None),
        ):
            self.assertEqual(str(error), "no Kafka producer client")


class ClientKeeperTests(SynchronousTestCase):
    """
    L{ClientKeeper}.
    """

    def setUp(self):
        self.clock = Clock()
        self.backend = ScriptedBackend()
        self.events = Events()
        self.replaced = []
        self.keeper = ClientKeeper(
            self.backend,
            {"bootstrap.servers": "h:1"},
            self.events,
            self.clock,
            retryPolicy=lambda attempt: 2.0**attempt,
            recreateAfter=60,
            replaced=self.replaced.append,
        )
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def started(self):
        client = self.keeper.connect()
        self.keeper.start()
        return client

    def test_noClientAtFirst(self):
        """
        Before C{connect} the keeper holds L{NO_CLIENT}, and its figures are
        that client's.
        """
        self.assertIs(self.keeper.client, NO_CLIENT)
        self.assertFalse(self.keeper.hasClient())
        self.assertIsNone(self.keeper.lastError)
        self.assertEqual((self.keeper.pendingCount(), self.keeper.bytesSent()), (0, 0))
        self.assertIsNone(self.keeper.brokersUp())

    def test_connect(self):
        """
        C{connect} creates the client on the backend with the events object
        and returns it.
        """
        client = self.keeper.connect()
        self.assertEqual(self.backend.clients, [client])
        self.assertIs(self.keeper.client, client)
        self.assertIs(client.events, self.events)
        self.assertTrue(self.keeper.hasClient())

    def test_connectRefused(self):
        """
        A backend refusing to create a client is a L{ValueError} naming the
        backend and its reason; no client is kept.
        """
        self.backend.refuse = RuntimeError("No such configuration property")
        error = self.assertRaises(ValueError, self.keeper.connect)
        self.assertIn("scripted", str(error))
        self.assertIn("No such configuration property", str(error))
        self.assertFalse(self.keeper.hasClient())

    def test_closePurgesAndKeepsBytesSent(self):
        """
        C{close} purges what the client holds, polls until every purged
        record was reported, closes it, and adds the bytes it sent to the
        next clients'.
        """
        client = self.keeper.connect()
        client.produce("t", b"a")
        client.produce("t", b"b")
        client.sent = 100
        self.keeper.close()
        self.assertTrue(client.closed)
        self.assertEqual(self.events.failed, [(b"a", "_PURGE_QUEUE"), (b"b", "_PURGE_QUEUE")])
        self.assertIs(self.keeper.client, NO_CLIENT)
        self.assertEqual(self.keeper.bytesSent(), 100)
        self.keeper.connect().sent = 5
        self.assertEqual(self.keeper.bytesSent(), 105)
        self.keeper.close()
        self.keeper.connect().sent = 1
        self.assertEqual(self.keeper.bytesSent(), 106)

    def test_bytesSentUnknown(self):
        """
        When the client does not count bytes sent, neither does the keeper.
        """
        self.keeper.connect().sent = None
        self.assertIsNone(self.keeper.bytesSent())

    def test_fatalErrorRecreatesAfterBackoff(self):
        """
        A fatal error recreates the client after the policy's first delay; a
        second fatal error meanwhile schedules nothing more; the owner gets
        the new client.
        """
        old = self.started()
        old.produce("t", b"unconfirmed")
        self.keeper.clientError(FATAL)
        self.keeper.clientError(FATAL)
        self.assertTrue(self.keeper.recreating())
        self.clock.advance(0.9)
        self.assertEqual(len(self.backend.clients), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.backend.clients), 2)
        self.assertTrue(old.closed)
        self.assertEqual(self.events.failed, [(b"unconfirmed", "_PURGE_QUEUE")])
        self.assertEqual(self.replaced, [self.backend.clients[1]])
        self.assertEqual((self.keeper.recreations, self.keeper.recreating()), (1, False))

    def test_backoffGrowsUntilDelivering(self):
        """
        Each recreation in a row waits longer; once deliveries are confirmed
        the next waits the first delay again.
        """
        self.started()
        self.keeper.clientError(FATAL)
        self.clock.advance(1.0)
        self.keeper.clientError(FATAL)
        self.clock.advance(1.9)
        self.assertEqual(len(self.backend.clients), 2)
        self.clock.advance(0.1)
        self.assertEqual(len(self.backend.clients), 3)
        self.keeper.delivering()
        self.keeper.clientError(FATAL)
        self.clock.advance(1.0)
        self.assertEqual(len(self.backend.clients), 4)

    def test_noRecreationBeforeStartOrAfterStop(self):
        """
        Fatal errors before C{start} or after C{stop} recreate nothing.
        """
        self.keeper.connect()
        self.keeper.clientError(FATAL)
        self.keeper.start()
        self.keeper.stop()
        self.keeper.clientError(FATAL)
        self.clock.advance(100)
        self.assertEqual(len(self.backend.clients), 1)

    def test_stopRecreatesAtOnce(self):
        """
        Stopping while a recreation waits for its delay recreates the client
        now, so the owner can drain every record the old one held.
        """
        self.started()
        self.keeper.clientError(FATAL)
        self.keeper.stop()
        self.assertEqual(len(self.backend.clients), 2)
        self.assertEqual(self.replaced, [self.backend.clients[1]])
        self.assertFalse(self.keeper.recreating())

    def test_failedRecreationRetries(self):
        """
        When the backend refuses the new client the owner is told there is
        none (L{NO_CLIENT}), the failure is logged, and the recreation is
        tried again after the next delay.
        """
        self.started()
        self.keeper.clientError(FATAL)
        self.backend.refuse = RuntimeError("resolver down")
        self.clock.advance(1.0)
        self.assertEqual(self.replaced, [NO_CLIENT])
        self.assertFalse(self.keeper.hasClient())
        self.assertTrue(any("resolver down" in e.get("error", "") for e in self.logged))
        self.backend.refuse = None
        self.clock.advance(2.0)
        self.assertEqual(self.replaced, [NO_CLIENT, self.backend.clients[1]])
        self.assertEqual(self.keeper.recreations, 1)

    def test_longOutageRecreates(self):
        """
        With every broker down for C{recreateAfter} seconds (seen at polls)
        the client is recreated; an outage that ends sooner is forgotten.
        """
        client = self.started()
        client.up = 0
        self.keeper.clientError(ALL_DOWN)
        self.clock.advance(30)
        client.up = 1
        self.keeper.poll()
        self.clock.advance(40)
        client.up = 0
        self.keeper.poll()
        self.assertFalse(self.keeper.recreating())
        self.keeper.clientError(ALL_DOWN)
        self.clock.advance(59)
        self.keeper.poll()
        self.assertFalse(self.keeper.recreating())
        self.clock.advance(1)
        self.keeper.poll()
        self.assertTrue(self.keeper.recreating())
        self.clock.advance(1.0)
        self.assertEqual(len(self.backend.clients), 2)

    def test_repeatedClientErrorLoggedOncePer30s(self):
        """
        The same client error repeated on every reconnect attempt is logged
        once per 30 seconds, a different one at once.
        """
        self.started()
        transport = DeliveryError("_TRANSPORT", "connection refused")
        for _i in range(5):
            self.keeper.clientError(transport)
        self.clock.advance(10)
        self.keeper.clientError(transport)
        self.keeper.clientError(ALL_DOWN)
        self.clock.advance(30)
        self.keeper.clientError(transport)
        codes = [e["code"] for e in self.logged if "code" in e]
        self.assertEqual(codes, ["_TRANSPORT", "_ALL_BROKERS_DOWN", "_TRANSPORT"])
        self.assertIs(self.keeper.lastError, transport)

    def test_latency(self):
        """
        The client's latency figures are passed on; a client that measures
        none has none.
        """
        client = self.keeper.connect()
        self.assertEqual(self.keeper.latency(), {})
        client.latency = lambda: {"rtt": {"0.5": 0.001}}
        self.assertEqual(self.keeper.latency(), {"rtt": {"0.5": 0.001}})

    def test_recreationsCounted(self):
        """
        C{recreations} counts every client recreated, and the Nth recreation
        in a row waits the policy's Nth delay (1, 2, then 4 seconds).
        """
        self.started()
        for delay in (1.0, 2.0, 4.0):
            self.keeper.clientError(FATAL)
            self.clock.advance(delay - 0.1)
            self.assertTrue(self.keeper.recreating())
            self.clock.advance(0.1)
            self.assertFalse(self.keeper.recreating())
        self.assertEqual(len(self.backend.clients), 4)
        self.assertEqual(self.keeper.recreations, 3)
        self.assertEqual(self.replaced, self.backend.clients[1:])

    def test_recreationLogged(self):
        """
        A recreation is logged as an error with why and its delay; the new
        client's creation with the backend and the bootstrap servers.
        """
        self.started()
        self.keeper.clientError(FATAL)
        self.clock.advance(1.0)
        scheduled = [e for e in self.logged if "why" in e]
        self.assertEqual(
            [(e["why"], e["delay"], e["log_level"].name) for e in scheduled],
            [("hit a fatal error", 1.0, "error")],
        )
        self.assertEqual(
            formatEvent(scheduled[0]), "Kafka producer hit a fatal error; recreating it in 1.0 s"
        )
        created = [e for e in self.logged if "bootstrap" in e]
        self.assertEqual(
            [(e["backend"], e["bootstrap"], formatEvent(e)) for e in created],
            [("scripted", "h:1", "Kafka producer created (scripted) for h:1")] * 2,
        )

    def test_producePathLogged(self):
        """
        The creation line says which produce path a client runs, when its
        backend has more than one, and which library C{malloc} comes from
        (librdkafka's records are allocated there).
        """
        self.backend.producePath = "C extension"
        self.patch(clientModule, "mallocLibrary", lambda: "libmimalloc.so.2")
        self.started()
        [created] = [e for e in self.logged if "bootstrap" in e]
        self.assertEqual(created["producePath"], "C extension")
        self.assertEqual(created["malloc"], "libmimalloc.so.2")
        self.assertEqual(
            formatEvent(created),
            "Kafka producer created (scripted) for h:1; produce path: C extension;"
            " malloc: libmimalloc.so.2",
        )
        self.assertEqual(self.keeper.producePath(), "C extension")

    def test_failedRecreationLogged(self):
        """
        A refused recreation is logged as an error naming the backend and
        the reason, and the next one is scheduled as "could not be created
        again".
        """
        self.started()
        self.keeper.clientError(FATAL)
        self.backend.refuse = RuntimeError("resolver down")
        self.clock.advance(1.0)
        refused = [e for e in self.logged if "error" in e and "backend" in e]
        self.assertEqual(len(refused), 1)
        self.assertEqual(refused[0]["backend"], "scripted")
        self.assertEqual(refused[0]["log_level"].name, "error")
        self.assertEqual(
            formatEvent(refused[0]),
            "Kafka producer not recreated: cannot create the Kafka producer (scripted):"
            " resolver down",
        )
        self.assertEqual(
            [(e["why"], e["delay"]) for e in self.logged if "why" in e],
            [("hit a fatal error", 1.0), ("could not be created again", 2.0)],
        )

    def test_longOutageLogged(self):
        """
        A recreation after a long outage says for how long there was no
        broker.
        """
        client = self.started()
        client.up = 0
        self.keeper.clientError(ALL_DOWN)
        self.clock.advance(60)
        self.keeper.poll()
        self.assertEqual(
            [e["why"] for e in self.logged if "why" in e], ["has had no broker for 60 s"]
        )

    def test_clientErrorLogged(self):
        """
        A client error is logged as a warning with its text, code and
        whether it is fatal.
        """
        self.started()
        self.keeper.clientError(FATAL)
        (event,) = [e for e in self.logged if "code" in e]
        self.assertEqual(
            (event["reason"], event["code"], event["fatal"], event["log_level"].name),
            ("fenced", "_FENCED", True, "warn"),
        )
        self.assertEqual(formatEvent(event), "Kafka producer: fenced")

    def test_repeatedClientErrorAt30s(self):
        """
        A repeated client error is logged again exactly 30 seconds after it
        was last logged, not sooner.
        """
        self.started()
        transport = DeliveryError("_TRANSPORT", "connection refused")
        logged = []
        for advance in (0, 29.5, 0.5, 29.5):
            self.clock.advance(advance)
            self.keeper.clientError(transport)
            logged.append(len([e for e in self.logged if "code" in e]))
        self.assertEqual(logged, [1, 1, 2, 2])

    def test_closeUncountedBytes(self):
        """
        A client that does not count bytes adds nothing to the next
        clients' count.
        """
        self.keeper.connect().sent = None
        self.keeper.close()
        self.keeper.connect().sent = 5
        self.assertEqual(self.keeper.bytesSent(), 5)

    def test_closeEmptyClientNotPurged(self):
        """
        C{close} purges only a client that holds records.
        """
        client = self.keeper.connect()
        self.keeper.close()
        self.assertEqual((client.purged, client.closed, client.polls), (False, True, 0))

    def test_outageStartsAtFirstAllDown(self):
        """
        An outage is timed from the first "all brokers down" error: repeated
        ones do not restart it; other non-fatal errors start none.
        """
        client = self.started()
        client.up = 0
        self.keeper.clientError(DeliveryError("_TRANSPORT", "connection refused"))
        self.clock.advance(60)
        self.keeper.poll()
        self.assertFalse(self.keeper.recreating())
        self.keeper.clientError(ALL_DOWN)
        self.clock.advance(30)
        self.keeper.clientError(ALL_DOWN)
        self.clock.advance(30)
        self.keeper.poll()
        self.assertTrue(self.keeper.recreating())

    def test_pollServesClient(self):
        """
        C{poll} polls the client whether or not an outage is being timed.
        """
        client = self.started()
        self.keeper.poll()
        self.assertEqual(client.polls, 1)

    def test_figuresOfClient(self):
        """
        The keeper's pending count, pending bytes and brokers are the
        current client's.
        """
        client = self.keeper.connect()
        client.produce("t", b"abc")
        client.produce("t", b"de")
        client.up = 3
        self.assertEqual(
            (self.keeper.pendingCount(), self.keeper.pendingBytes(), self.keeper.brokersUp()),
            (2, 5, 3),
        )
