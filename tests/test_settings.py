# -*- test-case-name: tests.test_settings -*-
"""
Tests for L{gateway.settings}: the one settings check that the command line
and the Python API share, and the plugin scans it saves.
"""

import inspect
import os
import subprocess
import sys

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

import gateway.registry
from gateway.framing.options import MAX_SIZE, OptionError
from gateway.registry import FramingError
from gateway.service import GatewayService
from gateway.settings import (
    DEFAULT_BACKEND,
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HTTP,
    DEFAULT_MAX_MESSAGE_SIZE,
    GatewaySettings,
    SettingsCheck,
    SettingsError,
    checkSettings,
)
from gateway.tap import Options, buildService
from tests.fakes import fakeBackend
from tests.support.files import temporaryDirectory


class ScanCounter:
    """
    Counts the scans of the plugin package: framing plugins (through
    Twisted's plugin cache) and producer backends (through C{getPlugins}).
    """

    def __init__(self, case):
        self.framings = self.backends = 0
        cached, plugins = gateway.registry.cachedPlugins, gateway.registry.getPlugins

        def countFramings(package):
            self.framings += 1
            return cached(package)

        def countBackends(interface, package):
            self.backends += 1
            return plugins(interface, package)

        case.patch(gateway.registry, "cachedPlugins", countFramings)
        case.patch(gateway.registry, "getPlugins", countBackends)


class ScanTests(SynchronousTestCase):
    """
    Framings and backends are scanned once per start, whichever way the
    gateway is configured.
    """

    def test_commandLineScansOnce(self):
        """
        C{twistd gateway} (parsing the options, then L{buildService}) with
        several listeners scans the framings once and the backends once.
        """
        scans = ScanCounter(self)
        options = Options()
        options.parseOptions(
            [
                "--topic",
                "t",
                "--http",
                "none",
                "--listen",
                "lines=tcp:0:interface=127.0.0.1",
                "--listen",
                "netstring(max-connections=5)=tcp:0:interface=127.0.0.1",
            ]
        )
        service = buildService(options)
        self.assertEqual(len(service.listeners), 2)
        self.assertEqual((scans.framings, scans.backends), (1, 1))

    def test_tacScansOnce(self):
        """
        A C{.tac} file's L{GatewayService} with listeners added one by one
        scans the framings once and the backends once.
        """
        scans = ScanCounter(self)
        gateway = GatewayService(
            topic="t", reactor=MemoryReactorClock(), spoolPath=None, deadLetterPath=None
        )
        gateway.addListener("lines", "tcp:9000")
        gateway.addListener("netstring", "tcp:9001")
        self.assertEqual((scans.framings, scans.backends), (1, 1))

    def test_backendObjectScansNoBackends(self):
        """
        A backend given as an object is not looked up, so no backend scan.
        """
        scans = ScanCounter(self)
        GatewayService(topic="t", reactor=MemoryReactorClock(), backend=fakeBackend())
        self.assertEqual(scans.backends, 0)


class CheckSettingsTests(SynchronousTestCase):
    """
    L{checkSettings}: every setting at once, one error naming the setting.
    """

    def check(self, listeners=({"framing": "lines", "endpoint": "tcp:9000"},), **settings):
        settings.setdefault("topic", "t")
        settings.setdefault("backend", fakeBackend())
        return checkSettings(list(listeners), **settings)

    def assertRefused(self, setting, listener=None, **kwargs):
        error = self.assertRaises(SettingsError, self.check, **kwargs)
        self.assertEqual((error.setting, error.listener), (setting, listener))
        return str(error)

    def test_unwritablePathsRefused(self):
        """
        A spool, dead-letter file or C{unix:} socket (of a listener or of
        the HTTP endpoints) in a directory that does not exist is refused,
        naming the option or endpoint and the path; L{None} (no file) is not
        checked.
        """
        missing = os.path.join(temporaryDirectory(self), "gone")
        spool = os.path.join(missing, "spool.jsonl")
        self.assertEqual(
            self.assertRefused("spoolPath", spoolPath=spool),
            f"--spool {spool}: cannot write there: directory {missing} does not exist",
        )
        self.assertEqual(
            self.assertRefused("deadLetterPath", deadLetterPath=spool),
            f"--dead-letter {spool}: cannot write there: directory {missing} does not exist",
        )
        socket = os.path.join(missing, "gw.sock")
        message = self.assertRefused(
            "endpoint", 0, listeners=[{"framing": "lines", "endpoint": f"unix:{socket}"}]
        )
        self.assertEqual(
            message,
            f"cannot create the socket {socket}: directory {missing} does not exist",
        )
        self.assertIn(socket, self.assertRefused("http", http=f"unix:{socket}"))
        self.check(spoolPath=None, deadLetterPath=None)

    def test_pathsLeftToTheCheck(self):
        """
        A L{SettingsCheck} made with C{paths=False} (for C{--check}, which
        reports each path itself) accepts the paths it would refuse.
        """
        missing = os.path.join(temporaryDirectory(self), "gone")
        settings = self.check(
            listeners=[{"framing": "lines", "endpoint": f"unix:{missing}/gw.sock"}],
            spoolPath=f"{missing}/spool.jsonl",
            deadLetterPath=f"{missing}/dead.jsonl",
            http=f"unix:{missing}/http.sock",
            check=SettingsCheck(paths=False),
        )
        self.assertEqual(settings.spoolPath, f"{missing}/spool.jsonl")

    def test_securityCheckedFirst(self):
        """
        The gateway's own security check runs before the backend's, so the
        reason names the property missing (librdkafka would complain about
        the mechanism it defaults to).
        """
        backend = fakeBackend()

        def refuse(config):
            raise ValueError("No provider for SASL mechanism GSSAPI")

        backend.checkConfig = refuse
        message = self.assertRefused(
            "kafkaOptions", backend=backend, kafkaOptions={"security.protocol": "SASL_SSL"}
        )
        self.assertIn("security.protocol SASL_SSL needs sasl.mechanism", message)

    def test_checked(self):
        """
        Valid settings come back resolved: the backend plugin, the producer
        configuration, each listener's plugin, options and policy.
        """
        backend = fakeBackend()
        settings = self.check(
            listeners=[
                {"framing": "lines", "endpoint": "tcp:9000"},
                {
                    "framing": "netstring",
                    "endpoint": "tcp:9001",
                    "name": "n",
                    "options": {"max-size": "10", "idle-timeout": "5"},
                },
            ],
            backend=backend,
            maxMessageSize=100,
        )
        self.assertIsInstance(settings, GatewaySettings)
        self.assertIs(settings.backend, backend)
        self.assertEqual(settings.config["bootstrap.servers"], DEFAULT_BOOTSTRAP_SERVERS)
        lines, netstring = settings.listeners
        self.assertEqual((lines.plugin.name, lines.options[MAX_SIZE]), ("lines", 100))
        self.assertEqual((netstring.name, netstring.options[MAX_SIZE]), ("n", 10))
        self.assertEqual(netstring.policy.idleTimeout, 5.0)

    def test_gatewaySettingsRefused(self):
        """
        A wrong gateway setting is refused naming it, with no listener.
        """
        self.assertIn("topic", self.assertRefused("topic", topic=""))
        self.assertIn("maxMessageSize", self.assertRefused("maxMessageSize", maxMessageSize=0))
        self.assertIn("budget", self.assertRefused("budget", budget=-1))
        self.assertIn("incompleteCap", self.assertRefused("incompleteCap", incompleteCap=0))
        self.assertIn("confluent", self.assertRefused("backend", backend="nope"))
        self.assertIn(
            "lingr.ms",
            self.assertRefused(
                "kafkaOptions", backend=DEFAULT_BACKEND, kafkaOptions={"lingr.ms": 1}
            ),
        )
        self.assertIn("tcp:web", self.assertRefused("http", http="tcp:web"))
        self.assertRefused("reserveDescriptors", reserveDescriptors=-1)
        self.assertRefused("listeners", listeners=[])

    def test_listenerSettingsRefused(self):
        """
        A wrong listener setting is refused naming it and the listener's
        position.
        """
        good = {"framing": "lines", "endpoint": "tcp:9000"}
        self.assertIn(
            "available",
            self.assertRefused(
                "framing", 1, listeners=[good, {"framing": "xml", "endpoint": "tcp:1"}]
            ),
        )
        self.assertIn(
            "colour",
            self.assertRefused("options", 0, listeners=[dict(good, options={"colour": "red"})]),
        )
        self.assertIn(
            "max-connections",
            self.assertRefused(
                "options", 0, listeners=[dict(good, options={"max-connections": 0})]
            ),
        )
        self.assertIn(
            "tcp:port",
            self.assertRefused("endpoint", 0, listeners=[dict(good, endpoint="tcp:port")]),
        )
        self.assertRefused("maxMessageSize", 0, listeners=[dict(good, maxMessageSize=0)])

    def test_workersRefused(self):
        """
        Workers need shareable listeners and an index among them.
        """
        self.assertIn("reuseport:", self.assertRefused("workers", workers=2))
        self.assertRefused("workerIndex", workerIndex=2)
        self.check(
            listeners=[{"framing": "lines", "endpoint": "reuseport:9000"}],
            workers=2,
            workerIndex=2,
        )


class SettingsCheckTests(SynchronousTestCase):
    """
    L{SettingsCheck}'s own methods keep the error types of the Python API.
    """

    def test_listenerErrors(self):
        """
        An unknown framing is a L{FramingError}, a bad option an
        L{OptionError}, a malformed endpoint a L{ValueError}.
        """
        check = SettingsCheck()
        self.assertRaises(FramingError, check.listener, "xml", "tcp:1", default=1)
        self.assertRaises(
            OptionError, check.listener, "lines", "tcp:1", options={"colour": "r"}, default=1
        )
        self.assertRaises(ValueError, check.listener, "lines", "tcp:port", default=1)

    def test_givenPlugins(self):
        """
        A check given its registry and backends scans nothing.
        """
        scans = ScanCounter(self)
        backend = fakeBackend()
        check = SettingsCheck(registry=gateway.registry.FramingRegistry(), backends={"f": backend})
        scans.framings = 0
        settings = check.gateway("t", backend="f")
        check.listener("lines", "tcp:1", default=settings.maxMessageSize, topic="t")
        self.assertEqual((scans.framings, scans.backends), (0, 0))
        self.assertIs(settings.backend, backend)

    def test_fromSettingsChecksNothing(self):
        """
        L{GatewayService.fromSettings} builds from checked settings without
        calling the checks again.
        """
        settings = checkSettings(
            [{"framing": "lines", "endpoint": "tcp:9000"}], topic="t", backend=fakeBackend()
        )

        def fail(*args, **kwargs):
            self.fail("checked again")

        self.patch(SettingsCheck, "gateway", fail)
        self.patch(SettingsCheck, "listener", fail)
        service = GatewayService.fromSettings(settings, MemoryReactorClock())
        self.assertEqual([listener.name for listener in service.listeners], ["lines"])


class ImportTests(SynchronousTestCase):
    """
    The Python API can be imported before a reactor is chosen.
    """

    def test_noReactor(self):
        """
        Importing L{gateway.service} (and so L{gateway.settings}) installs
        no reactor, so a program may install another one after it.
        """
        code = (
            "import sys, gateway.service\nassert 'twisted.internet.reactor' not in sys.modules\n"
        )
        result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)


class DefaultsTests(SynchronousTestCase):
    """
    The command line and L{GatewayService} default to the same values.
    """

    def test_sameDefaults(self):
        """
        Every L{GatewayService} parameter the command line also has
        defaults to the command line's default (but C{http}, which the
        Python API leaves off).
        """
        parameters = inspect.signature(GatewayService).parameters
        options = Options()
        pairs = {
            "bootstrapServers": "bootstrap-servers",
            "maxMessageSize": "max-message-size",
            "drainTimeout": "drain-timeout",
            "backend": "kafka-backend",
            "budget": "budget",
            "spoolPath": "spool",
            "deadLetterPath": "dead-letter",
            "healthInterval": "health-interval",
            "reserveDescriptors": "reserve-descriptors",
            "incompleteCap": "incomplete-cap",
        }
        for parameter, option in pairs.items():
            self.assertEqual(parameters[parameter].default, options[option], parameter)
        self.assertEqual(
            (options["drain-timeout"], options["health-interval"], options["max-message-size"]),
            (DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEALTH_INTERVAL, DEFAULT_MAX_MESSAGE_SIZE),
        )

    def test_probeFindsDefaultHTTP(self):
        """
        C{gateway-probe}'s default URL (kept in the light
        L{gateway.ops.readiness}, which cannot import this layer) is the
        readiness page on the command line's default HTTP endpoint.
        """
        from urllib.parse import urlsplit

        from twisted.internet.endpoints import serverFromString
        from twisted.internet.protocol import Factory
        from twisted.internet.testing import MemoryReactor

        from gateway.ops.readiness import DEFAULT_URL

        reactor = MemoryReactor()
        serverFromString(reactor, DEFAULT_HTTP).listen(Factory())
        [(port, _, _, interface)] = reactor.tcpServers
        url = urlsplit(DEFAULT_URL)
        self.assertEqual((url.hostname, url.port, url.path), (interface, port, "/readyz"))
