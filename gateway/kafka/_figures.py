# -*- test-case-name: tests.kafka.test_producer -*-
"""
What the producer service tells the rest of the gateway about itself: records
and bytes held, deliveries, the client's brokers, bytes sent and latency.
Read by the router (budget), the health service, the metrics and the status
page; never computed per message.
"""

__all__ = ["ProducerFiguresMixin", "RECORD_OVERHEAD"]

#: Memory a held record costs besides its payload: librdkafka's message and
#: buffers, measured at about 0.5 KiB a record (tests/integration/test_faults.py,
#: broker frozen); counted so that the byte budget bounds memory.
RECORD_OVERHEAD = 512


class ProducerFiguresMixin:
    """
    Part of L{gateway.kafka.producer.KafkaProducerService}: its figures,
    from the service's C{_client}, C{_backlog}, C{backlogBytes}, counters
    and C{clock}.
    """

    lastDeliveryTime = None
    _bytesSentBefore = 0

    def pending(self):
        """
        :return: records not yet confirmed: the backlog plus the client's
            queue (which may also count protocol requests).
        """
        queued = self._client.pendingCount() if self._client is not None else 0
        return len(self._backlog) + queued

    def heldBytes(self):
        """
        :return: bytes held for records accepted and not yet confirmed:
            their payloads plus L{RECORD_OVERHEAD} each, so the budget bounds
            memory and not only payload (the client's figure lags by its
            statistics interval).
        """
        client = self._client
        if client is None:
            queuedBytes = queuedCount = 0
        else:
            queuedBytes, queuedCount = client.pendingBytes(), client.pendingCount()
        records = len(self._backlog) + queuedCount
        return self.backlogBytes + queuedBytes + records * RECORD_OVERHEAD

    def bytesSent(self):
        """
        :return: bytes sent to Kafka by every client this service had, or
            L{None} when the backend does not count them.
        """
        sent = self._client.bytesSent() if self._client is not None else 0
        if sent is None:
            return None
        return self._bytesSentBefore + sent

    def hasClient(self):
        """
        :return: whether a client exists (started, not stopped, not between
            a fatal error and its recreation).
        """
        return self._client is not None

    def latency(self):
        """
        :return: the client's delivery latency quantiles by stage, in
            seconds (empty when the backend does not measure them).
        """
        client = self._client
        return getattr(client, "latency", dict)() if client is not None else {}

    def brokersUp(self):
        """
        :return: brokers the client is connected to, or L{None} if unknown.
        """
        return self._client.brokersUp() if self._client is not None else None

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
        queued = self._client.pendingCount() if self._client is not None else 0
        return self.produced - self.failureReports - queued
