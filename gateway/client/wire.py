# -*- test-case-name: tests.client.test_wire -*-
"""
The text of the acknowledgement protocol, as a client sees it: the
C{SESSION <id> <first-seq>} handshake it sends first, and the C{ACK <k>} and
C{NACK <seq> <reason>} replies the gateway writes back, each one message in
the listener's own framing.  Written once here so that the client, its
tests and the consumer-side L{gateway.client.dedup.Deduplicator} agree.
"""

import re
import uuid
from dataclasses import dataclass

__all__ = [
    "Ack",
    "Nack",
    "SEQ_HEADER",
    "SESSION_HEADER",
    "checkSession",
    "handshake",
    "newSession",
    "parseReply",
]

#: The record header naming a message's session.
SESSION_HEADER = "gateway-session"
#: The record header holding a message's number in its session (decimal).
SEQ_HEADER = "gateway-seq"

#: A session id: 1 to 64 printable ASCII characters, no space.
_SESSION = re.compile(r"[\x21-\x7e]{1,64}")
_ACK = re.compile(rb"ACK ([0-9]+)")
_NACK = re.compile(rb"NACK ([0-9]+) ([\x21-\x7e]+)")


@dataclass(frozen=True)
class Ack:
    """
    C{ACK <k>}: every message numbered up to C{upTo} is confirmed by Kafka.
    """

    upTo: int


@dataclass(frozen=True)
class Nack:
    """
    C{NACK <seq> <reason>}: message C{seq} was refused for good (the
    cumulative L{Ack} then moves past it).
    """

    seq: int
    reason: str


def checkSession(session):
    """
    :param session: a session id.
    :return: C{session}, when it is 1 to 64 printable ASCII characters
        without spaces.
    :raises ValueError: naming what was expected, otherwise.
    """
    if not isinstance(session, str) or not _SESSION.fullmatch(session):
        raise ValueError(
            f"session id {session!r}: expected 1 to 64 printable ASCII characters without spaces"
        )
    return session


def newSession():
    """
    :return: a new random session id (32 hexadecimal digits).
    """
    return uuid.uuid4().hex


def handshake(session, firstSeq):
    """
    :param session: the session id (checked with L{checkSession}).
    :param firstSeq: the number of the first message sent after it, at
        least 1.
    :return: the handshake's payload, C{SESSION <id> <first-seq>}.
    :raises ValueError: for a bad id or number.
    """
    checkSession(session)
    if isinstance(firstSeq, bool) or not isinstance(firstSeq, int) or firstSeq < 1:
        raise ValueError(f"first sequence number {firstSeq!r}: expected a whole number >= 1")
    return b"SESSION %s %d" % (session.encode("ascii"), firstSeq)


def parseReply(payload):
    """
    :param payload: one message the gateway wrote back.
    :return: an L{Ack} or a L{Nack}.
    :raises ValueError: when it is neither.
    """
    match = _ACK.fullmatch(payload)
    if match:
        return Ack(int(match.group(1)))
    match = _NACK.fullmatch(payload)
    if match:
        return Nack(int(match.group(1)), match.group(2).decode("ascii"))
    raise ValueError(f"not an ACK or NACK: {payload[:80]!r}")
