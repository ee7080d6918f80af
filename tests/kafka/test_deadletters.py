# -*- test-case-name: tests.kafka.test_deadletters -*-
"""
Tests for L{DeadLetters} and L{judgeTooLarge}.
"""

import os
import shutil
import tempfile

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.deadletters import SIZE_ERRORS, DeadLetters, judgeTooLarge
from gateway.kafka.records import DeliveryError, Record, RecordFile

TOO_LARGE = DeliveryError("MSG_SIZE_TOO_LARGE", "too large")


class JudgeTooLargeTests(SynchronousTestCase):
    """
    L{judgeTooLarge}.
    """

    def test_largestIsTheCulprit(self):
        """
        Of a batch refused as too large, only the largest record is refused;
        the others are produced again, in their order.
        """
        failed = [
            (Record("t", None, [], b"small-1"), TOO_LARGE),
            (Record("t", None, [], b"x" * 5000), TOO_LARGE),
            (Record("t", None, [], None), TOO_LARGE),
            (Record("t", None, [], b"small-2"), TOO_LARGE),
        ]
        (culprit, error), others = judgeTooLarge(failed)
        self.assertEqual((culprit.value, error), (b"x" * 5000, TOO_LARGE))
        self.assertEqual([r.value for r in others], [b"small-1", None, b"small-2"])

    def test_sizeErrors(self):
        """
        Both clients' names for a record or batch too large are size errors.
        """
        self.assertTrue(
            {"MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "MessageSizeTooLarge"} <= SIZE_ERRORS
        )


class DeadLettersTests(SynchronousTestCase):
    """
    L{DeadLetters}.
    """

    def setUp(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "dead.jsonl")
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_refuseWritesCountsLogs(self):
        """
        A refused record is written to the file with its reason, counted,
        and logged with its size, topic, reason and where it went.
        """
        deadLetters = DeadLetters(self.path)
        record = Record("t", b"k", [("h", b"v")], b"payload")
        deadLetters.refuse(record, "TypeError: bad header")
        self.assertEqual(RecordFile(self.path).read(), [record])
        with open(self.path) as f:
            self.assertIn("TypeError: bad header", f.read())
        self.assertEqual((deadLetters.count, dict(deadLetters.byTopic)), (1, {"t": 1}))
        [event] = [e for e in self.logged if "where" in e]
        self.assertEqual(
            (event["size"], event["topic"], event["reason"], event["where"]),
            (7, "t", "TypeError: bad header", f"written to {self.path}"),
        )

    def test_noFileOnlyLogs(self):
        """
        Without a file, a refused record is counted and logged as dropped.
        """
        deadLetters = DeadLetters()
        deadLetters.refuse(Record("t", None, [], b"x"), "why")
        self.assertEqual(deadLetters.count, 1)
        [event] = [e for e in self.logged if "where" in e]
        self.assertEqual(event["where"], "no dead-letter file configured, dropped")
