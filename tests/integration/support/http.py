# -*- test-case-name: tests.integration.test_http_kafka -*-
"""
The gateway's HTTP endpoints read with plain blocking HTTP: C{/status.json},
C{/readyz}, C{/metrics} (parsed with C{prometheus_client}'s own parser), and
waits on the connection counts they show.
"""

import json
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import waitFor

__all__ = [
    "get",
    "listenerStatus",
    "readiness",
    "readyz",
    "refusedCounts",
    "scrape",
    "settledOpen",
    "status",
    "waitForOpen",
]

#: urllib without any proxy from the environment: the gateway is on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port, path, timeout=10.0):
    """
    GET C{path} from the gateway's HTTP endpoints on loopback C{port}.

    :return: C{(status, content type, body bytes)}, error statuses
        included.
    """
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with _HTTP.open(url, timeout=timeout) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], e.read()


def status(process):
    """
    :return: the gateway's C{/status.json}, parsed.
    """
    code, _, body = get(process.httpPort, "/status.json")
    assert code == 200, (code, body)
    return json.loads(body)


def readyz(process):
    """
    :return: the status code of the gateway's C{/readyz}.
    """
    return readiness(process)[0]


def readiness(process):
    """
    :return: C{(status, {"state": ..., "reason": ...})} of C{/readyz}.
    """
    code, contentType, body = get(process.httpPort, "/readyz")
    assert contentType == "application/json", (code, contentType, body)
    return code, json.loads(body)


def scrape(process):
    """
    :return: C{/metrics} parsed by C{prometheus_client}'s own parser, as
        C{{(sample name, sorted labels): value}}.
    """
    code, _, body = get(process.httpPort, "/metrics")
    assert code == 200, (code, body)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def refusedCounts(process):
    """
    :return: C{gateway_connections_refused_total} from C{/metrics}, by
        C{(listener, reason)}.
    """
    return {
        (labels["listener"], labels["reason"]): value
        for (name, sortedLabels), value in scrape(process).items()
        if name == "gateway_connections_refused_total"
        for labels in [dict(sortedLabels)]
    }


def listenerStatus(process, name):
    """
    :return: one listener's entry of C{/status.json}.
    """
    (entry,) = [l for l in status(process)["listeners"] if l["name"] == name]
    return entry


def waitForOpen(process, listener, expected, timeout=10.0):
    """
    Wait until the gateway counts C{expected} open connections on a
    listener (a close counts once the gateway has seen it).

    :return: the listener's C{/status.json} entry then.
    """
    seen = []

    def reached():
        seen[:] = [listenerStatus(process, listener)]
        return seen[0]["connections"] == expected

    waitFor(
        reached, timeout, lambda: f"{expected} open connections (last: {seen[0]['connections']})"
    )
    return seen[0]


def settledOpen(process, listener, quiet=1.0, timeout=20.0):
    """
    Wait until a listener's open connections have not changed for C{quiet}
    seconds.

    :return: that count.
    """
    seen = [None, time.monotonic()]

    def settled():
        now = listenerStatus(process, listener)["connections"]
        if now != seen[0]:
            seen[:] = [now, time.monotonic()]
        return time.monotonic() - seen[1] >= quiet

    waitFor(settled, timeout, lambda: f"open connections to settle (last: {seen[0]})")
    return seen[0]
