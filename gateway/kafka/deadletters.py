# -*- test-case-name: tests.kafka.test_deadletters -*-
"""
Records Kafka refused for good: judged (only the culprit of a batch refused
as too large), written to the dead-letter file with the reason, counted and
logged, so that no record is ever dropped silently: a record the file
cannot take stays in memory, counted, until it can.
"""

from collections import Counter

from twisted.logger import Logger

from gateway.kafka.records import RecordFile
from gateway.logs import OncePerInterval

__all__ = ["DeadLetters", "SIZE_ERRORS", "judgeTooLarge", "refusalReason", "exceptionCode"]

#: Errors that mean a record (or the batch it was in) is too large.
SIZE_ERRORS = frozenset({"MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "MessageSizeTooLarge"})


def refusalReason(code):
    """
    The one word a client is told (C{NACK <seq> <reason>}) for a refusal.

    :param code: the backend's error name, e.g. C{"MSG_SIZE_TOO_LARGE"}.
    :return: C{too-large}, C{not-authorized}, C{unknown-topic}, or the code
        in lower case with dashes (e.g. C{invalid-record}).
    """
    if code in SIZE_ERRORS or "TOO_LARGE" in code.upper():
        return "too-large"
    if "AUTHORIZ" in code.upper():
        return "not-authorized"
    if code.upper().startswith("UNKNOWN_TOPIC"):
        return "unknown-topic"
    return code.strip("_").lower().replace("_", "-") or "refused"


def exceptionCode(exception):
    """
    The error name of an exception a client's C{produce} raised: a
    C{KafkaException}'s error name, or the exception's class name.
    """
    error = exception.args[0] if exception.args else None
    name = getattr(error, "name", None)
    return name() if callable(name) else type(exception).__name__


def judgeTooLarge(failed):
    """
    The broker refuses a whole batch when one record in it is too large, so
    its innocent batch-mates fail with it: only the largest record of what
    failed is refused, the others are to be produced again (a batch with
    several records too large loses one per round).

    :param failed: C{(record, error)} pairs that failed as too large, in
        their order.
    :return: the C{(record, error)} to refuse, and the records to produce
        again, in their order.
    """
    failed = list(failed)
    largest = max(range(len(failed)), key=lambda i: len(failed[i][0].value or b""))
    culprit = failed.pop(largest)
    return culprit, [record for record, _ in failed]


class DeadLetters:
    """
    Where records refused for good go.

    A record the file cannot take (its directory removed, the disk full,
    permissions changed) stays in memory, counted in L{held}, and is written
    at the next refusal, at the next L{retry} (the producer tries every few
    seconds) or at stop; the failure is logged once per interval.

    :ivar file: the dead-letter L{RecordFile}, or L{None} to only log.
    :ivar count: records refused so far.
    :ivar held: C{(record, reason)} refused and not written yet, oldest
        first.
    :ivar error: why the last write failed, while records are held.
    :ivar byTopic: records refused so far, by topic (a record for a topic
        that does not exist, or that the gateway may not write, is refused
        with that reason and counted here).
    """

    log = Logger()

    def __init__(self, path=None, clock=None):
        """
        :param path: the dead-letter file; L{None} only logs refusals.
        :param clock: an L{IReactorTime}, to log write failures once per
            interval (the global reactor's when L{None}).
        """
        self.file = RecordFile(path) if path else None
        self.count = 0
        self.held = []
        self.error = None
        self._failures = OncePerInterval(clock) if clock is not None else None
        self.byTopic = Counter()

    def refuse(self, record, reason):
        """
        Write C{record} to the file with C{reason} (or keep it until the file
        can be written), count it and log it.
        """
        self.count += 1
        self.byTopic[record.topic] += 1
        if self.file is not None:
            self.held.append((record, reason))
            self.retry()
        self.log.error(
            "Kafka refused a {size}-byte record for {topic}: {reason}; {where}",
            size=len(record.value or b""),
            topic=record.topic,
            reason=reason,
            where=self._where(),
        )

    def retry(self):
        """
        Write the held records, oldest first, as far as the file takes them.

        :return: whether none is held any more.
        """
        while self.held:
            record, reason = self.held[0]
            try:
                self.file.append([record], reason=reason)
            except OSError as e:
                self.error = f"cannot write {self.file.path}: {e}"
                self._logFailure()
                return False
            self.held.pop(0)
        if self.error is not None:
            self.log.info("dead-letter file {path} written again", path=self.file.path)
            self.error = None
        return True

    def _where(self):
        if self.file is None:
            return "no dead-letter file configured, dropped"
        if self.held:
            return f"kept in memory ({len(self.held)} held): {self.error}"
        return f"written to {self.file.path}"

    def _logFailure(self):
        if self._failures is None:
            from twisted.internet import reactor

            self._failures = OncePerInterval(reactor)
        if self._failures.event("failed") is not None:
            self.log.error(
                "{error}; {held} refused records kept in memory until it can be written",
                error=self.error,
                held=len(self.held),
            )
