# -*- test-case-name: tests.kafka.test_spool -*-
"""
The spool: records not delivered when the gateway stopped, produced first at
the next start.

While they are produced again the file is kept aside as C{PATH.replaying}
and removed only once everything is confirmed, so a crash in between loses
nothing (those records may then be produced twice: at least once).
"""

from gateway.kafka.records import RecordFile

__all__ = ["Spool"]


class Spool:
    """
    The spool file and its replaying copy.

    :ivar path: the spool's path.
    :ivar replaying: L{True} while loaded records wait for confirmation.
    """

    def __init__(self, path):
        self.path = path
        self._file = RecordFile(path)
        self._replayingFile = RecordFile(path + ".replaying")
        self.replaying = False

    def load(self):
        """
        Take the records to produce first: those of an earlier replay that
        never finished, then the spool's; keep them in the replaying file.

        :return: a list of L{gateway.kafka.records.Record}.
        """
        records = self._replayingFile.read()
        if self._file.exists():
            records += self._file.read()
            self._replayingFile.replace(records)
            self._file.remove()
        self.replaying = bool(records)
        return records

    def confirmed(self):
        """
        Everything produced so far is confirmed: the replayed records are
        delivered.
        """
        if self.replaying:
            self._replayingFile.remove()
            self.replaying = False

    def save(self, records):
        """
        Keep the records left at stop (replacing the replaying copy, whose
        records are either delivered or among these).

        :return: how many were written.
        :raises gateway.kafka.records.PartlyWritten: when only the first
            C{kept} could be (a full disk, a directory removed); the
            replaying copy then stays, so its records are produced again
            rather than lost.
        """
        kept = self._file.replace(records)
        self._replayingFile.remove()
        self.replaying = False
        return kept

    def problem(self):
        """
        :return: why the spool cannot be written now, or L{None}.
        """
        return self._file.problem()

    def append(self, record):
        """
        Add a record that arrived after the stop.
        """
        self._file.append([record])
