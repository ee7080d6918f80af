# -*- test-case-name: tests.kafka.test_health -*-
"""
L{BrokerHealthService} on a L{MemoryReactorClock}: connection attempts are
completed by hand against L{FakeBroker}s through L{twisted.test.iosim}, so
every connection, probe, timeout and reconnect delay is counted exactly.
"""

from twisted.application.internet import backoffPolicy
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.health import (
    DEGRADED,
    DOWN,
    READY,
    STARTING,
    BrokerHealthService,
    parseBootstrap,
)
from gateway.kafka.security import securityFromConfig
from tests.kafka.test_probe import FakeBroker
from tests.kafka.test_sasl import FakeSaslBroker

A, B = 9092, 9093


class FakeNetwork:
    """
    Completes the connection attempts a L{MemoryReactorClock} records.

    :ivar refusing: ports whose attempts are refused.
    :ivar blackholed: ports whose attempts never complete.
    :ivar silent: ports whose new brokers do not answer.
    :ivar errorCodes: port to the error code its new brokers reply with.
    :ivar links: every connection made, as dicts with C{port}, C{broker},
        C{pump} and C{server} (the broker's transport).
    """

    #: What answers on the other side of each connection.
    brokerClass = FakeBroker

    def __init__(self, reactor):
        self.reactor = reactor
        self.refusing, self.blackholed, self.silent = set(), set(), set()
        self.errorCodes = {}
        self.links = []
        self._seen = 0

    def attempts(self, port):
        """
        :return: how many times C{connectTCP} was called for C{port}.
        """
        return sum(1 for client in self.reactor.tcpClients if client[1] == port)

    def live(self, port):
        """
        :return: the open connections to C{port}.
        """
        return [
            link
            for link in self.links
            if link["port"] == port and not link["pump"].clientIO.disconnected
        ]

    def settle(self):
        """
        Complete new attempts, then move bytes until nothing moves.
        """
        while self._seen < len(self.reactor.tcpClients):
            host, port, factory, _, _ = self.reactor.tcpClients[self._seen]
            connector = self.reactor.connectors[self._seen]
            self._seen += 1
            if port in self.refusing:
                factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
            elif port not in self.blackholed:
                client = factory.buildProtocol(IPv4Address("TCP", host, port))
                broker = self.brokerClass()
                broker.answering = port not in self.silent
                broker.errorCode = self.errorCodes.get(port, 0)
                server = iosim.makeFakeServer(broker)
                pump = iosim.connect(
                    broker, server, client, iosim.makeFakeClient(client), clock=self.reactor
                )
                self.links.append({"port": port, "broker": broker, "pump": pump, "server": server})
        for link in self.links:
            link["pump"].flush()

    def cut(self, port):
        """
        The broker closes its connection.
        """
        for link in self.live(port):
            link["server"].loseConnection()
        self.settle()


class HealthTestsMixin:
    interval = 5.0

    def makeService(self, bootstrap=f"127.0.0.1:{A}", start=True, **kw):
        self.reactor = MemoryReactorClock()
        self.network = FakeNetwork(self.reactor)
        self.producer = {
            "brokersUp": 1,
            "lastDeliveryAge": 0.1,
            "pending": 0,
            "budgetFraction": 0.0,
        }
        self.events, self.states = [], []
        kw.setdefault("retryPolicy", backoffPolicy(0.5, 30, 2, jitter=lambda: 0))
        kw.setdefault("producerStatus", lambda: self.producer)
        self.service = BrokerHealthService(self.reactor, bootstrap, interval=self.interval, **kw)
        self.service.log = Logger(observer=self.events.append)
        self.service.addObserver(lambda state, reason: self.states.append(state))
        if start:
            self.service.startService()
            self.network.settle()
        return self.service

    def elapse(self, seconds, step=0.125):
        """
        Let C{seconds} pass in small steps (exact in binary, so that times
        add up), the network settling after each.
        """
        for _ in range(round(seconds / step)):
            self.reactor.advance(step)
            self.network.settle()

    def rounds(self, count=1):
        """
        Let C{count} probe intervals pass.
        """
        for _ in range(count):
            self.reactor.advance(self.interval)
            self.network.settle()

    def transitions(self):
        return [(e["old"], e["new"]) for e in self.events if "new" in e and "old" in e]


class ConnectionTests(HealthTestsMixin, SynchronousTestCase):
    """
    One persistent connection per broker, reconnected with backoff.
    """

    def test_oneConnectionPerBroker(self):
        """
        Each bootstrap broker gets one connection, and every probe over many
        intervals travels on it.
        """
        service = self.makeService(f"127.0.0.1:{A}, 127.0.0.1:{B}")
        self.assertEqual(
            [(c[0], c[1]) for c in self.reactor.tcpClients],
            [("127.0.0.1", A), ("127.0.0.1", B)],
        )
        self.rounds(50)
        self.assertEqual((self.network.attempts(A), self.network.attempts(B)), (1, 1))
        for link in self.network.links:
            self.assertEqual(len(link["broker"].requests), 51)
        self.assertEqual((service.probesOk, service.probesFailed), (102, 0))
        self.assertEqual(service.status()["brokers"][f"127.0.0.1:{A}"]["connections"], 1)
        self.assertEqual(self.states, [READY])

    def test_reconnectWithBackoff(self):
        """
        A dropped connection makes the broker down at once; reconnection
        waits for the backoff policy, its delay doubling on each refusal,
        and a new connection makes it ready again.
        """
        service = self.makeService()
        self.network.refusing.add(A)
        self.network.cut(A)
        self.assertEqual(service.state, DOWN)
        self.assertIn("connection lost", service.reason)
        self.elapse(0.875)
        self.assertEqual(self.network.attempts(A), 1)
        self.elapse(0.125)  # 1 s after the loss: second attempt, refused
        self.assertEqual(self.network.attempts(A), 2)
        self.assertIn("cannot connect: Connection was refused", service.reason)
        self.elapse(1.875)
        self.assertEqual(self.network.attempts(A), 2)
        self.elapse(0.125)  # 2 s later: third attempt, refused
        self.assertEqual(self.network.attempts(A), 3)
        self.network.refusing.clear()
        self.elapse(3.875)
        self.assertEqual(self.network.attempts(A), 3)
        self.elapse(0.125)  # 4 s later: fourth attempt, accepted
        self.assertEqual(self.network.attempts(A), 4)
        self.assertEqual(service.state, READY)
        self.assertEqual(self.states, [READY, DOWN, READY])

    def test_failedFirstProbeIsFailedAttempt(self):
        """
        A connection whose first probe is not answered is closed and counts
        as a failed attempt: the next delays grow as for refusals.
        """
        service = self.makeService(probeTimeout=0.5)
        self.network.silent.add(A)
        self.network.cut(A)
        self.elapse(1.0)  # reconnected; its probe is pending
        self.assertEqual(self.network.attempts(A), 2)
        self.assertEqual(len(self.network.live(A)), 1)
        self.elapse(0.5)  # timed out: closed; no NoTransition escapes
        self.assertEqual(self.network.live(A), [])
        self.assertIn("no reply", service.reason)
        self.elapse(1.875)  # a failed attempt: the next delay is 2 s, not 1 s
        self.assertEqual(self.network.attempts(A), 2)
        self.elapse(0.125)
        self.assertEqual(self.network.attempts(A), 3)

    def test_lostDuringFirstProbe(self):
        """
        A connection lost while its first probe waits is a failed attempt,
        and the loss raises nothing.
        """
        service = self.makeService()
        self.network.silent.add(A)
        self.network.cut(A)
        self.elapse(1.0)
        self.network.cut(A)
        self.assertEqual(service.state, DOWN)
        self.assertIn("lost with a probe pending", service.reason)
        self.network.silent.clear()
        self.elapse(2.0)
        self.assertEqual(self.network.attempts(A), 3)
        self.assertEqual(service.state, READY)

    def test_errorCodeRejectsConnection(self):
        """
        An ApiVersions reply with an error code is a failed probe; on a new
        connection it rejects the connection.
        """
        service = self.makeService(start=False)
        self.network.errorCodes[A] = 35
        service.startService()
        self.network.settle()
        self.assertEqual(service.state, DOWN)
        self.assertIn("error code 35", service.reason)
        self.assertEqual(self.network.live(A), [])
        self.elapse(1.0)
        self.assertEqual(self.network.attempts(A), 2)

    def test_notConnectedCountsDown(self):
        """
        A broker whose connection attempt hangs is down from the first
        round on, and each round counts a failed check for it.
        """
        service = self.makeService(f"127.0.0.1:{A},127.0.0.1:{B}", start=False)
        self.network.blackholed.add(B)
        service.startService()
        self.network.settle()
        self.assertEqual(service.state, STARTING)
        self.rounds(3)
        self.assertEqual(service.state, DEGRADED)
        self.assertIn(f"127.0.0.1:{B} (not connected)", service.reason)
        self.assertEqual(service.status()["brokers"][f"127.0.0.1:{B}"]["probesFailed"], 3)
        self.assertEqual(self.network.attempts(B), 1)

    def test_noOverlappingProbes(self):
        """
        While a probe waits for its reply, rounds send no other on that
        connection.
        """
        self.makeService(probeTimeout=12.0)
        (link,) = self.network.links
        link["broker"].answering = False
        self.rounds(2)
        self.assertEqual(len(link["broker"].requests), 2)  # the first and one more

    def test_endpointFactory(self):
        """
        An C{endpointFactory} builds each broker's endpoint from the
        reactor, host, port and connect timeout.
        """
        calls = []

        def endpointFactory(reactor, host, port, timeout):
            calls.append((reactor, host, port, timeout))
            from twisted.internet.endpoints import TCP4ClientEndpoint

            return TCP4ClientEndpoint(reactor, host, port, timeout)

        self.makeService(f"10.0.0.1:{A}", endpointFactory=endpointFactory, probeTimeout=2.0)
        self.assertEqual(calls, [(self.reactor, "10.0.0.1", A, 2.0)])
        self.assertEqual(self.service.state, READY)
        self.assertEqual(self.network.attempts(A), 1)


class StateTests(HealthTestsMixin, SynchronousTestCase):
    """
    The state, rule by rule.
    """

    def test_starting(self):
        """
        Until a broker answers, the state is C{starting}, not ready, and no
        observer is called.
        """
        service = self.makeService(start=False)
        self.network.blackholed.add(A)
        service.startService()
        self.network.settle()
        self.assertEqual(service.state, STARTING)
        self.assertFalse(service.isReady())
        self.assertEqual(self.states, [])

    def test_ready(self):
        """
        The first answer makes it C{ready}; the transition is logged with
        old, new and reason fields and observers get state and reason.
        """
        service = self.makeService(start=False)
        seen = []
        service.addObserver(lambda state, reason: seen.append((state, reason)))
        service.startService()
        self.network.settle()
        self.assertTrue(service.isReady())
        self.assertEqual(seen, [(READY, service.reason)])
        self.assertIn("1 of 1 brokers answer", service.reason)
        (event,) = [e for e in self.events if "new" in e]
        self.assertEqual(
            (event["old"], event["new"], event["reason"]), (STARTING, READY, service.reason)
        )

    def test_brokersDegradedDown(self):
        """
        One broker of two down is C{degraded}, naming it; both down is
        C{down}; both back is C{ready}.
        """
        service = self.makeService(f"127.0.0.1:{A},127.0.0.1:{B}")
        self.network.refusing.update({A, B})
        self.network.cut(A)
        self.assertEqual(service.state, DEGRADED)
        self.assertIn(f"1 of 2 brokers down: 127.0.0.1:{A}", service.reason)
        self.network.cut(B)
        self.assertEqual(service.state, DOWN)
        self.assertIn("no broker answers the probe", service.reason)
        self.network.refusing.clear()
        self.elapse(1.0)  # both reconnect, A first
        self.assertEqual(service.state, READY)
        self.assertEqual(self.states, [READY, DEGRADED, DOWN, DEGRADED, READY])

    def test_latency(self):
        """
        A probe slower than the latency threshold makes it C{degraded}; a
        fast one makes it ready again.  The latency is kept per broker.
        """
        service = self.makeService(latencyThreshold=1.0)
        (link,) = self.network.links
        link["broker"].answering = False
        self.rounds()
        self.reactor.advance(1.5)
        link["broker"].release()
        self.network.settle()
        self.assertEqual(service.state, DEGRADED)
        self.assertIn("probe latency over 1 s: 127.0.0.1:9092 1.500 s", service.reason)
        self.assertEqual(service.brokerLatency, {f"127.0.0.1:{A}": 1.5})
        link["broker"].answering = True
        self.rounds()
        self.assertEqual(service.state, READY)
        self.assertEqual(service.brokerLatency, {f"127.0.0.1:{A}": 0})

    def test_probeTimeout(self):
        """
        An unanswered probe on the persistent connection makes the broker
        down after the probe timeout and closes the connection.
        """
        service = self.makeService(probeTimeout=2.0)
        (link,) = self.network.links
        link["broker"].answering = False
        self.rounds()
        self.elapse(1.9)
        self.assertEqual(service.state, READY)
        self.elapse(0.2)
        self.assertEqual(service.state, DOWN)
        self.assertIn("no reply from", service.reason)
        self.assertEqual(service.brokerLatency, {f"127.0.0.1:{A}": None})
        self.assertEqual(self.network.live(A), [])

    def test_budget(self):
        """
        A byte budget used over the threshold makes it C{degraded} at the
        next round, before the budget is full; at the threshold it is not.
        """
        service = self.makeService(budgetThreshold=0.5)
        self.producer["budgetFraction"] = 0.5
        self.rounds()
        self.assertEqual(service.state, READY)
        self.producer["budgetFraction"] = 0.51
        self.rounds()
        self.assertEqual(service.state, DEGRADED)
        self.assertIn("byte budget 51% used, over 50%", service.reason)
        self.producer["budgetFraction"] = 0.2
        self.rounds()
        self.assertEqual(service.state, READY)

    def test_deliveryAge(self):
        """
        Records pending for longer than the threshold while the last
        delivery is older than it make it C{degraded}.
        """
        service = self.makeService(deliveryAgeThreshold=30.0)
        self.producer.update(pending=10, lastDeliveryAge=0.5)
        self.rounds(8)  # pending for 35 s, deliveries flowing
        self.assertEqual(service.state, READY)
        self.producer.update(lastDeliveryAge=30.0)
        self.rounds()
        self.assertEqual(service.state, READY)
        self.producer.update(lastDeliveryAge=31.0)
        self.rounds()
        self.assertEqual(service.state, DEGRADED)
        self.assertIn("10 records pending, none delivered for 31 s (over 30 s)", service.reason)
        self.producer.update(pending=0)
        self.rounds()
        self.assertEqual(service.state, READY)

    def test_idleThenPending(self):
        """
        An old last delivery with nothing pending, or with records only
        just pending (an idle gateway's first record), is not a stall.
        """
        service = self.makeService(deliveryAgeThreshold=30.0)
        self.producer.update(pending=0, lastDeliveryAge=600.0)
        self.rounds()
        self.assertEqual(service.state, READY)
        self.producer.update(pending=1)
        self.rounds(6)  # pending for 25 s
        self.assertEqual(service.state, READY)
        self.rounds(2)
        self.assertEqual(service.state, DEGRADED)
        self.assertIn("none delivered for 35 s", service.reason)

    def test_deliveryAgeUnknown(self):
        """
        With no delivery age, records pending for longer than the threshold
        (as the service saw them) make it C{degraded}.
        """
        service = self.makeService(deliveryAgeThreshold=30.0)
        self.producer.update(pending=5, lastDeliveryAge=None)
        self.rounds(7)  # first seen at the first round, 30 s ago
        self.assertEqual(service.state, READY)
        self.rounds()
        self.assertEqual(service.state, DEGRADED)
        self.assertIn("5 records pending, none delivered for 35 s (over 30 s)", service.reason)
        self.producer.update(pending=0)
        self.rounds()
        self.assertEqual(service.state, READY)

    def test_producerWithoutBroker(self):
        """
        Records pending while the producer has no broker up make it
        C{degraded}; an unknown broker count does not.
        """
        service = self.makeService()
        self.producer.update(pending=3, brokersUp=None)
        self.rounds()
        self.assertEqual(service.state, READY)
        self.producer.update(brokersUp=0)
        self.rounds()
        self.assertEqual(service.state, DEGRADED)
        self.assertIn("3 records pending and the producer has no broker up", service.reason)

    def test_producerStatusObject(self):
        """
        The producer status may be an object with attributes; missing ones
        count as unknown.
        """

        class Status:
            budgetFraction = 0.9

        service = self.makeService(producerStatus=Status)
        self.assertEqual(service.state, DEGRADED)
        self.assertEqual(service.producer["budgetFraction"], 0.9)
        self.assertIsNone(service.producer["pending"])

    def test_producerStatusFails(self):
        """
        A producer status that raises is logged once and ignored.
        """

        def broken():
            raise RuntimeError("no stats yet")

        service = self.makeService(producerStatus=broken)
        self.rounds(3)
        self.assertEqual(service.state, READY)
        failures = [e for e in self.events if "log_failure" in e]
        self.assertEqual(len(failures), 1)

    def test_fullCycle(self):
        """
        starting, ready, degraded, down and ready again, each transition
        logged and observed once.
        """
        service = self.makeService(start=False)
        self.network.silent.add(A)
        service.startService()
        self.network.settle()
        self.assertEqual(service.state, STARTING)
        self.network.silent.clear()
        (link,) = self.network.links
        link["broker"].answering = True
        link["broker"].release()
        self.network.settle()
        self.assertEqual(service.state, READY)
        self.producer["budgetFraction"] = 0.8
        self.rounds()
        self.assertEqual(service.state, DEGRADED)
        self.network.refusing.add(A)
        self.network.cut(A)
        self.assertEqual(service.state, DOWN)
        self.producer["budgetFraction"] = 0.0
        self.network.refusing.clear()
        self.elapse(1.0)
        self.assertEqual(service.state, READY)
        expected = [(STARTING, READY), (READY, DEGRADED), (DEGRADED, DOWN), (DOWN, READY)]
        self.assertEqual(self.transitions(), expected)
        self.assertEqual(self.states, [new for _, new in expected])

    def test_observerErrors(self):
        """
        An observer that raises is logged; the others are still called.
        """
        service = self.makeService(start=False)

        def broken(state, reason):
            raise ValueError("observer bug")

        seen = []
        service.addObserver(broken)
        service.addObserver(lambda state, reason: seen.append(state))
        service.startService()
        self.network.settle()
        self.assertEqual(seen, [READY])
        (failure,) = [e for e in self.events if "log_failure" in e]
        self.assertIs(failure["observer"], broken)

    def test_removeObserver(self):
        """
        A removed observer is not called any more.
        """
        service = self.makeService(start=False)
        seen = []

        def observer(state, reason):
            seen.append(state)

        service.addObserver(observer)
        service.removeObserver(observer)
        service.startService()
        self.network.settle()
        self.assertEqual(seen, [])
        self.assertEqual(self.states, [READY])

    def test_status(self):
        """
        C{status} gives the state, counts and per-broker figures.
        """
        service = self.makeService()
        self.rounds(2)
        status = service.status()
        self.assertEqual(status["state"], READY)
        self.assertTrue(status["ready"])
        self.assertEqual((status["probesOk"], status["probesFailed"]), (3, 0))
        self.assertEqual(
            status["brokers"][f"127.0.0.1:{A}"],
            {
                "up": True,
                "latency": 0,
                "error": None,
                "probesOk": 3,
                "probesFailed": 0,
                "connections": 1,
            },
        )
        self.assertEqual(status["producer"], self.producer)


class LifecycleTests(HealthTestsMixin, SynchronousTestCase):
    """
    Starting and stopping cleanly.
    """

    def test_stop(self):
        """
        Stopping closes the connections and leaves no timer: no probe and no
        reconnect follow, and the state is not ready any more.
        """
        service = self.makeService()
        d = service.stopService()
        self.network.settle()
        self.successResultOf(d)
        self.assertEqual(self.network.live(A), [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(service.isReady())
        self.rounds(3)
        self.assertEqual(self.network.attempts(A), 1)
        self.assertEqual(self.states, [READY])

    def test_stopDuringFirstProbe(self):
        """
        Stopping while the first probe waits closes that connection too.
        """
        service = self.makeService(start=False)
        self.network.silent.add(A)
        service.startService()
        self.network.settle()
        d = service.stopService()
        self.network.settle()
        self.successResultOf(d)
        self.assertEqual(self.network.live(A), [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.states, [])

    def test_stopWhileWaiting(self):
        """
        Stopping while waiting to reconnect cancels the retry.
        """
        service = self.makeService()
        self.network.refusing.add(A)
        self.network.cut(A)
        self.successResultOf(service.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_restart(self):
        """
        A stopped service starts again from C{starting} on a new connection.
        """
        service = self.makeService()
        service.stopService()
        self.network.settle()
        service.startService()
        self.assertEqual(service.state, STARTING)
        self.network.settle()
        self.assertEqual(service.state, READY)
        self.assertEqual(self.network.attempts(A), 2)


class SaslTests(HealthTestsMixin, SynchronousTestCase):
    """
    Connections that authenticate with SASL before their first probe.
    """

    def makeSecured(self, password):
        config = {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "alice",
            "sasl.password": password,
        }
        self.makeService(start=False, security=securityFromConfig(config))
        self.network.brokerClass = FakeSaslBroker
        self.service.startService()
        self.network.settle()

    def test_authenticated(self):
        """
        With the right password the connection authenticates, then probes:
        the state is ready.
        """
        self.makeSecured("alice-secret")
        self.rounds()
        self.assertEqual(self.service.state, READY)
        self.assertEqual(self.network.links[0]["broker"].apiKeys[:2], [(17, 1), (36, 0)])

    def test_wrongPasswordOnce(self):
        """
        A wrong password makes the state down with the broker's reason,
        logged as one error however often the probe reconnects.
        """
        self.makeSecured("wrong")
        self.rounds(5)
        self.assertEqual(self.service.state, DOWN)
        self.assertIn("authentication as 'alice' failed", self.service.reason)
        self.assertGreater(self.network.attempts(A), 3)
        errors = [e for e in self.events if e["log_level"].name == "error"]
        self.assertEqual(len(errors), 1)
        self.assertNotIn("wrong", str(errors[0]["error"]))


class BootstrapTests(SynchronousTestCase):
    """
    L{parseBootstrap}.
    """

    def test_list(self):
        """
        Comma-separated C{host:port} pairs, spaces and duplicates dropped,
        IPv6 in brackets, a scheme prefix ignored.
        """
        self.assertEqual(
            parseBootstrap(" a:1, b.example:2,,[::1]:9092,PLAINTEXT://c:3,a:1 "),
            [("a", 1), ("b.example", 2), ("::1", 9092), ("c", 3)],
        )

    def test_bad(self):
        """
        Missing or bad ports and empty lists are L{ValueError}s.
        """
        for bad in ["", " , ", "a", "a:", "a:0", "a:70000", "a:b", "::1:9092"]:
            self.assertRaises(ValueError, parseBootstrap, bad)

    def test_positiveTimes(self):
        """
        An interval or probe timeout that is not positive is refused (an
        interval of 0 would probe on every reactor iteration).
        """
        for kw in [{"interval": 0}, {"interval": -1}, {"probeTimeout": 0}]:
            self.assertRaises(ValueError, BrokerHealthService, MemoryReactorClock(), "k:1", **kw)

    def test_brokerNames(self):
        """
        Brokers are named as given; IPv6 names keep their brackets.
        """
        service = BrokerHealthService(MemoryReactorClock(), "[::1]:9092,k:1")
        self.assertEqual(list(service.brokerLatency), ["[::1]:9092", "k:1"])
