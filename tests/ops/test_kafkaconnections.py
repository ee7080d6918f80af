# -*- test-case-name: tests.ops.test_kafkaconnections -*-
"""
Tests for L{gateway.ops.kafkaconnections}: the gateway's established
connections to the brokers, counted from the kernel's tables (netlink
C{sock_diag}, or C{/proc} where netlink is missing) and the process's
descriptors.
"""

import os
import socket
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from gateway.ops import kafkaconnections
from gateway.ops.kafkaconnections import KafkaConnectionCounter, kafkaConnections
from tests.support.procfs import fakeProc, temporaryProc


class KafkaConnectionsTests(SynchronousTestCase):
    """
    L{kafkaConnections} counts the process's established connections to the
    given remote ports from the kernel's tables.
    """

    def test_fakeTables(self):
        """
        Only established connections (state 01) to one of the ports, whose
        socket is among the process's descriptors, count; IPv4 and IPv6 both.
        """
        proc = fakeProc(
            temporaryProc(self),
            [
                (50001, 9092, "01", 101),  # ours, established: counts
                (50002, 9093, "01", 102),  # ours, other broker port: counts
                (50003, 9092, "02", 103),  # ours, still connecting
                (50004, 9092, "01", 104),  # another process's
                (50005, 8080, "01", 105),  # ours, elsewhere
            ],
            ownInodes=[101, 102, 103, 105, 6101],
        )
        self.assertEqual(kafkaConnections({9092, 9093}, proc=proc), 3)
        self.assertEqual(kafkaConnections({9092}, proc=proc), 2)
        self.assertEqual(kafkaConnections({1234}, proc=proc), 0)

    def test_excludedLocalPorts(self):
        """
        A socket whose local port is excluded (a listener's: a client that
        happens to connect from a broker's port number) does not count.
        """
        proc = fakeProc(
            temporaryProc(self),
            [
                (9000, 9092, "01", 101),
                (50001, 9092, "01", 102),
            ],
            ownInodes=[101, 102],
        )
        self.assertEqual(kafkaConnections({9092}, excludeLocalPorts={9000}, proc=proc), 1)

    def test_descriptorsReadOnlyForNewSockets(self):
        """
        A L{KafkaConnectionCounter} reads the process's descriptors again
        only when a matching socket appears that it has not seen: steady
        connections, other processes' included, cost one pass over the
        tables per call.
        """
        root = temporaryProc(self)
        proc = fakeProc(
            root,
            [
                (50001, 9092, "01", 101),
                (50002, 9092, "01", 102),
            ],
            ownInodes=[101, 6101],
        )
        listed = []
        listdir = os.listdir
        self.patch(os, "listdir", lambda path: listed.append(path) or listdir(path))
        counter = KafkaConnectionCounter(proc)
        self.assertEqual((counter({9092}), len(listed)), (2, 1))  # 101 and 6101
        self.assertEqual((counter({9092}), len(listed)), (2, 1))
        table = Path(proc) / "self" / "net" / "tcp"
        table.write_text(
            table.read_text()
            + table.read_text()
            .splitlines(True)[1]
            .replace(" 101 ", " 103 ")
            .replace(":C351", ":C353")
        )
        os.symlink("socket:[103]", Path(proc) / "self" / "fd" / "9")
        self.assertEqual((counter({9092}), len(listed)), (3, 2))
        table.write_text("".join(table.read_text().splitlines(True)[:2]))  # only 101
        self.assertEqual((counter({9092}), len(listed)), (2, 2))  # 101 and 6101

    def test_noTables(self):
        """
        Without the kernel's tables (not Linux) the count is unknown.
        """
        self.assertIsNone(kafkaConnections({9092}, proc=temporaryProc(self)))

    def test_realSockets(self):
        """
        On the real kernel tables, a connection this process opened to a
        port is counted once (the accepted end is not: its remote port is
        the client's).
        """
        server = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(server.close)
        port = server.getsockname()[1]
        before = kafkaConnections({port})
        if before is None:
            raise self.skipTest("no /proc")
        client = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(client.close)
        accepted, _ = server.accept()
        self.addCleanup(accepted.close)
        self.assertEqual(kafkaConnections({port}) - before, 1)
        client.close()
        accepted.close()
        self.assertEqual(kafkaConnections({port}), before)

    def test_netlinkAndProcAgree(self):
        """
        The count asked of the kernel through C{NETLINK_SOCK_DIAG} (filtered
        by port there) equals the one read from C{/proc/self/net/tcp}, for
        IPv4 and IPv6 connections; the listening port's own accepted sockets
        are excluded either way.
        """
        counted = []
        for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
            try:
                server = socket.create_server((host, 0), family=family)
            except OSError:
                continue  # no IPv6 loopback here
            self.addCleanup(server.close)
            port = server.getsockname()[1]
            clients = [socket.create_connection((host, port)) for _ in range(3)]
            for client in clients:
                self.addCleanup(client.close)
                accepted, _ = server.accept()
                self.addCleanup(accepted.close)
            netlink = KafkaConnectionCounter()
            proc = KafkaConnectionCounter(diag=False)
            counted.append(netlink({port}, excludeLocalPorts={port}))
            self.assertEqual(counted[-1], proc({port}, excludeLocalPorts={port}))
            self.assertIsNot(netlink._diag, False, "netlink was not used")
        self.assertEqual(counted[0], 3)

    def test_noNetlink(self):
        """
        Where a netlink socket cannot be made, the tables in C{/proc} are
        read instead, from then on.
        """
        server = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(server.close)
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(client.close)

        def refuse():
            raise OSError(97, "Address family not supported by protocol")

        self.patch(kafkaconnections, "SockDiag", refuse)
        counter = KafkaConnectionCounter()
        self.assertEqual(counter({port}), 1)
        self.assertIs(counter._diag, False)
