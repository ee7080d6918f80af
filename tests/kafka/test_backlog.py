# -*- test-case-name: tests.kafka.test_backlog -*-
"""
Tests for L{Backlog}: the records the producer's client has not taken yet.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.backlog import Backlog
from gateway.kafka.records import Record


def record(value, key=None, headers=None):
    return Record("t", key, headers, value)


class Client:
    """
    Takes C{room} records, refuses the values in C{refused} for good.
    """

    def __init__(self, room, refused=()):
        self.room = room
        self.refused = refused
        self.taken = []

    def produce(self, topic, value, key=None, headers=None):
        if value in self.refused:
            raise TypeError("not a record this client takes")
        if len(self.taken) >= self.room:
            raise BufferError("Local: Queue full")
        self.taken.append((topic, value, key, headers))


class BacklogTests(SynchronousTestCase):
    """
    L{Backlog}.
    """

    def setUp(self):
        self.backlog = Backlog()
        self.refusals = []

    def refuse(self, record, exception):
        self.refusals.append((record.value, type(exception)))

    def test_emptyIsFalse(self):
        """
        An empty backlog is false (the hot path's test) and holds no bytes.
        """
        self.assertFalse(self.backlog)
        self.assertEqual(self.backlog.bytes, 0)
        self.backlog.hold(record(b"a"))
        self.assertTrue(self.backlog)

    def test_holdAndPutBack(self):
        """
        Held records go after every other; records put back go before every
        other, in their order; the payload bytes follow (a record without a
        payload counts none).
        """
        self.backlog.hold(record(b"3"))
        self.backlog.hold(record(None))
        self.backlog.putBack([record(b"1"), record(b"22")])
        self.assertEqual([r.value for r in self.backlog], [b"1", b"22", b"3", None])
        self.assertEqual(self.backlog.bytes, 4)

    def test_takeAll(self):
        """
        C{takeAll} returns every record in order and empties the backlog.
        """
        self.backlog.hold(record(b"a"))
        self.backlog.hold(record(b"b"))
        self.assertEqual([r.value for r in self.backlog.takeAll()], [b"a", b"b"])
        self.assertEqual((len(self.backlog), self.backlog.bytes), (0, 0))

    def test_pumpUntilFull(self):
        """
        C{pump} hands records to the client oldest first, with every field
        in C{produce}'s order, until the client is full; the rest stay.
        """
        self.backlog.hold(record(b"a", b"k", [("h", b"v")]))
        self.backlog.hold(record(b"b"))
        self.backlog.hold(record(b"c"))
        client = Client(room=2)
        self.assertEqual(self.backlog.pump(client.produce, self.refuse), 2)
        self.assertEqual(client.taken, [("t", b"a", b"k", [("h", b"v")]), ("t", b"b", None, None)])
        self.assertEqual(([r.value for r in self.backlog], self.backlog.bytes), ([b"c"], 1))

    def test_pumpRefusesForGood(self):
        """
        A record the client refuses with any other exception (a
        L{TypeError} too) is handed to C{refuse} and leaves the backlog; the
        next ones go on.
        """
        for value in (b"a", b"bad", b"c"):
            self.backlog.hold(record(value))
        client = Client(room=10, refused={b"bad"})
        self.assertEqual(self.backlog.pump(client.produce, self.refuse), 2)
        self.assertEqual(self.refusals, [(b"bad", TypeError)])
        self.assertEqual([v for _, v, _, _ in client.taken], [b"a", b"c"])
        self.assertEqual((len(self.backlog), self.backlog.bytes), (0, 0))
