# -*- test-case-name: tests.integration.test_kafka_security -*-
"""
The gateway against a secured Apache Kafka (devkafka's secured listeners:
SASL_PLAINTEXT, SSL with a client certificate, SASL_SSL; SCRAM users made
at format time, certificates at start): records produced through each
listener are read back, C{/readyz} is true, a wrong password is one error
line and a 503, and a known password shows nowhere: not in the output, the
HTTP pages, C{--help}, nor a worker's command line.
"""

import json
import random
import subprocess
import uuid

import pytest

from devkafka import DevKafka, consume
from tests.integration.conftest import devkafkaHome
from tests.integration.support.http import get, readiness
from tests.integration.support.process import TWISTD, GatewayProcess
from tests.integration.test_workers_kafka import pickPorts, processesMentioning, sendLine
from tests.support.waiting import DEADLINE, waitFor

#: The password of the user the leak test runs as: searched for everywhere.
LEAK = "Leak-Canary-7f3e9a"
USERS = {"gateway": "gateway-secret", "canary": LEAK}


@pytest.fixture(scope="module")
def secured(request, tmp_path_factory):
    """
    A Kafka 4 broker of this module's own with the secured listeners.
    """
    broker = DevKafka(
        "4",
        home=devkafkaHome(request.config),
        name="secured",
        runRoot=tmp_path_factory.mktemp("secured"),
        secured=True,
        users=USERS,
    )
    try:
        broker.start(timeout=180.0)
        yield broker
    finally:
        broker.stop()


def options(broker, listener, mechanism=None, user="gateway", password=None):
    """
    The C{--bootstrap-servers} and C{--kafka-option}s reaching C{listener}.
    """
    certs = broker.certificates
    given = {"security.protocol": listener}
    if listener.startswith("SASL_"):
        given.update(
            {
                "sasl.mechanism": mechanism,
                "sasl.username": user,
                "sasl.password": USERS[user] if password is None else password,
            }
        )
    if listener.endswith("SSL"):
        given["ssl.ca.location"] = str(certs.ca)
    if listener == "SSL":
        given.update(
            {
                "ssl.certificate.location": str(certs.client),
                "ssl.key.location": str(certs.clientKeyEncrypted),
                "ssl.key.password": certs.clientKeyPassword,
            }
        )
    arguments = ["--bootstrap-servers", broker.bootstrapFor(listener)]
    for key, value in given.items():
        arguments += ["--kafka-option", f"{key}={value}"]
    return arguments


def readyzCode(port):
    """
    The status code of C{/readyz} on C{port}, or L{None} while nothing
    answers there.
    """
    try:
        return get(port, "/readyz")[0]
    except OSError:
        return None


def startGateway(directory, topic, arguments):
    """
    A gateway with one C{lines} listener and a 1 s health interval, started.
    """
    gateway = GatewayProcess(
        directory,
        [
            "--topic",
            topic,
            "--listen",
            "lines=tcp:0:interface=127.0.0.1",
            "--health-interval",
            "1",
            *arguments,
        ],
    )
    gateway.start(1)
    gateway.waitForHttpPort()
    return gateway


@pytest.mark.parametrize(
    "listener, mechanism",
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SSL", None),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ],
)
def test_produceThroughEach(secured, tmp_path, listener, mechanism):
    """
    Through each secured listener the gateway's records reach Kafka (read
    back over plain text), and C{/readyz} is true: the health probe
    authenticated as the producer did.
    """
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    gateway = startGateway(tmp_path, topic, options(secured, listener, mechanism))
    try:
        waitFor(
            lambda: readiness(gateway)[0] == 200,
            DEADLINE,
            lambda: f"/readyz 200: {readiness(gateway)}\n{gateway.log()[-4000:]}",
        )
        sent = [f"{listener} {mechanism} line {n}".encode() for n in range(20)]
        with gateway.connect("lines") as sock:
            sock.sendall(b"".join(line + b"\n" for line in sent))
        found = consume(secured.bootstrap, topic, count=len(sent), timeout=DEADLINE)
        assert sorted(r.value for r in found) == sorted(sent)
    finally:
        gateway.stop()
    assert "authentication" not in gateway.log().lower()


def test_wrongPassword(secured, tmp_path):
    """
    A wrong SCRAM password over SASL_SSL: C{/readyz} answers 503 naming the
    refusal, and the log has one error line for it however often the probe
    retries.
    """
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    wrong = "wrong-password-x9"
    arguments = options(secured, "SASL_SSL", "SCRAM-SHA-256", password=wrong)
    gateway = startGateway(tmp_path, topic, arguments)
    try:
        code, body = waitFor(
            lambda: (lambda r: r if "authentication" in r[1]["reason"] else None)(
                readiness(gateway)
            ),
            DEADLINE,
            lambda: f"/readyz naming the refusal: {readiness(gateway)}",
        )
        assert code == 503
        assert body["state"] == "down"
        # Several health intervals (1 s) and reconnections later...
        waitFor(lambda: gateway.log().count("Scheduling retry 4 ") > 0, DEADLINE, "retries")
        assert readiness(gateway)[0] == 503
    finally:
        gateway.stop()
    log = gateway.log()
    refusals = [line for line in log.splitlines() if "Kafka health: " in line]
    assert len(refusals) == 1, refusals
    assert "SASL SCRAM-SHA-256 authentication as 'gateway' failed" in refusals[0]
    assert "#error]" in refusals[0]
    assert wrong not in log


@pytest.mark.parametrize("given", ["inline", "file"])
def test_secretsStaySecret(secured, tmp_path, given):
    """
    Two workers with a known password (given on the command line, or in a
    file): records go through, and the password is in no output, no HTTP
    page, no C{--help}, and no worker's command line (C{/proc/PID/cmdline},
    what C{ps} shows); given in a file, it is in no command line at all.
    """
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    port, http = pickPorts(random.Random())
    arguments = options(secured, "SASL_PLAINTEXT", "SCRAM-SHA-256", user="canary")
    if given == "file":
        secret = tmp_path / "password"
        secret.write_text(LEAK + "\n")
        index = arguments.index(f"sasl.password={LEAK}")
        arguments[index - 1 : index + 1] = ["--kafka-option-file", f"sasl.password={secret}"]
    gateway = GatewayProcess(
        tmp_path,
        [
            "--topic",
            topic,
            "--workers",
            "2",
            "--listen",
            f"lines=reuseport:{port}:interface=127.0.0.1",
            "--http",
            f"tcp:{http}:interface=127.0.0.1",
            "--health-interval",
            "1",
            *arguments,
        ],
    )
    gateway.start(1)
    pages = []
    try:
        for httpPort in (http, http + 1):
            waitFor(
                lambda p=httpPort: readyzCode(p) == 200,
                DEADLINE,
                lambda: f"both workers ready\n{gateway.log()[-4000:]}",
            )
            for path in ("/status.json", "/readyz", "/metrics", "/healthz", "/"):
                pages.append(get(httpPort, path)[2])
        for n in range(20):
            sendLine(port, f"line {n}".encode())
        found = consume(secured.bootstrap, topic, count=20, timeout=DEADLINE)
        assert len(found) == 20
        workers = [pid for pid in processesMentioning(topic) if pid != gateway.process.pid]
        assert workers, "no worker process found"
        commandLines = {}
        for pid in processesMentioning(topic):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                commandLines[pid] = f.read().replace(b"\0", b" ")
        ps = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True).stdout
    finally:
        gateway.stop()
    output = gateway.process.stdout.read()
    help = subprocess.run([TWISTD, "gateway", "--help"], capture_output=True, cwd=tmp_path).stdout
    secret = LEAK.encode()
    for pid in workers:
        assert b"--kafka-option" in commandLines[pid]
        assert secret not in commandLines[pid], f"worker {pid}: {commandLines[pid]!r}"
    assert secret not in gateway.log().encode()
    assert secret not in output
    assert secret not in help
    assert all(secret not in page for page in pages)
    assert json.loads(pages[0])["worker"]["count"] == 2
    parentLine = b" ".join(line for line in ps.splitlines() if topic.encode() in line)
    if given == "file":
        assert secret not in ps
    else:
        # Only the parent's own command line, as the user typed it.
        assert parentLine.count(secret) == 1
        assert "a secret on the command line is visible" in gateway.log()
