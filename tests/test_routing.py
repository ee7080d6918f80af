# -*- test-case-name: tests.test_routing -*-
"""
Tests for L{gateway.routing}, and for routing through the router, the
settings check and the command line.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.records import Record
from gateway.registry import RoutingError, loadRouting
from gateway.router import CLIENT_CERT_HEADER, LISTENER_HEADER, PEER_HEADER, RoutedStream, Router
from gateway.routing import (
    Route,
    RoutingContext,
    RoutingPlugin,
    TopicTemplate,
    fixedTopic,
    keyStrategy,
    topicName,
)
from gateway.service import GatewayService
from gateway.settings import SettingsError, checkSettings
from gateway.tap import Options
from gateway.testing import RecordingProducer
from tests.fakes import fakeBackend


class _Client:
    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class TopicNameTests(SynchronousTestCase):
    """
    L{topicName}: the documented replacement rule.
    """

    def test_legalUnchanged(self):
        """
        Letters, digits, dots, underscores and dashes are kept.
        """
        self.assertEqual(topicName("devices.127.0.0.2_a-B9"), "devices.127.0.0.2_a-B9")

    def test_illegalReplaced(self):
        """
        Every other character becomes an underscore, one each.
        """
        self.assertEqual(topicName("a b/c:d::1é"), "a_b_c_d__1_")

    def test_dotsOnly(self):
        """
        C{.} and C{..}, which Kafka refuses, become underscores; nothing at
        all becomes one underscore.
        """
        self.assertEqual([topicName(t) for t in (".", "..", "")], ["_", "__", "_"])

    def test_cut(self):
        """
        Names are cut at Kafka's 249 characters.
        """
        self.assertEqual(topicName("x" * 300), "x" * 249)


class TopicTemplateTests(SynchronousTestCase):
    """
    L{TopicTemplate}.
    """

    def context(self, peer="127.0.0.2:5000"):
        return RoutingContext.forConnection("telemetry", peer)

    def test_fixed(self):
        """
        A template without fields is the topic.
        """
        template = TopicTemplate("events")
        self.assertEqual((template.resolve(self.context()), template.fields), ("events", ()))

    def test_fields(self):
        """
        C{{listener}}, C{{peer_host}} and C{{peer_port}} are the connection's.
        """
        template = TopicTemplate("{listener}.{peer_host}.{peer_port}")
        self.assertEqual(template.resolve(self.context()), "telemetry.127.0.0.2.5000")

    def test_ipv6Replaced(self):
        """
        A value's illegal characters are replaced (an IPv6 host's colons).
        """
        template = TopicTemplate("devices.{peer_host}")
        self.assertEqual(template.resolve(self.context("[::1]:5000")), "devices.__1")

    def test_unknownField(self):
        """
        A template naming an unknown field is refused, naming it and the
        fields there are.
        """
        error = self.assertRaises(ValueError, TopicTemplate, "devices.{host}")
        self.assertIn("unknown field {host}", str(error))
        self.assertIn("{peer_host}", str(error))

    def test_laterFields(self):
        """
        C{{session}} and C{{client_cert_cn}} resolve from the context once
        known; until then the template gives no topic.
        """
        template = TopicTemplate("t.{client_cert_cn}.{session}")
        context = RoutingContext.forConnection("l", "10.0.0.1:5")
        self.assertIsNone(template.resolve(context))
        context.session, context.clientCertCN = "a/b", "dev 1"
        self.assertEqual(template.resolve(context), "t.dev_1.a_b")
        context.clientCertCN = ""
        self.assertEqual(template.resolve(context), "t._.a_b")

    def test_malformed(self):
        """
        Unbalanced braces, format specs, illegal literal text and empty
        templates are refused.
        """
        for text in ("t.{peer_host", "t.{peer_host:>5}", "bad topic", "", "  "):
            self.assertRaises(ValueError, TopicTemplate, text)


class KeyStrategyTests(SynchronousTestCase):
    """
    L{keyStrategy} and L{Route.resolve}.
    """

    def test_choices(self):
        """
        Each strategy keys the connection's records as documented.
        """
        keys = {}
        for strategy in ("connection", "peer-host", "none", "session"):
            context = RoutingContext.forConnection("l", "10.0.0.7:4000")
            keys[strategy] = Route(key=keyStrategy(strategy)).resolve(context, "t").key
        self.assertEqual(
            keys,
            {
                "connection": b"l/10.0.0.7:4000",
                "peer-host": b"10.0.0.7",
                "none": None,
                "session": b"l/10.0.0.7:4000",
            },
        )
        context.session = "s-1"
        self.assertEqual(Route(key="session").resolve(context, "t").key, b"s-1")

    def test_refused(self):
        """
        Unknown strategies are refused.
        """
        self.assertRaises(ValueError, keyStrategy, "random")

    def test_defaultTopic(self):
        """
        A route without a template takes the gateway's topic.
        """
        context = RoutingContext.forConnection("l", "/tmp/sock")
        self.assertEqual(Route().resolve(context, "default").topic, "default")
        self.assertEqual((context.peerHost, context.peerPort), ("/tmp/sock", ""))


class FixedTopicTests(SynchronousTestCase):
    """
    L{fixedTopic}: the topic a start-up check can look for.
    """

    def test_fixed(self):
        """
        A template without fields, or the default topic, is fixed; a
        template with fields or a routing plugin is not.
        """
        plugin = RoutingPlugin("p", "d", _PerConnection)
        self.assertEqual(
            [
                fixedTopic(Route(TopicTemplate("a")), "d"),
                fixedTopic(Route(), "d"),
                fixedTopic(Route(TopicTemplate("a.{listener}")), "d"),
                fixedTopic(Route(plugin=plugin), "d"),
            ],
            ["a", "d", None, None],
        )


class _PerConnection:
    def __init__(self, connection):
        self.topic = "chosen." + connection.peerHost
        self.key = b"k"
        self.headers = None


class _PerMessage(_PerConnection):
    def route(self, payload):
        return (payload.decode(), None, [("h", b"v")])


class RouterRoutingTests(SynchronousTestCase):
    """
    L{Router} resolves each connection's route once, when the stream opens.
    """

    def setUp(self):
        self.producer = RecordingProducer()
        self.router = Router(self.producer, "default")

    def test_defaultRoute(self):
        """
        A listener without routing options: the gateway's topic, the
        connection key and the provenance headers, as before.
        """
        self.router.openStream("l", "10.0.0.1:5", _Client()).send(b"m")
        self.assertEqual(
            self.producer.records,
            [
                (
                    "default",
                    b"m",
                    b"l/10.0.0.1:5",
                    [(LISTENER_HEADER, b"l"), (PEER_HEADER, b"10.0.0.1:5")],
                )
            ],
        )

    def test_templateAndKey(self):
        """
        The listener's template and key strategy decide topic and key.
        """
        self.router.routes["l"] = Route(TopicTemplate("dev.{peer_host}"), "none")
        self.router.openStream("l", "10.0.0.1:5", _Client()).send(b"m")
        [(topic, _, key, _)] = self.producer.records
        self.assertEqual((topic, key), ("dev.10.0.0.1", None))

    def test_perConnectionPlugin(self):
        """
        A plugin without C{perMessage} chooses once; the plain stream sends.
        """
        plugin = RoutingPlugin("p", "d", _PerConnection)
        self.router.routes["l"] = Route(plugin=plugin)
        stream = self.router.openStream("l", "10.0.0.1:5", _Client())
        stream.send(b"m")
        self.assertNotIsInstance(stream, RoutedStream)
        self.assertEqual(self.producer.records, [("chosen.10.0.0.1", b"m", b"k", None)])

    def test_perMessagePlugin(self):
        """
        A C{perMessage} plugin's router chooses each message's fields.
        """
        self.router.routes["l"] = Route(plugin=RoutingPlugin("p", "d", _PerMessage, True))
        stream = self.router.openStream("l", "10.0.0.1:5", _Client())
        stream.send(b"a")
        stream.send(b"b")
        self.assertEqual(
            self.producer.records,
            [("a", b"a", None, [("h", b"v")]), ("b", b"b", None, [("h", b"v")])],
        )

    def test_knownFields(self):
        """
        Fields known later (a session) reach the routing plugin when given.
        """
        seen = []
        self.router.routes["l"] = Route(
            plugin=RoutingPlugin("p", "d", lambda c: seen.append(c) or c)
        )
        self.router.connectionRoute("l", "10.0.0.1:5", session="s-1", clientCertCN="dev")
        self.assertEqual((seen[0].session, seen[0].clientCertCN), ("s-1", "dev"))

    def test_topicCounts(self):
        """
        Messages and bytes per topic add up open and closed streams.
        """
        self.router.routes["p"] = Route(plugin=RoutingPlugin("p", "d", _PerMessage, True))
        first = self.router.openStream("l", "10.0.0.1:5", _Client())
        first.send(b"12345")
        first.close()
        first.close()
        self.router.openStream("l", "10.0.0.1:6", _Client()).send(b"123")
        routed = self.router.openStream("p", "10.0.0.1:7", _Client())
        routed.send(b"x")
        routed.send(b"x")
        self.assertEqual(self.router.topicCounts(), {"default": (2, 8), "x": (2, 2)})


class RoutingOptionsTests(SynchronousTestCase):
    """
    C{topic=}, C{key=} and C{routing=} through the settings check, the
    command line and C{addListener}.
    """

    def check(self, options, topic=None):
        return checkSettings(
            [{"framing": "lines", "endpoint": "tcp:9000", "options": options}],
            topic=topic,
            backend=fakeBackend(),
        )

    def test_route(self):
        """
        The options make the listener's L{Route}.
        """
        settings = self.check({"topic": "a.{listener}", "key": "peer-host"})
        self.assertEqual(
            settings.listeners[0].route, Route(TopicTemplate("a.{listener}"), "peer-host")
        )

    def test_noTopicAtAll(self):
        """
        A listener without a topic, in a gateway without one, is refused.
        """
        error = self.assertRaises(SettingsError, self.check, {})
        self.assertEqual((error.setting, error.listener), ("topic", 0))

    def test_badOptions(self):
        """
        A bad template or key names the option.
        """
        for options in ({"topic": "{nope}"}, {"key": "random"}):
            error = self.assertRaises(SettingsError, self.check, options, "t")
            self.assertIn(next(iter(options)), str(error))

    def test_unknownPlugin(self):
        """
        An unknown routing plugin is refused, by name and by path.
        """
        self.assertRaises(RoutingError, loadRouting, "no-such-router")
        self.assertRaises(RoutingError, loadRouting, "no.such:module")
        error = self.assertRaises(SettingsError, self.check, {"routing": "nope"}, "t")
        self.assertIn("routing=nope", str(error))

    def test_brokenPlugin(self):
        """
        An object that is not a routing plugin is refused.
        """
        self.assertIn("broken", str(self.assertRaises(RoutingError, loadRouting, "os:path")))

    def test_commandLine(self):
        """
        C{--topic} is not needed when every listener names its topic; a
        listener without one when there is no C{--topic} is a usage error.
        """
        options = Options()
        options.parseOptions(
            ["--listen", "lines(topic=a,key=none)=tcp:9000", "--kafka-backend", "confluent"]
        )
        self.assertEqual(options["settings"].listeners[0].route.key, "none")
        error = self.assertRaises(
            UsageError,
            Options().parseOptions,
            ["--listen", "lines(topic=a)=tcp:9000", "--listen", "lines=tcp:9001"],
        )
        self.assertIn("tcp:9001", str(error))
        self.assertIn("--topic", str(error))

    def test_addListener(self):
        """
        A C{.tac} file's C{addListener} takes the same options, and the
        router gets the listener's route.
        """
        service = GatewayService(
            None,
            reactor=MemoryReactorClock(),
            backend=fakeBackend(),
            healthInterval=None,
            spoolPath=None,
            deadLetterPath=None,
        )
        service.addListener("lines", "tcp:9000", name="t1", options={"topic": "one"})
        self.assertEqual(service.router.routes["t1"].topic, TopicTemplate("one"))
        self.assertRaises(SettingsError, service.addListener, "lines", "tcp:9001")


class SessionAndCertificateOptionsTests(SynchronousTestCase):
    """
    C{key=session}, C{{session}} and C{{client_cert_cn}} are accepted only
    where they can be known, and ack mode only with routes that keep a
    connection on one partition: one-line usage errors otherwise.
    """

    def check(self, options, endpoint="tcp:9000"):
        [listener] = checkSettings(
            [{"framing": "lines", "endpoint": endpoint, "options": options}],
            topic="t",
            backend=fakeBackend(),
        ).listeners
        return listener.route

    def refused(self, options, *expected):
        error = self.assertRaises(SettingsError, self.check, options)
        self.assertEqual(error.listener, 0)
        self.assertNotIn("\n", str(error))
        for text in expected:
            self.assertIn(text, str(error))

    def test_sessionNeedsAck(self):
        """
        C{key=session} and C{{session}} need C{ack=on}.
        """
        self.refused({"key": "session"}, "key=session needs ack=on")
        self.refused({"topic": "s.{session}"}, "field {session} needs ack=on")
        route = self.check({"ack": "on", "topic": "s.{session}", "key": "session"})
        self.assertEqual(route, Route(TopicTemplate("s.{session}"), "session"))

    def test_ackDefaultKey(self):
        """
        An ack listener keys by session unless told otherwise, or unless a
        routing plugin chooses.
        """
        self.assertEqual(self.check({"ack": "on"}).key, "session")
        self.assertEqual(self.check({"ack": "on", "key": "peer-host"}).key, "peer-host")
        self.assertEqual(self.check({}).key, "connection")
        self.assertEqual(
            self.check({"ack": "on", "routing": "tests.test_routing:_PLUGIN"}).key, "connection"
        )

    def test_commandLine(self):
        """
        On the command line the refusal is a one-line usage error naming
        the listener.
        """
        error = self.assertRaises(
            UsageError,
            Options().parseOptions,
            ["--topic", "t", "--listen", "lines(key=session)=tcp:9000"],
        )
        self.assertIn("key=session needs ack=on", str(error))
        self.assertIn("tcp:9000", str(error))
        self.assertNotIn("\n", str(error))

    def test_sessionWithPlugin(self):
        """
        A plugin is asked before the handshake: no session fields with it.
        """
        self.refused(
            {"ack": "on", "key": "session", "routing": "tests.test_routing:_PLUGIN"},
            "key=session cannot be used with routing=",
        )

    def test_ackKeyNone(self):
        """
        C{key=none} spreads a connection over partitions: not with acks.
        """
        self.refused({"ack": "on", "key": "none"}, "key=none", "ack=on needs them on one")

    def test_ackPerMessagePlugin(self):
        """
        A per-message routing plugin is refused on an ack listener; a
        per-connection one is accepted.
        """
        self.refused(
            {"ack": "on", "routing": "json-type"}, "routing=json-type chooses per message"
        )
        self.check({"ack": "on", "routing": "tests.test_routing:_PLUGIN"})

    def test_clientCertNeedsClientCA(self):
        """
        C{{client_cert_cn}} needs a TLS listener that verifies client
        certificates.
        """
        from tests.server.test_tls import Certificates

        files = Certificates(self)
        expected = "field {client_cert_cn} needs a TLS listener verifying client certificates"
        self.refused({"topic": "c.{client_cert_cn}"}, expected)
        tls = {"topic": "c.{client_cert_cn}", "tls-cert": files.both}
        self.assertRaises(SettingsError, self.check, tls)
        route = self.check({**tls, "tls-client-ca": files.caFile})
        self.assertTrue(route.needs("client_cert_cn"))


_PLUGIN = RoutingPlugin("per-connection", "test", _PerConnection)


class _TLSTransport:
    """
    A TLS transport's certificate, as the handshake leaves it.
    """

    def __init__(self, certificate):
        self.certificate = certificate

    def getPeerCertificate(self):
        return self.certificate


class _TLSClient(_Client):
    def __init__(self, certificate, subject=b"CN=x"):
        self.transport = _TLSTransport(certificate)
        self.clientSubject = subject


class CertificateRoutingTests(SynchronousTestCase):
    """
    C{{client_cert_cn}} is resolved once, when the stream opens; the
    router restores headers only from keys that name the connection.
    """

    def setUp(self):
        self.producer = RecordingProducer()
        self.router = Router(self.producer, "default")

    def certificate(self, commonName):
        import trustme
        from OpenSSL import crypto

        cert = trustme.CA().issue_cert("dev.example", common_name=commonName)
        return crypto.load_certificate(crypto.FILETYPE_PEM, cert.cert_chain_pems[0].bytes())

    def test_commonName(self):
        """
        The verified certificate's CN names the topic, made legal; a
        certificate without a CN gives C{_}.
        """
        self.router.routes["l"] = Route(TopicTemplate("c.{client_cert_cn}"))
        self.router.openStream("l", "10.0.0.1:5", _TLSClient(self.certificate("dev 7"))).send(b"m")
        self.router.openStream("l", "10.0.0.1:6", _TLSClient(self.certificate(None))).send(b"n")
        self.assertEqual([r[0] for r in self.producer.records], ["c.dev_7", "c._"])

    def test_restoreConnectionKey(self):
        """
        A record keyed by its connection gets the provenance headers back,
        and the certificate's subject while the connection is open.
        """
        self.router.routes["l"] = Route()
        stream = self.router.openStream("l", "10.0.0.1:5", _TLSClient(None, b"CN=a"))
        record = Record("default", b"l/10.0.0.1:5", [], b"m")
        self.assertEqual(
            self.router.restoreRecord(record).headers,
            [(LISTENER_HEADER, b"l"), (PEER_HEADER, b"10.0.0.1:5"), (CLIENT_CERT_HEADER, b"CN=a")],
        )
        stream.close()
        self.assertEqual(len(self.router.restoreRecord(record).headers), 2)
        self.assertEqual(self.router.clientSubjects, {})

    def test_sharedKeysNotRestored(self):
        """
        C{key=peer-host} (shared by the host's connections), C{key=none}
        and a plugin's key (even one with a C{/}) do not say which
        connection sent a record: no header is made up for them, and no
        connection's subject is kept by such a key.
        """
        self.router.routes["h"] = Route(key="peer-host")
        self.router.routes["n"] = Route(key="none")
        self.router.routes["p"] = Route(plugin=RoutingPlugin("p", "d", _SlashKey))
        for listener in ("h", "n", "p"):
            self.router.openStream(
                listener, "10.0.0.1:5", _TLSClient(None, b"CN=" + listener.encode())
            )
        self.assertEqual(self.router.clientSubjects, {})
        for key in (b"10.0.0.1", None, b"h/10.0.0.1:5", b"p/x", b"other/x"):
            record = Record("default", key, [], b"m")
            self.assertIs(self.router.restoreRecord(record), record)


class _SlashKey(_PerConnection):
    def __init__(self, connection):
        _PerConnection.__init__(self, connection)
        self.key = b"p/x"


class ValuesTests(SynchronousTestCase):
    """
    L{gateway.routing}'s errors, word for word (each is the one line a bad
    configuration gets), and its edge values.
    """

    def error(self, function, *args, **kwargs):
        with self.assertRaises(ValueError) as raised:
            function(*args, **kwargs)
        return str(raised.exception)

    def test_templateErrors(self):
        """
        Each way a template is wrong has its own message.
        """
        self.assertEqual(
            self.error(TopicTemplate, " "),
            "must be a topic name or template, e.g. devices.{peer_host}",
        )
        self.assertEqual(
            self.error(TopicTemplate, "a{"),
            "malformed template 'a{': Single '{' encountered in format string",
        )
        self.assertEqual(
            self.error(TopicTemplate, "{x}"),
            "unknown field {x} in '{x}'; fields: {listener}, {peer_host}, {peer_port}, "
            "{session}, {client_cert_cn}",
        )
        self.assertEqual(
            self.error(TopicTemplate, "{listener!r}"),
            "field {listener} takes no format or conversion",
        )
        self.assertEqual(
            self.error(TopicTemplate, "a b.{listener}"),
            "'a b.{listener}' has characters Kafka does not allow in a topic name "
            "(letters, digits, '.', '_' and '-' only)",
        )

    def test_keyError(self):
        """
        An unknown key strategy's message lists the strategies.
        """
        self.assertEqual(
            self.error(keyStrategy, "random"),
            "must be one of connection, peer-host, session, none",
        )

    def test_templatesCompareByText(self):
        """
        Templates are equal when their texts are, and never equal to
        anything else.
        """
        self.assertEqual(TopicTemplate("a.{listener}"), TopicTemplate(" a.{listener}"))
        self.assertNotEqual(TopicTemplate("a"), TopicTemplate("b"))
        self.assertNotEqual(TopicTemplate("a"), "a")
        self.assertEqual(hash(TopicTemplate("a")), hash(TopicTemplate(" a ")))
        self.assertNotEqual(hash(TopicTemplate("a")), hash(TopicTemplate("b")))

    def test_peerWithoutPort(self):
        """
        A peer whose last colon is not followed by a port, or that ends in
        C{]} without starting with C{[} (UNIX paths), is its own host.
        """
        for peer in ("/run/gw:x", "/run/gw[1]", "[gw"):
            context = RoutingContext.forConnection("l", peer)
            self.assertEqual((context.peerHost, context.peerPort), (peer, ""))
        context = RoutingContext.forConnection("l", "[::1]:5")
        self.assertEqual((context.peerHost, context.peerPort), ("::1", "5"))

    def test_checkErrors(self):
        """
        Each refusal of L{Route.check} has its own message; by default the
        listener is taken to have neither C{ack=on} nor client
        certificates.
        """
        plugin = RoutingPlugin("each", "per message", _PerMessage, perMessage=True)
        self.assertEqual(
            self.error(Route(key="session").check),
            "key=session needs ack=on: the session comes with its handshake",
        )
        self.assertEqual(
            self.error(Route(TopicTemplate("s.{session}"), plugin=plugin).check, ack=True),
            "field {session} cannot be used with routing=: the plugin is asked when "
            "the connection is made, before the session handshake",
        )
        self.assertEqual(
            self.error(Route(TopicTemplate("c.{client_cert_cn}")).check),
            "field {client_cert_cn} needs a TLS listener verifying client "
            "certificates (tls-cert=FILE and tls-client-ca=FILE)",
        )
        self.assertEqual(
            self.error(Route(key="none").check, ack=True),
            "key=none spreads a connection's records over partitions, and "
            "ack=on needs them on one: use key=session, connection or peer-host",
        )
        self.assertEqual(
            self.error(Route(plugin=plugin).check, ack=True),
            "routing=each chooses per message, and ack=on needs a connection's "
            "records on one partition: use a per-connection routing plugin, or no ack",
        )
        Route(TopicTemplate("c.{client_cert_cn}")).check(clientCertificates=True)

    def test_pluginByPath(self):
        """
        A plugin keeps its name and description, and imports a router
        given by dotted path when first asked, once.
        """
        plugin = RoutingPlugin("ids", "the connection's id", "builtins.id")
        self.assertEqual((plugin.name, plugin.description), ("ids", "the connection's id"))
        context = RoutingContext.forConnection("l", "10.0.0.1:1")
        self.assertEqual(plugin.connectionRouter(context), id(context))
        self.assertIs(plugin._router, id)
