# -*- test-case-name: tests.integration.test_connections_kafka -*-
"""
Client connections for the connection-hygiene tests: plain sockets from a
chosen loopback source address, a non-blocking opener for thousands of them
at once, what a client can observe of being closed, what the gateway holds
(C{/status.json}, C{/readyz}, the sockets its process owns) and what Kafka
holds.
"""

import errno
import json
import os
import re
import resource
import select
import selectors
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from devkafka import consume
from tests.integration.faults import waitFor, waitForSize

__all__ = [
    "acceptedSockets",
    "byPeer",
    "closeAll",
    "closedBy",
    "connectFrom",
    "listenerStatus",
    "openMany",
    "peerName",
    "proxyV1",
    "proxyV2",
    "raiseOwnDescriptorLimit",
    "readyz",
    "records",
    "refusedCounts",
    "sendUntilClosed",
    "settledOpen",
    "status",
    "stillOpen",
    "waitForOpen",
]


# Clients


def connectFrom(port, source=None, host="127.0.0.1", timeout=10.0):
    """
    Connect to a gateway listener, optionally from a given source address
    (any 127.0.0.0/8 address is local on Linux).

    :return: the connected socket, Nagle off, blocking with C{timeout}.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source is not None:
            sock.bind((source, 0))
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def openMany(port, count, sources, payload, timeout=30.0, window=500):
    """
    Open C{count} connections at once without a thread per connection:
    non-blocking connects, at most C{window} in progress, the source
    addresses taken in turn; each sends C{payload(n)} as soon as it is
    connected.

    :param sources: source addresses to bind, used round-robin.
    :param payload: connection number to the bytes it sends (one write).
    :return: the connected sockets, in connection-number order.
    :raises AssertionError: if a connect fails or does not complete in
        C{timeout} seconds (the sockets opened so far are closed).
    """
    sockets = [None] * count
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    started = done = 0
    try:
        while done < count:
            while started < count and started - done < window:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets[started] = sock
                sock.setblocking(False)
                sock.bind((sources[started % len(sources)], 0))
                code = sock.connect_ex(("127.0.0.1", port))
                if code not in (0, errno.EINPROGRESS):
                    raise AssertionError(f"connect {started}: {errno.errorcode[code]}")
                selector.register(sock, selectors.EVENT_WRITE, started)
                started += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{done} of {count} connections made in {timeout:g} s")
            for key, _ in selector.select(min(remaining, 1.0)):
                sock, number = key.fileobj, key.data
                selector.unregister(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise AssertionError(f"connect {number}: {errno.errorcode[code]}")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                data = payload(number)
                if sock.send(data) != len(data):
                    raise AssertionError(f"connection {number}: short write")
                done += 1
    except BaseException:
        closeAll(sock for sock in sockets if sock is not None)
        raise
    finally:
        selector.close()
    return sockets


def closeAll(sockets):
    """
    Close every socket (closing one twice is harmless).
    """
    for sock in sockets:
        sock.close()


def peerName(sock):
    """
    :return: how the gateway names this client: C{host:port} of its local
        end.
    """
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def raiseOwnDescriptorLimit():
    """
    Raise this process's soft C{RLIMIT_NOFILE} to its hard limit.

    :return: the soft limit now.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def proxyV1(source, sourcePort, destination="127.0.0.1", destinationPort=9000):
    """
    :return: a PROXY protocol v1 header for a TCP4 connection.
    """
    return b"PROXY TCP4 %s %s %d %d\r\n" % (
        source.encode(),
        destination.encode(),
        sourcePort,
        destinationPort,
    )


def proxyV2(source, sourcePort, destination="127.0.0.1", destinationPort=9000):
    """
    :return: a PROXY protocol v2 header (binary) for a TCP4 connection
        (version 2, command PROXY, AF_INET + STREAM).
    """
    addresses = (
        socket.inet_aton(source)
        + socket.inet_aton(destination)
        + struct.pack("!HH", sourcePort, destinationPort)
    )
    return (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + bytes([0x21, 0x11])
        + struct.pack("!H", len(addresses))
        + addresses
    )


# What a client sees


def _closedNow(sock):
    """
    Read without waiting: L{True} if the peer closed (EOF) or reset.
    """
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        data = sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return True
    if data:
        raise AssertionError(f"the gateway wrote {data!r} to a client")
    return True


def stillOpen(sock):
    """
    :return: whether the gateway has not closed this connection (yet).
    """
    return not _closedNow(sock)


def closedBy(sockets, timeout, expect=None, settle=0.5):
    """
    Wait for the gateway to close some of C{sockets}.

    :param timeout: seconds to wait at most.
    :param expect: stop waiting once this many are closed, and watch
        C{settle} seconds more for others closing (L{None}: wait the whole
        C{timeout}).
    :return: the set of indexes (into C{sockets}) whose connection the
        gateway closed (EOF or reset) by then.
    """
    closed = set()
    deadline = time.monotonic() + timeout
    while True:
        pending = [i for i in range(len(sockets)) if i not in closed]
        if expect is not None and len(closed) >= expect:
            deadline = min(deadline, time.monotonic() + settle)
            expect = None
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0:
            return closed
        readable, _, _ = select.select([sockets[i] for i in pending], [], [], min(remaining, 0.1))
        for i in pending:
            if sockets[i] in readable and _closedNow(sockets[i]):
                closed.add(i)


def sendUntilClosed(sock, interval, limit):
    """
    Send numbered lines (C{busy NNNNNN}) every C{interval} seconds until the
    gateway closes the connection or C{limit} seconds pass; no line is
    written once the close has been seen.

    :return: C{(lines whose write returned, seconds from the start to each
        of those writes, seconds until the close was seen or None)}.
    """
    sent, times = [], []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < limit:
        if not stillOpen(sock):
            return sent, times, elapsed
        line = b"busy %06d" % len(sent)
        try:
            sock.sendall(line + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            return sent, times, time.monotonic() - started
        sent.append(line)
        times.append(elapsed)
        time.sleep(interval)
    return sent, times, None


# What the gateway holds


def _get(process, path, timeout=5.0):
    url = f"http://127.0.0.1:{process.httpPort}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def status(process):
    """
    :return: the gateway's C{/status.json}, parsed.
    """
    code, body = _get(process, "/status.json")
    assert code == 200, (code, body)
    return json.loads(body)


def readyz(process):
    """
    :return: the status code of the gateway's C{/readyz}.
    """
    return _get(process, "/readyz")[0]


def listenerStatus(process, name):
    """
    :return: one listener's entry of C{/status.json}.
    """
    (entry,) = [l for l in status(process)["listeners"] if l["name"] == name]
    return entry


def refusedCounts(process):
    """
    :return: C{gateway_connections_refused_total} from C{/metrics} (read
        with C{prometheus_client}'s parser), by C{(listener, reason)}.
    """
    code, body = _get(process, "/metrics")
    assert code == 200, (code, body)
    return {
        (sample.labels["listener"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "gateway_connections_refused_total"
    }


def waitForOpen(process, listener, expected, timeout=10.0):
    """
    Wait until the gateway counts C{expected} open connections on a
    listener (a close counts once the gateway has seen it).

    :return: the listener's C{/status.json} entry then.
    """
    seen = []

    def reached():
        seen[:] = [listenerStatus(process, listener)]
        return seen[0]["connections"] == expected

    waitFor(
        reached, timeout, lambda: f"{expected} open connections (last: {seen[0]['connections']})"
    )
    return seen[0]


def settledOpen(process, listener, quiet=1.0, timeout=20.0):
    """
    Wait until a listener's open connections have not changed for C{quiet}
    seconds.

    :return: that count.
    """
    seen = [None, time.monotonic()]

    def settled():
        now = listenerStatus(process, listener)["connections"]
        if now != seen[0]:
            seen[:] = [now, time.monotonic()]
        return time.monotonic() - seen[1] >= quiet

    waitFor(settled, timeout, lambda: f"open connections to settle (last: {seen[0]})")
    return seen[0]


_KEEPALIVE_TIMER = re.compile(r"timer:\(keepalive,(?:(\d+)min)?(\d+)(?:\.\d+)?sec,\d+\)")
_INODE = re.compile(r"\bino:(\d+)")


def acceptedSockets(pid, port):
    """
    The established connections process C{pid} holds on its listening
    C{port}, from the kernel's tables (C{ss}) and the process's descriptors
    (C{/proc/PID/fd}).

    :return: for each, the seconds left on its keepalive timer, or L{None}
        when it has no keepalive timer.
    """
    output = subprocess.run(
        ["ss", "-tnoeH", "state", "established", f"( sport = :{port} )"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    owned = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            owned.add(target[8:-1])
    timers = []
    for line in output.splitlines():
        inode = _INODE.search(line)
        if inode is None or inode[1] not in owned:
            continue
        timer = _KEEPALIVE_TIMER.search(line)
        timers.append(None if timer is None else int(timer[1] or 0) * 60 + int(timer[2]))
    return timers


# What Kafka holds


def records(kafka, topic, count, timeout=30.0):
    """
    Wait until C{topic} holds exactly C{count} records (and no more arrive
    for a second), then read them back.
    """
    size = waitForSize(kafka.bootstrap, topic, count, timeout)
    assert size == count, f"{size} records in {topic}, expected {count}"
    found = consume(kafka.bootstrap, topic, count=count, timeout=timeout)
    assert len(found) == count
    return found


def byPeer(found):
    """
    :return: C{{gateway-peer header: [values in order]}}.
    """
    peers = {}
    for record in found:
        peer = dict(record.headers)["gateway-peer"].decode()
        peers.setdefault(peer, []).append(record.value)
    return peers
