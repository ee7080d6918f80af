# -*- test-case-name: tests.integration.test_faults -*-
"""
Clients writing sequence-numbered lines from one background thread without
ever blocking, and what the records in Kafka (or a spool file) say about
each connection's sequence numbers.

Every payload is C{b"CCC SSSSSSSSS xxx..."}: the client's number and the
message's sequence number on its connection, fixed width, so what a client
has fully written is a plain division and what Kafka holds can be checked
per connection: each sequence once, in order, none missing.
"""

import contextlib
import json
import select
import socket
import threading
import time
from base64 import b64decode
from collections import Counter, defaultdict

from tests.support.waiting import waitFor

__all__ = ["Clients", "Sequences", "assertDelivered", "parse", "readSpool"]


def parse(value):
    """
    :return: C{(client, sequence)} of a payload.
    """
    client, sequence, _ = value.split(b" ", 2)
    return int(client), int(sequence)


def readSpool(path):
    """
    :return: the values of a spool file (JSON lines, base64 values), in
        order.
    """
    with open(path, encoding="utf-8") as f:
        return [b64decode(json.loads(line)["value"]) for line in f if line.strip()]


class Sequences:
    """
    What a set of records says about each connection's sequence numbers.

    :ivar byClient: client number to its sequence numbers in the order read
        (per partition, that is offset order).
    :ivar peers: client number to the set of C{gateway-peer} headers seen.
    :ivar keys: client number to the set of record keys seen.
    :ivar records: the records.
    """

    def __init__(self, records=(), values=()):
        self.byClient = defaultdict(list)
        self.peers = defaultdict(set)
        self.keys = defaultdict(set)
        self.records = list(records)
        for record in self.records:
            client, sequence = parse(record.value)
            self.byClient[client].append(sequence)
            self.peers[client].add(dict(record.headers).get("gateway-peer"))
            self.keys[client].add(record.key)
        for value in values:
            client, sequence = parse(value)
            self.byClient[client].append(sequence)

    def total(self):
        return sum(len(s) for s in self.byClient.values())

    def duplicates(self):
        """
        :return: C{{client: {sequence: extra copies}}} for every sequence
            number seen more than once.
        """
        found = {}
        for client, sequences in self.byClient.items():
            extra = {s: n - 1 for s, n in Counter(sequences).items() if n > 1}
            if extra:
                found[client] = extra
        return found

    def missing(self, expected):
        """
        :param expected: client number to how many messages it sent (every
            sequence below is expected).
        :return: C{{client: sorted missing sequences}} (at most 20 each).
        """
        found = {}
        for client, count in expected.items():
            have = set(self.byClient.get(client, ()))
            lost = [s for s in range(count) if s not in have]
            if lost:
                found[client] = lost[:20] + (["..."] if len(lost) > 20 else [])
        return found

    def unexpected(self, expected):
        """
        :return: C{{client: sequences not in 0..expected-1}}.
        """
        found = {}
        for client, sequences in self.byClient.items():
            extra = sorted({s for s in sequences if s >= expected.get(client, 0)})
            if extra:
                found[client] = extra[:20]
        return found

    def outOfOrder(self):
        """
        :return: C{{client: count}} of records whose sequence number is not
            above every one before it on the connection (duplicates
            included).
        """
        found = {}
        for client, sequences in self.byClient.items():
            count, top = 0, -1
            for s in sequences:
                if s <= top:
                    count += 1
                top = max(top, s)
            if count:
                found[client] = count
        return found

    def prefixes(self):
        """
        :return: C{{client: k}} if every client's distinct sequence numbers
            are exactly 0..k-1.
        :raises AssertionError: naming the holes otherwise.
        """
        found, holes = {}, {}
        for client, sequences in self.byClient.items():
            distinct = set(sequences)
            k = max(distinct) + 1
            if len(distinct) != k:
                holes[client] = sorted(set(range(k)) - distinct)[:20]
            found[client] = k
        assert not holes, f"holes in the sequence numbers: {holes}"
        return found

    def checkConnections(self):
        """
        Every client's records carry one key (one connection, one partition)
        and one C{gateway-peer} header.
        """
        self.checkKeys()
        self.checkPeers()

    def checkKeys(self):
        keys = {c: k for c, k in self.keys.items() if len(k) != 1}
        assert not keys, f"clients with several keys: {keys}"

    def checkPeers(self):
        several = {c: p for c, p in self.peers.items() if len(p) != 1}
        assert not several, f"clients seen from several peers: {several}"


def assertDelivered(records, sent, headers=True, duplicates=False):
    """
    Kafka holds each client's messages 0..sent-1, in order, each
    connection's on one partition (one key): exactly once, or (with
    C{duplicates}) at least once, copies only ever after the original.

    :param records: every record of the topic.
    :param sent: client number to messages fully written.
    :param headers: whether records carry the gateway's headers (one
        C{gateway-peer} per client), or none at all (pykafka).
    :param duplicates: tolerate duplicated records (and count them).
    :return: the L{Sequences} and the number of extra copies.
    """
    sequences = Sequences(records)
    sequences.checkKeys()
    if headers:
        sequences.checkPeers()
    else:
        assert not any(r.headers for r in records), "records with headers"
    extra = sequences.duplicates()
    copies = sum(n for d in extra.values() for n in d.values())
    problems = {
        "missing": sequences.missing(sent),
        "unexpected": sequences.unexpected(sent),
    }
    if duplicates:
        problems["out of order"] = {
            client: True
            for client, seqs in sequences.byClient.items()
            if list(dict.fromkeys(seqs)) != sorted(set(seqs))
        }
    else:
        problems["duplicated"] = extra
        problems["out of order"] = sequences.outOfOrder()
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, (
        f"not delivered {'at least' if duplicates else 'exactly'} once in order: {problems}"
    )
    assert set(sequences.byClient) == {c for c, n in sent.items() if n}
    assert len(records) == sum(sent.values()) + copies
    return sequences, copies


class _Client:
    __slots__ = (
        "number",
        "sock",
        "port",
        "generating",
        "generated",
        "pending",
        "offset",
        "flushedBase",
        "error",
        "lastProgress",
        "blocked",
        "closed",
    )

    def __init__(self, number, sock):
        self.number = number
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.generating = True
        self.generated = 0  # messages generated (written or pending)
        self.pending = b""  # the batch being written
        self.offset = 0  # bytes of the batch written
        self.flushedBase = 0  # messages before the batch
        self.error = None
        self.lastProgress = time.monotonic()
        self.blocked = False  # the last send wrote nothing
        self.closed = False


class Clients:
    """
    C{count} connections to a gateway's C{lines} listener, written to by one
    background thread with non-blocking sends, so a paused gateway shows as
    sends that make no progress (TCP flow control) instead of a hung test.

    :ivar size: bytes per message, newline excluded.
    :ivar rate: messages per second per client, or L{None}: as fast as the
        sockets take them.
    """

    BATCH = 256

    def __init__(self, gateway, count, size=100, rate=None, listener="lines"):
        if size < 16:
            raise ValueError("messages need 16 bytes at least")
        self.size = size
        self.rate = rate
        self.clients = []
        for number in range(count):
            sock = gateway.connect(listener)
            sock.setblocking(False)
            self.clients.append(_Client(number, sock))
        self._fill = b"x" * (size - 14)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._started = None

    def message(self, client, sequence):
        return b"%03d %09d %s\n" % (client, sequence, self._fill)

    def start(self):
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fault-clients", daemon=True)
        self._thread.start()
        return self

    def _batch(self, client, now):
        if self.rate is None:
            count = self.BATCH
        else:
            count = min(int(self.rate * (now - self._started)) - client.generated, self.BATCH)
        if count <= 0:
            return
        first = client.generated
        client.flushedBase = first
        client.pending = b"".join(
            self.message(client.number, s) for s in range(first, first + count)
        )
        client.offset = 0
        client.generated += count

    def _run(self):
        poller = select.poll()
        registered = set()
        while not self._stop.is_set():
            now = time.monotonic()
            waiting = []
            busy = False
            for client in self.clients:
                if client.error is not None or client.closed:
                    continue
                with self._lock:
                    if not client.pending and client.generating:
                        self._batch(client, now)
                    if not client.pending:
                        continue
                    try:
                        n = client.sock.send(memoryview(client.pending)[client.offset :])
                    except BlockingIOError:
                        n = 0
                    except OSError as e:
                        client.error = e
                        continue
                    if n:
                        client.offset += n
                        client.lastProgress = now
                        client.blocked = False
                        busy = True
                        if client.offset == len(client.pending):
                            client.pending, client.offset = b"", 0
                            client.flushedBase = client.generated
                    else:
                        client.blocked = True
                        waiting.append(client.sock.fileno())
            if busy and self.rate is None:
                continue
            for fd in set(waiting) - registered:
                poller.register(fd, select.POLLOUT)
                registered.add(fd)
            for fd in registered - set(waiting):
                poller.unregister(fd)
                registered.discard(fd)
            if registered:
                poller.poll(5)
            else:
                time.sleep(0.005)

    def sent(self, client=None):
        """
        :return: messages fully written (their newline included) by one
            client, or a dict for all of them.
        """
        if client is None:
            return {c.number: self.sent(c) for c in self.clients}
        with self._lock:
            return client.flushedBase + client.offset // (self.size + 1)

    def totalSent(self):
        return sum(self.sent().values())

    def bytesSent(self):
        return self.totalSent() * (self.size + 1)

    def stalled(self, seconds):
        """
        :return: whether every live client has a write waiting that made no
            progress for C{seconds}.
        """
        now = time.monotonic()
        live = [c for c in self.clients if c.error is None and not c.closed]
        return bool(live) and all(c.blocked and now - c.lastProgress >= seconds for c in live)

    def finish(self, numbers=None, timeout=60.0):
        """
        Stop generating messages on some clients (all by default) and wait
        until what they had begun is written.  Their connections stay open.

        :return: C{{client: messages written}} for those clients.
        """
        chosen = [c for c in self.clients if numbers is None or c.number in numbers]
        with self._lock:
            for client in chosen:
                client.generating = False
        waitFor(
            lambda: all(not c.pending or c.error for c in chosen),
            timeout,
            "the clients to write what they had begun",
        )
        errors = {c.number: c.error for c in chosen if c.error}
        assert not errors, f"clients failed: {errors}"
        return {c.number: self.sent(c) for c in chosen}

    def close(self):
        """
        Stop the thread and close every connection (half-close first, so the
        gateway reads everything before it sees the end).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for client in self.clients:
            if not client.closed:
                with contextlib.suppress(OSError):
                    client.sock.shutdown(socket.SHUT_WR)
                client.sock.close()
                client.closed = True

    def errors(self):
        return {c.number: c.error for c in self.clients if c.error is not None}
