# -*- test-case-name: tests.fuzz.test_framings -*-
"""
What the fuzz runs do with one input, shared by the hypothesis tests
(L{tests.fuzz.test_framings}, in every test run) and the longer atheris run
(L{tests.fuzz.atheris_framings}).

One input is a framing, a message size limit, a byte stream and the points
it is cut at.  The stream is fed to a connection of the framing, built as a
listener builds it, once in one read and once cut into reads, with pauses
and resumes in between; then the connection is lost.  Checked: no
exception escapes the protocol; while reading, a connection never holds
more than the limit plus a frame's header (L{SLACK}); and both feeds
publish the same messages, in order, and both fail or neither does.  The
reason may differ when the input is wrong twice over: C{4x} on a netstring
listener limited to 1 byte is C{malformed-length} in one read, but
C{too-large} when C{4} arrives alone (a length already over the limit).
"""

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from gateway.registry import loadFramings
from gateway.testing import connectFraming

__all__ = ["CASES", "LIMITS", "SLACK", "check", "feed", "framedStream"]

#: Every framing found (the built-in ones and installed plugins, such as the
#: example C{stx}), with its default options, plus option variants worth a
#: run of their own.
FRAMINGS = loadFramings()
CASES = [(name, {}) for name in sorted(FRAMINGS)] + [
    ("lines", {"delimiter": "\\r\\n"}),
    ("lines", {"strip-cr": "true"}),
    ("chunks", {"idle-ms": "0"}),
]

#: Message size limits tried: tiny ones reach the over-limit paths quickly.
LIMITS = (1, 5, 64, 1024)

#: Bytes a connection may hold beyond the limit: a length field, a
#: delimiter or escape in progress.
SLACK = 32


class Overheld(AssertionError):
    """
    A connection held more than its limit allows.
    """


def feed(case, limit, pieces, pauses=frozenset()):
    """
    Feed C{pieces} to a new connection of a framing, then lose it.

    :param case: C{(framing name, options)}, one of L{CASES}.
    :param limit: the message size limit.
    :param pieces: the reads, in order.
    :param pauses: indexes of the reads after which the connection is
        paused and resumed (delivery must carry on in order).
    :return: C{(messages published, reason the connection failed or None)}.
    :raises Overheld: when a connection holds too much.
    """
    name, options = case
    protocol, transport, sink = connectFraming(FRAMINGS[name], options, maxMessageSize=limit)
    for index, piece in enumerate(pieces):
        protocol.dataReceived(piece)
        held = protocol.bufferedByteCount()
        if held > limit + SLACK:
            raise Overheld(f"{name} {options} holds {held} bytes, limit {limit}")
        # A StringTransport refuses a pause once closing (a real one does not).
        if index in pauses and not transport.disconnecting:
            protocol.pauseProducing()
            protocol.resumeProducing()
    protocol.connectionLost(Failure(ConnectionDone()))
    return [payload for _, payload in sink.messages], protocol.frameFailed


def framedStream(case, messages, limit):
    """
    C{messages} framed as a client of the framing sends them (for framings
    that cannot frame, such as C{chunks}, simply joined).
    """
    name, options = case
    protocol, _, _ = connectFraming(FRAMINGS[name], options, maxMessageSize=limit)
    try:
        return b"".join(protocol.encodeFrame(message) for message in messages)
    except NotImplementedError:
        return b"".join(messages)


def check(case, limit, data, cuts, pauses=frozenset()):
    """
    Feed C{data} in one read and cut at C{cuts}, and check that both
    publish the same messages and both fail or neither does.

    :param cuts: offsets into C{data} (any order, duplicates allowed).
    :return: what the feed in one read published, and why it failed.
    """
    whole = feed(case, limit, [data])
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    pieces = [data[start:end] for start, end in zip(bounds, bounds[1:])]
    cut = feed(case, limit, pieces, pauses)
    if cut[0] != whole[0] or (cut[1] is None) != (whole[1] is None):
        raise AssertionError(
            f"{case}: reads {[len(p) for p in pieces]} gave {cut!r}, one read gave {whole!r}"
        )
    return whole
