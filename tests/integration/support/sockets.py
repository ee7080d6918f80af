# -*- test-case-name: tests.integration.test_connections_kafka -*-
"""
Client connections to a gateway as plain sockets: from a chosen loopback
source address, thousands at once through a non-blocking opener, and what
a client can observe of being closed.
"""

import errno
import resource
import select
import selectors
import socket
import threading
import time

__all__ = [
    "closeAll",
    "closedBy",
    "closeTimes",
    "connectFrom",
    "openMany",
    "peerName",
    "raiseOwnDescriptorLimit",
    "sendInRandomPieces",
    "SteadySender",
    "sendUntilClosed",
    "stillOpen",
]


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


def closeTimes(sockets, timeout):
    """
    Wait until the gateway has closed every one of C{sockets}.

    :return: for each, in order, C{time.time()} read just after its close
        was seen: never earlier than the gateway's close, whatever delays
        this process.  C{time.time} is the clock Twisted's reactor runs its
        timers on.
    :raises AssertionError: if some are still open after C{timeout}
        seconds.
    """
    seen = [None] * len(sockets)
    deadline = time.monotonic() + timeout
    while None in seen:
        pending = [i for i, when in enumerate(seen) if when is None]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connections {pending} still open after {timeout:g} s")
        readable, _, _ = select.select([sockets[i] for i in pending], [], [], min(remaining, 0.1))
        for i in pending:
            if sockets[i] in readable and _closedNow(sockets[i]):
                seen[i] = time.time()
    return seen


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


def sendInRandomPieces(sock, data, rng):
    """
    Write C{data} cut at random byte boundaries, with an occasional pause so
    the pieces reach the gateway as separate reads.
    """
    position = 0
    while position < len(data):
        size = rng.choice([1, 2, 3, 7, 50, 500, 4000])
        sock.sendall(data[position : position + size])
        position += size
        if rng.random() < 0.02:
            time.sleep(0.001)


class SteadySender:
    """
    A client writing a numbered line every C{interval} seconds on a thread
    of its own, so its writes do not wait for what the test does meanwhile
    (HTTP requests, selects).  It stops when told to or when the gateway
    closes the connection.

    :ivar sock: the connected socket.
    :ivar sent: the lines whose write returned, in order.
    :ivar error: the error that ended the writes, or L{None}.
    """

    def __init__(self, sock, prefix, interval):
        """
        :param prefix: the start of every line (the line number follows).
        """
        self.sock = sock
        self.prefix = prefix
        self.interval = interval
        self.sent = []
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        """
        Start writing.

        :return: C{self}.
        """
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            line = b"%s %06d" % (self.prefix, len(self.sent))
            try:
                self.sock.sendall(line + b"\n")
            except OSError as e:
                self.error = e
                return
            self.sent.append(line)
            self._stop.wait(self.interval)

    def stop(self):
        """
        Stop writing, and wait until the last write has returned.

        :return: the lines sent.
        """
        self._stop.set()
        self._thread.join()
        return self.sent
