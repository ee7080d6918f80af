"""
The gateway side of C{bench/connections.py}: one C{twistd -n gateway}
(C{--workers 1}: a C{tcp:} listener) or a gateway with C{--workers N}
(C{reuseport:} listeners, one worker process each), its workers' figures
from their C{/status.json} and C{/proc/<pid>}, and the kernel settings the
run relies on.
"""

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from _common import cpuTimes, fdCount, meminfo, processLimit, procStatus, readSysctl

#: A gateway log line: "TIME [namespace#level] text".
_LOG_LINE = re.compile(r"^\S+ \[[^\]]*\] (?P<text>.*)$")
#: The text of a line worker 1 relays from worker K ("[worker-K] " and the
#: worker's own log line).
_RELAYED = re.compile(r"^(?P<worker>\[worker-\d+\] )(?P<line>.*)$")
#: Log lines worth showing.
PROBLEMS = ("#warn]", "#error]", "#critical]", "Traceback", "Unhandled")


def gatewayHelp():
    """
    C{twistd gateway --help}: what this gateway's command line offers.
    """
    from tests.integration.support.process import TWISTD

    return subprocess.run(
        [TWISTD, "gateway", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def freePorts(count, low=20000, high=32000):
    """
    C{count} consecutive TCP ports free on every address, below the
    ephemeral range (so no client connection can be using them).

    :return: the first one.
    """
    for _ in range(200):
        first = random.randrange(low, high - count)
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports in {low}-{high}")


def status(httpPort, timeout=10):
    """
    A worker's C{/status.json}, or L{None} when it does not answer.
    """
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{httpPort}/status.json", timeout=timeout
        ) as response:
            return json.load(response)
    except (OSError, ValueError, http.client.HTTPException):
        return None


def memory(pid):
    """
    A process's RSS and its high-water mark (kB), its descriptors and the
    CPU seconds it has used.
    """
    return {
        "rss": procStatus(pid, "VmRSS"),
        "hwm": procStatus(pid, "VmHWM"),
        "fds": fdCount(pid),
        "cpu": cpuTimes(pid)[1],
    }


def alive(pid):
    """
    Whether C{pid} is a running process (not gone, not a zombie).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Worker:
    """
    One gateway process.

    :ivar index: its worker index, 1 for the process twistd runs.
    :ivar listener: the inode of its listening socket (see
        L{_connections_sockdiag.SockDiag.listeners}).
    """

    def __init__(self, index, pid, httpPort):
        self.index, self.pid, self.httpPort = index, pid, httpPort
        self.listener = None
        self.nofile = processLimit(pid)

    def status(self, timeout=10):
        return status(self.httpPort, timeout)


class Gateway:
    """
    The gateway of one run: C{workers} processes listening on one port.

    :ivar port: the clients' port.
    :ivar workers: L{Worker}s, by index.
    """

    def __init__(self, directory, bootstrap, topic, workers, options=(), extra=()):
        """
        :param options: the listener's options, C{"NAME=VALUE"} strings.
        :param extra: more arguments of C{twistd gateway}.
        """
        from tests.integration.support.process import GatewayProcess

        self.count = workers
        options = f"({','.join(options)})" if options else ""
        if workers == 1:
            listen = f"lines{options}=tcp:0:interface=0.0.0.0"
            http = "tcp:0:interface=127.0.0.1"
            self.port = None
        else:
            self.port = freePorts(1)
            listen = f"lines{options}=reuseport:{self.port}:interface=0.0.0.0"
            self.httpBase = freePorts(workers)
            http = f"tcp:{self.httpBase}:interface=127.0.0.1"
        args = [
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--listen",
            listen,
            "--http",
            http,
            "--health-interval",
            "5",
            *extra,
        ]
        if workers > 1:
            args += ["--workers", str(workers)]
        self.process = GatewayProcess(directory, args)
        self.workers = []

    @property
    def command(self):
        return self.process.command

    def start(self, timeout=120.0):
        """
        Start, and wait until every worker answers C{/status.json} with its
        listener bound.
        """
        self.process.start(listeners=1, timeout=timeout)
        parent = self.process.process.pid
        if self.count == 1:
            self.port = next(iter(self.process.ports.values()))
            ports = {1: self.process.httpPort}
        else:
            ports = {k: self.httpBase + k - 1 for k in range(1, self.count + 1)}
        deadline = time.monotonic() + timeout
        found = {}
        while len(found) < self.count:
            if self.process.process.poll() is not None:
                raise RuntimeError(f"gateway exited\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"workers {sorted(set(ports) - set(found))} did not answer "
                    f"/status.json in {timeout:.0f} s\n{self.log()[-3000:]}"
                )
            for k, httpPort in ports.items():
                if k in found:
                    continue
                snap = status(httpPort, timeout=2)
                if not snap or not snap["listeners"][0].get("address"):
                    continue
                worker = snap.get("worker") or {"index": 1, "pid": parent}
                if worker["index"] != k:
                    raise RuntimeError(
                        f"port {httpPort} answers as worker {worker['index']}, not {k}"
                    )
                found[k] = Worker(k, worker["pid"], httpPort)
            time.sleep(0.2)
        self.workers = [found[k] for k in sorted(found)]
        return self

    @property
    def pids(self):
        return [w.pid for w in self.workers]

    def findListeners(self, diag):
        """
        Which listening socket on the port belongs to which worker.
        """
        from _connections_sockdiag import socketInodes

        listeners = diag.listeners(self.port)
        for worker in self.workers:
            mine = socketInodes(worker.pid) & set(listeners)
            worker.listener = min(mine) if mine else None
        return listeners

    def checkAlive(self):
        if self.process.process.poll() is not None:
            raise RuntimeError(f"gateway exited\n{self.log()[-3000:]}")

    def log(self):
        return self.process.log()

    def stop(self, timeout=120.0):
        """
        SIGTERM to the gateway (the parent drains every worker); then any
        worker still running is stopped by its pid.

        :return: C{(exit code of the parent, workers that had to be stopped)}.
        """
        code = None
        try:
            code = self.process.stop(timeout)
        finally:
            left = [pid for pid in self.pids[1:] if alive(pid)]
            for pid in left:
                _terminate(pid)
        return code, left


def _terminate(pid, grace=10.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def sockstat():
    """
    C{/proc/net/sockstat}'s TCP line: sockets in use, orphans, TIME-WAIT,
    allocated, and C{mem} (pages of socket buffers, against C{tcp_mem}).
    """
    try:
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                return line[4:].strip()
    except OSError:
        pass
    return "?"


#: TCP counters of C{/proc/net/netstat} that say connections were dropped
#: or timed out (system wide: other programs count too).
TCP_COUNTERS = (
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "SyncookiesSent",
    "TCPTimeouts",
    "TCPAbortOnTimeout",
    "TCPAbortOnData",
    "TCPAbortOnClose",
)


def tcpCounters():
    """
    The L{TCP_COUNTERS} now.
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    out = {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            out.update(zip(names.split()[1:], map(int, values.split()[1:])))
    return {name: out.get(name, 0) for name in TCP_COUNTERS}


def softnetDrops():
    """
    Packets dropped because a CPU's input backlog was full
    (C{/proc/net/softnet_stat}, second column, summed over CPUs): on
    loopback every packet goes through it, at most C{netdev_max_backlog}
    waiting per CPU.
    """
    try:
        rows = Path("/proc/net/softnet_stat").read_text().splitlines()
    except OSError:
        return None
    return sum(int(row.split()[1], 16) for row in rows)


def system():
    """
    System-wide figures: slab (socket structures are kernel memory, in no
    RSS), memory available, TCP sockets and counters.
    """
    return {
        "slab": meminfo("Slab"),
        "available": meminfo("MemAvailable"),
        "sockstat": sockstat(),
        "tcp": dict(tcpCounters(), BacklogDrops=softnetDrops()),
    }


def kernelSettings():
    names = [
        "net.ipv4.ip_local_port_range",
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_abort_on_overflow",
        "net.ipv4.tcp_syn_retries",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_max_tw_buckets",
        "net.ipv4.tcp_mem",
        "net.core.netdev_max_backlog",
        "fs.file-max",
        "fs.nr_open",
        "fs.file-nr",
    ]
    return [(name, readSysctl(name)) for name in names]


def logSummary(log):
    """
    Lines, warnings/errors and descriptor-related lines of the gateway's log
    (every worker's: the parent relays its children's).
    """
    from collections import Counter

    lines = log.splitlines()
    problems = [l for l in lines if any(w in l for w in PROBLEMS)]

    def kind(line):
        # The text, and which worker's when relayed.
        match = _LOG_LINE.match(line)
        if not match:
            return line[:90]
        text, worker = match["text"], ""
        relayed = _RELAYED.match(text)
        if relayed:
            worker, inner = relayed["worker"], _LOG_LINE.match(relayed["line"])
            text = inner["text"] if inner else relayed["line"]
        return worker + text.split(" from ")[0][:90]

    about = ("EMFILE", "descriptor", "stopped accepting", "accepting again")
    return {
        "lines": len(lines),
        "problems": Counter(kind(l) for l in problems),
        "problemCount": len(problems),
        "descriptors": Counter(kind(l) for l in lines if any(a in l for a in about)),
    }
