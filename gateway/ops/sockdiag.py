# -*- test-case-name: tests.ops.test_sockdiag -*-
"""
The kernel's TCP socket tables through C{NETLINK_SOCK_DIAG} (what C{ss}
reads), filtered by port in the kernel.

The gateway counts its connections to Kafka this way: C{/proc/net/tcp}
lists every socket of the network namespace, so with 100,000 clients on the
host reading it took 0.7-1.2 s of the reactor thread per C{/metrics} or
C{/status.json} request (C{bench/RESULTS.md}); a dump filtered on the
broker's port returns a handful of sockets.
"""

import os
import socket
import struct

__all__ = ["SockDiag", "TCP_ESTABLISHED", "TCP_LISTEN", "TCP_SYN_RECV"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_ESTABLISHED = 1
TCP_SYN_RECV = 3
TCP_LISTEN = 10
#: No cookie: match any socket.
NO_COOKIE = 0xFFFFFFFF

_HEADER = struct.Struct("=IHHII")
#: inet_diag_req_v2: family, protocol, extensions, pad, states; then the
#: socket id: source and destination ports (network order), addresses,
#: interface, cookie.
_REQUEST = struct.Struct("=BBBBI")
_PORTS = struct.Struct("!HH")
#: inet_diag_msg after family/state/timer/retrans and the 48-byte id:
#: expires, rqueue, wqueue, uid, inode.
_TAIL = struct.Struct("=IIIII")


class SockDiag:
    """
    One netlink socket for repeated dumps.

    :raises OSError: when created where there is no C{NETLINK_SOCK_DIAG}
        (not Linux, or a sandbox without netlink).
    """

    def __init__(self):
        self.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self.socket.bind((0, 0))
        self.sequence = 0

    def close(self):
        self.socket.close()

    def dump(self, states, sport=0, dport=0, family=socket.AF_INET):
        """
        Every TCP socket of C{family} in one of C{states} (a list of TCP
        states), optionally with that local or remote port.

        :return: L{list} of C{(state, sport, dport, rqueue, wqueue, inode)}.
            For a listener C{rqueue} is its accept queue's length and
            C{wqueue} its backlog.
        """
        mask = 0
        for state in states:
            mask |= 1 << state
        request = (
            _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, mask)
            + _PORTS.pack(sport, dport)
            + bytes(32)
            + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
        )
        self.sequence += 1
        self.socket.send(
            _HEADER.pack(
                _HEADER.size + len(request),
                SOCK_DIAG_BY_FAMILY,
                NLM_F_REQUEST | NLM_F_DUMP,
                self.sequence,
                0,
            )
            + request
        )
        out = []
        while True:
            data = self.socket.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, sequence, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError("sock_diag: malformed netlink message")
                body = offset + _HEADER.size
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, body)[0]
                    if code:
                        raise OSError(code, f"sock_diag: {os.strerror(code)}")
                    return out
                state = data[body + 1]
                sp, dp = _PORTS.unpack_from(data, body + 4)
                _, rqueue, wqueue, _, inode = _TAIL.unpack_from(data, body + 52)
                if sequence == self.sequence:
                    out.append((state, sp, dp, rqueue, wqueue, inode))
                offset += (length + 3) & ~3
