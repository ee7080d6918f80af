# -*- test-case-name: tests.kafka.test_confluent -*-
"""
The default producer backend: confluent-kafka (librdkafka).

librdkafka's threads talk to the brokers; the gateway calls C{produce()}
(which only queues) and serves callbacks with C{poll(0)} from a reactor
timer.  Delivery reports are asked for failures only, so a successful record
costs no Python callback (unless a listener has C{ack=on}: then every record
is reported, and an acknowledged one through its own callback); queue sizes
come from librdkafka's own statistics.

A whole read's frames go to librdkafka in one call (L{ConfluentClient.produceMany}):
through the optional C extension when it is built and confluent-kafka's
layout matches (L{gateway.compat.confluent_kafka}), else a Python loop.  The
extension's records cost no delivery report at all: librdkafka reports the
ones that fail to the extension's interceptor, and L{ConfluentClient.poll}
hands them to the gateway as confluent-kafka's reports are.
"""

import json

from twisted.plugin import IPlugin
from zope.interface import implementer

from gateway.compat.confluent_kafka import C_EXTENSION, accelerate, plugin, withPlugin
from gateway.interfaces import IProducerBackend, IProducerClient
from gateway.kafka.client import NO_CLIENT
from gateway.kafka.records import DeliveryError, Receipt, Record

__all__ = ["ConfluentBackend", "ConfluentClient", "STATISTICS_INTERVAL_MS"]

#: How often librdkafka reports its queue and broker states.
STATISTICS_INTERVAL_MS = 250

_PURGED = {"_PURGE_QUEUE", "_PURGE_INFLIGHT"}
_RETRY = {"_MSG_TIMED_OUT", "_TIMED_OUT"}


def deliveryError(error):
    """
    Translate a C{confluent_kafka.KafkaError}.

    :rtype: L{DeliveryError}
    """
    name = error.name()
    return DeliveryError(
        code=name,
        text=error.str(),
        retriable=bool(error.retriable()) or name in _RETRY,
        fatal=bool(error.fatal()),
        purged=name in _PURGED,
        allBrokersDown=name == "_ALL_BROKERS_DOWN",
    )


#: librdkafka's window figures (microseconds) the gateway exports.
_LATENCY_STAGES = {"queue": "int_latency", "rtt": "rtt"}
_QUANTILES = {"0.5": "p50", "0.95": "p95", "0.99": "p99"}


def _latencyQuantiles(brokers):
    """
    The worst broker's latency quantiles, per stage, in seconds (stages with
    no samples in the window are left out).
    """
    latency = {}
    for stage, field in _LATENCY_STAGES.items():
        windows = [b[field] for b in brokers if b.get(field, {}).get("cnt")]
        if windows:
            latency[stage] = {
                quantile: max(w.get(key, 0) for w in windows) / 1e6
                for quantile, key in _QUANTILES.items()
            }
    return latency


def _inOrder(tracker):
    """
    The delivery callback of a tracker's records: their outcomes, in order.
    """
    delivered = tracker.delivered

    def callback(error, message):
        delivered(None if error is None else deliveryError(error), message.value())

    return callback


class _SilentLog:
    def log(self, *args):
        pass


class _CriticalLog:
    """
    Forward librdkafka's critical log lines; its errors arrive, deduplicated,
    through C{error_cb} instead.
    """

    def __init__(self, log):
        self._log = log

    def log(self, level, fmt, *args):
        if level <= 2:
            self._log.critical("librdkafka: {line}", line=fmt % args)


@implementer(IProducerClient)
class ConfluentClient:
    """
    One C{confluent_kafka.Producer}.

    :ivar produce: the producer's own C{produce}, or the C extension's
        (which takes and raises as it does), bound once: the hot path goes
        straight into librdkafka (its arguments are in the order of
        L{IProducerClient.produce}, which is confluent-kafka's); once closed,
        L{NO_CLIENT}'s, which takes nothing.
    :ivar produceMany: C{produceMany(topic, values, key, headers)}: produce
        a read's frames in order until one is not taken, and return how many
        were (the caller offers the rest to L{produce}, which holds or
        refuses them); the C extension's when bound, else L{_produceMany}.
    :ivar produceTrackedMany: C{produceTrackedMany(topic, values, key,
        headers, seqHeader, tracker, first)}: L{produceMany} for an ack-mode
        connection's records, numbered from C{first} in their C{seqHeader}
        header, whose outcomes L{poll} hands to the tracker by number (the C
        extension's C{produceTracked}); without the extension it takes none
        (the caller offers each to L{produceTracked}).
    :ivar producePath: C{"C extension"}, or C{"Python (why)"}.
    """

    _fast = None

    def __init__(self, config, events, log, producerFactory=None):
        """
        :param config: librdkafka properties.
        :param events: the L{gateway.interfaces.IProducerEvents}.
        :param log: a L{twisted.logger.Logger} for librdkafka's own lines.
        :param producerFactory: C{confluent_kafka.Producer} unless testing.
        """
        if producerFactory is None:
            from confluent_kafka import Producer as producerFactory
        self._events = events
        self._log = log
        self._queuedBytes = 0
        self._brokersUp = None
        self._bytesSent = 0
        self._latency = {}
        settings = dict(config)
        settings.setdefault("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        settings["on_delivery"] = self._delivery
        settings["error_cb"] = self._error
        settings["stats_cb"] = self._statistics
        settings["logger"] = _CriticalLog(log)
        self._producer, why = self._create(producerFactory, settings)
        if why is None:
            self._fast, why = accelerate(self._producer)
        if self._fast is None:
            self.produce = self._producer.produce
            self.produceMany = self._produceMany
            self.produceTrackedMany = NO_CLIENT.produceTrackedMany
            self.producePath = f"Python ({why})"
        else:
            self.produce = self._fast.produce
            self.produceMany = self._fast.produceMany
            self.produceTrackedMany = self._fast.produceTracked
            self.producePath = C_EXTENSION

    @staticmethod
    def _create(producerFactory, settings):
        """
        The producer, with the extension's plugin when it can have it.

        :return: C{(producer, None)}, or C{(producer, reason)} when it runs
            without the plugin (the pure-Python path).
        """
        from confluent_kafka import KafkaException, Producer

        if producerFactory is not Producer:
            producer = producerFactory(settings)
            return producer, f"not a confluent-kafka Producer ({type(producer).__name__})"
        path, why = plugin()
        if path is None:
            return producerFactory(settings), why
        try:
            return producerFactory(withPlugin(settings, path)), None
        except KafkaException as e:
            # The settings without the plugin judge themselves below.
            why = f"librdkafka refused the plugin ({e.args[0].str()})"
        return producerFactory(settings), why

    def _produceMany(self, topic, values, key, headers):
        """
        The pure-Python C{produceMany}: one loop, no Python frame per record
        between the framing and C{Producer.produce}.  A record not taken
        (whatever the exception) ends it: the caller offers that one to
        L{produce} again, which raises for it.
        """
        produce = self._producer.produce
        taken = 0
        try:
            for value in values:
                produce(topic, value, key, headers=headers)
                taken += 1
        except Exception:
            pass
        return taken

    def _delivery(self, error, message):
        # Only failures arrive here (delivery.report.only.error), unless
        # ack mode asked for every report (KafkaProducerService.confirmDeliveries).
        # The C extension's records are reported by _fastFailures instead,
        # in the order librdkafka reports them, so that a purge requeues them
        # in order (a record only confluent-kafka's produce takes, of an odd
        # type, is reported here).
        if error is not None:
            record = Record(
                message.topic(), message.key(), message.headers() or [], message.value()
            )
            self._events.deliveryFailed(record, deliveryError(error))

    def produceTracked(self, topic, value, key, headers, tracker):
        """
        Produce a record whose outcome C{tracker} learns in order (ack
        mode): C{tracker.delivered(error, value)}, with L{None} or a
        L{DeliveryError}, through one callback per tracker, made once and
        kept on it, so that a record in flight holds no Python object of its
        own (thousands of them would cost the garbage collector more than
        the rest of the record's path).
        """
        callback = tracker.deliveryCallback
        if callback is None:
            callback = tracker.deliveryCallback = _inOrder(tracker)
        self._producer.produce(topic, value, key, headers=headers, on_delivery=callback)

    def produceRecord(self, record):
        """
        Produce a record with a L{gateway.kafka.records.Receipt} (ack mode,
        held or produced again): its own callback confirms it, or reports
        the failure with the record itself (receipt and headers included,
        which librdkafka's report lacks).
        """
        events = self._events
        receipt = record.receipt

        def delivered(error, message):
            if error is None:
                receipt.confirmed()
            else:
                events.deliveryFailed(record, deliveryError(error))

        self._producer.produce(
            record.topic, record.value, record.key, headers=record.headers, on_delivery=delivered
        )

    def _error(self, error):
        self._events.clientError(deliveryError(error))

    def _statistics(self, text):
        stats = json.loads(text)
        self._queuedBytes = stats.get("msg_size", 0)
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
        self._brokersUp = sum(1 for b in brokers if b.get("state") == "UP") if brokers else None
        self._bytesSent = sum(b.get("txbytes", 0) for b in stats.get("brokers", {}).values())
        self._latency = _latencyQuantiles(brokers)

    def _fastFailures(self):
        """
        Report the C extension's failed records, as L{_delivery} reports
        the others (after C{poll}: librdkafka hands a failure to the
        extension before the record leaves L{pendingCount}).
        """
        records, lost = self._fast.failures()
        if records:
            from confluent_kafka import KafkaError
        for topic, key, value, headers, code in records:
            self._events.deliveryFailed(
                Record(topic, key, headers, value), deliveryError(KafkaError(code))
            )
        if lost:
            self._log.critical(
                "{lost} failed records could not be copied (out of memory): lost",
                lost=lost,
            )

    def _fastTracked(self):
        """
        Hand the outcomes of the C extension's tracked records (ack mode) to
        their trackers: runs of confirmed numbers at once, a failed record
        as one with a L{Receipt}, so that it is produced again or refused
        and reported by its number.
        """
        outcomes, lost = self._fast.tracked()
        if outcomes:
            from confluent_kafka import KafkaError

            deliveryFailed = self._events.deliveryFailed
            for tracker, first, last, failure in outcomes:
                if failure is None:
                    tracker.settleRange(first, last)
                else:
                    topic, key, value, headers, code = failure
                    record = Record(topic, key, headers, value, Receipt(tracker, first))
                    deliveryFailed(record, deliveryError(KafkaError(code)))
        if lost:
            self._log.critical(
                "{lost} acknowledged-mode outcomes could not be kept (out of memory): "
                "those records are never acknowledged",
                lost=lost,
            )

    def poll(self):
        self._producer.poll(0)
        if self._fast is not None:
            self._fastFailures()
            self._fastTracked()

    def pendingCount(self):
        return len(self._producer)

    def pendingBytes(self):
        return self._queuedBytes

    def brokersUp(self):
        return self._brokersUp

    def bytesSent(self):
        return self._bytesSent

    def latency(self):
        """
        :return: per stage (C{"queue"}: from C{produce()} until sent,
            C{"rtt"}: the broker's round trip), quantile to seconds, over the
            last statistics window: librdkafka measures every record itself,
            so this costs the gateway nothing per message.
        """
        return self._latency

    def purge(self):
        self._producer.purge(in_queue=True, in_flight=True)
        self.poll()

    def close(self):
        self.poll()
        self._producer = self._fast = None
        self.produce = NO_CLIENT.produce
        self.produceMany = NO_CLIENT.produceMany
        self.produceRecord = NO_CLIENT.produceRecord
        self.produceTracked = NO_CLIENT.produceTracked
        self.produceTrackedMany = NO_CLIENT.produceTrackedMany


@implementer(IPlugin, IProducerBackend)
class ConfluentBackend:
    """
    The C{confluent} backend plugin.
    """

    name = "confluent"
    description = "confluent-kafka (librdkafka): every Kafka from 0.10 to 4.x (default)"
    confirmsDeliveries = True

    def __init__(self, producerFactory=None):
        self._producerFactory = producerFactory

    def checkConfig(self, config):
        """
        Let librdkafka judge the configuration without connecting anywhere.
        """
        from confluent_kafka import KafkaException, Producer

        offline = {k: v for k, v in config.items() if k != "bootstrap.servers"}
        offline["logger"] = _SilentLog()
        try:
            Producer(offline)
        except KafkaException as e:
            raise ValueError(e.args[0].str()) from e

    def connect(self, config, events, reactor):
        from twisted.logger import Logger

        return ConfluentClient(
            config, events, Logger(namespace="librdkafka"), self._producerFactory
        )
