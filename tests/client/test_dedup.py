# -*- test-case-name: tests.client.test_dedup -*-
"""
L{Deduplicator}: the consumer's half of exactly-once, on confluent-kafka
C{Message} objects and on plain header lists.
"""

from confluent_kafka import Message
from twisted.trial.unittest import SynchronousTestCase

from gateway.client import Deduplicator, sessionAndSeq


def record(session, seq, value=b""):
    """
    A confluent-kafka C{Message} as the gateway writes one in ack mode.
    """
    headers = [("gateway-listener", b"lines"), ("gateway-seq", str(seq).encode())]
    if session is not None:
        headers.insert(0, ("gateway-session", session.encode()))
    return Message(topic="t", key=session and session.encode(), value=value, headers=headers)


class SessionAndSeqTests(SynchronousTestCase):
    """
    L{sessionAndSeq} reads the two headers from every shape of record.
    """

    def test_message(self):
        """
        A confluent-kafka C{Message}'s C{headers()}.
        """
        self.assertEqual(sessionAndSeq(record("s", 7)), ("s", 7))

    def test_pairs(self):
        """
        A list of C{(name, value)} pairs, names and values bytes or text.
        """
        self.assertEqual(sessionAndSeq([("gateway-session", "s"), ("gateway-seq", "3")]), ("s", 3))
        self.assertEqual(
            sessionAndSeq([(b"gateway-seq", b"12"), (b"gateway-session", b"x")]), ("x", 12)
        )

    def test_mapping(self):
        """
        A mapping of header names to values.
        """
        self.assertEqual(sessionAndSeq({"gateway-session": b"m", "gateway-seq": b"1"}), ("m", 1))

    def test_noSession(self):
        """
        A record sent in ack mode without a handshake has a number only.
        """
        self.assertEqual(sessionAndSeq(record(None, 4)), (None, 4))

    def test_notAckMode(self):
        """
        Without C{gateway-seq}, or without headers at all: neither.
        """
        self.assertEqual(sessionAndSeq([("gateway-session", b"s")]), (None, None))
        self.assertEqual(sessionAndSeq(Message(topic="t", value=b"v")), (None, None))
        self.assertEqual(sessionAndSeq([]), (None, None))

    def test_badNumber(self):
        """
        A C{gateway-seq} that is not a number is a L{ValueError}.
        """
        self.assertRaises(ValueError, sessionAndSeq, [("gateway-seq", b"seven")])


class DeduplicatorTests(SynchronousTestCase):
    """
    The highest number seen per session decides.
    """

    def test_resentCopiesDropped(self):
        """
        A client that resends 4..5 after a reconnection, then carries on:
        each message is kept once, in order, and the copies are counted.
        """
        consumed = [record("s", n, b"m%d" % n) for n in (1, 2, 3, 4, 5, 4, 5, 6, 7)]
        dedup = Deduplicator()
        kept = [m.value() for m in dedup.unique(consumed)]
        self.assertEqual(kept, [b"m%d" % n for n in range(1, 8)])
        self.assertEqual((dedup.duplicates, dedup.gaps, dedup.highest), (2, 0, {"s": 7}))

    def test_sessionsIndependent(self):
        """
        Each session has its own numbers.
        """
        dedup = Deduplicator()
        verdicts = [
            dedup.isDuplicate(record(s, n)) for s, n in [("a", 1), ("b", 1), ("a", 2), ("b", 1)]
        ]
        self.assertEqual(verdicts, [False, False, False, True])

    def test_withoutSession(self):
        """
        Records without a session are never duplicates (nothing tells a
        resent one from a new one), nor are records not sent in ack mode.
        """
        dedup = Deduplicator()
        self.assertFalse(dedup.isDuplicate(record(None, 1)))
        self.assertFalse(dedup.isDuplicate(record(None, 1)))
        self.assertFalse(dedup.isDuplicate(Message(topic="t", value=b"v")))
        self.assertEqual((dedup.duplicates, dedup.highest), (0, {}))

    def test_gaps(self):
        """
        Numbers skipped (a refused message, or one missing) are counted.
        """
        dedup = Deduplicator()
        for n in (1, 2, 4, 8):
            dedup.isDuplicate(record("s", n))
        self.assertEqual(dedup.gaps, 4)

    def test_resume(self):
        """
        Started from an earlier L{Deduplicator.highest}, what was seen before
        is a duplicate, and a session starting later than 1 has no gap.
        """
        dedup = Deduplicator({"s": 10})
        self.assertTrue(dedup.isDuplicate(record("s", 10)))
        self.assertFalse(dedup.isDuplicate(record("s", 11)))
        self.assertFalse(dedup.isDuplicate(record("t", 500)))
        self.assertEqual(dedup.gaps, 0)
