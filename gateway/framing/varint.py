# -*- test-case-name: tests.framing.test_varint -*-
"""
C{varint}: each message follows its length as a base-128 varint, the format
of protobuf's C{writeDelimitedTo} / C{parseDelimitedFrom}.

A varint is little-endian groups of 7 bits, one group per byte, the high bit
of a byte set when another byte follows: 0 is C{00}, 127 is C{7F}, 128 is
C{80 01}, 300 is C{AC 02}.  At most 10 bytes carry the 64 bits of an
unsigned 64-bit length.

Bad input:

 - a varint of more than 10 bytes, or whose value needs more than 64 bits,
   is L{MALFORMED_LENGTH}, decided by the 10th byte;
 - a length over the limit is L{TOO_LARGE}, decided by the first byte after
   which the value read so far is over the limit, without waiting for the
   rest of the varint (later bytes can only add to it), so the reason never
   depends on how the bytes were cut into reads;
 - a non-minimal encoding (C{80 00} for 0, C{81 80 00} for 1) is accepted,
   as protobuf's parsers accept it; it is only bounded by the 10 bytes.
"""

from gateway.framing.base import MALFORMED_LENGTH, TOO_LARGE, FramingError, FramingProtocol

__all__ = ["VarintProtocol", "StringTooLongError", "encodeVarint", "MAX_VARINT_BYTES"]

#: The most bytes a varint may have: 10 groups of 7 bits hold 64 bits.
MAX_VARINT_BYTES = 10


def encodeVarint(value):
    """
    Encode an unsigned integer as a minimal base-128 varint.

    :param value: from 0 to C{2 ** 64 - 1}.
    :rtype: L{bytes}
    :raises ValueError: for a value outside that range.
    """
    if not 0 <= value < 1 << 64:
        raise ValueError(f"a varint holds 0 to 2**64-1, not {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


class StringTooLongError(ValueError):
    """
    A string too long for its length prefix was to be sent.
    """


class VarintProtocol(FramingProtocol):
    """
    Messages after their varint length: one pass over the buffer with an
    offset, a one-byte varint (messages under 128 bytes) read with one
    index, a two-byte one with two, longer ones with a loop of at most 10
    steps, one slice per message.
    """

    def parseFrames(self, buffer, limit):
        """
        Every whole message in C{buffer}.
        """
        frames = []
        append = frames.append
        offset = 0
        size = len(buffer)
        while offset < size:
            length = buffer[offset]
            start = offset + 1
            if length > 0x7F:
                length &= 0x7F
                if start < size and buffer[start] < 0x80:
                    # Two bytes: messages under 16 KiB.
                    length |= buffer[start] << 7
                    start += 1
                else:
                    shift = 7
                    while length <= limit and start < size:
                        byte = buffer[start]
                        start += 1
                        if shift == 63 and byte > 1:
                            # A 10th byte that continues, or bits past 64.
                            raise FramingError(
                                MALFORMED_LENGTH, frames, offset, prefixBytes=start - offset
                            )
                        length |= (byte & 0x7F) << shift
                        if byte < 0x80:
                            break
                        shift += 7
                    else:
                        if length <= limit:
                            # The varint goes on in a later read.
                            break
            if length > limit:
                # Complete, or already over the limit with more to come:
                # later bytes can only add to it.
                raise FramingError(TOO_LARGE, frames, offset, size=length)
            end = start + length
            if end > size:
                break
            append(buffer[start:end])
            offset = end
        return frames, offset

    supportsAcks = True

    def encodeFrame(self, payload):
        """
        C{payload} after its varint length.
        """
        return encodeVarint(len(payload)) + payload

    def sendString(self, string):
        """
        Send C{string} to the client after its varint length.
        """
        if len(string) >= 1 << 64:
            raise StringTooLongError("a varint length holds at most 2**64-1")
        self.transport.write(self.encodeFrame(string))
