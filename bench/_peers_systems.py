"""
The systems C{bench/peers.py} compares, each started as the benchmark's own
process with its own configuration in a temporary folder, for one topic:
this gateway, rsyslog (C{imtcp} -> C{omkafka}), syslog-ng (C{network()} ->
C{kafka-c()}), C{kcat -P} (librdkafka alone, no TCP hop) and a discarding
sink (the load generator's own ceiling).  One module so that each system's
Kafka settings, printed into the results, sit beside the code that applies
them.
"""

import multiprocessing
import selectors
import socket
import subprocess
import time
from pathlib import Path

from _peers_install import ensureKcat, unpackedRoot

#: The gateway's producer settings are its defaults (L{producerConfig});
#: what the peers are given, stated once for the code and the results.
KCAT_PROPERTIES = ("acks=all", "enable.idempotence=true")

RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" port="{port}" address="127.0.0.1")
action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="raw")
"""

SYSLOG_NG_CONF = """\
@version: 3.38
options {{ stats_freq(0); }};
source s_net {{
    network(ip("127.0.0.1") port({port}) transport("tcp") flags(no-parse)
            max-connections(200) log-iw-size(200000));
}};
destination d_kafka {{
    kafka-c(bootstrap-servers("{bootstrap}") topic("{topic}") message("$MSG"));
}};
log {{ source(s_net); destination(d_kafka); flags(flow-control); }};
"""

SETTINGS = {
    "gateway": "its defaults (`gateway.kafka.config.DEFAULT_PRODUCER_CONFIG`: acks=all, "
    "idempotence, linger.ms=5) and both provenance headers; `--listen "
    "lines=tcp:0:interface=127.0.0.1`; started as its launchers start it, with "
    "`LD_PRELOAD=libmimalloc.so.2` (Debian's `libmimalloc2.0`, which the script installs)",
    "rsyslog": "`imtcp` defaults -> `omkafka` with librdkafka's defaults (acks=all, no "
    "idempotence, linger.ms=5) and a `%rawmsg%` template; config: "
    + RSYSLOG_CONF.replace("\n", " ").replace("{work}", "…"),
    "syslog-ng": "`network(flags(no-parse) max-connections(200) log-iw-size(200000))` -> "
    "`kafka-c()` with librdkafka's defaults, `flags(flow-control)` (without it syslog-ng "
    "drops what its queue cannot hold)",
    "gateway-glibc": "the same as `gateway`, started without `LD_PRELOAD` (glibc's malloc)",
    "kcat": "`kcat -P -l FILE` with " + ", ".join(KCAT_PROPERTIES),
    "sink": "a Python process reading every connection and discarding the bytes (no Kafka)",
}


def waitForPort(port, process, logPath, timeout=60.0):
    """
    Wait until something accepts connections on loopback C{port}.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    tail = Path(logPath).read_text(errors="replace")[-2000:] if logPath else ""
    raise RuntimeError(f"nothing listens on port {port}:\n{tail}")


class _Daemon:
    """
    A peer run as a foreground child process, logging to a file.
    """

    name = None

    def __init__(self, work):
        self.work = Path(work)
        self.process = None
        self.port = None

    @property
    def pid(self):
        return self.process.pid

    def _spawn(self, command, env=None):
        self.logPath = self.work / f"{self.name}.log"
        self.process = subprocess.Popen(
            command,
            cwd=self.work,
            env=env,
            stdout=open(self.logPath, "wb"),
            stderr=subprocess.STDOUT,
        )
        waitForPort(self.port, self.process, self.logPath)

    def stop(self):
        """
        SIGTERM, then SIGKILL after 20 s.

        :return: the exit code.
        """
        self.process.terminate()
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self):
        return self.logPath.read_text(errors="replace")


class Gateway:
    """
    This gateway, C{twistd -n gateway} with its defaults, started as its
    launchers start it (L{gateway.allocator.PRELOAD}), or with the
    system's C{malloc} (C{preload=False}: the system C{gateway-glibc}).
    """

    name = "gateway"

    def __init__(self, work, preload=True):
        self.work = work
        self.preload = preload

    def start(self, bootstrap, topic):
        from gateway.allocator import PRELOAD
        from tests.integration.support.process import linesGateway

        env = {"LD_PRELOAD": PRELOAD if self.preload else ""}
        self.gateway = linesGateway(self.work, bootstrap, topic, env=env)
        self.gateway.start(listeners=1, timeout=60)
        self.port = next(iter(self.gateway.ports.values()))

    @property
    def pid(self):
        return self.gateway.process.pid

    def stop(self):
        return self.gateway.stop()

    def log(self):
        return self.gateway.log()


class Rsyslog(_Daemon):
    """
    C{rsyslogd -n}, unpacked from Debian's packages.
    """

    name = "rsyslog"

    def start(self, bootstrap, topic):
        from devkafka import freePort

        root = unpackedRoot()
        self.port = freePort()
        conf = self.work / "rsyslog.conf"
        conf.write_text(
            RSYSLOG_CONF.format(work=self.work, port=self.port, bootstrap=bootstrap, topic=topic)
        )
        self._spawn(
            [
                str(root / "usr/sbin/rsyslogd"),
                "-n",
                "-f",
                str(conf),
                "-i",
                str(self.work / "rsyslog.pid"),
                "-M",
                str(root / "usr/lib/x86_64-linux-gnu/rsyslog"),
            ]
        )


class SyslogNg(_Daemon):
    """
    C{syslog-ng -F}, unpacked from Debian's packages.
    """

    name = "syslog-ng"

    def start(self, bootstrap, topic):
        import os

        from devkafka import freePort

        root = unpackedRoot()
        self.port = freePort()
        conf = self.work / "syslog-ng.conf"
        conf.write_text(SYSLOG_NG_CONF.format(port=self.port, bootstrap=bootstrap, topic=topic))
        env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr/lib/syslog-ng"))
        self._spawn(
            [
                str(root / "usr/sbin/syslog-ng"),
                "-F",
                "--no-caps",
                "-f",
                str(conf),
                f"--module-path={root / 'usr/lib/syslog-ng/3.38'}",
                f"--persist-file={self.work / 'syslog-ng.persist'}",
                f"--pidfile={self.work / 'syslog-ng.pid'}",
                f"--control={self.work / 'syslog-ng.ctl'}",
            ],
            env=env,
        )


def kcatCommand(bootstrap, topic, path):
    """
    The command producing every line of file C{path} to C{topic}.
    """
    command = [ensureKcat(), "-P", "-b", bootstrap, "-t", topic, "-l", str(path)]
    for prop in KCAT_PROPERTIES:
        command += ["-X", prop]
    return command


def _sinkProcess(listener, expected, ready, go, results):
    """
    Accept connections and discard what they send until C{expected} bytes
    came; report the time the last one arrived.
    """
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    buffer = bytearray(1 << 20)
    total = 0
    ready.put("ready")
    while total < expected:
        for key, _ in selector.select(1.0):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                n = key.fileobj.recv_into(buffer)
            except BlockingIOError:
                continue
            if not n:
                selector.unregister(key.fileobj)
                key.fileobj.close()
            total += n
    results.put((time.monotonic(), total))


class Sink:
    """
    A process reading and discarding every byte: the load generator alone.
    """

    name = "sink"

    def __init__(self, work, expectedBytes):
        self.expectedBytes = expectedBytes

    def start(self, bootstrap, topic):
        context = multiprocessing.get_context("fork")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        self.port = listener.getsockname()[1]
        ready = context.Queue()
        self.results = context.Queue()
        self.process = context.Process(
            target=_sinkProcess,
            args=(listener, self.expectedBytes, ready, None, self.results),
            daemon=True,
        )
        self.process.start()
        listener.close()
        ready.get(timeout=30)

    @property
    def pid(self):
        return self.process.pid

    def finished(self, timeout):
        """
        :return: C{(monotonic time the last byte came, bytes)}.
        """
        return self.results.get(timeout=timeout)

    def stop(self):
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        return self.process.exitcode

    def log(self):
        return ""
