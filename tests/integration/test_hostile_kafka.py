# -*- test-case-name: tests.integration.test_hostile_kafka -*-
"""
Hostile clients end to end: C{twistd -n gateway} as a subprocess, real
client sockets, a real Apache Kafka broker, and the records read back.

Clients holding big incomplete frames (the denial of service of issue 12:
at default settings they used to pause every client for good), clients
trickling bytes under C{frame-timeout}, and the C{allow} list.
"""

import re
import time

import pytest

from tests.integration.support.http import (
    listenerStatus,
    readyz,
    refusedCounts,
    scrape,
    status,
)
from tests.integration.support.process import httpGateways, waitForLog
from tests.integration.support.sockets import (
    closeAll,
    closedBy,
    connectFrom,
    peerName,
    stillOpen,
)
from tests.integration.support.topics import byPeer, newTopic, records
from tests.support.waiting import waitFor

#: Seconds the well-behaved client's lines may take to reach Kafka: many
#: times what they take on an idle machine, for a slow shared one.
SERVED = 60.0

#: Seconds a refused client may take to see its connection closed.
REFUSAL = 5.0

PAUSING = re.compile(r"pausing \d+ client connections")


@pytest.fixture
def gateway(kafka, tmp_path):
    """
    Start gateways with their HTTP endpoints (see L{httpGateways}).
    """
    yield from httpGateways(kafka, tmp_path)


def holdIncomplete(port, count, size):
    """
    Open C{count} connections, each sending C{size} bytes of C{x} and no
    newline: a frame that can only complete if the gateway reads more.

    :return: the sockets (some may have been closed by the gateway).
    """
    held = []
    for _ in range(count):
        sock = connectFrom(port, timeout=30.0)
        held.append(sock)
        try:
            sock.sendall(b"x" * size)
        except OSError:
            pass  # closed by the cap while sending: the point
    return held


def incompleteClosed(process):
    """
    :return: connections closed over the cap on incomplete frames, from
        C{/metrics}.
    """
    return sum(
        value
        for (name, labels), value in scrape(process).items()
        if name == "gateway_connections_timed_out_total"
        and dict(labels)["reason"] == "incomplete-cap"
    )


@pytest.mark.parametrize(
    "args, count, size",
    [
        # The reproduction at default settings: 55 MB of incomplete
        # lines, under the 512 KiB message limit each.
        ((), 110, 500 * 1024),
        # And with a small budget, where three such connections sufficed.
        (("--budget", "1048576"), 3, 400 * 1024),
    ],
    ids=["defaults", "small-budget"],
)
def test_incompleteFramesDoNotStall(kafka, gateway, args, count, size):
    """
    Many connections hold big incomplete frames; then a well-behaved client
    sends 10 lines: they reach Kafka within L{SERVED} seconds, the gateway
    never pauses its clients (incomplete bytes are not in the budget), and
    the connections holding the most incomplete bytes were closed over the
    cap (counted as C{incomplete-cap}) while the others stay open, and
    C{/readyz} says ready (it said degraded before the fix).
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", "lines=tcp:0:interface=127.0.0.1", *args)
    port = process.ports["lines"]
    held, client = [], None
    try:
        held = holdIncomplete(port, count, size)
        cap = status(process)["budget"]["bytes"] // 2
        waitFor(
            lambda: incompleteClosed(process) >= 1,
            SERVED,
            "connections closed over the cap on incomplete frames",
        )
        client = connectFrom(port)
        lines = [b"well-behaved %d" % n for n in range(10)]
        client.sendall(b"".join(line + b"\n" for line in lines))
        found = byPeer(records(kafka, topic, 10, timeout=SERVED))
        assert found == {peerName(client): lines}
        closed = incompleteClosed(process)
        # At most the cap's worth of incomplete bytes stays held.
        assert count - closed <= cap // size + 1
        assert len(closedBy(held, REFUSAL, expect=closed)) == closed
        assert not PAUSING.search(process.log()), process.log()
        waitFor(lambda: readyz(process) == 200, SERVED, "/readyz 200 (ready, not degraded)")
        assert listenerStatus(process, "lines")["accepting"]
        assert listenerStatus(process, "lines")["closedBy"] == {"incomplete-cap": closed}
        waitForLog(
            process,
            r"closing \d+ client connections holding the most bytes of "
            r"incomplete frames .* over the \d+-byte cap \(incomplete-cap\)",
            5.0,
        )
    finally:
        closeAll(held + ([client] if client else []))


def test_frameTimeoutCutsTricklers(kafka, gateway):
    """
    With C{frame-timeout=2}, 20 clients trickling a byte every half second
    and never a newline are closed (2 to 2.5 s after their first byte, on a
    slow machine later), counted as C{frame-timeout}; a client sending whole
    lines slowly all along stays open and its lines reach Kafka.
    """
    topic = newTopic(kafka)
    process = gateway(
        "--topic", topic, "--listen", "lines(frame-timeout=2)=tcp:0:interface=127.0.0.1"
    )
    port = process.ports["lines"]
    tricklers = [connectFrom(port) for _ in range(20)]
    client = connectFrom(port)
    try:
        started = time.monotonic()
        lines = []
        while time.monotonic() - started < 4 and len(lines) < 8:
            for sock in tricklers:
                try:
                    sock.sendall(b"x")
                except OSError:
                    pass  # closed: the point
            lines.append(b"steady %d" % len(lines))
            client.sendall(lines[-1] + b"\n")
            time.sleep(0.5)
        assert len(closedBy(tricklers, SERVED, expect=20)) == 20
        assert stillOpen(client)
        found = byPeer(records(kafka, topic, len(lines), timeout=SERVED))
        assert found == {peerName(client): lines}
        assert listenerStatus(process, "lines")["closedBy"] == {"frame-timeout": 20}
    finally:
        closeAll([*tricklers, client])


def test_allowList(kafka, gateway):
    """
    With C{allow=127.0.0.2/32}, clients from 127.0.0.2 are served and
    clients from 127.0.0.3 are closed at once, publish nothing, and are
    logged and counted as C{not-allowed}.
    """
    topic = newTopic(kafka)
    process = gateway(
        "--topic", topic, "--listen", "lines(allow=127.0.0.2/32)=tcp:0:interface=127.0.0.1"
    )
    port = process.ports["lines"]
    clients = []
    try:
        for n, source in enumerate(["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]):
            sock = connectFrom(port, source=source)
            clients.append(sock)
            try:
                sock.sendall(b"from %s %d\n" % (source.encode(), n))
            except OSError:
                pass  # already closed by the gateway
        assert closedBy(clients, REFUSAL, expect=2) == {1, 3}
        assert stillOpen(clients[0]) and stillOpen(clients[2])
        found = byPeer(records(kafka, topic, 2))
        assert found == {
            peerName(clients[0]): [b"from 127.0.0.2 0"],
            peerName(clients[2]): [b"from 127.0.0.2 2"],
        }
        waitForLog(process, r"lines: refused 127\.0\.0\.3:\d+: not-allowed", 5.0)
        assert refusedCounts(process)[("lines", "not-allowed")] == 2
        assert listenerStatus(process, "lines")["refused"] == {"not-allowed": 2}
    finally:
        closeAll(clients)
