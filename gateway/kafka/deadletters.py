# -*- test-case-name: tests.kafka.test_deadletters -*-
"""
Records Kafka refused for good: judged (only the culprit of a batch refused
as too large), written to the dead-letter file with the reason, counted and
logged, so that no record is ever dropped silently.
"""

from twisted.logger import Logger

from gateway.kafka.records import RecordFile

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

    :ivar file: the dead-letter L{RecordFile}, or L{None} to only log.
    :ivar count: records refused so far.
    """

    log = Logger()

    def __init__(self, path=None):
        """
        :param path: the dead-letter file; L{None} only logs refusals.
        """
        self.file = RecordFile(path) if path else None
        self.count = 0

    def refuse(self, record, reason):
        """
        Write C{record} to the file with C{reason}, count it and log it.
        """
        self.count += 1
        if self.file is not None:
            self.file.append([record], reason=reason)
        self.log.error(
            "Kafka refused a {size}-byte record for {topic}: {reason}; {where}",
            size=len(record.value or b""),
            topic=record.topic,
            reason=reason,
            where=(
                f"written to {self.file.path}"
                if self.file is not None
                else "no dead-letter file configured, dropped"
            ),
        )
