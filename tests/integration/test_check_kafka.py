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


def run(directory, command):
    """
    Run C{command} in C{directory} until it exits.

    :return: the L{subprocess.CompletedProcess}, output as text.
    """
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=180)


def check(directory, bootstrap, topic, *extra):
    """
    Run C{twistd -n gateway --check --check-kafka} in C{directory}.

    :return: the L{subprocess.CompletedProcess}, output as text.
    """
    return run(
        directory,
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
    result = run(tmp_path, [GATEWAY_CHECK, "--check-kafka", str(tac)])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"ok    kafka topic '{topic}': exists, 1 partition(s)" in lines, lines
    assert lines[-1] == "check passed"


def test_everyListenerTopic(kafka, tmp_path):
    """
    Each listener's fixed topic is checked, not only C{--topic}: a
    listener writing to a missing topic fails the check while the others'
    topics pass, and a templated topic is named as not checked.
    """
    present = newTopic(kafka, partitions=2)
    absent = "gw-absent-" + tmp_path.name[-8:]
    result = check(
        tmp_path,
        kafka.bootstrap,
        present,
        "--listen",
        f"lines(topic={absent})=tcp:0:interface=127.0.0.1",
        "--listen",
        "lines(topic=d.{peer_host})=tcp:0:interface=127.0.0.1",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"ok    kafka topic '{present}': this client may write" in lines, lines
    assert any(
        line.startswith(f"FAIL  kafka topic '{absent}': ") and "UNKNOWN_TOPIC_OR_PART" in line
        for line in lines
    ), lines
    assert any("topic chosen per connection, not checked" in line for line in lines), lines
    assert lines[-1] == "check failed: 1 problem"


def test_pathsReported(tmp_path):
    """
    C{--check} (without Kafka) reports each unwritable path as a line:
    the spool, a C{unix:} listener's socket and twistd's log file, all in
    a missing directory; exit status 1, and no log file appears.
    """
    missing = tmp_path / "gone"
    result = run(
        tmp_path,
        [
            TWISTD,
            "-n",
            "--pidfile=",
            f"--logfile={missing}/twistd.log",
            "gateway",
            "--check",
            "--topic",
            "events",
            "--spool",
            f"{missing}/s.jsonl",
            "--listen",
            f"lines=unix:{missing}/g.sock",
        ],
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    problem = f"directory {missing} does not exist"
    assert f"FAIL  --spool {missing}/s.jsonl: {problem}" in lines, lines
    assert f"FAIL  --listen lines=unix:{missing}/g.sock: {problem}" in lines, lines
    assert f"FAIL  --logfile {missing}/twistd.log: {problem}" in lines, lines
    assert lines[-1] == "check failed: 3 problems"
    assert not missing.exists()
