# -*- test-case-name: tests.test_support -*-
"""
Tests for L{tests.support}: the helpers every other test leans on must
themselves fail when they should, or a broken wait would pass a broken test.
"""

import os
from unittest import mock

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.support import waiting
from tests.support.files import temporaryDirectory
from tests.support.logs import captureLogs, eventsFrom
from tests.support.proxy import proxyV1, proxyV2, proxyWrappingFactory
from tests.support.waiting import DEADLINE, Poll, sleepOnReactor, waitFor, waitOnReactor


class FakeTime:
    """
    C{time.monotonic} and C{time.sleep} on a counter: a wait runs through
    its deadline at once.
    """

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class WaitForTests(SynchronousTestCase):
    """
    L{waitFor}, the blocking wait.
    """

    def setUp(self):
        self.time = FakeTime()
        patcher = mock.patch.object(waiting, "time", self.time)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_returnsWhatThePredicateReturned(self):
        """
        The wait polls every C{interval} seconds until the predicate returns
        something true, and returns that.
        """
        answers = iter([None, 0, "", "found"])
        self.assertEqual(waitFor(lambda: next(answers), 5.0, "it", interval=0.5), "found")
        self.assertEqual(self.time.sleeps, [0.5, 0.5, 0.5])

    def test_failureSaysWhatHowLongAndLastSeen(self):
        """
        Past the deadline the wait fails with an C{AssertionError} naming
        what was awaited, the timeout, and what the predicate last returned.
        """
        error = self.assertRaises(AssertionError, waitFor, lambda: [], 2.0, "the records")
        self.assertEqual(
            str(error),
            "timed out after 2 s waiting for the records (the check last returned [])",
        )
        self.assertEqual(len(self.time.sleeps), 21)

    def test_whatMayDescribeTheLastState(self):
        """
        A callable C{what} is called only when the wait fails, so it can
        describe the last state seen.
        """
        seen = []

        def predicate():
            seen.append(len(seen))
            return False

        error = self.assertRaises(
            AssertionError, waitFor, predicate, 1.0, lambda: f"{len(seen)} polls"
        )
        self.assertIn("waiting for 12 polls", str(error))

    def test_generousDefaultDeadline(self):
        """
        L{DEADLINE}, for callers without a sharper bound, allows for a busy
        machine: a minute at least.
        """
        self.assertGreaterEqual(DEADLINE, 60.0)


class WaitOnReactorTests(SynchronousTestCase):
    """
    L{waitOnReactor} and L{sleepOnReactor}, the waits for code running on
    the reactor.
    """

    def setUp(self):
        self.clock = Clock()
        self.time = FakeTime()
        patcher = mock.patch.object(waiting, "time", self.time)
        patcher.start()
        self.addCleanup(patcher.stop)

    def advance(self, seconds):
        self.time.now += seconds
        self.clock.advance(seconds)

    def test_firesWithTheSecondsWaited(self):
        """
        The wait polls on the reactor, without blocking, and fires with the
        seconds it waited.
        """
        ready = []
        d = waitOnReactor(lambda: ready, 5.0, "ready", interval=0.5, reactor=self.clock)
        self.assertNoResult(d)
        self.advance(0.5)
        self.assertNoResult(d)
        ready.append(True)
        self.advance(0.5)
        self.assertEqual(self.successResultOf(d), 1.0)

    def test_failsPastTheDeadline(self):
        """
        Past the deadline the Deferred fails with an C{AssertionError}
        naming what was awaited.
        """
        d = waitOnReactor(lambda: False, 1.0, "down", interval=0.5, reactor=self.clock)
        for _ in range(3):
            self.advance(0.5)
        failure = self.failureResultOf(d, AssertionError)
        self.assertIn("waiting for down", str(failure.value))

    def test_sleep(self):
        """
        L{sleepOnReactor} fires once the time has passed on the reactor.
        """
        d = sleepOnReactor(2.0, self.clock)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(d))

    def test_pollIsShared(self):
        """
        Both flavours use L{Poll}: a predicate that holds ends the poll at
        once with its result.
        """
        poll = Poll(lambda: "x", 0.0, "x")
        self.assertTrue(poll.done())
        self.assertEqual(poll.result, "x")


class CaptureLogsTests(SynchronousTestCase):
    """
    L{captureLogs} and L{eventsFrom}.
    """

    def test_capturesAndFilters(self):
        """
        Events logged during the test are captured; L{eventsFrom} keeps
        those of a namespace (and its children), at a level when given.
        """
        events = captureLogs(self)
        Logger(namespace="gateway.server.descriptors").warn("reserve")
        Logger(namespace="gateway.server.descriptors.child").info("child")
        Logger(namespace="gateway.router").warn("other")
        self.assertEqual(
            [e["log_format"] for e in eventsFrom(events, "gateway.server.descriptors")],
            ["reserve", "child"],
        )
        self.assertEqual(
            [e["log_format"] for e in eventsFrom(events, "gateway.server", "warn")],
            ["reserve"],
        )


class ProxyHeaderTests(SynchronousTestCase):
    """
    L{proxyV1} and L{proxyV2} build headers Twisted's own PROXY wrapper
    reads back (L{proxyWrappingFactory}).
    """

    def parsed(self, header):
        """
        :return: the client's and the proxy's addresses, as the wrapper of
            a C{haproxy:} port reads them from C{header}.
        """
        wrapper = proxyWrappingFactory(Factory.forProtocol(Protocol)).buildProtocol(
            IPv4Address("TCP", "127.0.0.1", 1)
        )
        wrapper.makeConnection(StringTransport())
        wrapper.dataReceived(header)
        return wrapper.getPeer(), wrapper.getHost()

    def test_v1(self):
        """
        The v1 header names the source and destination addresses and ports.
        """
        header = proxyV1("203.0.113.7", 5555)
        self.assertEqual(header, b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n")
        source, destination = self.parsed(header)
        self.assertEqual((source.host, source.port), ("203.0.113.7", 5555))
        self.assertEqual((destination.host, destination.port), ("127.0.0.1", 9000))

    def test_v2(self):
        """
        The v2 header is the binary signature, version 2 and command PROXY,
        TCP over IPv4, and the two addresses and ports.
        """
        header = proxyV2("198.51.100.9", 4444, "10.0.0.1", 8080)
        source, destination = self.parsed(header)
        self.assertEqual((source.host, source.port), ("198.51.100.9", 4444))
        self.assertEqual((destination.host, destination.port), ("10.0.0.1", 8080))


class TemporaryDirectoryTests(SynchronousTestCase):
    """
    L{temporaryDirectory}.
    """

    def test_outsideTheWorkingTreeAndRemoved(self):
        """
        The directory exists, empty, outside the current directory, and is
        removed when the test's clean-ups run.
        """
        path = temporaryDirectory(self)
        self.assertEqual(os.listdir(path), [])
        self.assertFalse(os.path.abspath(path).startswith(os.getcwd() + os.sep))
        self.doCleanups()
        self.assertFalse(os.path.exists(path))
