# -*- test-case-name: tests.server.test_workers -*-
"""
Worker processes sharing the listening ports: C{twistd gateway --workers N}.

One process holds at most as many clients as its descriptor limit allows
and uses one core; more clients and more cores need more processes.  The
C{twistd} process runs worker 1 itself and starts workers 2..N as children,
each a plain C{twistd -n gateway} with the same options, under Twisted's
L{ProcessMonitor} (which restarts a worker that dies, with backoff, and
relays its log lines tagged with its name).  Every listener binds a
C{reuseport:} endpoint, so the kernel spreads new connections across the
workers' sockets.  Each worker has its own producer, so Kafka connections
grow with workers, never with clients.

Stopping the group (SIGTERM to the C{twistd} process) stops worker 1 and
sends SIGTERM to every child at once; each drains like a single gateway, and
the group has stopped when every child has exited.
"""

import os
import sys

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.runner.procmon import ProcessMonitor

from gateway.compat.twisted import CLASSIC_LOG_LEVEL, PROCESS_LINE_FIELD, monitoredCount
from gateway.framing.options import splitEscaped

__all__ = [
    "WorkerGroup",
    "offsetPort",
    "parentWatch",
    "sharedPort",
    "workerArguments",
    "workerPath",
]

log = Logger()

#: Options each worker is given its own value of.
_PER_WORKER = ("--workers", "--worker-index", "--http", "--spool", "--dead-letter")

#: How a child runs twistd with the interpreter of the parent.  It ignores
#: SIGINT: a Ctrl-C reaches every process of the terminal's group, and the
#: parent stops the children itself, with SIGTERM (Twisted keeps a SIGINT
#: handler it finds already set).
_TWISTD = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)


def _split(description):
    """
    Split an endpoint description at unescaped colons, keeping escapes.
    """
    return splitEscaped(description, ":")


def _port(parts, description):
    """
    :return: C{(index, keyword, port)} of the port in a split description.
    """
    for index, part in enumerate(parts[1:], 1):
        name, sep, value = part.partition("=")
        if sep and name != "port":
            continue
        text = value if sep else part
        if not text.isdigit():
            raise ValueError(f"{description!r}: the port {text!r} is not a number")
        return index, bool(sep), int(text)
    raise ValueError(f"{description!r}: no port")


def sharedPort(description):
    """
    Check that a listener's endpoint can be shared by workers: a
    C{reuseport:} endpoint (possibly inside C{haproxy:}) on a fixed port.

    :raises ValueError: saying what is wrong.
    """
    parts = _split(description)
    if parts[0].lower() == "haproxy":
        parts = parts[1:]
    if parts[0].lower() != "reuseport":
        raise ValueError(
            f"{description!r}: workers share a port only through a reuseport: "
            "endpoint, e.g. reuseport:9000:interface=0.0.0.0"
        )
    if _port(parts, description)[2] == 0:
        raise ValueError(
            f"{description!r}: workers need a fixed port (0 would give each "
            "worker a port of its own)"
        )


def offsetPort(description, offset):
    """
    The same server endpoint description with its port moved up by
    C{offset}: worker K serves its HTTP endpoints on the port + K - 1.

    :param description: e.g. C{tcp:8080:interface=127.0.0.1}.
    :return: the new description; unchanged when the port is 0 (each worker
        then gets its own free port) or C{offset} is 0.
    :raises ValueError: when the description has no port to move.
    """
    parts = _split(description)
    if parts[0].lower() not in ("tcp", "tcp6", "ssl", "reuseport") or len(parts) < 2:
        raise ValueError(f"{description!r}: --workers needs tcp:PORT... (or none) for --http")
    index, keyword, port = _port(parts, description)
    if port == 0 or offset == 0:
        return description
    if port + offset > 65535:
        raise ValueError(f"{description!r}: port {port} + {offset} is over 65535")
    parts[index] = f"port={port + offset}" if keyword else str(port + offset)
    return ":".join(parts)


def workerPath(path, index):
    """
    Worker K's own file (spool, dead letters): C{gateway-spool.jsonl} is
    C{gateway-spool.worker-K.jsonl}; worker 1 keeps the name given.

    :param path: the path given, or L{None} (none kept).
    """
    if path is None or index == 1:
        return path
    stem, dot, suffix = path.rpartition(".")
    if not dot or "/" in suffix:
        return f"{path}.worker-{index}"
    return f"{stem}.worker-{index}.{suffix}"


def workerArguments(arguments, index, count, http, spool, deadLetter):
    """
    The command line of worker C{index}: the parent's C{gateway} options
    with its own C{--worker-index}, HTTP endpoint, spool and dead-letter
    file.

    :param arguments: the options given to C{twistd gateway} (after the
        subcommand).
    :return: the argv of the child process.
    """
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
            continue
        name = argument.split("=", 1)[0]
        if name in _PER_WORKER:
            skip = "=" not in argument
            continue
        kept.append(argument)
    own = ["--workers", str(count), "--worker-index", str(index)]
    own += ["--http", "none" if http is None else offsetPort(http, index - 1)]
    own += ["--spool", workerPath(spool, index) or "none"]
    own += ["--dead-letter", workerPath(deadLetter, index) or "none"]
    # -P: the working directory is not put on sys.path (as for twistd).
    return [
        sys.executable,
        "-P",
        "-c",
        _TWISTD,
        "--nodaemon",
        "--pidfile=",
        "gateway",
        *kept,
        *own,
    ]


class _RelayedLevels:
    """
    Twisted's L{ProcessMonitor} logs every line of a worker's output at
    I{info}; log it at the level the worker gave it instead (twistd's text
    format names it: C{[namespace#warn]}), so filtering the group's log by
    level still shows every worker's warnings.
    """

    _LEVEL = CLASSIC_LOG_LEVEL

    def __init__(self, logger):
        self._logger = logger

    def info(self, format, **kwargs):
        match = self._LEVEL.match(str(kwargs.get(PROCESS_LINE_FIELD, "")))
        emit = getattr(self._logger, match.group(1)) if match else self._logger.info
        emit(format, **kwargs)

    def __getattr__(self, name):
        return getattr(self._logger, name)


class WorkerGroup(ProcessMonitor):
    """
    Workers 2..N of a gateway, restarted when they die; stopping waits until
    every one has drained and exited.
    """

    def __init__(
        self, reactor, arguments, count, http, spool, deadLetter, drainTimeout, environment=None
    ):
        """
        :param reactor: the reactor (processes and time).
        :param arguments: the parent's C{gateway} options.
        :param count: workers in all, the parent included.
        :param http: the parent's HTTP endpoint description, or L{None}.
        :param spool: the parent's spool path, or L{None}.
        :param deadLetter: the parent's dead-letter path, or L{None}.
        :param drainTimeout: each worker's drain timeout: a worker is killed
            only if it has not exited well after it.
        :param environment: variables added to the environment the workers
            inherit (secrets kept off their command lines).
        """
        ProcessMonitor.__init__(self, reactor)
        self.log = _RelayedLevels(Logger())
        self.killTime = drainTimeout + 15.0
        self._reactor = reactor
        for index in range(2, count + 1):
            self.addProcess(
                f"worker-{index}",
                workerArguments(arguments, index, count, http, spool, deadLetter),
                env={**os.environ, **(environment or {})},
            )

    def signalWorkers(self, name):
        """
        Send a signal to every worker running now.

        :param name: the signal's name without C{SIG}, e.g. C{"HUP"}.
        """
        for protocol in list(self.protocols.values()):
            if protocol.transport is not None:
                protocol.transport.signalProcess(name)

    def startService(self):
        """
        Start every worker.
        """
        log.info("starting {count} more gateway workers", count=monitoredCount(self))
        ProcessMonitor.startService(self)

    def stopService(self):
        """
        Send SIGTERM to every worker and wait until all have exited.

        :return: a L{Deferred} firing then.
        """
        ProcessMonitor.stopService(self)
        done = Deferred()

        def check():
            if not self.protocols:
                log.info("every gateway worker has stopped")
                done.callback(None)
            else:
                self._reactor.callLater(0.1, check)

        check()
        return done


def parentWatch(clock, stop, interval=1.0, getppid=os.getppid):
    """
    A service for a child worker: if its parent (the group's C{twistd}) is
    gone, stop this worker (it drains), so no orphan keeps serving.

    :param stop: called once when the parent is gone (e.g.
        C{reactor.stop}).
    :return: a L{TimerService}.
    """
    parent = getppid()
    stopped = []

    def check():
        if getppid() != parent and not stopped:
            stopped.append(True)
            log.warn("the gateway's supervisor (pid {pid}) is gone; stopping", pid=parent)
            stop()

    service = TimerService(interval, check)
    service.clock = clock
    return service
