# -*- test-case-name: tests.integration.test_descriptors_kafka -*-
"""
Running out of descriptors for real: a gateway whose descriptor limit is
lower than its clients, with no reserve, so C{accept} itself fails with
C{EMFILE}.  Twisted's reserved-descriptor recovery closes the connections it
cannot serve; the gateway logs that once per interval, stops accepting for a
second at a time instead of spinning, keeps serving the connections it has,
and accepts again once descriptors free up.  (The descriptor reserve, which
normally keeps the gateway from ever reaching this point, is tested in
C{test_connections_kafka}.)
"""

import json
import os
import resource
import socket
from http.client import HTTPConnection

from devkafka import consume
from tests.integration.support.process import CLEAN_EXIT, GatewayProcess
from tests.integration.support.procfs import acceptedSockets, acceptQueue
from tests.integration.support.topics import TopicSize, newTopic
from tests.support.waiting import DEADLINE, waitFor

#: The gateway's hard descriptor limit in this test: small, so a few hundred
#: clients reach it.
LIMIT = 160

ACCEPT_FAILED = "accept failed: out of descriptors"


def lowerLimit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def connectAndSend(port, line):
    """
    Connect and send one line.

    :return: the socket, or L{None} if the gateway closed it at once (the
        connection it could not accept) or the connection failed.
    """
    sock = socket.socket()
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(line)
    except OSError:
        sock.close()
        return None
    return sock


def closedByGateway(sock, wait=0.0):
    """
    Whether the gateway closed this connection (EOF or reset).
    """
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def distinctClients(records):
    return {record.value.split(b"-")[1] for record in records}


def test_acceptFailsAndRecovers(kafka, tmp_path):
    """
    At the descriptor limit (no reserve), an accept fails with EMFILE:
    Twisted closes the connections pending then, which it could not serve;
    the gateway logs it once per interval (not once per connection), lowers
    its room for clients to what it holds, and later clients wait in the
    backlog instead of being closed.  The connections held keep delivering; when some leave,
    as many waiting ones are accepted and publish what they sent while
    waiting.  No line arrives twice.
    """
    topic = newTopic(kafka)
    http = []
    gateway = GatewayProcess(
        tmp_path,
        [
            "--bootstrap-servers",
            kafka.bootstrap,
            "--topic",
            topic,
            "--listen",
            "lines=tcp:0:interface=127.0.0.1",
            "--http",
            "tcp:0:interface=127.0.0.1",
            "--reserve-descriptors",
            "0",
        ],
        preexecFn=lowerLimit,
    ).start(1)
    clients = []
    try:
        port = gateway.ports["lines"]
        assert f"soft {LIMIT}, hard {LIMIT}" in gateway.log()
        # Something other than clients takes descriptors after start (here
        # idle HTTP connections; in life, more Kafka brokers, scrapes...).
        for _ in range(10):
            clients.append((socket.create_connection(("127.0.0.1", gateway.httpPort)), -1))
        http, clients = clients, []
        waitFor(
            lambda: len(acceptedSockets(gateway.process.pid, gateway.httpPort)) == 10,
            DEADLINE,
            "the gateway to hold the 10 HTTP connections",
        )

        def snapshot():
            # A new connection would find no descriptor free: ask on one of
            # the HTTP connections held open since the start.
            connection = HTTPConnection("127.0.0.1", gateway.httpPort)
            connection.sock = http[0][0]
            connection.sock.settimeout(30)
            connection.request("GET", "/status.json")
            return json.loads(connection.getresponse().read())

        def listener():
            [lines] = snapshot()["listeners"]
            return lines

        for number in range(LIMIT + 60):
            sock = connectAndSend(port, b"first-%d\n" % number)
            if sock is not None:
                clients.append((sock, number))
        # The gateway answers only after the accept that failed, and
        # Twisted's recovery closing the connections pending then, are
        # over; its room is then what it holds, so it has stopped accepting.
        atLimit = waitFor(
            lambda: (
                (s := snapshot())["descriptors"]["acceptErrors"] and s["descriptors"]["full"] and s
            ),
            DEADLINE,
            "an accept to fail and the gateway to stop accepting",
        )
        [atLimitLines] = atLimit["listeners"]
        assert atLimitLines["accepting"] is False
        closedAtOnce = [number for sock, number in clients if closedByGateway(sock)]
        clients = [(s, n) for s, n in clients if n not in closedAtOnce]
        assert closedAtOnce, "the limit was never reached"
        log = gateway.log()
        assert log.count(ACCEPT_FAILED) == 1, log
        assert "room lowered to" in log
        assert len(os.listdir(f"/proc/{gateway.process.pid}/fd")) <= LIMIT
        # Clients arriving now wait in the backlog: the kernel holds them
        # for the gateway, which (answering after they connected) has
        # accepted none of them, and closed none.
        waitingBefore = acceptQueue(port)
        for number in range(1000, 1020):
            sock = connectAndSend(port, b"first-%d\n" % number)
            assert sock is not None
            clients.append((sock, number))
        assert acceptQueue(port) == waitingBefore + 20
        later = listener()
        assert (later["accepted"], later["refused"]) == (
            atLimitLines["accepted"],
            atLimitLines["refused"],
        )
        assert not [n for s, n in clients if closedByGateway(s)]

        # Those accepted published their first line (the gateway delivered
        # one record per connection it accepted); the others wait.
        waitFor(
            lambda: (s := snapshot())["producer"]["delivered"] == s["listeners"][0]["accepted"],
            DEADLINE,
            "a record delivered per accepted connection",
        )
        size = TopicSize(kafka.bootstrap, topic)
        first = consume(kafka.bootstrap, topic, size(), timeout=60)
        accepted = distinctClients(first)
        assert len(first) == len(accepted) == atLimitLines["accepted"]
        assert LIMIT - 40 < len(accepted) < LIMIT
        waiting = len(clients) - len(accepted)
        assert waiting >= 20

        # Every client sends again; the gateway still serves those it holds.
        for sock, number in clients:
            sock.sendall(b"second-%d\n" % number)
        # 40 accepted clients leave (the oldest were accepted first): 40
        # waiting ones are accepted, with both their lines; none is refused
        # for descriptors (an accept batch larger than the room freed so far
        # would refuse, and lose, the ones over it).
        leaving = {number for _, number in clients[:40]}
        assert leaving <= {int(n) for n in accepted}

        before = listener()
        for sock, _number in clients[:40]:
            sock.close()
        clients = clients[40:]
        waitFor(
            lambda: listener()["accepted"] >= before["accepted"] + min(40, waiting),
            60.0,
            "the waiting clients accepted",
        )
        refused = listener()["refused"].get("descriptors", 0) - before["refused"].get(
            "descriptors", 0
        )
        assert refused == 0, (
            f"{refused} waiting clients were refused for descriptors while 40 "
            "closes freed the room: their lines are lost"
        )
        expected = 2 * len(accepted) + 2 * min(40, waiting)
        waitFor(
            lambda: snapshot()["producer"]["delivered"] == expected,
            DEADLINE,
            f"{expected} records delivered",
        )
        assert size() == expected, gateway.log()[-6000:]
        size.close()
        records = consume(kafka.bootstrap, topic, expected, timeout=60)
        values = [record.value for record in records]
        assert len(values) == len(set(values)), "a line arrived twice"
        assert len(values) == expected
        newlyAccepted = distinctClients(records) - accepted
        assert len(newlyAccepted) == min(40, waiting)
        for number in newlyAccepted:
            assert {b"first-" + number, b"second-" + number} <= set(values)
        assert gateway.process.poll() is None
    finally:
        for sock, _ in clients + http:
            sock.close()
        assert gateway.stop() in CLEAN_EXIT, gateway.log()
