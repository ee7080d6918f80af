# -*- test-case-name: tests.ops.test_web -*-
"""
Tests for L{gateway.ops.web}: the HTTP resources, through
L{treq.testing.StubTreq}, of a gateway on a L{MemoryReactorClock} with the
fake producer backend and fake brokers answering the health probe.
"""

import io
import json
import os
import sys
import types

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from gateway import __version__
from gateway.ops import web
from gateway.ops.web import Index, buildSite
from tests.ops.test_metrics import BROKER, GatewayMixin

URL = "http://gateway.test"


class SiteMixin(GatewayMixin):
    """
    A gateway, its site, and a StubTreq on the site's resources.
    """

    def makeSite(self, **kwargs):
        """
        Build a gateway (see L{GatewayMixin.makeGateway}) and its site.
        """
        self.makeGateway(**kwargs)
        self.site = buildSite(self.gateway)
        self.http = StubTreq(self.site.resource)
        return self.site

    def get(self, path, **kwargs):
        """
        GET C{path}.

        :return: C{(response, body bytes)}.
        """
        return self.request("GET", path, **kwargs)

    def request(self, method, path, **kwargs):
        """
        Make a request and read the whole response.

        :return: C{(response, body bytes)}.
        """
        response = self.successResultOf(self.http.request(method, URL + path, **kwargs))
        body = self.successResultOf(self.http.content(response))
        return response, body

    def header(self, response, name):
        """
        :return: the single value of a response header.
        """
        (value,) = response.headers.getRawHeaders(name)
        return value


class SiteTests(SiteMixin, SynchronousTestCase):
    """
    L{buildSite}: the site and its children.
    """

    def test_site(self):
        """
        L{buildSite} returns a L{Site} that writes no access log.
        """
        site = self.makeSite()
        self.assertIsInstance(site, Site)
        self.assertFalse(site.noisy)
        self.assertIsNone(site.log(object()))

    def test_children(self):
        """
        The root has the children C{healthz}, C{readyz}, C{metrics},
        C{status.json} and C{""}; anything else is 404.
        """
        site = self.makeSite()
        self.assertEqual(
            sorted(site.resource.listStaticNames()),
            [b"", b"healthz", b"metrics", b"readyz", b"status.json"],
        )
        response, _ = self.get("/nothing")
        self.assertEqual(response.code, 404)

    def replaceModule(self, name, module):
        """
        Make C{sys.modules[name]} C{module} (L{None}: as if the module did
        not exist) for this test.
        """
        missing = object()
        old = sys.modules.get(name, missing)
        sys.modules[name] = module

        def restore():
            if old is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old

        self.addCleanup(restore)

    def test_indexWithoutStatusPage(self):
        """
        Without C{gateway.ops.statuspage}, C{/} lists the endpoints.
        """
        self.replaceModule("gateway.ops.statuspage", None)
        self.makeSite()
        response, body = self.get("/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"/readyz", body)
        self.assertIn(__version__.encode(), body)

    def test_statusPageMounted(self):
        """
        When C{gateway.ops.statuspage} exists, its C{statusPage()} resource is
        served at C{/}.
        """
        page = Resource()
        page.render_GET = lambda request: b"<html>status</html>"
        page.isLeaf = True
        module = types.ModuleType("gateway.ops.statuspage")
        module.statusPage = lambda: page
        self.replaceModule("gateway.ops.statuspage", module)
        self.makeSite()
        response, body = self.get("/")
        self.assertEqual((response.code, body), (200, b"<html>status</html>"))

    def test_noAccessLog(self):
        """
        A request served over HTTP writes no access-log line (probes and
        scrapes every few seconds would bury the gateway's own events),
        although the site has a log file to write one to.
        """
        site = self.makeSite()
        site.startFactory()
        self.addCleanup(site.stopFactory)
        site.logFile = io.StringIO()
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        self.assertEqual(site.logFile.getvalue(), "")

    def test_headLogsNothing(self):
        """
        C{HEAD} on every endpoint answers its C{GET}'s status and
        C{Content-Length} without a body, and logs nothing (twisted.web would
        log a warning per request for a body it drops).
        """
        site = self.makeSite()
        site.startFactory()
        self.addCleanup(site.stopFactory)
        for path in ("/", "/healthz", "/readyz", "/metrics", "/status.json", "/nowhere"):
            channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
            transport = StringTransport()
            channel.makeConnection(transport)
            request = f"HEAD {path} HTTP/1.1\r\nHost: gateway.test\r\n\r\n".encode()
            with capturedLogs() as events:
                channel.dataReceived(request)
            head, _, body = transport.value().partition(b"\r\n\r\n")
            self.assertEqual((path, events, body), (path, [], b""))
            response, full = self.get(path)
            self.assertTrue(head.startswith(b"HTTP/1.1 %d " % (response.code,)), head)
            # Figures change between requests; twisted.web streams its 404 page.
            if path in ("/", "/healthz", "/readyz"):
                self.assertIn(b"\r\ncontent-length: %d" % (len(full),), head.lower())

    def test_onlyGet(self):
        """
        The endpoints answer GET and HEAD; other methods are not allowed.
        """
        self.makeSite()
        self.start()
        response, body = self.request("HEAD", "/healthz")
        self.assertEqual((response.code, body), (200, b""))
        response, _ = self.request("POST", "/readyz")
        self.assertEqual(response.code, 405)
        self.assertEqual(self.header(response, "allow"), "GET, HEAD")


class HealthzTests(SiteMixin, SynchronousTestCase):
    """
    C{/healthz}.
    """

    def test_alive(self):
        """
        C{/healthz} answers C{200 ok} even while Kafka is down and nothing
        listens.
        """
        self.makeSite()
        response, body = self.get("/healthz")
        self.assertEqual((response.code, body), (200, b"ok\n"))
        self.assertEqual(self.header(response, "content-type"), "text/plain; charset=utf-8")
        self.assertEqual(self.header(response, "cache-control"), "no-store")


class ReadyzTests(SiteMixin, SynchronousTestCase):
    """
    C{/readyz}: 200 only when every listener listens and the Kafka path is
    ready; 503 otherwise; a JSON state and reason either way.
    """

    def readyz(self):
        response, body = self.get("/readyz")
        self.assertEqual(self.header(response, "content-type"), "application/json")
        return response.code, json.loads(body)

    def test_ready(self):
        """
        Started, listening and the broker answering: 200 with the health
        service's state and reason.
        """
        self.makeSite()
        self.start()
        self.assertEqual(
            self.readyz(), (200, {"state": "ready", "reason": self.gateway.health.reason})
        )

    def test_notListening(self):
        """
        Before start-up: 503, naming the listeners that do not listen.
        """
        self.makeSite()
        self.assertEqual(self.readyz(), (503, {"state": "down", "reason": "not listening: lines"}))

    def test_brokerDownAndBack(self):
        """
        The broker refusing its probe connection: 503 C{down}; accepting
        again after the reconnect delay: 200.
        """
        self.makeSite()
        self.start()
        self.network.refusing.add(BROKER)
        self.network.cut(BROKER)
        code, body = self.readyz()
        self.assertEqual((code, body["state"]), (503, "down"))
        self.assertIn(f"127.0.0.1:{BROKER}", body["reason"])
        self.network.refusing.clear()
        self.elapse(5.0)
        self.assertEqual(self.readyz()[0], 200)

    def test_budgetDegraded(self):
        """
        Over half the byte budget held: 503 C{degraded} with the budget in
        the reason.
        """
        self.makeSite(budget=10_000)
        self.start()
        self.connect().dataReceived(b"x\n" * 12)
        self.elapse(5.0)
        self.assertEqual(
            self.readyz(),
            (503, {"state": "degraded", "reason": "byte budget 61% used, over 50%"}),
        )

    def test_stopping(self):
        """
        While the gateway stops and drains: 503 C{stopping}.
        """
        self.makeSite()
        self.start()
        self.gateway.stopService()
        code, body = self.readyz()
        self.assertEqual((code, body["state"]), (503, "stopping"))


class MetricsTests(SiteMixin, SynchronousTestCase):
    """
    C{/metrics}: Prometheus text that C{prometheus_client}'s parser reads,
    with the gateway's counters.
    """

    def scrape(self, **kwargs):
        response, body = self.get("/metrics", **kwargs)
        self.assertEqual(response.code, 200)
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families.values()
            for s in f.samples
        }
        return response, families, samples

    def test_counters(self):
        """
        After two clients sent messages and one sent a frame too large, the
        counters are exactly those figures.
        """
        self.makeSite(listeners=[("lines", "tcp:9000", {"maxMessageSize": 10})])
        self.start()
        first, second, bad = self.connect(), self.connect(), self.connect()
        first.dataReceived(b"m1\nm2\nm3\n")
        second.dataReceived(b"m4\n")
        bad.dataReceived(b"y" * 11)
        self.close(bad)
        self.confirm()
        response, families, samples = self.scrape()
        self.assertEqual(
            self.header(response, "content-type"), "text/plain; version=0.0.4; charset=utf-8"
        )
        lines = (("listener", "lines"),)
        self.assertEqual(
            {
                name: samples[name, labels]
                for name, labels in [
                    ("gateway_messages_received_total", ()),
                    ("gateway_messages_produced_total", ()),
                    ("gateway_messages_delivered_total", ()),
                    ("gateway_messages_failed_total", ()),
                    ("gateway_producer_queue_depth", ()),
                    ("gateway_connections_accepted_total", lines),
                    ("gateway_connections_open", lines),
                    ("gateway_connections_closed_total", lines),
                    ("gateway_received_bytes_total", lines),
                    ("gateway_frame_errors_total", lines + (("reason", "too-large"),)),
                    ("gateway_ready", ()),
                ]
            },
            {
                "gateway_messages_received_total": 4,
                "gateway_messages_produced_total": 4,
                "gateway_messages_delivered_total": 4,
                "gateway_messages_failed_total": 0,
                "gateway_producer_queue_depth": 0,
                "gateway_connections_accepted_total": 3,
                "gateway_connections_open": 2,
                "gateway_connections_closed_total": 1,
                "gateway_received_bytes_total": 9 + 3 + 11,
                "gateway_frame_errors_total": 1,
                "gateway_ready": 1,
            },
        )
        self.assertEqual(
            families["gateway_build_info"].samples[0].labels, {"version": __version__}
        )

    def test_processMetrics(self):
        """
        The process's own metrics (C{process_*}, C{python_info}) are there too.
        """
        self.makeSite()
        _, families, _ = self.scrape()
        self.assertIn("python_info", families)
        if sys.platform.startswith("linux"):
            self.assertIn("process_resident_memory_bytes", families)

    def test_openMetrics(self):
        """
        A scraper that asks for OpenMetrics gets it.
        """
        self.makeSite()
        response, body = self.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        self.assertIn("application/openmetrics-text", self.header(response, "content-type"))
        self.assertTrue(body.endswith(b"# EOF\n"))


class StatusJSONTests(SiteMixin, SynchronousTestCase):
    """
    C{/status.json}: the status page's figures, in a fixed schema.
    """

    def test_schema(self):
        """
        Every field of the schema, with the gateway's figures.
        """
        self.patch(web, "mallocLibrary", lambda: "libexample.so.1")
        self.makeSite(
            listeners=[
                ("lines", "tcp:9000", {"maxMessageSize": 10}),
                ("netstring", "tcp:9001"),
            ]
        )
        self.reactor.advance(1000.0)  # the site was built at 0
        self.start()
        client = self.connect()
        client.dataReceived(b"a\nbb\n")
        bad = self.connect()
        bad.dataReceived(b"z" * 11)
        self.close(bad)
        self.confirm()
        self.connect().dataReceived(b"ccc\n")
        self.elapse(0.5)
        response, body = self.get("/status.json")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "content-type"), "application/json")
        status = json.loads(body)
        kafkaConnections = status.pop("kafkaConnections")
        self.assertIsInstance(kafkaConnections, (int, type(None)))
        descriptors = status.pop("descriptors")
        guard = self.gateway.descriptors
        self.assertEqual(
            {key: value for key, value in descriptors.items() if key != "inUse"},
            {
                "limit": guard.limit,
                "capacity": guard.capacity,
                "reserve": 64,
                "clients": 2,
                "full": False,
                "acceptErrors": 0,
            },
        )
        self.assertGreater(descriptors["inUse"], 0)
        [broker] = self.gateway.health.status()["brokers"].values()
        self.assertEqual(
            status.pop("health"),
            {"brokers": 1, "brokersUp": 1, "slowestProbe": broker["latency"]},
        )
        self.assertIsNotNone(broker["latency"])
        router = self.gateway.router
        self.assertEqual(
            status,
            {
                "version": __version__,
                "uptime": 1001.0,
                "topic": "t",
                "state": "ready",
                "reason": self.gateway.health.reason,
                "ready": True,
                "budget": {
                    "bytes": router.budget,
                    "held": router.lastHeldBytes,
                    "fraction": router.budgetFraction(),
                    "paused": False,
                },
                "producer": {
                    "accepted": 3,
                    "produced": 3,
                    "delivered": 2,
                    "pending": 1,
                    "failed": 0,
                    "deadLettered": 0,
                    "spooled": 0,
                    "deadLettersHeld": 0,
                    "storageProblems": [],
                    "requeued": 0,
                    "recreations": 0,
                    "brokersUp": None,
                    "bytesSent": 0,
                    "producePath": "Python (not a confluent-kafka Producer (FakeProducer))",
                    "malloc": "libexample.so.1",
                },
                "listeners": [
                    {
                        "name": "lines",
                        "framing": "lines",
                        "endpoint": "tcp:9000",
                        "address": "0.0.0.0:9000",
                        "connections": 2,
                        "accepted": 3,
                        "closed": 1,
                        "bytesReceived": 5 + 11 + 4,
                        "frameErrors": {"too-large": 1},
                        "refused": {},
                        "closedBy": {},
                        "accepting": True,
                        "pausedFor": [],
                    },
                    {
                        "name": "netstring",
                        "framing": "netstring",
                        "endpoint": "tcp:9001",
                        "address": "0.0.0.0:9001",
                        "connections": 0,
                        "accepted": 0,
                        "closed": 0,
                        "bytesReceived": 0,
                        "frameErrors": {},
                        "refused": {},
                        "closedBy": {},
                        "accepting": True,
                        "pausedFor": [],
                    },
                ],
                "topics": {"t": {"messages": 3, "bytes": 6, "deadLettered": 0}},
                "worker": {"index": 1, "count": 1, "pid": os.getpid()},
                "time": 1001.0,
            },
        )
        self.assertGreater(router.lastHeldBytes, 0)

    def test_healthOfBrokers(self):
        """
        C{health} counts the brokers and those answering the probe, with the
        slowest answer's latency; with none answering, no latency; without a
        health service, C{null}.
        """
        self.makeSite()
        self.start()
        [broker] = self.gateway.health.status()["brokers"].values()
        self.assertEqual(
            json.loads(self.get("/status.json")[1])["health"],
            {"brokers": 1, "brokersUp": 1, "slowestProbe": broker["latency"]},
        )
        self.network.refusing.add(BROKER)
        self.network.cut(BROKER)
        self.assertEqual(
            json.loads(self.get("/status.json")[1])["health"],
            {"brokers": 1, "brokersUp": 0, "slowestProbe": None},
        )
        self.makeSite(health=False)
        self.start()
        self.assertIsNone(json.loads(self.get("/status.json")[1])["health"])

    def test_pausedUnderBackPressure(self):
        """
        While the producer's queue is full every client is paused and the
        listeners stop accepting: C{budget.paused} is true and each listener
        says it is not accepting, for the budget; both clear on resume.
        """
        self.makeSite()
        self.start()
        router = self.gateway.router
        router.producerBlocked()
        status = json.loads(self.get("/status.json")[1])
        self.assertEqual(
            (
                status["budget"]["paused"],
                status["listeners"][0]["accepting"],
                status["listeners"][0]["pausedFor"],
            ),
            (True, False, ["budget"]),
        )
        router.producerUnblocked()
        status = json.loads(self.get("/status.json")[1])
        self.assertEqual(
            (
                status["budget"]["paused"],
                status["listeners"][0]["accepting"],
                status["listeners"][0]["pausedFor"],
            ),
            (False, True, []),
        )

    def test_notStarted(self):
        """
        Before start-up listeners have no address, and the gateway is not
        ready.
        """
        self.makeSite()
        status = json.loads(self.get("/status.json")[1])
        self.assertEqual(status["listeners"][0]["address"], None)
        self.assertEqual((status["ready"], status["state"]), (False, "down"))


class ValuesTests(SiteMixin, SynchronousTestCase):
    """
    The site's clock and reactor, the plain index and the 405 body, value
    by value.
    """

    def test_siteOnGatewayReactor(self):
        """
        The site's own timers run on the gateway's reactor.
        """
        site = self.makeSite()
        self.assertIs(site.reactor, self.gateway.reactor)

    def test_uptimeOnGivenClock(self):
        """
        With a clock of its own, C{/status.json} takes the time and the
        uptime (to the millisecond, from the site's building) from it.
        """
        clock = Clock()
        clock.advance(5)
        self.makeGateway()
        self.reactor.advance(100)
        resource = buildSite(self.gateway, clock).resource.children[b"status.json"]
        clock.advance(1.23456)
        snapshot = json.loads(resource.render_GET(DummyRequest([])))
        self.assertEqual((snapshot["uptime"], snapshot["time"]), (1.235, 6.23456))

    def test_index(self):
        """
        The plain index lists each endpoint with what it says.
        """
        body = Index().render_GET(DummyRequest([]))
        self.assertEqual(
            body.decode(),
            f"kafka gateway {__version__}\n"
            "/healthz      alive\n"
            "/readyz       ready for traffic (200) or not (503), with the reason\n"
            "/metrics      Prometheus metrics\n"
            "/status.json  the figures of the status page\n",
        )

    def test_methodNotAllowedBody(self):
        """
        A method other than GET or HEAD is answered 405 with a one-line
        plain-text body.
        """
        self.makeSite()
        response, body = self.request("POST", "/healthz")
        self.assertEqual((response.code, body), (405, b"method not allowed\n"))
        self.assertEqual(self.header(response, "content-type"), "text/plain; charset=utf-8")
