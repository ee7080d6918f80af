"""
Tests for L{gateway.allocator}: the library C{malloc} comes from, as
the producer's start line names it.
"""

import ctypes
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from gateway import allocator
from gateway.allocator import PRELOAD, mallocLibrary


def mallocOf(preload):
    """
    :return: what L{mallocLibrary} says in a new Python process started
        with C{LD_PRELOAD=preload}.
    """
    done = subprocess.run(
        [sys.executable, "-c", "from gateway.allocator import *; print(mallocLibrary())"],
        env=dict(os.environ, LD_PRELOAD=preload),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


class MallocLibraryTests(SynchronousTestCase):
    def test_system(self):
        """
        Without a preload, C{malloc} is the C library's.
        """
        self.assertEqual(mallocOf(""), ("libc.so.6", ""))

    def test_preloaded(self):
        """
        With the launchers' preload, C{malloc} is mimalloc's (Debian's
        C{libmimalloc2.0} must be installed: C{scripts/test} installs it),
        and the loader has nothing to say.
        """
        self.assertEqual(mallocOf(PRELOAD), (PRELOAD, ""))

    def test_thisProcess(self):
        """
        In the test process it names the library that the process's own
        C{malloc} symbol belongs to.
        """
        expected = PRELOAD if PRELOAD in os.environ.get("LD_PRELOAD", "") else "libc.so.6"
        self.assertEqual(mallocLibrary(), expected)

    def test_unknown(self):
        """
        Where the process's symbols cannot be read, it says C{"unknown"}
        instead of failing the start.
        """

        def refuse(name):
            raise OSError("no dynamic loader")

        self.patch(allocator.ctypes, "CDLL", refuse)
        self.assertEqual(mallocLibrary(), "unknown")

    def test_dladdrFails(self):
        """
        When C{dladdr} finds no library for the address, it says
        C{"unknown"}.
        """

        class Process:
            malloc = ctypes.CDLL(None).malloc

            @staticmethod
            def dladdr(address, info):
                return 0

        self.patch(allocator.ctypes, "CDLL", lambda name: Process)
        self.assertEqual(mallocLibrary(), "unknown")
