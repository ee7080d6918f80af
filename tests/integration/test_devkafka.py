# -*- test-case-name: tests.integration.test_devkafka -*-
"""
Tests for :mod:`devkafka` against real brokers and its command line.
"""

import os
import socket
import subprocess
import sys
import uuid

from confluent_kafka import Producer

from devkafka import DevKafka, consume, freePort, probeMetadata

from .conftest import devkafkaHome


def _topic():
    return f"devkafka-{uuid.uuid4().hex[:12]}"


def _produce(bootstrap, topic, values, headers=None):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i, value in enumerate(values):
        producer.produce(topic, value, key=b"k%d" % i, headers=headers)
    assert producer.flush(30) == 0


def _cli(request, *args, env=None, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "devkafka", *args],
        cwd=request.config.rootpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _sharedJarsHome(request, tmp_path):
    """
    A fresh home whose jar folder is the shared cache's, so the command line
    runs on its own data without fetching again.
    """
    shared = DevKafka("4", home=devkafkaHome(request.config))
    shared.fetch()
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(shared.home / "jars", target_is_directory=True)
    return home


def test_metadata(kafka):
    """
    The session broker is running and answers a Metadata request listing
    itself on the bootstrap port.
    """
    assert kafka.isRunning()
    assert isinstance(kafka.pid, int)
    assert kafka.version.startswith("4.")
    host, port = kafka.bootstrap.split(":")
    info = probeMetadata(host, int(port))
    assert [(host, int(port))] == [(h, p) for _, h, p in info.brokers]
    assert info.clusterId
    assert info.controllerId == 1


def test_produceConsume(kafka):
    """
    Records produced with confluent-kafka are read back exactly: same values
    in order, keys and headers, and nothing more when reading to a timeout.
    """
    topic = _topic()
    values = [b"value-%d" % i for i in range(10)]
    _produce(kafka.bootstrap, topic, values, headers=[("source", b"test")])
    records = consume(kafka.bootstrap, topic, count=10, timeout=30)
    assert [r.value for r in records] == values
    assert [r.key for r in records] == [b"k%d" % i for i in range(10)]
    assert all(r.headers == [("source", b"test")] for r in records)
    assert [r.offset for r in records] == list(range(10))
    assert {(r.topic, r.partition) for r in records} == {(topic, 0)}
    assert [r.value for r in consume(kafka.bootstrap, topic, timeout=3)] == values


def test_consumeMissingTopic(kafka):
    """
    Reading a topic that does not exist returns nothing after the timeout,
    and does not create the topic.
    """
    topic = _topic()
    assert consume(kafka.bootstrap, topic, count=1, timeout=2) == []
    topics = Producer({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    assert topic not in topics


def test_kafka39(kafka39):
    """
    The 3.9 broker (the pykafka backend's) starts beside the 4.x one and
    round-trips records.
    """
    assert kafka39.version == "3.9.2"
    topic = _topic()
    _produce(kafka39.bootstrap, topic, [b"a", b"b"])
    assert [r.value for r in consume(kafka39.bootstrap, topic, count=2, timeout=30)] == [
        b"a",
        b"b",
    ]


def test_cliCycle(request, tmp_path):
    """
    ``start`` prints the bootstrap alone on the last line and is idempotent;
    ``status`` exits 0 while running and 3 once stopped; after a crash (kill)
    ``start`` brings the broker back on the same port with its data; ``consume``
    prints the records; ``stop --wipe`` deletes the data.
    """
    home = str(_sharedJarsHome(request, tmp_path))
    port = freePort()
    where = ["--home", home, "--name", "cli"]
    started = _cli(request, "start", *where, "--port", str(port))
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip().splitlines()[-1]
    assert bootstrap == f"127.0.0.1:{port}"
    try:
        again = _cli(request, "start", *where)
        assert (again.returncode, again.stdout.strip()) == (0, bootstrap), again.stderr
        status = _cli(request, "status", *where)
        assert status.returncode == 0
        assert status.stdout.startswith(f"running {bootstrap} ")

        topic = _topic()
        _produce(bootstrap, topic, [b"one", b"two"], headers=[("h", b"v")])
        DevKafka(home=home, name="cli").kill()
        assert _cli(request, "status", *where).returncode == 3
        restarted = _cli(request, "start", *where)
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.strip() == bootstrap

        read = _cli(
            request,
            "consume",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--count",
            "2",
            "--timeout",
            "30",
        )
        assert read.returncode == 0, read.stderr
        # Two keys: two partitions of an auto-created topic may be read in
        # either order (CI on b712cc0 read "two" first).
        assert sorted(read.stdout.splitlines()) == ["one\th=v", "two\th=v"]
    finally:
        stopped = _cli(request, "stop", *where, "--wipe")
    assert stopped.returncode == 0, stopped.stderr
    status = _cli(request, "status", *where)
    assert status.returncode == 3
    assert status.stdout.startswith("stopped")
    assert not (tmp_path / "home" / "run" / "cli").exists()


def test_missingJava(request, tmp_path):
    """
    Without java on PATH (nor JAVA_HOME), ``start`` fails with a message naming
    the missing tool and the Java version Kafka needs.
    """
    binDir = tmp_path / "bin"
    binDir.mkdir()
    (binDir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(binDir)
    result = _cli(request, "start", "--home", str(tmp_path), "--name", "nojava", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "java not found on PATH; Kafka 4 needs Java 17+" in result.stderr


def test_portTaken(request, tmp_path):
    """
    ``start`` on a port something else listens on fails at once, saying so,
    instead of waiting for a broker that cannot bind.
    """
    home = str(_sharedJarsHome(request, tmp_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _cli(request, "start", "--home", home, "--name", "taken", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert not DevKafka(home=home, name="taken").isRunning()
