# -*- test-case-name: tests.kafka.test_pykafka_backend -*-
"""
The C{pykafka} producer backend, for clusters up to Kafka 3.9.

pykafka blocks, and keeps delivery reports in a queue local to the thread
that produced (pitfall 14), so every pykafka call runs on one dedicated
thread, a one-thread L{ThreadPool} named C{kafka}, through
C{deferToThreadPool}.  Nothing is shared between the threads: the reactor
hands each batch of records to the worker as an argument, and the worker
hands delivery reports back as the result (see
L{gateway.kafka._pykafkaworker.Worker}).

pykafka speaks only the pre-0.11 message format: records carry no headers
(the gateway's provenance headers are dropped; the key still names the
listener and the peer), and Kafka 4, which removed Produce v0-v2, is refused
when the producer is created.  The module is named C{_pykafka} so that it
can never shadow the library.
"""

import itertools
import threading
import weakref

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from gateway.interfaces import IProducerBackend, IProducerClient
from gateway.kafka._pykafkaworker import UnsupportedBroker, Worker, checkBroker
from gateway.kafka.records import DeliveryError, Record

__all__ = ["PykafkaBackend", "PykafkaClient", "UnsupportedBroker", "translateConfig"]

#: Bytes pykafka adds to a message's key and value (crc, magic, sizes, time).
MESSAGE_OVERHEAD = 26

_log = Logger(namespace="gateway.kafka.pykafka")

#: librdkafka properties and the setting each becomes (see translateConfig).
_INT_KEYS = {
    "linger.ms": "linger_ms",
    "queue.buffering.max.ms": "linger_ms",
    "message.max.bytes": "max_request_size",
    "retries": "max_retries",
    "message.send.max.retries": "max_retries",
    "retry.backoff.ms": "retry_backoff_ms",
    "request.timeout.ms": "ack_timeout_ms",
    "socket.timeout.ms": "socket_timeout_ms",
    "queue.buffering.max.messages": "maxMessages",
    "queue.buffering.max.kbytes": "maxKbytes",
}
#: Accepted and without effect: librdkafka-only tuning, or (idempotence)
#: something pykafka does not have, see docs/configuration.md.
_IGNORED = {
    "enable.idempotence",
    "message.timeout.ms",
    "delivery.report.only.error",
    "socket.keepalive.enable",
    "statistics.interval.ms",
    "client.id",
    "api.version.request",
    "broker.version.fallback",
    "batch.num.messages",
    "log_level",
    "log.connection.close",
}
_DEFAULTS = {
    "required_acks": -1,
    "linger_ms": 5,
    "max_request_size": 1000012,
    "max_retries": 3,
    "retry_backoff_ms": 100,
    "ack_timeout_ms": 10000,
    "socket_timeout_ms": 30000,
    "maxMessages": 100000,
    "maxKbytes": 65536,
    "compression": "none",
}


def translateConfig(config):
    """
    Map librdkafka-style properties onto pykafka settings.

    :param config: the gateway's producer properties.
    :return: a L{dict} of settings: C{hosts}, the C{get_producer} keywords,
        C{socket_timeout_ms}, C{maxMessages} and C{maxKbytes}.
    :raises ValueError: naming the properties this backend cannot honour.
    """
    settings = dict(_DEFAULTS)
    unsupported, bad = [], []
    for key, value in config.items():
        try:
            if key == "bootstrap.servers":
                settings["hosts"] = str(value)
            elif key in ("acks", "request.required.acks"):
                settings["required_acks"] = -1 if str(value) == "all" else int(value)
            elif key in _INT_KEYS:
                settings[_INT_KEYS[key]] = int(value)
            elif key in ("compression.type", "compression.codec"):
                if str(value) not in ("none", "gzip"):
                    raise ValueError
                settings["compression"] = str(value)
            elif key == "security.protocol":
                if str(value).lower() != "plaintext":
                    unsupported.append(f"{key}={value}")
            elif key not in _IGNORED:
                unsupported.append(key)
        except ValueError:
            bad.append(f"{key}={value!r}")
    if bad:
        raise ValueError("pykafka backend: invalid value for " + ", ".join(bad))
    if unsupported:
        raise ValueError(
            "pykafka backend does not support "
            + ", ".join(sorted(unsupported))
            + " (use --kafka-backend confluent)"
        )
    if not settings.get("hosts"):
        raise ValueError("pykafka backend: bootstrap.servers is required")
    return settings


class _KafkaThreadPool(ThreadPool):
    """
    A L{ThreadPool} of daemon threads: a pykafka call stuck on the network
    cannot keep the process from exiting once L{PykafkaClient.close} gave up
    waiting for it.
    """

    def threadFactory(self, *args, **kwargs):
        return threading.Thread(*args, daemon=True, **kwargs)


@implementer(IProducerClient)
class PykafkaClient:
    """
    The reactor's side of the pykafka producer: a bounded record count and
    byte total, the records not yet confirmed (for L{purge}), and the reports
    the worker sent back, served by L{poll}.
    """

    def __init__(self, worker, pool, events, reactor, settings, closeTimeout=5.0):
        self._worker = worker
        self._pool = pool
        self._events = events
        self._reactor = reactor
        self._maxMessages = settings["maxMessages"]
        self._maxBytes = settings["maxKbytes"] * 1024
        self._maxRecord = settings["max_request_size"]
        self._closeTimeout = closeTimeout
        self._tickets = itertools.count()
        self._pending = {}
        self._pendingBytes = 0
        self._outbox = []
        self._reports = []
        self._errors = []
        self._brokersUp = None
        self._pumping = self._purged = self._closed = False

    def produce(self, topic, value, key=None, headers=None):
        """
        Take a record without blocking; the worker produces it at its next
        pump.  C{headers} cannot be carried and are only kept for reports.
        """
        size = len(value) if value is not None else 0
        if (
            self._purged
            or self._pending
            and (
                len(self._pending) >= self._maxMessages
                or self._pendingBytes + size > self._maxBytes
            )
        ):
            raise BufferError("Local: Queue full (pykafka backend)")
        if size + len(key or b"") + MESSAGE_OVERHEAD > self._maxRecord:
            raise ValueError(
                f"MSG_SIZE_TOO_LARGE: a {size}-byte record is over "
                f"message.max.bytes ({self._maxRecord})"
            )
        ticket = next(self._tickets)
        self._pending[ticket] = Record(topic, key, headers or [], value)
        self._pendingBytes += size
        self._outbox.append((ticket, topic, key, value))
        if not self._pumping:
            self._pump()

    def _pump(self):
        self._pumping = True
        batch, self._outbox = self._outbox, []
        deferToThreadPool(self._reactor, self._pool, self._worker.pump, batch).addCallbacks(
            self._pumped, self._pumpFailed
        )

    def _pumped(self, result):
        self._pumping = False
        if self._closed:
            return
        reports, errors, self._brokersUp = result
        self._reports.extend(reports)
        self._errors.extend(errors)
        if self._outbox:
            self._pump()

    def _pumpFailed(self, failure):
        self._pumping = False
        if self._closed:
            return
        _log.failure("pykafka worker failed", failure)
        self._errors.append(DeliveryError("PYKAFKA_WORKER", failure.getErrorMessage(), fatal=True))

    def poll(self):
        """
        Serve the reports and errors the worker sent back; start a pump while
        records are pending (their reports wait on the worker's thread).
        """
        self._serve()
        if not (self._pumping or self._closed) and (self._outbox or self._pending):
            self._pump()

    def _serve(self):
        reports, self._reports = self._reports, []
        for ticket, error in reports:
            record = self._pending.pop(ticket, None)
            if record is None:
                continue  # Purged already: a late report is not reported again.
            self._pendingBytes -= len(record.value or b"")
            if error is not None:
                self._events.deliveryFailed(record, error)
        errors, self._errors = self._errors, []
        for error in errors:
            self._events.clientError(error)

    def pendingCount(self):
        """
        See L{IProducerClient.pendingCount}: records taken and neither
        confirmed nor reported failed, wherever they are.
        """
        return len(self._pending)

    def pendingBytes(self):
        """
        See L{IProducerClient.pendingBytes} (exact, never lagging).
        """
        return self._pendingBytes

    def bytesSent(self):
        """
        See L{IProducerClient.bytesSent}: pykafka does not count them.
        """
        return None

    def brokersUp(self):
        """
        See L{IProducerClient.brokersUp}: brokers pykafka holds a connection
        to, as of the last pump.
        """
        return self._brokersUp

    def purge(self):
        """
        Report every unconfirmed record as purged, now.  pykafka cannot take
        back a request already sent: such a record may still be written, and
        its late report is ignored, so it can be delivered twice (once now,
        once when the gateway produces it again): at least once.
        """
        self._serve()
        self._purged = True
        self._worker.purged.set()
        self._outbox = []
        pending, self._pending, self._pendingBytes = self._pending, {}, 0
        for record in pending.values():
            self._events.deliveryFailed(
                record,
                DeliveryError("PURGED", "given up by the gateway (pykafka backend)", purged=True),
            )
        if not self._pumping and not self._closed:
            self._pump()

    def close(self):
        """
        Stop the producer on its thread, waiting at most C{closeTimeout}
        seconds (this blocks the reactor), then the thread pool.
        """
        if self._closed:
            return
        self._closed = True
        stopped = threading.Event()

        def stop():
            try:
                self._worker.stop()
            finally:
                stopped.set()

        deferToThreadPool(self._reactor, self._pool, stop).addErrback(
            lambda f: _log.failure("stopping the pykafka producer failed", f)
        )
        if stopped.wait(self._closeTimeout):
            self._pool.stop()
        else:
            _log.warn(
                "the pykafka producer did not stop within {timeout} s; its thread is left behind",
                timeout=self._closeTimeout,
            )


@implementer(IPlugin, IProducerBackend)
class PykafkaBackend:
    """
    The C{pykafka} backend plugin.  pykafka is imported only when used.
    """

    name = "pykafka"
    description = (
        "pykafka 2.8 (pure Python, extra 'pykafka'): Kafka 0.10 to 3.9, no record headers"
    )

    def __init__(self, clientFactory=None, poolFactory=None, probe=None):
        """
        :param clientFactory: C{pykafka.KafkaClient} unless testing.
        :param poolFactory: makes the unstarted one-thread pool.
        :param probe: C{checkBroker} unless testing.
        """
        self._clientFactory = clientFactory
        self._poolFactory = poolFactory or (
            lambda: _KafkaThreadPool(minthreads=1, maxthreads=1, name="kafka")
        )
        self._probe = probe or checkBroker
        self._started = weakref.WeakSet()

    def _factory(self):
        if self._clientFactory is not None:
            return self._clientFactory
        try:
            from pykafka import KafkaClient
        except ImportError as e:
            raise ValueError(
                f"the pykafka backend needs pykafka 2.8.0 and setuptools < 81 "
                f"(pip install 'kafka-gateway[pykafka]'): {e}"
            ) from e
        return KafkaClient

    def checkConfig(self, config):
        """
        See L{IProducerBackend.checkConfig}: map the properties, and check
        that pykafka imports.
        """
        translateConfig(config)
        self._factory()

    def connect(self, config, events, reactor):
        """
        See L{IProducerBackend.connect}.  The first time for C{events} (at
        start, not when recreating a client), asks a bootstrap broker whether it takes
        the old message format, blocking a
        few seconds at most, so that Kafka 4 is refused at once instead of
        failing every record; the worker asks again before each connection,
        off the reactor.

        :raises UnsupportedBroker: for Kafka 4 and later.
        """
        settings = translateConfig(config)
        factory = self._factory()
        if events not in self._started:
            try:
                self._probe(settings["hosts"])
            except OSError as e:
                _log.warn(
                    "cannot check the Kafka version now ({error}); "
                    "checked again before connecting",
                    error=str(e),
                )
            self._started.add(events)
            _log.warn(
                "pykafka backend: records carry no headers (the pre-0.11 "
                "message format has none), so the gateway-listener and "
                "gateway-peer headers are dropped (the key still names "
                "listener/peer); no idempotent producer: a retried batch may "
                "be written twice"
            )
        pool = self._poolFactory()
        pool.start()
        worker = Worker(settings, factory, self._probe)
        client = PykafkaClient(worker, pool, events, reactor, settings)
        client._pump()  # Connect now, not at the first record.
        return client
