# -*- test-case-name: tests.server.test_reuseport -*-
"""
Tests for the C{reuseport:} server endpoint (L{gateway.server.reuseport}): parsing
on a memory reactor, then real loopback sockets on the real reactor
(pytest-twisted), read back with C{getsockopt}, C{/proc/self/fd} and C{ss}.
"""

import os
import shutil
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.plugin import IPlugin, getPlugins
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gateway.server import policy, reuseport
from gateway.server.reuseport import DEFAULT_BACKLOG, ReusePortServerEndpoint
from tests.support.waiting import waitOnReactor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

needsReusePort = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT on this platform"
)
needsProcFd = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="no /proc/self/fd to count descriptors"
)


class ParserTests(SynchronousTestCase):
    """
    C{reuseport:} descriptions through
    L{serverFromString<twisted.internet.endpoints.serverFromString>}.
    """

    def parse(self, description):
        return serverFromString(MemoryReactor(), description)

    def assertParseError(self, description, *words):
        """
        Parsing C{description} raises C{ValueError} whose message holds every
        one of C{words}.
        """
        error = self.assertRaises(ValueError, self.parse, description)
        for word in words:
            self.assertIn(word, str(error), description)

    def test_pluginFound(self):
        """
        The plugin in C{twisted/plugins/gateway_endpoints.py} is discovered
        and turns the description into a L{ReusePortServerEndpoint}.
        """
        endpoint = self.parse("reuseport:0:interface=127.0.0.1")
        self.assertIsInstance(endpoint, ReusePortServerEndpoint)
        verifyObject(IStreamServerEndpoint, endpoint)
        self.assertEqual(
            (endpoint.port, endpoint.interface, endpoint.backlog, endpoint.addressFamily),
            (0, "127.0.0.1", 4096, socket.AF_INET),
        )

    def test_onePluginProvidingBothInterfaces(self):
        """
        Exactly one plugin claims the C{reuseport} prefix, and it provides
        L{IPlugin} and L{IStreamServerEndpointStringParser}.
        """
        [parser] = [
            p for p in getPlugins(IStreamServerEndpointStringParser) if p.prefix == "reuseport"
        ]
        verifyObject(IPlugin, parser)
        verifyObject(IStreamServerEndpointStringParser, parser)

    def test_defaults(self):
        """
        Without options the endpoint binds every IPv4 address, like C{tcp:},
        with a backlog of 4096, not C{tcp:}'s 50; an empty interface means
        every IPv4 address too.
        """
        self.assertEqual(DEFAULT_BACKLOG, 4096)
        self.assertIs(DEFAULT_BACKLOG, policy.DEFAULT_BACKLOG)
        for description in ["reuseport:8080", "reuseport:8080:interface="]:
            endpoint = self.parse(description)
            self.assertEqual(
                (endpoint.port, endpoint.interface, endpoint.backlog),
                (8080, "0.0.0.0", 4096),
            )

    def test_keywords(self):
        """
        The port may be given as C{port=}, as C{tcp:} accepts, and the
        backlog as C{backlog=}.
        """
        endpoint = self.parse("reuseport:port=8080:backlog=10")
        self.assertEqual((endpoint.port, endpoint.backlog), (8080, 10))

    def test_ipv6Interface(self):
        """
        An IPv6 interface, its colons escaped, selects C{AF_INET6}.
        """
        endpoint = self.parse(r"reuseport:0:interface=\:\:1")
        self.assertEqual(endpoint.interface, "::1")
        self.assertEqual(endpoint.addressFamily, socket.AF_INET6)

    def test_badPort(self):
        """
        A port that is not a plain decimal number from 0 to 65535, or is
        missing or given twice, is a C{ValueError} naming the port.
        """
        self.assertParseError("reuseport:http", "port", "'http'")
        self.assertParseError("reuseport:+80", "port", "'+80'")
        self.assertParseError("reuseport:port=-1", "port", "'-1'")
        self.assertParseError("reuseport:65536", "port", "65536")
        self.assertParseError("reuseport:", "port", "''")
        self.assertParseError("reuseport", "no port")
        self.assertParseError("reuseport:80:port=81", "port given twice")

    def test_badBacklog(self):
        """
        A backlog below 1 or not a number is a C{ValueError} naming it.
        """
        self.assertParseError("reuseport:0:backlog=0", "backlog", "0")
        self.assertParseError("reuseport:0:backlog=2147483648", "backlog", "2147483648")
        self.assertParseError("reuseport:0:backlog=lots", "backlog", "'lots'")
        self.assertParseError("reuseport:0:backlog=", "backlog", "''")

    def test_badInterface(self):
        """
        An interface that is not an IP address literal is a C{ValueError}:
        binding must not wait for DNS, and an unescaped IPv6 address would
        be split into positional values.
        """
        self.assertParseError("reuseport:0:interface=localhost", "interface", "'localhost'")
        self.assertParseError("reuseport:0:interface=1.2.3", "interface", "'1.2.3'")
        self.assertParseError("reuseport:0:interface=::1", "':1'", r"escape colons as \:")

    def test_unknownOption(self):
        """
        An option the endpoint does not know is named in the error, not
        ignored.
        """
        self.assertParseError("reuseport:0:colour=red", "unknown option colour")

    def test_extraPositional(self):
        """
        A second positional value (an interface without C{interface=}) is
        an error that quotes it.
        """
        self.assertParseError("reuseport:80:127.0.0.1", "'127.0.0.1'")

    def test_noReusePortOnPlatform(self):
        """
        Where the platform has no C{SO_REUSEPORT} the description is refused
        when parsed, not when the gateway starts listening.
        """
        self.patch(reuseport, "_SO_REUSEPORT", None)
        self.assertParseError("reuseport:0", "no SO_REUSEPORT")

    def test_pluginImportsNoReactor(self):
        """
        Importing the plugin module, as plugin scanning does, installs no
        reactor (it would break C{twistd -r}).
        """
        code = (
            "import sys, twisted.plugins.gateway_endpoints\n"
            "assert 'twisted.internet.reactor' not in sys.modules\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        self.assertEqual(result.returncode, 0, result.stderr)


def _reactor():
    from twisted.internet import reactor

    return reactor


class _Accepting(Factory):
    """
    Counts the connections it accepts and closes each at once.
    """

    def __init__(self):
        self.accepted = 0

    def buildProtocol(self, addr):
        self.accepted += 1
        protocol = Protocol()
        protocol.connectionMade = lambda: protocol.transport.loseConnection()
        return protocol


@pytest.fixture
def listen():
    """
    A function listening on a description that returns the port or raises,
    and requires the listen Deferred to have fired already, as the
    gateway's C{listenNow} does; the ports are stopped afterwards.
    """
    ports = []

    def listen(description, factory=None):
        endpoint = serverFromString(_reactor(), description)
        outcome = []
        endpoint.listen(factory or _Accepting()).addBoth(outcome.append)
        assert outcome, f"{description!r} did not fire synchronously"
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        ports.append(outcome[0])
        return outcome[0]

    yield listen
    pytest_twisted.blockon(defer.gatherResults([p.stopListening() for p in ports if p.connected]))


def portDescriptors(port):
    """
    :return: how many of this process's descriptors are TCP sockets on
        local port C{port} (other descriptors, which other threads open and
        close at will, are not counted).
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") in inodes
        except OSError:
            pass
    return count


def hasIPv6Loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as skt:
            skt.bind(("::1", 0))
    except OSError:
        return False
    return True


@needsReusePort
def test_listeningSocketHasReusePort(listen):
    """
    The port's C{socket} is the listening, non-blocking socket, with
    C{SO_REUSEPORT} and C{SO_REUSEADDR} set; C{getHost} gives the address
    and the port the kernel chose for port 0.
    """
    port = listen("reuseport:0:interface=127.0.0.1")
    skt = port.socket
    assert skt.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    assert skt.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    assert skt.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert not os.get_blocking(skt.fileno())
    chosen = skt.getsockname()[1]
    assert chosen != 0
    assert port.getHost() == IPv4Address("TCP", "127.0.0.1", chosen)


@needsReusePort
@pytest_twisted.inlineCallbacks
def test_twoShareOnePort(listen):
    """
    A second endpoint binds the concrete port the first one got, and the
    kernel hands each client connection to exactly one of the two: all of
    32 arrive, some at each.
    """
    first, second = _Accepting(), _Accepting()
    number = listen("reuseport:0:interface=127.0.0.1", first).getHost().port
    listen(f"reuseport:{number}:interface=127.0.0.1", second)
    clients = [socket.create_connection(("127.0.0.1", number), timeout=5) for _ in range(32)]
    try:
        yield waitOnReactor(lambda: first.accepted + second.accepted == 32, 5.0, "all accepted")
    finally:
        for client in clients:
            client.close()
    assert first.accepted > 0 and second.accepted > 0, (first.accepted, second.accepted)


@needsReusePort
@needsProcFd
@pytest.mark.filterwarnings("error::ResourceWarning")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_tcpListenerBlocks(listen, monkeypatch):
    """
    A C{tcp:} listener (no C{SO_REUSEPORT}) on the port makes the bind fail
    with L{CannotListenError} when C{listen} is called, and the failed
    socket is closed, not left to the garbage collector.  (The sockets the
    endpoint makes are watched, not the process's descriptor count, which
    other threads, such as librdkafka's of earlier tests, change at will.)
    """
    number = listen("tcp:0:interface=127.0.0.1").getHost().port
    made = []

    class Watched(socket.socket):
        def __init__(self, *args, **kwargs):
            socket.socket.__init__(self, *args, **kwargs)
            made.append(self)

    module = SimpleNamespace(**vars(socket))
    module.socket = Watched
    monkeypatch.setattr(reuseport, "socket", module)
    with pytest.raises(CannotListenError) as caught:
        listen(f"reuseport:{number}:interface=127.0.0.1")
    assert caught.value.port == number
    assert len(made) == 1
    assert made[0].fileno() == -1


@needsReusePort
@pytest.mark.skipif(not shutil.which("ss"), reason="no ss(8) to read the backlog")
def test_backlogApplied(listen):
    """
    The backlog given, or 4096 by default (capped by the kernel at
    C{net.core.somaxconn}), is the listening socket's, as C{ss} shows it in
    its Send-Q column.
    """
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())

    def sendQ(port):
        local = f"127.0.0.1:{port.getHost().port}"
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port.getHost().port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        [queue] = [line.split()[2] for line in out.splitlines() if local in line]
        return int(queue)

    assert sendQ(listen("reuseport:0:interface=127.0.0.1:backlog=7")) == 7
    assert sendQ(listen("reuseport:0:interface=127.0.0.1")) == min(4096, somaxconn)


@needsReusePort
@pytest.mark.skipif(not hasIPv6Loopback(), reason="no IPv6 loopback (::1) on this machine")
@pytest_twisted.inlineCallbacks
def test_ipv6Loopback(listen):
    """
    An escaped C{::1} interface listens on IPv6, shared like IPv4, and
    accepts a client there.
    """
    accepting = _Accepting()
    port = listen(r"reuseport:0:interface=\:\:1", accepting)
    number = port.getHost().port
    assert port.socket.family == socket.AF_INET6
    assert port.getHost() == IPv6Address("TCP", "::1", number)
    other = _Accepting()
    listen(rf"reuseport:{number}:interface=\:\:1", other)
    with socket.create_connection(("::1", number), timeout=5):
        yield waitOnReactor(lambda: accepting.accepted + other.accepted == 1, 5.0, "accepted")


@needsReusePort
@needsProcFd
@pytest.mark.filterwarnings("error::ResourceWarning")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest_twisted.inlineCallbacks
def test_stopListeningCloses(listen):
    """
    Listening holds exactly one descriptor on the port (the endpoint
    closed its own copy of the adopted socket); C{stopListening} gives it
    back and the port refuses connections.
    """
    port = listen("reuseport:0:interface=127.0.0.1")
    number = port.getHost().port
    assert portDescriptors(number) == 1
    yield port.stopListening()
    assert portDescriptors(number) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", number), timeout=5).close()
