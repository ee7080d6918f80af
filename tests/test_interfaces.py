# -*- test-case-name: tests.test_interfaces -*-
"""
Tests for L{gateway.interfaces}: every implementation the gateway ships
provides the interface it declares, with the methods and attributes the
interface names (C{verifyClass} on every declaring class, C{verifyObject}
on instances built as the gateway builds them).

An interface whose signature changes (an argument added or reordered) fails
here for every implementation left behind, not at the first call in
production.
"""

import importlib
import inspect
import pkgutil

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import gateway
from gateway import interfaces
from gateway.kafka.client import NO_CLIENT
from gateway.registry import loadBackends, loadFramings
from gateway.routing import Route, RoutingPlugin
from gateway.service import GatewayService
from gateway.testing import RecordingSink
from tests.fakes import fakeBackend
from tests.support.acks import ackConnection

#: The deprecated re-export shims (importing them warns) and entry points.
SKIPPED = {
    "gateway.__main__",
    "gateway.connections",
    "gateway.descriptors",
    "gateway.factory",
    "gateway.listener",
    "gateway.metrics",
    "gateway.probe",
    "gateway.reuseport",
    "gateway.statuspage",
    "gateway.web",
    "gateway.workers",
}

INTERFACES = [getattr(interfaces, name) for name in interfaces.__all__]


def gatewayModules():
    """
    :return: every module of the C{gateway} package but the shims and entry
        points, imported.
    """
    modules = []
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if info.name in SKIPPED or info.name.startswith("devkafka"):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def builtGateway():
    """
    :return: a L{GatewayService} as the command line builds one, on a memory
        reactor and the fake confluent producer, not started.
    """
    return GatewayService(
        topic="t",
        reactor=MemoryReactorClock(),
        backend=fakeBackend(),
        bootstrapServers="127.0.0.1:9092",
        healthInterval=None,
        spoolPath=None,
        deadLetterPath=None,
    )


def builtImplementations():
    """
    :return: C{(interface, object)} for an instance of every implementation
        the gateway ships, built as the gateway builds it.
    """
    service = builtGateway()
    sink = RecordingSink()
    backend = fakeBackend()
    built = [
        (interfaces.IMessageSink, service.router),
        (interfaces.IMessageStream, service.router.openStream("l", "10.0.0.1:1", _Client())),
        (interfaces.IMessageSink, sink),
        (interfaces.IMessageStream, sink.openStream("l", "10.0.0.1:1", _Client())),
        (interfaces.IMessageStream, ackConnection(service.router, Clock())[0]._stream),
        (interfaces.IProducerEvents, service.producer),
        (interfaces.IProducerClient, backend.connect({}, service.producer, Clock())),
        (interfaces.IProducerClient, NO_CLIENT),
    ]
    built += [(interfaces.IFramingPlugin, p) for p in loadFramings().values()]
    built += [(interfaces.IProducerBackend, b) for b in loadBackends().values()]
    routing = RoutingPlugin("r", "a route", _PerMessageRouter, perMessage=True)
    built += [(interfaces.IRoutingPlugin, routing)]
    service.router.routes["r"] = Route(plugin=routing)
    built += [(interfaces.IMessageStream, service.router.openStream("r", "10.0.0.1:1", _Client()))]
    return built


class _PerMessageRouter:
    def __init__(self, connection):
        self.topic, self.key, self.headers = connection.topic, None, None

    def route(self, payload):
        return self.topic, None, None


#: Implementations built by other tests: their construction needs a set-up
#: of its own.
VERIFIED_ELSEWHERE = {
    # tests.kafka.test_pykafka_backend.ConnectTests.test_connects
    "gateway.kafka._pykafka.PykafkaClient",
}


class ImplementationsTests(SynchronousTestCase):
    """
    Every implementation the gateway ships provides its interfaces.
    """

    def test_builtImplementationsVerify(self):
        """
        C{verifyObject} passes for an instance of each implementation, built
        as the gateway builds it.
        """
        for interface, implementation in builtImplementations():
            self.assertTrue(verifyObject(interface, implementation), implementation)

    def test_everyDeclaringClassIsVerified(self):
        """
        Each class of a gateway module that declares an interface of
        L{gateway.interfaces} is among those verified (here, or by the test
        named in L{VERIFIED_ELSEWHERE}); every interface has an
        implementation.
        """
        verified = {_name(type(o)) for _, o in builtImplementations()} | VERIFIED_ELSEWHERE
        declaring = set()
        implemented = set()
        for module in gatewayModules():
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__:
                    continue
                for interface in INTERFACES:
                    if interface.implementedBy(cls):
                        declaring.add(_name(cls))
                        implemented.add(interface.__name__)
        unverified = {
            name
            for name in declaring - verified
            if not any(v.startswith(name + ".") or _subclassOf(v, name) for v in verified)
        }
        self.assertEqual(unverified, set())
        self.assertEqual({i.__name__ for i in INTERFACES} - implemented, set())


def _name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _subclassOf(verifiedName, name):
    """
    Whether the verified class named C{verifiedName} (a test's subclass,
    such as the fake confluent backend) derives from the class C{name}.
    """
    for _, obj in builtImplementations():
        if _name(type(obj)) == verifiedName:
            return any(_name(base) == name for base in type(obj).__mro__)
    return False


class PluginsFoundTests(SynchronousTestCase):
    """
    The plugins L{builtImplementations} verifies are the ones the gateway
    ships: an empty registry would verify nothing.
    """

    def test_builtInFramingsAndBothBackends(self):
        """
        The registry finds the built-in framings and both producer
        backends.
        """
        self.assertEqual({"lines", "length-prefixed"} - set(loadFramings()), set())
        self.assertEqual({"confluent", "pykafka"} - set(loadBackends()), set())


class _Client:
    """
    A framing protocol as the router sees it: something to pause.
    """

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass
