# -*- test-case-name: tests.kafka.test_records -*-
"""
Records outside Kafka: the form a backend reports a failed record in, and the
files that keep records the gateway could not deliver (the spool, produced
first at the next start, and the dead-letter file, kept for a human).

The files are JSON lines, one record each, with binary fields in base64, so
they survive any payload and can be read with standard tools.
"""

import json
import os
import time
from base64 import b64decode, b64encode
from collections import namedtuple
from dataclasses import dataclass

__all__ = ["Record", "Receipt", "DeliveryError", "RecordFile"]

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


def _encode(data):
    return None if data is None else b64encode(data).decode("ascii")


def _decode(text):
    return None if text is None else b64decode(text)


class RecordFile:
    """
    A JSON-lines file of records.

    :ivar path: where it lives.
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def _line(self, record, reason):
        entry = {
            "topic": record.topic,
            "key": _encode(record.key),
            "headers": [[name, _encode(value)] for name, value in record.headers or ()],
            "value": _encode(record.value),
            "time": time.time(),
        }
        if reason is not None:
            entry["reason"] = reason
        return json.dumps(entry, separators=(",", ":")) + "\n"

    def append(self, records, reason=None):
        """
        Add records at the end and flush them to the disk.

        :param records: L{Record}s.
        :param reason: why they are here (kept with each line).
        """
        with open(self.path, "a", encoding="utf-8") as f:
            for record in records:
                f.write(self._line(record, reason))
            f.flush()
            os.fsync(f.fileno())

    def replace(self, records, reason=None):
        """
        Make the file hold exactly these records (atomically: a crash leaves
        the old or the new file, never half of one); no records removes it.
        """
        records = list(records)
        if not records:
            self.remove()
            return
        temporary = self.path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            for record in records:
                f.write(self._line(record, reason))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)

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
