"""
Run the gateway the way a user does, as a C{twistd} subprocess, and talk to it
with plain blocking sockets.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: twistd stopped by SIGTERM exits by re-raising the signal once it has shut
#: down cleanly (Twisted >= 21.7), so -SIGTERM is a clean exit too.
CLEAN_EXIT = (0, -signal.SIGTERM)

TWISTD = str(Path(sys.executable).with_name("twistd"))
HTTP_LISTENING = re.compile(r"http listening on (?P<host>[\d.]+):(?P<port>\d+)")
LISTENING = re.compile(
    r"listener (?P<name>\S+) \((?P<framing>[^)]+)\) listening on "
    r"(?P<host>[\d.]+):(?P<port>\d+)"
)


class GatewayProcess:
    """
    A C{twistd -n} gateway started in C{directory}, logging to a file there.

    :ivar ports: listener name to the TCP port it bound.
    :ivar httpPort: the HTTP endpoints' port, if it was logged before the
        listeners'.
    """

    def __init__(self, directory, args, env=None, tac=None, preexecFn=None):
        """
        :param preexecFn: called in the child before C{twistd} runs (e.g.
            to lower its descriptor limit with C{resource.setrlimit}).
        """
        self.directory = Path(directory)
        self.logPath = self.directory / "twistd.log"
        command = [TWISTD, "-n", "--pidfile=", f"--logfile={self.logPath}"]
        if tac is not None:
            command += ["-y", str(tac)]
        else:
            if "--http" not in args:
                # Never the default port: several gateways run at once.
                args = [*args, "--http", "tcp:0:interface=127.0.0.1"]
            command += ["gateway", *args]
        self.command = command
        self.env = dict(os.environ, **(env or {}))
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


def socketsTo(pid, port):
    """
    Count the established TCP connections process C{pid} holds to C{port} on
    loopback, from the operating system's own tables.
    """
    inodes = set()
    fdDir = Path(f"/proc/{pid}/fd")
    for fd in fdDir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                remotePort = int(fields[2].rsplit(":", 1)[1], 16)
                established = fields[3] == "01"
                if established and remotePort == port and fields[9] in inodes:
                    count += 1
    return count
