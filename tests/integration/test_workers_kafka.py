# -*- test-case-name: tests.integration.test_workers_kafka -*-
"""
C{twistd gateway --workers 2} end to end: real worker processes sharing one
C{reuseport:} port, a real Kafka broker, records read back, processes and
their broker connections counted from C{/proc}.

The group is started on fixed ports (the point of C{reuseport:}) chosen
below the kernel's ephemeral port range, so no client socket of this or any
other test can take one between the check and the bind; a start that still
loses a port race is retried on new ports.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from devkafka import consume
from tests.integration.support.http import get
from tests.integration.support.process import CLEAN_EXIT, TWISTD, GatewayProcess, producerStopped
from tests.integration.support.procfs import pendingSignals, socketsTo, stopped
from tests.integration.support.topics import newTopic, topicSize
from tests.support.waiting import DEADLINE, waitFor

#: A worker's relayed "Kafka producer stopped" line in the parent's log.
WORKER_STOPPED = re.compile(r"\[worker-(\d+)\] .*Kafka producer stopped: (\d+) records delivered")

#: The parent's own (not relayed) stop line.
OWN_STOPPED = re.compile(
    r"^(?!.*\[worker-\d+\]).*Kafka producer stopped: (\d+) records delivered", re.MULTILINE
)


#: How a lost port race shows in the log.
IN_USE = "Address already in use"


def _ephemeralLow():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    """
    Whether nothing at all (listener, connection, TIME_WAIT) holds C{port}
    on loopback: a plain bind, without C{SO_REUSEADDR}, succeeds.
    """
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def pickPorts(rng):
    """
    :return: C{(listener port, first HTTP port)}, the HTTP port followed by
        a second free one for worker 2, all below the ephemeral range.
    """
    high = _ephemeralLow() - 10
    for _ in range(200):
        port, http = rng.randrange(10000, high), rng.randrange(10000, high - 1)
        wanted = {port, http, http + 1}
        if len(wanted) == 3 and all(_bindable(p) for p in wanted):
            return port, http
    raise AssertionError("no free ports below the ephemeral range")


def getStatus(port, timeout=10.0):
    """
    :return: a worker's C{/status.json}, or L{None} if it does not answer.
    """
    try:
        code, _, body = get(port, "/status.json", timeout)
        return json.loads(body) if code == 200 else None
    except (OSError, ValueError):
        return None


def alive(pid):
    """
    Whether process C{pid} exists and is not a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parentOf(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def processesMentioning(text):
    """
    :return: the pids of every process whose command line contains C{text}.
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read() and alive(int(entry)):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def sendLine(port, line):
    """
    A new connection sending one line, then closing.

    :return: the client's local port.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line + b"\n")
        return sock.getsockname()[1]


class Group:
    """
    A C{twistd gateway --workers N} group on a shared C{reuseport:} port.

    :ivar process: the L{GatewayProcess} of worker 1 (the C{twistd} parent).
    :ivar port: the shared listener port.
    :ivar httpPorts: each worker's HTTP port, worker 1's first.
    :ivar topic: its topic, also how its processes are found in C{/proc}.
    :ivar seenPids: every worker pid its HTTP endpoints have reported (only
        those are killed if left behind).
    """

    def __init__(self, process, topic, port, http, count):
        self.process = process
        self.topic = topic
        self.port = port
        self.httpPorts = [http + index for index in range(count)]
        self.seenPids = set()

    def status(self, index):
        status = getStatus(self.httpPorts[index - 1])
        if status is not None:
            self.seenPids.add(status["worker"]["pid"])
        return status

    def statuses(self, timeout=30.0):
        """
        Every worker's C{/status.json}, worker 1's first, waiting for each to
        answer (a busy machine can delay one for seconds).
        """
        return [
            waitFor(
                lambda index=index: self.status(index),
                timeout,
                lambda index=index: f"worker {index} to answer\n{self.log()[-6000:]}",
            )
            for index in range(1, len(self.httpPorts) + 1)
        ]

    def log(self):
        return self.process.log()

    def waitReady(self, timeout):
        """
        Wait until every worker answers on its own HTTP port, as the worker
        it should be, with its listener bound.

        :return: the statuses.
        """
        count = len(self.httpPorts)

        def ready():
            if IN_USE in self.log():
                # Lost a port race: the fixture starts again on new ports.
                raise AssertionError(f"a port was taken\n{self.log()[-6000:]}")
            statuses = [self.status(index) for index in range(1, count + 1)]
            for index, status in enumerate(statuses, 1):
                if (
                    status is None
                    or status["worker"]
                    != {"index": index, "count": count, "pid": status["worker"]["pid"]}
                    or status["listeners"][0]["address"] is None
                ):
                    return None
            return statuses

        return waitFor(ready, timeout, lambda: f"every worker to answer\n{self.log()[-6000:]}")

    def pids(self):
        return [status["worker"]["pid"] for status in self.statuses()]

    def listenerFigures(self, name):
        """
        :return: a listener figure of each worker, worker 1's first.
        """
        return [status["listeners"][0][name] for status in self.statuses()]


@pytest.fixture
def workers(kafka, tmp_path):
    """
    A function starting a worker group against the test broker, waiting
    until every worker answers; every group is stopped at the end and any
    worker left behind killed (by its pid).
    """
    started = []
    rng = random.Random()

    def start(topic, *args, count=2, prepare=None, wait=True, prefix=()):
        """
        :param prepare: called with the group's working directory before
            it starts.
        :param prefix: a command C{twistd} is run through (which must exec
            it, so the pid stays worker 1's).
        :param wait: wait until every worker answers (else only worker 1's
            listener).
        """
        for attempt in range(3):
            port, http = pickPorts(rng)
            directory = tmp_path / f"group-{len(started)}"
            directory.mkdir()
            if prepare is not None:
                prepare(directory)
            process = GatewayProcess(
                directory,
                [
                    "--bootstrap-servers",
                    kafka.bootstrap,
                    "--topic",
                    topic,
                    "--workers",
                    str(count),
                    "--listen",
                    f"lines=reuseport:{port}:interface=127.0.0.1",
                    "--http",
                    f"tcp:{http}:interface=127.0.0.1",
                    *args,
                ],
            )
            process.command = [*prefix, *process.command]
            group = Group(process, topic, port, http, count)
            started.append(group)
            try:
                process.start(1, timeout=60)
                if wait:
                    group.waitReady(60)
                return group
            except AssertionError:
                process.stop()
                if IN_USE not in process.log() or attempt == 2:
                    raise

    yield start
    for group in started:
        # Shown only when the test failed.
        print(f"--- log of the group on port {group.port} ---\n{group.log()[-10000:]}")
        try:
            group.process.stop()
        finally:
            for pid in processesMentioning(group.topic):
                if pid in group.seenPids:
                    os.kill(pid, signal.SIGKILL)


def test_twoWorkersShareOnePort(kafka, workers):
    """
    Two workers on one C{reuseport:} port: 200 new connections, one line
    each, are spread by the kernel over both (each accepts some, 200 in
    all); each worker delivers exactly what it accepted and Kafka holds
    every line once; the workers are two processes, the second a child of
    the first; each holds at most 3 connections to the broker whatever the
    number of clients.
    """
    topic = newTopic(kafka)
    group = workers(topic)
    brokerPort = int(kafka.bootstrap.rsplit(":", 1)[1])
    pids = group.pids()
    assert pids[0] == group.process.process.pid
    assert pids[1] != pids[0]
    assert parentOf(pids[1]) == pids[0]
    lines = [b"line-%03d-%s" % (n, uuid.uuid4().hex.encode()) for n in range(200)]
    peak = [0, 0]
    for number, line in enumerate(lines):
        sendLine(group.port, line)
        if number % 50 == 49:
            peak = [max(p, socketsTo(pid, brokerPort)) for p, pid in zip(peak, pids)]
    waitFor(
        lambda: sum(group.listenerFigures("accepted")) == 200,
        30,
        lambda: f"200 connections accepted: {group.listenerFigures('accepted')}",
    )
    accepted = group.listenerFigures("accepted")
    assert all(n > 0 for n in accepted), accepted

    def delivered():
        return [status["producer"]["delivered"] for status in group.statuses()]

    waitFor(
        lambda: delivered() == accepted,
        60,
        lambda: f"delivered {delivered()} == accepted {accepted}",
    )
    records = consume(kafka.bootstrap, topic, count=200, timeout=60)
    assert sorted(r.value for r in records) == sorted(lines)
    assert topicSize(kafka.bootstrap, topic) == 200
    peak = [max(p, socketsTo(pid, brokerPort)) for p, pid in zip(peak, pids)]
    assert all(1 <= n <= 3 for n in peak), f"broker connections per worker: {peak}"
    print(f"\n[two workers] accepted={accepted} brokerConnections={peak}")


def test_stopDrainsEveryWorker(kafka, workers):
    """
    With both workers holding open connections whose lines are read but
    (lingering 3 s in the producer) not yet sent, SIGTERM to the parent
    stops the whole group cleanly: both workers log their producer stopped
    with every line delivered before the parent exits, Kafka holds every
    line once, the clients' connections are closed, and no gateway process
    is left.
    """
    topic = newTopic(kafka)
    group = workers(topic, "--kafka-option", "linger.ms=3000", "--drain-timeout", "20")
    pids = group.pids()
    clients, lines = [], []

    def send(sock, text):
        sock.sendall(text + b"\n")
        lines.append(text)

    # Connections until both workers hold some (the kernel spreads them by
    # the connection's address hash: 2^-(n-1) that n all go to one).
    while len(clients) < 100:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", group.port), timeout=10)
            clients.append(sock)
            send(sock, b"first %d" % len(clients))
        waitFor(
            lambda: sum(group.listenerFigures("connections")) == len(clients),
            30,
            lambda: f"{len(clients)} connections open: {group.listenerFigures('connections')}",
        )
        if all(n > 0 for n in group.listenerFigures("connections")):
            break
    assert all(n > 0 for n in group.listenerFigures("connections"))
    for number, sock in enumerate(clients):
        send(sock, b"second %d" % number)
    sent = sum(len(line) + 1 for line in lines)
    waitFor(
        lambda: sum(group.listenerFigures("bytesReceived")) == sent,
        30,
        lambda: f"{sent} bytes read: {group.listenerFigures('bytesReceived')}",
    )
    pending = [s["producer"]["pending"] for s in group.statuses()]

    started = time.monotonic()
    code = group.process.stop(timeout=60)
    assert code in CLEAN_EXIT
    stoppedAfter = time.monotonic() - started
    log = group.log()
    relayed = WORKER_STOPPED.findall(log)
    own = OWN_STOPPED.findall(log)
    assert [index for index, _ in relayed] == ["2"], log[-6000:]
    assert len(own) == 1, log[-6000:]
    assert int(relayed[0][1]) + int(own[0]) == len(lines)
    assert [stopped[1:] for stopped in producerStopped(log)] == [(0, 0, 0)] * 2
    # The group reported stopped only after worker 2 had drained.
    assert log.index("every gateway worker has stopped") > WORKER_STOPPED.search(log).end()

    records = consume(kafka.bootstrap, topic, count=len(lines), timeout=60)
    assert sorted(r.value for r in records) == sorted(lines)
    assert topicSize(kafka.bootstrap, topic) == len(lines)
    for sock in clients:
        sock.settimeout(10)
        assert sock.recv(1) == b""
        sock.close()
    waitFor(lambda: not any(alive(pid) for pid in pids), 10, f"workers {pids} to be gone")
    assert processesMentioning(topic) == []
    print(
        f"\n[drain] lines={len(lines)} pendingAtStop={pending} "
        f"stoppedAfter={stoppedAfter:.1f}s exit={code} perWorker={relayed} own={own}"
    )


def test_deadWorkerRestarted(kafka, workers):
    """
    Worker 2 killed with SIGKILL is started again within seconds: a new
    process answers on worker 2's HTTP port, and new connections are again
    spread over both workers, every line delivered once.
    """
    topic = newTopic(kafka)
    group = workers(topic)
    before = [b"before %d" % n for n in range(20)]
    for line in before:
        sendLine(group.port, line)
    waitFor(
        lambda: sum(s["producer"]["delivered"] for s in group.statuses()) == 20,
        30,
        "the first 20 lines delivered",
    )
    parent, old = group.pids()
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()

    def restarted():
        status = group.status(2)
        if (
            status is not None
            and status["worker"]["pid"] not in (old, parent)
            and status["listeners"][0]["address"] is not None
        ):
            return status
        return None

    new = waitFor(restarted, 30, lambda: f"a new worker 2\n{group.log()[-6000:]}")["worker"]["pid"]
    restartedAfter = time.monotonic() - killed
    assert not alive(old)
    assert parentOf(new) == parent
    assert group.pids() == [parent, new]
    after = []
    while len(after) < 200:
        for _ in range(20):
            after.append(b"after %d" % len(after))
            sendLine(group.port, after[-1])
        if group.statuses()[1]["listeners"][0]["accepted"] > 0:
            break
    records = consume(kafka.bootstrap, topic, count=len(before) + len(after), timeout=60)
    assert sorted(r.value for r in records) == sorted(before + after)
    # Everything is in Kafka, so every connection has been accepted.
    newAccepted = group.statuses()[1]["listeners"][0]["accepted"]
    assert newAccepted > 0
    waitFor(
        lambda: group.statuses()[1]["producer"]["delivered"] == newAccepted,
        30,
        "the new worker 2 to deliver what it accepted",
    )
    assert topicSize(kafka.bootstrap, topic) == len(before) + len(after)
    print(
        f"\n[restart] restartedAfter={restartedAfter:.1f}s oldPid={old} newPid={new} "
        f"newWorkerAccepted={newAccepted} of {len(after)}"
    )


def test_orphanedWorkerDrainsAndStops(kafka, workers):
    """
    When the group's C{twistd} process dies without stopping its workers
    (SIGKILL), worker 2 notices within seconds that its supervisor is gone,
    drains (every line it had read reaches Kafka, although they were still
    lingering in its producer) and exits: no orphan keeps serving the port.
    """
    topic = newTopic(kafka)
    group = workers(topic, "--kafka-option", "linger.ms=3000")
    parent, child = group.pids()
    sent, mine = [], []
    accepted = group.listenerFigures("accepted")
    while len(mine) < 5 and len(sent) < 200:
        sent.append(b"orphan %d" % len(sent))
        sendLine(group.port, sent[-1])
        waitFor(
            lambda: sum(group.listenerFigures("accepted")) == len(sent),
            30,
            f"{len(sent)} connections accepted",
        )
        now = group.listenerFigures("accepted")
        if now[1] > accepted[1]:
            mine.append(sent[-1])
        accepted = now
    waitFor(
        lambda: group.statuses()[1]["producer"]["accepted"] == len(mine),
        30,
        f"worker 2 to read its {len(mine)} lines",
    )
    pending = group.statuses()[1]["producer"]["pending"]

    os.kill(parent, signal.SIGKILL)
    group.process.process.wait(30)
    killed = time.monotonic()
    waitFor(lambda: not alive(child), 30, f"worker 2 (pid {child}) to stop")
    stoppedAfter = time.monotonic() - killed
    assert processesMentioning(topic) == []
    assert getStatus(group.httpPorts[1], timeout=2) is None
    # Nothing more can reach the topic: both workers are gone.
    records = consume(kafka.bootstrap, topic, count=topicSize(kafka.bootstrap, topic), timeout=60)
    values = [r.value for r in records]
    assert all(values.count(line) == 1 for line in mine), (mine, values)
    print(
        f"\n[orphan] worker2Lines={len(mine)} pendingAtKill={pending} "
        f"stoppedAfter={stoppedAfter:.1f}s inKafka={len(values)} of {len(sent)}"
    )


def test_workingDirectoryDoesNotShadowWorkers(kafka, workers):
    """
    Workers 2..N import the same code as worker 1: a C{gateway} package in
    the working directory (which C{twistd} does not put on C{sys.path}) is
    ignored by them too, and worker 2 starts.
    """

    def shadow(directory):
        (directory / "gateway").mkdir()
        (directory / "gateway" / "__init__.py").write_text(
            'raise SystemExit("shadowed: imported from the working directory")\n'
        )

    group = workers(newTopic(kafka), prepare=shadow, wait=False)
    waitFor(
        lambda: group.status(2) is not None or "shadowed:" in group.log(),
        60,
        "worker 2 to answer or fail",
    )
    assert "shadowed:" not in group.log()
    assert group.statuses()[1]["worker"]["index"] == 2


#: Runs twistd as the leader of a new session with the default SIGINT
#: action (a test runner in the background may have it ignored), as a shell
#: in a terminal would.
SESSION_LEADER = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.setsid(); os.execv(sys.argv[1], sys.argv[1:])",
]


def test_interruptStopsWithoutErrors(kafka, workers):
    """
    Ctrl-C in the terminal (SIGINT to the group's whole process group) stops
    the group cleanly: every worker drains and no error is logged.  Worker 2
    is stopped (SIGSTOP, every thread of it, as C{/proc} shows) before the
    Ctrl-C and held until the group's own SIGTERM is pending in it, so the
    SIGINT and the group's SIGTERM meet in it every time, as they can on a
    busy machine.
    """
    group = workers(newTopic(kafka), prefix=SESSION_LEADER)
    parent, child = group.pids()
    assert os.getpgid(parent) == parent
    os.kill(child, signal.SIGSTOP)
    try:
        # Stopped for good before the Ctrl-C: a thread still running would
        # take the group's SIGTERM and leave it to run when continued.
        waitFor(lambda: stopped(child), DEADLINE, f"worker 2 (pid {child}) to stop")
        os.killpg(parent, signal.SIGINT)
        waitFor(lambda: OWN_STOPPED.search(group.log()), 30, "worker 1 to drain")
        # The group's SIGTERM has reached worker 2 (held, unhandled, while
        # it is stopped) before it runs again.
        waitFor(
            lambda: signal.SIGTERM in pendingSignals(child),
            DEADLINE,
            f"the group's SIGTERM pending in worker 2 (pid {child})",
        )
    finally:
        os.kill(child, signal.SIGCONT)
    assert group.process.process.wait(60) in CLEAN_EXIT + (-signal.SIGINT,)
    log = group.log()
    assert [index for index, _ in WORKER_STOPPED.findall(log)] == ["2"], log[-6000:]
    assert "every gateway worker has stopped" in log
    errors = [
        line
        for line in log.splitlines()
        if "#critical]" in line or "#error]" in line or "Traceback" in line
    ]
    assert errors == [], "\n".join(errors)


@pytest.mark.parametrize(
    "listen,fragment",
    [
        ("lines=tcp:0", "reuseport:"),
        ("lines=reuseport:0:interface=127.0.0.1", "fixed port"),
    ],
)
def test_usageErrorBeforeStart(tmp_path, listen, fragment):
    """
    C{--workers 2} with a listener that cannot be shared exits 1 with one
    line saying why, before anything is started or written.
    """
    result = subprocess.run(
        [
            TWISTD,
            "-n",
            "--pidfile=",
            "gateway",
            "--workers",
            "2",
            "--topic",
            "t",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--listen",
            listen,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result
    output = (result.stdout + result.stderr).strip().splitlines()
    errors = [line for line in output if "--workers 2" in line]
    assert len(errors) == 1, output
    assert fragment in errors[0]
    assert len(output) <= 3, output
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []
