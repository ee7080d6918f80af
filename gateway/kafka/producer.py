# -*- test-case-name: tests.kafka.test_producer -*-
"""
L{KafkaProducerService}: the one producer every listener and connection
shares, on a backend plugin (L{gateway.interfaces.IProducerBackend}).

Nothing is silently lost and nothing blocks the reactor:

 - a full backend queue turns into a backlog plus back-pressure on clients;
 - a record Kafka refuses for good goes to the dead-letter file;
 - a record a client-library timeout gave up on is produced again;
 - a fatal client error recreates the client (with backoff) and produces
   again what the old one had not confirmed;
 - stopping drains within a deadline and spools what is left, which the next
   start produces first.
"""

from collections import deque

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from gateway.interfaces import IProducerEvents
from gateway.kafka._figures import RECORD_OVERHEAD, ProducerFiguresMixin
from gateway.kafka._recreation import RecreationMixin
from gateway.kafka.config import DEFAULT_PRODUCER_CONFIG, producerConfig
from gateway.kafka.records import Record, RecordFile
from gateway.kafka.spool import Spool

__all__ = [
    "KafkaProducerService",
    "producerConfig",
    "DEFAULT_PRODUCER_CONFIG",
    "RECORD_OVERHEAD",
]

#: Seconds L{KafkaProducerService.stopService} waits for Kafka to confirm
#: what was read.
DEFAULT_DRAIN_TIMEOUT = 30.0

#: Errors that mean a record (or the batch it was in) is too large.
_SIZE_ERRORS = frozenset({"MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "MessageSizeTooLarge"})


class _NoObserver:
    """
    Stands in until a router observes the producer.
    """

    def producerBlocked(self):
        pass

    def producerUnblocked(self):
        pass

    def deliveryFailed(self, record, error):
        pass

    def polled(self):
        pass

    def restoreRecord(self, record):
        return record


@implementer(IProducerEvents)
class KafkaProducerService(ProducerFiguresMixin, RecreationMixin, Service):
    """
    Own the process's one producer from start to drained stop.

    :ivar observer: told when the producer blocks or unblocks, when a record
        is refused for good, and after every poll (the L{gateway.router.Router}).
    :ivar accepted: records handed to L{produce} (and loaded from the spool).
    :ivar produced: records the client took (a record produced again after a
        recreation counts again).
    :ivar failureReports: records the client reported not delivered.
    :ivar deadLettered: records refused for good, written to the dead-letter
        file.
    :ivar requeued: records produced again (timeouts, recreation).
    :ivar spooled: records written to the spool at stop.
    :ivar recreations: clients recreated (see L{RecreationMixin}).
    :ivar lastDeliveryTime: when a delivery was last seen confirmed.
    """

    name = "kafka-producer"
    log = Logger()

    def __init__(
        self,
        backend,
        config,
        clock,
        pollInterval=0.05,
        drainTimeout=DEFAULT_DRAIN_TIMEOUT,
        spoolPath=None,
        deadLetterPath=None,
        retryPolicy=None,
        recreateAfter=120.0,
    ):
        """
        :param backend: the L{gateway.interfaces.IProducerBackend}.
        :param config: the producer configuration (see L{producerConfig}).
        :param clock: the reactor (an L{IReactorTime}, handed to backends).
        :param pollInterval: seconds between polls of the client.
        :param drainTimeout: seconds L{stopService} waits for Kafka.
        :param spoolPath: where undelivered records wait for the next start;
            L{None} keeps nothing (they are only counted and logged).
        :param deadLetterPath: where records Kafka refused go; L{None} only
            logs them.
        :param retryPolicy: seconds to wait before the Nth recreation
            (C{backoffPolicy()} by default: exponential, with jitter).
        :param recreateAfter: seconds with every broker down after which the
            client is recreated (its own reconnects have not helped).
        """
        self.backend = backend
        self.config = dict(config)
        self.clock = clock
        self.pollInterval = pollInterval
        self.drainTimeout = drainTimeout
        self.spool = Spool(spoolPath) if spoolPath else None
        self.deadLetters = RecordFile(deadLetterPath) if deadLetterPath else None
        self.retryPolicy = retryPolicy or backoffPolicy(maxDelay=60.0)
        self.recreateAfter = recreateAfter
        self.observer = _NoObserver()
        self.accepted = self.produced = self.failureReports = 0
        self.deadLettered = self.requeued = self.spooled = 0
        self.backlogBytes = 0
        self._client = None
        self._produce = None
        self._backlog = deque()
        self._poller = None
        self._purged = []
        self._tooLarge = []
        self._stopped = False
        self._lastDelivered = 0
        self.lastDeliveryTime = None

    # Life cycle

    def privilegedStartService(self):
        """
        Create the client and load the spool before any listener binds, so a
        bad configuration stops the start and spooled records go first.
        """
        Service.privilegedStartService(self)
        self._start()

    def startService(self):
        """
        Start polling the client from the reactor.
        """
        self._start()
        Service.startService(self)
        self._poller = LoopingCall(self._poll)
        self._poller.clock = self.clock
        self._poller.start(self.pollInterval, now=False).addErrback(
            lambda f: self.log.failure("producer poll loop stopped", f)
        )

    def _start(self):
        if self._client is None:
            self._loadSpool()
            self._connect()

    def _connect(self):
        try:
            self._client = self.backend.connect(self.config, self, self.clock)
        except Exception as e:
            raise ValueError(f"cannot create the Kafka producer ({self.backend.name}): {e}") from e
        self._produce = self._client.produce
        self.log.info(
            "Kafka producer created ({backend}) for {bootstrap}",
            backend=self.backend.name,
            bootstrap=self.config.get("bootstrap.servers"),
        )

    def _loadSpool(self):
        """
        Put spooled records at the head of the backlog.
        """
        records = self.spool.load() if self.spool is not None else []
        for record in records:
            self._queue(record)
        self.accepted += len(records)
        if records:
            self.log.info(
                "producing {count} spooled records first (from {path})",
                count=len(records),
                path=self.spool.path,
            )

    def stopService(self):
        """
        Drain: wait, polling, until everything is confirmed or
        C{drainTimeout} passed; then spool what is left and log exact counts.

        :return: a L{Deferred} firing with the number of records not
            delivered.
        """
        Service.stopService(self)
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None
        if self._recreating is not None and self._recreating.active():
            # Stopping while a recreation waits: do it now, so the drain and
            # the spool see every record the old client held.
            self._recreating.cancel()
            self._recreate()
        if self._client is None:
            return None
        done = Deferred()
        deadline = self.clock.seconds() + self.drainTimeout
        self.log.info(
            "draining the Kafka producer: {pending} records to confirm",
            pending=self.pending(),
        )

        def check():
            self._poll()
            if self.pending() == 0 or self.clock.seconds() >= deadline:
                drainer.stop()

        drainer = LoopingCall(check)
        drainer.clock = self.clock
        drainer.start(self.pollInterval).addCallback(lambda _: done.callback(self._finishDrain()))
        return done

    def _finishDrain(self):
        client, self._client, self._produce = self._client, None, None
        self._bytesSentBefore += client.bytesSent() or 0
        if client.pendingCount():
            client.purge()
            while client.pendingCount():
                client.poll()
        client.close()
        self._stopped = True
        left = self._purged + [Record(*r) for r in self._backlog]
        self._purged, self._backlog = [], deque()
        self.backlogBytes = 0
        self._saveLeft(left)
        delivered = self.delivered()
        self.log.info(
            "Kafka producer stopped: {delivered} records delivered, {left} not "
            "delivered ({spooled} spooled), {deadLettered} dead-lettered",
            delivered=delivered,
            left=len(left),
            spooled=self.spooled,
            deadLettered=self.deadLettered,
        )
        return len(left)

    def _saveLeft(self, records):
        if not records:
            if self.spool is not None:
                self.spool.confirmed()
            return
        if self.spool is None:
            self.log.error(
                "{count} records not delivered and no spool configured: lost",
                count=len(records),
            )
            return
        self.spool.save(records)
        self.spooled += len(records)

    # The hot path

    def produce(self, topic, key, headers, value):
        """
        Publish one record; never blocks, never drops.

        While a backlog exists every record joins it, which keeps each
        connection's records in order.
        """
        self.accepted += 1
        if self._backlog:
            self._queue((topic, key, headers, value))
            self.observer.producerBlocked()
            return
        try:
            self._produce(topic, value, key, headers=headers)
        except BufferError:
            self._queue((topic, key, headers, value))
            self.observer.producerBlocked()
            return
        except TypeError:
            if self._produce is None:
                # Stopped or between clients: keep it for later.
                return self._late(Record(topic, key, headers, value))
            raise
        except Exception as e:
            self._refused(Record(topic, key, headers, value), str(e))
            return
        self.produced += 1

    def _queue(self, record):
        self._backlog.append(record)
        self.backlogBytes += len(record[3] or b"")

    def _late(self, record):
        if self._stopped:
            # A connection closed after the drain with whole messages still
            # buffered: they go straight to the spool.
            if self.spool is not None:
                self.spool.append(record)
                self.spooled += 1
            return
        self._queue(record)
        self.observer.producerBlocked()

    # Serving the client (its figures: L{ProducerFiguresMixin})

    def _poll(self):
        if self._client is not None:
            self._client.poll()
            if self._tooLarge:
                self._judgeTooLarge()
            if self._downSince is not None:
                self._checkBrokersDown()
            if self._purged and self._recreating is None:
                self._requeue()
            self._pump()
            delivered = self.delivered()
            if delivered > self._lastDelivered:
                self._lastDelivered = delivered
                self.lastDeliveryTime = self.clock.seconds()
                self._failedAttempts = 0
            if self.spool is not None and self.spool.replaying and not self.pending():
                self.spool.confirmed()
        self.observer.polled()

    def _pump(self):
        """
        Move the backlog into the client's queue as far as it fits.
        """
        backlog = self._backlog
        if not backlog:
            return
        produce = self._produce
        while backlog:
            topic, key, headers, value = backlog[0]
            try:
                produce(topic, value, key, headers=headers)
            except BufferError:
                return
            except Exception as e:
                self._refused(Record(topic, key, headers, value), str(e))
            else:
                self.produced += 1
            backlog.popleft()
            self.backlogBytes -= len(value or b"")
        self.observer.producerUnblocked()

    def _requeue(self):
        """
        Records the old client gave up on go first, in their order.
        """
        purged, self._purged = self._purged, []
        for record in reversed(purged):
            self._backlog.appendleft(record)
            self.backlogBytes += len(record.value or b"")
        self.requeued += len(purged)

    # IProducerEvents

    def deliveryFailed(self, record, error):
        """
        See L{IProducerEvents.deliveryFailed}.  Records too large for the
        broker are judged after the poll, together (see L{_judgeTooLarge}).
        """
        self.failureReports += 1
        # Delivery reports may lack what the client does not hand back
        # (confluent-kafka's carry no headers): the router restores them.
        record = self.observer.restoreRecord(record)
        if error.purged or error.retriable:
            self._purged.append(record)
        elif error.code in _SIZE_ERRORS:
            self._tooLarge.append((record, error))
        else:
            self._refuse(record, error)

    def _refuse(self, record, error):
        self._refused(record, f"{error.code}: {error.text}")
        self.observer.deliveryFailed(record, error)

    def _judgeTooLarge(self):
        """
        The broker refuses a whole batch when one record in it is too large,
        so its innocent batch-mates fail with it: refuse only the largest
        record of what failed, and produce the others again (a batch with
        several records too large loses one per round).
        """
        failed, self._tooLarge = self._tooLarge, []
        largest = max(range(len(failed)), key=lambda i: len(failed[i][0].value or b""))
        self._refuse(*failed.pop(largest))
        self._purged.extend(record for record, _ in failed)

    def _refused(self, record, reason):
        self.deadLettered += 1
        if self.deadLetters is not None:
            self.deadLetters.append([record], reason=reason)
        self.log.error(
            "Kafka refused a {size}-byte record for {topic}: {reason}; {where}",
            size=len(record.value or b""),
            topic=record.topic,
            reason=reason,
            where=(
                f"written to {self.deadLetters.path}"
                if self.deadLetters
                else "no dead-letter file configured, dropped"
            ),
        )
