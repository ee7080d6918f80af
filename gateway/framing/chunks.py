# -*- test-case-name: tests.framing.test_framing_varint_chunks -*-
"""
C{chunks}: no framing.  The byte stream is published in chunks of at most
C{max-size} bytes; a chunk is cut when it is full, when the connection has
been idle for C{idle-ms} milliseconds, and when the connection closes.

There is no bad input: a stream longer than C{max-size} is cut into chunks,
and what is left at close is published, not counted as incomplete.
"""

from twisted.internet.protocol import Protocol

from gateway.framing.base import FramedProtocolMixin, PauseableMixin

__all__ = ["ChunksProtocol"]


class ChunksProtocol(PauseableMixin, FramedProtocolMixin, Protocol):
    """
    Cut a byte stream into chunks.

    Options: C{idle-ms}, the idle time after which the bytes buffered are
    published (0: only full chunks, and the rest at close).

    The idle timer is one L{DelayedCall} per connection, armed when bytes
    are buffered and none is pending; each read only records the time.  When
    the timer fires it publishes the buffer if the connection has been idle
    long enough, and otherwise re-arms itself for the rest of the idle time.

    Pause and resume follow C{LineReceiver}: while C{paused} the transport is
    paused and nothing is published, not even by the idle timer; resuming
    publishes the full chunks buffered and restarts the idle time.  At close
    everything buffered is published, even while paused: the client sent it
    and nothing is left to wait for.

    :ivar paused: whether delivery is paused.
    """

    paused = False
    _buffer = b""
    _idle = 0.0
    _timer = None
    _lastData = 0.0
    _receiving = False

    def connectionMade(self):
        """
        Take C{idle-ms} from the listener's options.
        """
        self._idle = self.options.get("idle-ms", 200) / 1000.0
        self._clock = self.factory.config.clock
        FramedProtocolMixin.connectionMade(self)

    def dataReceived(self, data):
        """
        Publish every full chunk in the buffer unless paused; keep the rest
        for the idle timer or the close.
        """
        if self._receiving:
            # Re-entered from a send, e.g. by resumeProducing: the loop
            # below goes on by itself and picks up these bytes when it ends.
            self._buffer += data
            return
        buffer = self._buffer + data if self._buffer else data
        if self._idle:
            self._lastData = self._clock.seconds()
        if self.paused:
            self._buffer = buffer
            return
        self._buffer = b""
        self._receiving = True
        try:
            limit = self.MAX_LENGTH
            send = self._send
            offset = 0
            while True:
                size = len(buffer)
                while size - offset >= limit and not self.paused:
                    end = offset + limit
                    send(buffer[offset:end])
                    offset = end
                rest = buffer[offset:] if offset else buffer
                if not self._buffer:
                    break
                buffer, offset, self._buffer = rest + self._buffer, 0, b""
            self._buffer = rest
        finally:
            self._receiving = False
        if rest and self._idle and self._timer is None:
            self._timer = self._clock.callLater(self._idle, self._idleTimeout)

    def _idleTimeout(self):
        """
        The idle timer fired: publish the buffer if no bytes arrived for the
        idle time, or wait for the rest of it.
        """
        self._timer = None
        if self.paused or not self._buffer:
            return
        remaining = self._lastData + self._idle - self._clock.seconds()
        # Half a millisecond (idle-ms's resolution) of tolerance: re-arming
        # for less than a float's resolution would fire again at once.
        if remaining > 0.0005:
            self._timer = self._clock.callLater(remaining, self._idleTimeout)
            return
        chunk, self._buffer = self._buffer, b""
        self._send(chunk)

    def connectionLost(self, reason):
        """
        Cancel the idle timer, publish what is buffered (in chunks of at most
        C{max-size}), and close the message stream.
        """
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        buffer, self._buffer = self._buffer, b""
        if buffer and self._stream is not None:
            send = self._send
            limit = self.MAX_LENGTH
            for offset in range(0, len(buffer), limit):
                send(buffer[offset : offset + limit])
        FramedProtocolMixin.connectionLost(self, reason)

    def bufferedByteCount(self):
        """
        :return: bytes not yet published (fewer than C{max-size} once a read
            is processed, unless paused).
        """
        return len(self._buffer)
