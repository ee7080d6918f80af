# -*- test-case-name: tests.test_support -*-
"""
The events logged during a test, captured from the global log publisher and
filtered by the namespace that logged them.
"""

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

__all__ = ["captureLogs", "eventsFrom"]


def captureLogs(testCase):
    """
    :param testCase: the running test; the observer is removed at its end.
    :return: the events logged to the global publisher during the test (a
        list that grows as events are logged).
    """
    return EventLoggingObserver.createWithCleanup(testCase, globalLogPublisher)


def eventsFrom(events, namespace, level=None):
    """
    :return: the events whose namespace starts with C{namespace} (and of
        that level, by name, when given).
    """
    return [
        e
        for e in events
        if e.get("log_namespace", "").startswith(namespace)
        and (level is None or e["log_level"].name == level)
    ]
