# -*- test-case-name: tests.integration.test_gateway_kafka -*-
"""
Run the gateway the way a user does, as a C{twistd} subprocess, talk to it
with plain blocking sockets, and read what it logged.
"""

import ctypes.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.allocator import PRELOAD
from tests.support.waiting import waitFor

__all__ = [
    "CLEAN_EXIT",
    "TWISTD",
    "GatewayProcess",
    "Gateways",
    "healthChanges",
    "httpGateways",
    "linesGateway",
    "producerStopped",
    "stopGateway",
    "waitForLog",
]

#: twistd stopped by SIGTERM exits by re-raising the signal once it has shut
#: down cleanly (Twisted >= 21.7), so -SIGTERM is a clean exit too.
CLEAN_EXIT = (0, -signal.SIGTERM)

TWISTD = str(Path(sys.executable).with_name("twistd"))
HTTP_LISTENING = re.compile(r"http listening on (?P<host>[\d.]+):(?P<port>\d+)")
LISTENING = re.compile(
    r"listener (?P<name>\S+) \((?P<framing>[^)]+)\) listening on "
    r"(?P<host>[\d.]+):(?P<port>\d+)"
)

HEALTH = re.compile(r"Kafka health (\w+) -> (\w+): ")

#: The environment a gateway starts with unless a test says otherwise: as
#: its launchers start it, on mimalloc where the loader finds it
#: (docs/architecture.md, "The allocator"). The test run's own
#: C{LD_PRELOAD} wins, and a test that wants the system's C{malloc} passes
#: C{LD_PRELOAD=""}.
LAUNCHER_ENV = {"LD_PRELOAD": PRELOAD} if ctypes.util.find_library("mimalloc") else {}


STOPPED = re.compile(
    r"Kafka producer stopped: (\d+) records delivered, (\d+) not delivered "
    r"\((\d+) spooled\), (\d+) dead-lettered"
)


class GatewayProcess:
    """
    A C{twistd -n} gateway started in C{directory}, logging to a file there.

    :ivar ports: listener name to the TCP port it bound.
    :ivar httpPort: the HTTP endpoints' port, once logged (see
        L{waitForHttpPort}).
    """

    def __init__(
        self, directory, args, env=None, tac=None, preexecFn=None, logName="twistd.log", pidfile=""
    ):
        """
        :param preexecFn: called in the child before C{twistd} runs (e.g.
            to lower its descriptor limit with C{resource.setrlimit}).
        :param logName: the log file's name in C{directory}: a gateway
            restarted in the same folder (to find its spool) gets a file of
            its own, so it does not read the ports of the one before it.
        :param pidfile: twistd's C{--pidfile} (none by default).
        """
        self.directory = Path(directory)
        self.logPath = self.directory / logName
        command = [TWISTD, "-n", f"--pidfile={pidfile}", f"--logfile={self.logPath}"]
        if tac is not None:
            command += ["-y", str(tac)]
        else:
            if "--http" not in args:
                # Never the default port: several gateways run at once.
                args = [*args, "--http", "tcp:0:interface=127.0.0.1"]
            command += ["gateway", *args]
        self.command = command
        self.env = {**LAUNCHER_ENV, **os.environ, **(env or {})}
        self.preexecFn = preexecFn
        self.process = None
        self.ports = {}
        self.httpPort = None

    def start(self, listeners, timeout=30.0):
        """
        Start and wait until C{listeners} listeners are bound.
        """
        self.process = subprocess.Popen(
            self.command,
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexecFn,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            self.ports = {m["name"]: int(m["port"]) for m in LISTENING.finditer(log)}
            http = HTTP_LISTENING.search(log)
            self.httpPort = int(http["port"]) if http else None
            if len(self.ports) >= listeners:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        output = self.process.stdout.read() if self.process.poll() is not None else b""
        self.stop()
        raise AssertionError(
            f"gateway did not start: {output.decode(errors='replace')}\n{self.log()}"
        )

    def log(self):
        """
        :return: the gateway's log so far.
        """
        try:
            return self.logPath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def waitForHttpPort(self, timeout=30.0):
        """
        Wait for the C{http listening on HOST:PORT} line.

        :return: the port, also set as C{httpPort}.
        """
        match = waitFor(
            lambda: HTTP_LISTENING.search(self.log()),
            timeout,
            lambda: f"'http listening on' in the log:\n{self.log()}",
        )
        self.httpPort = int(match["port"])
        return self.httpPort

    def stop(self, timeout=60.0):
        """
        SIGTERM, as an init system would, and wait for the drained exit.

        :return: the exit code.
        """
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"gateway did not stop in {timeout} s\n{self.log()}") from None

    def connect(self, listener):
        """
        :return: a connected TCP socket to a listener, with Nagle off so each
            write leaves as its own segment.
        """
        sock = socket.create_connection(("127.0.0.1", self.ports[listener]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def stopGateway(gateway, timeout=60.0):
    """
    Stop a gateway if it still runs, ignoring one that never started.
    """
    if gateway is not None and gateway.process is not None:
        return gateway.stop(timeout)


class Gateways:
    """
    Every gateway one test starts against one broker, each in a folder of
    its own; L{stopAll} at the end of the test stops them all.

    :ivar started: the L{GatewayProcess}es, in the order started.
    """

    def __init__(self, directory, bootstrap, *defaults):
        """
        :param defaults: arguments every gateway gets before its own.
        """
        self.directory = Path(directory)
        self.bootstrap = bootstrap
        self.defaults = defaults
        self.started = []

    def start(self, *args, listeners=1, **keywords):
        """
        Start a gateway with C{args} (and L{GatewayProcess} keywords) and
        wait until C{listeners} listeners are bound.

        :return: the L{GatewayProcess}.
        """
        directory = self.directory / f"gateway-{len(self.started)}"
        directory.mkdir()
        process = GatewayProcess(
            directory,
            ["--bootstrap-servers", self.bootstrap, *self.defaults, *args],
            **keywords,
        )
        self.started.append(process)
        return process.start(listeners)

    def stopAll(self):
        """
        Stop every gateway started that still runs.
        """
        for process in self.started:
            process.stop()


def linesGateway(directory, bootstrap, topic, *args, **keywords):
    """
    A gateway (not started yet) against C{bootstrap} writing to C{topic},
    with one C{lines} listener on a free loopback port.

    :param args: more command-line arguments.
    :param keywords: L{GatewayProcess} keywords (e.g. C{logName}: a
        gateway restarted in the same folder, to find its spool, logs to a
        file of its own, so it does not read the ports of the one before
        it).
    """
    return GatewayProcess(
        directory,
        [
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--listen",
            "lines=tcp:0:interface=127.0.0.1",
            *args,
        ],
        **keywords,
    )


def waitForLog(gateway, pattern, timeout, start=0):
    """
    Wait until the gateway's log matches C{pattern} at or after offset
    C{start}.

    :return: the match (its C{end()} is an offset in the whole log).
    """
    regex = re.compile(pattern)

    def found():
        return regex.search(gateway.log(), start)

    try:
        return waitFor(found, timeout, f"{pattern!r} in the gateway log")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- gateway log ---\n{gateway.log()[-6000:]}") from None


def healthChanges(log):
    """
    :return: the health transitions in a gateway log, as C{(old, new)}.
    """
    return [(m[1], m[2]) for m in HEALTH.finditer(log)]


def producerStopped(log):
    """
    :return: C{(delivered, notDelivered, spooled, deadLettered)} of every
        "Kafka producer stopped" line of a log.
    """
    return [tuple(int(g) for g in m.groups()) for m in STOPPED.finditer(log)]


def httpGateways(kafka, tmpPath):
    """
    The body of a C{gateway} fixture: yields a function that starts a
    gateway with the given arguments (and L{GatewayProcess} keywords)
    against the test broker, its HTTP endpoints on a free port, spooling
    and dead-lettering nothing; every gateway started is stopped at the
    end.
    """
    gateways = Gateways(tmpPath, kafka.bootstrap, "--spool", "none", "--dead-letter", "none")

    def start(*args, listeners=1, **keywords):
        process = gateways.start(*args, listeners=listeners, **keywords)
        assert process.httpPort is not None, process.log()
        return process

    yield start
    gateways.stopAll()
