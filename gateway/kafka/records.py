# -*- test-case-name: tests.kafka.test_records -*-
"""
Records outside Kafka: the form a backend reports a failed record in, and the
files that keep records the gateway could not deliver (the spool, produced
first at the next start, and the dead-letter file, kept for a human).

The files are JSON lines, one record each, with binary fields in base64, so
they survive any payload and can be read with standard tools.  Each line
names its format (L{FORMAT}); a line without one is format 0, the same
fields, written before formats were numbered.  A write either adds whole
lines or none (a full disk leaves no half line), and says how many it kept.
"""

import json
import os
import time
from base64 import b64decode, b64encode
from collections import namedtuple
from dataclasses import dataclass

from gateway.paths import fileProblem

__all__ = ["FORMAT", "Record", "Receipt", "DeliveryError", "RecordFile", "PartlyWritten"]

#: The format of the lines this gateway writes; it reads this one and every
#: older one (see C{docs/guarantees.md}, "On-disk formats").
FORMAT = 1

#: One Kafka record as the gateway holds it; C{headers} is a list of
#: C{(name, bytes)} pairs.  C{receipt} is the L{Receipt} of a record whose
#: delivery someone waits for (ack mode) and that is held or produced again
#: on its own; it is never written to a file, so a spooled record is never
#: confirmed to anyone.
Record = namedtuple("Record", "topic key headers value receipt", defaults=(None,))


class Receipt:
    """
    Who waits for one record's delivery, and its number: the tracker's
    C{settle(seq, reason)} is called once, with L{None} when Kafka confirmed
    the record or a one-word reason when it was refused for good.

    Records produced in the common way carry none: their tracker learns
    their outcome in order (see
    L{gateway.kafka.producer.KafkaProducerService.produceTracked}).
    """

    __slots__ = ("tracker", "seq")

    def __init__(self, tracker, seq):
        self.tracker = tracker
        self.seq = seq

    def confirmed(self):
        self.tracker.settle(self.seq, None)

    def refused(self, reason):
        self.tracker.settle(self.seq, reason)


@dataclass(frozen=True)
class DeliveryError:
    """
    Why a record or the client failed, in backend-neutral terms.

    :ivar code: the backend's error name, e.g. C{"MSG_SIZE_TOO_LARGE"}.
    :ivar text: a human explanation.
    :ivar retriable: producing the record again may succeed.
    :ivar fatal: the client is unusable and must be recreated.
    :ivar purged: the gateway itself gave up on the record (shutdown or
        recreation), so it is neither delivered nor refused.
    :ivar allBrokersDown: no broker is reachable (a client-wide error).
    """

    code: str
    text: str
    retriable: bool = False
    fatal: bool = False
    purged: bool = False
    allBrokersDown: bool = False


class PartlyWritten(OSError):
    """
    A write failed after C{kept} whole records were written (maybe none).

    :ivar kept: records written in full, the first C{kept} of those given.
    :ivar error: the L{OSError} that stopped the write.
    """

    def __init__(self, kept, error):
        OSError.__init__(self, error.errno, error.strerror)
        self.kept = kept
        self.error = error

    def __str__(self):
        return str(self.error)


def _encode(data):
    return None if data is None else b64encode(data).decode("ascii")


def _decode(text):
    return None if text is None else b64decode(text)


class RecordFile:
    """
    A JSON-lines file of records.

    :ivar path: where it lives.
    """

    def __init__(self, path, write=os.write):
        """
        :param path: the file's path.
        :param write: L{os.write} (a test can make the disk fill up).
        """
        self.path = os.fspath(path)
        self._write = write

    def _line(self, record, reason):
        entry = {
            "format": FORMAT,
            "topic": record.topic,
            "key": _encode(record.key),
            "headers": [[name, _encode(value)] for name, value in record.headers or ()],
            "value": _encode(record.value),
            "time": time.time(),
        }
        if reason is not None:
            entry["reason"] = reason
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")

    def append(self, records, reason=None):
        """
        Add records at the end and flush them to the disk: all of them, or
        none (the file is cut back to where it was).

        :param records: L{Record}s.
        :param reason: why they are here (kept with each line).
        :raises OSError: when they could not all be written.
        """
        data = b"".join(self._line(record, reason) for record in records)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                _writeAll(fd, data, self._write)
                os.fsync(fd)
            except OSError:
                _cut(fd, start)
                raise
        finally:
            os.close(fd)

    def replace(self, records, reason=None):
        """
        Make the file hold these records (atomically: a crash leaves the old
        or the new file, never half of one); no records removes it.

        When the disk fills up, the file holds the first records that fit
        (whole lines) and L{PartlyWritten} says how many.

        :return: how many records the file holds.
        :raises PartlyWritten: when not all of them could be written.
        """
        records = list(records)
        if not records:
            self.remove()
            return 0
        temporary = self.path + ".tmp"
        kept, end = 0, 0
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as e:
            raise PartlyWritten(0, e) from e
        failure = None
        try:
            for record in records:
                line = self._line(record, reason)
                try:
                    _writeAll(fd, line, self._write)
                except OSError as e:
                    failure = e
                    _cut(fd, end)
                    break
                kept, end = kept + 1, end + len(line)
            os.fsync(fd)
        except OSError as e:
            failure, kept = e, 0
        finally:
            os.close(fd)
        try:
            if kept:
                os.replace(temporary, self.path)
            else:
                os.remove(temporary)
        except OSError as e:
            failure, kept = e, 0
        if failure is not None:
            raise PartlyWritten(kept, failure) from failure
        return kept

    def read(self):
        """
        :return: the records in the file (none if it does not exist).
        :raises ValueError: naming the line that is not a record.
        """
        try:
            f = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            return []
        records = []
        with f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    if entry.get("format", 0) > FORMAT:
                        raise ValueError(
                            f"format {entry['format']} is newer than this gateway "
                            f"reads (up to {FORMAT})"
                        )
                    records.append(
                        Record(
                            entry["topic"],
                            _decode(entry["key"]),
                            [(name, _decode(value)) for name, value in entry["headers"]],
                            _decode(entry["value"]),
                        )
                    )
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{self.path}:{number}: not a record: {e}") from e
        return records

    def problem(self):
        """
        :return: why the file cannot be written now, or L{None}.
        """
        return fileProblem(self.path)

    def exists(self):
        return os.path.exists(self.path)

    def remove(self):
        """
        Delete the file if it exists.
        """
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def renameTo(self, path):
        """
        Move the file, replacing C{path}.

        :rtype: L{RecordFile}
        """
        os.replace(self.path, path)
        return RecordFile(path)


def _writeAll(fd, data, write):
    view = memoryview(data)
    while view:
        view = view[write(fd, view) :]


def _cut(fd, size):
    """
    Remove what a failed write left after C{size} bytes (a half line).
    """
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass
