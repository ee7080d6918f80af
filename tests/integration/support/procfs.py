# -*- test-case-name: tests.integration.test_connections_kafka -*-
"""
What the operating system says about a gateway process: the sockets it holds
(C{/proc/PID/fd}, C{/proc/net/tcp}, C{ss}) and its resident memory
(C{/proc/PID/status}), read the same way by every test that counts them.
"""

import os
import re
import subprocess
import threading
import time

__all__ = [
    "MemorySampler",
    "acceptQueue",
    "acceptedSockets",
    "pendingSignals",
    "stopped",
    "socketInodes",
    "socketsTo",
    "tcpConnections",
    "unreadBytes",
    "vmRSS",
]

#: C{ss} writes a timer as C{1min4sec}, C{32sec}, C{450ms}, and a whole
#: minute as C{1min} alone.
_KEEPALIVE_TIMER = re.compile(
    r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec|\d+ms)?,\d+\)"
)
_INODE = re.compile(r"\bino:(\d+)")
#: C{st} of an established connection in C{/proc/net/tcp}.
_ESTABLISHED = "01"
#: C{st} of a listening socket.
_LISTEN = "0A"


def socketInodes(pid):
    """
    :return: the inodes (as strings) of the sockets process C{pid} holds.
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcpConnections():
    """
    The kernel's TCP sockets, IPv4 and IPv6, from C{/proc/net/tcp*}.

    :return: for each, C{(local port, remote port, state, send queue,
        receive queue, inode)}; the queues in bytes, the state as the
        kernel's two hex digits.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                tx, rx = (int(x, 16) for x in fields[4].split(":"))
                yield local, remote, fields[3], tx, rx, fields[9]


def socketsTo(pid, port):
    """
    Count the established TCP connections process C{pid} holds to C{port} on
    loopback, from the operating system's own tables.
    """
    inodes = socketInodes(pid)
    # Distinct inodes: /proc/net/tcp is read in pieces, and while
    # connections come and go (a churn of clients) a socket can be listed
    # twice in one read.
    return len(
        {
            inode
            for _, remote, state, _, _, inode in tcpConnections()
            if state == _ESTABLISHED and remote == port and inode in inodes
        }
    )


def unreadBytes(gatewayPid, clients):
    """
    Bytes the clients wrote that the gateway has not read yet: the clients'
    send queues plus the gateway's receive queues, from C{/proc/net/tcp}.

    :param clients: clients (with a C{port}: their local port) whose
        connections to count.
    """
    ports = {c.port for c in clients}
    total = 0
    for local, remote, _, tx, rx, _ in tcpConnections():
        if local in ports:  # the client's end: not yet acked
            total += tx
        elif remote in ports:  # the gateway's end: not yet read
            total += rx
    return total


def acceptQueue(port):
    """
    Connections the kernel has completed on a listening C{port} that nobody
    has accepted yet (a listening socket's receive queue in
    C{/proc/net/tcp} is its accept queue).

    :return: their number, or L{None} if nothing listens on C{port}.
    """
    for local, _, state, _, rx, _ in tcpConnections():
        if state == _LISTEN and local == port:
            return rx
    return None


def pendingSignals(pid):
    """
    The signals sent to process C{pid} that it has not handled yet (held
    while it is stopped, for example), from C{ShdPnd} and C{SigPnd} in
    C{/proc/PID/status}.

    :return: the set of signal numbers.
    """
    mask = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("ShdPnd:", "SigPnd:")):
                mask |= int(line.split()[1], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


def stopped(pid):
    """
    :return: whether every thread of process C{pid} is stopped (state C{T}
        in C{/proc/PID/task/*/stat}): none of them can take a signal until
        it runs again, so one sent now stays pending.
    """
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:
            continue  # a thread that has just exited
    return bool(states) and all(state == "T" for state in states)


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
    owned = socketInodes(pid)
    timers = []
    for line in output.splitlines():
        inode = _INODE.search(line)
        if inode is None or inode[1] not in owned:
            continue
        timer = _KEEPALIVE_TIMER.search(line)
        timers.append(None if timer is None else int(timer[1] or 0) * 60 + int(timer[2] or 0))
    return timers


def vmRSS(pid):
    """
    :return: the resident set size of a process in bytes.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class MemorySampler:
    """
    Sample a process's VmRSS every C{interval} seconds on a thread.

    :ivar samples: C{(seconds since start, bytes)}.
    """

    def __init__(self, pid, interval=0.5):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def _run(self):
        start = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - start, vmRSS(self.pid)))
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def peak(self):
        return max(rss for _, rss in self.samples)
