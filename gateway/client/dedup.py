# -*- test-case-name: tests.client.test_dedup -*-
"""
L{Deduplicator}: the consumer's half of exactly-once.  A client that
reconnects resends what it had not seen acknowledged, so Kafka may hold a
message twice; every copy carries the same C{gateway-session} and
C{gateway-seq} headers, and a session's records share one key, hence one
partition, in the order sent.  Keeping the highest number seen per session
is then enough to drop every copy but the first.
"""

from gateway.client.wire import SEQ_HEADER, SESSION_HEADER

__all__ = ["Deduplicator", "sessionAndSeq"]


def _text(value):
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("ascii", "replace")
    return value


def _headers(record):
    """
    The headers of a confluent-kafka C{Message} (its C{headers()}), of an
    object with a C{headers} list, or C{record} itself: a mapping or a
    sequence of C{(name, value)} pairs.
    """
    headers = getattr(record, "headers", record)
    if callable(headers):
        headers = headers()
    if headers is None:
        return ()
    if hasattr(headers, "items"):
        return headers.items()
    return headers


def sessionAndSeq(record):
    """
    :param record: a record or its headers (see L{Deduplicator.isDuplicate}).
    :return: C{(session, seq)} from its headers; C{session} is L{None} for
        a record sent without a session, and both are L{None} for one
        without a C{gateway-seq} (not sent in ack mode).
    :raises ValueError: for a C{gateway-seq} that is not a number.
    """
    session = seq = None
    for name, value in _headers(record):
        name = _text(name)
        if name == SESSION_HEADER:
            session = _text(value)
        elif name == SEQ_HEADER:
            seq = int(_text(value))
    if seq is None:
        return None, None
    return session, seq


class Deduplicator:
    """
    Say whether a record is a copy of one already seen: its session's
    highest number seen so far is at least its own.

    Feed it every record of the topic's partitions in the order consumed
    (one consumer, or one per partition: a session is on one partition).
    Records without a session are never duplicates: without a session id a
    resent message cannot be told from a new one.  Keep C{highest} with
    the consumer's committed offsets to carry on after a restart.

    :ivar highest: session id to the highest number seen.
    :ivar duplicates: how many records were duplicates.
    :ivar gaps: how many numbers were skipped (messages refused with a
        C{NACK}, or missing).
    """

    def __init__(self, highest=None):
        """
        :param highest: a previous L{highest} to start from.
        """
        self.highest = dict(highest or {})
        self.duplicates = 0
        self.gaps = 0

    def isDuplicate(self, record):
        """
        :param record: a confluent-kafka C{Message}, or a record's headers as
            a mapping or a list of C{(name, value)} pairs (names and values
            L{bytes} or L{str}).
        :return: whether this record is a copy of one seen before; when not,
            it is remembered as its session's highest.
        """
        session, seq = sessionAndSeq(record)
        if session is None:
            return False
        highest = self.highest.get(session)
        if highest is not None and seq <= highest:
            self.duplicates += 1
            return True
        if highest is not None and seq > highest + 1:
            self.gaps += seq - highest - 1
        self.highest[session] = seq
        return False

    def unique(self, records):
        """
        :return: an iterator over C{records} without the duplicates.
        """
        return (record for record in records if not self.isDuplicate(record))
