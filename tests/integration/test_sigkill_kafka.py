# -*- test-case-name: tests.integration.test_sigkill_kafka -*-
"""
End-to-end delivery through gateway crashes: the reference client sends
100,000 numbered lines in ack mode, in one session, while the gateway is
killed with SIGKILL three times and started again on the same port.  Kafka
must hold every message at least once, every message the client saw
acknowledged, and after dropping copies by (session, seq) exactly the
100,000 in order; the copies are only messages written to a killed gateway
after the last acknowledgement the client had from it (see
C{docs/guarantees.md}, "End-to-end acknowledgements").
"""

import subprocess
import threading
from collections import Counter

from devkafka import freePort
from gateway.client import Deduplicator, sessionAndSeq
from tests.integration.support import ackclient
from tests.integration.support.process import Gateways
from tests.integration.support.topics import newTopic, readAll, waitForSize
from tests.support.waiting import waitFor

COUNT = 100_000
SESSION = "sigkill-test"


def report(name, **figures):
    """
    Print a test's figures (shown with C{pytest -s} or on failure).
    """
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


class ClientProcess:
    """
    L{tests.integration.support.ackclient} running, its events read by a
    thread.

    :ivar confirmed: messages acknowledged, as last reported.
    :ivar losses: C{(first unacknowledged, next seq)} of every connection
        that ended, in order.
    :ivar done: C{(confirmed, refused)} once every message was settled.
    """

    def __init__(self, port, count, session):
        self.process = subprocess.Popen(
            ackclient.command(port, count, session),
            cwd=ackclient.ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.confirmed = 0
        self.losses = []
        self.done = None
        self.other = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            word, *numbers = line.split() or [""]
            if word == "status":
                self.confirmed = int(numbers[0])
            elif word == "lost":
                self.losses.append((int(numbers[0]), int(numbers[1])))
            elif word == "done":
                self.done = (int(numbers[0]), int(numbers[1]))
            else:
                self.other.append(line)

    def output(self):
        """
        :return: what the client printed besides its events.
        """
        return "".join(self.other[-50:])

    def stop(self):
        """
        End the client if it still runs.
        """
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def killAt(client, gateway, share):
    """
    SIGKILL C{gateway} once C{share} of the messages are confirmed, and wait
    until the client has seen its connection end.
    """
    waitFor(
        lambda: client.confirmed >= share * COUNT or client.done,
        120,
        lambda: f"{client.confirmed} confirmed, waiting for {share:.0%}\n{client.output()}",
    )
    assert client.done is None, f"every message confirmed before the {share:.0%} kill"
    kills = len(client.losses)
    gateway.process.kill()
    gateway.process.wait()
    waitFor(
        lambda: len(client.losses) > kills,
        60,
        lambda: f"the client never saw the killed gateway's connection end\n{client.output()}",
    )


def test_gatewayKilledThreeTimes(kafka, tmp_path):
    """
    SIGKILL the gateway at 20 %, 45 % and 70 % of the messages confirmed,
    each time starting a new one on the same port as soon as the client has
    seen its connection end.  Nothing acknowledged is missing, nothing is
    missing at all, the copies are counted and each lies between the last
    acknowledgement before a kill and the last message written before it.
    """
    topic = newTopic(kafka, partitions=3)
    port = freePort()
    gateways = Gateways(
        tmp_path,
        kafka.bootstrap,
        "--topic",
        topic,
        "--listen",
        f"lines(ack=on)=tcp:{port}:interface=127.0.0.1",
    )
    client = None
    try:
        gateway = gateways.start()
        client = ClientProcess(port, COUNT, SESSION)
        for share in (0.20, 0.45, 0.70):
            killAt(client, gateway, share)
            gateway = gateways.start()
        waitFor(lambda: client.done, 300, lambda: f"client not done\n{client.output()}")
        assert client.done == (COUNT, 0), client.output()
    finally:
        if client is not None:
            client.stop()
        gateways.stopAll()

    size = waitForSize(kafka.bootstrap, topic, COUNT, 120)
    records = readAll(kafka.bootstrap, topic, size)
    dedup = Deduplicator()
    unique = [sessionAndSeq(record)[1] for record in dedup.unique(records)]
    counts = Counter(sessionAndSeq(record)[1] for record in records)
    copies = sorted(seq for seq, count in counts.items() if count > 1)
    report(
        "sigkill",
        sent=COUNT,
        inKafka=size,
        duplicates=dedup.duplicates,
        gaps=dedup.gaps,
        kills=client.losses,
    )
    assert {sessionAndSeq(record)[0] for record in records} == {SESSION}
    assert unique == list(range(1, COUNT + 1)), "after deduplication: exactly 1..COUNT in order"
    assert dedup.gaps == 0
    assert size == COUNT + dedup.duplicates == COUNT + sum(counts[seq] - 1 for seq in copies)
    # The client saw each kill end its connection, and nothing else did
    # before every message was confirmed (its own stop ends the last one).
    kills = client.losses[:-1]
    assert len(kills) == 3 and client.losses[-1] == (COUNT + 1, COUNT + 1), client.losses
    for seq in copies:
        assert any(first <= seq < next_ for first, next_ in kills), (
            f"message {seq} is in Kafka twice but was acknowledged before every kill "
            f"or never written to a killed gateway: {client.losses}"
        )
