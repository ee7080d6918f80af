# -*- test-case-name: tests.kafka.test_storage -*-
"""
Tests for L{gateway.kafka.storage.Storage}: the spool and the dead-letter
file when they cannot be written.
"""

import os
import shutil

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.records import Record, RecordFile
from gateway.kafka.storage import CHECK_INTERVAL, LOG_INTERVAL, Storage
from tests.support.files import temporaryDirectory

RECORDS = [Record("t", None, [], b"%d" % i) for i in range(3)]


class StorageTests(SynchronousTestCase):
    """
    L{Storage}.
    """

    def setUp(self):
        self.directory = os.path.join(temporaryDirectory(self), "files")
        os.mkdir(self.directory)
        self.spoolPath = os.path.join(self.directory, "spool.jsonl")
        self.deadPath = os.path.join(self.directory, "dead.jsonl")
        self.clock = Clock()
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.storage = Storage(self.spoolPath, self.deadPath, self.clock)

    def test_saveCounts(self):
        """
        Records left at stop are spooled and counted; nothing is unkept.
        """
        self.storage.save(RECORDS)
        self.assertEqual((self.storage.spooled, self.storage.unkept), (3, 0))
        self.assertIsNone(self.storage.finish())
        self.assertEqual(RecordFile(self.spoolPath).read(), RECORDS)

    def test_saveIntoRemovedDirectory(self):
        """
        A spool whose directory was removed keeps nothing, raises nothing,
        and counts every record as not kept, with the reason.
        """
        shutil.rmtree(self.directory)
        self.storage.save(RECORDS)
        self.assertEqual((self.storage.spooled, self.storage.unkept), (0, 3))
        why = self.storage.finish()
        self.assertIn(f"cannot write the spool {self.spoolPath}", why)
        self.assertIn("No such file or directory", why)

    def test_appendAfterStopFails(self):
        """
        A record read after the stop that cannot be spooled is counted as
        not kept and logged.
        """
        shutil.rmtree(self.directory)
        self.storage.append(RECORDS[0])
        self.assertEqual((self.storage.spooled, self.storage.unkept), (0, 1))
        self.assertTrue(any("after the stop" in e["log_format"] for e in self.logged))

    def test_heldDeadLettersAtFinish(self):
        """
        Dead letters still held at stop are written if the file can now be
        written, else counted as not kept.
        """
        shutil.rmtree(self.directory)
        self.storage.deadLetters.refuse(RECORDS[0], "why")
        self.storage.deadLetters.refuse(RECORDS[1], "why")
        why = self.storage.finish()
        self.assertEqual(self.storage.unkept, 2)
        self.assertIn(f"cannot write {self.deadPath}", why)
        self.assertEqual(self.storage.deadLetters.held, [])

    def test_heldDeadLettersWrittenAtFinish(self):
        """
        Held dead letters the file takes by the stop are not lost.
        """
        shutil.rmtree(self.directory)
        self.storage.deadLetters.refuse(RECORDS[0], "why")
        os.mkdir(self.directory)
        self.assertIsNone(self.storage.finish())
        self.assertEqual(self.storage.unkept, 0)
        self.assertEqual(RecordFile(self.deadPath).read(), RECORDS[:1])

    def test_checkNamesProblems(self):
        """
        L{Storage.check} names each file that cannot be written, and the
        dead letters held in memory; an empty list when all is well again.
        """
        self.storage.check()
        self.assertEqual(self.storage.problems, [])
        shutil.rmtree(self.directory)
        self.storage.check()
        self.assertEqual(
            self.storage.problems,
            [
                f"cannot write the spool {self.spoolPath}: directory {self.directory} "
                "does not exist",
                f"cannot write the dead-letter file {self.deadPath}: directory "
                f"{self.directory} does not exist",
            ],
        )
        self.storage.deadLetters.refuse(RECORDS[0], "why")
        self.storage.check()
        self.assertEqual(len(self.storage.problems), 2)
        self.assertTrue(self.storage.problems[0].startswith("1 refused records held in memory"))
        os.mkdir(self.directory)
        self.storage.check()
        self.assertEqual(self.storage.problems, [])
        self.assertEqual(RecordFile(self.deadPath).read(), RECORDS[:1])
        self.assertTrue(any("written again" in e["log_format"] for e in self.logged))

    def test_pollChecksPerInterval(self):
        """
        L{Storage.poll} checks at once, then every L{CHECK_INTERVAL}
        seconds, and logs a lasting problem once per L{LOG_INTERVAL}.
        """
        shutil.rmtree(self.directory)
        self.storage.poll()
        self.assertEqual(len(self.storage.problems), 2)
        os.mkdir(self.directory)
        self.clock.advance(CHECK_INTERVAL - 0.1)
        self.storage.poll()
        self.assertEqual(len(self.storage.problems), 2)
        self.clock.advance(0.1)
        self.storage.poll()
        self.assertEqual(self.storage.problems, [])
        shutil.rmtree(self.directory)
        for _ in range(int(LOG_INTERVAL / CHECK_INTERVAL) + 1):
            self.clock.advance(CHECK_INTERVAL)
            self.storage.poll()
        lines = [e for e in self.logged if "problems" in e]
        self.assertEqual(len(lines), 2)

    def test_noFiles(self):
        """
        Without a spool or a dead-letter file there is nothing to check,
        and what a stop leaves is logged as lost (not counted as unkept:
        the operator chose it).
        """
        storage = Storage(None, None, self.clock)
        storage.check()
        storage.save(RECORDS)
        self.assertEqual((storage.problems, storage.unkept, storage.spooled), ([], 0, 0))
        self.assertTrue(any("no spool configured" in e["log_format"] for e in self.logged))
