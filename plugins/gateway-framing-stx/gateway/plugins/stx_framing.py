# -*- test-case-name: test_stx -*-
"""
C{stx}: each message is sent between STX (0x02) and ETX (0x03); inside a
frame, DLE (0x10) escapes a literal STX, ETX or DLE::

    STX  message, with 02 03 10 written as 10 02, 10 03, 10 10  ETX  STX ...

An example of an out-of-tree framing plugin: the C{gateway-framing-stx}
distribution installs only this module, into the C{gateway.plugins}
namespace, where C{twistd gateway} finds it (see C{docs/plugins.md}).

Bad input, under the gateway's one policy
(L{FramedProtocolMixin.frameError}): a byte between frames other than STX
(and the C{ignore} bytes), a bare STX inside a frame, or a DLE before any byte
but STX, ETX or DLE is C{malformed-frame}; a message longer than C{max-size}
once unescaped is C{too-large}, decided as soon as that many bytes of it
have arrived.
"""

import re

from twisted.internet.protocol import Protocol

from gateway.framing import MALFORMED_FRAME, FramedProtocolMixin, PauseableMixin
from gateway.framing.options import FramingOption, unescape
from gateway.registry import FramingPlugin

__all__ = ["STX", "ETX", "DLE", "STXProtocol", "frame", "ignoredBytes", "stx"]

#: Start of a frame, end of a frame, and the escape.
STX, ETX, DLE = 0x02, 0x03, 0x10

_STX, _ETX, _DLE = bytes([STX]), bytes([ETX]), bytes([DLE])
_SPECIAL = frozenset((STX, ETX, DLE))

#: The longest run of whole tokens, i.e. bytes other than STX, ETX and DLE,
#: and DLE pairs escaping one of those three.  It stops at the ETX ending the
#: frame, at a bare STX, at a DLE before another byte, or at the end of the
#: data (possessive, so it never backtracks).
_TOKENS = re.compile(rb"(?:[^\x02\x03\x10]++|\x10[\x02\x03\x10])*+")
#: A whole, well-formed frame; group 1 is its tokens.
_FRAME = re.compile(rb"\x02((?:[^\x02\x03\x10]++|\x10[\x02\x03\x10])*+)\x03")


def frame(message):
    """
    Frame one message as a client sends it.

    :param message: any bytes.
    :rtype: L{bytes}
    """
    if _DLE in message:
        message = message.replace(_DLE, _DLE + _DLE)
    if _STX in message:
        message = message.replace(_STX, _DLE + _STX)
    if _ETX in message:
        message = message.replace(_ETX, _DLE + _ETX)
    return _STX + message + _ETX


def _unescape(tokens):
    """
    The bytes that whole tokens (as matched by L{_TOKENS}) stand for.
    """
    if _DLE not in tokens:
        return tokens
    if _DLE + _DLE not in tokens:
        return tokens.replace(_DLE, b"")
    # Pairs of DLE are escaped DLEs (counted from the start of each run, as
    # split does); every other DLE escapes the STX or ETX after it.
    return _DLE.join([part.replace(_DLE, b"") for part in tokens.split(_DLE + _DLE)])


def ignoredBytes(value):
    """
    Coerce the C{ignore} option: bytes written with escapes (C{\\x16},
    C{\\r\\n}), or nothing; STX, ETX and DLE are not allowed.
    """
    if isinstance(value, str):
        value = unescape(value)
    if not isinstance(value, bytes):
        raise ValueError("must be a byte string")
    if _SPECIAL.intersection(value):
        raise ValueError("must not contain STX (\\x02), ETX (\\x03) or DLE (\\x10)")
    return value


class STXProtocol(PauseableMixin, FramedProtocolMixin, Protocol):
    """
    STX/ETX framing with DLE escaping.

    No C{twisted.protocols.basic} receiver fits (an escaped ETX is not a
    delimiter), so this is a plain L{Protocol} with the same pause/resume
    rule as C{LineReceiver}: while paused, nothing is delivered and what
    arrives is kept; C{resumeProducing} delivers what was kept.

    Reads are cut with C-level operations, never byte by byte: a read
    without DLE by one C{bytes.split} (as C{lines} does), other frames by
    one regular expression match each, unescaped with C{bytes.replace}.
    Anything else (a frame cut across reads, bad input) goes through
    L{_continueFrame}, which unescapes a frame piece by piece as it
    arrives, so its size is known as soon as a read ends.

    Option: C{ignore}, bytes a client may send between frames (keep-alives),
    which are skipped.

    :ivar paused: whether the connection is paused.
    """

    MAX_LENGTH = 16384
    paused = False
    ignore = b""

    #: Bytes received while paused (or while delivering), not parsed yet.
    _unprocessed = b""
    _busy = False
    #: Inside a frame: its unescaped pieces so far, their total size, the
    #: bytes received for it, and whether its last byte was an escaping DLE.
    _inFrame = False
    _parts = ()
    _size = 0
    _raw = 0
    _escape = False

    def connectionMade(self):
        """
        Take the C{ignore} bytes from the listener's options.
        """
        self.ignore = self.options.get("ignore", b"")
        self._parts = []
        FramedProtocolMixin.connectionMade(self)

    def dataReceived(self, data):
        """
        Publish every complete message, unless paused; keep the rest.
        """
        if self.frameFailed:
            return
        if self._unprocessed or self.paused or self._busy:
            self._unprocessed += data
            if self.paused or self._busy:
                return
            data, self._unprocessed = self._unprocessed, b""
        self._busy = True
        try:
            while data and not self.frameFailed:
                # Bytes that arrived during a delivery come after the rest.
                data = self._parse(data) + self._unprocessed
                self._unprocessed = b""
                if self.paused:
                    self._unprocessed = data
                    return
        finally:
            self._busy = False

    def _parse(self, data):
        """
        Deliver the messages in C{data} until paused.

        :return: the bytes not parsed because the connection was paused.
        """
        end = len(data)
        pos = 0
        trySplit = True
        while pos < end:
            if self.paused:
                return data[pos:]
            if self._inFrame:
                pos = self._continueFrame(data, pos)
            elif data[pos] != STX:
                pos = self._skipIgnored(data, pos)
            else:
                reached = None
                if trySplit:
                    # Once per read, so that a read it does not fit costs
                    # one try, not one per frame.
                    trySplit = False
                    if data.find(_DLE, pos) < 0:
                        reached = self._splitFrames(data, pos)
                if reached is None:
                    reached = self._wholeFrames(data, pos)
                if reached == pos:
                    # Incomplete, malformed or too large: the careful way.
                    self._inFrame = True
                    self._raw = 1
                    reached += 1
                pos = reached
            if pos < 0:
                return b""
        return b""

    def _splitFrames(self, data, pos):
        """
        Deliver the frames of C{data[pos:]}, which starts with STX and holds
        no DLE, with one C{split}, as C{lines} does; keep the last frame if
        incomplete.

        :return: where delivery stopped, or L{None} when the bytes are not
            only well-formed frames within the limit.
        """
        chunk = data[pos:] if pos else data
        frames = chunk.split(_ETX)
        rest = frames.pop()
        # Well-formed: every ETX but one at the very end is followed by STX,
        # and there is no other STX.
        whole = len(frames)
        if chunk.count(_STX) != whole + bool(rest) or chunk.count(_ETX + _STX) != whole - 1 + bool(
            rest
        ):
            return None
        limit = self.MAX_LENGTH
        messages = [frame[1:] for frame in frames]
        if len(rest) > limit + 1 or (messages and max(map(len, messages)) > limit):
            return None
        send = self._send
        for index, message in enumerate(messages):
            send(message)
            if self.paused:
                return pos + sum(map(len, frames[: index + 1])) + index + 1
        if rest:
            self._inFrame = True
            self._parts.append(rest[1:])
            self._size = len(rest) - 1
            self._raw = len(rest)
        return len(data)

    def _wholeFrames(self, data, pos):
        """
        Deliver well-formed, complete frames within the limit from
        C{data[pos]} on, one regular expression match each.

        :return: where the first other frame starts, or where delivery
            stopped (paused).
        """
        match = _FRAME.match
        limit = self.MAX_LENGTH
        send = self._send
        while True:
            frame = match(data, pos)
            if frame is None:
                return pos
            message = frame[1]
            if _DLE in message:
                message = _unescape(message)
            if len(message) > limit:
                return pos
            pos = frame.end()
            send(message)
            if self.paused:
                return pos

    def _continueFrame(self, data, pos):
        """
        Go on with the frame in progress (its STX already read): deliver it
        if it ends in C{data}, keep its bytes unescaped if it does not, or
        close the connection.

        :return: where the next frame starts, the end of C{data}, or -1
            after closing.
        """
        end = len(data)
        if self._escape:
            # The last read ended with an escaping DLE: this byte is literal.
            if data[pos] not in _SPECIAL:
                return self._fail(MALFORMED_FRAME, byte=data[pos], size=self._size)
            self._escape = False
            self._parts.append(data[pos : pos + 1])
            self._size += 1
            self._raw += 1
            pos += 1
        stop = _TOKENS.match(data, pos).end()
        piece = _unescape(data[pos:stop])
        size = self._size + len(piece)
        if size > self.MAX_LENGTH:
            return self._fail(None, size=size)
        if stop < end and data[stop] == ETX:
            self._parts.append(piece)
            message = b"".join(self._parts)
            self._parts = []
            self._inFrame = False
            self._size = self._raw = 0
            self._send(message)
            return stop + 1
        if stop == end or (stop == end - 1 and data[stop] == DLE):
            # The frame goes on in a later read (maybe after an escape).
            self._parts.append(piece)
            self._size = size
            self._raw += end - pos
            self._escape = stop < end
            return end
        # A bare STX, or a DLE escaping some other byte.
        bad = data[stop + 1] if data[stop] == DLE else data[stop]
        return self._fail(MALFORMED_FRAME, byte=bad, size=size)

    def _skipIgnored(self, data, pos):
        """
        Between frames: skip C{ignore} bytes up to the next STX.

        :return: where the next frame starts (or the end of C{data}), or -1
            after closing the connection for another byte.
        """
        if self.ignore:
            start = data.find(_STX, pos)
            stop = len(data) if start < 0 else start
            stray = data[pos:stop].translate(None, self.ignore)
            if not stray:
                return stop
            byte = stray[0]
        else:
            byte = data[pos]
        return self._fail(MALFORMED_FRAME, byte=byte)

    def _fail(self, reason, **sizes):
        """
        Drop what is buffered and apply the bad-input policy (C{too-large}
        when C{reason} is L{None}).

        :return: -1, for the callers' "closed" result.
        """
        self._parts = []
        self._unprocessed = b""
        self._raw = self._size = 0
        self._inFrame = self._escape = False
        if reason is None:
            self.messageTooLarge(sizes["size"])
        else:
            self.frameError(reason, **sizes)
        return -1

    def bufferedByteCount(self):
        """
        :return: the bytes received of the frame in progress, plus those not
            parsed yet (while paused).
        """
        return self._raw + len(self._unprocessed)


stx = FramingPlugin(
    "stx",
    "messages between STX (\\x02) and ETX (\\x03), DLE (\\x10) escaping those three inside",
    f"{__name__}.STXProtocol",
    options=[
        FramingOption(
            "ignore",
            ignoredBytes,
            b"",
            "bytes skipped between frames, e.g. \\x16 or \\r\\n "
            "(none by default: any byte but STX there is malformed)",
            "bytes",
        ),
    ],
)
