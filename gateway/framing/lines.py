# -*- test-case-name: tests.test_framing -*-
"""
C{lines}: each message ends with a newline (C{\\n}); the newline is not
published.
"""

from twisted.protocols.basic import LineReceiver

from gateway.framing._base import FramedProtocolMixin

__all__ = ["LinesProtocol"]


class LinesProtocol(FramedProtocolMixin, LineReceiver):
    """
    L{LineReceiver} with a C{dataReceived} that splits a whole read at once.

    C{LineReceiver.dataReceived} splits off one line at a time and copies the
    rest of the buffer each time, which is quadratic in the lines per read
    (see C{bench/framing.py}); C{LineOnlyReceiver} splits once but ignores
    pause.  This keeps C{LineReceiver}'s attributes, limits and
    pause/resume (C{paused}, C{pauseProducing}, C{resumeProducing}) and
    splits with one C{bytes.split} per read.  Raw mode is not supported.
    """

    delimiter = b"\n"

    def lineReceived(self, line):
        """
        Publish one line (used by callers of the L{LineReceiver} API).
        """
        self._send(line)

    def dataReceived(self, data):
        """
        Publish every complete line in the buffer, unless paused; keep the
        rest, and close the connection when a line grows past C{MAX_LENGTH}.
        """
        if self._busyReceiving or self.overLimit:
            if not self.overLimit:
                self._buffer += data
            return
        buffer = self._buffer + data if self._buffer else data
        if self.paused or not buffer:
            self._buffer = buffer
            return
        delimiter = self.delimiter
        lines = buffer.split(delimiter)
        rest = lines.pop()
        limit = self.MAX_LENGTH
        # One C-level length check per read; the per-line check only runs
        # when some line is known to be too long.
        tooLong = bool(lines) and max(map(len, lines)) > limit
        send = self._send
        self._busyReceiving = True
        try:
            for index, line in enumerate(lines):
                if tooLong and len(line) > limit:
                    self._buffer = b""
                    self.messageTooLarge(len(line))
                    return
                send(line)
                if self.paused:
                    lines.append(rest)
                    self._buffer = delimiter.join(lines[index + 1 :])
                    return
            if len(rest) >= limit + len(delimiter):
                self._buffer = b""
                self.messageTooLarge(len(rest))
                return
            self._buffer = rest
        finally:
            self._busyReceiving = False

    def bufferedByteCount(self):
        """
        :return: bytes of the incomplete last line.
        """
        return len(self._buffer)
