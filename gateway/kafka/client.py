# -*- test-case-name: tests.kafka.test_client -*-
"""
The producer service's one client, kept by one object: it creates the
client, replaces it after a fatal error at once (with backoff) or after every
broker stayed down for long, and remembers what earlier clients sent.

Shorter outages are left to the client's own reconnects: a new client would
produce again what was in flight, which an idempotent producer otherwise
writes once.

While there is no client (before the start, after the stop, between a fatal
error and its recreation) the keeper holds L{NO_CLIENT}, a client that takes
no record: "no client" is a state, not a C{None} to trip over.
"""

from twisted.logger import Logger
from zope.interface import implementer

from gateway.allocator import mallocLibrary
from gateway.interfaces import IProducerClient

__all__ = ["ClientKeeper", "NoClient", "NO_CLIENT"]


@implementer(IProducerClient)
class NoClient:
    """
    The client in place while there is none: its queue has no room, so every
    record offered waits in the service's backlog (or, once stopped, goes to
    the spool), exactly like records a full queue refused.
    """

    def produce(self, topic, value, key=None, headers=None):
        """
        Take nothing.

        :raises BufferError: always (see L{IProducerClient.produce}).
        """
        raise BufferError("no Kafka producer client")

    def produceMany(self, topic, values, key, headers):
        """
        Take nothing: the caller offers each record to L{produce}.

        :return: C{0}.
        """
        return 0

    def produceRecord(self, record):
        """
        Take nothing.

        :raises BufferError: always.
        """
        raise BufferError("no Kafka producer client")

    def produceTracked(self, topic, value, key, headers, tracker):
        """
        Take nothing.

        :raises BufferError: always.
        """
        raise BufferError("no Kafka producer client")

    def produceTrackedMany(self, topic, values, key, headers, seqHeader, tracker, first):
        """
        Take nothing: the caller offers each record to L{produceTracked}.

        :return: C{0}.
        """
        return 0

    def poll(self):
        pass

    def pendingCount(self):
        return 0

    def pendingBytes(self):
        return 0

    def brokersUp(self):
        return None

    def bytesSent(self):
        return 0

    def latency(self):
        return {}

    def purge(self):
        pass

    def close(self):
        pass


#: The one L{NoClient}.
NO_CLIENT = NoClient()


class ClientKeeper:
    """
    Own the producer service's client: create it, recreate it when it
    cannot recover by itself, and read its figures.

    :ivar client: the current L{IProducerClient}, or L{NO_CLIENT}.
    :ivar lastError: the last client-wide L{gateway.kafka.records.DeliveryError}.
    :ivar recreations: clients recreated.
    """

    log = Logger()

    def __init__(self, backend, config, events, clock, retryPolicy, recreateAfter, replaced):
        """
        :param backend: the L{gateway.interfaces.IProducerBackend}.
        :param config: the producer configuration.
        :param events: the L{gateway.interfaces.IProducerEvents} every client
            reports to.
        :param clock: the reactor (an L{IReactorTime}, handed to backends).
        :param retryPolicy: seconds to wait before the Nth recreation in a
            row (attempts count from the last confirmed delivery).
        :param recreateAfter: seconds with every broker down after which the
            client is recreated.
        :param replaced: called with the new client after a recreation (or
            with L{NO_CLIENT} when one failed), so that its owner produces
            again what the old client had not confirmed.
        """
        self.backend = backend
        self.config = config
        self.events = events
        self.clock = clock
        self.retryPolicy = retryPolicy
        self.recreateAfter = recreateAfter
        self.client = NO_CLIENT
        self.lastError = None
        self.recreations = 0
        self._replaced = replaced
        self._recreating = None
        self._running = False
        self._failedAttempts = 0
        self._downSince = None
        self._lastLogged = None
        self._bytesSentBefore = 0

    # Creating and closing

    def connect(self):
        """
        Create the client.

        :return: the new client.
        :raises ValueError: saying why the backend refused.
        """
        try:
            client = self.backend.connect(self.config, self.events, self.clock)
        except Exception as e:
            raise ValueError(f"cannot create the Kafka producer ({self.backend.name}): {e}") from e
        self.client = client
        path = getattr(client, "producePath", None)
        self.log.info(
            "Kafka producer created ({backend}) for {bootstrap}"
            + ("" if path is None else "; produce path: {producePath}; malloc: {malloc}"),
            backend=self.backend.name,
            bootstrap=self.config.get("bootstrap.servers"),
            producePath=path,
            # Where librdkafka's records are allocated (docs/architecture.md,
            # "The allocator"), for a backend producing in this process.
            malloc=None if path is None else mallocLibrary(),
        )
        return client

    def producePath(self):
        """
        :return: which produce path the client runs (C{"C extension"}, or
            C{"Python"} and why), or L{None} when its backend has one only.
        """
        return getattr(self.client, "producePath", None)

    def close(self):
        """
        Give up on what the client has not confirmed (each record is reported
        to the events object as purged) and release it; keep its byte count.
        """
        client, self.client = self.client, NO_CLIENT
        self._bytesSentBefore += client.bytesSent() or 0
        if client.pendingCount():
            client.purge()
            while client.pendingCount():
                client.poll()
        client.close()

    def hasClient(self):
        """
        :return: whether a client exists (started, not stopped, not between
            a fatal error and its recreation).
        """
        return self.client is not NO_CLIENT

    def recreating(self):
        """
        :return: whether a recreation is waiting for its backoff delay.
        """
        return self._recreating is not None

    # Recreation

    def start(self):
        """
        From now on, recreate the client when it needs it.
        """
        self._running = True

    def stop(self):
        """
        No more recreations; one waiting for its delay happens now, so that
        a drain sees every record the old client held.
        """
        self._running = False
        if self._recreating is not None and self._recreating.active():
            self._recreating.cancel()
            self._recreate()

    def clientError(self, error):
        """
        See L{gateway.interfaces.IProducerEvents.clientError}: log (a repeated
        error every 30 seconds); recreate the client after a fatal error, or
        when every broker stays down for C{recreateAfter} seconds.
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

    def poll(self):
        """
        Serve the client's reports; forget an outage once a broker is up
        again, and recreate the client when it has lasted C{recreateAfter}
        seconds.
        """
        self.client.poll()
        if self._downSince is None:
            return
        if self.client.brokersUp():
            self._downSince = None
        elif self.clock.seconds() - self._downSince >= self.recreateAfter:
            self._downSince = None
            self._scheduleRecreation(f"has had no broker for {self.recreateAfter:.0f} s")

    def delivering(self):
        """
        Deliveries are being confirmed: the next recreation waits the
        shortest delay again.
        """
        self._failedAttempts = 0

    def _scheduleRecreation(self, why):
        if self._recreating is not None or not self._running:
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
        Replace the client: take back what it had not confirmed, create a
        new one, and tell the owner (which produces those records first).
        """
        self._recreating = None
        self.close()
        try:
            client = self.connect()
        except ValueError as e:
            self.log.error(
                "Kafka producer not recreated: {error}", error=str(e), backend=self.backend.name
            )
            self._replaced(NO_CLIENT)
            self._scheduleRecreation("could not be created again")
            return
        self.recreations += 1
        self._replaced(client)

    # Figures

    def pendingCount(self):
        """
        :return: records the client took and has not confirmed.
        """
        return self.client.pendingCount()

    def pendingBytes(self):
        """
        :return: payload bytes of those records (from the client's
            statistics, so they may lag).
        """
        return self.client.pendingBytes()

    def bytesSent(self):
        """
        :return: bytes sent to Kafka by every client so far, or L{None} when
            the backend does not count them.
        """
        sent = self.client.bytesSent()
        if sent is None:
            return None
        return self._bytesSentBefore + sent

    def latency(self):
        """
        :return: the client's delivery latency quantiles by stage, in
            seconds (empty when the backend does not measure them).
        """
        return getattr(self.client, "latency", dict)()

    def brokersUp(self):
        """
        :return: brokers the client is connected to, or L{None} if unknown.
        """
        return self.client.brokersUp()
