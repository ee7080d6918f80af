# -*- test-case-name: tests.ops.test_kafkaconnections -*-
"""
How many TCP connections this process holds to Kafka, counted from the
kernel's tables: the figure that shows Kafka connections grow with worker
processes, never with clients (C{gateway_kafka_connections}).
"""

import os
import re
import socket
from pathlib import Path

from gateway.kafka.health import parseBootstrap
from gateway.ops.sockdiag import TCP_ESTABLISHED, SockDiag

__all__ = [
    "KafkaConnectionCounter",
    "bootstrapPorts",
    "gatewayKafkaConnections",
    "kafkaConnections",
    "listeningPorts",
]

_ESTABLISHED = "01"


def kafkaConnections(ports, excludeLocalPorts=(), proc="/proc", pid="self"):
    """
    Count once the established TCP connections a process holds to any of
    C{ports}; see L{KafkaConnectionCounter}.

    :return: the count, or L{None} where there are no such tables (not Linux).
    """
    return KafkaConnectionCounter(proc, pid)(ports, excludeLocalPorts)


class KafkaConnectionCounter:
    """
    Count the established TCP connections a process holds to some remote
    ports, from the kernel's own tables: the established sockets with one of
    those remote ports (asked of the kernel with C{NETLINK_SOCK_DIAG},
    filtered there by port; C{/proc/PID/net/tcp} and C{tcp6} where netlink
    is not available) that are among the process's descriptors
    (C{/proc/PID/fd}).

    The tables are the whole network namespace's: other processes' sockets
    are in them too.  The descriptors (one C{readlink} each, as many as the
    gateway has clients) are read only when a matching socket appears that
    an earlier call did not see, so a gateway's steady connections cost
    nothing more per scrape.
    """

    def __init__(self, proc="/proc", pid="self", diag=None):
        """
        :param proc: where procfs is mounted.
        :param pid: the process, C{"self"} by default.
        :param diag: a L{gateway.ops.sockdiag.SockDiag}, or L{None} to make one
            on first use when C{proc} is the real C{/proc} (C{False}: read
            C{PROC/PID/net} instead).
        """
        self._base = Path(proc) / str(pid)
        self._ours = {}  # matching socket inode -> whether it is the process's
        self._patterns = {}
        if diag is None and Path(proc) != Path("/proc"):
            diag = False  # another procfs: its own tables, not the kernel's
        self._diag = diag

    def __call__(self, ports, excludeLocalPorts=()):
        """
        :param ports: remote ports (the Kafka bootstrap ports).
        :param excludeLocalPorts: local ports whose sockets never count (the
            gateway's own listening ports: a client may connect from a source
            port that happens to equal a broker's port).
        :return: the count, or L{None} where the tables cannot be read.
        """
        if not ports:
            return 0
        candidates = self._fromNetlink(ports, excludeLocalPorts)
        if candidates is None:
            candidates = self._candidates(ports, excludeLocalPorts)
        if candidates is None:
            return None
        if candidates - self._ours.keys():
            own = self._ownSockets()
            if own is None:
                return None
            self._ours = {inode: inode in own for inode in candidates}
        else:
            self._ours = {inode: self._ours[inode] for inode in candidates}
        return sum(self._ours.values())

    def _fromNetlink(self, ports, excludeLocalPorts):
        """
        :return: the inodes (as text) of the established sockets to
            C{ports}, or L{None} without netlink.
        """
        if self._diag is False:
            return None
        try:
            if self._diag is None:
                self._diag = SockDiag()
            excluded = {int(port) for port in excludeLocalPorts}
            candidates = set()
            for family in (socket.AF_INET, socket.AF_INET6):
                for port in ports:
                    for _, sport, _, _, _, inode in self._diag.dump(
                        [TCP_ESTABLISHED], dport=int(port), family=family
                    ):
                        if sport not in excluded:
                            candidates.add(str(inode))
            return candidates
        except OSError:
            if self._diag is not None:
                self._diag.close()
            self._diag = False
            return None

    def _pattern(self, ports):
        key = frozenset(int(port) for port in ports)
        pattern = self._patterns.get(key)
        if pattern is None:
            remote = "|".join(f"{port:04X}" for port in sorted(key))
            # sl: local rem st tx:rx tr:when retrnsmt uid timeout inode
            pattern = self._patterns[key] = re.compile(
                rf"^ *\d+: [0-9A-F]+:([0-9A-F]{{4}}) [0-9A-F]+:(?:{remote}) {_ESTABLISHED} "
                r"\S+ \S+ \S+ +\d+ +-?\d+ (\d+)",
                re.MULTILINE,
            )
        return pattern

    def _candidates(self, ports, excludeLocalPorts):
        pattern = self._pattern(ports)
        excluded = {int(port) for port in excludeLocalPorts}
        candidates, found = set(), False
        for table in ("tcp", "tcp6"):
            try:
                with open(self._base / "net" / table) as f:
                    text = f.read()
            except OSError:
                continue
            found = True
            for match in pattern.finditer(text):
                if int(match[1], 16) not in excluded:
                    candidates.add(match[2])
        return candidates if found else None

    def _ownSockets(self):
        directory = self._base / "fd"
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        own = set()
        for name in names:
            try:
                target = os.readlink(directory / name)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                own.add(target[8:-1])
        return own


def bootstrapPorts(gateway):
    """
    :return: the ports of the gateway's Kafka bootstrap servers.
    """
    try:
        return {
            port
            for _, port in parseBootstrap(gateway.producer.config.get("bootstrap.servers", ""))
        }
    except ValueError:
        return set()


def listeningPorts(gateway):
    """
    :return: the local ports of the gateway's bound TCP listeners and of its
        HTTP endpoints.
    """
    ports = set()
    services = [*gateway.listeners, getattr(gateway, "http", None)]
    for service in services:
        listening = getattr(service, "port", None)
        port = getattr(listening and listening.getHost(), "port", None)
        if isinstance(port, int) and port:
            ports.add(port)
    return ports


def gatewayKafkaConnections(gateway, counter=None):
    """
    :param counter: the L{KafkaConnectionCounter} to use (one for this
        process, used once, by default).
    :return: the connections of this process to C{gateway}'s bootstrap
        ports, its listening ports excluded.
    """
    counter = KafkaConnectionCounter() if counter is None else counter
    return counter(bootstrapPorts(gateway), listeningPorts(gateway))
