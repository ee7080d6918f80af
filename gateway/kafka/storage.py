# -*- test-case-name: tests.kafka.test_storage -*-
"""
Where the producer keeps what it could not deliver: the spool (records left
at stop) and the dead-letter file (records refused for good).

Files fail: a directory is removed, a disk fills up, permissions change.
Such a failure never hangs a stop and never loses a record silently: a
refused record stays in memory until the dead-letter file takes it, what
the spool cannot take at stop is counted as not kept, and the producer's
last log line says how many; while either file cannot be written,
L{Storage.problems} says why (C{/readyz} answers 503 with it) and the
reason is logged once per interval.
"""

from twisted.logger import Logger

from gateway.kafka.deadletters import DeadLetters
from gateway.kafka.records import PartlyWritten
from gateway.kafka.spool import Spool
from gateway.logs import OncePerInterval
from gateway.paths import freeSpaceProblem

__all__ = ["CHECK_INTERVAL", "LOG_INTERVAL", "Storage"]

#: Seconds between checks that the spool and the dead-letter file can be
#: written (and retries of dead letters the file could not take).
CHECK_INTERVAL = 5.0

#: Seconds between log lines about a file that cannot be written.
LOG_INTERVAL = 30.0


class Storage:
    """
    The spool and the dead-letter file of one producer, and what could not
    be written to them.

    :ivar spool: the L{Spool}, or L{None} (C{--spool none}).
    :ivar deadLetters: the L{DeadLetters}.
    :ivar spooled: records written to the spool at or after stop.
    :ivar unkept: records that could be written to neither file at stop:
        lost, and said so.
    :ivar problems: why a file cannot be written, as of the last L{check};
        empty when both can.
    """

    log = Logger()

    def __init__(self, spoolPath, deadLetterPath, clock):
        """
        :param spoolPath: the spool's path, or L{None}.
        :param deadLetterPath: the dead-letter file's path, or L{None}.
        :param clock: an L{IReactorTime}.
        """
        self.clock = clock
        self.spool = Spool(spoolPath) if spoolPath else None
        self.deadLetters = DeadLetters(deadLetterPath, clock)
        self.spooled = self.unkept = 0
        self.problems = []
        self._reasons = []
        self._checkedAt = None
        self._failures = OncePerInterval(clock, LOG_INTERVAL)

    def load(self):
        """
        :return: the spooled records to produce first (see L{Spool.load}).
        """
        return self.spool.load() if self.spool is not None else []

    def confirmed(self):
        """
        Everything produced so far is confirmed: a replayed spool is
        delivered and its copy can go.
        """
        if self.spool is None or not self.spool.replaying:
            return
        try:
            self.spool.confirmed()
        except OSError as e:
            # At worst the next start produces them again: duplicates, not
            # a loss.
            self.log.error(
                "cannot remove the replayed spool of {path}: {error}",
                path=self.spool.path,
                error=e,
            )

    def save(self, records):
        """
        Keep the records left at stop in the spool, as many as it takes;
        count the rest as not kept.
        """
        if not records:
            self.confirmed()
            return
        if self.spool is None:
            self.log.error(
                "{count} records not delivered and no spool configured: lost",
                count=len(records),
            )
            return
        try:
            kept = self.spool.save(records)
        except PartlyWritten as e:
            kept = e.kept
            self.notKept(len(records) - kept, f"cannot write the spool {self.spool.path}: {e}")
        self.spooled += kept

    def append(self, record):
        """
        Keep a record read after the stop in the spool (or count it as not
        kept).
        """
        if self.spool is None:
            return
        try:
            self.spool.append(record)
        except OSError as e:
            self.notKept(1, f"cannot write the spool {self.spool.path}: {e}")
            self.log.error("a record read after the stop could not be spooled: {error}", error=e)
        else:
            self.spooled += 1

    def finish(self):
        """
        At stop: write the dead letters still held, or count them as not
        kept.

        :return: why records were not kept (L{str}), or L{None}.
        """
        deadLetters = self.deadLetters
        if deadLetters.held and not deadLetters.retry():
            self.notKept(len(deadLetters.held), deadLetters.error)
            deadLetters.held = []
        return "; ".join(self._reasons) or None

    def poll(self):
        """
        L{check}, at most every L{CHECK_INTERVAL} seconds (the producer
        calls this at every poll).
        """
        if self._checkedAt is None or self.clock.seconds() - self._checkedAt >= CHECK_INTERVAL:
            self.check()

    def check(self):
        """
        Retry the dead letters held in memory, then note (L{problems}) and
        log, once per interval, why a file cannot be written now.
        """
        self._checkedAt = self.clock.seconds()
        deadLetters = self.deadLetters
        problems = []
        if deadLetters.held and not deadLetters.retry():
            problems.append(
                f"{len(deadLetters.held)} refused records held in memory: {deadLetters.error}"
            )
        for what, recordFile in (("spool", self.spool), ("dead-letter file", deadLetters.file)):
            if recordFile is None or (recordFile is deadLetters.file and deadLetters.held):
                continue
            problem = recordFile.problem() or freeSpaceProblem(recordFile.path)
            if problem is not None:
                problems.append(f"cannot write the {what} {recordFile.path}: {problem}")
        if problems and self._failures.event("problem") is not None:
            self.log.error("records could not be kept: {problems}", problems="; ".join(problems))
        elif self.problems and not problems:
            self.log.info("the spool and the dead-letter file can be written again")
        self.problems = problems

    def notKept(self, count, why):
        """
        Count records lost because of C{why} (said once in the last line).
        """
        self.unkept += count
        if why not in self._reasons:
            self._reasons.append(why)
