# -*- test-case-name: tests.integration.test_routing_kafka -*-
"""
Routing against a real broker: topics per listener and per connection, the
key strategies, the example routing plugin, and a missing topic, through
the command line and a C{.tac} file, all through one producer; the session
of ack mode (C{key=session}, C{{session}}) with the reference client, and
a TLS client certificate's CN (C{{client_cert_cn}}).
"""

import json
import subprocess
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devkafka import consume
from gateway.settings import checkSettings, missingListenerTopics
from tests.integration.support import ackclient
from tests.integration.support.http import status
from tests.integration.support.process import CLEAN_EXIT, GatewayProcess, Gateways
from tests.integration.support.procfs import socketsTo
from tests.integration.support.sockets import connectFrom
from tests.integration.support.topics import newTopic, records
from tests.support.waiting import waitFor

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "tcp:0:interface=127.0.0.1"


@pytest.fixture
def gateway(kafka, tmp_path):
    """
    A function that starts a gateway with the given arguments against the
    test broker; every gateway started is stopped at the end.
    """
    gateways = Gateways(tmp_path, kafka.bootstrap)
    yield gateways.start
    gateways.stopAll()


def test_twoListenersTwoTopicsOneProducer(kafka, gateway):
    """
    Two listeners naming their own topics (and no C{--topic}) write to two
    topics through one producer, with at most 3 connections to the broker;
    C{/status.json} counts each topic's messages and bytes.
    """
    first, second = newTopic(kafka), newTopic(kafka)
    process = gateway(
        "--listen",
        f"lines(topic={first})={LOOPBACK}",
        "--listen",
        f"lines(topic={second})={LOOPBACK}",
        listeners=2,
    )
    brokerPort = int(kafka.bootstrap.rsplit(":", 1)[1])
    with process.connect("lines") as a, process.connect("lines-2") as b:
        for n in range(50):
            a.sendall(b"a%d\n" % n)
            b.sendall(b"bb%d\n" % n)
        found = {topic: records(kafka, topic, 50) for topic in (first, second)}
        peak = socketsTo(process.process.pid, brokerPort)
    assert [r.value for r in found[first]] == [b"a%d" % n for n in range(50)]
    assert [r.value for r in found[second]] == [b"bb%d" % n for n in range(50)]
    assert {dict(r.headers)["gateway-listener"] for r in found[second]} == {b"lines-2"}
    assert 1 <= peak <= 3
    assert process.log().count("Kafka producer created") == 1
    topics = status(process)["topics"]
    assert topics[first] == {"messages": 50, "bytes": sum(len(b"a%d" % n) for n in range(50)),
                             "deadLettered": 0}  # fmt: skip
    assert topics[second]["messages"] == 50


def test_peerHostTemplate(kafka, gateway):
    """
    C{topic=PREFIX.{peer_host}}: clients from 127.0.0.2 and 127.0.0.3 land
    in two topics (made beforehand: creating topics is the cluster's
    business), each holding exactly its own client's records.
    """
    prefix = f"gwt-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    made = admin.create_topics([NewTopic(f"{prefix}.127.0.0.{n}", 1, 1) for n in (2, 3)])
    for future in made.values():
        future.result(30)
    process = gateway("--listen", f"lines(topic={prefix}.{{peer_host}})={LOOPBACK}")
    port = process.ports["lines"]
    for source in ("127.0.0.2", "127.0.0.3"):
        with connectFrom(port, source) as sock:
            sock.sendall(b"".join(b"%s %d\n" % (source.encode(), n) for n in range(20)))
    for source in ("127.0.0.2", "127.0.0.3"):
        found = records(kafka, f"{prefix}.{source}", 20, timeout=60)
        assert [r.value for r in found] == [b"%s %d" % (source.encode(), n) for n in range(20)]


def _tacGateway(kafka, tmp_path, topics):
    env = {
        "GATEWAY_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "GATEWAY_TELEMETRY_TOPIC": topics["peer-host"],
        "GATEWAY_LOGS_TOPIC": topics["none"],
        "GATEWAY_HTTP": LOOPBACK,
    }
    for name in ("TELEMETRY", "LOGS", "JSON"):
        env[f"GATEWAY_{name}_ENDPOINT"] = LOOPBACK
    tmp_path.mkdir(exist_ok=True)
    process = GatewayProcess(tmp_path, [], tac=ROOT / "docs" / "examples" / "routing.tac", env=env)
    process.start(listeners=3)
    process.waitForHttpPort()
    return process


def test_keyStrategies(kafka, gateway, tmp_path):
    """
    On 4-partition topics: C{key=connection} (command line) keys each
    connection's records C{LISTENER/PEER}, all on one partition, in order;
    C{key=peer-host} (C{.tac}) keys them by host, so two connections of one
    host share a partition; C{key=none} (C{.tac}) sends them without a key.
    """
    topics = {key: newTopic(kafka, partitions=4) for key in ("connection", "peer-host", "none")}
    cli = gateway("--listen", f"lines(topic={topics['connection']},key=connection)={LOOPBACK}")
    tac = _tacGateway(kafka, tmp_path / "tac", topics)
    try:
        sent = defaultdict(list)
        for listener, process, key in (
            ("lines", cli, "connection"),
            ("telemetry", tac, "peer-host"),
            ("logs", tac, "none"),
        ):
            for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"):
                with connectFrom(process.ports[listener], source) as sock:
                    peer = "%s:%d" % sock.getsockname()
                    lines = [f"{key} {peer} {n}".encode() for n in range(25)]
                    sock.sendall(b"".join(line + b"\n" for line in lines))
                    sent[key].append((peer, lines))
        found = {key: records(kafka, topic, 100, timeout=60) for key, topic in topics.items()}
    finally:
        assert tac.stop() in CLEAN_EXIT

    for peer, lines in sent["connection"]:
        mine = [r for r in found["connection"] if r.key == f"lines/{peer}".encode()]
        assert [r.value for r in mine] == lines
        assert len({r.partition for r in mine}) == 1
    byHost = defaultdict(set)
    for record in found["peer-host"]:
        byHost[record.key].add(record.partition)
    assert set(byHost) == {b"127.0.0.2", b"127.0.0.3", b"127.0.0.4"}
    assert all(len(partitions) == 1 for partitions in byHost.values())
    for peer, lines in sent["peer-host"]:
        mine = [
            r.value for r in found["peer-host"] if dict(r.headers)["gateway-peer"] == peer.encode()
        ]
        assert mine == lines
    assert {r.key for r in found["none"]} == {None}
    assert sorted(r.value for r in found["none"]) == sorted(v for _, l in sent["none"] for v in l)


def test_jsonTypePluginSplitsExactly(kafka, tmp_path):
    """
    The example plugin (C{routing=json-type}, in the C{.tac}) splits a
    mixed stream exactly: metrics to C{metrics}, everything else to
    C{events}, each in the order sent.
    """
    marker = uuid.uuid4().hex
    topics = {"peer-host": newTopic(kafka), "none": newTopic(kafka)}
    process = _tacGateway(kafka, tmp_path, topics)
    expected = {"metrics": [], "events": []}
    try:
        with process.connect("json") as sock:
            for n in range(60):
                kind = ("metric", "event", None)[n % 3]
                document = {"run": marker, "n": n}
                if kind:
                    document["type"] = kind
                line = json.dumps(document).encode()
                if n % 7 == 0:
                    line = b"not json " + marker.encode() + b" %d" % n
                    kind = None
                expected["metrics" if kind == "metric" else "events"].append(line)
                sock.sendall(line + b"\n")

        def mine(topic, count):
            found = consume(kafka.bootstrap, topic, timeout=5)
            values = [r.value for r in found if marker.encode() in r.value]
            return values if len(values) >= count else None

        for topic, values in expected.items():
            found = waitFor(lambda: mine(topic, len(values)), 90, f"{len(values)} in {topic}")  # noqa: B023
            assert found == values
        figures = status(process)["topics"]
        assert figures["metrics"]["messages"] == len(expected["metrics"])
        assert figures["events"]["messages"] == len(expected["events"])
    finally:
        assert process.stop() in CLEAN_EXIT


def test_missingTopicDeadLettered(kafka, gateway, tmp_path):
    """
    With topic auto-creation off, records for a topic that does not exist
    go to the dead-letter file with their reason and are counted for that
    topic, while another listener's topic keeps receiving.
    """
    missing = f"gw-missing-{uuid.uuid4().hex[:8]}"
    present = newTopic(kafka)
    process = gateway(
        "--kafka-option",
        "allow.auto.create.topics=false",
        "--listen",
        f"lines(topic={missing})={LOOPBACK}",
        "--listen",
        f"lines(topic={present})={LOOPBACK}",
        listeners=2,
    )
    deadLetters = Path(process.directory) / "gateway-dead-letter.jsonl"
    with process.connect("lines") as lost, process.connect("lines-2") as kept:
        for n in range(10):
            lost.sendall(b"lost %d\n" % n)
            kept.sendall(b"kept %d\n" % n)
        found = records(kafka, present, 10, timeout=60)
        assert [r.value for r in found] == [b"kept %d" % n for n in range(10)]

        def deadLettered():
            return status(process)["topics"].get(missing, {}).get("deadLettered", 0) == 10

        waitFor(deadLettered, 120, lambda: f"{status(process)}\n{process.log()}")
        # Still flowing after the refusals.
        kept.sendall(b"after\n")
        assert records(kafka, present, 11, timeout=60)[-1].value == b"after"
    lines = deadLetters.read_text().splitlines()
    assert len(lines) == 10
    assert all(missing in line and "UNKNOWN_TOPIC" in line for line in lines)


def test_startCheckFindsMissingTopics(kafka):
    """
    L{missingListenerTopics} (for C{--check}) names the listeners whose
    fixed topic the cluster lacks when topics are not created; listeners
    whose topic depends on the connection are not asked about.
    """
    present = newTopic(kafka)
    missing = f"gw-missing-{uuid.uuid4().hex[:8]}"
    settings = checkSettings(
        [
            {"framing": "lines", "endpoint": "tcp:0", "name": "a", "options": {"topic": present}},
            {"framing": "lines", "endpoint": "tcp:0", "name": "b", "options": {"topic": missing}},
            {"framing": "lines", "endpoint": "tcp:0", "options": {"topic": "x.{peer_host}"}},
        ],
        topic=None,
        bootstrapServers=kafka.bootstrap,
        kafkaOptions={"allow.auto.create.topics": "false"},
    )
    assert missingListenerTopics(settings, timeout=30) == [("b", missing)]


def _makeTopics(kafka, names, partitions):
    """
    Create topics of known names (templates resolve to them) beforehand.
    """
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    made = admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    for future in made.values():
        future.result(30)


def _ackClient(port, count, session):
    """
    Run the reference client (L{tests.integration.support.ackclient}) to
    the end: C{count} lines in one session, every one acknowledged.
    """
    done = subprocess.run(
        ackclient.command(port, count, session),
        cwd=ackclient.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"done {count} 0" in done.stdout, done.stdout + done.stderr


def test_sessionKeyAndTopic(kafka, gateway):
    """
    On ack listeners: C{topic=PREFIX.{session}} sends each session's
    records to its own topic, resolved at the handshake; C{key=session} on a
    4-partition topic keys every record by its session, so each session's
    records are on one partition, in sequence order.  A connection to the
    C{{session}} listener that sends no handshake is closed, nothing
    published.
    """
    prefix = f"gws-{uuid.uuid4().hex[:8]}"
    sessions = ("alpha", "beta")
    _makeTopics(kafka, [f"{prefix}.{s}" for s in sessions], 4)
    keyed = newTopic(kafka, partitions=4)
    process = gateway(
        "--listen",
        f"lines(ack=on,topic={prefix}.{{session}})={LOOPBACK}",
        "--listen",
        f"lines(ack=on,topic={keyed},key=session)={LOOPBACK}",
        listeners=2,
    )
    with process.connect("lines") as anonymous:
        anonymous.sendall(b"no handshake\n")
        anonymous.settimeout(60)
        assert anonymous.recv(100) == b""
    for session in sessions:
        _ackClient(process.ports["lines"], 30, session)
        _ackClient(process.ports["lines-2"], 30, session)
    expected = [b"%07d" % n for n in range(1, 31)]
    for session in sessions:
        found = records(kafka, f"{prefix}.{session}", 30, timeout=60)
        assert [r.value for r in found] == expected
        assert {r.key for r in found} == {session.encode()}
        assert [dict(r.headers)["gateway-seq"] for r in found] == [b"%d" % n for n in range(1, 31)]
    found = records(kafka, keyed, 60, timeout=60)
    for session in sessions:
        mine = [r for r in found if dict(r.headers)["gateway-session"] == session.encode()]
        assert [r.value for r in mine] == expected
        assert {r.key for r in mine} == {session.encode()}
        assert len({r.partition for r in mine}) == 1
    assert "no-session" in process.log()


def test_clientCertTopic(kafka, gateway, tmp_path):
    """
    C{topic=PREFIX.{client_cert_cn}} on a mutual-TLS listener: a client
    presenting a certificate for C{client.example} lands in
    C{PREFIX.client.example}, with its subject in C{gateway-client-cert}.
    """
    from cryptography import x509

    from tests.integration.test_tls_kafka import Files, connect

    files = Files(tmp_path)
    prefix = f"gwc-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.client.example"
    _makeTopics(kafka, [topic], 1)
    options = f"tls-cert={files.cert},tls-key={files.key},tls-client-ca={files.caFile}"
    process = gateway("--listen", f"lines({options},topic={prefix}.{{client_cert_cn}})={LOOPBACK}")
    with connect(process.ports["lines"], files.context()) as sock:
        sock.sendall(b"".join(b"cert %d\n" % n for n in range(20)))
        found = records(kafka, topic, 20, timeout=60)
    assert [r.value for r in found] == [b"cert %d" % n for n in range(20)]
    subject = x509.load_pem_x509_certificate(files.client.cert_chain_pems[0].bytes()).subject
    assert {dict(r.headers)["gateway-client-cert"] for r in found} == {
        subject.rfc4514_string().encode()
    }
