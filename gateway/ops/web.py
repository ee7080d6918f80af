# -*- test-case-name: tests.ops.test_web -*-
"""
The gateway's HTTP surface, on an endpoint of its own: C{/healthz} (alive),
C{/readyz} (the live Kafka path works and every listener listens),
C{/metrics} (Prometheus text) and C{/status.json} (the status page's
figures).  The status page itself, at C{/}, comes from
C{gateway.ops.statuspage} when that module exists.

Everything is read when asked: serving a request adds no work per message.
The endpoints are described in C{docs/endpoints.md}.
"""

import json
import os

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Site

from gateway import __version__
from gateway.addresses import formatAddress
from gateway.allocator import mallocLibrary
from gateway.ops.metrics import GatewayCollector, readiness, topicFigures
from gateway.server.descriptors import openDescriptors

__all__ = ["GatewaySite", "buildSite", "metricsRegistry", "statusSnapshot"]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


def buildSite(gateway, clock=None):
    """
    Build the HTTP site of a gateway.

    :param gateway: the L{gateway.service.GatewayService}.
    :param clock: an L{twisted.internet.interfaces.IReactorTime} for the
        uptime and the time in C{/status.json}; the gateway's reactor when
        L{None}.  Uptime counts from this call.
    :return: a L{twisted.web.server.Site} whose root has the children
        C{healthz}, C{readyz}, C{metrics}, C{status.json} and C{""} (the
        status page of C{gateway.ops.statuspage.statusPage()}, or a plain index
        when that module is absent).
    """
    clock = gateway.reactor if clock is None else clock
    root = _Root()
    root.putChild(b"healthz", Healthz())
    root.putChild(b"readyz", Readyz(gateway))
    collector = GatewayCollector(gateway)
    root.putChild(b"metrics", Metrics(metricsRegistry(collector)))
    root.putChild(b"status.json", StatusJSON(collector, clock, clock.seconds()))
    page = _statusPage()
    root.putChild(b"", page if page is not None else Index())
    return GatewaySite(root, reactor=gateway.reactor)


def metricsRegistry(collector):
    """
    :param collector: the gateway's L{GatewayCollector}.
    :return: a L{CollectorRegistry} of the gateway's own metrics and the
        process's (C{process_*}, C{python_info}); a registry of its own, so
        several gateways in one process (tests) do not collide.
    """
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def statusSnapshot(collector, uptime, now):
    """
    The figures of C{/status.json}.

    :param collector: the gateway's L{GatewayCollector} (the counters it
        keeps monotonic are the same as in C{/metrics}).
    :param uptime: seconds since the site was built.
    :param now: the time, in seconds since the epoch.
    :rtype: L{dict}
    """
    gateway = collector.gateway
    ready, state, reason = readiness(gateway)
    router, producer = gateway.router, gateway.producer
    listeners = []
    for listener in gateway.listeners:
        stats = listener.config.stats
        port = listener.port
        listeners.append(
            {
                "name": listener.name,
                "framing": listener.config.framing,
                "endpoint": listener.config.endpoint,
                "address": formatAddress(port.getHost()) if port is not None else None,
                "connections": stats.open,
                "accepted": stats.accepted,
                "closed": stats.closed,
                "bytesReceived": stats.bytesReceived,
                "frameErrors": dict(stats.frameErrors),
                "refused": dict(stats.refused),
                "closedBy": dict(stats.closedBy),
                "accepting": listener.accepting,
                "pausedFor": sorted(listener.pausedFor),
            }
        )
    return {
        "version": __version__,
        "uptime": uptime,
        "topic": router.topic,
        "state": state,
        "reason": reason,
        "ready": ready,
        "budget": {
            "bytes": router.budget,
            "held": router.lastHeldBytes,
            "fraction": router.budgetFraction(),
            "paused": router.paused,
        },
        "producer": {
            "accepted": producer.accepted,
            "produced": producer.produced,
            "delivered": collector.delivered(),
            "pending": producer.pending(),
            "failed": producer.failureReports,
            "deadLettered": producer.deadLettered,
            "spooled": producer.spooled,
            "deadLettersHeld": len(producer.deadLetters.held),
            "storageProblems": list(producer.storageProblems),
            "requeued": producer.requeued,
            "recreations": producer.recreations,
            "brokersUp": producer.brokersUp(),
            "bytesSent": producer.bytesSent(),
            "producePath": producer.producePath(),
            "malloc": mallocLibrary(),
        },
        "listeners": listeners,
        "topics": topicFigures(gateway),
        "descriptors": _descriptors(gateway.descriptors),
        "worker": {"index": gateway.workerIndex, "count": gateway.workerCount, "pid": os.getpid()},
        "kafkaConnections": collector.kafkaConnections(),
        "health": _health(gateway.health),
        "time": now,
    }


def _health(health):
    if health is None:
        return None
    brokers = health.status()["brokers"].values()
    # A broker has a latency only while up (its last probe answered).
    latencies = [b["latency"] for b in brokers if b["latency"] is not None]
    return {
        "brokers": len(brokers),
        "brokersUp": sum(1 for b in brokers if b["up"]),
        "slowestProbe": max(latencies, default=None),
    }


def _descriptors(guard):
    if guard is None:
        return None
    return {
        "limit": guard.limit,
        "capacity": guard.capacity,
        "reserve": guard.reserve,
        "clients": guard.open,
        "full": guard.full,
        "acceptErrors": guard.acceptErrors,
        "inUse": openDescriptors(),
    }


class GatewaySite(Site):
    """
    A L{Site} that keeps quiet: no access log line per request (probes and
    scrapes every few seconds would bury the gateway's own events) and no
    "Starting factory" line.
    """

    noisy = False
    displayTracebacks = False

    def log(self, request):
        """
        Write no access log.
        """

    def getResourceFor(self, request):
        """
        The resource for C{request}; for C{HEAD}, one that answers without
        the body, so twisted.web does not log a warning per request for a
        body it then drops (a load balancer checking with C{HEAD} every few
        seconds would fill the log with them).
        """
        resource = Site.getResourceFor(self, request)
        if request.method == b"HEAD":
            return _Headless(resource)
        return resource


class _Headless:
    """
    A resource answering C{HEAD} as its C{GET}: the headers, with the
    C{Content-Length} the body would have, and no body.
    """

    def __init__(self, resource):
        self.resource = resource

    def render(self, request):
        """
        :return: an empty body (or L{NOT_DONE_YET}, as the resource says).
        """
        body = self.resource.render(request)
        if isinstance(body, bytes):
            request.setHeader(b"content-length", b"%d" % (len(body),))
            return b""
        return body


class _Root(Resource):
    """
    The root: its children, and 404 for anything else.
    """

    def getChild(self, path, request):
        """
        :return: a 404 page.
        """
        return notFound()


class _Leaf(Resource):
    isLeaf = True

    def render(self, request):
        """
        GET and HEAD; anything else is 405 with C{Allow}.
        """
        if request.method in (b"GET", b"HEAD"):
            return self.render_GET(request)
        request.setHeader(b"allow", b"GET, HEAD")
        return self._send(request, 405, _TEXT, b"method not allowed\n")

    @staticmethod
    def _send(request, code, contentType, body):
        request.setResponseCode(code)
        request.setHeader(b"content-type", contentType)
        request.setHeader(b"cache-control", b"no-store")
        return body


def _json(value):
    return json.dumps(value).encode() + b"\n"


class Healthz(_Leaf):
    """
    C{/healthz}: C{200 ok} whenever the reactor runs to answer.
    """

    def render_GET(self, request):
        """
        :return: C{ok}.
        """
        return self._send(request, 200, _TEXT, b"ok\n")


class Readyz(_Leaf):
    """
    C{/readyz}: 200 when L{readiness} says ready, else 503; the body is
    C{{"state": ..., "reason": ...}} either way.
    """

    def __init__(self, gateway):
        """
        :param gateway: the L{gateway.service.GatewayService}.
        """
        super().__init__()
        self.gateway = gateway

    def render_GET(self, request):
        """
        :return: the JSON state and reason.
        """
        ready, state, reason = readiness(self.gateway)
        body = _json({"state": state, "reason": reason})
        return self._send(request, 200 if ready else 503, _JSON, body)


class Metrics(_Leaf):
    """
    C{/metrics}: the registry in the Prometheus text format, or OpenMetrics
    when the scraper asks for it (C{Accept}), as C{prometheus_client}'s own
    handlers do.
    """

    def __init__(self, registry):
        """
        :param registry: the L{CollectorRegistry} to expose.
        """
        super().__init__()
        self.registry = registry

    def render_GET(self, request):
        """
        :return: the exposition, collected now.
        """
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        encoder, contentType = choose_encoder(accept)
        body = encoder(self.registry)
        return self._send(request, 200, contentType.encode(), body)


class StatusJSON(_Leaf):
    """
    C{/status.json}: L{statusSnapshot}, for the status page.
    """

    def __init__(self, collector, clock, started):
        """
        :param collector: the gateway's L{GatewayCollector}.
        :param clock: an L{IReactorTime}.
        :param started: when the site was built, by C{clock}.
        """
        super().__init__()
        self.collector, self.clock, self.started = collector, clock, started

    def render_GET(self, request):
        """
        :return: the snapshot as JSON.
        """
        now = self.clock.seconds()
        snapshot = statusSnapshot(self.collector, round(now - self.started, 3), now)
        return self._send(request, 200, _JSON, _json(snapshot))


class Index(_Leaf):
    """
    C{/} when no status page is installed: the list of endpoints.
    """

    def render_GET(self, request):
        """
        :return: a plain-text index.
        """
        body = (
            f"kafka gateway {__version__}\n"
            "/healthz      alive\n"
            "/readyz       ready for traffic (200) or not (503), with the reason\n"
            "/metrics      Prometheus metrics\n"
            "/status.json  the figures of the status page\n"
        ).encode()
        return self._send(request, 200, _TEXT, body)


def _statusPage():
    """
    :return: C{gateway.ops.statuspage.statusPage()}, or L{None} without that
        module (a module that exists but fails to import still raises).
    """
    try:
        from gateway.ops.statuspage import statusPage
    except ModuleNotFoundError as e:
        if e.name != "gateway.ops.statuspage":
            raise
        return None
    return statusPage()
