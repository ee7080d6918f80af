# -*- test-case-name: tests.framing.test_chunks -*-
"""
C{chunks}: no framing.  The byte stream is published in chunks of at most
C{max-size} bytes; a chunk is cut when it is full, when the connection has
been idle for C{idle-ms} milliseconds, and when the connection closes.

There is no bad input: a stream longer than C{max-size} is cut into chunks,
and what is left at close is published, not counted as incomplete.
"""

from gateway.framing.base import FramingProtocol

__all__ = ["ChunksProtocol"]


class ChunksProtocol(FramingProtocol):
    """
    Cut a byte stream into chunks.

    Options: C{idle-ms}, the idle time after which the bytes buffered are
    published (0: only full chunks, and the rest at close).

    The idle timer is one L{DelayedCall} per connection (on the listener's
    clock), armed when bytes are buffered and none is pending; each read
    only records the time.  When the timer fires it publishes the buffer if
    the connection has been idle long enough, and otherwise re-arms itself
    for the rest of the idle time.

    While paused nothing is published, not even by the idle timer; resuming
    publishes the full chunks buffered and restarts the idle time.  At close
    everything buffered is published, even while paused: the client sent it
    and nothing is left to wait for.
    """

    _idle = 0.0
    _timer = None
    _lastData = 0.0

    @classmethod
    def listenerAttributes(cls, options):
        """
        The idle time, in seconds.
        """
        return {"_idle": options.get("idle-ms", 200) / 1000.0}

    def parseFrames(self, buffer, limit):
        """
        Every full chunk in C{buffer}.
        """
        whole = len(buffer) - len(buffer) % limit
        if not whole:
            return (), 0
        return [buffer[offset : offset + limit] for offset in range(0, whole, limit)], whole

    def dataReceived(self, data):
        """
        Publish every full chunk unless paused; keep the rest for the idle
        timer or the close.
        """
        if self._idle:
            self._lastData = self.factory.config.clock.seconds()
        FramingProtocol.dataReceived(self, data)
        self._armTimer()

    def resumeProducing(self):
        """
        Publish the full chunks buffered, and restart the idle time for the
        rest.
        """
        FramingProtocol.resumeProducing(self)
        if self._idle:
            self._lastData = self.factory.config.clock.seconds()
        self._armTimer()

    def _armTimer(self):
        if self._idle and self._timer is None and self._buffer and not self.paused:
            self._timer = self.factory.config.clock.callLater(self._idle, self._idleTimeout)

    def _idleTimeout(self):
        """
        The idle timer fired: publish the buffer if no bytes arrived for the
        idle time, or wait for the rest of it.
        """
        self._timer = None
        if self.paused or not self._buffer or self._delivering:
            return
        clock = self.factory.config.clock
        remaining = self._lastData + self._idle - clock.seconds()
        # Half a millisecond (idle-ms's resolution) of tolerance: re-arming
        # for less than a float's resolution would fire again at once.
        if remaining > 0.0005:
            self._timer = clock.callLater(remaining, self._idleTimeout)
            return
        self._send(self.takeBuffered())

    def incompleteAtClose(self, buffered):
        """
        Publish what is left (less than C{max-size}): not an incomplete
        frame, the last chunk.
        """
        self._send(self.takeBuffered())

    def connectionLost(self, reason=None):
        """
        Cancel the idle timer, then publish what is buffered and close the
        message stream.
        """
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        FramingProtocol.connectionLost(self, reason)
