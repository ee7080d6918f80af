# -*- test-case-name: tests.compat.test_twisted -*-
"""
Each entry of L{gateway.compat.twisted} against the installed Twisted, on
real objects: a test here fails when Twisted renames, drops or changes what
the gateway relies on.
"""

import errno
import io
import socket
import time

from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, globalLogPublisher, textFileLogObserver
from twisted.protocols.haproxy import proxyEndpoint
from twisted.runner import procmon
from twisted.trial.unittest import SynchronousTestCase

import gateway.plugins
from gateway.compat.twisted import (
    ACCEPT_FAILED_FORMAT,
    CLASSIC_LOG_LEVEL,
    EMFILE_RECOVERY_FORMAT,
    PROCESS_LINE_FIELD,
    acceptBatch,
    cachedPlugins,
    listeningSocket,
    monitoredCount,
    proxyHeaderRead,
    setAcceptBatch,
)
from gateway.interfaces import IFramingPlugin, IProducerBackend


class ListeningPortMixin:
    """
    A real Twisted TCP port listening on loopback, on a memory reactor (so
    nothing runs unless the test calls it), and clients connected to it.
    """

    def listen(self):
        self.reactor = MemoryReactorClock()
        self.built = []
        factory = Factory.forProtocol(Protocol)
        factory.buildProtocol = lambda addr: self.built.append(Protocol()) or self.built[-1]
        port = tcp.Port(0, factory, interface="127.0.0.1", reactor=self.reactor)
        port.startListening()
        self.addCleanup(self.reactor.advance, 0)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.closeBuilt)
        return port

    def closeBuilt(self):
        for protocol in self.built:
            protocol.transport.socket.close()

    def connectClients(self, port, count):
        """
        Connect C{count} clients; each is in the listening socket's accept
        queue when this returns (the handshake completed).
        """
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
            self.addCleanup(client.close)


class AcceptBatchTests(ListeningPortMixin, SynchronousTestCase):
    """
    L{acceptBatch} and L{setAcceptBatch}: C{tcp.Port.numberAccepts}.
    """

    def test_readAcceptsTheBatch(self):
        """
        A port's batch starts at Twisted's 100; after L{setAcceptBatch} one
        C{doRead} accepts exactly that many of the connections waiting, and
        a full batch grows by 20 while a partial one shrinks to what was
        accepted.
        """
        port = self.listen()
        self.assertEqual(acceptBatch(port), 100)
        self.connectClients(port, 5)
        setAcceptBatch(port, 2)
        self.assertEqual(acceptBatch(port), 2)
        port.doRead()
        self.assertEqual(len(self.built), 2)
        self.assertEqual(acceptBatch(port), 22)
        port.doRead()
        self.assertEqual(len(self.built), 5)
        self.assertEqual(acceptBatch(port), 3)

    def test_portsWithoutBatches(self):
        """
        An object without a batch (a UNIX port, say) has none, and setting
        one leaves it alone.
        """
        other = object()
        self.assertIsNone(acceptBatch(other))
        setAcceptBatch(other, 5)
        self.assertFalse(hasattr(other, "numberAccepts"))


class FailingListener:
    """
    A listening socket whose C{accept} fails with the given errors, then
    reports that nobody is waiting.
    """

    def __init__(self, real, *errors):
        self.real = real
        self.errors = list(errors)

    def accept(self):
        code = self.errors.pop(0) if self.errors else errno.EAGAIN
        raise OSError(code, errno.errorcode[code])

    def __getattr__(self, name):
        return getattr(self.real, name)


class AcceptFailureLogTests(ListeningPortMixin, SynchronousTestCase):
    """
    L{EMFILE_RECOVERY_FORMAT} and L{ACCEPT_FAILED_FORMAT}: what a real port's
    C{doRead} logs, through C{tcp._accept}, when C{accept} fails.
    """

    def failAccept(self, *errors):
        port = self.listen()
        real = port.socket
        port.socket = FailingListener(real, *errors)
        self.addCleanup(setattr, port, "socket", real)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        port.doRead()
        return [e for e in events if e.get("log_namespace", "").startswith("twisted.internet")]

    def test_emfile(self):
        """
        At the descriptor limit Twisted logs a line starting with
        L{EMFILE_RECOVERY_FORMAT} (without an C{acceptError} field, which the
        guard then takes as EMFILE).
        """
        events = self.failAccept(errno.EMFILE)
        recovery = [e for e in events if e["log_format"].startswith(EMFILE_RECOVERY_FORMAT)]
        self.assertEqual(len(recovery), 1, [e["log_format"] for e in events])
        self.assertEqual(recovery[0].get("acceptError", "EMFILE"), "EMFILE")

    def test_otherErrors(self):
        """
        ENFILE, ENOBUFS and ENOMEM are logged with exactly
        L{ACCEPT_FAILED_FORMAT}, the errno's name in C{acceptError}.
        """
        for code in (errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            events = self.failAccept(code)
            self.assertEqual(
                [(e["log_format"], e["acceptError"]) for e in events],
                [(ACCEPT_FAILED_FORMAT, errno.errorcode[code])],
            )


class ProxyHeaderTests(SynchronousTestCase):
    """
    L{proxyHeaderRead}: C{HAProxyProtocolWrapper._proxyInfo}.
    """

    def wrapper(self):
        """
        The protocol a C{haproxy:} endpoint's port builds, as the gateway's
        listeners get it (through the public L{proxyEndpoint}).
        """
        listened = []

        class Endpoint:
            def listen(self, factory):
                listened.append(factory)
                return succeed(None)

        proxyEndpoint(Endpoint()).listen(Factory.forProtocol(Protocol))
        return listened[0].buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))

    def test_beforeAndAfter(self):
        """
        A real wrapper has not read the header when connected, and has once
        a PROXY v1 header arrived (the wrapped protocol then sees the
        client's address).
        """
        wrapper = self.wrapper()
        wrapper.makeConnection(StringTransport())
        self.assertIs(proxyHeaderRead(wrapper), False)
        wrapper.dataReceived(b"PROXY TCP4 10.1.2.3 10.0.0.1 4567 80\r\n")
        self.assertIs(proxyHeaderRead(wrapper), True)
        self.assertEqual(wrapper.getPeer().host, "10.1.2.3")

    def test_notAWrapper(self):
        """
        Anything else gives L{None}.
        """
        self.assertIsNone(proxyHeaderRead(Protocol()))


class CachedPluginsTests(SynchronousTestCase):
    """
    L{cachedPlugins}: Twisted's plugin cache.
    """

    def test_builtins(self):
        """
        The gateway's own plugins are listed with their module, name and
        interfaces, and C{load} gives the plugin object.
        """
        found = {
            (module, name): (provided, load)
            for module, name, provided, load in cachedPlugins(gateway.plugins)
        }
        provided, load = found[("gateway.plugins.gateway_builtin", "lines")]
        self.assertTrue(any(p.isOrExtends(IFramingPlugin) for p in provided))
        self.assertEqual(load().name, "lines")
        provided, load = found[("gateway.plugins.gateway_backends", "confluent")]
        self.assertTrue(any(p.isOrExtends(IProducerBackend) for p in provided))
        self.assertTrue(IProducerBackend.providedBy(load()))


class ListeningSocketTests(ListeningPortMixin, SynchronousTestCase):
    """
    L{listeningSocket}: C{tcp.Port.socket}.
    """

    def test_tcpPort(self):
        """
        A listening TCP port's socket is the one bound to its address.
        """
        port = self.listen()
        skt = listeningSocket(port)
        self.assertIsInstance(skt, socket.socket)
        self.assertEqual(skt.getsockname()[1], port.getHost().port)

    def test_otherPorts(self):
        """
        An object without a socket has none.
        """
        self.assertIsNone(listeningSocket(object()))


class ProcessMonitorTests(SynchronousTestCase):
    """
    L{monitoredCount} and L{PROCESS_LINE_FIELD}: Twisted's C{ProcessMonitor}.
    """

    def test_monitoredCount(self):
        """
        The count follows C{addProcess} and C{removeProcess} before the
        monitor starts.
        """
        monitor = procmon.ProcessMonitor(reactor=MemoryReactorClock())
        self.assertEqual(monitoredCount(monitor), 0)
        monitor.addProcess("a", ["/bin/true"])
        monitor.addProcess("b", ["/bin/true"])
        self.assertEqual(monitoredCount(monitor), 2)
        monitor.removeProcess("a")
        self.assertEqual(monitoredCount(monitor), 1)

    def test_lineField(self):
        """
        A line a monitored process writes is logged at info with the
        monitor's C{log}, the text in L{PROCESS_LINE_FIELD}.
        """
        events = []
        monitor = procmon.ProcessMonitor(reactor=MemoryReactorClock())
        monitor.log = monitor.log.__class__(observer=events.append)
        logger = procmon.LineLogger()
        logger.tag, logger.stream, logger.service = "worker-2", "stdout", monitor
        logger.dataReceived(b"2026-01-01T00:00:00+0000 [gateway.x#warn] hello\n")
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(
            event[PROCESS_LINE_FIELD], "2026-01-01T00:00:00+0000 [gateway.x#warn] hello"
        )


class ClassicLogLevelTests(SynchronousTestCase):
    """
    L{CLASSIC_LOG_LEVEL}: twistd's text log format.
    """

    def written(self, level):
        out = io.StringIO()
        textFileLogObserver(out)(
            {
                "log_namespace": "gateway.listener",
                "log_level": level,
                "log_format": "a [x#warn] message",
                "log_time": time.time(),
            }
        )
        return out.getvalue()

    def test_levels(self):
        """
        Lines twistd writes at warn, error and critical match, with the
        level's name; lines at info and debug do not, even when their text
        looks like a level.
        """
        for level in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            match = CLASSIC_LOG_LEVEL.match(self.written(level))
            self.assertIsNotNone(match, self.written(level))
            self.assertEqual(match.group(1), level.name)
        for level in (LogLevel.info, LogLevel.debug):
            self.assertIsNone(CLASSIC_LOG_LEVEL.match(self.written(level)))
