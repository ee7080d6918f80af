# -*- test-case-name: tests.integration.test_http_kafka -*-
"""
The HTTP endpoints of a real gateway: C{twistd -n gateway --http ...} as a
subprocess against real Apache Kafka brokers, read with plain blocking HTTP.

C{/readyz} must follow a broker of the test's own as it stops and starts
again; C{/metrics} must hold exactly the traffic the test generated.
"""

import json
import struct
import time

from tests.integration.support.brokers import ownBroker
from tests.integration.support.http import get, readiness, scrape
from tests.integration.support.process import GatewayProcess, healthChanges
from tests.integration.support.procfs import socketsTo
from tests.integration.support.topics import newTopic, waitForSize
from tests.support.waiting import waitFor

#: The gateway's health interval in these tests (C{--health-interval}).
INTERVAL = 1.0
#: The health service's longest reconnect delay with that interval: its
#: policy's maximum (the interval, at least 1 s) plus up to 1 s of jitter.
RECONNECT = max(INTERVAL, 1.0) + 1.0
#: Slack for the reactor, the broker and a busy machine.
MARGIN = 3.0


def startGateway(directory, bootstrap, topic, *listen, listeners=1):
    """
    Start a gateway with its HTTP endpoints on a free loopback port.

    :return: the L{GatewayProcess}, with C{httpPort} set.
    """
    args = [
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--health-interval",
        str(INTERVAL),
        "--http",
        "tcp:0:interface=127.0.0.1",
        "--spool",
        "none",
        "--dead-letter",
        "none",
    ]
    for spec in listen:
        args += ["--listen", spec]
    process = GatewayProcess(directory, args).start(listeners)
    try:
        process.waitForHttpPort(10.0)
    except AssertionError:
        process.stop()
        raise
    return process


def waitForReadyz(process, expected, timeout):
    """
    Poll C{/readyz} until it answers C{expected}.

    :return: the seconds waited and the last body.
    """
    started = time.monotonic()
    seen = []

    def answered():
        seen[:] = [readiness(process)]
        return seen[0][0] == expected

    waitFor(answered, timeout, lambda: f"/readyz {expected} (last: {seen})", interval=0.05)
    return time.monotonic() - started, seen[0][1]


def test_readyzFollowsTheBroker(request, tmp_path):
    """
    With a broker of the test's own and C{--health-interval 1}: C{/readyz}
    is 200 once the gateway probes it; after the broker is stopped, 503
    C{down} within an interval plus the margin (3 s), while C{/healthz}
    stays 200; after it starts again on the same port, 200 within the
    probe's longest reconnect delay (2 s) plus an interval plus the margin.
    """
    with ownBroker(request, tmp_path, name="http-readyz") as broker:
        topic = newTopic(broker)
        process = startGateway(
            tmp_path, broker.bootstrap, topic, "lines=tcp:0:interface=127.0.0.1"
        )
        try:
            _, body = waitForReadyz(process, 200, 30.0)
            assert body["state"] == "ready"
            firstPort = broker.port

            broker.stop(timeout=20.0)
            waited, body = waitForReadyz(process, 503, INTERVAL + MARGIN)
            print(f"/readyz 503 {waited:.2f} s after the broker stopped")
            assert waited < INTERVAL + MARGIN
            assert body["state"] == "down"
            assert broker.bootstrap in body["reason"]
            assert get(process.httpPort, "/healthz")[::2] == (200, b"ok\n")
            metrics = scrape(process)
            assert metrics["gateway_ready", ()] == 0
            assert metrics["gateway_kafka_health_state", (("state", "down"),)] == 1

            broker.start(timeout=120.0)
            assert broker.port == firstPort
            bound = RECONNECT + INTERVAL + MARGIN
            waited, body = waitForReadyz(process, 200, bound)
            print(f"/readyz 200 {waited:.2f} s after the broker started again")
            assert waited < bound
            assert body["state"] == "ready"
            assert scrape(process)["gateway_ready", ()] == 1

            # The probe reconnects before the producer's own client, which
            # has its own backoff and reports its brokers every 250 ms:
            # until then a request of its own waiting with no broker up
            # makes the state degraded, before or after the probe's ready
            # (a stop in that window once ended the log in degraded). The
            # state the gateway stops in is the settled one.
            def settled():
                _, _, raw = get(process.httpPort, "/status.json")
                changes = healthChanges(process.log())
                return json.loads(raw)["producer"]["brokersUp"] and changes[-1][1] == "ready"

            waitFor(settled, 60.0, "the producer's broker up again, and health ready")
        finally:
            process.stop()
    # Down when the broker stopped, ready again after: the way back may pass
    # through degraded while the producer's client reconnects (see above),
    # never through anything else, and ends ready.
    changes = healthChanges(process.log())
    states = [new for _, new in changes]
    assert "down" in states, changes
    back = states[states.index("down") + 1 :]
    assert back and back[-1] == "ready" and set(back) <= {"ready", "degraded", "down"}, changes


def test_metricsCountTheTraffic(kafka, tmp_path):
    """
    Four clients send known messages on two listeners and one bad client
    sends a length prefix over the limit: once Kafka holds every message,
    C{/metrics} (read with C{prometheus_client}'s parser) says exactly how
    many messages were received, produced and delivered, how many bytes
    and connections each listener had, and one C{too-large} frame error;
    C{/status.json} agrees; the Kafka connection count is the operating
    system's.
    """
    topic = newTopic(kafka)
    process = startGateway(
        tmp_path,
        kafka.bootstrap,
        topic,
        "lines=tcp:0:interface=127.0.0.1",
        "length-prefixed=tcp:0:interface=127.0.0.1",
        listeners=2,
    )
    try:
        waitForReadyz(process, 200, 30.0)
        sent = {"lines": [0, 0, 0], "length-prefixed": [0, 0, 0]}  # messages, bytes, clients
        for client in range(2):
            sock = process.connect("lines")
            data = b"".join(b"line %d %d\n" % (client, n) for n in range(250 + client))
            sock.sendall(data)
            sock.close()
            sent["lines"][0] += 250 + client
            sent["lines"][1] += len(data)
            sent["lines"][2] += 1
        for client in range(2):
            sock = process.connect("length-prefixed")
            messages = [b"\x00binary\n%d %d" % (client, n) for n in range(100 * (client + 1))]
            data = b"".join(struct.pack("!I", len(m)) + m for m in messages)
            sock.sendall(data)
            sock.close()
            sent["length-prefixed"][0] += len(messages)
            sent["length-prefixed"][1] += len(data)
            sent["length-prefixed"][2] += 1
        bad = process.connect("length-prefixed")
        bad.sendall(struct.pack("!I", 0xFFFFFFF0))  # far over the 512 KiB limit
        bad.settimeout(10.0)
        assert bad.recv(1) == b""  # the gateway closed it
        bad.close()
        sent["length-prefixed"][1] += 4
        sent["length-prefixed"][2] += 1

        total = sent["lines"][0] + sent["length-prefixed"][0]
        assert waitForSize(kafka.bootstrap, topic, total, 60.0) == total

        def settled():
            metrics = scrape(process)
            closed = sum(
                metrics["gateway_connections_closed_total", (("listener", name),)] for name in sent
            )
            done = metrics["gateway_messages_delivered_total", ()] == total and closed == 5
            return metrics if done else None

        metrics = waitFor(settled, 10.0, "every delivery and close counted")
        assert {
            name: metrics[name, ()]
            for name in (
                "gateway_messages_received_total",
                "gateway_messages_produced_total",
                "gateway_messages_delivered_total",
                "gateway_messages_failed_total",
                "gateway_messages_dead_lettered_total",
            )
        } == {
            "gateway_messages_received_total": total,
            "gateway_messages_produced_total": total,
            "gateway_messages_delivered_total": total,
            "gateway_messages_failed_total": 0,
            "gateway_messages_dead_lettered_total": 0,
        }
        # librdkafka's queue count may hold a protocol request for a moment.
        assert metrics["gateway_producer_queue_depth", ()] <= 1
        for name, (_, sentBytes, clients) in sent.items():
            listener = (("listener", name),)
            assert metrics["gateway_received_bytes_total", listener] == sentBytes
            assert metrics["gateway_connections_accepted_total", listener] == clients
            assert metrics["gateway_connections_closed_total", listener] == clients
            assert metrics["gateway_connections_open", listener] == 0
        errors = {
            (dict(labels)["listener"], dict(labels)["reason"]): value
            for (name, labels), value in metrics.items()
            if name == "gateway_frame_errors_total" and value
        }
        assert errors == {("length-prefixed", "too-large"): 1}
        assert metrics["gateway_ready", ()] == 1
        assert metrics["gateway_last_delivery_age_seconds", ()] < 60
        broker = (("broker", kafka.bootstrap),)
        assert metrics["gateway_kafka_probes_ok_total", broker] >= 1
        assert metrics["gateway_kafka_probe_latency_seconds", broker] < 1.0

        status, _, body = get(process.httpPort, "/status.json")
        assert status == 200
        snapshot = json.loads(body)
        assert (snapshot["producer"]["accepted"], snapshot["producer"]["delivered"]) == (
            total,
            total,
        )
        assert {l["name"]: l["bytesReceived"] for l in snapshot["listeners"]} == {
            name: figures[1] for name, figures in sent.items()
        }
        assert snapshot["ready"] is True and snapshot["topic"] == topic

        # The same count as the operating system's, read at nearly the same
        # moment (the producer may open or close a connection in between).
        port = int(kafka.bootstrap.rsplit(":", 1)[1])

        def agree():
            counted = socketsTo(process.process.pid, port)
            exported = scrape(process)["gateway_kafka_connections", ()]
            return counted == exported and counted >= 2  # producer and probe

        waitFor(agree, 10.0, "the exported Kafka connections to match /proc")
    finally:
        process.stop()
