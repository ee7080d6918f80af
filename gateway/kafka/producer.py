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

The service is composed of small objects, each with one job: a
L{ClientKeeper} (the client, its recreation and backoff, its figures), a
L{Backlog} (records the client has not taken yet), L{DeadLetters} and the
L{Spool}.
"""

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from gateway.interfaces import IProducerEvents
from gateway.kafka.backlog import Backlog
from gateway.kafka.client import NO_CLIENT, ClientKeeper
from gateway.kafka.config import DEFAULT_PRODUCER_CONFIG, producerConfig
from gateway.kafka.deadletters import (
    SIZE_ERRORS,
    exceptionCode,
    judgeTooLarge,
    refusalReason,
)
from gateway.kafka.records import Receipt, Record
from gateway.kafka.storage import Storage

__all__ = [
    "KafkaProducerService",
    "producerConfig",
    "DEFAULT_PRODUCER_CONFIG",
    "RECORD_OVERHEAD",
    "ackProblem",
]

#: Seconds L{KafkaProducerService.stopService} waits for Kafka to confirm
#: what was read.
DEFAULT_DRAIN_TIMEOUT = 30.0

#: Memory a held record costs besides its payload: librdkafka's message and
#: buffers, measured at about 0.5 KiB a record (tests/integration/test_faults.py,
#: broker frozen); counted so that the byte budget bounds memory.
RECORD_OVERHEAD = 512


def ackProblem(backend, config):
    """
    Why listeners with C{ack=on} cannot run on this producer, if they
    cannot.

    :param backend: the L{gateway.interfaces.IProducerBackend}.
    :param config: the producer configuration.
    :return: a one-line reason, or L{None}.
    """
    if not getattr(backend, "confirmsDeliveries", False):
        return (
            f"ack=on needs a producer backend that confirms each delivery; "
            f"{backend.name!r} does not (use --kafka-backend confluent)"
        )
    if str(config.get("acks", "all")).lower() not in ("all", "-1"):
        return (
            "ack=on acknowledges what every in-sync replica has: it needs the "
            f"producer property acks=all, not acks={config['acks']}"
        )
    return None


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
class KafkaProducerService(Service):
    """
    Own the process's one producer from start to drained stop; its client
    (creation, recreation, backoff) is kept by a L{ClientKeeper}.

    :ivar observer: told when the producer blocks or unblocks, when a record
        is refused for good, and after every poll (the L{gateway.router.Router}).
    :ivar accepted: records handed to L{produce} (and loaded from the spool).
    :ivar produced: records the client took (a record produced again after a
        recreation counts again).
    :ivar failureReports: records the client reported not delivered.
    :ivar deadLettered: records refused for good, written to the dead-letter
        file.
    :ivar requeued: records produced again (timeouts, recreation).
    :ivar storage: the L{Storage}: the spool (L{spool}) and the
        dead-letter file (L{deadLetters}), and what could not be written to
        them.
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
        self.storage = Storage(spoolPath, deadLetterPath, clock)
        self.spool = self.storage.spool
        self.deadLetters = self.storage.deadLetters
        self.observer = _NoObserver()
        self.accepted = self.produced = self.failureReports = 0
        self.requeued = 0
        self._keeper = ClientKeeper(
            backend,
            self.config,
            self,
            clock,
            retryPolicy or backoffPolicy(maxDelay=60.0),
            recreateAfter,
            self._replaced,
        )
        # The client's own C produce (the hot path), or NO_CLIENT's.
        self._produce = NO_CLIENT.produce
        self._produceMany = NO_CLIENT.produceMany
        self._produceRecord = NO_CLIENT.produceRecord
        self._produceTracked = NO_CLIENT.produceTracked
        self._produceTrackedMany = NO_CLIENT.produceTrackedMany
        self._started = False
        self._backlog = Backlog()
        self._poller = None
        self._purged = []
        self._tooLarge = []
        self._stopped = False
        self._leftAtStop = 0
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
        self._keeper.start()
        self._poller = LoopingCall(self._poll)
        self._poller.clock = self.clock
        self._poller.start(self.pollInterval, now=False).addErrback(
            lambda f: self.log.failure("producer poll loop stopped", f)
        )

    def _start(self):
        if not self._started:
            self._loadSpool()
            self._useClient(self._keeper.connect())
            self._started = True
            self._stopped = False

    def _loadSpool(self):
        """
        Put spooled records at the head of the backlog.
        """
        records = self.storage.load()
        for record in records:
            self._backlog.hold(record)
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
        # A recreation waiting for its delay happens now, so the drain and
        # the spool see every record the old client held.
        self._keeper.stop()
        if not self._started:
            return None
        done = Deferred()
        deadline = self.clock.seconds() + self.drainTimeout
        self.log.info(
            "draining the Kafka producer: {pending} records to confirm",
            pending=self.pending(),
        )

        def check():
            self._poll()
            if (
                self.pending() == 0
                or not self._keeper.hasClient()
                or self.clock.seconds() >= deadline
            ):
                drainer.stop()

        def finish(_):
            try:
                left = self._finishDrain()
            except Exception:
                # Never a stop that does not end: whatever failed is logged
                # and the records still held are counted as not kept.
                self.log.failure("the Kafka producer's stop failed")
                left = self._leftAtStop or self.pending()
                self.storage.notKept(left, "the stop failed")
            done.callback(left)

        drainer = LoopingCall(check)
        drainer.clock = self.clock
        drainer.start(self.pollInterval).addBoth(finish)
        return done

    def _useClient(self, client):
        self._produce = client.produce
        self._produceMany = getattr(client, "produceMany", NO_CLIENT.produceMany)
        self._produceRecord = getattr(client, "produceRecord", NO_CLIENT.produceRecord)
        self._produceTracked = getattr(client, "produceTracked", NO_CLIENT.produceTracked)
        self._produceTrackedMany = getattr(
            client, "produceTrackedMany", NO_CLIENT.produceTrackedMany
        )

    def _finishDrain(self):
        self._useClient(NO_CLIENT)
        self._keeper.close()
        self._started = False
        self._stopped = True
        left = self._purged + self._backlog.takeAll()
        self._purged = []
        self._leftAtStop = len(left)
        self.storage.save(left)
        why = self.storage.finish()
        delivered = self.delivered()
        line = (
            "Kafka producer stopped: {delivered} records delivered, {left} not "
            "delivered ({spooled} spooled), {deadLettered} dead-lettered"
        )
        figures = dict(
            delivered=delivered,
            left=len(left),
            spooled=self.spooled,
            deadLettered=self.deadLettered,
        )
        if why is not None:
            self.log.error(
                line + ", {unkept} could not be kept ({why}): lost",
                unkept=self.unkept,
                why=why,
                **figures,
            )
        else:
            self.log.info(line, **figures)
        return len(left)

    # The hot path

    def produce(self, topic, value, key=None, headers=None):
        """
        Publish one record; never blocks, never drops.  The arguments are in
        the order of L{IProducerClient.produce}.

        While a backlog exists every record joins it, which keeps each
        connection's records in order.  A record the client does not take
        (its queue is full, or there is no client: L{NO_CLIENT} takes
        nothing) joins the backlog; one it refuses for good, whatever the
        exception, is dead-lettered.
        """
        self.accepted += 1
        if self._backlog:
            self._hold(Record(topic, key, headers, value))
            return
        try:
            self._produce(topic, value, key, headers=headers)
        except BufferError:
            self._hold(Record(topic, key, headers, value))
            return
        except Exception as e:
            self._refusedAtProduce(Record(topic, key, headers, value), e)
            return
        self.produced += 1

    def produceMany(self, topic, values, key, headers):
        """
        Publish a read's records, in order, as far as the client takes them
        at once (one call for all of them: see
        L{gateway.kafka.confluent.ConfluentClient.produceMany}).  Nothing is
        taken while a backlog exists, nor past the first record the client
        does not take: the caller hands the rest to L{produce} one by one,
        which holds, refuses and counts them as always.

        :return: how many records the client took (and counted).
        """
        if self._backlog:
            return 0
        taken = self._produceMany(topic, values, key, headers)
        self.accepted += taken
        self.produced += taken
        return taken

    def producePath(self):
        """
        :return: the client's produce path (C{"C extension"}, or
            C{"Python (why)"}), or L{None} when its backend has one only.
        """
        return self._keeper.producePath()

    def confirmDeliveries(self):
        """
        A listener acknowledges messages (C{ack=on}): from now on the client
        reports every delivery, so that L{produceTracked} records are
        confirmed.  Called as listeners are added, before the start.

        :raises ValueError: when the backend cannot confirm deliveries, the
            producer does not wait for every in-sync replica (C{acks}), or
            the client already exists.
        """
        if self.config.get("delivery.report.only.error") is False:
            return
        problem = ackProblem(self.backend, self.config)
        if problem is not None:
            raise ValueError(problem)
        if self._started:
            raise ValueError("listeners with ack=on must be added before the gateway starts")
        # The keeper holds this same dictionary: the client is created with it.
        self.config["delivery.report.only.error"] = False

    def produceTracked(self, topic, value, key, headers, tracker, seq):
        """
        Publish record C{seq} of a C{tracker} waiting for its delivery (an
        ack-mode connection), as L{produce} does.

        A record the client takes now is reported to the tracker in order:
        the client calls C{tracker.delivered(error, value)} for each, in the
        order produced (one key, so one partition).  One that waits in the
        backlog, or that the client refuses at once, carries a L{Receipt}
        instead, which settles it by its number.  Neither is ever confirmed
        when it is spooled or lost.

        :return: whether the client took the record now (so its outcome
            comes in order).
        """
        self.accepted += 1
        if not self._backlog:
            try:
                self._produceTracked(topic, value, key, headers, tracker)
            except BufferError:
                pass
            except Exception as e:
                record = Record(topic, key, headers, value, Receipt(tracker, seq))
                self._refusedAtProduce(record, e)
                return False
            else:
                self.produced += 1
                return True
        self._hold(Record(topic, key, headers, value, Receipt(tracker, seq)))
        return False

    def produceTrackedMany(self, topic, values, key, headers, seqHeader, tracker, first):
        """
        Publish a read's records for a C{tracker} (ack mode) as
        L{produceMany} does: value i is record number C{first + i}, carried
        in its C{seqHeader} header.  Their outcomes come back by number,
        in any order: C{tracker.settleRange(first, last)} for confirmed
        ones, L{deliveryFailed} with a L{Receipt} for a failed one.  Only a
        client with the C extension takes any (see
        L{gateway.kafka.confluent.ConfluentClient.produceTrackedMany}).

        :return: how many records the client took (and counted).
        """
        if self._backlog:
            return 0
        taken = self._produceTrackedMany(topic, values, key, headers, seqHeader, tracker, first)
        self.accepted += taken
        self.produced += taken
        return taken

    def _hold(self, record):
        """
        Keep a record the client did not take: in the backlog, with the
        clients paused; once stopped (a connection closed after the drain
        with whole messages still buffered), in the spool.
        """
        if self._stopped:
            self.storage.append(record)
            return
        self._backlog.hold(record)
        self.observer.producerBlocked()

    # Serving the client

    def _poll(self):
        keeper = self._keeper
        if keeper.hasClient():
            keeper.poll()
            if self._tooLarge:
                self._judgeTooLarge()
            if self._purged and not keeper.recreating():
                self._requeue()
            self._pump()
            delivered = self.delivered()
            if delivered > self._lastDelivered:
                self._lastDelivered = delivered
                self.lastDeliveryTime = self.clock.seconds()
                keeper.delivering()
            if self.spool is not None and self.spool.replaying and not self.pending():
                self.storage.confirmed()
        self.storage.poll()
        self.observer.polled()

    def _pump(self):
        """
        Move the backlog into the client's queue as far as it fits.
        """
        backlog = self._backlog
        if backlog:
            self.produced += backlog.pump(
                self._produce, self._refusedAtProduce, self._produceRecord
            )
            if not backlog:
                self.observer.producerUnblocked()

    def _refusedAtProduce(self, record, exception):
        self.deadLetters.refuse(record, f"{type(exception).__name__}: {exception}")
        if record.receipt is not None:
            record.receipt.refused(refusalReason(exceptionCode(exception)))

    def _replaced(self, client):
        """
        The keeper recreated the client (or failed to: L{NO_CLIENT}): produce
        first what the old one had not confirmed.
        """
        self._useClient(client)
        if client is not NO_CLIENT:
            self._requeue()
            self._pump()

    def _requeue(self):
        """
        Records the old client gave up on go first, in their order.
        """
        purged, self._purged = self._purged, []
        self._backlog.putBack(purged)
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
        elif error.code in SIZE_ERRORS:
            self._tooLarge.append((record, error))
        else:
            self._refuse(record, error)

    def clientError(self, error):
        """
        See L{IProducerEvents.clientError}: the keeper logs it and recreates
        the client if it must.
        """
        self._keeper.clientError(error)

    def _refuse(self, record, error):
        self.deadLetters.refuse(record, f"{error.code}: {error.text}")
        self.observer.deliveryFailed(record, error)
        if record.receipt is not None:
            record.receipt.refused(refusalReason(error.code))

    def _judgeTooLarge(self):
        """
        Refuse the culprit of a batch refused as too large; produce its
        batch-mates again (see L{judgeTooLarge}).
        """
        culprit, others = judgeTooLarge(self._tooLarge)
        self._tooLarge = []
        self._refuse(*culprit)
        self._purged.extend(others)

    # Figures: read by the router (budget), the health service, the metrics
    # and the status page; never computed per message.

    @property
    def backlogBytes(self):
        """
        Payload bytes of the backlog.
        """
        return self._backlog.bytes

    @property
    def spooled(self):
        """
        Records written to the spool at or after stop.
        """
        return self.storage.spooled

    @property
    def unkept(self):
        """
        Records neither delivered nor written to the spool or the
        dead-letter file when the service stopped (the files could not be
        written): lost, and said so in the last log line.
        """
        return self.storage.unkept

    @property
    def storageProblems(self):
        """
        Why the spool or the dead-letter file cannot be written, as of the
        last check; empty when they can.
        """
        return self.storage.problems

    @property
    def deadLettered(self):
        """
        Records refused for good (written to the dead-letter file).
        """
        return self.deadLetters.count

    @property
    def recreations(self):
        """
        Clients recreated after a fatal error or a long outage.
        """
        return self._keeper.recreations

    def pending(self):
        """
        :return: records not yet confirmed: those a client gave back (to
            produce again), the backlog and the client's queue (which may
            also count protocol requests).
        """
        return len(self._purged) + len(self._backlog) + self._keeper.pendingCount()

    def heldBytes(self):
        """
        :return: bytes held for records accepted and not yet confirmed:
            their payloads plus L{RECORD_OVERHEAD} each, so the budget bounds
            memory and not only payload (the client's figure lags by its
            statistics interval).
        """
        keeper = self._keeper
        records = len(self._purged) + len(self._backlog) + keeper.pendingCount()
        purgedBytes = sum(len(record.value or b"") for record in self._purged)
        payloads = purgedBytes + self._backlog.bytes + keeper.pendingBytes()
        return payloads + records * RECORD_OVERHEAD

    def bytesSent(self):
        """
        :return: bytes sent to Kafka by every client this service had, or
            L{None} when the backend does not count them.
        """
        return self._keeper.bytesSent()

    def hasClient(self):
        """
        :return: whether a client exists (started, not stopped, not between
            a fatal error and its recreation).
        """
        return self._keeper.hasClient()

    def latency(self):
        """
        :return: the client's delivery latency quantiles by stage, in
            seconds (empty when the backend does not measure them).
        """
        return self._keeper.latency()

    def brokersUp(self):
        """
        :return: brokers the client is connected to, or L{None} if unknown.
        """
        return self._keeper.brokersUp()

    def status(self):
        """
        What the health service reads: brokers up, seconds since the last
        confirmed delivery (L{None} before the first), records pending.

        :rtype: L{dict}
        """
        age = None
        if self.lastDeliveryTime is not None:
            age = self.clock.seconds() - self.lastDeliveryTime
        return {"brokersUp": self.brokersUp(), "lastDeliveryAge": age, "pending": self.pending()}

    def delivered(self):
        """
        :return: records Kafka confirmed (exact once nothing is pending).
        """
        return self.produced - self.failureReports - self._keeper.pendingCount()
