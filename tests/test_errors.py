# -*- test-case-name: tests.test_errors -*-
"""
Tests for L{gateway.errors}: start-up failures as one line.
"""

import errno
import io
import sys

from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from gateway.errors import (
    StartupError,
    StartupGuard,
    debugRequested,
    describe,
    installHook,
    oneLine,
    report,
)


class DescribeTests(SynchronousTestCase):
    """
    L{describe}.
    """

    def test_portInUse(self):
        """
        A TCP port that cannot be bound: the address and the system's reason.
        """
        error = CannotListenError(
            "127.0.0.1", 9000, OSError(errno.EADDRINUSE, "Address already in use")
        )
        self.assertEqual(
            describe(error), "cannot listen on 127.0.0.1:9000: address already in use"
        )

    def test_anyInterface(self):
        """
        A port on every interface is written C{*:PORT}.
        """
        error = CannotListenError("", 9000, OSError(errno.EACCES, "Permission denied"))
        self.assertEqual(describe(error), "cannot listen on *:9000: permission denied")

    def test_unixSocket(self):
        """
        A C{unix:} socket that cannot be bound: its path.
        """
        error = CannotListenError(
            None, "/run/x/g.sock", OSError(errno.ENOENT, "No such file or directory")
        )
        self.assertEqual(
            describe(error), "cannot listen on /run/x/g.sock: no such file or directory"
        )

    def test_symlinkTarget(self):
        """
        An error from C{symlink} (a C{unix:} endpoint's lock file) names the
        link, not the process id it points to.
        """
        error = FileNotFoundError(
            errno.ENOENT, "No such file or directory", "4242", None, b"/x/g.sock.lock"
        )
        self.assertEqual(describe(error), "no such file or directory: /x/g.sock.lock")

    def test_fileError(self):
        """
        Another system error: the reason and the file.
        """
        error = PermissionError(errno.EACCES, "Permission denied", "/var/log/g.log")
        self.assertEqual(describe(error), "permission denied: /var/log/g.log")

    def test_otherErrors(self):
        """
        Anything else is its message on one line, or its class's name.
        """
        self.assertEqual(describe(ValueError("bad\n  broker")), "bad broker")
        self.assertEqual(describe(RuntimeError()), "RuntimeError")


class ReportTests(SynchronousTestCase):
    """
    L{report} and L{debugRequested}.
    """

    def test_oneLine(self):
        """
        The message becomes one line after C{gateway: }.
        """
        stream = io.StringIO()
        report("two\nlines", stream)
        self.assertEqual(stream.getvalue(), "gateway: two lines\n")

    def test_debug(self):
        """
        C{GATEWAY_DEBUG} asks for tracebacks unless empty, 0, no or false.
        """
        for value in ("1", "yes", "true"):
            self.assertTrue(debugRequested({"GATEWAY_DEBUG": value}))
        for value in ("", "0", "no", "False"):
            self.assertFalse(debugRequested({"GATEWAY_DEBUG": value}))
        self.assertFalse(debugRequested({}))


class HookTests(SynchronousTestCase):
    """
    L{installHook}.
    """

    def setUp(self):
        self.patch(sys, "excepthook", self.previous)
        self.passed = []

    def previous(self, kind, value, traceback):
        self.passed.append(value)

    def test_startupErrorIsOneLine(self):
        """
        An uncaught L{StartupError} is its line; another exception is
        described in one line too, saying how to see its traceback; a
        C{KeyboardInterrupt} goes to the hook installed before.
        """
        stream = io.StringIO()
        installHook({}, stream)
        sys.excepthook(StartupError, StartupError("cannot listen"), None)
        error = FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/g.log")
        sys.excepthook(FileNotFoundError, error, None)
        interrupt = KeyboardInterrupt()
        sys.excepthook(KeyboardInterrupt, interrupt, None)
        self.assertEqual(
            stream.getvalue().splitlines(),
            [
                "gateway: cannot listen",
                "gateway: no such file or directory: /x/g.log "
                "(GATEWAY_DEBUG=1 shows the traceback)",
            ],
        )
        self.assertEqual(self.passed, [interrupt])

    def test_once(self):
        """
        Installing twice wraps once.
        """
        installHook({}, io.StringIO())
        hook = sys.excepthook
        installHook({}, io.StringIO())
        self.assertIs(sys.excepthook, hook)

    def test_debug(self):
        """
        With C{GATEWAY_DEBUG=1} nothing is installed.
        """
        installHook({"GATEWAY_DEBUG": "1"}, io.StringIO())
        self.assertEqual(sys.excepthook, self.previous)


class Failing(Service):
    """
    A service whose start raises C{error} in C{phase}.
    """

    def __init__(self, error, phase):
        self.error, self.phase = error, phase

    def privilegedStartService(self):
        if self.phase == "privileged":
            raise self.error

    def startService(self):
        Service.startService(self)
        if self.phase == "start":
            raise self.error


class GuardTests(SynchronousTestCase):
    """
    L{StartupGuard}.
    """

    def test_phases(self):
        """
        What a child raises while binding or starting becomes a
        L{StartupError} with the line L{StartupGuard.explain} gives, and is
        logged.
        """
        for phase, start in [
            ("privileged", StartupGuard.privilegedStartService),
            ("start", StartupGuard.startService),
        ]:
            guard = StartupGuard(explain=lambda e: f"explained {e}", environ={})
            Failing(ValueError("nope"), phase).setServiceParent(guard)
            with capturedLogs() as events:
                error = self.assertRaises(StartupError, start, guard)
            self.assertEqual(str(error), "explained nope")
            self.assertEqual(
                [(e["log_level"], formatEvent(e)) for e in events],
                [(LogLevel.critical, "gateway not started: explained nope")],
            )

    def test_debug(self):
        """
        With C{GATEWAY_DEBUG=1}, the child's own exception goes through.
        """
        guard = StartupGuard(environ={"GATEWAY_DEBUG": "1"})
        Failing(KeyError("k"), "privileged").setServiceParent(guard)
        self.assertRaises(KeyError, guard.privilegedStartService)

    def test_startupErrorKept(self):
        """
        A L{StartupError} is already one line: it goes through as it is.
        """
        guard = StartupGuard(explain=lambda e: "not this", environ={})
        Failing(StartupError("this"), "start").setServiceParent(guard)
        error = self.assertRaises(StartupError, guard.startService)
        self.assertEqual(str(error), "this")

    def test_started(self):
        """
        Children that start are started.
        """
        guard = StartupGuard(environ={})
        child = Service()
        child.setServiceParent(guard)
        guard.privilegedStartService()
        guard.startService()
        self.assertTrue(child.running)


class OneLineTests(SynchronousTestCase):
    """
    L{oneLine}, for what a C{.tac} file builds.
    """

    def test_exits(self):
        """
        An exception in the block is its line and exit status 1.
        """
        stream = io.StringIO()
        with self.assertRaises(SystemExit) as caught:
            with oneLine({}, stream):
                raise ValueError("malformed endpoint 'tcp:x'")
        self.assertEqual(caught.exception.code, 1)
        self.assertEqual(stream.getvalue(), "gateway: malformed endpoint 'tcp:x'\n")

    def test_quietWhenFine(self):
        """
        A block that raises nothing writes nothing.
        """
        stream = io.StringIO()
        with oneLine({}, stream):
            pass
        self.assertEqual(stream.getvalue(), "")

    def test_debug(self):
        """
        With C{GATEWAY_DEBUG=1} the exception goes through.
        """
        with self.assertRaises(ValueError):
            with oneLine({"GATEWAY_DEBUG": "1"}, io.StringIO()):
                raise ValueError("x")
