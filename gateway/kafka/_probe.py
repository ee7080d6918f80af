# -*- test-case-name: tests.kafka.test_probe -*-
"""
A minimal Kafka client protocol for health probes: ApiVersions v0 over one
connection (after SASL authentication, L{gateway.kafka.sasl}, when the
cluster asks for it), replies matched to requests by correlation id.

ApiVersions is the cheapest request a broker serves and every Kafka from
0.10 to 4.x answers version 0, so the same probe works against any cluster
the gateway supports.  Its bytes are L{gateway.kafka.wire}'s.
"""

from collections import namedtuple

from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver

from gateway.addresses import formatAddress
from gateway.kafka.wire import (
    MalformedResponse,
    correlationIdOf,
    decodeApiVersionsResponse,
    encodeApiVersionsRequest,
)

__all__ = [
    "CLIENT_ID",
    "KafkaProbeFactory",
    "KafkaProbeProtocol",
    "ProbeConnectionLost",
    "ProbeError",
    "ProbeResult",
    "ProbeTimeout",
]

#: The client id the probe announces; it shows in the broker's request logs.
CLIENT_ID = b"kafka-gateway-probe"
#: Seconds a probe waits for its reply by default.
DEFAULT_TIMEOUT = 3.0

_MAX_CORRELATION_ID = 2**31 - 1


class ProbeError(Exception):
    """
    A probe got no usable answer.
    """


class ProbeTimeout(ProbeError):
    """
    No reply came within the probe's timeout; the connection was closed.
    """


class ProbeConnectionLost(ProbeError):
    """
    The connection closed while the probe waited for its reply.
    """


class ProbeResult(namedtuple("ProbeResult", "latency correlationId errorCode apiKeys")):
    """
    A broker's answer to one probe.

    :ivar latency: seconds from sending the request to reading the whole
        reply, measured with the protocol's clock.
    :ivar correlationId: the id the request and the reply carried.
    :ivar errorCode: the reply's error_code (``0``: no error).
    :ivar apiKeys: tuple of ``(apiKey, minVersion, maxVersion)``.
    """

    __slots__ = ()

    @property
    def apiCount(self):
        """
        How many APIs the broker offers.
        """
        return len(self.apiKeys)


class KafkaProbeProtocol(Int32StringReceiver):
    """
    Send ApiVersions v0 probes on one connection and match the replies.

    Every pending probe is a L{Deferred} keyed by its correlation id, with a
    timer from the clock's C{callLater}.  A reply fires its Deferred and
    cancels its timer; a timeout fails it and closes the connection (a
    broker that does not answer in time is not trusted with the next probe);
    losing the connection fails every pending probe.  Anything the protocol
    cannot make sense of (a reply over L{MAX_LENGTH}, an unknown correlation
    id, a malformed reply) is logged and closes the connection.

    :ivar factory: the L{KafkaProbeFactory} that built it, or L{None}.
    :ivar connectionId: its number within the factory (C{0} without one).
    :ivar peer: the broker's address as C{host:port}, once connected.
    :ivar connected: whether the connection is open.
    """

    #: ApiVersions replies are a few hundred bytes; anything bigger is not one.
    MAX_LENGTH = 64 * 1024

    log = Logger()
    factory = None
    peer = "?"
    connectionId = 0

    def __init__(self, clock, timeout=DEFAULT_TIMEOUT, clientId=CLIENT_ID):
        """
        :param clock: the L{IReactorTime} timing replies and timeouts.
        :param timeout: seconds a probe waits for its reply.
        :param clientId: the client id sent with every request.
        """
        self.clock = clock
        self.timeout = timeout
        self.clientId = clientId
        self.connected = False
        self._pending = {}
        self._abandoned = set()
        self._nextId = 0
        self._closeReason = None
        self._closing = False

    def connectionMade(self):
        """
        Remember the broker's address for log events and errors.
        """
        self.connected = True
        self.peer = formatAddress(self.transport.getPeer())

    def probe(self, timeout=None):
        """
        Send one ApiVersions v0 request.

        :param timeout: seconds to wait for the reply; L{None} means the
            protocol's own.
        :return: a L{Deferred} firing with a L{ProbeResult}, or failing with
            L{ProbeTimeout}, L{ProbeConnectionLost} or L{ProbeError}.
            Cancelling it forgets the request; a late reply is dropped.
        """

        def result(answer):
            latency, (correlationId, errorCode, apiKeys) = answer
            return ProbeResult(latency, correlationId, errorCode, apiKeys)

        d = self.request(
            lambda correlationId: encodeApiVersionsRequest(correlationId, self.clientId),
            decodeApiVersionsResponse,
            timeout,
        )
        return d.addCallback(result)

    def request(self, encode, decode, timeout=None):
        """
        Send one request and wait for its reply.

        :param encode: a callable taking the correlation id and returning the
            request (size prefix excluded).
        :param decode: a callable taking the reply (size prefix excluded) and
            returning what it means, or raising L{MalformedResponse}.
        :param timeout: as for L{probe}.
        :return: a L{Deferred} firing with C{(latency, decode(reply))}, or
            failing as L{probe}'s does.
        """
        if not self.connected or self._closing:
            return fail(ProbeConnectionLost(f"not connected to {self.peer}"))
        self._nextId = self._nextId % _MAX_CORRELATION_ID + 1
        correlationId = self._nextId
        d = Deferred(lambda d: self._cancelled(correlationId))
        timer = self.clock.callLater(
            self.timeout if timeout is None else timeout, self._timedOut, correlationId
        )
        self._pending[correlationId] = (d, timer, self.clock.seconds(), decode)
        self.sendString(encode(correlationId))
        return d

    @property
    def pending(self):
        """
        How many probes wait for their reply.
        """
        return len(self._pending)

    def stringReceived(self, payload):
        """
        A reply: fire the probe it answers.
        """
        now = self.clock.seconds()
        correlationId = correlationIdOf(payload)
        entry = self._pending.pop(correlationId, None)
        if entry is None:
            if correlationId in self._abandoned:
                self._abandoned.discard(correlationId)
                return
            self._giveUp(
                ProbeError(f"reply from {self.peer} with unknown correlation id {correlationId}"),
                "Kafka probe: reply from {peer} with unknown correlation id "
                "{correlationId}; closing the connection",
                correlationId=correlationId,
            )
            return
        d, timer, sentAt, decode = entry
        timer.cancel()
        try:
            answer = decode(payload)
        except MalformedResponse as malformed:
            e = ProbeError(str(malformed))
            d.errback(e)
            self._giveUp(
                e,
                "Kafka probe: malformed reply from {peer}: {error}; closing the connection",
                error=str(e),
            )
            return
        d.callback((now - sentAt, answer))

    def lengthLimitExceeded(self, length):
        """
        A reply announced more than L{MAX_LENGTH} bytes: log it and close,
        never buffer it.
        """
        self._giveUp(
            ProbeError(
                f"reply of {length} bytes from {self.peer}, over the {self.MAX_LENGTH}-byte limit"
            ),
            "Kafka probe: reply of {length} bytes from {peer} is over the "
            "{limit}-byte limit; closing the connection",
            length=length,
            limit=self.MAX_LENGTH,
        )

    def connectionLost(self, reason):
        """
        Fail every pending probe, naming the reason.
        """
        self.connected = False
        error = self._closeReason or ProbeConnectionLost(
            f"connection to {self.peer} lost with a probe pending: {reason.getErrorMessage()}"
        )
        pending, self._pending = self._pending, {}
        self._abandoned.clear()
        for d, timer, _, _ in pending.values():
            timer.cancel()
            d.errback(error)
        if self.factory is not None:
            self.factory.probeConnectionLost(self, reason)

    def _giveUp(self, reason, format, **fields):
        self.log.warn(format, peer=self.peer, **fields)
        self._closeReason = reason
        self.abort()

    def abort(self):
        """
        Close the connection at once, without waiting for buffered writes
        (the broker is not answering, so they may never drain).
        """
        if self.transport is None or not self.connected or self._closing:
            return
        self._closing = True
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def _timedOut(self, correlationId):
        d, timer, sentAt, _ = self._pending.pop(correlationId)
        waited = self.clock.seconds() - sentAt
        self.log.info(
            "Kafka probe: no reply from {peer} in {waited:.3f} s; closing the connection",
            peer=self.peer,
            waited=waited,
            correlationId=correlationId,
        )
        d.errback(ProbeTimeout(f"no reply from {self.peer} in {waited:.3f} s"))
        self.abort()

    def _cancelled(self, correlationId):
        entry = self._pending.pop(correlationId, None)
        if entry is not None:
            entry[1].cancel()
            self._abandoned.add(correlationId)


class KafkaProbeFactory(Factory):
    """
    Build L{KafkaProbeProtocol}s sharing a clock and a timeout.

    :ivar onConnectionLost: L{None}, or a callable taking the protocol and
        the reason, called after each connection is lost (once its pending
        probes have failed).
    :ivar connections: how many protocols it built; each protocol's
        C{connectionId} is its number.
    """

    protocol = KafkaProbeProtocol
    noisy = False

    def __init__(self, clock, timeout=DEFAULT_TIMEOUT, clientId=CLIENT_ID, onConnectionLost=None):
        """
        :param clock: the L{IReactorTime} for latencies and timeouts.
        :param timeout: seconds each probe waits for its reply.
        :param clientId: the client id sent with every request.
        :param onConnectionLost: see L{onConnectionLost}.
        """
        self.clock = clock
        self.timeout = timeout
        self.clientId = clientId
        self.onConnectionLost = onConnectionLost
        self.connections = 0

    def buildProtocol(self, addr):
        """
        :return: a L{KafkaProbeProtocol} for one broker connection.
        """
        protocol = self.protocol(self.clock, self.timeout, self.clientId)
        protocol.factory = self
        self.connections += 1
        protocol.connectionId = self.connections
        return protocol

    def probeConnectionLost(self, protocol, reason):
        """
        One of this factory's connections was lost.
        """
        if self.onConnectionLost is not None:
            self.onConnectionLost(protocol, reason)
