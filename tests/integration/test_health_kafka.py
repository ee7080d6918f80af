# -*- test-case-name: tests.integration.test_health_kafka -*-
"""
L{BrokerHealthService} against real Apache Kafka brokers, on the real
reactor (pytest-twisted): one persistent probe connection, counted in the
operating system's socket tables, and a broker of its own stopped and
started again to watch the state follow.
"""

import os
import signal
import time

import pytest_twisted
from twisted.application.internet import backoffPolicy
from twisted.internet.threads import deferToThread

from devkafka import DevKafka
from gateway.kafka.health import DOWN, READY, BrokerHealthService
from tests.integration.conftest import devkafkaHome
from tests.integration.support.procfs import socketsTo
from tests.support.waiting import sleepOnReactor, waitOnReactor

INTERVAL = 0.2
#: Slack for the reactor and the broker on a busy machine.
MARGIN = 2.0


def _reactor():
    from twisted.internet import reactor

    return reactor


def port(bootstrap):
    return int(bootstrap.rsplit(":", 1)[1])


@pytest_twisted.inlineCallbacks
def test_onePersistentConnection(kafka):
    """
    Probing every 0.2 s for 2 s keeps exactly one connection from this
    process to the broker, and every probe is answered on it.
    """
    before = socketsTo(os.getpid(), port(kafka.bootstrap))
    service = BrokerHealthService(_reactor(), kafka.bootstrap, interval=INTERVAL)
    service.startService()
    try:
        yield waitOnReactor(service.isReady, 15.0, "ready")
        answered = service.probesOk
        counts = []
        for _ in range(10):
            yield sleepOnReactor(INTERVAL)
            counts.append(socketsTo(os.getpid(), port(kafka.bootstrap)) - before)
        assert counts == [1] * 10
        assert service.probesOk - answered >= 8
        assert service.probesFailed == 0
        (broker,) = service.status()["brokers"].values()
        assert broker["connections"] == 1
        assert 0 < service.brokerLatency[kafka.bootstrap] < 1.0
        assert service.state == READY
    finally:
        yield service.stopService()
    assert socketsTo(os.getpid(), port(kafka.bootstrap)) == before


@pytest_twisted.inlineCallbacks
def test_brokerHangsStopsAndStarts(request, tmp_path):
    """
    A broker of the test's own.  Frozen (SIGSTOP: its socket stays open but
    nothing answers), the state is C{down} within an interval plus the probe
    timeout; thawed, C{ready} again.  Stopped, C{down} within an interval;
    started again on the same port, C{ready} within the reconnect delay
    plus an interval.  The session broker is never touched.
    """
    broker = DevKafka("4", home=devkafkaHome(request.config), name="health-test", runRoot=tmp_path)
    changes = []
    service = None
    try:
        yield deferToThread(broker.start, 120.0)
        firstPort = broker.port
        service = BrokerHealthService(
            _reactor(),
            broker.bootstrap,
            interval=INTERVAL,
            probeTimeout=1.0,
            retryPolicy=backoffPolicy(initialDelay=0.1, maxDelay=0.5, factor=2),
        )
        service.addObserver(
            lambda state, reason: changes.append((time.monotonic(), state, reason))
        )
        service.startService()
        yield waitOnReactor(service.isReady, 15.0, "ready")

        pid = broker.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            yield waitOnReactor(
                lambda: service.state == DOWN, INTERVAL + 1.0 + MARGIN, "down when hung"
            )
            assert "no reply from" in service.reason
        finally:
            os.kill(pid, signal.SIGCONT)
        yield waitOnReactor(service.isReady, 1.5 + 1.0 + INTERVAL + MARGIN, "ready when thawed")

        yield deferToThread(broker.stop)
        stopped = time.monotonic()
        yield waitOnReactor(lambda: service.state == DOWN, INTERVAL + MARGIN, "down")
        downAt = [t for t, state, _ in changes if state == DOWN][-1]
        assert downAt - stopped < INTERVAL + MARGIN

        yield deferToThread(broker.start, 120.0)
        assert broker.port == firstPort
        # At most one delay (0.5 s + up to 1 s of jitter) and one probe.
        waited = yield waitOnReactor(service.isReady, 1.5 + INTERVAL + MARGIN, "ready again")
        assert waited < 1.5 + INTERVAL + MARGIN
    finally:
        if service is not None:
            yield service.stopService()
        yield deferToThread(broker.stop)
    states = [state for _, state, _ in changes]
    assert states[0] == READY and states[-1] == READY
    assert states.count(DOWN) == 2
    assert service.status()["brokers"][broker.bootstrap]["connections"] >= 3
