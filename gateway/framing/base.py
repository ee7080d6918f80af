# -*- test-case-name: tests.framing.test_base -*-
"""
The one base every framing is built on: L{FramingProtocol}, a plain
L{Protocol} that owns the buffer, pause and resume, re-entrancy, the size
limit and the bad-input policy, so that a framing supplies only its parser
(L{FramingProtocol.parseFrames}).

Borrowing a Twisted receiver (C{LineReceiver}, C{IntNStringReceiver}) and
replacing its C{dataReceived} couples a framing to the receiver's private
buffers; here the loop that delivers frames is written once.

The bad-input policy: a frame over the limit, a malformed length or frame,
or a stream ending mid-frame is logged as one structured event (listener,
peer, connection, reason, sizes) and counted per reason in the listener's
stats; the connection is closed; nothing partial is published.  Skipping a
bad frame and carrying on is not safe for every framing, so no framing does.
"""

from types import MappingProxyType

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from zope.interface import implementer

from gateway.addresses import formatAddress

__all__ = [
    "FramingError",
    "FramingProtocol",
    "INCOMPLETE",
    "MALFORMED_FRAME",
    "MALFORMED_LENGTH",
    "TOO_LARGE",
]

#: A frame's size, declared or seen so far, is over the limit.
TOO_LARGE = "too-large"
#: A length field is not a length: non-digits, negative, too wide.
MALFORMED_LENGTH = "malformed-length"
#: The frame's structure is wrong, e.g. a netstring without its comma.
MALFORMED_FRAME = "malformed-frame"
#: The connection closed in the middle of a frame.
INCOMPLETE = "incomplete"


class FramingError(Exception):
    """
    A parser found bad input.

    :ivar reason: L{TOO_LARGE}, L{MALFORMED_LENGTH}, L{MALFORMED_FRAME} or a
        framing's own short reason.
    :ivar frames: the whole frames found before the bad one, in order: they
        are published before the connection is closed.
    :ivar consumed: the bytes those frames took, from the buffer's start.
    :ivar sizes: numbers worth logging (C{size=}, C{buffered=}, ...).
    """

    def __init__(self, reason, frames=(), consumed=0, **sizes):
        Exception.__init__(self, reason)
        self.reason = reason
        self.frames = frames
        self.consumed = consumed
        self.sizes = sizes


class _Uncounted:
    """
    Stands in for the listener's stats outside a listener.
    """

    bytesReceived = 0


@implementer(IPushProducer)
class FramingProtocol(Protocol):
    """
    Cut a byte stream into messages with L{parseFrames}, deliver them to the
    connection's message stream, and obey back-pressure.

    What is the same for every connection of a listener lives on a subclass
    made once per listener (L{listenerNamespace}): C{factory} (whose
    C{config} is the listener's configuration), C{MAX_LENGTH}, C{options}
    and the framing's own settings; a connection carries only its own state.

    Push-producer rules: while paused the transport is paused and nothing is
    delivered, not even frames already buffered; resuming delivers what is
    buffered before reading more.  A pause, a resume or new bytes arriving
    from inside a delivery are handled here: the running delivery carries
    on, and nothing is delivered twice or out of order.

    :ivar peer: the client's address as C{host:port}.
    :ivar connectionId: a number unique within the listener.
    :ivar frameFailed: the reason the connection was closed for bad input
        (or abandoned, see L{abandon}), or L{None}.
    :ivar paused: whether delivery is paused.
    """

    log = Logger()
    factory = None
    MAX_LENGTH = 16384
    options = MappingProxyType({})
    connectionId = 0
    peer = "?"
    frameFailed = None
    paused = False
    #: Whether this framing can write acknowledgements (C{ack=on}, see
    #: C{docs/guarantees.md}): it declares so, and its L{encodeFrame} frames
    #: any payload.  A framing without message boundaries cannot.
    supportsAcks = False

    #: Bytes received and not yet parsed into delivered frames.
    _buffer = b""
    #: Frames parsed and not yet delivered (paused in the middle of a read).
    _pending = None
    _delivering = False
    #: Whether a read must only be buffered: paused, failed, or delivering.
    _held = False
    #: Where the bytes read are counted: the listener's stats.  Counted here
    #: rather than by a wrapper the server layer composes on, which cost a
    #: Python call per read (about 0.1 us, measured with bench/framing.py).
    _received = _Uncounted()
    _stream = None
    _send = None
    #: The stream's C{sendMany(frames)}, if it has one: a read's frames in
    #: one call, as far as the producer takes them (see L{dataReceived}).
    _sendMany = None

    @classmethod
    def listenerAttributes(cls, options):
        """
        The framing's settings derived from the listener's options, computed
        once per listener and held by its class, not by each connection.

        :param options: the listener's resolved options (every declared
            option, and C{max-size}).
        :return: class attributes, by name.
        :rtype: L{dict}
        """
        return {}

    @classmethod
    def listenerNamespace(cls, factory):
        """
        The class attributes of this framing's subclass for one listener.

        :param factory: the listener's factory; C{factory.config} is its
            configuration (C{maxMessageSize}, C{options}, C{sink}, C{name},
            C{stats}, C{clock}).
        :rtype: L{dict}
        """
        config = factory.config
        namespace = {"__module__": cls.__module__, "__doc__": cls.__doc__, "factory": factory}
        if config is not None:
            namespace["_received"] = config.stats
            namespace["MAX_LENGTH"] = config.maxMessageSize
            namespace["options"] = config.options
            namespace.update(cls.listenerAttributes(config.options))
        return namespace

    @classmethod
    def forListener(cls, factory):
        """
        :return: this framing's subclass for one listener (see
            L{listenerNamespace}).
        """
        return type(cls.__name__, (cls,), cls.listenerNamespace(factory))

    # What a framing supplies

    def parseFrames(self, buffer, limit):
        """
        Find the whole frames at the start of C{buffer}.  Override.

        Work on the whole buffer with C-level operations (C{bytes.split},
        C{find}, C{struct.unpack_from} with offsets): this is the hot path.

        :param buffer: the bytes received and not yet parsed (L{bytes}).
        :param limit: the largest message allowed (C{MAX_LENGTH}).
        :return: C{(frames, consumed)}: every whole message at the start of
            C{buffer}, in order, and how many bytes they took; what is left
            is the start of an incomplete frame (or nothing).
        :raises FramingError: for bad input, including an incomplete frame
            that can no longer become a valid one (e.g. already over the
            limit), with the whole frames before it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement parseFrames")

    def encodeFrame(self, payload):
        """
        Frame one payload as a client would send it (used to write replies,
        such as acknowledgements, in the listener's own framing).

        :param payload: the message.
        :rtype: L{bytes}
        :raises NotImplementedError: for a framing that cannot.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot encode a frame")

    def bufferedByteCount(self):
        """
        :return: how many received bytes are not yet part of a whole message.
        :rtype: L{int}
        """
        return len(self._buffer)

    # The connection

    def connectionMade(self):
        """
        Open the message stream carrying this connection's messages, from
        the peer the listener has already read (L{gateway.server.hygiene}
        does, once per connection), else the transport's.
        """
        if "peer" not in self.__dict__:
            self.peer = formatAddress(self.transport.getPeer())
        config = self.factory.config
        self._stream = stream = config.sink.openStream(config.name, self.peer, self)
        self._send = stream.send
        sendMany = getattr(stream, "sendMany", None)
        if sendMany is not None:
            self._sendMany = sendMany

    def dataReceived(self, data):
        """
        Deliver every whole frame buffered, unless held (paused, failed, or
        called from inside a delivery: the running delivery picks the bytes
        up); keep the rest.
        """
        self._received.bytesReceived += len(data)
        if self._held:
            if self.frameFailed is None:
                self._buffer += data
            return
        buffer = self._buffer
        if buffer:
            buffer += data
        else:
            buffer = data
        try:
            frames, consumed = self.parseFrames(buffer, self.MAX_LENGTH)
        except FramingError as e:
            self._buffer = buffer[e.consumed :]
            self._deliver(e.frames, e)
            return
        rest = self._buffer = buffer[consumed:] if consumed else buffer
        if not frames:
            return
        # The common delivery, written out here: _deliver has the rest.
        self._held = self._delivering = True
        try:
            sendMany = self._sendMany
            if sendMany is not None and type(frames) is list:
                # One call for the read (a framing may return other
                # iterables: those go one by one); what it did not take
                # goes one by one below, in order.
                taken = sendMany(frames)
                if taken:
                    frames = frames[taken:] if taken < len(frames) else ()
            send = self._send
            unsent = iter(frames)
            for frame in unsent:
                send(frame)
                if self.paused:
                    self._pending = list(unsent) or None
                    return
        finally:
            self._delivering = False
            self._held = self.paused or self.frameFailed is not None
        if self._buffer is not rest and not self._held:
            # Bytes arrived during the delivery: they may complete frames.
            FramingProtocol.dataReceived(self, b"")

    def _deliver(self, frames, rest):
        """
        Deliver C{frames}, then whatever whole frames the bytes that arrive
        meanwhile complete, until paused.

        :param rest: the buffer as it was when C{frames} were parsed (bytes
            arriving during the delivery replace it: parse again), L{None}
            to parse what is buffered in any case, or the L{FramingError}
            found after C{frames}.
        """
        self._held = self._delivering = True
        try:
            send = self._send
            while True:
                unsent = iter(frames)
                for frame in unsent:
                    send(frame)
                    if self.paused:
                        # A bad frame after these is found again on resume.
                        self._pending = list(unsent) or None
                        return
                if isinstance(rest, FramingError):
                    self.frameError(rest.reason, **rest.sizes)
                    return
                buffer = self._buffer
                if buffer is rest or not buffer:
                    return
                try:
                    frames, consumed = self.parseFrames(buffer, self.MAX_LENGTH)
                except FramingError as e:
                    self._buffer = buffer[e.consumed :]
                    frames, rest = e.frames, e
                    continue
                rest = self._buffer = buffer[consumed:] if consumed else buffer
                if not frames:
                    return
        finally:
            self._delivering = False
            self._held = self.paused or self.frameFailed is not None

    def pauseProducing(self):
        """
        Stop reading, and stop delivering what is already buffered.
        """
        self.paused = self._held = True
        self.transport.pauseProducing()

    def resumeProducing(self):
        """
        Deliver what was buffered while paused, then read again (unless a
        delivery paused once more).
        """
        self.paused = False
        if not self._delivering:
            self._held = self.frameFailed is not None
            if not self._held:
                pending, self._pending = self._pending, None
                if pending:
                    self._deliver(pending, None)
                elif self._buffer:
                    FramingProtocol.dataReceived(self, b"")
        if not self.paused and self.frameFailed is None:
            self.transport.resumeProducing()

    def stopProducing(self):
        """
        Stop for good: no more reads, no more deliveries.
        """
        self.paused = self._held = True
        self.transport.stopProducing()

    def connectionLost(self, reason=connectionDone):
        """
        Publish the whole messages still buffered (the connection may close
        while paused: they were accepted from the client), count an
        incomplete frame left over (it is not published), and close the
        message stream.
        """
        stream = self._stream
        if stream is None:
            return
        # Most connections close with nothing buffered: skip the calls then
        # (one connection per message pays them once each, bench/churn.py).
        if self.frameFailed is None and (self._pending or self._buffer):
            self.publishBuffered()
            pending = self.bufferedByteCount()
            if pending and self.frameFailed is None:
                self.incompleteAtClose(pending)
        self._stream = None
        stream.close()

    def publishBuffered(self):
        """
        Publish every whole message buffered, paused or not, without
        resuming the transport (the connection is closing).
        """
        pending, self._pending = self._pending, None
        send = self._send
        for frame in pending or ():
            send(frame)
        buffer = self._buffer
        if not buffer:
            return
        try:
            frames, consumed = self.parseFrames(buffer, self.MAX_LENGTH)
            error = None
        except FramingError as e:
            frames, consumed, error = e.frames, e.consumed, e
        self._buffer = buffer[consumed:] if consumed else buffer
        for frame in frames:
            send(frame)
        if error is not None:
            self.frameError(error.reason, **error.sizes)

    def incompleteAtClose(self, buffered):
        """
        The connection closed with C{buffered} bytes that are not a whole
        frame: count them as L{INCOMPLETE}.  A framing without frames
        (C{chunks}) publishes them instead.
        """
        self.frameError(INCOMPLETE, buffered=buffered)

    def takeBuffered(self):
        """
        :return: the bytes received and not parsed yet, which are dropped
            from the buffer (for framings that publish them themselves).
        """
        buffer, self._buffer = self._buffer, b""
        return buffer

    # The bad-input policy

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

    def frameError(self, reason, **sizes):
        """
        Apply the bad-input policy: log, count, close; only once per
        connection.  Whatever is buffered is dropped.

        :param reason: L{TOO_LARGE}, L{MALFORMED_LENGTH}, L{MALFORMED_FRAME},
            L{INCOMPLETE} or a framing's own short reason.
        :param sizes: numbers worth logging, e.g. C{size=} (declared or seen)
            and C{buffered=}.
        """
        if self.frameFailed is not None:
            return
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
        self._fail(reason)

    def abandon(self, reason):
        """
        Close the connection on the gateway's own initiative, for a limit
        on incomplete frames rather than bad input (the server layer's
        C{frame-timeout}, the router's cap on incomplete bytes): publish
        the whole messages buffered, drop the incomplete frame, and count
        C{reason} in the listener's C{closedBy}.  The caller logs, once per
        interval rather than once per connection.

        :return: the bytes of the incomplete frame dropped (0 if the
            connection was already closing for bad input).
        :rtype: L{int}
        """
        if self.frameFailed is not None:
            return 0
        if self._stream is not None:
            self.publishBuffered()
            if self.frameFailed is not None:
                return 0
        dropped = self.bufferedByteCount()
        self.factory.config.stats.closedBy[reason] += 1
        self._fail(reason)
        return dropped

    def _fail(self, reason):
        """
        Drop what is buffered, read and deliver nothing more, and close.
        """
        self.frameFailed = reason
        self._held = True
        self._buffer = b""
        self._pending = None
        if self.transport is not None:
            self.transport.loseConnection()

    def messageTooLarge(self, size):
        """
        A frame is over the limit.

        :param size: the frame's declared or observed size, in bytes.
        """
        self.frameError(TOO_LARGE, size=size)
