# -*- test-case-name: tests.integration.test_churn_kafka -*-
"""
Clients that open a connection per message, end to end: two client
processes connect, write one line and close, again and again for 3 s,
against C{twistd -n gateway} and a real Apache Kafka broker.

Whatever the machine's load (a slower gateway only means fewer
connections), every message a client wrote is in Kafka exactly once, no
client saw an error from the gateway's side, and the gateway's Kafka
connections stay a handful.
"""

import threading

import pytest

from devkafka import consume
from tests.integration.support.churn import parseMessage, runClients
from tests.integration.support.http import scrape
from tests.integration.support.process import CLEAN_EXIT, Gateways
from tests.integration.support.procfs import socketInodes, tcpConnections
from tests.integration.support.topics import newTopic, waitForSize

#: Client source addresses of their own, so the test's TIME_WAIT sockets
#: take no ports of 127.0.0.1 from other tests on the machine.
SOURCES = ("127.0.0.31", "127.0.0.32")


def kafkaSockets(pid, brokerPort, listenerPort):
    """
    The established connections process C{pid} holds to C{brokerPort}, as
    C{{inode: local port}}, from the operating system's tables: distinct
    inodes (L{tests.integration.support.procfs.socketsTo} says why), and
    not the accepted client connections whose client port happens to be
    the broker's port number (these clients churn through the whole
    ephemeral range, where the broker's port may lie).
    """
    inodes = socketInodes(pid)
    return {
        inode: local
        for local, remote, state, _, _, inode in tcpConnections()
        if state == "01" and remote == brokerPort and inode in inodes and local != listenerPort
    }


@pytest.fixture
def gateway(kafka, tmp_path):
    """
    A function starting a gateway against the test broker; every gateway
    started is stopped at the end.
    """
    gateways = Gateways(tmp_path, kafka.bootstrap, "--spool", "none", "--dead-letter", "none")
    yield gateways.start
    gateways.stopAll()


def test_connectionPerMessage(kafka, gateway):
    """
    2 processes x 3 s of connect -> one line -> close: every line that was
    written is read back from Kafka once, and nothing else is there; the
    clients saw no connection refused or reset, the gateway counted no
    accept error and logged no error and no warning about connections; it
    held at most 3 connections to the broker during and after the run.
    """
    topic = newTopic(kafka)
    process = gateway(
        "--topic", topic, "--listen", "lines(backlog=4096)=tcp:0:interface=127.0.0.1"
    )
    brokerPort = int(kafka.bootstrap.rsplit(":", 1)[1])
    pid = process.process.pid
    listenerPort = process.ports["lines"]
    samples, stop = [], threading.Event()

    def watchKafkaConnections():
        while not stop.wait(0.2):
            samples.append(kafkaSockets(pid, brokerPort, listenerPort))

    watcher = threading.Thread(target=watchKafkaConnections)
    watcher.start()
    try:
        done = runClients(listenerPort, 2, SOURCES, seconds=3.0)
    finally:
        stop.set()
        watcher.join()

    errors = {name: n for d in done for name, n in d["errors"].items()}
    assert errors == {}
    sent = {(d["process"], n, 0) for d in done for n in d["sent"]}
    assert len(sent) >= 20, f"only {len(sent)} connections in 3 s"
    size = waitForSize(kafka.bootstrap, topic, len(sent), timeout=120)
    assert size == len(sent)
    found = [
        parseMessage(record.value)
        for record in consume(kafka.bootstrap, topic, count=size, timeout=120)
    ]
    assert len(found) == len(set(found)) == len(sent)
    assert set(found) == sent

    samples.append(kafkaSockets(pid, brokerPort, listenerPort))
    counts = [len(sample) for sample in samples]
    assert 1 <= max(counts) <= 3, max(samples, key=len)
    metrics = scrape(process)
    assert metrics[("gateway_accept_errors_total", ())] == 0
    accepted = sum(
        v for (name, _), v in metrics.items() if name == "gateway_connections_accepted_total"
    )
    assert accepted == len(sent)
    # The connection side's warnings (accept failures, the descriptor
    # reserve, refusals) and any error; not the health probe's, which a
    # loaded machine may slow past its latency limit.
    problems = [
        line
        for line in process.log().splitlines()
        if "#error]" in line
        or "#critical]" in line
        or "Traceback" in line
        or ("#warn]" in line and "[gateway.server." in line)
    ]
    assert problems == []
    assert process.stop() in CLEAN_EXIT
