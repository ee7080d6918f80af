# -*- test-case-name: tests.server.test_workers -*-
"""
Tests for L{gateway.server.workers} (C{twistd gateway --workers N}) and the
C{--workers}/C{--worker-index} parts of L{gateway.tap}: the description and
path helpers, the child command line, the parent watch on a L{Clock}, and
the L{WorkerGroup} on a fake process reactor.  Real processes sharing a real
port are in C{tests/integration/test_workers_kafka.py}.
"""

import os
import sys

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from gateway.server.workers import (
    WorkerGroup,
    offsetPort,
    parentWatch,
    sharedPort,
    workerArguments,
    workerPath,
)
from gateway.service import GatewayService
from gateway.tap import Options, buildService


class OffsetPortTests(SynchronousTestCase):
    """
    L{offsetPort}: worker K's HTTP endpoint is the parent's with its port
    moved up by K - 1.
    """

    def test_positionalPort(self):
        """
        A positional port is moved up; the other parts stay as written.
        """
        self.assertEqual(
            offsetPort("tcp:8080:interface=127.0.0.1", 2), "tcp:8082:interface=127.0.0.1"
        )
        self.assertEqual(offsetPort("tcp:8080", 1), "tcp:8081")

    def test_keywordPort(self):
        """
        A C{port=} port is moved up and stays a keyword, wherever it is.
        """
        self.assertEqual(offsetPort("tcp:port=8080", 3), "tcp:port=8083")
        self.assertEqual(
            offsetPort("tcp:interface=127.0.0.1:port=8080", 1), "tcp:interface=127.0.0.1:port=8081"
        )

    def test_portAfterKeywords(self):
        """
        A positional port written after keyword arguments is found.
        """
        self.assertEqual(
            offsetPort("tcp:interface=127.0.0.1:8080", 1), "tcp:interface=127.0.0.1:8081"
        )

    def test_zeroPortAndZeroOffsetUnchanged(self):
        """
        Port 0 (every worker its own free port) and an offset of 0 (worker 1)
        leave the description exactly as given.
        """
        self.assertEqual(offsetPort("tcp:0:interface=127.0.0.1", 5), "tcp:0:interface=127.0.0.1")
        self.assertEqual(offsetPort("tcp:port=0", 1), "tcp:port=0")
        self.assertEqual(
            offsetPort("tcp:8080:interface=127.0.0.1", 0), "tcp:8080:interface=127.0.0.1"
        )

    def test_escapedIPv6InterfaceKept(self):
        """
        Escaped colons in a value are neither split on nor unescaped.
        """
        self.assertEqual(offsetPort("tcp:8080:interface=\\:\\:1", 1), "tcp:8081:interface=\\:\\:1")
        self.assertEqual(
            offsetPort("tcp6:port=8080:interface=fe80\\:\\:1", 2),
            "tcp6:port=8082:interface=fe80\\:\\:1",
        )

    def test_otherPortEndpoints(self):
        """
        C{tcp6:}, C{ssl:} and C{reuseport:} have ports to move too; the
        endpoint type is matched case-insensitively.
        """
        self.assertEqual(offsetPort("tcp6:8080", 1), "tcp6:8081")
        self.assertEqual(offsetPort("ssl:8443:privateKey=k.pem", 1), "ssl:8444:privateKey=k.pem")
        self.assertEqual(offsetPort("reuseport:8080", 1), "reuseport:8081")
        self.assertEqual(offsetPort("TCP:8080", 1), "TCP:8081")

    def test_overMaximumPort(self):
        """
        A port that would go over 65535 is a C{ValueError}; exactly 65535 is
        fine.
        """
        self.assertEqual(offsetPort("tcp:65534", 1), "tcp:65535")
        error = self.assertRaises(ValueError, offsetPort, "tcp:65535", 1)
        self.assertIn("65535", str(error))
        self.assertRaises(ValueError, offsetPort, "tcp:port=65000", 600)

    def test_noPort(self):
        """
        A description without a port, or whose port is not a number, is a
        C{ValueError}.
        """
        self.assertRaises(ValueError, offsetPort, "tcp", 1)
        self.assertRaises(ValueError, offsetPort, "tcp:interface=127.0.0.1", 1)
        self.assertRaises(ValueError, offsetPort, "tcp:http", 1)

    def test_notTCP(self):
        """
        Endpoints without a TCP port (UNIX sockets, systemd descriptors) are
        a C{ValueError} naming C{--http}.
        """
        for description in ("unix:/x", "systemd:domain=INET:index=0", "none"):
            error = self.assertRaises(ValueError, offsetPort, description, 1)
            self.assertIn("--http", str(error))


class SharedPortTests(SynchronousTestCase):
    """
    L{sharedPort}: only C{reuseport:} on a fixed port can be shared.
    """

    def test_reusePort(self):
        """
        A C{reuseport:} endpoint on a fixed port, positional or keyword,
        with or without options, is accepted.
        """
        for description in (
            "reuseport:9000",
            "reuseport:9000:interface=127.0.0.1",
            "reuseport:port=9000:backlog=10",
            "reuseport:9000:interface=\\:\\:1",
            "REUSEPORT:9000",
        ):
            self.assertIsNone(sharedPort(description), description)

    def test_haproxyReusePort(self):
        """
        A C{reuseport:} endpoint wrapped in C{haproxy:} is accepted.
        """
        self.assertIsNone(sharedPort("haproxy:reuseport:9000:interface=127.0.0.1"))

    def test_tcpRefused(self):
        """
        A plain C{tcp:} endpoint (which cannot be bound twice), alone or
        wrapped in C{haproxy:}, is refused, naming C{reuseport:}.
        """
        for description in ("tcp:9000", "haproxy:tcp:9000", "unix:/x"):
            error = self.assertRaises(ValueError, sharedPort, description)
            self.assertIn("reuseport:", str(error))

    def test_portZeroRefused(self):
        """
        C{reuseport:0} would give each worker a port of its own: refused.
        """
        for description in (
            "reuseport:0",
            "reuseport:port=0:interface=127.0.0.1",
            "haproxy:reuseport:0",
        ):
            error = self.assertRaises(ValueError, sharedPort, description)
            self.assertIn("fixed port", str(error))

    def test_noPortRefused(self):
        """
        A C{reuseport:} endpoint without a port is refused.
        """
        self.assertRaises(ValueError, sharedPort, "reuseport")
        self.assertRaises(ValueError, sharedPort, "reuseport:interface=127.0.0.1")


class WorkerPathTests(SynchronousTestCase):
    """
    L{workerPath}: each worker's own spool and dead-letter file.
    """

    def test_suffixKept(self):
        """
        The worker's number goes before the file's suffix.
        """
        self.assertEqual(workerPath("gateway-spool.jsonl", 2), "gateway-spool.worker-2.jsonl")
        self.assertEqual(
            workerPath("/var/lib/gw/dead.letter.jsonl", 12),
            "/var/lib/gw/dead.letter.worker-12.jsonl",
        )

    def test_noSuffix(self):
        """
        Without a suffix in the file name (a dot in a directory name does not
        count) the worker's number is appended.
        """
        self.assertEqual(workerPath("spool", 3), "spool.worker-3")
        self.assertEqual(workerPath("/var/lib/gw.d/spool", 2), "/var/lib/gw.d/spool.worker-2")

    def test_firstWorkerAndNone(self):
        """
        Worker 1 keeps the path given; L{None} (no file) stays L{None}.
        """
        self.assertEqual(workerPath("gateway-spool.jsonl", 1), "gateway-spool.jsonl")
        self.assertIsNone(workerPath(None, 1))
        self.assertIsNone(workerPath(None, 4))

    def test_distinct(self):
        """
        Every worker of a group gets a different file.
        """
        paths = {workerPath("s.jsonl", index) for index in range(1, 21)}
        self.assertEqual(len(paths), 20)


#: What C{twistd gateway} was given, per-worker options in both spellings.
PARENT = [
    "--topic",
    "t",
    "--workers",
    "3",
    "--listen",
    "lines=reuseport:9000:interface=127.0.0.1",
    "--http=tcp:8080:interface=127.0.0.1",
    "--spool",
    "s.jsonl",
    "--bootstrap-servers=k:9092",
    "--dead-letter=d.jsonl",
    "--worker-index",
    "1",
    "-m",
    "100",
    "--listen=netstring=reuseport:9001",
    "--no-headers",
]

#: What the worker keeps of L{PARENT}.
KEPT = [
    "--topic",
    "t",
    "--listen",
    "lines=reuseport:9000:interface=127.0.0.1",
    "--bootstrap-servers=k:9092",
    "-m",
    "100",
    "--listen=netstring=reuseport:9001",
    "--no-headers",
]


class WorkerArgumentsTests(SynchronousTestCase):
    """
    L{workerArguments}: the child's command line.
    """

    def arguments(
        self,
        index=2,
        arguments=PARENT,
        http="tcp:8080:interface=127.0.0.1",
        spool="s.jsonl",
        deadLetter="d.jsonl",
    ):
        return workerArguments(arguments, index, 3, http, spool, deadLetter)

    def test_runsTwistdWithThisInterpreter(self):
        """
        The child runs C{twistd -n --pidfile= gateway} with the parent's
        interpreter, without the working directory on C{sys.path} (C{-P})
        and ignoring SIGINT (the parent stops it with SIGTERM).
        """
        argv = self.arguments()
        self.assertEqual(argv[0], sys.executable)
        self.assertEqual(argv[1:3], ["-P", "-c"])
        self.assertIn("twistd", argv[3])
        self.assertIn("SIG_IGN", argv[3])
        self.assertEqual(argv[4:7], ["--nodaemon", "--pidfile=", "gateway"])

    def test_keepsOthersInOrder(self):
        """
        Every option that is not per worker is kept as written, in order,
        both C{--opt value} and C{--opt=value} spellings, short options and
        flags included.
        """
        argv = self.arguments()
        self.assertEqual(argv[7 : 7 + len(KEPT) + 1], [*KEPT, "--workers"])

    def test_ownValues(self):
        """
        The parent's C{--workers}, C{--worker-index}, C{--http}, C{--spool}
        and C{--dead-letter} (in either spelling) are dropped, and the
        worker's own values follow the kept options.
        """
        argv = self.arguments(index=3)
        self.assertEqual(
            argv[7 + len(KEPT) :],
            [
                "--workers",
                "3",
                "--worker-index",
                "3",
                "--http",
                "tcp:8082:interface=127.0.0.1",
                "--spool",
                "s.worker-3.jsonl",
                "--dead-letter",
                "d.worker-3.jsonl",
            ],
        )
        for dropped in (
            "--http=tcp:8080:interface=127.0.0.1",
            "s.jsonl",
            "--dead-letter=d.jsonl",
            "1",
        ):
            self.assertNotIn(dropped, argv)

    def test_none(self):
        """
        No HTTP, spool or dead-letter file in the parent means none in the
        worker either, said explicitly (the defaults would be files).
        """
        argv = self.arguments(
            http=None,
            spool=None,
            deadLetter=None,
            arguments=["--topic", "t", "--http", "none", "--spool=none"],
        )
        self.assertEqual(
            argv[7:],
            [
                "--topic",
                "t",
                "--workers",
                "3",
                "--worker-index",
                "2",
                "--http",
                "none",
                "--spool",
                "none",
                "--dead-letter",
                "none",
            ],
        )

    def test_parsesAsWorker(self):
        """
        The child's options parse, giving the worker its index, count, HTTP
        port, files, and the parent's other settings.
        """
        options = Options()
        argv = self.arguments(index=2)
        options.parseOptions(argv[argv.index("gateway") + 1 :])
        self.assertEqual((options["workers"], options["worker-index"]), (3, 2))
        self.assertEqual(options["http"], "tcp:8081:interface=127.0.0.1")
        self.assertEqual(options["spool"], "s.worker-2.jsonl")
        self.assertEqual(options["dead-letter"], "d.worker-2.jsonl")
        self.assertEqual(options["bootstrap-servers"], "k:9092")
        self.assertEqual(options["max-message-size"], 100)
        self.assertTrue(options["no-headers"])
        self.assertEqual(
            [spec.endpoint for spec in options["listen"]],
            ["reuseport:9000:interface=127.0.0.1", "reuseport:9001"],
        )


class ParentWatchTests(SynchronousTestCase):
    """
    L{parentWatch}: a child worker stops when its supervisor is gone.
    """

    def setUp(self):
        self.clock = Clock()
        self.ppid = 100
        self.stops = []
        self.service = parentWatch(
            self.clock, lambda: self.stops.append(True), interval=1.0, getppid=lambda: self.ppid
        )

    def test_timerService(self):
        """
        It is a L{TimerService} on the given clock, checking every interval.
        """
        self.assertIsInstance(self.service, TimerService)
        self.assertIs(self.service.clock, self.clock)
        self.assertEqual(self.service.step, 1.0)

    def test_parentAlive(self):
        """
        While the parent process is the same, nothing is stopped however
        long the worker runs.
        """
        self.service.startService()
        self.clock.pump([1.0] * 100)
        self.assertEqual(self.stops, [])
        self.service.stopService()

    def test_parentGone(self):
        """
        Once the parent changes (the worker was re-parented to init or a
        subreaper), C{stop} is called at the next check, and only once.
        """
        self.service.startService()
        self.clock.advance(1.0)
        self.ppid = 1
        self.assertEqual(self.stops, [])
        self.clock.advance(1.0)
        self.assertEqual(self.stops, [True])
        self.ppid = 4242
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.stops, [True])
        self.service.stopService()

    def test_parentRememberedAtCreation(self):
        """
        The parent is the one when the watch was made: a parent gone before
        the service starts is noticed at the first check.
        """
        self.ppid = 1
        self.service.startService()
        self.assertEqual(self.stops, [True])
        self.service.stopService()


class FakeProcess:
    """
    A spawned process: records signals; ends when the test says so.
    """

    def __init__(self, reactor, protocol, executable, args, env, path):
        self.reactor = reactor
        self.protocol = protocol
        self.executable, self.args, self.env, self.path = executable, args, env, path
        self.pid = 1000 + len(reactor.spawned)
        self.signals = []

    def signalProcess(self, signal):
        if self.pid is None:
            raise ProcessExitedAlready()
        self.signals.append(signal)

    def end(self, code=0):
        """
        The process exits with C{code} (or, for a string, by that signal).
        """
        self.pid = None
        if code == 0:
            reason = Failure(ProcessDone(0))
        else:
            reason = Failure(
                ProcessTerminated(
                    exitCode=code if isinstance(code, int) else None,
                    signal=code if isinstance(code, str) else None,
                )
            )
        self.protocol.processEnded(reason)


class FakeProcessReactor(Clock):
    """
    A L{Clock} that also spawns L{FakeProcess}es.

    :ivar spawned: every process spawned, in order.
    """

    def __init__(self):
        Clock.__init__(self)
        self.spawned = []

    def spawnProcess(
        self,
        protocol,
        executable,
        args=(),
        env=None,
        path=None,
        uid=None,
        gid=None,
        usePTY=False,
        childFDs=None,
    ):
        process = FakeProcess(self, protocol, executable, list(args), env, path)
        self.spawned.append(process)
        protocol.makeConnection(process)
        return process


ARGUMENTS = [
    "--topic",
    "t",
    "--workers",
    "3",
    "--listen",
    "lines=reuseport:9000",
    "--http",
    "tcp:8080",
]


class WorkerGroupTests(SynchronousTestCase):
    """
    L{WorkerGroup} on a fake reactor.
    """

    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.group = WorkerGroup(
            self.reactor, ARGUMENTS, 3, "tcp:8080", "s.jsonl", None, drainTimeout=30.0
        )

    def test_startsOtherWorkers(self):
        """
        Starting the group spawns workers 2..N with their own command lines
        and the parent's environment.
        """
        self.assertEqual(self.reactor.spawned, [])
        self.group.startService()
        self.assertEqual(len(self.reactor.spawned), 2)
        for index, process in enumerate(self.reactor.spawned, 2):
            expected = workerArguments(ARGUMENTS, index, 3, "tcp:8080", "s.jsonl", None)
            self.assertEqual(process.args, expected)
            self.assertEqual(process.executable, sys.executable)
            self.assertEqual(process.env, dict(os.environ))
        self.assertIn("tcp:8081", self.reactor.spawned[0].args)
        self.assertIn("tcp:8082", self.reactor.spawned[1].args)
        self.group.stopService()

    def test_singleWorkerStartsNothing(self):
        """
        A group of one (the parent) has no process to start or wait for.
        """
        group = WorkerGroup(self.reactor, ARGUMENTS, 1, None, None, None, 1.0)
        group.startService()
        self.assertEqual(self.reactor.spawned, [])
        self.successResultOf(group.stopService())

    def test_killTime(self):
        """
        A worker is killed only 15 s after its own drain timeout.
        """
        self.assertEqual(self.group.killTime, 45.0)
        group = WorkerGroup(self.reactor, ARGUMENTS, 2, None, None, None, 0.0)
        self.assertEqual(group.killTime, 15.0)

    def test_stopWaitsForEveryWorker(self):
        """
        Stopping sends SIGTERM to every worker at once; the Deferred fires
        only after every worker has exited, and none is restarted.
        """
        self.group.startService()
        self.reactor.advance(5)
        first, second = self.reactor.spawned
        stopped = self.group.stopService()
        self.assertEqual((first.signals, second.signals), (["TERM"], ["TERM"]))
        self.assertNoResult(stopped)
        first.end()
        self.reactor.advance(1)
        self.assertNoResult(stopped)
        self.reactor.advance(10)
        self.assertNoResult(stopped)
        second.end()
        self.reactor.advance(0.1)
        self.assertIsNone(self.successResultOf(stopped))
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual((first.signals, second.signals), (["TERM"], ["TERM"]))

    def test_stopKillsAfterKillTime(self):
        """
        A worker still running C{killTime} seconds after SIGTERM gets
        SIGKILL; the stop completes once it has exited.
        """
        self.group.startService()
        self.reactor.advance(5)
        first, second = self.reactor.spawned
        stopped = self.group.stopService()
        first.end()
        self.reactor.advance(44.9)
        self.assertEqual(second.signals, ["TERM"])
        self.reactor.advance(0.1)
        self.assertEqual(second.signals, ["TERM", "KILL"])
        self.assertNoResult(stopped)
        second.end("KILL")
        self.reactor.advance(0.1)
        self.successResultOf(stopped)

    def test_stopWithWorkerAlreadyGone(self):
        """
        A worker that died just before the stop (waiting for its restart) is
        not restarted, and the stop waits only for the others.
        """
        self.group.startService()
        self.reactor.advance(0.5)
        first, second = self.reactor.spawned
        first.end(1)  # died within the threshold: restart delayed
        stopped = self.group.stopService()
        self.assertEqual(second.signals, ["TERM"])
        second.end()
        self.reactor.advance(120)
        self.successResultOf(stopped)
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_deadWorkerRestarted(self):
        """
        A worker that dies while the group runs is started again with the
        same command line.
        """
        self.group.startService()
        self.reactor.advance(5)
        first = self.reactor.spawned[0]
        first.end("KILL")
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.assertEqual(self.reactor.spawned[2].args, first.args)
        self.group.stopService()

    def test_outputRelayedWithName(self):
        """
        A worker's output lines are logged tagged with its name.
        """
        from twisted.logger import capturedLogs

        self.group.startService()
        process = self.reactor.spawned[1]
        with capturedLogs() as events:
            process.protocol.outReceived(b"Kafka producer stopped\npartial")
        lines = [(e["tag"], e["line"]) for e in events if "tag" in e]
        self.assertEqual(lines, [("worker-3", "Kafka producer stopped")])
        self.group.stopService()


def _options(*args):
    options = Options()
    options.parseOptions(list(args))
    return options


SHARED = ["--topic", "t", "--listen", "lines=reuseport:9000:interface=127.0.0.1"]


class WorkerOptionsTests(SynchronousTestCase):
    """
    C{--workers} and C{--worker-index} in L{Options}.
    """

    def assertUsageError(self, args, fragment):
        error = self.assertRaises(UsageError, _options, *args)
        self.assertIn(fragment, str(error))
        self.assertNotIn("\n", str(error))

    def test_defaults(self):
        """
        One worker, this one, by default; a C{tcp:} listener is fine then.
        """
        options = _options("--topic", "t", "--listen", "lines=tcp:0")
        self.assertEqual((options["workers"], options["worker-index"]), (1, 1))

    def test_tcpListenerRefused(self):
        """
        C{--workers 2} with a C{tcp:} listener is a one-line usage error
        naming C{reuseport:}.
        """
        self.assertUsageError(
            ["--topic", "t", "--workers", "2", "--listen", "lines=tcp:9000"], "reuseport:"
        )

    def test_everyListenerChecked(self):
        """
        One unshareable listener among shareable ones is enough to refuse.
        """
        self.assertUsageError(
            SHARED + ["--workers", "2", "--listen", "netstring=tcp:9001"], "tcp:9001"
        )

    def test_portZeroRefused(self):
        """
        C{--workers 2} with C{reuseport:0} is refused.
        """
        self.assertUsageError(
            ["--topic", "t", "--workers", "2", "--listen", "lines=reuseport:0"], "fixed port"
        )

    def test_indexOverCount(self):
        """
        C{--worker-index 3 --workers 2} is refused.
        """
        self.assertUsageError(
            SHARED + ["--worker-index", "3", "--workers", "2"], "--worker-index 3"
        )

    def test_notPositive(self):
        """
        C{--workers 0} and C{--worker-index 0} are refused.
        """
        self.assertRaises(UsageError, _options, *SHARED, "--workers", "0")
        self.assertRaises(UsageError, _options, *SHARED, "--worker-index", "0")

    def test_httpWithoutPortRefused(self):
        """
        With several workers C{--http} must have a TCP port: a UNIX socket
        is refused.
        """
        self.assertUsageError(SHARED + ["--workers", "2", "--http", "unix:/x"], "--http")

    def test_httpPortOverflowRefused(self):
        """
        An HTTP port whose last worker's port would be over 65535 is refused.
        """
        self.assertUsageError(SHARED + ["--workers", "3", "--http", "tcp:65534"], "65535")

    def test_valid(self):
        """
        Shareable listeners with a TCP (or no, or port 0) HTTP endpoint are
        accepted; the arguments are remembered for the workers.
        """
        args = SHARED + [
            "--workers",
            "4",
            "--http",
            "tcp:8080:interface=127.0.0.1",
            "--listen",
            "netstring=haproxy:reuseport:9001",
        ]
        options = _options(*args)
        self.assertEqual((options["workers"], options["worker-index"]), (4, 1))
        self.assertEqual(options.arguments, args)
        self.assertIsNone(_options(*SHARED, "--workers", "2", "--http", "none")["http"])
        _options(*SHARED, "--workers", "2", "--http", "tcp:0:interface=127.0.0.1")
        _options(*SHARED, "--workers", "3", "--worker-index", "3")


class WorkerServiceTests(SynchronousTestCase):
    """
    L{buildService} with C{--workers}.
    """

    def test_single(self):
        """
        Without C{--workers} the gateway is a lone L{GatewayService}, worker
        1 of 1.
        """
        service = buildService(_options(*SHARED, "--http", "none"))
        self.assertIsInstance(service, GatewayService)
        self.assertEqual((service.workerIndex, service.workerCount), (1, 1))
        self.assertEqual(_parentWatches(service), [])

    def test_group(self):
        """
        Worker 1 of 2 is a L{MultiService} of its L{GatewayService} and a
        L{WorkerGroup} (not started) for worker 2.
        """
        options = _options(
            *SHARED,
            "--workers",
            "2",
            "--http",
            "tcp:8080:interface=127.0.0.1",
            "--drain-timeout",
            "5",
        )
        root = buildService(options)
        self.assertIsInstance(root, MultiService)
        self.assertNotIsInstance(root, GatewayService)
        gateway, group = list(root)
        self.assertIsInstance(gateway, GatewayService)
        self.assertIsInstance(group, WorkerGroup)
        self.assertEqual((gateway.workerIndex, gateway.workerCount), (1, 2))
        self.assertEqual(_parentWatches(gateway), [])
        self.assertFalse(group.running)
        self.assertEqual(group.killTime, 20.0)
        self.assertEqual(list(group._processes), ["worker-2"])
        args = group._processes["worker-2"].args
        self.assertEqual(
            args,
            workerArguments(
                options.arguments,
                2,
                2,
                "tcp:8080:interface=127.0.0.1",
                options["spool"],
                options["dead-letter"],
            ),
        )
        self.assertIn("tcp:8081:interface=127.0.0.1", args)

    def test_childWorker(self):
        """
        Worker 2 is a L{GatewayService} with a parent-watch L{TimerService}
        among its children.
        """
        service = buildService(
            _options(*SHARED, "--workers", "2", "--worker-index", "2", "--http", "none")
        )
        self.assertIsInstance(service, GatewayService)
        self.assertEqual((service.workerIndex, service.workerCount), (2, 2))
        [watch] = _parentWatches(service)
        self.assertIs(watch.parent, service)
        self.assertFalse(watch.running)


def _parentWatches(service):
    """
    The parent-watch timers directly under a service.
    """
    return [
        child
        for child in service
        if isinstance(child, TimerService)
        and "parentWatch" in getattr(child.call[0], "__qualname__", "")
    ]


class RelayedLevelTests(SynchronousTestCase):
    """
    A worker's log lines are relayed at the level the worker logged them.
    """

    def test_levels(self):
        """
        C{#warn}, C{#error} and C{#critical} lines are warnings, errors and
        critical events in the group's log; anything else stays info.
        """
        from twisted.logger import Logger

        from gateway.server.workers import _RelayedLevels

        events = []
        relay = _RelayedLevels(Logger(observer=events.append))
        for level in ("warn", "error", "critical", "info", "debug"):
            relay.info(
                "[{tag}] {line}",
                tag="worker-2",
                stream="stdout",
                line=f"2026-11-21T21:01:33+0000 [gateway.x#{level}] text",
            )
        relay.info(
            "[{tag}] {line}",
            tag="worker-2",
            stream="stdout",
            line="a line that mentions [x#warn] later",
        )
        self.assertEqual(
            [event["log_level"].name for event in events],
            ["warn", "error", "critical", "info", "info", "info"],
        )
        self.assertEqual(events[0]["tag"], "worker-2")
