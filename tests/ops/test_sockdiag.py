# -*- test-case-name: tests.ops.test_sockdiag -*-
"""
Tests for L{gateway.ops.sockdiag}: dumps of the kernel's TCP tables through
C{NETLINK_SOCK_DIAG}, filtered by port in the kernel, checked against
sockets this test opens on loopback.
"""

import os
import socket

from twisted.trial.unittest import SynchronousTestCase

from gateway.ops.sockdiag import TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV, SockDiag


class SockDiagTests(SynchronousTestCase):
    """
    L{SockDiag.dump}.
    """

    def setUp(self):
        self.diag = SockDiag()
        self.addCleanup(self.diag.close)

    def listen(self, host="127.0.0.1", family=socket.AF_INET, backlog=16):
        server = socket.create_server((host, 0), family=family, backlog=backlog)
        self.addCleanup(server.close)
        return server, server.getsockname()[1]

    def connect(self, host, port, count):
        clients = []
        for _ in range(count):
            client = socket.create_connection((host, port))
            self.addCleanup(client.close)
            clients.append(client)
        return clients

    def test_establishedByRemotePort(self):
        """
        Filtered on the remote port, the dump holds exactly the client ends
        of the connections to that port: established, with their local
        ports, and the inodes of this process's sockets.
        """
        server, port = self.listen()
        clients = self.connect("127.0.0.1", port, 3)
        found = self.diag.dump([TCP_ESTABLISHED], dport=port)
        self.assertEqual(
            sorted(sp for _, sp, _, _, _, _ in found), sorted(c.getsockname()[1] for c in clients)
        )
        self.assertEqual(
            {(state, dp) for state, _, dp, _, _, _ in found}, {(TCP_ESTABLISHED, port)}
        )
        inodes = {os.readlink(f"/proc/self/fd/{c.fileno()}")[8:-1] for c in clients}
        self.assertEqual({str(inode) for *_, inode in found}, inodes)

    def test_listenerQueues(self):
        """
        Filtered on the local port in the C{LISTEN} state, the dump holds
        the listener with its accept queue (connections not accepted yet)
        and its backlog.
        """
        server, port = self.listen(backlog=16)
        self.connect("127.0.0.1", port, 2)
        ((state, sport, _, rqueue, wqueue, _),) = self.diag.dump([TCP_LISTEN], sport=port)
        self.assertEqual((state, sport, rqueue, wqueue), (TCP_LISTEN, port, 2, 16))
        accepted, _ = server.accept()
        self.addCleanup(accepted.close)
        ((_, _, _, rqueue, _, _),) = self.diag.dump([TCP_LISTEN], sport=port)
        self.assertEqual(rqueue, 1)

    def test_statesFilter(self):
        """
        Only sockets in the asked states are dumped: a port with only a
        listener has no established or half-open sockets.
        """
        _, port = self.listen()
        self.assertEqual(self.diag.dump([TCP_ESTABLISHED, TCP_SYN_RECV], sport=port), [])
        self.assertEqual(len(self.diag.dump([TCP_LISTEN], sport=port)), 1)

    def test_ipv6(self):
        """
        IPv6 sockets are dumped with C{family=AF_INET6}, and not with the
        default IPv4 family.
        """
        try:
            _, port = self.listen("::1", socket.AF_INET6)
        except OSError:
            self.fail("no IPv6 loopback on this machine")
        self.connect("::1", port, 2)
        self.assertEqual(
            len(self.diag.dump([TCP_ESTABLISHED], dport=port, family=socket.AF_INET6)), 2
        )
        self.assertEqual(self.diag.dump([TCP_ESTABLISHED], dport=port), [])

    def test_repeatedDumps(self):
        """
        One netlink socket serves dump after dump, each answered for its
        own request.
        """
        _, port = self.listen()
        self.connect("127.0.0.1", port, 1)
        for expected in (1, 1, 1):
            self.assertEqual(len(self.diag.dump([TCP_ESTABLISHED], dport=port)), expected)
        self.assertEqual(self.diag.sequence, 3)
