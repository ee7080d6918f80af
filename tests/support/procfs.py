# -*- test-case-name: tests.ops.test_kafkaconnections -*-
"""
A look-alike of C{/proc} (a process's socket descriptors and the kernel's TCP
tables) in a temporary directory, for the code that counts the gateway's
connections to Kafka.
"""

import os
from pathlib import Path

from tests.support.files import temporaryDirectory

__all__ = ["fakeProc", "temporaryProc"]


def temporaryProc(testCase):
    """
    :return: the path of a directory to stand for C{/proc} (not created
        yet), outside the working directory, removed after the test.
    """
    return os.path.join(temporaryDirectory(testCase), "proc")


def fakeProc(root, connections, ownInodes):
    """
    Write a procfs look-alike for L{kafkaConnections}.

    :param root: the directory standing for C{/proc}.
    :param connections: C{(localPort, remotePort, state, inode)} rows of
        C{net/tcp} (the IPv6 table gets the same rows, inodes prefixed 6).
    :param ownInodes: the socket inodes among the process's descriptors.
    """
    base = Path(root) / "self"
    (base / "net").mkdir(parents=True)
    (base / "fd").mkdir()
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
        "retrnsmt   uid  timeout inode\n"
    )
    for table, prefix, address in (("tcp", "", "0100007F"), ("tcp6", "6", "0" * 32)):
        lines = [header]
        for n, (local, remote, state, inode) in enumerate(connections):
            lines.append(
                f"   {n}: {address}:{local:04X} {address}:{remote:04X} {state} "
                f"00000000:00000000 00:00000000 00000000  1000        0 "
                f"{prefix}{inode} 1 0 20 4 30 10 -1\n"
            )
        (base / "net" / table).write_text("".join(lines))
    for fd, inode in enumerate(ownInodes):
        os.symlink(f"socket:[{inode}]", base / "fd" / str(fd + 3))
    os.symlink("/dev/null", base / "fd" / "0")
    return str(root)
