# -*- test-case-name: tests.kafka.test_spool -*-
"""
Tests for L{gateway.kafka.spool}: records left at stop kept on disk, and
produced again at the next start without losing any if the gateway dies
while they are being confirmed (at least once).
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.records import Record, RecordFile
from gateway.kafka.spool import Spool
from tests.support.files import temporaryDirectory


def record(value):
    return Record("t", b"k", [("h", b"v")], value)


class SpoolTests(SynchronousTestCase):
    """
    L{Spool}.
    """

    def setUp(self):
        self.path = os.path.join(temporaryDirectory(self), "spool.jsonl")
        self.spool = Spool(self.path)

    def replayingFile(self):
        return RecordFile(self.path + ".replaying")

    def test_emptyLoad(self):
        """
        Without a spool there is nothing to produce and nothing replaying.
        """
        self.assertEqual(self.spool.load(), [])
        self.assertFalse(self.spool.replaying)

    def test_saveThenLoad(self):
        """
        Records saved at stop are loaded at the next start, in order; while
        they wait for confirmation they live in the replaying file, and the
        spool file is gone.
        """
        self.spool.save([record(b"1"), record(b"2")])
        again = Spool(self.path)
        self.assertEqual(again.load(), [record(b"1"), record(b"2")])
        self.assertTrue(again.replaying)
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(self.replayingFile().read(), [record(b"1"), record(b"2")])

    def test_confirmedRemovesReplaying(self):
        """
        Once everything is confirmed the replaying file is removed.
        """
        self.spool.save([record(b"1")])
        self.spool.load()
        self.spool.confirmed()
        self.assertFalse(self.spool.replaying)
        self.assertFalse(self.replayingFile().exists())

    def test_crashWhileReplaying(self):
        """
        A start that dies before confirming leaves the replaying file; the
        next load takes its records first, then any newer spool's.
        """
        self.spool.save([record(b"old")])
        self.spool.load()
        # The gateway dies; the one after it had spooled more at its stop.
        RecordFile(self.path).append([record(b"new")])
        again = Spool(self.path)
        self.assertEqual(again.load(), [record(b"old"), record(b"new")])
        self.assertEqual(self.replayingFile().read(), [record(b"old"), record(b"new")])

    def test_saveReplacesReplaying(self):
        """
        Saving at stop replaces the replaying copy (its records are either
        delivered or among those saved).
        """
        self.spool.save([record(b"1")])
        self.spool.load()
        self.spool.save([record(b"1"), record(b"2")])
        self.assertFalse(self.spool.replaying)
        self.assertFalse(self.replayingFile().exists())
        self.assertEqual(RecordFile(self.path).read(), [record(b"1"), record(b"2")])

    def test_appendAfterStop(self):
        """
        A record arriving after the stop is appended to the spool.
        """
        self.spool.save([record(b"1")])
        self.spool.append(record(b"late"))
        self.assertEqual(RecordFile(self.path).read(), [record(b"1"), record(b"late")])
