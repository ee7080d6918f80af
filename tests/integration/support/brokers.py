# -*- test-case-name: tests.integration.test_faults -*-
"""
Brokers of a test's own (never the shared session one), to kill, freeze and
restart at will.
"""

import contextlib
import os
import signal
from pathlib import Path

from devkafka import DevKafka, ProbeError, probeMetadata
from tests.integration.conftest import devkafkaHome
from tests.support.waiting import waitFor

__all__ = ["AuthorizingKafka", "brokerUp", "frozen", "ownBroker", "thaw"]


class AuthorizingKafka(DevKafka):
    """
    A development broker that checks ACLs (KRaft's C{StandardAuthorizer}),
    allowing everything no ACL names: a test denies what it needs denied,
    without the SASL set-up real users need.
    """

    AUTHORIZER = (
        "\n# ACLs checked; what no ACL names is allowed (tests deny what they need).\n"
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
        "allow.everyone.if.no.acl.found=true\n"
    )

    def _writeConfig(self, controllerPort):
        DevKafka._writeConfig(self, controllerPort)
        with open(self.runDir / "server.properties", "a") as f:
            f.write(self.AUTHORIZER)


@contextlib.contextmanager
def ownBroker(request, directory, version="4", name="faults", kind=DevKafka):
    """
    A broker of the test's own (never the shared session one), started, and
    whatever happens thawed and stopped at the end.

    :param directory: its run folder goes under it.
    :param kind: L{DevKafka} or a subclass (L{AuthorizingKafka}).
    """
    broker = kind(
        version,
        home=devkafkaHome(request.config),
        name=name,
        runRoot=Path(directory) / "kafka",
    )
    try:
        broker.start(timeout=120.0)
        yield broker
    finally:
        thaw(broker)
        broker.stop(timeout=20.0)


def thaw(broker):
    """
    SIGCONT the broker if it runs (a stopped process cannot even die of
    SIGTERM).
    """
    pid = broker.pid
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def frozen(broker):
    """
    SIGSTOP the broker for the duration of the block; SIGCONT whatever
    happens.
    """
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        thaw(broker)


def brokerUp(broker, timeout=60.0):
    """
    Wait until the broker answers a Metadata request (after a restart or a
    thaw).
    """

    def answers():
        try:
            probeMetadata("127.0.0.1", broker.port, timeout=2.0)
        except (OSError, ProbeError):
            return False
        return True

    waitFor(answers, timeout, f"{broker} to answer")
