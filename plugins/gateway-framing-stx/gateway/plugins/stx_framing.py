# -*- test-case-name: test_stx -*-
"""
C{stx}: each message is sent between STX (0x02) and ETX (0x03); inside a
frame, DLE (0x10) escapes a literal STX, ETX or DLE::

    STX  message, with 02 03 10 written as 10 02, 10 03, 10 10  ETX  STX ...

An example of an out-of-tree framing plugin: the C{gateway-framing-stx}
distribution installs only this module, into the C{gateway.plugins}
namespace, where C{twistd gateway} finds it (see C{docs/plugins.md}).

It shows the way for plugin authors: a subclass of
L{gateway.framing.FramingProtocol} that supplies only its parser
(C{parseFrames}), and imports nothing but C{gateway.framing}.

Bad input, under the gateway's one policy
(L{gateway.framing.FramingProtocol.frameError}): a byte between frames other than STX
(and the C{ignore} bytes), a bare STX inside a frame, or a DLE before any byte
but STX, ETX or DLE is C{malformed-frame}; a message longer than C{max-size}
once unescaped is C{too-large}, decided as soon as that many bytes of it
have arrived.
"""

import re

from gateway.framing import (
    MALFORMED_FRAME,
    TOO_LARGE,
    FramingError,
    FramingOption,
    FramingPlugin,
    FramingProtocol,
    unescape,
)

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


class STXProtocol(FramingProtocol):
    """
    STX/ETX framing with DLE escaping.

    The base (L{FramingProtocol}) owns the buffer, pause and resume, and the
    bad-input policy; this class supplies the parser, L{parseFrames}, and
    L{encodeFrame}.  Reads are cut with C-level operations, never byte by
    byte: a buffer without DLE by one C{bytes.split} (as C{lines} does),
    other frames by one regular expression match each, unescaped with
    C{bytes.replace}.  A frame that is not whole yet is judged as far as it
    goes (its size so far, unescaped, and its bytes), so bad input is
    refused as soon as it arrives.

    Option: C{ignore}, bytes a client may send between frames (keep-alives),
    which are skipped.
    """

    ignore = b""

    @classmethod
    def listenerAttributes(cls, options):
        """
        The C{ignore} bytes, once per listener.
        """
        return {"ignore": options.get("ignore", b"")}

    def parseFrames(self, buffer, limit):
        """
        Every whole frame at the start of C{buffer}, unescaped.
        """
        frames, pos = [], 0
        if buffer[:1] == _STX and _DLE not in buffer:
            found = _splitFrames(buffer, limit)
            if found is not None:
                frames, pos = found
        end = len(buffer)
        match = _FRAME.match
        while pos < end:
            if buffer[pos] != STX:
                pos = self._skipIgnored(buffer, pos, frames)
                continue
            frame = match(buffer, pos)
            if frame is not None:
                message = frame[1]
                if _DLE in message:
                    message = _unescape(message)
                if len(message) <= limit:
                    frames.append(message)
                    pos = frame.end()
                    continue
            # Incomplete, malformed or too large: judge it as far as it goes.
            stop = _TOKENS.match(buffer, pos + 1).end()
            size = len(_unescape(buffer[pos + 1 : stop]))
            if size > limit:
                raise FramingError(TOO_LARGE, frames, pos, size=size)
            if stop == end or (stop == end - 1 and buffer[stop] == DLE):
                break  # the frame goes on in a later read (maybe after an escape)
            # A bare STX, or a DLE escaping some other byte.
            bad = buffer[stop + 1] if buffer[stop] == DLE else buffer[stop]
            raise FramingError(MALFORMED_FRAME, frames, pos, byte=bad, size=size)
        return frames, pos

    def _skipIgnored(self, buffer, pos, frames):
        """
        Between frames: skip C{ignore} bytes up to the next STX.

        :return: where the next frame starts, or the end of C{buffer}.
        :raises FramingError: for another byte.
        """
        if self.ignore:
            start = buffer.find(_STX, pos)
            stop = len(buffer) if start < 0 else start
            stray = buffer[pos:stop].translate(None, self.ignore)
            if not stray:
                return stop
            byte = stray[0]
        else:
            byte = buffer[pos]
        raise FramingError(MALFORMED_FRAME, frames, pos, byte=byte)

    #: Acknowledgements (C{ack=on}) are written with L{encodeFrame}.
    supportsAcks = True

    def encodeFrame(self, payload):
        """
        C{payload} framed (see L{frame}).
        """
        return frame(payload)


def _splitFrames(buffer, limit):
    """
    Cut C{buffer}, which starts with STX and holds no DLE, with one
    C{split}, as C{lines} does.

    :return: C{(messages, consumed)}, or L{None} when the bytes are not only
        well-formed frames within the limit (then the careful way decides).
    """
    parts = buffer.split(_ETX)
    rest = parts.pop()
    # Well-formed: every ETX but one at the very end is followed by STX,
    # and there is no other STX.
    whole = len(parts)
    if buffer.count(_STX) != whole + bool(rest) or buffer.count(_ETX + _STX) != whole - 1 + bool(
        rest
    ):
        return None
    messages = [part[1:] for part in parts]
    if messages and max(map(len, messages)) > limit:
        return None
    return messages, len(buffer) - len(rest)


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
