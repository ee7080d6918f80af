# -*- test-case-name: tests.server.test_tls -*-
"""
Tests for L{gateway.server.tls}: TLS listener options, the handshake before
the stream opens, mutual TLS, the client certificate's subject, refused
handshakes, reloading, and pausing through TLS.  Clients and servers talk
through Twisted's memory TLS over L{twisted.test.iosim}, with certificates
made by C{trustme}.
"""

import signal

import trustme
from cryptography import x509
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
)
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.test.iosim import FakeTransport, connect
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.options import OptionError, resolveOptions
from gateway.router import CLIENT_CERT_HEADER, PEER_HEADER, Router
from gateway.server.factory import listenerFactory
from gateway.server.gate import ListenerGate
from gateway.server.handshake import TLS_HANDSHAKE
from gateway.server.listener import ListenerConfig, ListenerStats
from gateway.server.policy import ConnectionPolicy
from gateway.server.tls import (
    CertificateReloader,
    ServerTLS,
    TLSSettings,
    splitTLSOptions,
    tlsFactory,
)
from gateway.testing import RecordingSink
from tests.server.helpers import FRAMINGS, captureLogs
from tests.support.files import temporaryDirectory


def logged(logs, text):
    """
    :return: the events captured whose format contains C{text}.
    """
    return [event for event in logs if text in (event.get("log_format") or "")]


class PausableTransport(FakeTransport):
    """
    An iosim transport that remembers whether it was paused.
    """

    paused = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False


class Received(Protocol):
    """
    A client protocol keeping what it reads and why it was closed.
    """

    def __init__(self):
        self.data = b""
        self.reason = None

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.reason = reason


class Certificates:
    """
    A CA and PEM files of a server certificate, another server certificate
    and a client certificate, written to a test's temporary directory.
    """

    def __init__(self, case):
        self.ca = trustme.CA()
        self.other = trustme.CA()
        self.dir = FilePath(temporaryDirectory(case))
        self.server = self.ca.issue_cert("localhost")
        self.cert = self.write("server.pem", self.server.cert_chain_pems[0].bytes())
        self.key = self.write("server.key", self.server.private_key_pem.bytes())
        self.both = self.write("both.pem", self.server.private_key_and_cert_chain_pem.bytes())
        self.caFile = self.write("ca.pem", self.ca.cert_pem.bytes())
        self.client = self.ca.issue_cert("client.example", common_name="client.example")

    def write(self, name, data):
        path = self.dir.child(name)
        path.setContent(data)
        return path.path

    def clientOptions(self, certificate=None, ca=None, **kwargs):
        """
        :return: a client's TLS connection creator trusting C{ca} (the
            test CA by default), presenting C{certificate} (a trustme
            certificate) if given.
        """
        ca = ca or self.ca
        if certificate is not None:
            kwargs["clientCertificate"] = PrivateCertificate.loadPEM(
                certificate.private_key_and_cert_chain_pem.bytes()
            )
        return optionsForClientTLS(
            "localhost", trustRoot=Certificate.loadPEM(ca.cert_pem.bytes()), **kwargs
        )


class TLSListener:
    """
    A TLS listener's factory built as the service builds it, on a L{Clock}
    and a L{RecordingSink} (or a given sink).
    """

    def __init__(self, settings, sink=None):
        plugin = FRAMINGS["lines"]
        resolved = resolveOptions(plugin, {}, 1024)
        self.clock = Clock()
        self.stats = ListenerStats()
        self.sink = sink if sink is not None else RecordingSink()
        self.config = ListenerConfig(
            name="secure",
            framing="lines",
            endpoint="tcp:0",
            sink=self.sink,
            maxMessageSize=1024,
            options=resolved,
            clock=self.clock,
            stats=self.stats,
            gate=ListenerGate("secure", ConnectionPolicy(), self.stats, self.clock),
            tls=settings,
        )
        self.tls = ServerTLS("secure", settings)
        self.factory = tlsFactory(self.tls, listenerFactory(plugin, self.config), self.clock)

    def connect(self, clientCreator):
        """
        Connect a client speaking TLS with C{clientCreator}.

        :return: C{(client, server, pump, serverTransport)}; C{client} is
            the client's L{Received} protocol, C{server} the gateway's
            framing protocol.
        """
        address = IPv4Address("TCP", "10.0.0.1", 40000)
        serverWrapper = self.factory.buildProtocol(address)
        client = Received()
        clientWrapper = TLSMemoryBIOFactory(
            clientCreator, True, Factory.forProtocol(lambda: client), clock=self.clock
        ).buildProtocol(address)
        serverTransport = PausableTransport(serverWrapper, isServer=True, peerAddress=address)
        clientTransport = FakeTransport(clientWrapper, isServer=False)
        pump = connect(
            serverWrapper, serverTransport, clientWrapper, clientTransport, clock=self.clock
        )
        return client, serverWrapper.wrappedProtocol, pump, serverTransport, clientWrapper


class OptionsTests(SynchronousTestCase):
    """
    L{TLSSettings.fromOptions} and L{splitTLSOptions}.
    """

    def setUp(self):
        self.files = Certificates(self)

    def test_split(self):
        """
        TLS options are told apart from the framing's and connection options.
        """
        self.assertEqual(
            splitTLSOptions({"tls-cert": "a", "max-size": "9", "tls-client-ca": "b"}),
            ({"tls-cert": "a", "tls-client-ca": "b"}, {"max-size": "9"}),
        )

    def test_none(self):
        """
        Without TLS options a listener is plain TCP.
        """
        self.assertIsNone(TLSSettings.fromOptions({}))

    def test_keyDefaultsToCertFile(self):
        """
        The key may be in the certificate's file; the defaults are TLS 1.2
        and no client certificates.
        """
        settings = TLSSettings.fromOptions({"tls-cert": self.files.both})
        self.assertEqual(settings.key, self.files.both)
        self.assertEqual(settings.minVersion, "1.2")
        self.assertFalse(settings.mutual)

    def test_keyNotInCertFile(self):
        """
        Without C{tls-key}, a certificate file holding no key is refused
        with a hint.
        """
        e = self.assertRaises(OptionError, TLSSettings.fromOptions, {"tls-cert": self.files.cert})
        self.assertIn(
            f"listener option tls-cert={self.files.cert!r}: no unencrypted PEM private key "
            "in it (or give tls-key=FILE)",
            str(e),
        )

    def test_needsCert(self):
        """
        Another TLS option without C{tls-cert} is refused, naming it.
        """
        e = self.assertRaises(OptionError, TLSSettings.fromOptions, {"tls-key": self.files.key})
        self.assertIn("tls-key needs tls-cert=FILE", str(e))

    def test_missingFile(self):
        """
        A file that cannot be read is refused, naming the option and file.
        """
        e = self.assertRaises(
            OptionError,
            TLSSettings.fromOptions,
            {"tls-cert": self.files.cert, "tls-key": "/nonexistent/key.pem"},
        )
        self.assertEqual(
            str(e), "listener option tls-key='/nonexistent/key.pem': No such file or directory"
        )

    def test_notACertificate(self):
        """
        A certificate file holding no certificate is refused.
        """
        e = self.assertRaises(
            OptionError,
            TLSSettings.fromOptions,
            {"tls-cert": self.files.key, "tls-key": self.files.key},
        )
        self.assertIn("tls-cert=", str(e))
        self.assertIn("no PEM certificate", str(e))

    def test_keyMismatch(self):
        """
        A key that is not the certificate's is refused at start.
        """
        otherKey = self.files.write(
            "other.key", self.files.ca.issue_cert("localhost").private_key_pem.bytes()
        )
        e = self.assertRaises(
            OptionError,
            TLSSettings.fromOptions,
            {"tls-cert": self.files.cert, "tls-key": otherKey},
        )
        self.assertIn("does not match tls-cert", str(e))

    def test_notOnSSLEndpoint(self):
        """
        TLS options on an endpoint that already speaks TLS are refused.
        """
        e = self.assertRaises(
            OptionError,
            TLSSettings.fromOptions,
            {"tls-cert": self.files.both},
            "haproxy:ssl:6514:privateKey=k.pem",
        )
        self.assertEqual(
            str(e),
            "listener option tls-cert on the ssl: endpoint "
            "'haproxy:ssl:6514:privateKey=k.pem' would encrypt twice; "
            "listen on tcp: (or reuseport:) instead",
        )
        self.assertIsNotNone(TLSSettings.fromOptions({"tls-cert": self.files.both}, "tcp:6514"))

    def test_minVersion(self):
        """
        C{tls-min-version} takes 1.2 or 1.3 only.
        """
        e = self.assertRaises(
            OptionError,
            TLSSettings.fromOptions,
            {"tls-cert": self.files.both, "tls-min-version": "1.1"},
        )
        self.assertIn("tls-min-version='1.1'", str(e))

    def test_noRenegotiation(self):
        """
        The context refuses renegotiation.
        """
        from OpenSSL import SSL

        context = TLSSettings.fromOptions({"tls-cert": self.files.both}).context()
        self.assertTrue(context.set_options(0) & SSL.OP_NO_RENEGOTIATION)


class HandshakeTests(SynchronousTestCase):
    """
    Connections of a TLS listener.
    """

    def setUp(self):
        self.files = Certificates(self)

    def listener(self, **options):
        options.setdefault("tls-cert", self.files.cert)
        options.setdefault("tls-key", self.files.key)
        return TLSListener(TLSSettings.fromOptions(options))

    def test_linesOverTLS(self):
        """
        Lines sent over TLS reach the sink; the stream opened after the
        handshake, without a client subject.
        """
        listener = self.listener()
        client, server, pump, _, wrapper = listener.connect(self.files.clientOptions())
        self.assertEqual(len(listener.sink.streams), 1)
        self.assertIsNone(server.clientSubject)
        wrapper.write(b"one\ntwo\n")
        pump.flush()
        self.assertEqual([m for _, m in listener.sink.messages], [b"one", b"two"])
        self.assertEqual(listener.stats.bytesReceived, 8)

    def test_streamOpensAfterHandshake(self):
        """
        Until the handshake completes no stream is open.
        """
        listener = self.listener()
        address = IPv4Address("TCP", "10.0.0.1", 40000)
        wrapper = listener.factory.buildProtocol(address)
        wrapper.makeConnection(FakeTransport(wrapper, isServer=True, peerAddress=address))
        self.assertEqual(listener.sink.streams, [])
        self.assertEqual(listener.stats.accepted, 1)

    def test_mutualTLSSubject(self):
        """
        With C{tls-client-ca}, a client certificate issued by that CA is
        accepted and its subject is the protocol's C{clientSubject}.
        """
        listener = self.listener(**{"tls-client-ca": self.files.caFile})
        client, server, pump, _, wrapper = listener.connect(
            self.files.clientOptions(self.files.client)
        )
        expected = (
            x509.load_pem_x509_certificate(self.files.client.cert_chain_pems[0].bytes())
            .subject.rfc4514_string()
            .encode()
        )
        self.assertIn(b"CN=client.example", expected)
        self.assertEqual(server.clientSubject, expected)
        wrapper.write(b"hello\n")
        pump.flush()
        self.assertEqual([m for _, m in listener.sink.messages], [b"hello"])

    def assertRefused(self, listener, client, server, logs, error):
        """
        The handshake failed: no stream, counted and logged once.
        """
        self.assertEqual(listener.sink.streams, [])
        self.assertIsNotNone(client.reason)
        self.assertEqual(listener.stats.refused[TLS_HANDSHAKE], 1)
        [event] = logged(logs, "TLS handshake")
        self.assertIn(error, event["error"])

    def test_mutualTLSWithoutCertificate(self):
        """
        A client without a certificate is refused by a mutual TLS listener.
        """
        listener = self.listener(**{"tls-client-ca": self.files.caFile})
        logs = captureLogs(self)
        client, server, pump, _, wrapper = listener.connect(self.files.clientOptions())
        wrapper.write(b"sneaky\n")
        pump.flush()
        self.assertRefused(listener, client, server, logs, "certificate")
        self.assertEqual(listener.sink.messages, [])

    def test_mutualTLSOtherCA(self):
        """
        A client certificate from another CA is refused.
        """
        listener = self.listener(**{"tls-client-ca": self.files.caFile})
        stranger = self.files.other.issue_cert("client.example")
        logs = captureLogs(self)
        client, server, pump, _, _ = listener.connect(self.files.clientOptions(stranger))
        pump.flush()
        self.assertRefused(listener, client, server, logs, "certificate")

    def test_oldVersionRefused(self):
        """
        A client offering at most TLS 1.1 is refused by the server (whose
        alert the client gets), even when the client's library allows 1.1.
        """
        listener = self.listener()
        old = CertificateOptions(
            insecurelyLowerMinimumTo=TLSVersion.TLSv1_0,
            lowerMaximumSecurityTo=TLSVersion.TLSv1_1,
        )
        old.getContext().set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        logs = captureLogs(self)
        client, server, pump, _, _ = listener.connect(old)
        pump.flush()
        self.assertRefused(listener, client, server, logs, "unsupported protocol")

    def test_minVersion13(self):
        """
        C{tls-min-version=1.3} refuses a TLS 1.2 client.
        """
        listener = self.listener(**{"tls-min-version": "1.3"})
        twelve = optionsForClientTLS(
            "localhost",
            trustRoot=Certificate.loadPEM(self.files.ca.cert_pem.bytes()),
            extraCertificateOptions={"lowerMaximumSecurityTo": TLSVersion.TLSv1_2},
        )
        logs = captureLogs(self)
        client, server, pump, _, _ = listener.connect(twelve)
        pump.flush()
        self.assertRefused(listener, client, server, logs, "unsupported protocol")

    def test_pauseThroughTLS(self):
        """
        Pausing the framing protocol pauses the TCP transport under TLS.
        """
        listener = self.listener()
        client, server, pump, transport, _ = listener.connect(self.files.clientOptions())
        server.pauseProducing()
        self.assertTrue(transport.paused)
        server.resumeProducing()
        self.assertFalse(transport.paused)

    def test_reload(self):
        """
        After a reload, a connection made before keeps working and a new
        one gets the new certificate.
        """
        listener = self.listener()
        before, _, pumpBefore, _, writerBefore = listener.connect(self.files.clientOptions())
        newCA = trustme.CA()
        renewed = newCA.issue_cert("localhost")
        self.files.write("server.pem", renewed.cert_chain_pems[0].bytes())
        self.files.write("server.key", renewed.private_key_pem.bytes())
        logs = captureLogs(self)
        self.assertTrue(listener.tls.reload())
        self.assertEqual(len(logged(logs, "TLS certificate reloaded")), 1)
        writerBefore.write(b"still here\n")
        pumpBefore.flush()
        self.assertEqual([m for _, m in listener.sink.messages], [b"still here"])
        after, _, pumpAfter, _, writerAfter = listener.connect(self.files.clientOptions(ca=newCA))
        self.assertEqual(
            writerAfter.getPeerCertificate().to_cryptography().serial_number,
            x509.load_pem_x509_certificate(renewed.cert_chain_pems[0].bytes()).serial_number,
        )
        writerAfter.write(b"new\n")
        pumpAfter.flush()
        self.assertEqual([m for _, m in listener.sink.messages], [b"still here", b"new"])

    def test_reloadBrokenFilesKeepsOld(self):
        """
        Files that no longer load are logged; the old certificate stays.
        """
        listener = self.listener()
        self.files.write("server.key", b"garbage")
        logs = captureLogs(self)
        self.assertFalse(listener.tls.reload())
        [event] = logged(logs, "not reloaded")
        self.assertIn("tls-key=", event["error"])
        client, _, pump, _, writer = listener.connect(self.files.clientOptions())
        writer.write(b"ok\n")
        pump.flush()
        self.assertEqual([m for _, m in listener.sink.messages], [b"ok"])


class FakeSignals:
    """
    Stands in for the L{signal} module.
    """

    SIGHUP = signal.SIGHUP

    def __init__(self):
        self.handlers = {signal.SIGHUP: signal.SIG_DFL}

    def signal(self, number, handler):
        previous, self.handlers[number] = self.handlers[number], handler
        return previous


class ImmediateReactor:
    """
    Runs what it is given to call from a thread at once.
    """

    def callFromThread(self, function, *args):
        function(*args)


class ReloaderTests(SynchronousTestCase):
    """
    L{CertificateReloader}.
    """

    def test_sighupReloads(self):
        """
        While running, C{SIGHUP} reloads every listener; stopping restores
        the previous handler.
        """
        signals = FakeSignals()
        reloader = CertificateReloader(ImmediateReactor(), signals)
        reloaded = []

        class Listener:
            def reload(self):
                reloaded.append(self)
                return True

        reloader.listeners = [Listener(), Listener()]
        reloader.startService()
        signals.handlers[signal.SIGHUP](signal.SIGHUP, None)
        self.assertEqual(reloaded, reloader.listeners)
        reloader.stopService()
        self.assertIs(signals.handlers[signal.SIGHUP], signal.SIG_DFL)

    def test_noListenersNoHandler(self):
        """
        Without TLS listeners C{SIGHUP} is left alone.
        """
        signals = FakeSignals()
        reloader = CertificateReloader(ImmediateReactor(), signals)
        reloader.startService()
        self.assertIs(signals.handlers[signal.SIGHUP], signal.SIG_DFL)


class HeaderTests(SynchronousTestCase):
    """
    The client certificate's subject in every record's headers.
    """

    class Producer:
        def __init__(self):
            self.records = []
            self.observer = None

        def produce(self, topic, value, key=None, headers=None):
            self.records.append(headers)

    class Client:
        clientSubject = b"CN=client.example"

    def test_header(self):
        """
        A stream of a verified client carries C{gateway-client-cert} after
        the provenance headers, and alone with headers turned off.
        """
        for headers, expected in [
            (True, [(PEER_HEADER, b"10.0.0.1:5"), (CLIENT_CERT_HEADER, b"CN=client.example")]),
            (False, [(CLIENT_CERT_HEADER, b"CN=client.example")]),
        ]:
            producer = self.Producer()
            router = Router(producer, "t", headers=headers)
            router.openStream("secure", "10.0.0.1:5", self.Client()).send(b"x")
            [sent] = producer.records
            self.assertEqual(sent[-len(expected) :], expected)
            self.assertEqual(len(sent), 3 if headers else 1)

    def test_restoredWhileOpen(self):
        """
        A record handed back without headers (confluent-kafka's delivery
        reports) gets C{gateway-client-cert} back from its key while its
        connection is open, with headers on or off; not after it closed.
        """
        from gateway.kafka.records import Record

        for headers, before in [(True, [(PEER_HEADER, b"10.0.0.1:5")]), (False, [])]:
            router = Router(self.Producer(), "t", headers=headers)
            stream = router.openStream("secure", "10.0.0.1:5", self.Client())
            bare = Record("t", b"secure/10.0.0.1:5", [], b"v")
            restored = router.restoreRecord(bare).headers
            self.assertEqual(
                restored[-len(before) - 1 :],
                [*before, (CLIENT_CERT_HEADER, b"CN=client.example")],
            )
            stream.close()
            self.assertNotIn(CLIENT_CERT_HEADER, dict(router.restoreRecord(bare).headers))
            self.assertEqual(router.clientSubjects, {})


class CompositionTests(SynchronousTestCase):
    """
    TLS listeners in the command line and the service tree.
    """

    def setUp(self):
        self.files = Certificates(self)

    def test_usageError(self):
        """
        A TLS file that cannot be read is a one-line usage error naming the
        listener and the option.
        """
        from twisted.python.usage import UsageError

        from gateway.tap import Options

        e = self.assertRaises(
            UsageError,
            Options().parseOptions,
            ["--topic", "t", "--listen", "lines(tls-cert=/nonexistent.pem)=tcp:9000"],
        )
        self.assertEqual(
            str(e),
            "--listen lines...=tcp:9000: listener option "
            "tls-cert='/nonexistent.pem': No such file or directory",
        )

    def test_workersShareTLSListeners(self):
        """
        TLS options work with the C{reuseport:} endpoints of C{--workers}:
        every worker loads the same files.
        """
        from gateway.tap import Options

        options = Options()
        options.parseOptions(
            [
                "--topic",
                "t",
                "--workers",
                "2",
                "--listen",
                f"lines(tls-cert={self.files.both})=reuseport:9000",
            ]
        )
        [listener] = options["settings"].listeners
        self.assertEqual(listener.tls.cert, self.files.both)

    def test_workersGetSIGHUP(self):
        """
        With C{--workers}, worker 1 passes each C{SIGHUP} on to the other
        workers, which reload their own files.
        """
        from gateway.tap import Options, makeService

        options = Options()
        options.parseOptions(
            [
                "--topic",
                "t",
                "--workers",
                "2",
                "--http",
                "none",
                "--listen",
                f"lines(tls-cert={self.files.both})=reuseport:9000",
            ]
        )
        # makeService puts the tree under a StartupGuard.
        [tree] = makeService(options)
        gateway, group = list(tree)
        self.assertEqual(gateway.certificates.forwardTo, [group.signalWorkers])
        signalled = []

        class Transport:
            def signalProcess(self, name):
                signalled.append(name)

        class Running:
            transport = Transport()

        class Starting:
            transport = None

        group.protocols = {"worker-2": Running(), "worker-3": Starting()}
        gateway.certificates.reload()
        self.assertEqual(signalled, ["HUP"])

    def test_service(self):
        """
        The service wraps a TLS listener's factory in TLS and reloads its
        files on C{SIGHUP}; a plain listener is left alone.
        """
        from twisted.internet.testing import MemoryReactorClock

        from gateway.service import GatewayService
        from tests.fakes import fakeBackend

        service = GatewayService(
            topic="t",
            reactor=MemoryReactorClock(),
            backend=fakeBackend(),
            spoolPath=None,
            deadLetterPath=None,
        )
        plain = service.addListener("lines", "tcp:0")
        self.assertIsNone(service.certificates)
        secure = service.addListener("lines", "tcp:0", options={"tls-cert": self.files.both})
        self.assertIsInstance(secure.factory, TLSMemoryBIOFactory)
        self.assertNotIsInstance(plain.factory, TLSMemoryBIOFactory)
        self.assertIn(service.certificates, list(service))
        [tls] = service.certificates.listeners
        self.assertEqual(tls.settings.cert, self.files.both)


class HygieneTests(SynchronousTestCase):
    """
    TLS with the listener's connection hygiene: PROXY header, idle timer,
    descriptor room.
    """

    def setUp(self):
        self.files = Certificates(self)

    def test_proxyThenTLS(self):
        """
        On a C{haproxy:} listener the PROXY header comes before the TLS
        bytes: the stream opens with the proxied client's address once
        both are done.
        """
        from tests.support.proxy import proxyWrappingFactory

        settings = TLSSettings.fromOptions({"tls-cert": self.files.both})
        listener = TLSListener(settings)
        plugin = FRAMINGS["lines"]
        listener.config = config = ListenerConfig(
            **{**vars(listener.config), "endpoint": "haproxy:tcp:0", "proxied": True}
        )
        listener.factory = proxyWrappingFactory(
            tlsFactory(listener.tls, listenerFactory(plugin, config), listener.clock)
        )
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        proxy = listener.factory.buildProtocol(address)
        client = Received()
        clientWrapper = TLSMemoryBIOFactory(
            self.files.clientOptions(), True, Factory.forProtocol(lambda: client), listener.clock
        ).buildProtocol(address)
        serverTransport = FakeTransport(proxy, isServer=True, peerAddress=address)
        proxy.makeConnection(serverTransport)
        proxy.dataReceived(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n")
        pump = connect(
            proxy,
            serverTransport,
            clientWrapper,
            FakeTransport(clientWrapper, isServer=False),
            clock=listener.clock,
            greet=False,
        )
        pump.flush()
        clientWrapper.write(b"behind a proxy\n")
        pump.flush()
        self.assertEqual(listener.sink.messages, [("203.0.113.7:5555", b"behind a proxy")])

    def ageListener(self):
        """
        :return: a TLS listener with C{max-age=5}.
        """
        listener = TLSListener(TLSSettings.fromOptions({"tls-cert": self.files.both}))
        gate = ListenerGate("secure", ConnectionPolicy(maxAge=5.0), listener.stats, listener.clock)
        listener.config = config = ListenerConfig(**{**vars(listener.config), "gate": gate})
        listener.factory = tlsFactory(
            listener.tls, listenerFactory(FRAMINGS["lines"], config), listener.clock
        )
        return listener

    def test_maxAgeClosesTLS(self):
        """
        At C{max-age} a TLS connection gets TLS's own end of stream (a
        close_notify, which Twisted's client answers): closed cleanly, with
        everything sent before it published.
        """
        listener = self.ageListener()
        client, server, pump, transport, writer = listener.connect(self.files.clientOptions())
        writer.write(b"before\n")
        pump.flush()
        listener.clock.advance(5.0)
        pump.flush()
        self.assertTrue(transport.disconnecting)
        client.reason.trap(ConnectionDone)
        self.assertEqual(listener.stats.closedBy["max-age"], 1)
        self.assertEqual([m for _, m in listener.sink.messages], [b"before"])

    def test_maxAgeGraceOverTLS(self):
        """
        A TLS client that never answers the close_notify is cut off
        L{AGE_GRACE} seconds later.
        """
        from gateway.server.hygiene import AGE_GRACE

        listener = self.ageListener()
        client, server, pump, transport, writer = listener.connect(self.files.clientOptions())
        listener.clock.advance(5.0)
        self.assertFalse(transport.disconnecting)
        aborted = []
        transport.abortConnection = lambda: aborted.append(True)
        listener.clock.advance(AGE_GRACE)
        self.assertEqual(aborted, [True])

    def test_idleDuringHandshake(self):
        """
        A client that connects and never completes its handshake is closed
        by C{idle-timeout}, counted as such and not as a failed handshake.
        """
        settings = TLSSettings.fromOptions({"tls-cert": self.files.both})
        listener = TLSListener(settings)
        listener.config = config = ListenerConfig(
            **{
                **vars(listener.config),
                "gate": ListenerGate(
                    "secure",
                    ConnectionPolicy(idleTimeout=5.0),
                    listener.stats,
                    listener.clock,
                ),
            }
        )
        listener.factory = tlsFactory(
            listener.tls, listenerFactory(FRAMINGS["lines"], config), listener.clock
        )
        address = IPv4Address("TCP", "10.0.0.1", 40000)
        wrapper = listener.factory.buildProtocol(address)
        transport = FakeTransport(wrapper, isServer=True, peerAddress=address)
        wrapper.makeConnection(transport)
        wrapper.dataReceived(b"\x16\x03\x01")  # the start of a ClientHello
        listener.clock.advance(5.0)
        self.assertTrue(transport.disconnecting)
        wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(listener.stats.closedBy["idle-timeout"], 1)
        self.assertEqual(listener.stats.refused[TLS_HANDSHAKE], 0)
        self.assertEqual(listener.stats.open, 0)
        self.assertEqual(listener.sink.streams, [])

    def test_descriptorsCountedAtAccept(self):
        """
        A TLS connection holds a descriptor from its TCP accept, before its
        handshake: past the room it is refused as C{descriptors} at once,
        not counted as a failed handshake, and gives its descriptor back.
        """
        from types import SimpleNamespace

        from twisted.logger import LogPublisher

        from gateway.server.descriptors import DESCRIPTORS, DescriptorGuard

        port = SimpleNamespace(
            pauseAccepting=lambda reason: None,
            resumeAccepting=lambda reason: None,
            limitAcceptBatch=lambda count: None,
        )
        guard = DescriptorGuard([port], Clock(), reserve=0, publisher=LogPublisher())
        guard.start(limit=1, inUse=0)
        self.addCleanup(guard.stop)
        listener = TLSListener(TLSSettings.fromOptions({"tls-cert": self.files.both}))
        listener.config = config = ListenerConfig(
            **{**vars(listener.config), "descriptors": guard}
        )
        listener.factory = tlsFactory(
            listener.tls, listenerFactory(FRAMINGS["lines"], config), listener.clock
        )
        address = IPv4Address("TCP", "10.0.0.1", 40000)
        first = listener.factory.buildProtocol(address)
        first.makeConnection(FakeTransport(first, isServer=True, peerAddress=address))
        self.assertEqual(guard.open, 1)
        second = listener.factory.buildProtocol(address)
        transport = FakeTransport(second, isServer=True, peerAddress=address)
        second.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        second.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(listener.stats.refused[DESCRIPTORS], 1)
        self.assertEqual(listener.stats.refused[TLS_HANDSHAKE], 0)
        self.assertEqual(guard.open, 1)
