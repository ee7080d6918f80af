# -*- test-case-name: tests.kafka.test_deadletters -*-
"""
Tests for L{DeadLetters} and L{judgeTooLarge}.
"""

import json
import os
import shutil
import tempfile

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.deadletters import (
    SIZE_ERRORS,
    DeadLetters,
    exceptionCode,
    judgeTooLarge,
    refusalReason,
)
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

    def test_refusalLineText(self):
        """
        The refusal line gives the size (0 for a record without a value),
        the topic, the reason and where the record went.
        """
        DeadLetters(self.path).refuse(Record("t", None, [], None), "why")
        [event] = [e for e in self.logged if "where" in e]
        self.assertEqual(event["log_level"].name, "error")
        self.assertEqual(
            formatEvent(event), f"Kafka refused a 0-byte record for t: why; written to {self.path}"
        )

    def test_noWrittenAgainWithoutFailure(self):
        """
        Records written at the first try say nothing of the file being
        written again, and leave no error.
        """
        deadLetters = DeadLetters(self.path)
        deadLetters.refuse(Record("t", None, [], b"x"), "why")
        self.assertIsNone(deadLetters.error)
        self.assertEqual([e for e in self.logged if "written again" in e["log_format"]], [])

    def test_onlyNoneValueIsEmpty(self):
        """
        Of a batch of records without values, the first is the culprit.
        """
        failed = [
            (Record("t", None, [], None), TOO_LARGE),
            (Record("t", b"k", [], None), TOO_LARGE),
        ]
        (culprit, _), others = judgeTooLarge(failed)
        self.assertEqual((culprit.key, [r.key for r in others]), (None, [b"k"]))


class UnwritableDeadLettersTests(SynchronousTestCase):
    """
    L{DeadLetters} when the file cannot be written: records held in memory,
    counted, written once it can be, the failure logged once per interval.
    """

    def setUp(self):
        self.directory = os.path.join(tempfile.mkdtemp(), "dead")
        self.addCleanup(shutil.rmtree, os.path.dirname(self.directory))
        self.path = os.path.join(self.directory, "dead.jsonl")
        self.clock = Clock()
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.deadLetters = DeadLetters(self.path, self.clock)

    def test_heldNotRaised(self):
        """
        A refusal while the directory is missing raises nothing: the record
        is counted, held with its reason, and logged as kept in memory.
        """
        record = Record("t", None, [], b"x")
        self.deadLetters.refuse(record, "why")
        self.assertEqual(self.deadLetters.count, 1)
        self.assertEqual(self.deadLetters.held, [(record, "why")])
        self.assertIn("No such file or directory", self.deadLetters.error)
        [event] = [e for e in self.logged if "where" in e]
        self.assertTrue(event["where"].startswith("kept in memory (1 held): cannot write "))

    def test_failureLoggedOncePerInterval(self):
        """
        Refusals while the file cannot be written log the failure once per
        interval, with the number held.
        """
        for _ in range(3):
            self.deadLetters.refuse(Record("t", None, [], b"x"), "why")
        self.clock.advance(10.0)
        self.deadLetters.refuse(Record("t", None, [], b"x"), "why")
        failures = [e for e in self.logged if "held" in e and "error" in e]
        self.assertEqual([e["held"] for e in failures], [1, 4])

    def test_writtenOnceWritable(self):
        """
        Once the directory is back, L{DeadLetters.retry} writes the held
        records in order with their reasons, and logs it.
        """
        first, second = Record("t", None, [], b"1"), Record("t", None, [], b"2")
        self.deadLetters.refuse(first, "one")
        self.deadLetters.refuse(second, "two")
        self.assertFalse(self.deadLetters.retry())
        os.mkdir(self.directory)
        self.assertTrue(self.deadLetters.retry())
        self.assertEqual((self.deadLetters.held, self.deadLetters.error), ([], None))
        self.assertEqual(RecordFile(self.path).read(), [first, second])
        with open(self.path) as f:
            self.assertEqual([json.loads(line)["reason"] for line in f], ["one", "two"])
        self.assertTrue(any("written again" in e["log_format"] for e in self.logged))

    def test_linesText(self):
        """
        The failure line gives the error and the records held; the line
        once the file is written again names it.
        """
        self.deadLetters.refuse(Record("t", None, [], b"x"), "why")
        [failure] = [e for e in self.logged if "held" in e and "error" in e]
        self.assertEqual(failure["log_level"].name, "error")
        self.assertEqual(
            formatEvent(failure),
            f"{self.deadLetters.error}; 1 refused records kept in memory until it can be written",
        )
        os.mkdir(self.directory)
        self.deadLetters.retry()
        self.assertEqual(
            formatEvent(self.logged[-1]), f"dead-letter file {self.path} written again"
        )

    def test_failureLoggedWithoutClock(self):
        """
        Without a clock, the failure is still logged once per interval (on
        the global reactor's clock).
        """
        deadLetters = DeadLetters(self.path)
        deadLetters.refuse(Record("t", None, [], b"x"), "why")
        deadLetters.refuse(Record("t", None, [], b"y"), "why")
        failures = [e for e in self.logged if "held" in e and "error" in e]
        self.assertEqual([e["held"] for e in failures], [1])


class RefusalReasonTests(SynchronousTestCase):
    """
    L{refusalReason}, the one word of a C{NACK}, and L{exceptionCode}, the
    error name it is given when C{produce} itself raises.
    """

    def test_reasons(self):
        """
        Size errors, by name or by their C{TOO_LARGE}, are C{too-large};
        authorisation errors C{not-authorized}; unknown topics
        C{unknown-topic} in any case; any other code is its name in lower
        case with dashes, and a code of underscores only C{refused}.
        """
        self.assertEqual(
            {
                code: refusalReason(code)
                for code in (
                    "MSG_SIZE_TOO_LARGE",
                    "MessageSizeTooLarge",
                    "FETCH_TOO_LARGE",
                    "fetch_too_large",
                    "TOPIC_AUTHORIZATION_FAILED",
                    "UNKNOWN_TOPIC_OR_PART",
                    "unknown_topic_or_part",
                    "_INVALID_RECORD_",
                    "_X_RECORD",
                    "InvalidRecord",
                    "__",
                )
            },
            {
                "MSG_SIZE_TOO_LARGE": "too-large",
                "MessageSizeTooLarge": "too-large",
                "FETCH_TOO_LARGE": "too-large",
                "fetch_too_large": "too-large",
                "TOPIC_AUTHORIZATION_FAILED": "not-authorized",
                "UNKNOWN_TOPIC_OR_PART": "unknown-topic",
                "unknown_topic_or_part": "unknown-topic",
                "_INVALID_RECORD_": "invalid-record",
                "_X_RECORD": "x-record",
                "InvalidRecord": "invalidrecord",
                "__": "refused",
            },
        )

    def test_exceptionCode(self):
        """
        A C{KafkaException}'s code is its error's name; any other
        exception's, with or without arguments, its class name.
        """
        from confluent_kafka import KafkaError, KafkaException

        self.assertEqual(
            [
                exceptionCode(e)
                for e in (
                    KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
                    ValueError(),
                    ValueError("no name"),
                    BufferError(None),
                )
            ],
            ["MSG_SIZE_TOO_LARGE", "ValueError", "ValueError", "BufferError"],
        )

    def test_countedByTopic(self):
        """
        Refusals are counted per topic.
        """
        deadLetters = DeadLetters(None, Clock())
        for topic in ("a", "b", "a"):
            deadLetters.refuse(Record(topic, None, [], b"x"), "too-large")
        self.assertEqual((deadLetters.count, dict(deadLetters.byTopic)), (3, {"a": 2, "b": 1}))
