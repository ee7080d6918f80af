# -*- test-case-name: tests.framing.test_framing -*-
"""
C{lines}: each message ends with a delimiter (C{\\n} by default), which is
not published.
"""

from twisted.protocols.basic import LineReceiver

from gateway.framing.base import FramedProtocolMixin

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

    Options: C{delimiter} (bytes), C{strip-cr} (drop one C{\\r} before the
    delimiter).
    """

    delimiter = b"\n"
    stripCR = False

    def connectionMade(self):
        """
        Take the delimiter and C{strip-cr} from the listener's options.
        """
        options = self.options
        self.delimiter = options.get("delimiter", self.delimiter)
        self.stripCR = options.get("strip-cr", self.stripCR)
        FramedProtocolMixin.connectionMade(self)

    def lineReceived(self, line):
        """
        Publish one line (used by callers of the L{LineReceiver} API).
        """
        if self.stripCR and line.endswith(b"\r"):
            line = line[:-1]
        self._send(line)

    def dataReceived(self, data):
        """
        Publish every complete line in the buffer, unless paused; keep the
        rest, and close the connection when a line grows past C{MAX_LENGTH}.
        """
        if self.frameFailed:
            return
        if self._busyReceiving:
            # Re-entered from a delivery (resumeProducing): the loop below
            # carries on; keep what arrived for after it.
            self._buffer += data
            return
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        if self.paused or not buffer:
            self._buffer = buffer
            return
        delimiter = self.delimiter
        lines = buffer.split(delimiter)
        rest = lines.pop()
        limit = self.MAX_LENGTH
        if self.stripCR:
            # One more byte is allowed for the \r that is not published.
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
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
                    # Keep the unsent lines as received (with any \r).
                    remaining = buffer.split(delimiter)[index + 1 :]
                    self._buffer = delimiter.join(remaining) + self._buffer
                    return
            rest += self._buffer
            # The rest may end with the start of a multi-byte delimiter (and
            # a \r), so it is too long only past the limit plus those bytes.
            slack = len(delimiter) - 1 + (1 if self.stripCR else 0)
            if len(rest) > limit + slack and delimiter not in rest:
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
