# -*- test-case-name: tests.kafka.test_producer -*-
"""
When the producer service replaces its client: after a fatal error at once
(with backoff), and after every broker stayed down for long.  Shorter
outages are left to the client's own reconnects: a new client would produce
again what was in flight, which an idempotent producer otherwise writes once.
"""

__all__ = ["RecreationMixin"]


class RecreationMixin:
    """
    Part of L{gateway.kafka.producer.KafkaProducerService}: its client
    errors and client recreation.  Uses the service's C{clock}, C{log},
    C{retryPolicy}, C{recreateAfter}, C{_connect}, C{_requeue} and
    C{_pump}.

    :ivar lastError: the last client-wide L{DeliveryError}.
    :ivar recreations: clients recreated.
    """

    lastError = None
    recreations = 0
    _lastLogged = None
    _downSince = None
    _recreating = None
    _failedAttempts = 0
    _bytesSentBefore = 0

    def clientError(self, error):
        """
        See L{IProducerEvents.clientError}: log (a repeated error every 30
        seconds); recreate the client after a fatal error, or when every
        broker stays down for C{recreateAfter} seconds.
        """
        self.lastError = error
        now = self.clock.seconds()
        if (
            self._lastLogged is None
            or self._lastLogged[0] != error.code
            or now - self._lastLogged[1] >= 30
        ):
            self._lastLogged = (error.code, now)
            self.log.warn(
                "Kafka producer: {reason}", reason=error.text, code=error.code, fatal=error.fatal
            )
        if error.fatal:
            self._scheduleRecreation("hit a fatal error")
        elif error.allBrokersDown and self._downSince is None:
            # The client reconnects by itself; a new client only helps if
            # the brokers stay unreachable (moved, renamed), and would
            # produce again what was in flight, so wait long first.
            self._downSince = now

    def _checkBrokersDown(self):
        """
        From the poll: forget an outage once a broker is up again; recreate
        the client when it has lasted C{recreateAfter} seconds.
        """
        if self._client.brokersUp():
            self._downSince = None
        elif self.clock.seconds() - self._downSince >= self.recreateAfter:
            self._downSince = None
            self._scheduleRecreation(f"has had no broker for {self.recreateAfter:.0f} s")

    def _scheduleRecreation(self, why):
        if self._recreating is not None or not self.running:
            return
        delay = self.retryPolicy(self._failedAttempts)
        self._failedAttempts += 1
        self.log.error(
            "Kafka producer {why}; recreating it in {delay:.1f} s",
            why=why,
            delay=delay,
        )
        self._recreating = self.clock.callLater(delay, self._recreate)

    def _recreate(self):
        """
        Replace a client that hit a fatal error or lost every broker for
        long: take back what it had not confirmed, create a new one, produce
        those records first.
        """
        self._recreating = None
        old, self._client, self._produce = self._client, None, None
        if old is not None:
            self._bytesSentBefore += old.bytesSent() or 0
            old.purge()
            while old.pendingCount():
                old.poll()
            old.close()
        try:
            self._connect()
        except ValueError as e:
            self.log.error(
                "Kafka producer not recreated: {error}", error=str(e), backend=self.backend.name
            )
            self.clientError(self.lastError)
            return
        self.recreations += 1
        self._requeue()
        self._pump()
