# -*- test-case-name: tests.test_paths -*-
"""
Tests for L{gateway.paths}: why the gateway could not write where it was
told to.
"""

import os
from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from gateway.paths import (
    directoryProblem,
    fileProblem,
    freeSpaceProblem,
    logFileProblem,
    unixSocketPath,
)
from tests.support.files import temporaryDirectory


def denied(path, mode):
    """
    L{os.access} as it answers a user without write permission (the tests
    may run as root, whom permissions do not stop).
    """
    return False


class FileProblemTests(SynchronousTestCase):
    """
    L{fileProblem} and L{directoryProblem}.
    """

    def setUp(self):
        self.directory = temporaryDirectory(self)

    def test_writable(self):
        """
        A new or existing file in an existing, writable directory has no
        problem; nor has a relative name (the working directory).
        """
        path = os.path.join(self.directory, "spool.jsonl")
        self.assertIsNone(fileProblem(path))
        open(path, "w").close()
        self.assertIsNone(fileProblem(path))
        self.assertIsNone(fileProblem("relative.jsonl"))

    def test_missingDirectory(self):
        """
        A missing directory is named.
        """
        missing = os.path.join(self.directory, "gone")
        self.assertEqual(
            fileProblem(os.path.join(missing, "spool.jsonl")),
            f"directory {missing} does not exist",
        )

    def test_notADirectory(self):
        """
        A file where the directory should be, and a directory where the file
        should be, are named.
        """
        path = os.path.join(self.directory, "file")
        open(path, "w").close()
        self.assertEqual(fileProblem(os.path.join(path, "x")), f"{path} is not a directory")
        self.assertEqual(fileProblem(self.directory), f"{self.directory} is a directory")

    def test_notWritable(self):
        """
        A directory, or an existing file, the process may not write to is
        named.
        """
        path = os.path.join(self.directory, "spool.jsonl")
        self.assertEqual(
            fileProblem(path, access=denied), f"directory {self.directory} is not writable"
        )
        open(path, "w").close()
        self.assertEqual(fileProblem(path, access=denied), f"{path} is not writable")
        self.assertEqual(
            directoryProblem(self.directory, access=denied),
            f"directory {self.directory} is not writable",
        )


class FreeSpaceTests(SynchronousTestCase):
    """
    L{freeSpaceProblem}.
    """

    def statvfs(self, free):
        return lambda path: SimpleNamespace(f_bavail=free, f_frsize=1)

    def test_full(self):
        """
        Less than a block free is a full file system.
        """
        self.assertEqual(
            freeSpaceProblem("/x/spool", statvfs=self.statvfs(100)),
            "no space left (100 bytes free)",
        )

    def test_room(self):
        """
        A block free, or a directory that is gone (L{fileProblem} says so),
        is no space problem.
        """
        self.assertIsNone(freeSpaceProblem("/x/spool", statvfs=self.statvfs(4096)))
        missing = os.path.join(temporaryDirectory(self), "gone", "spool")
        self.assertIsNone(freeSpaceProblem(missing))


class UnixSocketPathTests(SynchronousTestCase):
    """
    L{unixSocketPath}.
    """

    def test_unix(self):
        """
        A C{unix:} endpoint's socket file, with or without options.
        """
        self.assertEqual(unixSocketPath("unix:/run/gw.sock"), "/run/gw.sock")
        self.assertEqual(unixSocketPath("unix:/run/gw.sock:mode=660:lockfile=0"), "/run/gw.sock")

    def test_notAFile(self):
        """
        TCP endpoints and abstract-namespace sockets bind no file.
        """
        self.assertIsNone(unixSocketPath("tcp:9000"))
        self.assertIsNone(unixSocketPath("unix:@gateway"))


class LogFileProblemTests(SynchronousTestCase):
    """
    L{logFileProblem}: twistd's own C{--logfile}.
    """

    def test_missingDirectory(self):
        """
        A log file in a missing directory is named with C{--logfile}.
        """
        path = os.path.join(temporaryDirectory(self), "gone", "twistd.log")
        self.assertEqual(
            logFileProblem({"logfile": path, "nodaemon": True}),
            f"--logfile {path}: cannot write there: directory {os.path.dirname(path)} "
            "does not exist",
        )

    def test_noFile(self):
        """
        No file is written to stdout (C{-}, or C{-n} without C{--logfile}),
        to syslog, or without twistd's options.
        """
        self.assertIsNone(logFileProblem({"logfile": "-", "nodaemon": False}))
        self.assertIsNone(logFileProblem({"logfile": None, "nodaemon": True}))
        self.assertIsNone(logFileProblem({"syslog": True, "logfile": "/gone/x.log"}))
        self.assertIsNone(logFileProblem(None))

    def test_daemonDefault(self):
        """
        A daemon without C{--logfile} writes C{twistd.log} in the working
        directory, which is checked.
        """
        self.assertEqual(
            logFileProblem({"logfile": None, "nodaemon": False}, access=denied),
            "--logfile twistd.log: cannot write there: directory . is not writable",
        )
