# -*- test-case-name: tests.server.test_policy -*-
"""
Tests for L{gateway.server.policy}: connection options, the listening
socket's settings, and the connection options on C{twistd gateway}'s
command line.
"""

import ipaddress
import shutil
import socket
import subprocess
from types import SimpleNamespace
from unittest import SkipTest

from twisted.internet import tcp
from twisted.internet.protocol import Factory
from twisted.internet.testing import (
    MemoryReactorClock,
)
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.options import OptionError
from gateway.server.policy import (
    CONNECTION_OPTIONS,
    DEFAULT_BACKLOG,
    IDLE_TIMEOUT,
    MAX_AGE,
    ConnectionPolicy,
    configurePort,
    networks,
    seconds,
    splitOptions,
)
from gateway.tap import Options


class OptionsTests(SynchronousTestCase):
    """
    L{splitOptions} and L{ConnectionPolicy.fromOptions}.
    """

    def test_splitOptions(self):
        """
        The declared connection options are separated from everything else,
        which is left for the framing (including names nobody declares).
        """
        framing, connection = splitOptions(
            {
                "delimiter": "\\0",
                "max-size": "10",
                "max-connections": "5",
                "backlog": "7",
                "strip-cr": "true",
                "colour": "red",
                "keepalive-count": "3",
            }
        )
        self.assertEqual(
            framing, {"delimiter": "\\0", "max-size": "10", "strip-cr": "true", "colour": "red"}
        )
        self.assertEqual(
            connection, {"max-connections": "5", "backlog": "7", "keepalive-count": "3"}
        )

    def test_defaults(self):
        """
        Without options: no caps or timeouts, keepalive on (60 s idle, 15 s
        between probes, 4 probes) and a backlog of 4096.
        """
        policy = ConnectionPolicy.fromOptions({}, "tcp:9000")
        self.assertEqual(
            (policy.maxConnections, policy.maxPerAddress, policy.idleTimeout, policy.maxAge),
            (None, None, None, None),
        )
        self.assertEqual(
            (
                policy.keepalive,
                policy.keepaliveIdle,
                policy.keepaliveInterval,
                policy.keepaliveCount,
                policy.backlog,
            ),
            (True, 60, 15, 4, 4096),
        )
        self.assertEqual(ConnectionPolicy.fromOptions({}), policy)

    def test_noneIsDefault(self):
        """
        An option given as L{None} (from a C{.tac} file) takes its default.
        """
        policy = ConnectionPolicy.fromOptions({"keepalive-idle": None, "max-connections": None})
        self.assertEqual((policy.keepaliveIdle, policy.maxConnections), (60, None))

    def test_writtenValuesCoerced(self):
        """
        Values written on the command line become numbers and booleans;
        Python values are taken as they are.
        """
        policy = ConnectionPolicy.fromOptions(
            {
                "max-connections": "5",
                "max-per-address": "2",
                "idle-timeout": "2.5",
                "max-age": "3600",
                "keepalive": "false",
                "keepalive-idle": "30",
                "keepalive-interval": "7",
                "keepalive-count": "9",
                "backlog": "77",
            }
        )
        self.assertEqual(
            policy,
            ConnectionPolicy(
                maxConnections=5,
                maxPerAddress=2,
                idleTimeout=2.5,
                maxAge=3600.0,
                keepalive=False,
                keepaliveIdle=30,
                keepaliveInterval=7,
                keepaliveCount=9,
                backlog=77,
            ),
        )
        python = ConnectionPolicy.fromOptions({"idle-timeout": 4, "keepalive": False})
        self.assertEqual((python.idleTimeout, python.keepalive), (4.0, False))

    def test_endpointBacklogKept(self):
        """
        An endpoint with its own C{backlog=} keeps it: the policy sets none.
        """
        policy = ConnectionPolicy.fromOptions({}, "tcp:9000:backlog=9")
        self.assertIsNone(policy.backlog)
        self.assertEqual(ConnectionPolicy.fromOptions({"backlog": "9"}).backlog, 9)

    def test_backlogGivenTwice(self):
        """
        A backlog given both as a listener option and in the endpoint is an
        error naming both.
        """
        error = self.assertRaises(
            OptionError,
            ConnectionPolicy.fromOptions,
            {"backlog": "5"},
            "tcp:9000:backlog=9",
        )
        self.assertIn("backlog", str(error))
        self.assertIn("tcp:9000:backlog=9", str(error))

    def test_badValuesNameTheOption(self):
        """
        A value an option's coercer refuses is an L{OptionError} naming the
        option and the value.
        """
        for name, value in [
            ("max-connections", "0"),
            ("max-connections", "many"),
            ("max-per-address", "-1"),
            ("idle-timeout", "soon"),
            ("max-age", "0"),
            ("keepalive", "maybe"),
            ("keepalive-idle", "0"),
            ("keepalive-idle", "32768"),
            ("keepalive-interval", "2.5"),
            ("keepalive-count", "128"),
            ("backlog", "0"),
            ("max-connections", True),
        ]:
            error = self.assertRaises(OptionError, ConnectionPolicy.fromOptions, {name: value})
            self.assertIn(f"{name}={value!r}", str(error))

    def test_secondsRejected(self):
        """
        Durations must be positive and finite numbers: 0, negative numbers,
        infinity, NaN, booleans and words are refused for both timeouts.
        """
        for name in (IDLE_TIMEOUT, MAX_AGE):
            for value in (
                "0",
                "-1",
                "-0.5",
                "inf",
                "Infinity",
                "nan",
                True,
                False,
                "never",
                0,
                float("inf"),
            ):
                self.assertRaises(OptionError, ConnectionPolicy.fromOptions, {name: value})

    def test_secondsAccepted(self):
        """
        Fractions and whole numbers of seconds, written or as Python values,
        are durations.
        """
        self.assertEqual([seconds(v) for v in ("0.25", "1e3", 3, 2.5)], [0.25, 1000.0, 3.0, 2.5])

    def test_frameTimeout(self):
        """
        C{frame-timeout} is off by default and a positive number of seconds
        when given.
        """
        self.assertIsNone(ConnectionPolicy.fromOptions({}).frameTimeout)
        self.assertEqual(ConnectionPolicy.fromOptions({"frame-timeout": "7.5"}).frameTimeout, 7.5)
        for value in ("0", "-1", "soon", "inf"):
            error = self.assertRaises(
                OptionError, ConnectionPolicy.fromOptions, {"frame-timeout": value}
            )
            self.assertIn(f"frame-timeout={value!r}", str(error))

    def test_allowRanges(self):
        """
        C{allow} takes CIDR ranges separated by C{;}, IPv4 and IPv6, a bare
        address being a range of one; without it every address is allowed.
        """
        self.assertTrue(ConnectionPolicy.fromOptions({}).allows("198.51.100.1"))
        policy = ConnectionPolicy.fromOptions(
            {"allow": " 10.0.0.0/8 ; 192.168.1.7;2001:db8::/32 "}
        )
        self.assertEqual(
            [policy.allows(host) for host in ("10.200.0.1", "192.168.1.7", "192.168.1.8")],
            [True, True, False],
        )
        self.assertEqual(
            [policy.allows(host) for host in ("2001:db8::1", "2001:db9::1", "::ffff:10.0.0.1")],
            [True, False, True],
        )
        self.assertEqual(
            [policy.allows(host) for host in ("fe80::1%eth0", "/run/sock", "?", None)],
            [False, False, False, False],
        )
        python = ConnectionPolicy.fromOptions({"allow": ["127.0.0.0/8"]})
        self.assertTrue(python.allows("127.0.0.2"))

    def test_allowRefused(self):
        """
        C{allow} with no range, or a range that is not one, is an error
        naming the option and the range.
        """
        for value, named in (("", "at least one"), ("10.0.0.0/33", "10.0.0.0/33"), ("x;", "'x'")):
            error = self.assertRaises(OptionError, ConnectionPolicy.fromOptions, {"allow": value})
            self.assertIn("allow=", str(error))
            self.assertIn(named, str(error))

    def test_errorsSayWhatIsWrong(self):
        """
        Each refused duration, range list and backlog says what is wrong
        with it, in full.
        """
        for value, error in [
            (True, "must be a number of seconds"),
            ("never", "must be a number of seconds"),
            ("0", "must be a positive number of seconds"),
        ]:
            with self.assertRaises(ValueError) as raised:
                seconds(value)
            self.assertEqual(str(raised.exception), error)
        with self.assertRaises(ValueError) as raised:
            networks(" ; ")
        self.assertEqual(str(raised.exception), "must name at least one CIDR range")
        error = self.assertRaises(
            OptionError, ConnectionPolicy.fromOptions, {"backlog": "5"}, "tcp:9000:backlog=9"
        )
        self.assertEqual(
            str(error),
            "backlog is given both as a listener option and in the endpoint "
            "'tcp:9000:backlog=9'; give it once",
        )

    def test_rangeWithHostBits(self):
        """
        A range written with host bits set is the network it lies in.
        """
        self.assertEqual(networks("10.1.2.3/8"), (ipaddress.ip_network("10.0.0.0/8"),))

    def test_allowScoped(self):
        """
        A link-local address with its scope (the interface, whose name may
        hold a C{%}) is matched by its address.
        """
        policy = ConnectionPolicy.fromOptions({"allow": "fe80::/10"})
        self.assertEqual(
            [policy.allows(host) for host in ("fe80::1%eth0", "fe80::1%a%b", "fe81::1%x")],
            [True, True, True],
        )
        self.assertFalse(policy.allows("2001:db8::1%eth0"))

    def test_unknownConnectionOption(self):
        """
        A name that is no connection option is refused, named.
        """
        error = self.assertRaises(
            OptionError, ConnectionPolicy.fromOptions, {"max-conections": "5"}
        )
        self.assertIn("max-conections", str(error))


class ConfigurePortTests(SynchronousTestCase):
    """
    L{configurePort} on real listening sockets.
    """

    policy = ConnectionPolicy(keepaliveIdle=71, keepaliveInterval=13, keepaliveCount=5, backlog=37)

    def listeningSocket(self, backlog=5):
        """
        :return: a plain TCP socket listening on 127.0.0.1, as a port with
            a C{socket} attribute.
        """
        skt = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(skt.close)
        skt.bind(("127.0.0.1", 0))
        skt.listen(backlog)
        return SimpleNamespace(socket=skt)

    def accept(self, port):
        """
        Connect a client to C{port} and accept it.

        :return: the accepted socket.
        """
        client = socket.create_connection(port.socket.getsockname(), timeout=5)
        self.addCleanup(client.close)
        accepted, _ = port.socket.accept()
        self.addCleanup(accepted.close)
        return accepted

    def keepaliveSettings(self, skt):
        return (
            skt.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
            skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            skt.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )

    def listenBacklog(self, skt):
        """
        :return: the backlog of a listening socket, as C{ss} reports it (its
            Send-Q column).
        """
        ss = shutil.which("ss")
        if ss is None:
            raise SkipTest("ss (iproute2) is not installed")
        host, port = skt.getsockname()
        output = subprocess.run(
            [ss, "-ltnH", "sport", "=", f":{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in output.splitlines():
            fields = line.split()
            if fields[3] == f"{host}:{port}":
                return int(fields[2])
        raise AssertionError(f"{host}:{port} is not in ss -ltn:\n{output}")

    def test_keepaliveOnListeningSocket(self):
        """
        Keepalive and its three timings are set on the listening socket, and
        returned by name for the log.
        """
        port = self.listeningSocket()
        applied = configurePort(port, self.policy)
        self.assertEqual(self.keepaliveSettings(port.socket), (True, 71, 13, 5))
        self.assertEqual(
            applied,
            {
                "backlog": 37,
                "keepalive": True,
                "TCP_KEEPIDLE": 71,
                "TCP_KEEPINTVL": 13,
                "TCP_KEEPCNT": 5,
            },
        )

    def test_keepaliveInheritedByAcceptedSockets(self):
        """
        A socket accepted from a configured listening socket has its
        keepalive settings (Linux copies them), so nothing is set per
        connection.
        """
        port = self.listeningSocket()
        before = self.keepaliveSettings(self.accept(port))
        configurePort(port, self.policy)
        self.assertEqual(self.keepaliveSettings(self.accept(port)), (True, 71, 13, 5))
        self.assertNotEqual(before, (True, 71, 13, 5))

    def test_keepaliveOff(self):
        """
        C{keepalive=false} turns C{SO_KEEPALIVE} off, on the listening
        socket and the sockets it accepts, and sets no timings.
        """
        port = self.listeningSocket()
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        applied = configurePort(port, ConnectionPolicy(keepalive=False, backlog=None))
        self.assertEqual(applied, {"keepalive": False})
        self.assertEqual(port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0)
        self.assertEqual(self.accept(port).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0)

    def test_unixAndSocketlessPortsLeftAlone(self):
        """
        A UNIX socket, or a port without a socket, is left as it is.
        """
        skt = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(skt.close)
        skt.bind("\0gateway-test-configure-port-%d" % id(self))
        skt.listen(3)
        self.assertEqual(configurePort(SimpleNamespace(socket=skt), self.policy), {})
        self.assertEqual(skt.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0)
        self.assertEqual(configurePort(object(), self.policy), {})

    def test_backlogApplied(self):
        """
        The policy's backlog replaces the one the socket was listening with;
        without one (the endpoint set its own), the socket's is kept.
        """
        port = self.listeningSocket(backlog=5)
        self.assertEqual(self.listenBacklog(port.socket), 5)
        configurePort(port, self.policy)
        self.assertEqual(self.listenBacklog(port.socket), 37)
        kept = self.listeningSocket(backlog=6)
        applied = configurePort(kept, ConnectionPolicy(backlog=None))
        self.assertEqual(self.listenBacklog(kept.socket), 6)
        self.assertNotIn("backlog", applied)

    def test_twistedPort(self):
        """
        A Twisted TCP port (listening with Twisted's backlog of 50) gets the
        default backlog and keepalive.
        """
        reactor = MemoryReactorClock()
        port = tcp.Port(0, Factory(), backlog=50, interface="127.0.0.1", reactor=reactor)
        port.startListening()
        self.addCleanup(lambda: (port.stopListening(), reactor.advance(0)))
        with open("/proc/sys/net/core/somaxconn") as f:
            somaxconn = int(f.read())
        self.assertEqual(self.listenBacklog(port.socket), 50)
        configurePort(port, ConnectionPolicy.fromOptions({}))
        self.assertEqual(self.listenBacklog(port.socket), min(DEFAULT_BACKLOG, somaxconn))
        self.assertEqual(self.keepaliveSettings(port.socket), (True, 60, 15, 4))


class CommandLineTests(SynchronousTestCase):
    """
    Connection options and C{--reserve-descriptors} on C{twistd gateway}'s
    command line.
    """

    def parse(self, *args):
        options = Options()
        options.parseOptions(["--topic", "t", *args])
        return options

    def assertUsageError(self, args, *fragments):
        error = self.assertRaises(UsageError, self.parse, *args)
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_connectionOptionsAccepted(self):
        """
        Connection options are given with the framing's, and make the policy
        they say.
        """
        options = self.parse(
            "--listen",
            "lines(max-connections=5,idle-timeout=2.5,keepalive=false)=tcp:0",
        )
        [spec] = options["listen"]
        framing, connection = splitOptions(spec.options)
        self.assertEqual(framing, {})
        policy = ConnectionPolicy.fromOptions(connection, spec.endpoint)
        self.assertEqual(
            (policy.maxConnections, policy.idleTimeout, policy.keepalive),
            (5, 2.5, False),
        )

    def test_badConnectionOptions(self):
        """
        A value a connection option refuses, a backlog given twice and an
        unknown option name are usage errors saying which.
        """
        self.assertUsageError(["--listen", "lines(max-connections=0)=tcp:0"], "max-connections")
        self.assertUsageError(["--listen", "lines(backlog=5)=tcp:0:backlog=9"], "backlog", "once")
        self.assertUsageError(
            ["--listen", "lines(max-conections=5)=tcp:0"], "max-conections", "connection options"
        )

    def test_reserveDescriptors(self):
        """
        C{--reserve-descriptors} takes a whole number, 0 or more.
        """
        self.assertEqual(self.parse("--listen", "lines=tcp:0")["reserve-descriptors"], 64)
        self.assertEqual(
            self.parse("--listen", "lines=tcp:0", "--reserve-descriptors", "0")[
                "reserve-descriptors"
            ],
            0,
        )
        self.assertUsageError(
            ["--listen", "lines=tcp:0", "--reserve-descriptors", "-1"],
            "--reserve-descriptors '-1': expected a whole number of descriptors, 0 or more",
        )
        self.assertUsageError(
            ["--listen", "lines=tcp:0", "--reserve-descriptors", "x"], "expected a whole number"
        )

    def test_helpListsConnectionOptions(self):
        """
        C{--help} lists every connection option with its kind, and
        C{--reserve-descriptors}.
        """
        text = Options().getUsage()
        for option in CONNECTION_OPTIONS:
            self.assertIn(f"  {option.name}={option.kind}  ", text)
        self.assertIn("keepalive-idle=seconds", text)
        self.assertIn("--reserve-descriptors", text)
