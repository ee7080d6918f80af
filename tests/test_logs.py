# -*- test-case-name: tests.test_logs -*-
"""
The log observers for C{twistd --logger} and the rate limit on floods of
similar events.
"""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    eventsFromJSONLogFile,
    formatEvent,
)
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.logs import (
    SUPPRESSED_FORMAT,
    RateLimiter,
    jsonObserver,
    rateLimited,
    textObserver,
)

FORMAT = "{listener}: {peer} (connection {connection}): {reason}; closing"


class Events(list):
    """
    A list that is also a log observer.
    """

    def __call__(self, event):
        self.append(event)


def badClient(log, n, reason="too-large"):
    """
    Log C{n} per-connection events the way a framing does.
    """
    for i in range(n):
        log.warn(
            FORMAT, listener="lines", peer=f"10.0.0.{i % 250}:5000", connection=i, reason=reason
        )


class RateLimiterTests(SynchronousTestCase):
    """
    L{RateLimiter} and L{rateLimited}.
    """

    def setUp(self):
        self.clock = Clock()
        self.events = Events()
        self.observer = rateLimited(self.events, self.clock, rate=3, interval=1.0)
        self.log = Logger(namespace="gateway.framing.lines.LinesProtocol", observer=self.observer)

    def summaries(self):
        return [e for e in self.events if e["log_format"] == SUPPRESSED_FORMAT]

    def test_underTheRate(self):
        """
        Up to C{rate} similar events an interval all pass, and no timer is
        left behind.
        """
        badClient(self.log, 3)
        self.assertEqual(len(self.events), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_flood(self):
        """
        Beyond C{rate} similar events in an interval are suppressed and
        counted; when the interval ends one summary event says how many, in
        the same namespace, with the suppressed events' format.
        """
        badClient(self.log, 1000)
        self.assertEqual(len(self.events), 3)
        self.assertEqual([e["connection"] for e in self.events], [0, 1, 2])
        self.assertEqual(self.observer.limiter.suppressedTotal, 997)
        self.clock.advance(0.999)
        self.assertEqual(self.summaries(), [])
        self.clock.advance(0.001)
        [summary] = self.summaries()
        self.assertEqual(summary["log_suppressed"], 997)
        self.assertEqual(summary["log_suppressed_format"], FORMAT)
        self.assertEqual(summary["log_namespace"], self.log.namespace)
        self.assertEqual(summary["log_level"], LogLevel.warn)
        self.assertEqual(summary["log_time"], 1.0)
        self.assertEqual(
            formatEvent(summary),
            f"suppressed 997 similar events in 1.0 s: {FORMAT}",
        )

    def test_nextInterval(self):
        """
        After the summary a new interval starts: C{rate} more events pass.
        """
        badClient(self.log, 10)
        self.clock.advance(1.0)
        badClient(self.log, 10)
        self.clock.advance(1.0)
        passed = [e for e in self.events if e["log_format"] == FORMAT]
        self.assertEqual(len(passed), 6)
        self.assertEqual([e["log_suppressed"] for e in self.summaries()], [7, 7])

    def test_intervalEndsWithoutSuppression(self):
        """
        An interval with nothing suppressed ends by itself: the next event,
        an interval later, opens a fresh one.
        """
        badClient(self.log, 3)
        self.clock.advance(1.0)
        badClient(self.log, 3)
        self.assertEqual(len(self.events), 6)
        self.assertEqual(self.summaries(), [])

    def test_keys(self):
        """
        The limit is per (namespace, format): other formats and other
        namespaces have their own allowance.
        """
        other = Logger(namespace="gateway.router.Router", observer=self.observer)
        badClient(self.log, 5)
        badClient(other, 5)
        self.log.info("listener {listener} listening", listener="lines")
        self.assertEqual(len(self.events), 7)
        self.clock.advance(1.0)
        self.assertEqual(
            sorted((e["log_namespace"], e["log_suppressed"]) for e in self.summaries()),
            [("gateway.framing.lines.LinesProtocol", 2), ("gateway.router.Router", 2)],
        )

    def test_otherNamespaces(self):
        """
        Events from outside the gateway's namespaces (Twisted's own, say)
        are never limited; a namespace that merely starts with "gateway" is
        not the gateway's.
        """
        for namespace in ("twisted.web.server.Request", "gatewayish", "log_legacy"):
            badClient(Logger(namespace=namespace, observer=self.observer), 10)
        self.assertEqual(len(self.events), 30)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_librdkafka(self):
        """
        librdkafka's own log lines (namespace C{librdkafka}) are limited too.
        """
        badClient(Logger(namespace="librdkafka", observer=self.observer), 10)
        self.assertEqual(len(self.events), 3)

    def test_highestLevel(self):
        """
        The summary has the highest level among the suppressed events.
        """
        for level in (LogLevel.info,) * 3 + (LogLevel.error, LogLevel.info):
            self.log.emit(level, FORMAT, listener="l", peer="p", connection=1, reason="r")
        self.clock.advance(1.0)
        [summary] = self.summaries()
        self.assertEqual(summary["log_level"], LogLevel.error)

    def test_flush(self):
        """
        C{flush} sums up at once and cancels the pending timers.
        """
        badClient(self.log, 5)
        self.observer.limiter.flush()
        self.assertEqual([e["log_suppressed"] for e in self.summaries()], [2])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        badClient(self.log, 3)
        self.assertEqual(len(self.events), 7)

    def test_noLimit(self):
        """
        A rate of 0 lets everything through.
        """
        observer = rateLimited(self.events, self.clock, rate=0)
        badClient(Logger(namespace="gateway.x", observer=observer), 100)
        self.assertEqual(len(self.events), 100)

    def test_filteringObserver(self):
        """
        L{rateLimited} is a L{FilteringLogObserver}, an
        L{ILogObserver}, and its predicate a L{RateLimiter}.
        """
        self.assertIsInstance(self.observer, FilteringLogObserver)
        self.assertTrue(verifyObject(ILogObserver, self.observer))
        self.assertIsInstance(self.observer.limiter, RateLimiter)

    def test_badArguments(self):
        """
        A negative rate or a non-positive interval is refused.
        """
        self.assertRaises(ValueError, RateLimiter, self.events, self.clock, rate=-1)
        self.assertRaises(ValueError, RateLimiter, self.events, self.clock, interval=0)


class ObserverFactoryTests(SynchronousTestCase):
    """
    L{jsonObserver} and L{textObserver}, the factories for C{twistd --logger}.
    """

    def setUp(self):
        self.clock = Clock()
        self.stdout = io.StringIO()

    def test_jsonLines(self):
        """
        L{jsonObserver} writes one JSON object per line on standard output:
        the event's own fields, its level and namespace, and C{log_text}, the
        formatted message.
        """
        observer = jsonObserver(environ={}, stdout=self.stdout, clock=self.clock)
        self.assertTrue(verifyObject(ILogObserver, observer))
        log = Logger(namespace="gateway.framing.lines.LinesProtocol", observer=observer)
        badClient(log, 2)
        lines = self.stdout.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first = json.loads(lines[0])
        self.assertEqual(first["listener"], "lines")
        self.assertEqual(first["peer"], "10.0.0.0:5000")
        self.assertEqual(first["connection"], 0)
        self.assertEqual(first["reason"], "too-large")
        self.assertEqual(first["log_namespace"], log.namespace)
        self.assertEqual(first["log_level"]["name"], "warn")
        self.assertNotIn("log_logger", first)
        self.assertEqual(
            first["log_text"], "lines: 10.0.0.0:5000 (connection 0): too-large; closing"
        )
        [event, _] = eventsFromJSONLogFile(io.StringIO(self.stdout.getvalue()), recordSeparator="")
        self.assertEqual(event["log_level"], LogLevel.warn)

    def test_jsonRateLimited(self):
        """
        L{jsonObserver} limits gateway events to C{GATEWAY_LOG_RATE} a
        second (10 by default) and writes the summary as a JSON line too.
        """
        observer = jsonObserver(environ={}, stdout=self.stdout, clock=self.clock)
        badClient(Logger(namespace="gateway.x", observer=observer), 50)
        self.clock.advance(1.0)
        lines = [json.loads(line) for line in self.stdout.getvalue().splitlines()]
        self.assertEqual(len(lines), 11)
        self.assertEqual(lines[-1]["log_suppressed"], 40)
        self.assertEqual(lines[-1]["log_text"], f"suppressed 40 similar events in 1.0 s: {FORMAT}")

    def test_rateFromEnvironment(self):
        """
        C{GATEWAY_LOG_RATE} sets the limit; 0 turns it off; anything but a
        whole number of 0 or more is refused.
        """
        observer = jsonObserver(
            environ={"GATEWAY_LOG_RATE": "2"}, stdout=self.stdout, clock=self.clock
        )
        badClient(Logger(namespace="gateway.x", observer=observer), 5)
        self.assertEqual(len(self.stdout.getvalue().splitlines()), 2)
        self.clock.advance(1)

        unlimited = io.StringIO()
        observer = jsonObserver(
            environ={"GATEWAY_LOG_RATE": "0"}, stdout=unlimited, clock=self.clock
        )
        badClient(Logger(namespace="gateway.x", observer=observer), 50)
        self.assertEqual(len(unlimited.getvalue().splitlines()), 50)

        for bad in ("many", "-1", "1.5"):
            self.assertRaises(
                ValueError,
                jsonObserver,
                environ={"GATEWAY_LOG_RATE": bad},
                stdout=self.stdout,
                clock=self.clock,
            )

    def test_logFile(self):
        """
        With C{GATEWAY_LOG_FILE} set, the observers append to that file
        instead of standard output.
        """
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        path = directory / "gateway.log"
        path.write_text("earlier\n")
        environ = {"GATEWAY_LOG_FILE": str(path)}
        observer = jsonObserver(environ=environ, stdout=self.stdout, clock=self.clock)
        badClient(Logger(namespace="gateway.x", observer=observer), 1)
        observer = textObserver(environ=environ, stdout=self.stdout, clock=self.clock)
        badClient(Logger(namespace="gateway.x", observer=observer), 1)
        lines = path.read_text().splitlines()
        self.assertEqual(lines[0], "earlier")
        self.assertEqual(json.loads(lines[1])["peer"], "10.0.0.0:5000")
        self.assertIn("lines: 10.0.0.0:5000 (connection 0): too-large; closing", lines[2])
        self.assertEqual(self.stdout.getvalue(), "")

    def test_text(self):
        """
        L{textObserver} writes twistd's usual text lines, rate-limited.
        """
        observer = textObserver(environ={}, stdout=self.stdout, clock=self.clock)
        self.assertTrue(verifyObject(ILogObserver, observer))
        badClient(Logger(namespace="gateway.x", observer=observer), 20)
        self.clock.advance(1.0)
        lines = self.stdout.getvalue().splitlines()
        self.assertEqual(len(lines), 11)
        self.assertIn("[gateway.x#warn] lines: 10.0.0.0:5000 (connection 0)", lines[0])
        self.assertIn("suppressed 10 similar events in 1.0 s", lines[-1])


class TwistdLoggerTests(SynchronousTestCase):
    """
    The factories as twistd uses them.
    """

    def test_twistdJSON(self):
        """
        C{twistd -n --logger gateway.logs.jsonObserver gateway ...} calls the
        factory with no arguments and logs JSON lines, the gateway's events
        with their fields among them; 40 bad clients in a burst leave 10
        of their events in the log and a summary counting the rest.
        """
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        logPath = directory / "gateway.jsonl"
        twistd = str(Path(sys.executable).with_name("twistd"))
        process = subprocess.Popen(
            [
                twistd,
                "-n",
                "--pidfile=",
                "--logger",
                "gateway.logs.jsonObserver",
                "gateway",
                "--bootstrap-servers",
                "127.0.0.1:1",
                "--topic",
                "t",
                "--listen",
                "lines=tcp:0:interface=127.0.0.1",
                "--http",
                "tcp:0:interface=127.0.0.1",
                "--max-message-size",
                "100",
                "--drain-timeout",
                "1",
                "--spool",
                "none",
                "--dead-letter",
                "none",
            ],
            cwd=directory,
            env=dict(os.environ, GATEWAY_LOG_FILE=str(logPath)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def events():
            if not logPath.exists():
                return []
            return [
                json.loads(line) for line in logPath.read_text().splitlines() if line.endswith("}")
            ]

        try:
            listening = []
            deadline = time.monotonic() + 30
            while not listening and time.monotonic() < deadline and process.poll() is None:
                listening = [e for e in events() if e.get("listener") == "lines"]
                time.sleep(0.1)
            texts = "\n".join(str(e.get("log_text")) for e in events())
            self.assertTrue(listening, f"no listener event in:\n{texts}")
            port = int(listening[0]["address"].rsplit(":", 1)[1])
            for _ in range(40):
                with socket.create_connection(("127.0.0.1", port)) as client:
                    client.sendall(b"x" * 200)
                    client.settimeout(10)
                    self.assertEqual(client.recv(10), b"")
        finally:
            process.terminate()
            output = process.communicate(timeout=30)[0]
        logged = events()
        self.assertEqual(output, b"")

        [event] = listening[:1]
        self.assertEqual(event["framing"], "lines")
        self.assertEqual(event["endpoint"], "tcp:0:interface=127.0.0.1")
        self.assertRegex(
            event["log_text"],
            r"^listener lines \(lines\) listening on 127\.0\.0\.1:\d+, backlog 4096, "
            r"keepalive True, TCP_KEEPIDLE 60, TCP_KEEPINTVL 15, TCP_KEEPCNT 4$",
        )
        self.assertIn("twistd", logged[0]["log_text"])

        tooLarge = [e for e in logged if e.get("reason") == "too-large"]
        summaries = [e for e in logged if "log_suppressed" in e]
        self.assertTrue(tooLarge)
        self.assertEqual(tooLarge[0]["listener"], "lines")
        self.assertRegex(tooLarge[0]["peer"], r"^127\.0\.0\.1:\d+$")
        self.assertIsInstance(tooLarge[0]["connection"], int)
        self.assertTrue(summaries, "no summary of the suppressed events")
        suppressed = sum(
            e["log_suppressed"]
            for e in summaries
            if e["log_suppressed_format"] == tooLarge[0]["log_format"]
        )
        self.assertEqual(len(tooLarge) + suppressed, 40)
        self.assertLessEqual(len(tooLarge), 10 * len(summaries))
        self.assertLess(len(tooLarge), 40)
