# -*- test-case-name: tests.integration.test_backend_contract -*-
"""
The producer backend contract, end to end: the same behaviour tests run the
gateway (C{twistd -n gateway --kafka-backend X}) against a real broker for
every supported pair, confluent on Kafka 4.1.1 and 3.9.2, pykafka on 3.9.2;
and pykafka on Kafka 4 must refuse to start, at once and saying why.

The one difference the contract allows: pykafka writes the pre-0.11 message
format, so its records have no headers (the key names listener and peer).
"""

import json
import subprocess
import time
from base64 import b64decode
from collections import defaultdict

import pytest

from devkafka import consume
from tests.integration.support.process import CLEAN_EXIT, GatewayProcess
from tests.integration.support.topics import checkRecords, newTopic, topicSize
from tests.support.waiting import waitFor

#: (backend, broker fixture, whether records carry the gateway's headers)
SUPPORTED = [
    pytest.param(("confluent", "kafka", True), id="confluent-kafka4.1"),
    pytest.param(("confluent", "kafka39", True), id="confluent-kafka3.9"),
    pytest.param(("pykafka", "kafka39", False), id="pykafka-kafka3.9"),
]

#: The topic's max.message.bytes in the dead-letter test, and a record over it
#: (under the gateway's own 512 KiB limit and the clients' message.max.bytes).
TOPIC_LIMIT = 100_000
OVERSIZED = 150_000


class Setup:
    """
    One supported pair: C{start(*args)} runs a gateway against the broker.
    """

    def __init__(self, backend, broker, headers, directory):
        self.backend = backend
        self.broker = broker
        self.headers = headers
        self.directory = directory
        self.processes = []

    def start(self, *args, listeners=1):
        process = GatewayProcess(
            self.directory,
            [
                "--kafka-backend",
                self.backend,
                "--bootstrap-servers",
                self.broker.bootstrap,
                *args,
            ],
        )
        self.processes.append(process)
        return process.start(listeners)


@pytest.fixture(params=SUPPORTED)
def pair(request, tmp_path):
    backend, brokerFixture, headers = request.param
    setup = Setup(backend, request.getfixturevalue(brokerFixture), headers, tmp_path)
    yield setup
    for process in setup.processes:
        process.stop()


def send(connections, sent, count):
    """
    Each connection sends C{count} more lines, numbered per connection.
    """
    for number, sock in enumerate(connections):
        peer = "%s:%d" % sock.getsockname()[:2]
        lines = []
        for _ in range(count):
            sequence = len(sent[peer])
            value = b"%d:%d:%s" % (number, sequence, b"x" * (sequence % 50))
            sent[peer].append(value)
            lines.append(value + b"\n")
        sock.sendall(b"".join(lines))


def test_deliversEveryRecordOnceInOrder(pair):
    """
    Four connections send 250 numbered lines each, in interleaved bursts:
    Kafka holds exactly those 1000 records, once each, in order per
    connection, keyed by listener and peer; SIGTERM stops the gateway
    cleanly with exact counts.
    """
    topic = newTopic(pair.broker, prefix="contract")
    process = pair.start("--topic", topic, "--listen", "lines=tcp:0:interface=127.0.0.1")
    connections = [process.connect("lines") for _ in range(4)]
    sent = defaultdict(list)
    for _ in range(5):
        send(connections, sent, 50)
    for sock in connections:
        sock.close()
    records = consume(pair.broker.bootstrap, topic, count=1000, timeout=60)
    checkRecords(records, sent, headers=pair.headers)
    assert process.stop() in CLEAN_EXIT
    log = process.log()
    assert f"Kafka producer created ({pair.backend})" in log
    assert "Kafka producer stopped: 1000 records delivered, 0 not delivered" in log
    assert topicSize(pair.broker.bootstrap, topic) == 1000


def test_recordOverTheBrokerLimitIsDeadLettered(pair):
    """
    A record over the topic's C{max.message.bytes}, sent alone, is refused
    by the broker and written to the dead-letter file in the gateway's
    directory; the records sent before and after it by other connections
    all arrive, in order, and the stop counts it as dead-lettered.
    """
    topic = newTopic(
        pair.broker, prefix="contract", config={"max.message.bytes": str(TOPIC_LIMIT)}
    )
    process = pair.start("--topic", topic, "--listen", "lines=tcp:0:interface=127.0.0.1")
    connections = [process.connect("lines") for _ in range(2)]
    sent = defaultdict(list)
    send(connections, sent, 50)
    # Delivered before the big one goes, so that no batch holds both (Kafka
    # refuses a whole batch with a record over the limit, on either backend).
    waitFor(lambda: topicSize(pair.broker.bootstrap, topic) == 100, 30, "the first records")
    with process.connect("lines") as big:
        bigPeer = "%s:%d" % big.getsockname()[:2]
        big.sendall(b"B" * OVERSIZED + b"\n")
        deadLetters = pair.directory / "gateway-dead-letter.jsonl"
        waitFor(deadLetters.exists, 30, "the dead-letter file")
    send(connections, sent, 50)
    for sock in connections:
        sock.close()
    records = consume(pair.broker.bootstrap, topic, count=200, timeout=60)
    checkRecords(records, sent, headers=pair.headers)
    assert process.stop() in CLEAN_EXIT
    log = process.log()
    assert "Kafka producer stopped: 200 records delivered, 0 not delivered" in log
    assert "1 dead-lettered" in log
    [entry] = [json.loads(line) for line in deadLetters.read_text().splitlines()]
    assert b64decode(entry["value"]) == b"B" * OVERSIZED
    assert b64decode(entry["key"]) == f"lines/{bigPeer}".encode()
    assert "sizetoolarge" in entry["reason"].replace("_", "").lower()
    assert topicSize(pair.broker.bootstrap, topic) == 200


def test_recordOverTheClientLimitIsDeadLettered(pair):
    """
    With C{message.max.bytes} set to the topic's limit, the client itself
    refuses a larger record: it is dead-lettered even when sent amid other
    connections' records, and all of those arrive, in order.
    """
    topic = newTopic(
        pair.broker, prefix="contract", config={"max.message.bytes": str(TOPIC_LIMIT)}
    )
    process = pair.start(
        "--topic",
        topic,
        "--listen",
        "lines=tcp:0:interface=127.0.0.1",
        "--kafka-option",
        f"message.max.bytes={TOPIC_LIMIT}",
    )
    connections = [process.connect("lines") for _ in range(2)]
    sent = defaultdict(list)
    send(connections, sent, 100)
    with process.connect("lines") as big:
        big.sendall(b"B" * OVERSIZED + b"\n")
        send(connections, sent, 100)
    for sock in connections:
        sock.close()
    records = consume(pair.broker.bootstrap, topic, count=400, timeout=60)
    checkRecords(records, sent, headers=pair.headers)
    assert process.stop() in CLEAN_EXIT
    assert "Kafka producer stopped: 400 records delivered, 0 not delivered" in process.log()
    deadLetters = pair.directory / "gateway-dead-letter.jsonl"
    [entry] = [json.loads(line) for line in deadLetters.read_text().splitlines()]
    assert b64decode(entry["value"]) == b"B" * OVERSIZED
    assert "MSG_SIZE_TOO_LARGE" in entry["reason"]
    assert topicSize(pair.broker.bootstrap, topic) == 400


def test_pykafkaRefusesKafka4(kafka, tmp_path):
    """
    pykafka against Kafka 4 (which removed the message format pykafka
    writes) fails at start, within seconds, with a non-zero exit and a
    message naming the problem and the confluent backend, instead of
    accepting records it could never deliver.
    """
    process = GatewayProcess(
        tmp_path,
        [
            "--kafka-backend",
            "pykafka",
            "--bootstrap-servers",
            kafka.bootstrap,
            "--topic",
            "never",
            "--listen",
            "lines=tcp:0:interface=127.0.0.1",
        ],
    )
    started = time.monotonic()
    result = subprocess.run(
        process.command, cwd=tmp_path, env=process.env, capture_output=True, timeout=30
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 10, f"took {elapsed:.1f} s to refuse"
    output = result.stdout.decode() + result.stderr.decode() + process.log()
    assert "Kafka 4 removed" in output
    assert "--kafka-backend confluent" in output
    assert "listening on" not in output
