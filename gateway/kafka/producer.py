# -*- test-case-name: tests.test_producer -*-
"""
L{KafkaProducerService}: the one confluent-kafka producer every listener and
connection shares.

Nothing here blocks the reactor: C{produce()} only enqueues (librdkafka's own
threads talk to the brokers), callbacks are served by C{poll(0)} on a timer,
and a full queue turns into a backlog plus back-pressure instead of a wait or
a loss.  Delivery reports are asked for errors only, so a successful message
costs no Python callback; success is counted from the producer's queue.
"""

from collections import deque

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = [
    "KafkaProducerService",
    "producerConfig",
    "checkProducerConfig",
    "DEFAULT_PRODUCER_CONFIG",
]

#: What the gateway's guarantees rest on; C{--kafka-option} may override.
DEFAULT_PRODUCER_CONFIG = {
    # Every in-sync replica has the record before it counts as delivered, and
    # retries never duplicate or reorder (per partition).
    "acks": "all",
    "enable.idempotence": True,
    # Never expire a queued record because a timer ran out: while Kafka is
    # down records wait, bounded by the queue and the back-pressure.
    "message.timeout.ms": 0,
    "linger.ms": 5,
    "delivery.report.only.error": True,
    "socket.keepalive.enable": True,
}


def producerConfig(bootstrapServers, options=None, maxMessageSize=None):
    """
    Build the librdkafka configuration for the gateway's producer.

    :param bootstrapServers: C{host:port[,host:port...]}.
    :param options: librdkafka properties given by the user; they win.
    :param maxMessageSize: the largest payload the listeners accept; the
        producer's own C{message.max.bytes} is raised to leave room for it
        and the record's key and headers.
    :rtype: L{dict}
    """
    config = dict(DEFAULT_PRODUCER_CONFIG)
    config["bootstrap.servers"] = bootstrapServers
    if maxMessageSize is not None:
        config["message.max.bytes"] = max(1000000, maxMessageSize + 65536)
    config.update(options or {})
    return config


def checkProducerConfig(config):
    """
    Let librdkafka judge a configuration without connecting anywhere, so a
    misspelt or conflicting property is reported before anything starts.

    :param config: a configuration from L{producerConfig}.
    :raises ValueError: with librdkafka's own explanation.
    """
    from confluent_kafka import KafkaException, Producer

    offline = {k: v for k, v in config.items() if k != "bootstrap.servers"}
    offline["logger"] = _SilentLog()
    try:
        Producer(offline)
    except KafkaException as e:
        raise ValueError(e.args[0].str()) from e


class _SilentLog:
    def log(self, *args):
        pass


class _NoObserver:
    """
    Stands in until a router observes the producer.
    """

    def producerBlocked(self):
        pass

    def producerUnblocked(self):
        pass

    def deliveryFailed(self, error, message):
        pass


class KafkaProducerService(Service):
    """
    Own the process's one Kafka producer from start to drained stop.

    :ivar observer: told when the producer blocks or unblocks and when a
        delivery fails (the L{gateway.router.Router}).
    :ivar produced: records handed to librdkafka.
    :ivar failed: records Kafka refused for good (delivery reports).
    :ivar rejected: records librdkafka refused at C{produce()}, e.g. too
        large.
    """

    name = "kafka-producer"
    log = Logger()

    def __init__(
        self,
        config,
        clock,
        producerFactory=None,
        pollInterval=0.05,
        drainTimeout=30.0,
    ):
        """
        :param config: the librdkafka configuration (see L{producerConfig}).
        :param clock: an L{twisted.internet.interfaces.IReactorTime}.
        :param producerFactory: builds the producer from a configuration;
            C{confluent_kafka.Producer} by default.
        :param pollInterval: seconds between C{poll(0)} calls.
        :param drainTimeout: seconds C{stopService} waits for Kafka to confirm
            what was produced.
        """
        self.config = dict(config)
        self.clock = clock
        self.pollInterval = pollInterval
        self.drainTimeout = drainTimeout
        self.observer = _NoObserver()
        self.produced = 0
        self.failed = 0
        self.rejected = 0
        self._producerFactory = producerFactory
        self._producer = None
        self._produce = None
        self._backlog = deque()
        self._poller = None
        self._lastError = None

    # Life cycle

    def privilegedStartService(self):
        """
        Create the producer before any listener binds, so a bad configuration
        stops the start instead of leaving a gateway that cannot publish.
        """
        Service.privilegedStartService(self)
        self._createProducer()

    def _createProducer(self):
        if self._producer is not None:
            return
        factory = self._producerFactory
        if factory is None:
            from confluent_kafka import Producer as factory
        config = dict(self.config)
        config["on_delivery"] = self._deliveryReport
        config["error_cb"] = self._kafkaError
        config["logger"] = _LibrdkafkaLog(self.log)
        try:
            self._producer = factory(config)
        except Exception as e:
            raise ValueError(f"cannot create the Kafka producer: {e}") from e
        self._produce = self._producer.produce
        self.log.info(
            "Kafka producer created for {bootstrap}",
            bootstrap=self.config.get("bootstrap.servers"),
        )

    def startService(self):
        """
        Start serving the producer's callbacks from the reactor.
        """
        self._createProducer()
        Service.startService(self)
        self._poller = LoopingCall(self._poll)
        self._poller.clock = self.clock
        self._poller.start(self.pollInterval, now=False).addErrback(
            lambda f: self.log.failure("producer poll loop stopped", f)
        )

    def stopService(self):
        """
        Drain: wait, without blocking the reactor, until Kafka confirmed every
        record or C{drainTimeout} passed, then log what is left.

        :return: a L{Deferred} firing when the drain is over.
        """
        Service.stopService(self)
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None
        if self._producer is None:
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

        def finished(_):
            self._producer.poll(0)
            remaining = self.pending()
            if remaining:
                self.log.error(
                    "Kafka producer stopped with {remaining} records not "
                    "confirmed after {timeout} s",
                    remaining=remaining,
                    timeout=self.drainTimeout,
                )
            else:
                self.log.info(
                    "Kafka producer drained: {produced} records produced, "
                    "{failed} failed, {rejected} rejected",
                    produced=self.produced,
                    failed=self.failed,
                    rejected=self.rejected,
                )
            done.callback(remaining)

        drainer = LoopingCall(check)
        drainer.clock = self.clock
        drainer.start(self.pollInterval).addCallback(finished)
        return done

    # The hot path

    def produce(self, topic, key, headers, value):
        """
        Publish one record; never blocks, never drops.

        When librdkafka's queue is full the record joins a backlog, and so do
        all later ones until the backlog is empty again, which keeps every
        connection's records in order.

        :param topic: the Kafka topic.
        :param key: the record key (L{bytes} or L{None}).
        :param headers: a list of C{(name, bytes)} pairs.
        :param value: the payload.
        """
        if self._backlog:
            self._backlog.append((topic, key, headers, value))
            # Whoever is still sending must be paused too (the observer
            # makes a repeated call cheap).
            self.observer.producerBlocked()
            return
        try:
            self._produce(topic, value, key, headers=headers)
        except BufferError:
            self._backlog.append((topic, key, headers, value))
            self.observer.producerBlocked()
            return
        except Exception as e:
            self._rejectedAtProduce(e, topic, value)
            return
        self.produced += 1

    # Serving the producer

    def pending(self):
        """
        :return: records not yet confirmed by Kafka: the backlog plus
            librdkafka's queue (which also counts in-flight requests).
        :rtype: L{int}
        """
        queued = len(self._producer) if self._producer is not None else 0
        return len(self._backlog) + queued

    def _poll(self):
        """
        Serve delivery reports and errors, then move the backlog into the
        producer's queue as far as it fits.
        """
        self._producer.poll(0)
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
                self._rejectedAtProduce(e, topic, value)
            else:
                self.produced += 1
            backlog.popleft()
        self.observer.producerUnblocked()

    def _rejectedAtProduce(self, error, topic, value):
        self.rejected += 1
        self.log.error(
            "librdkafka refused a {size}-byte record for {topic}: {reason}",
            size=len(value),
            topic=topic,
            reason=str(error),
        )

    def _deliveryReport(self, error, message):
        # Called from poll(0), on the reactor thread; only for errors because
        # of delivery.report.only.error.
        if error is not None:
            self.failed += 1
            self.observer.deliveryFailed(error, message)

    def _kafkaError(self, error):
        # librdkafka repeats transport errors on every reconnect attempt: log
        # a new kind of error at once, a repeated one every 30 seconds.
        code, now = error.code(), self.clock.seconds()
        if self._lastError is not None:
            lastCode, lastTime = self._lastError
            if code == lastCode and now - lastTime < 30:
                return
        self._lastError = (code, now)
        self.log.warn(
            "Kafka producer: {reason}", reason=error.str(), code=error.name(),
            fatal=error.fatal(),
        )


class _LibrdkafkaLog:
    """
    Forward librdkafka's critical log lines to the Twisted logger.  Its
    errors also arrive through C{error_cb}, where they are deduplicated;
    logged here too they would repeat on every reconnect attempt.
    """

    def __init__(self, log):
        self._log = log

    def log(self, level, fmt, *args):
        # level is a syslog level: 0 emergency, 2 critical, 3 error ... 7 debug.
        if level <= 2:
            self._log.critical(
                "librdkafka: {line}", line=fmt % args, syslogLevel=level
            )
