# -*- test-case-name: tests.server.test_gate -*-
"""
Tests for L{gateway.server.gate.ListenerGate}, the caps on a listener's
connections, and L{gateway.logs.OncePerInterval}, which paces its logs.
"""

from ipaddress import ip_network

from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from gateway.logs import OncePerInterval
from gateway.server.gate import ListenerGate
from gateway.server.listener import ListenerStats
from gateway.server.policy import (
    FRAME_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_AGE,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    ConnectionPolicy,
)
from tests.server.helpers import (
    captureLogs,
    eventsFrom,
)


class OncePerIntervalTests(SynchronousTestCase):
    """
    L{OncePerInterval}.
    """

    def test_firstEventReported(self):
        """
        The first event is reported at once, counted.
        """
        limiter = OncePerInterval(Clock(), 10)
        self.assertEqual(limiter.event("a"), {"a": 1})

    def test_withinIntervalSuppressed(self):
        """
        Events less than an interval after a report are not reported.
        """
        clock = Clock()
        limiter = OncePerInterval(clock, 10)
        limiter.event("a")
        clock.advance(9.9)
        self.assertIsNone(limiter.event("a"))
        self.assertIsNone(limiter.event("b"))

    def test_summaryCountsEverythingSince(self):
        """
        The first event an interval or more after the last report is
        reported with every event since that report, of every kind; the
        counts then start again.
        """
        clock = Clock()
        limiter = OncePerInterval(clock, 10)
        limiter.event("a")
        clock.advance(3)
        limiter.event("a")
        limiter.event("b")
        clock.advance(7)
        self.assertEqual(limiter.event("a"), {"a": 2, "b": 1})
        clock.advance(5)
        self.assertIsNone(limiter.event("b"))
        clock.advance(5)
        self.assertEqual(limiter.event("c"), {"b": 1, "c": 1})


class ListenerGateTests(SynchronousTestCase):
    """
    L{ListenerGate} on its own.
    """

    def setUp(self):
        self.clock = Clock()
        self.stats = ListenerStats()
        self.logs = captureLogs(self)

    def gate(self, **policy):
        return ListenerGate("gated", ConnectionPolicy(**policy), self.stats, self.clock)

    def test_maxConnections(self):
        """
        Connections over C{max-connections} are refused and counted by
        reason; releasing one lets the next in.
        """
        gate = self.gate(maxConnections=2)
        self.assertEqual(
            [gate.admit(f"10.0.0.{i}", f"10.0.0.{i}:1") for i in range(3)],
            [True, True, False],
        )
        self.assertEqual(gate.admitted, 2)
        self.assertEqual(self.stats.refused, {MAX_CONNECTIONS: 1})
        gate.release("10.0.0.0")
        self.assertTrue(gate.admit("10.0.0.9", "10.0.0.9:1"))
        self.assertFalse(gate.admit("10.0.0.8", "10.0.0.8:1"))
        self.assertEqual(self.stats.refused, {MAX_CONNECTIONS: 2})

    def test_maxPerAddressPerHost(self):
        """
        C{max-per-address} counts the connections of each host; other hosts
        are not affected, and releasing one frees that host's slot.
        """
        gate = self.gate(maxPerAddress=2)
        self.assertTrue(gate.admit("10.0.0.1", "10.0.0.1:1"))
        self.assertTrue(gate.admit("10.0.0.1", "10.0.0.1:2"))
        self.assertFalse(gate.admit("10.0.0.1", "10.0.0.1:3"))
        self.assertTrue(gate.admit("10.0.0.2", "10.0.0.2:1"))
        self.assertEqual(self.stats.refused, {MAX_PER_ADDRESS: 1})
        gate.release("10.0.0.1")
        self.assertTrue(gate.admit("10.0.0.1", "10.0.0.1:4"))
        self.assertFalse(gate.admit("10.0.0.1", "10.0.0.1:5"))
        self.assertEqual(gate.admitted, 3)

    def test_lastReleaseForgetsHost(self):
        """
        A host whose last connection is released is admitted again up to the
        full per-address cap.
        """
        gate = self.gate(maxPerAddress=2)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.release("10.0.0.1")
        self.assertEqual(
            [gate.admit("10.0.0.1", f"10.0.0.1:{i}") for i in range(3)],
            [True, True, False],
        )
        self.assertEqual(gate.admitted, 2)

    def test_refusalsLoggedOncePerInterval(self):
        """
        The first refusal is logged as a warning naming the listener, the
        peer, the reason, the limit and the connections open; later ones
        within the interval are only counted, and summed up in the next
        line.
        """
        gate = self.gate(maxConnections=2, maxPerAddress=1)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.admit("10.0.0.1", "10.0.0.1:2")
        gate.admit("10.0.0.2", "10.0.0.2:1")
        gate.admit("10.0.0.3", "10.0.0.3:1")
        self.clock.advance(9)
        gate.admit("10.0.0.4", "10.0.0.4:1")
        [first] = eventsFrom(self.logs, "gateway.server.gate", "warn")
        self.assertEqual(
            {k: first[k] for k in ("listener", "peer", "reason", "limit", "open")},
            {
                "listener": "gated",
                "peer": "10.0.0.1:2",
                "reason": MAX_PER_ADDRESS,
                "limit": 1,
                "open": 1,
            },
        )
        self.clock.advance(1)
        gate.release("10.0.0.2")
        gate.admit("10.0.0.1", "10.0.0.1:3")
        first, second = eventsFrom(self.logs, "gateway.server.gate", "warn")
        self.assertEqual((second["peer"], second["open"]), ("10.0.0.1:3", 1))
        self.assertEqual(second["summary"], "2 max-connections, 1 max-per-address")
        self.assertEqual(self.stats.refused, {MAX_CONNECTIONS: 2, MAX_PER_ADDRESS: 2})

    def test_closingCountedAndLogged(self):
        """
        L{ListenerGate.closing} counts the gateway's closings by reason and
        logs them once per interval, apart from refusals: a refusal's line
        does not hold back a closing's.
        """
        gate = self.gate(maxConnections=1)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.admit("10.0.0.2", "10.0.0.2:1")
        gate.closing(IDLE_TIMEOUT, "10.0.0.1:1", 5)
        gate.closing(MAX_AGE, "10.0.0.3:1", 60)
        self.assertEqual(self.stats.closedBy, {IDLE_TIMEOUT: 1, MAX_AGE: 1})
        [line] = eventsFrom(self.logs, "gateway.server.gate", "info")
        self.assertEqual(
            (line["reason"], line["after"], line["peer"]), (IDLE_TIMEOUT, 5, "10.0.0.1:1")
        )
        self.clock.advance(10)
        gate.closing(IDLE_TIMEOUT, "10.0.0.4:1", 5)
        lines = eventsFrom(self.logs, "gateway.server.gate", "info")
        self.assertEqual(lines[-1]["summary"], "1 idle-timeout, 1 max-age")
        self.assertEqual(len(lines), 2)

    def test_refusalLineRenders(self):
        """
        A cap's refusal line names the cap and its limit, the peer and the
        connections open; a refusal that is not a cap's names only its
        reason.
        """
        gate = self.gate(maxConnections=1, allow=(ip_network("10.0.0.0/8"),))
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.admit("10.0.0.2", "10.0.0.2:7")
        self.clock.advance(10)
        gate.admit("192.0.2.1", "192.0.2.1:9")
        first, second = eventsFrom(self.logs, "gateway.server.gate", "warn")
        self.assertEqual((first["limit"], first["peer"]), (1, "10.0.0.2:7"))
        self.assertEqual(
            formatEvent(first),
            "gated: refused 10.0.0.2:7: max-connections 1 reached (1 open); "
            "1 max-connections since the last such line",
        )
        self.assertEqual(second["limit"], None)
        self.assertEqual(
            formatEvent(second),
            "gated: refused 192.0.2.1:9: not-allowed (1 open); "
            "1 not-allowed since the last such line",
        )

    def test_closingLineRenders(self):
        """
        A closing's line names the listener, the peer, the reason and the
        limit in seconds.
        """
        self.gate().closing(MAX_AGE, "10.0.0.1:1", 2.5)
        [line] = eventsFrom(self.logs, "gateway.server.gate", "info")
        self.assertEqual(line["listener"], "gated")
        self.assertEqual(
            formatEvent(line),
            "gated: closing 10.0.0.1:1 (max-age, 2.5 s); 1 max-age since the last such line",
        )

    def test_closingCountsEach(self):
        """
        Every closing is counted, logged or not; one already counted (by
        the framing) is only logged.
        """
        gate = self.gate()
        for _ in range(3):
            gate.closing(IDLE_TIMEOUT, "10.0.0.1:1", 5)
        gate.closing(FRAME_TIMEOUT, "10.0.0.1:2", 1, counted=True)
        self.assertEqual(self.stats.closedBy, {IDLE_TIMEOUT: 3})
        self.assertEqual(len(eventsFrom(self.logs, "gateway.server.gate", "info")), 1)

    def test_interval(self):
        """
        The interval between lines is the gate's, for refusals and for
        closings alike: a line is due again exactly one interval later,
        not just before.
        """
        gate = ListenerGate(
            "gated", ConnectionPolicy(maxConnections=1), self.stats, self.clock, interval=2
        )
        gate.admit("10.0.0.1", "10.0.0.1:1")
        for when in (0, 1.9, 0.1):
            self.clock.advance(when)
            gate.admit("10.0.0.2", "10.0.0.2:1")
            gate.closing(IDLE_TIMEOUT, "10.0.0.1:1", 5)
        self.assertEqual(len(eventsFrom(self.logs, "gateway.server.gate", "warn")), 2)
        self.assertEqual(len(eventsFrom(self.logs, "gateway.server.gate", "info")), 2)

    def test_releaseForgetsHost(self):
        """
        A host with no connection left takes no room in the per-address
        counts (a gateway seeing many hosts does not grow without bound).
        """
        gate = self.gate(maxPerAddress=2)
        gate.admit("10.0.0.1", "10.0.0.1:1")
        gate.admit("10.0.0.1", "10.0.0.1:2")
        gate.release("10.0.0.1")
        self.assertEqual(dict(gate._perAddress), {"10.0.0.1": 1})
        gate.release("10.0.0.1")
        self.assertEqual(dict(gate._perAddress), {})
