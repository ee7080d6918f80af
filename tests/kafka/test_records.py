# -*- test-case-name: tests.kafka.test_records -*-
"""
Tests for L{gateway.kafka.records}: the record and error forms every backend
reports in, and L{RecordFile}, the JSON-lines file under the spool and the
dead-letter file.
"""

import errno
import json
import os
from base64 import b64decode

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.records import FORMAT, DeliveryError, PartlyWritten, Record, RecordFile
from tests.support.files import temporaryDirectory

RECORDS = [
    Record("t", b"lines/10.0.0.1:40001", [("gateway-listener", b"lines")], b"\x00binary\n"),
    Record("t", None, [], b""),
    Record("other", b"k", None, b"x" * 1000),
]


class RecordFileTests(SynchronousTestCase):
    """
    L{RecordFile}.
    """

    def setUp(self):
        self.path = os.path.join(temporaryDirectory(self), "records.jsonl")
        self.file = RecordFile(self.path)

    def test_roundTrip(self):
        """
        Records appended are read back equal: any bytes in keys, header
        values and values, a missing key, no headers (L{None} reads back as
        an empty list).
        """
        self.file.append(RECORDS)
        expected = RECORDS[:2] + [RECORDS[2]._replace(headers=[])]
        self.assertEqual(self.file.read(), expected)

    def test_jsonLinesWithReason(self):
        """
        Each record is one JSON line, binary fields in base64, with the time
        it was written and the reason when one is given.
        """
        self.file.append(RECORDS[:1], reason="MSG_SIZE_TOO_LARGE")
        with open(self.path, encoding="utf-8") as f:
            (line,) = f.read().splitlines()
        entry = json.loads(line)
        self.assertEqual(entry["topic"], "t")
        self.assertEqual(b64decode(entry["key"]), b"lines/10.0.0.1:40001")
        self.assertEqual(entry["headers"], [["gateway-listener", "bGluZXM="]])
        self.assertEqual(b64decode(entry["value"]), b"\x00binary\n")
        self.assertEqual(entry["reason"], "MSG_SIZE_TOO_LARGE")
        self.assertIsInstance(entry["time"], float)

    def test_appendAdds(self):
        """
        L{RecordFile.append} adds at the end of what is there.
        """
        self.file.append(RECORDS[:1])
        self.file.append(RECORDS[1:2])
        self.assertEqual(self.file.read(), RECORDS[:2])

    def test_replace(self):
        """
        L{RecordFile.replace} leaves exactly the new records, without a
        temporary file behind; replacing with none removes the file.
        """
        self.file.append(RECORDS[:2])
        self.file.replace(RECORDS[1:2])
        self.assertEqual(self.file.read(), RECORDS[1:2])
        self.assertFalse(os.path.exists(self.path + ".tmp"))
        self.file.replace([])
        self.assertFalse(self.file.exists())

    def test_missingFileIsEmpty(self):
        """
        A file that does not exist reads as no records, and removing it is
        not an error.
        """
        self.assertEqual(self.file.read(), [])
        self.file.remove()
        self.assertFalse(self.file.exists())

    def test_blankLinesSkipped(self):
        """
        Blank lines (an editor's trailing newline) are not records.
        """
        self.file.append(RECORDS[:1])
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\n  \n")
        self.assertEqual(self.file.read(), RECORDS[:1])

    def test_malformedLineNamed(self):
        """
        A line that is not a record raises a L{ValueError} naming the file
        and the line number.
        """
        self.file.append(RECORDS[:1])
        with open(self.path, "a", encoding="utf-8") as f:
            f.write('{"topic": "t"}\n')
        error = self.assertRaises(ValueError, self.file.read)
        self.assertIn(f"{self.path}:2: not a record", str(error))

    def test_renameTo(self):
        """
        L{RecordFile.renameTo} moves the file over another path and returns
        the file there.
        """
        other = self.path + ".replaying"
        self.file.append(RECORDS[:1])
        moved = self.file.renameTo(other)
        self.assertFalse(self.file.exists())
        self.assertEqual(moved.path, other)
        self.assertEqual(moved.read(), RECORDS[:1])


class DeliveryErrorTests(SynchronousTestCase):
    """
    L{DeliveryError}.
    """

    def test_defaults(self):
        """
        An error is neither retriable, fatal, purged nor client-wide unless
        said so, and compares by value.
        """
        error = DeliveryError("MSG_SIZE_TOO_LARGE", "too large")
        self.assertEqual(
            (error.retriable, error.fatal, error.purged, error.allBrokersDown),
            (False, False, False, False),
        )
        self.assertEqual(error, DeliveryError("MSG_SIZE_TOO_LARGE", "too large"))
        self.assertNotEqual(error, DeliveryError("MSG_SIZE_TOO_LARGE", "too large", fatal=True))


def diskFullAfter(room):
    """
    An L{os.write} for a disk with C{room} bytes free: it writes what fits,
    then fails with C{ENOSPC}, as a full file system does.
    """
    left = [room]

    def write(fd, data):
        if not left[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: left[0]])
        left[0] -= n
        return n

    return write


class RecordFileFailureTests(SynchronousTestCase):
    """
    L{RecordFile} when the disk fills up or the directory is gone: whole
    lines or none, and the count of what was kept.
    """

    def setUp(self):
        self.path = os.path.join(temporaryDirectory(self), "records.jsonl")
        self.line = len(RecordFile(self.path)._line(RECORDS[0], None))

    def test_appendAllOrNothing(self):
        """
        An append that does not fit leaves the file as it was (no half
        line) and raises.
        """
        RecordFile(self.path).append(RECORDS[:1])
        before = open(self.path, "rb").read()
        full = RecordFile(self.path, write=diskFullAfter(self.line + 10))
        self.assertRaises(OSError, full.append, RECORDS[:1] * 2)
        self.assertEqual(open(self.path, "rb").read(), before)

    def test_replaceKeepsWholeLinesThatFit(self):
        """
        A replace on a disk that fills up keeps the first records that fit,
        whole, and says how many in L{PartlyWritten}.
        """
        full = RecordFile(self.path, write=diskFullAfter(2 * self.line + 10))
        e = self.assertRaises(PartlyWritten, full.replace, RECORDS[:1] * 5)
        self.assertEqual(e.kept, 2)
        self.assertEqual(e.error.errno, errno.ENOSPC)
        self.assertEqual(RecordFile(self.path).read(), RECORDS[:1] * 2)
        self.assertFalse(os.path.exists(self.path + ".tmp"))

    def test_replaceNothingFits(self):
        """
        When not one record fits, the file is not replaced and no temporary
        file stays.
        """
        RecordFile(self.path).replace(RECORDS[:1])
        full = RecordFile(self.path, write=diskFullAfter(10))
        e = self.assertRaises(PartlyWritten, full.replace, RECORDS[:1] * 3)
        self.assertEqual(e.kept, 0)
        self.assertEqual(RecordFile(self.path).read(), RECORDS[:1])
        self.assertFalse(os.path.exists(self.path + ".tmp"))

    def test_directoryGone(self):
        """
        A missing directory fails an append with L{OSError} and a replace
        with L{PartlyWritten} keeping none; L{RecordFile.problem} says why.
        """
        missing = RecordFile(os.path.join(self.path, "..", "gone", "x.jsonl"))
        self.assertRaises(OSError, missing.append, RECORDS)
        self.assertEqual(self.assertRaises(PartlyWritten, missing.replace, RECORDS).kept, 0)
        self.assertIn("does not exist", missing.problem())
        self.assertIsNone(RecordFile(self.path).problem())


class FormatTests(SynchronousTestCase):
    """
    The lines' format number.
    """

    def setUp(self):
        self.path = os.path.join(temporaryDirectory(self), "records.jsonl")

    def test_written(self):
        """
        Every line names the format it is written in.
        """
        RecordFile(self.path).append(RECORDS)
        formats = {json.loads(line)["format"] for line in open(self.path)}
        self.assertEqual(formats, {FORMAT})

    def test_unnumberedRead(self):
        """
        A line without a format (written before formats were numbered) is
        read as before.
        """
        with open(self.path, "w") as f:
            f.write('{"topic":"t","key":null,"headers":[],"value":"eA==","time":1.0}\n')
        self.assertEqual(RecordFile(self.path).read(), [Record("t", None, [], b"x")])

    def test_newerRefused(self):
        """
        A line in a newer format than this gateway reads is refused, naming
        the line and the formats.
        """
        with open(self.path, "w") as f:
            f.write(
                json.dumps(
                    {"format": FORMAT + 1, "topic": "t", "key": None, "headers": [], "value": ""}
                )
                + "\n"
            )
        e = self.assertRaises(ValueError, RecordFile(self.path).read)
        self.assertIn(f"{self.path}:1:", str(e))
        self.assertIn(
            f"format {FORMAT + 1} is newer than this gateway reads (up to {FORMAT})", str(e)
        )
