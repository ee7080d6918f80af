# -*- test-case-name: tests.integration.test_check_kafka -*-
"""
C{twistd gateway --check --check-kafka} and C{gateway-check --check-kafka}
against the session's real broker: a topic that exists passes, one that
does not fails (and is not created by asking), a broker that does not answer
fails; nothing starts listening either way.
"""

import subprocess
from pathlib import Path

from confluent_kafka.admin import AdminClient

from devkafka import freePort
from tests.integration.support.process import TWISTD
from tests.integration.support.topics import newTopic

GATEWAY_CHECK = str(Path(TWISTD).with_name("gateway-check"))


def check(directory, bootstrap, topic, *extra):
    """
    Run C{twistd -n gateway --check --check-kafka} in C{directory}.

    :return: the L{subprocess.CompletedProcess}, output as text.
    """
    return subprocess.run(
        [
            TWISTD,
            "-n",
            "--pidfile=",
            "gateway",
            "--check",
            "--check-kafka",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--listen",
            "lines=tcp:0:interface=127.0.0.1",
            *extra,
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_topicPresent(kafka, tmp_path):
    """
    An existing topic: the broker answers, the topic's partitions are
    counted, this client may write (no authorizer); exit status 0.
    """
    topic = newTopic(kafka, partitions=3)
    result = check(tmp_path, kafka.bootstrap, topic)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"ok    kafka topic '{topic}': exists, 3 partition(s)" in lines, lines
    assert f"ok    kafka topic '{topic}': this client may write" in lines, lines
    assert lines[-1] == "check passed"
    assert result.stderr == ""


def test_topicAbsent(kafka, tmp_path):
    """
    A topic that does not exist: the check fails naming Kafka's reason,
    exit status 1, and the topic still does not exist afterwards.
    """
    topic = "gw-absent-" + tmp_path.name[-8:]
    result = check(tmp_path, kafka.bootstrap, topic)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"FAIL  kafka topic '{topic}': ") and "UNKNOWN_TOPIC_OR_PART" in line
        for line in lines
    ), lines
    assert lines[-1] == "check failed: 1 problem"
    topics = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics
    assert topic not in topics


def test_brokerAbsent(tmp_path):
    """
    No broker at the bootstrap address: one failure, exit status 1.
    """
    result = check(tmp_path, f"127.0.0.1:{freePort()}", "events")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL  kafka 127.0.0.1:") for line in lines), lines


def test_tacFile(kafka, tmp_path):
    """
    C{gateway-check --check-kafka FILE.tac} checks the gateway the file
    builds, against the broker.
    """
    topic = newTopic(kafka, partitions=1)
    tac = tmp_path / "gateway.tac"
    tac.write_text(
        "from twisted.application import service\n"
        "from gateway.service import GatewayService\n"
        "application = service.Application('gateway')\n"
        f"gateway = GatewayService(topic={topic!r}, bootstrapServers={kafka.bootstrap!r})\n"
        "gateway.addListener('lines', 'tcp:0:interface=127.0.0.1')\n"
        "gateway.setServiceParent(application)\n"
    )
    result = subprocess.run(
        [GATEWAY_CHECK, "--check-kafka", str(tac)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"ok    kafka topic '{topic}': exists, 1 partition(s)" in lines, lines
    assert lines[-1] == "check passed"
