# -*- test-case-name: tests.integration.test_faults_files -*-
"""
Small file systems of a test's own, to fill up or mount read-only: what a
full disk or an unwritable directory looks like to the gateway, also when
the tests run as root (for whom permissions do not apply).
"""

import contextlib
import errno
import os
import subprocess

__all__ = ["fill", "tmpfs"]


@contextlib.contextmanager
def tmpfs(path, size, readOnly=False):
    """
    Mount a tmpfs of C{size} bytes on C{path} (created) for the block.

    :raises AssertionError: when it cannot be mounted (mounting needs root,
        as CI has): the test fails, it is never skipped.
    """
    os.makedirs(path, exist_ok=True)
    options = f"size={size}" + (",ro" if readOnly else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, (
        f"cannot mount a tmpfs on {path} (these tests need root): {mounted.stderr.strip()}"
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path):
    """
    Write C{path} until its file system is full.

    :return: the bytes written.
    """
    written = 0
    with open(path, "wb", buffering=0) as f:
        block = b"\0" * 4096
        while True:
            try:
                n = f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            if not n:
                break
            written += n
    return written
