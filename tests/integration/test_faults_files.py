# -*- test-case-name: tests.integration.test_faults_files -*-
"""
The host's faults around the files the gateway writes (the fault matrix's
file rows in C{docs/guarantees.md}): paths it cannot write refused at start;
a dead-letter directory removed at run time; the spool's directory removed
before a stop; a full disk under the spool and the dead-letter file.

Each test runs a real C{twistd gateway}; those that deliver read Kafka
back, those that need records pending run against a port no broker listens
on (nothing can be delivered, so everything read must be kept or counted).
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from devkafka import freePort
from gateway.kafka.records import FORMAT, RecordFile
from tests.integration.support.filesystems import fill, tmpfs
from tests.integration.support.http import readiness, scrape
from tests.integration.support.process import (
    CLEAN_EXIT,
    TWISTD,
    linesGateway,
    producerStopped,
    stopGateway,
)
from tests.integration.support.topics import newTopic, topicSize
from tests.support.waiting import DEADLINE, waitFor

#: The exit status of a stop that lost records (L{gateway.service.EXIT_UNKEPT}).
EXIT_UNKEPT = 3

#: The seconds a stop may take beyond C{--drain-timeout} on a busy machine.
STOP_MARGIN = 15.0

#: Records the client library refuses at once over this size (librdkafka's
#: smallest C{message.max.bytes}), broker or not.
CLIENT_LIMIT = 1000


def report(name, **figures):
    """
    Print a test's figures (shown with C{pytest -s} or on failure).
    """
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def withoutBroker(directory, *args, **keywords):
    """
    A gateway (not started) whose bootstrap port no broker listens on, so
    every record it reads stays pending; a 1 s drain.
    """
    bootstrap = f"127.0.0.1:{freePort()}"
    return linesGateway(directory, bootstrap, "t", "--drain-timeout", "1", *args, **keywords)


def run(directory, twistdArgs, gatewayArguments, timeout=30.0):
    """
    Run C{twistd -n ... gateway ...} that is expected to refuse to start.

    :return: C{(exit status, output)}; a gateway still running after
        C{timeout} seconds is killed and fails the test.
    """
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", *twistdArgs, "gateway", *gatewayArguments],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(
            f"the gateway started (still running after {timeout} s):\n{output.decode()}"
        ) from None
    return process.returncode, output.decode(errors="replace")


def lastSeen(fetch, wanted, timeout):
    """
    Poll C{fetch()} until C{wanted} says yes or C{timeout} seconds passed.

    :return: the last value fetched (the caller asserts on it later).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if wanted(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def stoppedLine(log):
    """
    :return: the producer's last line: C{(delivered, not delivered,
        spooled, dead-lettered, not kept)}.
    """
    [(delivered, left, spooled, dead)] = producerStopped(log)
    line = log[log.rindex("Kafka producer stopped") :].splitlines()[0]
    unkept = 0
    if "could not be kept" in line:
        unkept = int(line.split("dead-lettered, ")[1].split(" could not be kept")[0])
    return delivered, left, spooled, dead, unkept


@pytest.mark.parametrize(
    "case",
    ["spool", "dead-letter", "unix-socket", "http-unix-socket", "logfile", "read-only-logdir"],
)
def test_unwritablePathRefusedAtStart(tmp_path, case):
    """
    A path the gateway would write where it cannot (a missing directory, a
    read-only file system) is refused before anything listens: exit status
    1 and a message naming the option and the path.
    """
    missing = tmp_path / "missing" / "file"
    log = tmp_path / "twistd.log"
    twistdArgs = [f"--logfile={log}"]
    args = ["--bootstrap-servers", f"127.0.0.1:{freePort()}", "--topic", "t"]
    args += ["--listen", "lines=tcp:0:interface=127.0.0.1", "--http", "tcp:0:interface=127.0.0.1"]
    if case == "spool":
        args += ["--spool", str(missing)]
        named = ["--spool", str(missing)]
    elif case == "dead-letter":
        args += ["--dead-letter", str(missing)]
        named = ["--dead-letter", str(missing)]
    elif case == "unix-socket":
        args += ["--listen", f"lines=unix:{missing}"]
        named = [f"unix:{missing}", str(tmp_path / "missing")]
    elif case == "http-unix-socket":
        args[args.index("--http") + 1] = f"unix:{missing}"
        named = [f"unix:{missing}", str(tmp_path / "missing")]
    elif case == "logfile":
        twistdArgs = [f"--logfile={missing}"]
        named = ["--logfile", str(missing)]
    else:
        readOnly = tmp_path / "ro"
        twistdArgs = [f"--logfile={readOnly / 'twistd.log'}"]
        named = ["--logfile", str(readOnly), "read-only"]
    if case == "read-only-logdir":
        with tmpfs(tmp_path / "ro", 65536, readOnly=True):
            status, output = run(tmp_path, twistdArgs, args)
    else:
        status, output = run(tmp_path, twistdArgs, args)
    report(f"start refused: {case}", status=status, output=output.strip().splitlines()[-1])
    assert status == 1, output
    assert all(word in output for word in named), output
    assert "Traceback" not in output, output
    assert "listening on" not in output
    assert not log.exists() or "listening on" not in log.read_text()


def test_deadLetterDirectoryRemoved(kafka, tmp_path):
    """
    The dead-letter file's directory is removed while the gateway runs: a
    refused record stays in memory (counted, C{/readyz} 503 with the
    reason, C{/metrics}), the next line in the same read and the
    connection are unaffected; once the directory is back the record is
    written, readiness returns, and the stop is clean.

    A regression test: the gateway used to raise C{FileNotFoundError} into
    the connection, losing the next line and closing it.
    """
    topic = newTopic(kafka)
    directory = tmp_path / "dead"
    directory.mkdir()
    path = directory / "dead.jsonl"
    gateway = linesGateway(
        tmp_path,
        kafka.bootstrap,
        topic,
        "--health-interval",
        "1",
        "--dead-letter",
        str(path),
        "--kafka-option",
        f"message.max.bytes={CLIENT_LIMIT}",
    )
    try:
        gateway.start(1)
        gateway.waitForHttpPort()
        waitFor(lambda: readiness(gateway)[0] == 200, DEADLINE, "the gateway to be ready")
        shutil.rmtree(directory)
        with gateway.connect("lines") as sock:
            sock.sendall(b"B" * (2 * CLIENT_LIMIT) + b"\nafter-1\n")
            waitFor(lambda: topicSize(kafka.bootstrap, topic) == 1, DEADLINE, "after-1 in Kafka")
            sock.sendall(b"after-2\n")
            waitFor(lambda: topicSize(kafka.bootstrap, topic) == 2, DEADLINE, "after-2 in Kafka")
            code, body = waitFor(
                lambda: (lambda r: r if r[0] == 503 else None)(readiness(gateway)),
                DEADLINE,
                "/readyz to say the dead-letter file cannot be written",
            )
            metrics = scrape(gateway)
            held = metrics[("gateway_dead_letters_held", ())]
            writable = metrics[("gateway_storage_writable", ())]
            directory.mkdir()
            waitFor(path.exists, DEADLINE, "the held record written to the dead-letter file")
            waitFor(lambda: readiness(gateway)[0] == 200, DEADLINE, "/readyz 200 again")
            sock.sendall(b"after-3\n")
            waitFor(lambda: topicSize(kafka.bootstrap, topic) == 3, DEADLINE, "after-3 in Kafka")
        status = gateway.stop()
        log = gateway.log()
        [entry] = [json.loads(line) for line in path.read_text().splitlines()]
        report(
            "dead-letter directory removed",
            sent=4,
            inKafka=topicSize(kafka.bootstrap, topic),
            deadLettered=1,
            heldWhileRemoved=held,
            readyz=f"{code} {body}",
            stopped=stoppedLine(log),
        )
        assert body["state"] == "storage" and str(directory) in body["reason"], body
        assert (held, writable) == (1, 0)
        assert status in CLEAN_EXIT, log[-3000:]
        assert stoppedLine(log) == (3, 0, 0, 1, 0), log[-3000:]
        assert entry["format"] == FORMAT and "MSG_SIZE_TOO_LARGE" in entry["reason"]
        assert "Unhandled Error" not in log and "Traceback" not in log, log[-3000:]
    finally:
        stopGateway(gateway)


def test_spoolDirectoryRemovedBeforeStop(tmp_path):
    """
    With records pending (no broker answers) the spool's directory is
    removed: C{/readyz} says so at once, and the SIGTERM stop ends within
    C{--drain-timeout} plus a margin, with the count of records it could not
    keep in its last log line and exit status 3; twistd's pidfile is
    removed all the same.

    A regression test: the stop used to hang forever, the last line
    C{draining the Kafka producer: N records to confirm}.
    """
    directory = tmp_path / "spool"
    directory.mkdir()
    pidfile = tmp_path / "twistd.pid"
    gateway = withoutBroker(tmp_path, "--spool", str(directory / "spool.jsonl"), pidfile=pidfile)
    sent = 50
    try:
        gateway.start(1)
        gateway.waitForHttpPort()
        assert pidfile.exists()
        with gateway.connect("lines") as sock:
            sock.sendall(b"".join(b"line %d\n" % i for i in range(sent)))
            waitFor(
                lambda: scrape(gateway)[("gateway_messages_received_total", ())] == sent,
                DEADLINE,
                "every line read",
            )
        shutil.rmtree(directory)
        # Checked after the stop, which is what failed before (it hung).
        code, body = lastSeen(
            lambda: readiness(gateway), lambda r: r[1]["state"] == "storage", DEADLINE
        )
        stopping = time.monotonic()
        status = gateway.stop(timeout=1 + STOP_MARGIN)
        stoppedIn = time.monotonic() - stopping
        log = gateway.log()
        report(
            "spool directory removed before stop",
            sent=sent,
            inKafka=0,
            stoppedIn=f"{stoppedIn:.1f}s",
            exitStatus=status,
            readyz=f"{code} {body['reason']}",
            stopped=stoppedLine(log),
        )
        assert status == EXIT_UNKEPT, log[-3000:]
        assert not pidfile.exists()
        assert stoppedLine(log) == (0, sent, 0, 0, sent), log[-3000:]
        assert code == 503 and str(directory) in body["reason"], body
    finally:
        stopGateway(gateway)


def test_diskFull(tmp_path):
    """
    The spool and the dead-letter file on a 256 KiB file system: filled up,
    a refused record is held in memory (C{/readyz} 503: no space), and
    written once space is freed; at stop, with more records pending than
    the disk holds, the spool keeps the whole records that fit, the rest is
    counted as not kept, and the exit status is 3.
    """
    disk = tmp_path / "disk"
    with tmpfs(disk, 256 * 1024):
        spool = disk / "spool.jsonl"
        deadLetters = disk / "dead.jsonl"
        gateway = withoutBroker(
            tmp_path,
            "--spool",
            str(spool),
            "--dead-letter",
            str(deadLetters),
            "--kafka-option",
            f"message.max.bytes={CLIENT_LIMIT}",
        )
        sent = 2000
        try:
            gateway.start(1)
            gateway.waitForHttpPort()
            filler = disk / "filler"
            fill(filler)
            with gateway.connect("lines") as sock:
                sock.sendall(b"B" * (2 * CLIENT_LIMIT) + b"\n")
                waitFor(
                    lambda: scrape(gateway)[("gateway_dead_letters_held", ())] == 1,
                    DEADLINE,
                    "the refused record held in memory",
                )
                code, body = waitFor(
                    lambda: (lambda r: r if r[1]["state"] == "storage" else None)(
                        readiness(gateway)
                    ),
                    DEADLINE,
                    "/readyz to say the disk is full",
                )
                os.remove(filler)
                waitFor(
                    lambda: scrape(gateway)[("gateway_dead_letters_held", ())] == 0,
                    DEADLINE,
                    "the held record written once there is room",
                )
                sock.sendall(b"".join(b"%06d %s\n" % (i, b"x" * 100) for i in range(sent)))
                waitFor(
                    lambda: scrape(gateway)[("gateway_messages_received_total", ())] == sent + 1,
                    DEADLINE,
                    "every line read",
                )
            status = gateway.stop(timeout=1 + STOP_MARGIN)
            log = gateway.log()
            delivered, left, spooled, dead, unkept = stoppedLine(log)
            inSpool = RecordFile(spool).read()
            report(
                "disk full",
                sent=sent,
                deadLettered=dead,
                readyz=f"{code} {body['reason']}",
                spooled=spooled,
                notKept=unkept,
                exitStatus=status,
            )
            assert "No space left" in body["reason"] or "no space left" in body["reason"], body
            assert (delivered, left, dead) == (0, sent, 1), log[-3000:]
            assert 0 < spooled < sent and spooled + unkept == sent, log[-3000:]
            assert len(inSpool) == spooled
            assert len(RecordFile(deadLetters).read()) == 1
            assert [r.value for r in inSpool] == [
                b"%06d %s" % (i, b"x" * 100) for i in range(spooled)
            ]
            assert status == EXIT_UNKEPT, log[-3000:]
        finally:
            stopGateway(gateway)
