# -*- test-case-name: tests.integration.test_statuspage_browser -*-
"""
The status page in headless Chromium against a real gateway (C{twistd -n
gateway} as a subprocess) and a real Kafka broker: after clients sent known
traffic the page shows the figures the gateway has, and while a client sends
it shows rates above zero and charts holding the readings. Screenshots go to
C{test-artifacts/}. The charts' 15-minute window is checked against a
C{status.json} served by the test, whose clock moves a minute per reading.

Chromium is Debian's C{chromium} package (C{scripts/test} installs it when
run as root); without it the test fails, it is never skipped.
"""

import json
import os
import re
import subprocess
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gateway.ops.statuspage import statusPage
from tests.integration.support.http import status
from tests.integration.support.process import linesGateway
from tests.integration.support.topics import newTopic
from tests.support.waiting import waitFor

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
#: Flags for a headless Chromium on a machine whose network is closed.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Virtual time: the page's one-second timer fires at once, so three
    # "seconds" of refreshes pass in a few real milliseconds between fetches
    # (which virtual time waits for).
    "--virtual-time-budget=3000",
]

#: The charts' element ids, with their series in order.
CHARTS = {
    "chart-messages": ["in", "delivered"],
    "chart-bytes": ["in", "out to Kafka"],
    "chart-budget": ["held", "budget"],
    "chart-connections": ["clients", "to Kafka"],
    "chart-health": ["brokers answering", "ready", "slowest probe"],
}

MESSAGES = 250
MAX_SIZE = 1000
#: A line over the limit, with no newline: the gateway closes that connection.
OVERSIZED = b"x" * 1500


def requireChromium():
    """
    Fail, with what to do, when Chromium is missing.
    """
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: the status page test needs Debian's chromium "
        "package (apt-get install chromium; scripts/test installs it when run "
        "as root), or GATEWAY_TEST_CHROMIUM naming another Chromium"
    )


def chromium(profile, *args, url):
    """
    Run headless Chromium once on C{url}.

    :param profile: a new, empty user data directory.
    :return: its standard output.
    """
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout.decode()


def waitForStatus(gateway, predicate, what, timeout=60.0):
    """
    Poll C{/status.json} until C{predicate} holds for it.

    :return: the status that satisfied it.
    """
    seen = []

    def holds():
        seen[:] = [status(gateway)]
        return predicate(seen[0])

    waitFor(holds, timeout, lambda: f"{what} (last status: {seen})")
    return seen[0]


class Page(HTMLParser):
    """
    The figures of a dumped status page: text by element id, and the cells
    of each listener's row by class.

    :ivar ids: element id to its text.
    :ivar attributes: element id to its attributes.
    :ivar listeners: listener name to (cell class to (text, attributes)).
    """

    def __init__(self, html):
        super().__init__()
        self.ids, self.attributes, self.listeners = {}, {}, {}
        self._open = []  # (tag, id or None, [text]) per open element
        self._row = None
        self._cell = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-listener" in attrs:
            self._row = self.listeners.setdefault(attrs["data-listener"], {})
        if tag == "td" and self._row is not None:
            self._cell = (attrs.get("class", "").split()[0], [], attrs)
        if "id" in attrs:
            self.attributes[attrs["id"]] = attrs
        self._open.append((tag, attrs.get("id"), []))

    def handle_endtag(self, tag):
        while self._open:
            openTag, id, text = self._open.pop()
            if id is not None:
                self.ids[id] = "".join(text).strip()
            if self._open:
                self._open[-1][2].extend(text)
            if openTag == tag:
                break
        if tag == "td" and self._cell is not None and self._row is not None:
            name, text, attrs = self._cell
            self._row[name] = ("".join(text).strip(), attrs)
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._open:
            self._open[-1][2].append(data)
        if self._cell is not None:
            self._cell[1].append(data)


class Sender(threading.Thread):
    """
    A client sending lines as fast as it can until stopped.
    """

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.stopped = threading.Event()
        self.sent = 0

    def run(self):
        batch = b"".join(b"traffic %d\n" % i for i in range(100))
        while not self.stopped.is_set():
            self.sock.sendall(batch)
            self.sent += 100
            time.sleep(0.001)

    def stop(self):
        self.stopped.set()
        self.join(10)


def test_statusPageShowsTheGateway(kafka, tmp_path):
    """
    The page served at C{/} by a real gateway, rendered by headless
    Chromium, shows the state, the producer's and the listener's counters
    as the gateway has them after known traffic (messages accepted and
    delivered, connections open, accepted and closed, bytes in, a frame
    error by reason, the budget), and rates above zero while a client
    sends, drawn in the charts too (every chart holds the page's readings,
    with the figures of the traffic); screenshots are saved in
    C{test-artifacts/}.
    """
    requireChromium()
    ARTIFACTS.mkdir(exist_ok=True)
    topic = newTopic(kafka, partitions=1, prefix="gw-status")
    gateway = linesGateway(
        tmp_path,
        kafka.bootstrap,
        topic,
        "--http",
        "tcp:0:interface=127.0.0.1",
        "--max-message-size",
        str(MAX_SIZE),
    )
    gateway.start(listeners=1)
    sockets = []
    try:
        port = gateway.waitForHttpPort()
        url = f"http://127.0.0.1:{port}/"
        waitForStatus(gateway, lambda s: s["ready"], "ready")

        # Known traffic: MESSAGES lines on one connection, kept open...
        client = gateway.connect("lines")
        sockets.append(client)
        lines = [b"message %d from the status page test" % i for i in range(MESSAGES)]
        data = b"".join(line + b"\n" for line in lines)
        client.sendall(data)
        # ...and one client sending an oversized line, in one write (one
        # read on loopback), which the gateway disconnects.
        bad = gateway.connect("lines")
        sockets.append(bad)
        bad.sendall(OVERSIZED)
        bad.settimeout(30)
        assert bad.recv(100) == b"", "the oversized client was not disconnected"
        expectedBytes = len(data) + len(OVERSIZED)

        truth = waitForStatus(
            gateway,
            lambda s: (
                s["producer"]["delivered"] == MESSAGES
                and s["listeners"][0]["closed"] == 1
                and s["listeners"][0]["bytesReceived"] == expectedBytes
            ),
            f"{MESSAGES} messages delivered, one connection closed, {expectedBytes} bytes read",
        )

        html = chromium(tmp_path / "profile-dom", "--dump-dom", url=url)
        (ARTIFACTS / "statuspage.html").write_text(html)
        chromium(
            tmp_path / "profile-shot",
            "--window-size=1200,900",
            f"--screenshot={ARTIFACTS / 'statuspage.png'}",
            url=url,
        )
        after = status(gateway)
        page = Page(html)

        assert page.ids["error"] == "", page.ids["error"]
        assert page.ids["state"] == truth["state"] == "ready"
        assert "state-ready" in page.attributes["state"]["class"]
        # The reason carries the last probe's latency, which changes.
        assert re.fullmatch(
            r"1 of 1 brokers answer, slowest probe [\d.]+ ms", page.ids["reason"]
        ), page.ids["reason"]
        assert page.ids["ready"] == "ready for traffic"
        assert page.ids["topic"] == topic
        assert page.ids["version"] == truth["version"]
        # The producer's connection and the health probe's: a handful.
        assert 1 <= int(page.ids["kafka-connections"]) <= 4, page.ids["kafka-connections"]

        assert page.ids["producer-accepted"] == str(MESSAGES)
        assert page.ids["producer-produced"] == str(MESSAGES)
        assert page.ids["producer-delivered"] == str(MESSAGES)
        assert page.ids["producer-failed"] == "0"
        # The queue depth may count one of librdkafka's own requests for a
        # moment (the client's len() counts them too), so it reads 0 or 1 when all is
        # delivered; brokersUp comes from the client's periodic statistics.
        assert page.ids["producer-pending"] in ("0", "1")
        assert page.ids["producer-brokersUp"] in ("–", "1")
        for key, value in after["producer"].items():
            # bytesSent is shown as the MB/s out rate, not as a counter;
            # storageProblems as the state's reason.
            if key not in ("pending", "brokersUp", "bytesSent", "storageProblems"):
                assert page.ids[f"producer-{key}"] == str(value), key

        # Quiet now: no change between the page's readings.
        assert page.ids["rate-accepted"] == "0.0"
        assert page.ids["rate-bytes"] == "0.000"
        assert page.ids["rate-delivered"] == "0.0"

        budget = after["budget"]
        assert page.attributes["budget-bar"]["aria-valuenow"] == f"{budget['fraction'] * 100:.1f}"
        assert page.ids["budget-text"].endswith(
            f"held of {budget['bytes'] / 1e6:.1f} MB ({budget['fraction'] * 100:.1f}%)"
        )
        assert page.ids["budget-paused"] == "reading"

        [listener] = truth["listeners"]
        row = page.listeners["lines"]
        cells = {name: text for name, (text, _) in row.items()}
        assert cells["name"] == "lines"
        assert cells["framing"] == "lines"
        assert cells["endpoint"] == "tcp:0:interface=127.0.0.1"
        assert cells["address"] == listener["address"] == f"127.0.0.1:{gateway.ports['lines']}"
        assert cells["connections"] == "1"
        assert cells["accepted"] == "2"
        assert cells["closed"] == "1"
        assert row["bytes"][1]["data-value"] == str(expectedBytes)
        assert cells["bytes"] == f"{expectedBytes} ({expectedBytes / 1000:.1f} kB)"
        assert cells["errors"] == "too-large: 1" and listener["frameErrors"] == {"too-large": 1}
        assert cells["rate"] == "0.000"

        # While a client sends, the rates are above zero.
        sender = Sender(gateway.connect("lines"))
        sockets.append(sender.sock)
        sender.start()
        try:
            waitForStatus(gateway, lambda s: s["producer"]["accepted"] > MESSAGES, "traffic")
            busyHtml = chromium(tmp_path / "profile-busy", "--dump-dom", url=url)
            (ARTIFACTS / "statuspage-traffic.html").write_text(busyHtml)
            busy = Page(busyHtml)
            chromium(
                tmp_path / "profile-busy-shot",
                "--window-size=1200,900",
                f"--screenshot={ARTIFACTS / 'statuspage-traffic.png'}",
                url=url,
            )
        finally:
            sender.stop()
        assert float(busy.ids["rate-accepted"]) > 0, busy.ids
        assert float(busy.ids["rate-bytes"]) > 0, busy.ids
        assert float(busy.listeners["lines"]["rate"][0]) > 0
        assert busy.listeners["lines"]["connections"][0] == "2"

        # The charts: uPlot drew each one (a canvas in its element), over
        # the page's readings (about one a second of virtual time: 3 s),
        # and their series hold what the gateway did.
        assert busyHtml.count("<canvas") == len(CHARTS), busyHtml[-3000:]
        drawn = {}
        for chart, series in CHARTS.items():
            attributes = busy.attributes[chart]
            assert int(attributes["data-points"]) >= 2, (chart, attributes)
            drawn[chart] = dict(zip(series, json.loads(attributes["data-max"]), strict=True))
        assert drawn["chart-messages"]["in"] > 0, drawn
        assert drawn["chart-bytes"]["in"] > 0, drawn
        # Deliveries and bytes out lag behind on a loaded machine, and may
        # not move in the page's few real seconds; they are drawn (with
        # confluent-kafka, bytes out are known), as numbers.
        assert drawn["chart-messages"]["delivered"] >= 0, drawn
        assert drawn["chart-bytes"]["out to Kafka"] >= 0, drawn
        assert drawn["chart-budget"]["budget"] == after["budget"]["bytes"] / 1e6, drawn
        assert drawn["chart-budget"]["held"] >= 0, drawn
        assert drawn["chart-connections"]["clients"] == 2, drawn
        assert 1 <= drawn["chart-connections"]["to Kafka"] <= 4, drawn
        assert drawn["chart-health"]["brokers answering"] == 1, drawn
        assert drawn["chart-health"]["ready"] == 1, drawn
        assert drawn["chart-health"]["slowest probe"] > 0, drawn

        shot = (ARTIFACTS / "statuspage.png").read_bytes()
        assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000
    finally:
        for sock in sockets:
            sock.close()
        gateway.stop()


class FakeStatus(BaseHTTPRequestHandler):
    """
    The status page, and a C{status.json} whose clock moves a minute per
    reading, with 600 more messages accepted each time.
    """

    readings = 0
    document = statusPage().document

    def do_GET(self):
        if self.path == "/":
            body, kind = self.document, "text/html; charset=utf-8"
        elif self.path == "/status.json":
            n = type(self).readings = type(self).readings + 1
            body, kind = json.dumps(fakeStatus(n)).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def fakeStatus(n):
    """
    :return: the C{n}th reading of a gateway accepting 10 messages/s.
    """
    producer = dict.fromkeys(
        ["produced", "delivered", "pending", "failed", "deadLettered", "spooled"], 0
    )
    producer.update(accepted=600 * n, bytesSent=None, brokersUp=None, storageProblems=[])
    return {
        "version": "0",
        "uptime": 60.0 * n,
        "topic": "t",
        "state": "ready",
        "reason": "",
        "ready": True,
        "budget": {"bytes": 1e6, "held": 0, "fraction": 0.0, "paused": False},
        "producer": producer,
        "listeners": [],
        "kafkaConnections": 2,
        "health": None,
        "time": 1.7e9 + 60.0 * n,
    }


def test_chartsKeepFifteenMinutes(tmp_path):
    """
    The charts hold the readings of the last 15 minutes of the gateway's
    clock and drop older ones: after 20 readings a minute apart, 16 are
    drawn (the newest and the 15 minutes before it), the rate computed from
    the gateway's clock (10 messages/s).
    """
    requireChromium()
    FakeStatus.readings = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStatus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget")]
        done = subprocess.run(
            [CHROMIUM, *flags, "--virtual-time-budget=19500", f"--user-data-dir={tmp_path}"]
            + ["--dump-dom", url],
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        page = Page(done.stdout.decode())
    finally:
        server.shutdown()
        server.server_close()
    readings = FakeStatus.readings
    assert readings >= 18, readings
    points = int(page.attributes["chart-messages"]["data-points"])
    assert points == min(readings, 16), (points, readings)
    assert json.loads(page.attributes["chart-messages"]["data-max"]) == [10, 0]
    assert json.loads(page.attributes["chart-health"]["data-max"]) == [None, 1, None]
