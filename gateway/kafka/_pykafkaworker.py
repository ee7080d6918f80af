# -*- test-case-name: tests.kafka.test_pykafka_backend -*-
"""
The blocking half of the C{pykafka} backend: everything that runs on its
C{kafka} thread (L{Worker}: the pykafka calls themselves) or blocks for a
bounded time at start (L{checkBroker}, the Kafka 4 check).  pykafka is never
imported here: its client class is passed in, its exceptions are told apart
by name; what it needs of pykafka's private state goes through
L{gateway.compat.pykafka}, and the bytes of its Kafka 4 check are
L{gateway.kafka.wire}'s.
"""

import queue
import random
import socket
import threading
import time
import zlib
from contextlib import closing

from gateway.compat.pykafka import disconnectBroker, dropQueued, workerException
from gateway.kafka.records import DeliveryError
from gateway.kafka.wire import (
    API_PRODUCE,
    MalformedResponse,
    blockingCall,
    decodeApiVersionsResponse,
    encodeApiVersionsRequest,
    encodeEmptyProduceRequest,
    versionRange,
)

__all__ = [
    "BROKER_VERSION",
    "UnsupportedBroker",
    "Worker",
    "checkBroker",
    "crc32Partitioner",
    "deliveryError",
    "probeBroker",
]

#: The protocol version pykafka is told to speak: message format v1.
BROKER_VERSION = "0.10.0"
#: Kafka's highest Produce version with the old message format.
LAST_OLD_PRODUCE = 2
#: The client id of the Kafka 4 check's requests.
CLIENT_ID = b"kafka-gateway"

#: Errors after which producing the record again may succeed.
_RETRIABLE = {
    "SocketDisconnectedError",
    "ProduceFailureError",
    "NoBrokersAvailableError",
    "LeaderNotFoundError",
    "LeaderNotAvailable",
    "NotLeaderForPartition",
    "UnknownTopicOrPartition",
    "RequestTimedOut",
    "InvalidMessageError",
    "error",
    "OSError",  # struct.error (a truncated reply), socket errors
}


def deliveryError(error):
    """
    Translate a pykafka exception (matched by class name, so that pykafka is
    not imported here).

    :rtype: L{DeliveryError}
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    return DeliveryError(
        code=type(error).__name__,
        text=str(error) or type(error).__name__,
        retriable=bool(names & _RETRIABLE),
        allBrokersDown="NoBrokersAvailableError" in names,
    )


class UnsupportedBroker(ValueError):
    """
    The broker no longer speaks the message format pykafka writes (Kafka 4).
    """


def probeBroker(address, timeout=3.0, connect=socket.create_connection):
    """
    Ask one broker for its Produce versions (ApiVersions v0), then send the
    request pykafka sends, Produce v0, empty (no topic: nothing is written).
    Kafka 4 still advertises Produce v0 (KAFKA-18659) but closes the
    connection on it.  See U{https://kafka.apache.org/protocol.html}.

    :param address: C{host:port}.
    :param timeout: seconds for connecting and for each reply.
    :return: C{(lowest, highest, oldProduce)}: the Produce versions
        advertised, and whether the empty Produce v0 was answered.
    :raises OSError: when the broker cannot be reached or does not answer.
    """
    host, _, port = address.strip().rpartition(":")
    with closing(connect((host.strip("[]"), int(port)), timeout)) as sock:
        sock.settimeout(timeout)
        try:
            reply = blockingCall(sock, encodeApiVersionsRequest(1, CLIENT_ID), 1)
            answer = decodeApiVersionsResponse(reply)
        except MalformedResponse as e:
            raise OSError(f"malformed ApiVersions answer: {e}") from e
        if answer.errorCode:
            raise OSError(f"ApiVersions answered with error code {answer.errorCode}")
        produce = versionRange(answer.apiKeys, API_PRODUCE)
        if produce is None:
            raise OSError("the broker offers no Produce API")
        try:
            blockingCall(sock, encodeEmptyProduceRequest(2, CLIENT_ID), 2)
        except ConnectionError:
            return produce + (False,)
        except MalformedResponse as e:
            raise OSError(f"malformed Produce answer: {e}") from e
    return produce + (True,)


def checkBroker(hosts, timeout=3.0, connect=socket.create_connection):
    """
    Refuse a cluster pykafka cannot write to: the first bootstrap broker that
    answers decides.

    :param hosts: C{host:port[,host:port...]}.
    :raises UnsupportedBroker: for a broker without Produce v0-v2 (Kafka 4).
    :raises OSError: when no broker answers.
    """
    problems = []
    for address in hosts.split(","):
        try:
            low, high, oldProduce = probeBroker(address, timeout, connect)
        except (OSError, ValueError) as e:
            problems.append(f"{address}: {e}")
            continue
        if low > LAST_OLD_PRODUCE or not oldProduce:
            why = (
                f"it serves Produce v{low}-v{high} only"
                if oldProduce
                else "it closed the connection on a Produce v0 request"
            )
            raise UnsupportedBroker(
                f"the pykafka backend cannot produce to the broker at "
                f"{address.strip()}: {why}. pykafka writes only the pre-0.11 "
                f"message format (Produce v0-v{LAST_OLD_PRODUCE}), which Kafka 4 "
                f"removed; use --kafka-backend confluent, or a Kafka <= 3.9 "
                f"cluster"
            )
        return
    raise OSError("no bootstrap broker answered: " + "; ".join(problems))


def crc32Partitioner(partitions, key):
    """
    The partition librdkafka's default partitioner picks: CRC-32 of the key
    modulo the partition count (a random one without a key), so both
    backends place a connection's records alike and keep them in order.
    """
    ordered = sorted(partitions, key=lambda partition: partition.id)
    if key is None:
        return random.choice(ordered)
    return ordered[zlib.crc32(key) % len(ordered)]


class Worker:
    """
    Everything that touches pykafka; used on the C{kafka} thread only (so
    that pykafka's thread-local delivery reports are all seen).  The reactor
    talks to it only through L{pump}'s arguments and result.

    The client is created at the first pump, after L{checkBroker}; a failure
    is reported as a client error and retried with a growing delay, records
    waiting.  Records pykafka's queue cannot take (C{ProducerQueueFullError})
    wait, in order, for the next pump.  A pykafka producer whose thread died
    makes the worker I{broken}: a fatal client error, so the gateway recreates
    the client.

    :ivar purged: set (from the reactor's thread) when the client is purged:
        from then on nothing more is handed to pykafka.
    """

    def __init__(self, settings, clientFactory, probe, clock=time.monotonic):
        self.purged = threading.Event()
        self._settings = settings
        self._clientFactory = clientFactory
        self._probe = probe
        self._clock = clock
        self._client = None
        self._producers = {}
        self._stalled = []
        self._inflight = {}
        self._broken = False
        self._failures = 0
        self._retryAt = 0.0

    def pump(self, batch):
        """
        Produce what can be produced, collect delivery reports.  Once
        L{purged}, drop what pykafka has not sent.

        :param batch: C{(ticket, topic, key, value)} records, in order.
        :return: C{(reports, errors, brokersUp)}: C{(ticket, DeliveryError
            or None)} per record settled, client-wide L{DeliveryError}s, and
            the brokers connected (or L{None}).
        """
        reports, errors = [], []
        self._stalled.extend(batch)
        if self._ready(errors) and self._stalled:
            self._produce(reports, errors)
        if self.purged.is_set():
            self._discard()
        self._collect(reports, errors)
        return reports, errors, self._brokersUp()

    def _ready(self, errors):
        if self._broken or self._clock() < self._retryAt:
            return False
        if self._client is not None:
            return True
        try:
            self._probe(self._settings["hosts"])
            self._client = self._clientFactory(
                hosts=self._settings["hosts"],
                broker_version=BROKER_VERSION,
                socket_timeout_ms=self._settings["socket_timeout_ms"],
            )
        except UnsupportedBroker as e:
            errors.append(DeliveryError("UNSUPPORTED_BROKER", str(e)))
            self._backOff(maximum=60.0)
            return False
        except Exception as e:
            errors.append(
                DeliveryError(
                    "NoBrokersAvailableError",
                    f"cannot connect to Kafka: {e}",
                    retriable=True,
                    allBrokersDown=True,
                )
            )
            self._backOff()
            return False
        self._failures = 0
        return True

    def _backOff(self, maximum=5.0):
        self._failures += 1
        self._retryAt = self._clock() + min(maximum, 0.25 * 2**self._failures)

    def _producer(self, topic):
        producer = self._producers.get(topic)
        if producer is None:
            s = self._settings
            producer = self._client.topics[topic].get_producer(
                partitioner=crc32Partitioner,
                sync=False,
                delivery_reports=True,
                block_on_queue_full=False,
                required_acks=s["required_acks"],
                linger_ms=s["linger_ms"],
                max_queued_messages=s["maxMessages"],
                max_request_size=s["max_request_size"],
                max_retries=s["max_retries"],
                retry_backoff_ms=s["retry_backoff_ms"],
                ack_timeout_ms=s["ack_timeout_ms"],
                queue_empty_timeout_ms=1000,
                # stop() waits for nothing: the gateway's drain already did.
                pending_timeout_ms=0,
                compression=1 if s["compression"] == "gzip" else 0,
            )
            self._producers[topic] = producer
        return producer

    def _produce(self, reports, errors):
        stalled, done = self._stalled, 0
        for ticket, topic, key, value in stalled:
            if self.purged.is_set():
                break
            try:
                producer = self._producer(topic)
            except Exception as e:
                errors.append(
                    DeliveryError(
                        type(e).__name__,
                        f"cannot produce to topic {topic!r}: {e}",
                        retriable=True,
                    )
                )
                self._backOff()
                break
            try:
                message = producer.produce(value, partition_key=key)
            except Exception as e:
                name = type(e).__name__
                if name == "ProducerQueueFullError":
                    break  # Back-pressure: try again at the next pump.
                if isinstance(e, (TypeError, ValueError)):
                    reports.append((ticket, deliveryError(e)))
                    done += 1
                    continue
                errors.append(DeliveryError(name, f"pykafka producer failed: {e}", fatal=True))
                self._broken = True
                break
            self._inflight[id(message)] = (message, ticket)
            self._failures = 0
            done += 1
        del stalled[:done]

    def _collect(self, reports, errors):
        for producer in self._producers.values():
            while True:
                try:
                    message, error = producer.get_delivery_report(block=False)
                except queue.Empty:
                    break
                entry = self._inflight.pop(id(message), None)
                if entry is not None:
                    reports.append((entry[1], None if error is None else deliveryError(error)))
            failed = workerException(producer)
            if failed is not None and not self._broken:
                self._broken = True
                errors.append(
                    DeliveryError(
                        failed[0].__name__,
                        f"pykafka producer thread died: {failed[1]}",
                        fatal=True,
                    )
                )

    def _brokersUp(self):
        if self._client is None:
            return None
        try:
            return sum(1 for b in list(self._client.brokers.values()) if b.connected)
        except Exception:
            return None

    def _discard(self):
        """
        After a purge: forget the records not handed to pykafka, and empty
        pykafka's own per-broker queues (best effort, see
        L{gateway.compat.pykafka.dropQueued}); requests already sent cannot be
        taken back.
        """
        self._stalled = []
        for producer in self._producers.values():
            try:
                dropQueued(producer)
            except Exception:
                pass

    def stop(self):
        """
        Stop every producer and close the broker connections.  Nothing is
        waited for (C{pending_timeout_ms=0}): the gateway drains before, and
        a request in flight completes or fails within the socket timeout.
        """
        if self.purged.is_set():
            self._discard()
        for producer in self._producers.values():
            try:
                producer.stop()
            except Exception:
                pass
        for broker in list(getattr(self._client, "brokers", {}).values()):
            try:
                disconnectBroker(broker)
            except Exception:
                pass
        self._producers, self._client = {}, None
