# -*- test-case-name: tests.compat.test_pykafka -*-
"""
Each entry of L{gateway.compat.pykafka} against the installed pykafka, on
its real classes: a producer with its per-broker queue threads (the broker
and topic are stand-ins, nothing reaches a network) and a broker connected
to a loopback socket.
"""

import socket
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from gateway.compat.pykafka import disconnectBroker, dropQueued, workerException

try:
    from pykafka.broker import Broker
    from pykafka.handlers import ThreadingHandler
    from pykafka.producer import Producer
except ImportError:  # pragma: no cover - pykafka is a test dependency
    Broker = None

#: How long a pykafka thread may take to get somewhere on a busy machine.
PATIENCE = 30.0


def waitUntil(condition, patience=PATIENCE):
    """
    Poll C{condition} until it is true, failing after C{patience} seconds.
    """
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {patience} s: {condition}")
        time.sleep(0.01)


class Cluster:
    """
    What a pykafka producer reads of its cluster.
    """

    _broker_version = "0.10.0"

    def __init__(self):
        self.handler = ThreadingHandler()


class Leader:
    """
    A partition leader: C{produce_messages} runs C{onProduce}.
    """

    id = 1
    host = "127.0.0.1"
    port = 9

    def __init__(self, onProduce):
        self.onProduce = onProduce

    def produce_messages(self, request):
        return self.onProduce(request)


class Partition:
    def __init__(self, leader):
        self.id = 0
        self.leader = leader


class Topic:
    name = b"t"

    def __init__(self, leader):
        self.partitions = {0: Partition(leader)}


class ProducerMixin:
    """
    Real pykafka producers on stand-in topics, stopped after the test.
    """

    def setUp(self):
        if Broker is None:
            self.fail("pykafka is not installed (pip install .[pykafka])")

    def producer(self, onProduce, **kwargs):
        settings = dict(
            delivery_reports=True,
            queue_empty_timeout_ms=100,
            pending_timeout_ms=0,
            auto_start=True,
        )
        settings.update(kwargs)
        producer = Producer(Cluster(), Topic(Leader(onProduce)), **settings)
        self.addCleanup(self.stop, producer)
        return producer

    def stop(self, producer):
        producer._worker_exception = None
        owned = list((producer._owned_brokers or {}).values())
        for broker in owned:
            broker.stop()

        def stopped():
            # A thread lingering for a batch waits on flush_ready (cleared
            # before each wait), so wake it until it has seen the stop.
            for broker in owned:
                broker.flush_ready.set()
            return not any(b._queue_reader_worker.is_alive() for b in owned)

        waitUntil(stopped)
        producer.stop()


class DropQueuedTests(ProducerMixin, SynchronousTestCase):
    """
    L{dropQueued}: C{Producer._owned_brokers}.
    """

    def test_beforeStart(self):
        """
        A producer not started holds nothing.
        """
        producer = self.producer(lambda request: None, auto_start=False)
        self.assertEqual(dropQueued(producer), 0)

    def test_dropsWhatWaits(self):
        """
        Records produced but not sent yet (the producer lingers for a full
        batch) are dropped, counted, and no longer pending: pykafka would
        never send them.
        """
        sent = []
        producer = self.producer(sent.append, linger_ms=600_000, min_queued_messages=100)
        for n in range(3):
            producer.produce(b"%d" % n)
        self.assertEqual(dropQueued(producer), 3)
        owned = list(producer._owned_brokers.values())
        self.assertEqual(len(owned), 1)
        self.assertEqual(len(owned[0].queue), 0)
        self.assertFalse(owned[0].message_is_pending())
        self.assertEqual(dropQueued(producer), 0)
        self.stop(producer)
        self.assertEqual(sent, [])


class WorkerExceptionTests(ProducerMixin, SynchronousTestCase):
    """
    L{workerException}: C{Producer._worker_exception}.
    """

    def test_threadDies(self):
        """
        Nothing while the sending thread lives; the exception that killed it
        once it died.
        """
        boom = threading.Event()

        def onProduce(request):
            boom.set()
            raise RuntimeError("boom")

        producer = self.producer(onProduce, linger_ms=0, min_queued_messages=1)
        self.assertIsNone(workerException(producer))
        producer.produce(b"x")
        waitUntil(lambda: workerException(producer) is not None)
        kind, value, _ = workerException(producer)
        self.assertIs(kind, RuntimeError)
        self.assertEqual(str(value), "boom")


class DisconnectBrokerTests(SynchronousTestCase):
    """
    L{disconnectBroker}: C{Broker._req_handler} and C{Broker._connection}.
    """

    def test_closes(self):
        """
        A real broker connected to a loopback socket: afterwards its request
        thread has ended, it reports itself disconnected, and the other end
        of its socket sees the connection closed.
        """
        if Broker is None:
            self.fail("pykafka is not installed (pip install .[pykafka])")
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        broker = Broker(
            1,
            "127.0.0.1",
            listener.getsockname()[1],
            ThreadingHandler(),
            socket_timeout_ms=5000,
            offsets_channel_socket_timeout_ms=5000,
        )
        self.assertTrue(broker.connected)
        thread = broker.handler.t
        self.assertTrue(thread.is_alive())
        server, _ = listener.accept()
        self.addCleanup(server.close)
        disconnectBroker(broker)
        thread.join(PATIENCE)
        self.assertFalse(thread.is_alive())
        self.assertFalse(broker.connected)
        server.settimeout(PATIENCE)
        self.assertEqual(server.recv(1), b"")
