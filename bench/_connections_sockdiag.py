"""
The kernel's TCP socket tables through C{NETLINK_SOCK_DIAG} (what C{ss}
reads): listeners' accept queues and established connections to a port,
without reading C{/proc/net/tcp} (200,000 lines with 100,000 loopback
connections, half a second each time) or listing C{/proc/<pid>/fd} (17 ms
for 18,000 descriptors).
"""

import os

from gateway.ops.sockdiag import (
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_SYN_RECV,
)
from gateway.ops.sockdiag import (
    SockDiag as _SockDiag,
)

__all__ = [
    "SockDiag",
    "TCP_ESTABLISHED",
    "TCP_LISTEN",
    "TCP_SYN_RECV",
    "connectionsTo",
    "socketInodes",
]


class SockDiag(_SockDiag):
    """
    L{gateway.ops.sockdiag.SockDiag} with the benchmark's queries.
    """

    def listeners(self, port):
        """
        The listening sockets on C{port}: C{{inode: (queued, backlog)}}.
        """
        return {
            inode: (rqueue, wqueue)
            for _, _, _, rqueue, wqueue, inode in self.dump([TCP_LISTEN], sport=port)
        }

    def count(self, states, sport=0, dport=0):
        """
        How many sockets are in C{states} with those ports.
        """
        return len(self.dump(states, sport=sport, dport=dport))

    def inodesTo(self, dport):
        """
        Inodes of the established connections to remote port C{dport}.
        """
        return {inode for _, _, _, _, _, inode in self.dump([TCP_ESTABLISHED], dport=dport)}


def socketInodes(pid):
    """
    The inodes of process C{pid}'s sockets, from C{/proc/<pid>/fd}.
    """
    inodes = set()
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def connectionsTo(diag, pids, port):
    """
    Established TCP connections from each process to remote port C{port}
    (the broker's): the kernel's table (as in C{/proc/net/tcp}) matched
    against each process's socket inodes (C{/proc/<pid>/fd}).

    :return: C{{pid: count}}.
    """
    remote = diag.inodesTo(port)
    return {pid: len(socketInodes(pid) & remote) for pid in pids}
