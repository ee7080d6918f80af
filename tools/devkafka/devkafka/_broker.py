# -*- test-case-name: tests.integration.test_devkafka -*-
"""
One local Kafka broker process (combined broker and KRaft controller).

Everything about a broker lives in its run folder, so a later command (or a
test restarting a killed broker) finds its port, version, pid and data there.
"""

import base64
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import string
import struct
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

from ._certs import certificatesIn
from ._fetch import DevKafkaError, defaultHome, fetchJars, findJava, jarDir, resolveVersion
from ._probe import ProbeError, probeMetadata
from ._security import (
    DEFAULT_USERS,
    SECURE_LISTENERS,
    applyProperties,
    scramArguments,
    secureProperties,
)

__all__ = ["DevKafka", "freePort"]

_HOST = "127.0.0.1"
_HEAP = "-Xmx512m -Xms256m"
_JVM = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


#: Where free ports are looked for: below the kernel's ephemeral range.
_LOWEST_PORT = 10000


def _ephemeralLow():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def freePort(rng=random):
    """
    A loopback port nothing holds, for a broker to listen on.

    It is chosen below the kernel's ephemeral range: a port bound to 0 and
    released is an ephemeral one, which any outgoing connection may take
    before the broker binds it (seen on a busy machine: "already in use");
    a port below the range can only be taken by another listener.

    :param rng: a L{random.Random} (the module's by default).
    :return: the port.
    """
    high = _ephemeralLow()
    if high > _LOWEST_PORT + 100:
        for _ in range(200):
            port = rng.randrange(_LOWEST_PORT, high)
            with socket.socket() as sock:
                try:
                    sock.bind((_HOST, port))
                except OSError:
                    continue
                return port
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return sock.getsockname()[1]


_freePort = freePort


def _portFree(port):
    # SO_REUSEADDR as the JVM uses it: TIME_WAIT leftovers do not count,
    # a listening socket does.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
        return True


def _clusterId():
    # Kafka's Uuid.randomUuid(): URL-safe base64 without padding, never
    # starting with "-" (it would look like an option).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


_CONFIG_DUMP = re.compile(r"\t[\w.-]+ = ")


def _size(path):
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path, since=0, lines=30):
    # The last lines written after offset ``since``, without the long
    # "KafkaConfig values" dumps that would hide the error.
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(since, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if not _CONFIG_DUMP.match(line)]
    return "\n".join(kept[-lines:])


class DevKafka:
    """
    A development Kafka broker on loopback, started as a detached JVM.

    :param version: ``"4"`` (4.1.1), ``"3.9"`` (3.9.2) or a full version.
    :param home: the cache folder for jars (and, by default, run folders);
        ``None`` means ``$GATEWAY_DEVKAFKA_HOME`` or ``./.devkafka``.
    :param name: the broker's name; brokers of different names coexist.
    :param port: the bootstrap port; ``None`` reuses the port this broker had
        before, if free, or else picks a free one.
    :param runRoot: the folder holding run folders; ``None`` means
        ``<home>/run``. Tests put it under a temporary folder and keep the
        jars in the shared cache.
    :param secured: also open SASL_PLAINTEXT, SSL (mutual TLS) and SASL_SSL
        listeners (see :mod:`devkafka._security`); SCRAM users are created
        when the storage is formatted, so a broker formatted unsecured
        knows only PLAIN users.
    :param users: user name to password for the SASL listeners (default:
        ``gateway``/``gateway-secret``).

    :ivar version: the full Kafka version.
    :ivar runDir: ``<runRoot>/<name>``: config, data, pid file and logs.
    :ivar logPath: the broker's log file.
    """

    def __init__(
        self,
        version="4",
        home=None,
        name="default",
        port=None,
        runRoot=None,
        secured=False,
        users=None,
    ):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise DevKafkaError(f"bad broker name {name!r}: use letters, digits, _ . -")
        self.version = resolveVersion(version)
        self.home = Path(home).absolute() if home else defaultHome()
        self.name = name
        self.runDir = (Path(runRoot) if runRoot else self.home / "run").absolute() / name
        self.logPath = self.runDir / "broker.log"
        self._requestedPort = port
        self._process = None
        self._logMarks = {}
        self.secured = secured
        self.users = dict(users or DEFAULT_USERS)
        #: The certificates of a secured broker, once started (or of the
        #: one already running).
        self.certificates = certificatesIn(self.runDir / "certs") if secured else None
        #: The bootstrap port: the requested one, else the last one used.
        self.port = port or self._readState().get("port")
        #: A secured broker's listener name to port.
        self.securePorts = dict(self._readState().get("securePorts") or {})

    def __repr__(self):
        return f"<DevKafka {self.name} kafka {self.version} at {self.bootstrap}>"

    @property
    def bootstrap(self):
        """
        ``127.0.0.1:PORT``, or ``None`` while no port is chosen.
        """
        return None if self.port is None else f"{_HOST}:{self.port}"

    @property
    def pid(self):
        """
        The broker's process id, or ``None`` if it is not running.
        """
        return self._runningPid()

    @property
    def _pidFile(self):
        return self.runDir / "kafka.pid"

    @property
    def _dataDir(self):
        return self.runDir / "data"

    def bootstrapFor(self, listener):
        """
        ``127.0.0.1:PORT`` of a secured broker's listener.

        :param listener: ``SASL_PLAINTEXT``, ``SSL`` or ``SASL_SSL``.
        """
        return f"{_HOST}:{self.securePorts[listener]}"

    def _readState(self):
        try:
            return json.loads((self.runDir / "devkafka.json").read_text())
        except (OSError, ValueError):
            return {}

    def savedVersion(self):
        """
        The Kafka version this broker's data was last started with, or ``None``.
        """
        return self._readState().get("version")

    def _writeState(self, **state):
        (self.runDir / "devkafka.json").write_text(json.dumps(state, indent=2) + "\n")

    def _isOurs(self, pid):
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # No /proc: trust the pid file.
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return False
        config = str(self.runDir / "server.properties").encode()
        return b"kafka.Kafka" in cmdline and config in cmdline

    def _runningPid(self):
        try:
            pid = int(self._pidFile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._isOurs(pid) else None

    def isRunning(self):
        """
        Tell whether this broker's process is alive (not whether it is ready).
        """
        return self._runningPid() is not None

    def fetch(self, log=None):
        """
        Make sure the jars of this broker's version are in the cache.

        :param log: called with progress lines, or ``None``.
        :return: the jar folder.
        """
        return fetchJars(self.home, self.version, log)

    def _choosePorts(self, state):
        port = self._requestedPort
        if port is None:
            port = self.port or state.get("port")
            if not port or not _portFree(port):
                port = _freePort()
        elif not _portFree(port):
            raise DevKafkaError(
                f"port {port} on {_HOST} is already in use; choose another with "
                f"--port (another broker? see 'python -m devkafka status')"
            )
        controller = state.get("controllerPort")
        if not controller or controller == port or not _portFree(controller):
            controller = _freePort()
            while controller == port:
                controller = _freePort()
        taken = {port, controller}
        self.securePorts = {}
        for listener in SECURE_LISTENERS if self.secured else ():
            chosen = (state.get("securePorts") or {}).get(listener)
            while not chosen or chosen in taken or not _portFree(chosen):
                chosen = _freePort()
            taken.add(chosen)
            self.securePorts[listener] = chosen
        return port, controller

    def _writeConfig(self, controllerPort):
        template = resources.files(__package__).joinpath("server.properties").read_text()
        config = string.Template(template).substitute(
            port=self.port, controller_port=controllerPort, data_dir=self._dataDir
        )
        if self.secured:
            ports = dict(self.securePorts, PLAINTEXT=self.port, CONTROLLER=controllerPort)
            properties, self.certificates = secureProperties(_HOST, ports, self.users, self.runDir)
            config = applyProperties(config, properties)
        (self.runDir / "server.properties").write_text(config)
        name = self._logConfigName()
        (self.runDir / name).write_text(resources.files(__package__).joinpath(name).read_text())

    def _logConfigName(self):
        return "log4j2.properties" if self.version.startswith("4.") else "log4j.properties"

    def _javaCommand(self, java, heap, main, *args):
        logConfig = self.runDir / self._logConfigName()
        if self.version.startswith("4."):
            logOption = f"-Dlog4j2.configurationFile={logConfig}"
        else:
            logOption = f"-Dlog4j.configuration=file:{logConfig}"
        return [
            java,
            *shlex.split(heap),
            *_JVM,
            logOption,
            f"-Dkafka.logs.dir={self.runDir}",
            *shlex.split(os.environ.get("KAFKA_OPTS", "")),
            "-cp",
            str(jarDir(self.home, self.version) / "*"),
            main,
            *args,
        ]

    def _format(self, java, clusterId):
        command = self._javaCommand(
            java,
            "-Xmx256m",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            clusterId,
            "-c",
            str(self.runDir / "server.properties"),
            *(scramArguments(self.users) if self.secured else ()),
        )
        done = subprocess.run(
            command,
            cwd=self.runDir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not (self._dataDir / "meta.properties").is_file():
            raise DevKafkaError(
                f"formatting {self._dataDir} failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr).strip()
            )

    def start(self, timeout=90.0, log=None):
        """
        Start the broker (fetching jars, formatting storage if needed) and wait
        until it answers a Metadata request.

        A broker that is already running is left alone; one that died (or was
        killed) is started again on its existing data.

        :param timeout: seconds to wait for readiness.
        :param log: called with progress lines, or ``None``.
        :return: the bootstrap address, ``127.0.0.1:PORT``.
        :raises DevKafkaError: with the tail of the broker log on failure.
        """
        state = self._readState()
        if self.isRunning():
            if self._requestedPort not in (None, state.get("port")):
                raise DevKafkaError(
                    f"broker {self.name!r} already runs on port {state.get('port')}, "
                    f"not {self._requestedPort}"
                )
            self.port = state.get("port")
            return self._waitReady(timeout)
        java = findJava(self.version)
        self.fetch(log)
        formatted = (self._dataDir / "meta.properties").is_file()
        if formatted and state.get("version", self.version) != self.version:
            raise DevKafkaError(
                f"{self.runDir} holds Kafka {state['version']} data, not {self.version}: "
                f"use another --name, or 'stop --wipe' it first"
            )
        self.port, controllerPort = self._choosePorts(state)
        self.runDir.mkdir(parents=True, exist_ok=True)
        self._writeConfig(controllerPort)
        clusterId = state.get("clusterId") if formatted else None
        if not formatted:
            clusterId = _clusterId()
            if log:
                log(f"formatting {self._dataDir} (cluster id {clusterId})")
            self._format(java, clusterId)
        self._writeState(
            version=self.version,
            port=self.port,
            controllerPort=controllerPort,
            clusterId=clusterId,
            securePorts=self.securePorts,
        )
        heap = os.environ.get("KAFKA_HEAP_OPTS") or _HEAP
        command = self._javaCommand(
            java, heap, "kafka.Kafka", str(self.runDir / "server.properties")
        )
        if log:
            log(f"starting Kafka {self.version} on {self.bootstrap} (log: {self.logPath})")
        self._logMarks = {p: _size(p) for p in (self.logPath, self.runDir / "kafka.out")}
        with open(self.runDir / "kafka.out", "ab") as out:
            self._process = subprocess.Popen(
                command,
                cwd=self.runDir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._pidFile.write_text(f"{self._process.pid}\n")
        try:
            return self._waitReady(timeout)
        except DevKafkaError:
            self._signalAndWait(signal.SIGKILL, 10.0)
            self._pidFile.unlink(missing_ok=True)
            raise

    def _waitReady(self, timeout):
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if not self.isRunning():
                raise DevKafkaError(
                    f"Kafka {self.version} ({self.name}) exited while starting\n"
                    + self._logTails()
                )
            try:
                info = probeMetadata(_HOST, self.port, timeout=2.0)
                if any(port == self.port for _, _, port in info.brokers):
                    return self.bootstrap
                last = f"metadata lists no broker on port {self.port}"
            except (OSError, ProbeError, struct.error) as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise DevKafkaError(
                    f"Kafka {self.version} ({self.name}) did not answer Metadata on "
                    f"{self.bootstrap} within {timeout:g}s ({last})\n" + self._logTails()
                )
            time.sleep(0.25)

    def _logTails(self):
        parts = []
        for path in (self.logPath, self.runDir / "kafka.out"):
            tail = _tail(path, self._logMarks.get(path, 0))
            if tail:
                parts.append(f"--- last lines of {path} ---\n{tail}")
        return "\n".join(parts) or f"(no output in {self.runDir})"

    def _signalAndWait(self, sig, timeout):
        pid = self._runningPid()
        if pid is None:
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._isOurs(pid):
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout=30.0, wipe=False):
        """
        Stop the broker: SIGTERM (a clean shutdown), SIGKILL after ``timeout``.

        :param timeout: seconds to wait for a clean shutdown.
        :param wipe: also delete the run folder (data, config, logs).
        :return: ``True`` if a running broker was stopped.
        """
        wasRunning = self.isRunning()
        if not self._signalAndWait(signal.SIGTERM, timeout):
            if not self._signalAndWait(signal.SIGKILL, 10.0):
                raise DevKafkaError(f"pid {self.pid} survived SIGKILL")
        self._pidFile.unlink(missing_ok=True)
        if wipe and self.runDir.exists():
            shutil.rmtree(self.runDir)
        return wasRunning

    def kill(self):
        """
        Kill the broker with SIGKILL, as a crash would; its data and pid file
        stay, and :meth:`start` brings it back on the same data and port.
        """
        if not self._signalAndWait(signal.SIGKILL, 10.0):
            raise DevKafkaError(f"pid {self.pid} survived SIGKILL")
