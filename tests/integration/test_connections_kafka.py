# -*- test-case-name: tests.integration.test_connections_kafka -*-
"""
Connection hygiene end to end: C{twistd -n gateway} as a subprocess (and
once in-process), real client sockets from several loopback source
addresses, a real Apache Kafka broker, and every record read back.

Caps (C{max-connections}, C{max-per-address}), timeouts (C{idle-timeout},
C{max-age}), TCP keepalive on accepted sockets, PROXY protocol v1/v2 peers,
the descriptor reserve (fill and recover), and the CI-scale run: 5,000
connections held at once by one gateway process.
"""

import os
import re
import resource
import signal
import socket
import time
from bisect import bisect_right
from collections import Counter
from itertools import accumulate

import pytest
import pytest_twisted

from tests.integration.support.http import (
    listenerStatus,
    readyz,
    refusedCounts,
    settledOpen,
    status,
    waitForOpen,
)
from tests.integration.support.process import CLEAN_EXIT, httpGateways, waitForLog
from tests.integration.support.procfs import acceptedSockets, socketsTo
from tests.integration.support.sockets import (
    SteadySender,
    closeAll,
    closedBy,
    closeTimes,
    connectFrom,
    openMany,
    peerName,
    raiseOwnDescriptorLimit,
    sendUntilClosed,
    stillOpen,
)
from tests.integration.support.topics import byPeer, newTopic, records
from tests.support.proxy import proxyV1, proxyV2
from tests.support.waiting import DEADLINE, sleepOnReactor, waitFor

#: Seconds a refused client may take to see its connection closed.
REFUSAL = 5.0

ROOM = re.compile(
    r"client connections: room for (?P<room>\d+) \(descriptor limit "
    r"(?P<limit>\d+), (?P<inUse>\d+) in use at start, (?P<reserve>\d+) reserved\)"
)


@pytest.fixture
def gateway(kafka, tmp_path):
    """
    Start gateways with their HTTP endpoints (see L{httpGateways}).
    """
    yield from httpGateways(kafka, tmp_path)


def test_maxConnections(kafka, gateway):
    """
    With C{max-connections=5}, 8 clients connect one after the other and
    each sends one line: the first 5 stay open and exactly their lines are
    in Kafka; the other 3 see their connection closed and nothing of theirs
    is published, and the refusal is logged and counted.  After 2 of the 5
    close, two new clients are admitted and delivered while a third is
    refused again.
    """
    topic = newTopic(kafka)
    process = gateway(
        "--topic", topic, "--listen", "lines(max-connections=5)=tcp:0:interface=127.0.0.1"
    )
    port = process.ports["lines"]
    clients, later = [], []
    try:
        for n in range(8):
            sock = connectFrom(port)
            clients.append(sock)
            sock.sendall(b"first %d\n" % n)
        assert closedBy(clients, REFUSAL, expect=3) == {5, 6, 7}
        assert all(stillOpen(sock) for sock in clients[:5])
        found = byPeer(records(kafka, topic, 5))
        assert found == {peerName(clients[n]): [b"first %d" % n] for n in range(5)}
        waitForLog(
            process,
            r"lines: refused 127\.0\.0\.1:\d+: max-connections 5 "
            r"reached \(5 open\)",
            5.0,
        )

        clients[0].close()
        clients[1].close()
        waitForOpen(process, "lines", 3)
        for n in range(3):
            sock = connectFrom(port)
            later.append(sock)
            sock.sendall(b"later %d\n" % n)
        assert closedBy(later, REFUSAL, expect=1) == {2}
        assert stillOpen(later[0]) and stillOpen(later[1])
        assert all(stillOpen(sock) for sock in clients[2:5])
        found = byPeer(records(kafka, topic, 7))
        assert found[peerName(later[0])] == [b"later 0"]
        assert found[peerName(later[1])] == [b"later 1"]
        assert peerName(later[2]) not in found
        entry = listenerStatus(process, "lines")
        assert entry["connections"] == 5
        assert entry["refused"] == {"max-connections": 4}
        assert refusedCounts(process) == {
            ("lines", "max-connections"): 4,
            ("lines", "max-per-address"): 0,
            ("lines", "descriptors"): 0,
            ("lines", "not-allowed"): 0,
        }
    finally:
        closeAll(clients + later)
    assert process.stop() in CLEAN_EXIT


def test_maxPerAddress(kafka, gateway):
    """
    With C{max-per-address=2}, three clients from 127.0.0.2: the third is
    closed at once and its line is not published; two clients from
    127.0.0.3 meanwhile are both admitted; every admitted client's line
    arrives.
    """
    topic = newTopic(kafka)
    process = gateway(
        "--topic", topic, "--listen", "lines(max-per-address=2)=tcp:0:interface=127.0.0.1"
    )
    port = process.ports["lines"]
    clients = []
    try:
        for n, source in enumerate(["127.0.0.2"] * 3 + ["127.0.0.3"] * 2):
            sock = connectFrom(port, source=source)
            clients.append(sock)
            sock.sendall(b"from %s %d\n" % (source.encode(), n))
        assert closedBy(clients, REFUSAL, expect=1) == {2}
        assert [stillOpen(sock) for sock in clients] == [True, True, False, True, True]
        found = byPeer(records(kafka, topic, 4))
        assert found == {
            peerName(clients[n]): [b"from %s %d" % (source, n)]
            for n, source in [
                (0, b"127.0.0.2"),
                (1, b"127.0.0.2"),
                (3, b"127.0.0.3"),
                (4, b"127.0.0.3"),
            ]
        }
        waitForLog(
            process,
            r"lines: refused 127\.0\.0\.2:\d+: max-per-address 2 "
            r"reached",
            5.0,
        )
        assert listenerStatus(process, "lines")["refused"] == {"max-per-address": 1}
        assert refusedCounts(process) == {
            ("lines", "max-connections"): 0,
            ("lines", "max-per-address"): 1,
            ("lines", "descriptors"): 0,
            ("lines", "not-allowed"): 0,
        }
    finally:
        closeAll(clients)


#: The idle timeout (seconds) and max-age (seconds) the timer tests set.
IDLE = 1.5
MAX_AGE = 2.0

#: Slack between two readings of the same clock (C{time.time}, which
#: Twisted's reactor times its calls on) by the test and by the gateway:
#: rounding, not scheduling.
SAME_CLOCK = 0.01

#: Seconds between a steady client's lines, and between the test's looks
#: at C{/status.json} while it sends.
SEND_EVERY = 0.05
LOOK_EVERY = 0.1


def idleFigures(process, listener):
    """
    :return: C{(the gateway's clock, bytes read, connections closed for
        idleness)} of a listener, from one C{/status.json}: all three read
        on the gateway's reactor at the same moment.
    """
    snapshot = status(process)
    [entry] = [e for e in snapshot["listeners"] if e["name"] == listener]
    return snapshot["time"], entry["bytesReceived"], entry["closedBy"].get("idle-timeout", 0)


def keptWhileSending(process, listener, idleBefore, accepted):
    """
    Watch a steady client's listener on the gateway's own figures until they
    prove that the idle timer is restarted by every read, or until the
    gateway closes the client for idleness.

    The proof is a stretch of at least 2 x L{IDLE} of the gateway's clock
    whose looks are less than L{IDLE} / 2 apart, each with more bytes read
    than the one before, at the end of which the client is still open: a
    gateway that read from it in every half timeout had no reason to close
    it.  A look delayed by a busy machine (the test's or the gateway's)
    starts a new stretch instead of counting.

    :param idleBefore: connections closed for idleness on the listener
        before this client.
    :param accepted: the listener's accepted count once this client is.
    :return: L{True} once proven; L{False} if the gateway closed the client
        for idleness after a silence it may have seen (a stalled sender or
        gateway), so the caller tries again.
    :raises AssertionError: if the gateway closed it less than L{IDLE} after
        a read the looks show.
    """
    waitFor(
        lambda: listenerStatus(process, listener)["accepted"] == accepted,
        DEADLINE,
        f"{listener} to accept connection {accepted}",
    )
    looks = [idleFigures(process, listener)]
    stretch = looks[-1][0]
    while True:
        time.sleep(LOOK_EVERY)
        now, read, closed = idleFigures(process, listener)
        if closed > idleBefore:
            if len(looks) >= 2:
                (t0, read0, _), (_, read1, _) = looks[-2:]
                assert not (read1 > read0 and now - t0 < IDLE - SAME_CLOCK), (
                    f"closed for idleness by {now:.3f} s of the gateway's clock "
                    f"although it read from the client after {t0:.3f} s"
                )
            return False
        previous, previousRead, _ = looks[-1]
        if not (now - previous < IDLE / 2 and read > previousRead):
            stretch = now
        looks.append((now, read, closed))
        if now - stretch >= 2 * IDLE:
            return True


def test_idleTimeout(kafka, gateway):
    """
    With C{idle-timeout=1.5}, timed on the clock the gateway runs its timers
    on: a silent client is closed, and never seen closed sooner than 1.5 s
    after the test started connecting it; a client that sends two whole
    lines and then half a line likewise, counting from its write; its whole
    lines are published and the half line is not (an incomplete frame).

    A client writing a line every 50 ms from a thread of its own, on a
    second listener, stays open through a stretch of 3 s in which the
    gateway's own figures show a read in every 0.75 s; if a stalled machine
    made it silent long enough to be closed, that is allowed only if no read
    is seen less than 1.5 s before the close, and a new client tries again.
    Every line the gateway read is in Kafka once, in order.
    """
    topic = newTopic(kafka)
    listen = f"lines(idle-timeout={IDLE:g})=tcp:0:interface=127.0.0.1"
    process = gateway("--topic", topic, "--listen", listen, "--listen", listen, listeners=2)
    silentSince = time.time()
    silent = connectFrom(process.ports["lines"])
    half = connectFrom(process.ports["lines"])
    halfSince = time.time()
    half.sendall(b"whole 1\nwhole 2\nhalf a li")
    names = {"half": peerName(half)}
    steady = []
    try:
        silentAt, halfAt = closeTimes([silent, half], DEADLINE)
        print(
            f"silent seen closed {silentAt - silentSince:.2f} s after connecting, "
            f"half line {halfAt - halfSince:.2f} s after its write"
        )
        assert silentAt - silentSince >= IDLE - SAME_CLOCK
        assert halfAt - halfSince >= IDLE - SAME_CLOCK
        entry = waitForOpen(process, "lines", 0, timeout=DEADLINE)
        assert entry["closedBy"] == {"idle-timeout": 2}
        assert entry["frameErrors"] == {"incomplete": 1}
        closing = r"lines: closing 127\.0\.0\.1:\d+ \(idle-timeout, 1\.5 s\)"
        assert re.search(closing, process.log())

        deadline = time.monotonic() + 2 * DEADLINE
        while True:
            sock = connectFrom(process.ports["lines-2"])
            sender = SteadySender(sock, b"steady %d" % len(steady), SEND_EVERY).start()
            steady.append((peerName(sock), sender))
            if keptWhileSending(process, "lines-2", len(steady) - 1, len(steady)):
                break
            sender.stop()
            sock.close()
            assert time.monotonic() < deadline, (
                f"{len(steady)} steady clients closed for idleness, each after "
                "a silence the gateway may have seen: no stretch of steady reads"
            )
        sender.stop()
        assert sender.error is None, sender.error
        sock.close()
        waitForOpen(process, "lines-2", 0, timeout=DEADLINE)
        assert listenerStatus(process, "lines-2")["closedBy"] == (
            {"idle-timeout": len(steady) - 1} if len(steady) > 1 else {}
        )
        read = status(process)["producer"]["accepted"]
        found = byPeer(records(kafka, topic, read))
        print(f"{len(steady)} steady clients; {read} lines read")
        assert found.pop(names["half"]) == [b"whole 1", b"whole 2"]
        *stalled, (name, last) = steady
        assert found.pop(name) == last.sent
        for name, sender in stalled:
            got = found.pop(name, [])
            assert got == sender.sent[: len(got)]
        assert found == {}
    finally:
        for _, sender in steady:
            sender.stop()
            sender.sock.close()
        closeAll([silent, half])


def test_maxAge(kafka, gateway):
    """
    With C{max-age=2}, a client writing a line every 20 ms is shown an end
    of stream, never seen sooner than 2 s after the test started connecting
    it (on the clock the gateway times it with); the close is counted and
    logged as max-age.  Every line within the bytes the gateway counts as
    read from it (C{bytesReceived}, once the connection is gone) is in
    Kafka, in order, once each, and nothing else: what the client wrote
    then is a prefix of what it wrote.
    """
    topic = newTopic(kafka, partitions=1)
    process = gateway(
        "--topic", topic, "--listen", f"lines(max-age={MAX_AGE:g})=tcp:0:interface=127.0.0.1"
    )
    since = time.time()
    sock = connectFrom(process.ports["lines"])
    name = peerName(sock)
    try:
        sent, _, after = sendUntilClosed(sock, 0.02, DEADLINE)
        seen = time.time()
    finally:
        sock.close()
    assert after is not None, f"not closed in {DEADLINE:g} s"
    assert seen - since >= MAX_AGE - SAME_CLOCK, seen - since
    entry = waitForOpen(process, "lines", 0, timeout=DEADLINE)
    ends = list(accumulate(len(line) + 1 for line in sent))
    read = entry["bytesReceived"]
    assert 0 < read <= ends[-1], (read, ends[-1])
    whole = bisect_right(ends, read)
    found = byPeer(records(kafka, topic, whole))
    print(
        f"closed seen {seen - since:.2f} s after connecting; {len(sent)} lines "
        f"written, {read} bytes read by the gateway: {whole} whole lines"
    )
    assert found == {name: sent[:whole]}
    assert status(process)["producer"]["accepted"] == whole
    assert entry["closedBy"] == {"max-age": 1}
    assert re.search(r"lines: closing 127\.0\.0\.1:\d+ \(max-age, 2 s\)", process.log())


def test_proxyProtocol(kafka, gateway):
    """
    On a C{haproxy:} listener, a PROXY v1 header (sent in its own write,
    then the lines) and a PROXY v2 header (in the same write as the lines)
    name the client: the record key is C{lines/ADDRESS:PORT} of the header
    and so is the C{gateway-peer} header.  A client sending lines without a
    header, and one with a malformed v1 header, are closed and publish
    nothing.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", "lines=haproxy:tcp:0:interface=127.0.0.1")
    port = process.ports["lines"]
    v1, v2, bare, bad = clients = [connectFrom(port) for _ in range(4)]
    try:
        v1.sendall(proxyV1("203.0.113.7", 40000, destinationPort=port))
        time.sleep(0.1)
        v1.sendall(b"v1 one\nv1 two\n")
        v2.sendall(proxyV2("198.51.100.9", 51000, destinationPort=port) + b"v2 one\nv2 two\n")
        bare.sendall(b"no header at all\n")
        bad.sendall(b"PROXY TCP4 203.0.113.8 127.0.0.1\r\nbad one\n")
        assert closedBy(clients, REFUSAL, expect=2) == {2, 3}
        assert stillOpen(v1) and stillOpen(v2)
        v1.sendall(b"v1 three\n")
        found = records(kafka, topic, 5)
    finally:
        closeAll(clients)
    keys = {record.key for record in found}
    assert keys == {b"lines/203.0.113.7:40000", b"lines/198.51.100.9:51000"}
    assert byPeer(found) == {
        "203.0.113.7:40000": [b"v1 one", b"v1 two", b"v1 three"],
        "198.51.100.9:51000": [b"v2 one", b"v2 two"],
    }
    for record in found:
        assert record.key == b"lines/" + dict(record.headers)["gateway-peer"]


def test_proxyHeaderNamingNoAddress(kafka, gateway):
    """
    A PROXY v1 header whose source is not an IPv4 address (or whose port is
    not a number) is invalid: the connection is closed and publishes
    nothing, like one without a header; a valid client on the same
    listener is delivered.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", "lines=haproxy:tcp:0:interface=127.0.0.1")
    port = process.ports["lines"]
    good, name, number = clients = [connectFrom(port) for _ in range(3)]
    try:
        name.sendall(b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nname line\n")
        number.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 http 2\r\nnumber line\n")
        good.sendall(proxyV1("203.0.113.7", 40000, destinationPort=port) + b"good\n")
        found = records(kafka, topic, 1)
        assert [(r.key, r.value) for r in found] == [(b"lines/203.0.113.7:40000", b"good")]
        assert closedBy(clients, 3.0, expect=2) == {1, 2}
    finally:
        closeAll(clients)


def test_keepaliveIdleOnAcceptedSockets(kafka, gateway):
    """
    With C{keepalive-idle=33}, the gateway's accepted sockets (found by
    C{ss} and owned by the gateway process) run a keepalive timer with at
    most 66 s (33 s plus the random spread of up to as much again) and more
    than 25 s left; on a listener with C{keepalive=false} they run none.
    """
    topic = newTopic(kafka)
    process = gateway(
        "--topic",
        topic,
        "--listen",
        "lines(keepalive-idle=33,keepalive-interval=7,"
        "keepalive-count=3)=tcp:0:interface=127.0.0.1",
        "--listen",
        "lines(keepalive=false)=tcp:0:interface=127.0.0.1",
        listeners=2,
    )
    pid = process.process.pid
    tunedPort, offPort = process.ports["lines"], process.ports["lines-2"]
    tuned = [connectFrom(tunedPort) for _ in range(3)]
    off = connectFrom(offPort)
    try:
        # Counted once connectionMade, which sets the options, has returned
        # (the socket is the gateway's a moment before: seen by ss then, it
        # has no timer yet).
        waitForOpen(process, "lines", 3, timeout=DEADLINE)
        waitForOpen(process, "lines-2", 1, timeout=DEADLINE)
        assert len(acceptedSockets(pid, offPort)) == 1
        timers = acceptedSockets(pid, tunedPort)
        assert len(timers) == 3
        assert all(left is not None and 25 < left <= 66 for left in timers), timers
        assert acceptedSockets(pid, offPort) == [None]
    finally:
        closeAll(tuned + [off])


@pytest_twisted.inlineCallbacks
def test_keepaliveOptionsOnAcceptedSockets(kafka):
    """
    In-process, on the real reactor: the socket the gateway accepted on a
    listener with C{keepalive-idle=33,keepalive-interval=7,keepalive-count=3}
    has C{SO_KEEPALIVE} on and C{TCP_KEEPIDLE} 33 to 66, C{TCP_KEEPINTVL} 7,
    C{TCP_KEEPCNT} 3; one on a listener without options has the defaults
    (60, 15, 4); one on a C{keepalive=false} listener has C{SO_KEEPALIVE}
    off.
    """
    from gateway.service import GatewayService

    service = GatewayService(
        newTopic(kafka),
        kafka.bootstrap,
        spoolPath=None,
        deadLetterPath=None,
        healthInterval=None,
        reserveDescriptors=None,
    )
    endpoint = "tcp:0:interface=127.0.0.1"
    service.addListener(
        "lines",
        endpoint,
        name="tuned",
        options={
            "keepalive-idle": "33",
            "keepalive-interval": "7",
            "keepalive-count": "3",
        },
    )
    service.addListener("lines", endpoint, name="default")
    service.addListener("lines", endpoint, name="off", options={"keepalive": "false"})
    service.startService()
    clients = []
    try:
        for listener in service.listeners:
            clients.append(connectFrom(listener.port.getHost().port))
        for _ in range(250):
            if len(service.router.clients) == 3:
                break
            yield sleepOnReactor(0.02)
        accepted = {
            protocol.factory.config.name: protocol.transport.getHandle()
            for protocol in service.router.clients
        }
        assert set(accepted) == {"tuned", "default", "off"}

        def options(skt):
            return (
                skt.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
                skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            )

        # The first probe waits keepalive-idle plus a random spread of up to
        # as much again, per connection.
        on, idle, interval, count = options(accepted["tuned"])
        assert (on, interval, count) == (True, 7, 3) and 33 <= idle <= 66, idle
        on, idle, interval, count = options(accepted["default"])
        assert (on, interval, count) == (True, 15, 4) and 60 <= idle <= 120, idle
        assert options(accepted["off"])[0] is False
    finally:
        closeAll(clients)
        yield service.stopService()


def lowDescriptorLimit():
    """
    In the gateway's child process, before twistd: 400 descriptors, soft
    and hard, so it cannot raise its own limit.
    """
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))


def descriptorGateway(gateway, topic):
    """
    Start a gateway whose descriptor limit is 400 (soft and hard) with 64
    reserved, and wait until it is ready.

    :return: C{(process, room)}.
    """
    process = gateway(
        "--topic",
        topic,
        "--reserve-descriptors",
        "64",
        "--listen",
        "lines=tcp:0:interface=127.0.0.1",
        preexecFn=lowDescriptorLimit,
    )
    match = waitForLog(process, ROOM.pattern, 10.0)
    assert (int(match["limit"]), int(match["reserve"])) == (400, 64)
    assert "descriptor limit (RLIMIT_NOFILE): soft 400, hard 400" in process.log()
    waitFor(lambda: readyz(process) == 200, 30.0, "/readyz 200")
    return process, int(match["room"])


def line(n):
    """
    :return: client C{n}'s one line.
    """
    return b"client %05d\n" % n


def test_descriptorReserveFillAndRecover(kafka, gateway):
    """
    A gateway whose hard descriptor limit is 400 (C{--reserve-descriptors
    64}) logs its room for C{room} clients.  C{room} clients connect (the
    last five one at a time) and then 50 more, each sending one line: the
    gateway holds exactly C{room} (C{/status.json} and the sockets the
    process owns), logs that the reserve was reached, C{/readyz} is still
    200 and C{/status.json} answers, and Kafka holds exactly the admitted
    clients' lines.  Once 60 admitted clients close, the 50 waiting in the
    backlog are accepted and every client's line is in Kafka exactly once:
    none of them was refused for C{descriptors} (C{/status.json}), as
    happened when an accept batch overshot the room freed so far.
    """
    topic = newTopic(kafka)
    process, room = descriptorGateway(gateway, topic)
    port, pid = process.ports["lines"], process.process.pid
    total = room + 50
    clients = []

    def listener():
        [lines] = status(process)["listeners"]
        return lines

    try:
        clients += openMany(port, room - 5, ["127.0.0.1"], line)
        waitForOpen(process, "lines", room - 5)
        for n in range(room - 5, room):
            sock = connectFrom(port)
            clients.append(sock)
            sock.sendall(line(n))
            waitForOpen(process, "lines", n + 1)
        waitForLog(process, r"descriptor reserve reached: %d client connections" % room, 5.0)
        clients += openMany(port, 50, ["127.0.0.1"], lambda n: line(room + n))
        assert settledOpen(process, "lines") == room
        assert len(acceptedSockets(pid, port)) == room
        assert readyz(process) == 200
        assert status(process)["ready"] is True
        admitted = records(kafka, topic, room)
        assert {r.value for r in admitted} == {line(n)[:-1] for n in range(room)}
        assert listener()["refused"] == {}

        byName = {peerName(sock): sock for sock in clients}
        for record in admitted[:60]:
            byName[dict(record.headers)["gateway-peer"].decode()].close()
        # Every client waiting in the backlog is accepted once, admitted or
        # refused; none may be refused: its line would be lost.
        waitFor(lambda: listener()["accepted"] >= total, 60.0, f"{total} accepted")
        refused = listener()["refused"]
        assert refused == {}, (
            f"clients waiting in the backlog were refused ({refused}) "
            "while 60 closes freed the room: their lines are lost"
        )
        found = records(kafka, topic, total)
        waitForOpen(process, "lines", room - 10)
    finally:
        closeAll(clients)
    assert Counter(record.value for record in found) == Counter(line(n)[:-1] for n in range(total))
    assert {dict(r.headers)["gateway-peer"].decode() for r in found} == set(byName)


def test_descriptorReserveHoldsInABurst(kafka, gateway):
    """
    Like a reconnect storm: C{room + 50} clients connect while the gateway
    is stopped (SIGSTOP), so they all wait in the backlog together, each
    with one line sent; once it runs again it holds exactly C{room} of them
    and never runs out of descriptors.
    """
    topic = newTopic(kafka)
    process, room = descriptorGateway(gateway, topic)
    clients = []
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        clients += openMany(process.ports["lines"], room + 50, ["127.0.0.1"], line)
    finally:
        os.kill(process.process.pid, signal.SIGCONT)
    try:
        held = settledOpen(process, "lines")
        print(f"room {room}, held {held}")
        assert "accept failed" not in process.log()
        assert held == room
    finally:
        closeAll(clients)


#: The CI-scale run: connections held at once by one gateway process.
CI_SCALE = 5000


def test_ciScale5000ConnectionsTwoSources(kafka, gateway):
    """
    The CI-scale run: 5,000 concurrent connections to one gateway process,
    from 127.0.0.1 and 127.0.0.2 in turn, all held open at once
    (C{/status.json} counts 5,000 and the process owns 5,000 accepted
    sockets), one line each: Kafka holds all 5,000 exactly once, each with
    its connection's peer, and the gateway keeps at most 3 TCP connections
    to the broker.
    """
    assert raiseOwnDescriptorLimit() >= CI_SCALE + 1000
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", "lines=tcp:0:interface=127.0.0.1")
    port, pid = process.ports["lines"], process.process.pid
    brokerPort = int(kafka.bootstrap.rsplit(":", 1)[1])
    started = time.monotonic()
    clients = openMany(
        port, CI_SCALE, ["127.0.0.1", "127.0.0.2"], lambda n: b"scale %05d\n" % n, timeout=60.0
    )
    try:
        opened = time.monotonic() - started
        kafkaConnections = [socketsTo(pid, brokerPort)]
        waitForOpen(process, "lines", CI_SCALE, timeout=30.0)
        held = time.monotonic() - started
        kafkaConnections.append(socketsTo(pid, brokerPort))
        assert len(acceptedSockets(pid, port)) == CI_SCALE
        found = records(kafka, topic, CI_SCALE, timeout=60.0)
        delivered = time.monotonic() - started
        kafkaConnections.append(socketsTo(pid, brokerPort))
        assert listenerStatus(process, "lines")["connections"] == CI_SCALE
        names = [peerName(sock) for sock in clients]
    finally:
        closeAll(clients)
    print(
        f"{CI_SCALE} connections: connected in {opened:.1f} s, all held after "
        f"{held:.1f} s, all delivered after {delivered:.1f} s; "
        f"connections to Kafka: {kafkaConnections}"
    )
    assert Counter(r.value for r in found) == Counter(b"scale %05d" % n for n in range(CI_SCALE))
    peers = {dict(r.headers)["gateway-peer"].decode(): r.value for r in found}
    assert peers == {name: b"scale %05d" % n for n, name in enumerate(names)}
    assert Counter(name.split(":")[0] for name in peers) == {
        "127.0.0.1": CI_SCALE // 2,
        "127.0.0.2": CI_SCALE // 2,
    }
    assert 1 <= max(kafkaConnections) <= 3, kafkaConnections
    waitForOpen(process, "lines", 0, timeout=30.0)
    assert process.stop() in CLEAN_EXIT
