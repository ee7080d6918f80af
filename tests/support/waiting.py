# -*- test-case-name: tests.test_support -*-
"""
One polling wait, in two flavours: blocking (for tests that drive a
subprocess from plain threads) and on the reactor (for tests running under
pytest-twisted, where blocking would stop the code under test).

A wait never assumes an idle machine: callers give the longest time the
awaited thing may take on a busy one, and a failure says what was awaited,
for how long, and what the predicate last returned.
"""

import time

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

__all__ = ["DEADLINE", "Poll", "sleepOnReactor", "waitFor", "waitOnReactor"]

#: The deadline of a wait whose caller has no sharper bound: generous,
#: because a slow machine shared with other test runs is the normal case.
DEADLINE = 60.0


class Poll:
    """
    The deadline and the failure message of one wait, shared by both
    flavours.

    :ivar result: what the predicate returned last.
    :ivar elapsed: seconds since the wait started, as of the last check.
    """

    def __init__(self, predicate, timeout, what):
        """
        :param predicate: called without arguments; the wait ends when it
            returns something true.
        :param timeout: seconds before the wait fails.
        :param what: what is awaited, for the failure (or a callable
            returning it, to describe the last state seen).
        """
        self.predicate = predicate
        self.timeout = timeout
        self.what = what
        self.started = time.monotonic()
        self.result = None
        self.elapsed = 0.0

    def done(self):
        """
        Call the predicate once.

        :return: whether it held.
        :raises AssertionError: when it did not and the deadline passed.
        """
        self.result = self.predicate()
        self.elapsed = time.monotonic() - self.started
        if self.result:
            return True
        if self.elapsed > self.timeout:
            what = self.what() if callable(self.what) else self.what
            raise AssertionError(
                f"timed out after {self.timeout:g} s waiting for {what} "
                f"(the check last returned {self.result!r})"
            )
        return False


def waitFor(predicate, timeout, what, interval=0.1):
    """
    Block, polling C{predicate} every C{interval} seconds, until it returns
    something true.

    :param timeout: seconds before the wait fails (L{DEADLINE} when the
        caller has no sharper bound).
    :param what: what is awaited, for the failure (or a callable saying it).
    :return: what the predicate returned.
    :raises AssertionError: naming C{what} after C{timeout} seconds.
    """
    poll = Poll(predicate, timeout, what)
    while not poll.done():
        time.sleep(interval)
    return poll.result


def _reactor():
    from twisted.internet import reactor

    return reactor


def sleepOnReactor(seconds, reactor=None):
    """
    :return: a Deferred that fires after C{seconds}, without blocking the
        reactor.
    """
    return deferLater(reactor or _reactor(), seconds, lambda: None)


@inlineCallbacks
def waitOnReactor(predicate, timeout, what, interval=0.02, reactor=None):
    """
    L{waitFor} on the reactor: poll C{predicate} every C{interval} seconds
    while the reactor runs.

    :return: a Deferred firing with the seconds waited (for tests that
        assert how soon something happened).
    """
    poll = Poll(predicate, timeout, what)
    while not poll.done():
        yield sleepOnReactor(interval, reactor)
    return poll.elapsed
