# -*- test-case-name: tests.server.test_listener -*-
"""
Tests for L{gateway.server.listener.ListenerService}: pausing and resuming
accepting, with reasons.
"""

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase

from gateway.server.listener import ListenerConfig, ListenerService


class FakePort:
    """
    A listening port counting C{stopReading} and C{startReading} calls.
    """

    def __init__(self):
        self.stops = 0
        self.starts = 0

    def stopReading(self):
        self.stops += 1

    def startReading(self):
        self.starts += 1

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 9000)


class FakeEndpoint:
    def __init__(self, port):
        self.port = port

    def listen(self, factory):
        return defer.succeed(self.port)


class PauseAcceptingTests(SynchronousTestCase):
    """
    L{ListenerService.pauseAccepting} and C{resumeAccepting} with reasons.
    """

    def setUp(self):
        self.port = FakePort()
        config = ListenerConfig(
            name="l", framing="lines", endpoint="tcp:0", sink=None, maxMessageSize=10
        )
        self.service = ListenerService(config, FakeEndpoint(self.port), Factory())

    def test_resumesWhenEveryReasonWithdrawn(self):
        """
        The port stops reading at the first reason, and reads again only
        once every reason is withdrawn.
        """
        self.service.startService()
        self.service.pauseAccepting("budget")
        self.service.pauseAccepting("descriptors")
        self.assertEqual((self.port.stops, self.service.accepting), (1, False))
        self.service.resumeAccepting("budget")
        self.assertEqual((self.port.starts, self.service.accepting), (0, False))
        self.service.resumeAccepting("descriptors")
        self.assertEqual((self.port.starts, self.service.accepting), (1, True))

    def test_sameReasonTwice(self):
        """
        A reason given twice is one reason: one withdrawal resumes.
        """
        self.service.startService()
        self.service.pauseAccepting("accept-error")
        self.service.pauseAccepting("accept-error")
        self.service.resumeAccepting("accept-error")
        self.assertEqual((self.port.stops, self.port.starts), (1, 1))
        self.assertTrue(self.service.accepting)

    def test_unknownReasonWithdrawn(self):
        """
        Withdrawing a reason that was not given changes nothing.
        """
        self.service.startService()
        self.service.resumeAccepting("budget")
        self.service.pauseAccepting("descriptors")
        self.service.resumeAccepting("budget")
        self.assertEqual((self.port.stops, self.port.starts), (1, 0))
        self.assertFalse(self.service.accepting)

    def test_pausedBeforeBinding(self):
        """
        A listener paused before it binds stops reading as soon as it is
        bound.
        """
        self.service.pauseAccepting("descriptors")
        self.assertEqual(self.port.stops, 0)
        self.service.startService()
        self.assertEqual((self.port.stops, self.service.accepting), (1, False))
        self.service.resumeAccepting("descriptors")
        self.assertEqual((self.port.starts, self.service.accepting), (1, True))
