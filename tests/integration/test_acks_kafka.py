# -*- test-case-name: tests.integration.test_acks_kafka -*-
"""
Ack mode against a real broker, through a C{twistd} gateway with a C{lines}
listener with C{ack=on}: acknowledgements stop while the broker is down and
resume after, never ahead of Kafka; a record over the broker's limit is
NACKed and the stream goes on past it; a client that never reads its
acknowledgements is paused, and the gateway serves the others meanwhile.
"""

import socket
import threading
import time

from tests.integration.support.brokers import ownBroker
from tests.integration.support.process import CLEAN_EXIT, GatewayProcess, stopGateway
from tests.integration.support.procfs import vmRSS
from tests.integration.support.topics import (
    newTopic,
    readAll,
    records,
    topicSize,
    waitForSize,
)
from tests.support.waiting import waitFor

MiB = 1024 * 1024
ACK_LISTENER = "lines(ack=on)=tcp:0:interface=127.0.0.1"


def report(name, **figures):
    """
    Print a test's figures (shown with C{pytest -s} or on failure).
    """
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def ackGateway(directory, bootstrap, topic, *args):
    """
    A gateway (started) with one C{lines} listener with C{ack=on}.
    """
    return GatewayProcess(
        directory,
        ["--bootstrap-servers", bootstrap, "--topic", topic, "--listen", ACK_LISTENER, *args],
    ).start(1)


class AckReader:
    """
    A connection to an ack listener whose acknowledgements a thread reads,
    each with the time it arrived.

    :ivar acks: C{(monotonic time, n)} of every C{ACK n}, in order.
    :ivar nacks: C{(seq, reason)} of every C{NACK}.
    """

    def __init__(self, gateway):
        self.sock = gateway.connect("lines")
        self.acks = []
        self.nacks = []
        self.other = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        rest = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            *lines, rest = (rest + data).split(b"\n")
            now = time.monotonic()
            for line in lines:
                words = line.split(b" ")
                if words[0] == b"ACK" and len(words) == 2:
                    self.acks.append((now, int(words[1])))
                elif words[0] == b"NACK" and len(words) == 3:
                    self.nacks.append((int(words[1]), words[2].decode()))
                else:
                    self.other.append(line)

    @property
    def acked(self):
        """
        The last C{ACK} received (0 before any).
        """
        return self.acks[-1][1] if self.acks else 0

    def waitForAck(self, n, timeout):
        waitFor(lambda: self.acked >= n, timeout, lambda: f"ACK {n} (last {self.acks[-3:]})", 0.05)

    def close(self):
        self.sock.close()


def seqs(found):
    """
    The C{gateway-seq} of each record read back, as L{int}s.
    """
    return [int(dict(r.headers)["gateway-seq"]) for r in found]


def test_brokerStoppedAcksPauseAndResume(request, tmp_path):
    """
    A client streams numbered lines; the broker is stopped for 10 s and
    started again.  While it is down no acknowledgement moves; afterwards
    they resume up to the last line; Kafka holds every line, each one in
    Kafka at latest when it was acknowledged (checked at the stop: what was
    acknowledged then is all there).
    """
    with ownBroker(request, tmp_path, name="acks-stopped") as broker:
        topic = newTopic(broker)
        gateway = ackGateway(tmp_path, broker.bootstrap, topic, "--health-interval", "1")
        client = AckReader(gateway)
        sent = [0]
        stop = threading.Event()

        def send():
            while not stop.is_set():
                n = sent[0] + 1
                client.sock.sendall(b"%d\n" % n)
                sent[0] = n
                time.sleep(0.005)

        sender = threading.Thread(target=send, daemon=True)
        try:
            sender.start()
            client.waitForAck(200, 60)
            broker.stop(timeout=60.0)
            stopped = time.monotonic()
            ackedAtStop = client.acked
            # Everything acknowledged is in Kafka: read it from the stopped
            # broker's data once it is back; meanwhile no ack may move.
            time.sleep(10)
            ackedDuringOutage = client.acked
            assert ackedDuringOutage == ackedAtStop, client.acks[-5:]
            broker.start(timeout=120.0)
            restarted = time.monotonic()
            sizeAtRestart = topicSize(broker.bootstrap, topic)
            assert sizeAtRestart >= ackedAtStop
            waitFor(lambda: client.acked > ackedAtStop, 120, "acks to resume")
            resumedAfter = time.monotonic() - restarted
            time.sleep(2)
            stop.set()
            sender.join(10)
            total = sent[0]
            client.waitForAck(total, 120)
            size = waitForSize(broker.bootstrap, topic, total, 120)
            found = readAll(broker.bootstrap, topic, size)
            numbers = seqs(found)
            report(
                "broker stopped",
                sent=total,
                ackedAtStop=ackedAtStop,
                outage=f"{restarted - stopped:.1f}s",
                acksResumedAfter=f"{resumedAfter:.1f}s",
                inKafka=size,
                ackWrites=len(client.acks),
            )
            assert sorted(set(numbers)) == list(range(1, total + 1))
            assert [int(r.value) for r in found] == numbers
            # Acknowledgements only ever grow.
            values = [n for _, n in client.acks]
            assert values == sorted(values) and client.nacks == []
            client.close()
            assert gateway.stop() in CLEAN_EXIT
        finally:
            stop.set()
            client.close()
            stopGateway(gateway)


def test_nackOverBrokerLimit(kafka, tmp_path):
    """
    A line over the topic's C{max.message.bytes} is NACKed C{too-large},
    the cumulative ACK moves past it, and the lines after it are delivered.
    """
    topic = newTopic(kafka, partitions=1, config={"max.message.bytes": "2000"})
    gateway = ackGateway(tmp_path, kafka.bootstrap, topic)
    client = AckReader(gateway)
    try:
        client.sock.sendall(b"before\n" + b"x" * 5000 + b"\nafter\n")
        client.waitForAck(3, 60)
        assert client.nacks == [(2, "too-large")]
        client.sock.sendall(b"later\n")
        client.waitForAck(4, 60)
        found = records(kafka, topic, 3)
        assert sorted(r.value for r in found) == [b"after", b"before", b"later"]
        assert sorted(seqs(found)) == [1, 3, 4]
        assert client.other == []
        client.close()
        assert gateway.stop() in CLEAN_EXIT
    finally:
        client.close()
        stopGateway(gateway)


def test_unreadAcksPauseOnlyThatClient(kafka, tmp_path):
    """
    A client that never reads its acknowledgements (many, uncoalesced: a
    NACK for each line the producer refuses) stops being read once they
    fill TCP's buffers and the gateway's small limit; another client is
    served meanwhile, and the gateway's memory does not grow.
    """
    topic = newTopic(kafka)
    gateway = ackGateway(
        tmp_path,
        kafka.bootstrap,
        topic,
        "--kafka-option",
        "message.max.bytes=2000",
        "--dead-letter",
        "none",
    )
    pid = gateway.process.pid
    deaf = socket.socket()
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    deaf.connect(("127.0.0.1", gateway.ports["lines"]))
    deaf.settimeout(1.0)
    line = b"y" * 2100 + b"\n"
    sent = [0]
    stalled = threading.Event()
    limit = 400 * MiB

    def flood():
        quiet = None
        while sent[0] < limit:
            try:
                sent[0] += deaf.send(line * 16)
                quiet = None
            except TimeoutError:
                quiet = quiet or time.monotonic()
                if time.monotonic() - quiet > 5:
                    stalled.set()
                    return
            except OSError:
                return

    other = None
    try:
        time.sleep(1)
        idle = vmRSS(pid)
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        waitFor(stalled.is_set, 240, lambda: f"the deaf client to stall ({sent[0]} bytes sent)")
        peak = vmRSS(pid)
        other = AckReader(gateway)
        other.sock.sendall(b"".join(b"%d\n" % n for n in range(1, 2001)))
        other.waitForAck(2000, 60)
        found = records(kafka, topic, 2000)
        report(
            "unread acks",
            deafSent=f"{sent[0] / MiB:.1f}MiB",
            idleRSS=f"{idle / MiB:.1f}MiB",
            peakRSS=f"{peak / MiB:.1f}MiB",
        )
        assert sent[0] < limit
        assert sorted(seqs(found)) == list(range(1, 2001))
        assert peak < idle + 64 * MiB
        # Still paused, not closed: reading its acks lets it go on.
        assert gateway.process.poll() is None
        deaf.close()
        other.close()
        assert gateway.stop() in CLEAN_EXIT
    finally:
        deaf.close()
        if other is not None:
            other.close()
        stopGateway(gateway)
