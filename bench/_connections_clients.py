"""
The client side of C{bench/connections.py}: spawned processes, each holding
at most C{perProcess} sockets (under its own descriptor limit), bound to
loopback source addresses 127.0.0.1, 127.0.0.2, ... (one source address
has only C{ip_local_port_range} ports, about 28,000, to reach one
destination), connecting with non-blocking sockets and a selector.

Connects are paced by the parent: every process together may start at most
C{allowed} connects (shared counter C{issued}); the parent raises
C{allowed} as the gateway accepts (see L{bench.connections}).
"""

import errno
import multiprocessing
import resource
import selectors
import socket
import struct
import time
from collections import Counter, deque

#: Linux's IP_BIND_ADDRESS_NO_PORT: bind() to an address picks the port at
#: connect() time, from the ports free for that destination.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: connect() failures worth trying again.
RETRYABLE = {
    errno.ECONNREFUSED,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.EAGAIN,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EADDRNOTAVAIL,
}
#: A connect given up by the client after C{synTimeout} without an answer
#: (its SYN dropped: the accept queue it hashed to is full).
NO_ANSWER = "no SYN-ACK"


def raiseNoFile():
    """
    Raise this process's soft C{RLIMIT_NOFILE} to the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def plan(connections, perProcess, perSource):
    """
    How many client processes and source addresses a run needs.

    :return: C{(processes, sources)}.
    """
    return (max(1, -(-connections // perProcess)), max(1, -(-connections // perSource)))


class _Credits:
    """
    The connects this process may start, shared with the other client
    processes; and its count of connects done, read by the parent.
    """

    def __init__(self, issued, allowed, done, number):
        self.issued, self.allowed = issued, allowed
        self.done, self.number = done, number

    def take(self):
        with self.issued.get_lock():
            if self.allowed is None or self.issued.value < self.allowed.value:
                self.issued.value += 1
                return True
        return False

    def giveBack(self):
        # A failed connect will never be accepted: its credit is free again.
        with self.issued.get_lock():
            self.issued.value -= 1

    def connected(self, count):
        self.done[self.number] = count


def _connectAll(port, dest, targets, window, retries, deadline, synTimeout, credits):
    """
    Connect every target, at most C{window} in flight; a connect without an
    answer after C{synTimeout} seconds is closed and tried again.

    :param targets: C{(index, sourceAddress)} pairs.
    :return: C{(sockets by index, failures Counter, retries Counter)}.
    """
    selector = selectors.DefaultSelector()
    pending = deque((j, src, 0) for j, src in targets)
    started = deque()  # (time, socket), oldest first
    inflight = {}  # socket -> (j, src, attempt)
    connected = {}
    failed = Counter()
    retried = Counter()

    def fail(j, src, attempt, code):
        credits.giveBack()
        name = code if isinstance(code, str) else errno.errorcode.get(code, str(code))
        if (code == NO_ANSWER or code in RETRYABLE) and attempt < retries:
            retried[name] += 1
            pending.append((j, src, attempt + 1))
        else:
            failed[name] += 1

    def finish(sock):
        selector.unregister(sock)
        return inflight.pop(sock)

    while pending or inflight:
        now = time.monotonic()
        if now > deadline:
            left = len(inflight) + len(pending)
            for sock in list(inflight):
                finish(sock)
                sock.close()
            if left:
                failed["gave up (connect timeout)"] += left
            break
        while started and started[0][0] + synTimeout < now:
            _, sock = started.popleft()
            if sock in inflight:
                j, src, attempt = finish(sock)
                sock.close()
                fail(j, src, attempt, NO_ANSWER)
        while pending and len(inflight) < window:
            if not credits.take():
                break
            j, src, attempt = pending.popleft()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((src, 0))
                code = sock.connect_ex((dest, port))
            except OSError as e:
                sock.close()
                fail(j, src, attempt, e.errno)
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    break
                continue
            if code == 0:
                connected[j] = sock
                credits.connected(len(connected))
            elif code == errno.EINPROGRESS:
                selector.register(sock, selectors.EVENT_WRITE)
                inflight[sock] = (j, src, attempt)
                started.append((now, sock))
            else:
                sock.close()
                fail(j, src, attempt, code)
        # Waiting for credits: the parent raises them every 5 ms.
        for key, _ in selector.select(timeout=0.004 if pending else 0.1):
            sock = key.fileobj
            j, src, attempt = finish(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                connected[j] = sock
                credits.connected(len(connected))
            else:
                sock.close()
                fail(j, src, attempt, code)
    selector.close()
    return connected, failed, retried


def _dropClosed(connected):
    """
    Forget (and close) the sockets the gateway closed: C{recv} peeks at
    end of file or a reset.

    :return: how many there were.
    """
    closed = []
    for j, sock in connected.items():
        try:
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                closed.append(j)
        except BlockingIOError:
            pass
        except OSError:
            closed.append(j)
    for j in closed:
        connected.pop(j).close()
    return len(closed)


def clientProcess(number, port, dest, targets, settings, credits, commands, results):
    """
    One client process: connect its share, then obey the parent's commands
    (C{send}, C{release N}, C{close}), answering each on C{results}.

    :param settings: C{(window, retries, timeout, synTimeout)}.
    """
    window, retries, timeout, synTimeout = settings
    connected = {}
    try:
        raiseNoFile()
        start = time.monotonic()
        connected, failed, retried = _connectAll(
            port,
            dest,
            targets,
            window,
            retries,
            start + timeout,
            synTimeout,
            credits,
        )
        end = time.monotonic()
        sources = Counter(s.getsockname()[0] for s in connected.values())
        results.put(
            (
                "connected",
                number,
                {
                    "start": time.time() - (end - start),
                    "seconds": end - start,
                    "held": len(connected),
                    "failed": dict(failed),
                    "retried": dict(retried),
                    "sources": dict(sources),
                    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
                    "cpu": time.process_time(),
                },
            )
        )
        while True:
            command, arg = commands.get()
            if command == "send":
                errors = 0
                sent = []
                closed = _dropClosed(connected)
                for j, sock in connected.items():
                    try:
                        sock.send(b"client-%d-conn-%d\n" % (number, j))
                        sent.append(j)
                    except OSError:
                        errors += 1
                results.put(
                    ("sent", number, {"sent": sent, "errors": errors, "closedByPeer": closed})
                )
            elif command == "release":
                # The oldest connections: the first the gateway accepted.
                for j in sorted(connected)[:arg]:
                    connected.pop(j).close()
                credits.connected(len(connected))
                results.put(("released", number, {"held": len(connected)}))
            elif command == "close":
                break
    except BaseException as e:
        results.put(("error", number, f"{type(e).__name__}: {e}"))
        raise
    finally:
        # Reset rather than close: no TIME-WAIT left holding 100,000 ports
        # of 127.0.0.x for a minute (Kafka, tests and the next run pick
        # free ports there).
        linger = struct.pack("ii", 1, 0)
        for sock in connected.values():
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            except OSError:
                pass
            sock.close()
        results.put(("closed", number, {}))


class Clients:
    """
    The client processes of one run.

    :ivar issued: connects started (and not failed) by every process.
    :ivar allowed: how many they may start (raised by the parent), or
        L{None}: no pacing.
    :ivar done: connects done, one slot per process.
    """

    def __init__(
        self,
        port,
        connections,
        count,
        sources,
        window,
        retries,
        timeout,
        synTimeout,
        paced,
        dest="127.0.0.1",
    ):
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        self.issued = context.Value("q", 0)
        self.allowed = context.Value("q", 0, lock=False) if paced else None
        self.addresses = [f"127.0.0.{i + 1}" for i in range(sources)]
        self.done = context.Array("q", count, lock=False)
        self.processes = []
        self.commands = []
        for k in range(count):
            mine = range(k, connections, count)
            targets = [(j, self.addresses[j % sources]) for j in mine]
            commands = context.Queue()
            process = context.Process(
                target=clientProcess,
                args=(
                    k,
                    port,
                    dest,
                    targets,
                    (window, retries, timeout, synTimeout),
                    _Credits(self.issued, self.allowed, self.done, k),
                    commands,
                    self.results,
                ),
                daemon=True,
            )
            self.processes.append(process)
            self.commands.append(commands)

    def start(self):
        for process in self.processes:
            process.start()

    def connectsDone(self):
        return sum(self.done)

    def gather(self, state, timeout):
        """
        One answer of every process, by process number.
        """
        out = {}
        deadline = time.monotonic() + timeout
        while len(out) < len(self.processes):
            got, number, detail = self.results.get(timeout=max(1.0, deadline - time.monotonic()))
            if got == "error":
                raise RuntimeError(f"client process {number} failed: {detail}")
            if got != state:
                raise RuntimeError(f"client process {number}: {got}, not {state}")
            out[number] = detail
        return out

    def command(self, command, arg=None, state=None, timeout=120.0):
        for queue in self.commands:
            queue.put((command, arg))
        return self.gather(state, timeout) if state else None

    def stop(self):
        for queue in self.commands:
            try:
                queue.put(("close", None))
            except (OSError, ValueError):
                pass
        for process in self.processes:
            if process.pid is None:
                continue
            process.join(30)
            if process.is_alive():
                process.terminate()
                process.join()
