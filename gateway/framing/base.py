# -*- test-case-name: tests.framing.test_framing -*-
"""
What every framing protocol shares: opening the connection's message stream,
and the one policy for bad input.

The policy: a frame over the limit, a malformed length or frame, or a stream
ending mid-frame is logged as one structured event (listener, peer,
connection, reason, sizes) and counted per reason in the listener's stats;
the connection is closed; nothing partial is published.  Skipping a bad frame
and carrying on is not safe for every framing, so no framing does.
"""

from twisted.logger import Logger

from gateway.addresses import formatAddress
from gateway.server.hygiene import (
    DESCRIPTORS,
    MALFORMED_PROXY_HEADER,
    ConnectionHygieneMixin,
)

__all__ = [
    "FramedProtocolMixin",
    "PauseableMixin",
    "TOO_LARGE",
    "MALFORMED_LENGTH",
    "MALFORMED_FRAME",
    "INCOMPLETE",
    "MALFORMED_PROXY_HEADER",
]

#: A frame's size, declared or seen so far, is over the limit.
TOO_LARGE = "too-large"
#: A length field is not a length: non-digits, negative, too wide.
MALFORMED_LENGTH = "malformed-length"
#: The frame's structure is wrong, e.g. a netstring without its comma.
MALFORMED_FRAME = "malformed-frame"
#: The connection closed in the middle of a frame.
INCOMPLETE = "incomplete"


class PauseableMixin:
    """
    Push-producer behaviour for framings not built on a Twisted receiver
    that already has it (C{LineReceiver}, C{IntNStringReceiver}): pausing
    stops reading I{and} stops delivering messages already buffered, and
    resuming delivers them (C{dataReceived(b"")}) before reading again.

    :ivar paused: whether delivery is paused.
    """

    paused = False

    def pauseProducing(self):
        """
        Stop reading, and stop delivering what is already buffered.
        """
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self):
        """
        Read again, and deliver what was buffered while paused.
        """
        self.paused = False
        self.transport.resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self):
        """
        Stop for good: no more reads, no more deliveries.
        """
        self.paused = True
        self.transport.stopProducing()


class FramedProtocolMixin(ConnectionHygieneMixin):
    """
    Mix into a protocol (usually a C{twisted.protocols.basic} receiver),
    before it in the bases.

    The factory (L{gateway.server.factory.GatewayFactory}) sets C{factory},
    C{connectionId} and C{MAX_LENGTH} before the connection is made;
    C{self.options} is the listener's resolved framing options.

    The listener's connection hygiene (L{gateway.server.policy}) is applied
    here too (L{ConnectionHygieneMixin}): the caps when the client's address
    is known (at once, or after the PROXY header on a C{haproxy:} listener),
    the idle timeout and the maximum age.

    :ivar peer: the client's address as C{host:port}.
    :ivar connectionId: a number unique within the listener.
    :ivar frameFailed: the reason the connection was closed for bad input,
        or L{None}.
    """

    log = Logger()
    factory = None
    connectionId = 0
    peer = "?"
    frameFailed = None
    _stream = None
    _gateHost = None

    @property
    def options(self):
        """
        The listener's resolved framing options.
        """
        return self.factory.config.options

    def connectionMade(self):
        """
        Count the connection, start its timers, and open the message stream
        that carries its messages (on a C{haproxy:} listener, once the PROXY
        header has named the real client).
        """
        config = self.factory.config
        config.stats.accepted += 1
        self.peer = formatAddress(self.transport.getPeer())
        guard = config.descriptors
        if guard is not None and not guard.opened():
            # Accepted in the same batch as the one that filled the room
            # (Twisted accepts several per read of the listening socket).
            self._refuse(DESCRIPTORS, guard.capacity)
            return
        if config.proxied:
            self._awaitProxyHeader()
        else:
            self._openStream()
            if self._stream is None:
                return  # refused by a cap, and closing
        if config.gate is not None:
            self._startTimers(config.gate.policy)

    def _openStream(self):
        config = self.factory.config
        gate = config.gate
        if gate is not None:
            host = getattr(self.transport.getPeer(), "host", self.peer)
            if not gate.admit(host, self.peer):
                self.transport.loseConnection()
                return
            self._gateHost = host
        self._stream = config.sink.openStream(config.name, self.peer, self)
        self._send = self._stream.send
        self.messageStreamOpened(self._send)

    def messageStreamOpened(self, send):
        """
        Hook for protocols that bind C{send} into their own hot path.

        :param send: the callable taking one message's bytes.
        """

    def connectionLost(self, reason):
        """
        Publish whole messages still buffered (the connection may close while
        paused), close the message stream; an incomplete frame left in the
        buffer is a bad-input event (it is not published).
        """
        if self.timeOut is not None:
            self.setTimeout(None)
        if self._ageCall is not None:
            self._ageCall.cancel()
            self._ageCall = None
        config = self.factory.config
        stream = self._stream
        if stream is not None:
            self.publishBuffered()
            pending = self.bufferedByteCount()
            if pending and self.frameFailed is None:
                self.frameError(INCOMPLETE, buffered=pending)
            self._stream = None
            stream.close()
        config.stats.closed += 1
        if config.descriptors is not None:
            config.descriptors.closed()
        if self._gateHost is not None:
            config.gate.release(self._gateHost)
            self._gateHost = None

    def publishBuffered(self):
        """
        Publish the whole messages buffered while paused, without resuming
        the transport: they were accepted from the client (the connection is
        closing, or the gateway is stopping).
        """
        if self.frameFailed is None and getattr(self, "paused", False):
            self.paused = False
            try:
                self.dataReceived(b"")
            finally:
                self.paused = True

    def logFields(self):
        """
        :return: the fields every event about this connection carries.
        :rtype: L{dict}
        """
        config = self.factory.config
        return {
            "listener": config.name,
            "peer": self.peer,
            "connection": self.connectionId,
            "topic": getattr(config.sink, "topic", None),
        }

    def bufferedByteCount(self):
        """
        :return: how many received bytes are not yet part of a whole message.
        :rtype: L{int}
        """
        raise NotImplementedError()

    def frameError(self, reason, **sizes):
        """
        Apply the bad-input policy: log, count, close; only once per
        connection.

        :param reason: L{TOO_LARGE}, L{MALFORMED_LENGTH}, L{MALFORMED_FRAME},
            L{INCOMPLETE} or a plugin's own short reason.
        :param sizes: numbers worth logging, e.g. C{size=} (declared or seen)
            and C{buffered=}.
        """
        if self.frameFailed is not None:
            return
        self.frameFailed = reason
        counts = self.factory.config.stats.frameErrors
        counts[reason] += 1
        self.log.warn(
            "{listener}: {peer} (connection {connection}): {reason} "
            "(limit {limit} bytes, {sizes}); closing the connection, nothing "
            "partial is published ({total} {reason} on this listener)",
            reason=reason,
            total=counts[reason],
            limit=self.MAX_LENGTH,
            sizes=", ".join(f"{k} {v}" for k, v in sorted(sizes.items())) or "-",
            **sizes,
            **self.logFields(),
        )
        if self.transport is not None:
            self.transport.loseConnection()

    def messageTooLarge(self, size):
        """
        A frame is over the limit.

        :param size: the frame's declared or observed size, in bytes.
        """
        self.frameError(TOO_LARGE, size=size)
