# -*- test-case-name: tests.ops.test_readiness -*-
"""
C{gateway-probe}: the probe against in-memory resources through
L{treq.testing.StubTreq}, its command line, and the installed console script
against real sockets.
"""

import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.defer import fail
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from gateway.ops.readiness import DEFAULT_TIMEOUT, DEFAULT_URL, parser, probe, run

PROBE = Path(sys.executable).with_name("gateway-probe")
URL = "http://gateway.test/readyz"


class Answer(Resource):
    """
    A leaf answering every GET with a fixed status and body; or never, when
    C{code} is L{None}.
    """

    isLeaf = True

    def __init__(self, code, body=b""):
        super().__init__()
        self.code = code
        self.body = body
        self.requests = []

    def render_GET(self, request):
        self.requests.append(request)
        if self.code is None:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        return self.body


class Refusing:
    """
    An HTTP client whose every connection is refused.
    """

    def get(self, url):
        return fail(ConnectionRefusedError("Connection refused"))


class ProbeTests(SynchronousTestCase):
    """
    L{probe} with an injected client and clock.
    """

    def setUp(self):
        self.clock = Clock()

    def probeOf(self, resource, timeout=DEFAULT_TIMEOUT):
        self.stub = StubTreq(resource)
        return probe(self.stub, self.clock, URL, timeout)

    def test_ready(self):
        """
        A 200 answer is ready.
        """
        result = self.successResultOf(self.probeOf(Answer(200, b'{"state": "ready"}')))
        self.assertEqual(result, (True, f"ready: {URL}: 200 OK"))

    def test_notReady(self):
        """
        A 503 answer is not ready; the line gives the status and the
        gateway's state and reason from the JSON body.
        """
        body = json.dumps({"state": "degraded", "reason": "budget 91% full"}).encode()
        result = self.successResultOf(self.probeOf(Answer(503, body)))
        self.assertEqual(
            result,
            (
                False,
                f"not ready: {URL}: 503 Service Unavailable: degraded (budget 91% full)",
            ),
        )

    def test_otherBody(self):
        """
        Any status but 200 is not ready; a body that is not the gateway's
        JSON is quoted by its first line, shortened.
        """
        body = b"x" * 500 + b"\nsecond line"
        ready, line = self.successResultOf(self.probeOf(Answer(404, body)))
        self.assertFalse(ready)
        self.assertEqual(line, f"not ready: {URL}: 404 Not Found: " + "x" * 200 + "...")
        ready, line = self.successResultOf(self.probeOf(Answer(204)))
        self.assertEqual((ready, line), (False, f"not ready: {URL}: 204 No Content"))

    def test_timeout(self):
        """
        No answer within the timeout is not ready, and the request is
        given up.
        """
        resource = Answer(None)
        d = self.probeOf(resource, timeout=2.5)
        self.stub.flush()
        self.assertNoResult(d)
        self.assertEqual(len(resource.requests), 1)
        self.clock.advance(2.4)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(
            self.successResultOf(d), (False, f"not ready: no answer from {URL} within 2.5 s")
        )

    def test_refused(self):
        """
        A refused connection is not ready.
        """
        d = probe(Refusing(), self.clock, URL)
        self.assertEqual(self.successResultOf(d), (False, f"not ready: {URL}: connection refused"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostResponse(self):
        """
        A connection lost before the answer is not ready; the line gives the
        underlying reason, not the wrapper's list of failures.
        """

        class Lost:
            def get(self, url):
                return fail(ResponseNeverReceived([Failure(ConnectionLost("gone"))]))

        d = probe(Lost(), self.clock, URL)
        self.assertEqual(
            self.successResultOf(d),
            (
                False,
                f"not ready: {URL}: Connection to the other side was lost in a "
                "non-clean fashion: gone.",
            ),
        )


class CommandLineTests(SynchronousTestCase):
    """
    L{parser} and L{run}.
    """

    def runWith(self, argv, resource):
        stdout = io.StringIO()
        d = run(Clock(), argv, client=StubTreq(resource), stdout=stdout)
        failure = self.failureResultOf(d, SystemExit)
        return failure.value.code, stdout.getvalue()

    def test_defaults(self):
        """
        Without arguments the probe asks the gateway's default readiness URL
        and allows 5 seconds.
        """
        arguments = parser().parse_args([])
        self.assertEqual(arguments.url, DEFAULT_URL)
        self.assertEqual(arguments.url, "http://127.0.0.1:8080/readyz")
        self.assertEqual(arguments.timeout, 5.0)

    def test_arguments(self):
        """
        The URL is the one argument; C{--timeout} (C{-t}) takes seconds,
        before or after it.
        """
        for argv in (
            ["--timeout", "0.5", "http://[::1]:9000/healthz"],
            ["http://[::1]:9000/healthz", "-t", "0.5"],
        ):
            arguments = parser().parse_args(argv)
            self.assertEqual(
                (arguments.url, arguments.timeout), ("http://[::1]:9000/healthz", 0.5)
            )

    def test_exitCodes(self):
        """
        L{run} prints one line and exits 0 when ready, 1 when not.
        """
        self.assertEqual(self.runWith([URL], Answer(200)), (0, f"ready: {URL}: 200 OK\n"))
        self.assertEqual(
            self.runWith([URL], Answer(503, b'{"state": "starting"}')),
            (1, f"not ready: {URL}: 503 Service Unavailable: starting\n"),
        )

    def test_usage(self):
        """
        A bad command line exits 2 without probing.
        """
        for argv in (
            ["--timeout", "0"],
            ["--timeout", "soon"],
            ["--timeout", "inf"],
            ["ftp://x/"],
            [URL, "extra"],
            ["--verbose"],
        ):
            resource = Answer(200)
            code, output = self.runWith(argv, resource)
            self.assertEqual((code, output, resource.requests), (2, "", []), argv)


class ConsoleScriptTests(SynchronousTestCase):
    """
    The installed C{gateway-probe} against real sockets.
    """

    def setUp(self):
        self.assertTrue(
            PROBE.exists(),
            f"{PROBE} is missing: reinstall the project "
            "(./scripts/test does, or pip install '.[test]')",
        )

    def probe(self, *argv):
        done = subprocess.run([str(PROBE), *argv], capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    def test_refused(self):
        """
        Nothing listening: exit 1, "connection refused".
        """
        code, out, err = self.probe("http://127.0.0.1:1/readyz")
        self.assertEqual(
            (code, out, err), (1, "not ready: http://127.0.0.1:1/readyz: connection refused\n", "")
        )

    def test_silent(self):
        """
        A server that accepts but never answers: exit 1 once the timeout
        has passed.
        """
        server = socket.socket()
        self.addCleanup(server.close)
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/readyz"
        code, out, err = self.probe(url, "--timeout", "0.5")
        self.assertEqual((code, out), (1, f"not ready: no answer from {url} within 0.5 s\n"))

    def test_httpServer(self):
        """
        A real HTTP server (Python's C{http.server}): 200 exits 0, 404 exits 1.
        """
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        (directory / "readyz").write_text("ok\n")
        server = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(directory),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.addCleanup(server.wait, 10)
        self.addCleanup(server.terminate)
        banner = server.stdout.readline()  # Serving HTTP on 127.0.0.1 port N ...
        port = int(banner.split(" port ")[1].split()[0])
        base = f"http://127.0.0.1:{port}"
        self.assertEqual(self.probe(f"{base}/readyz"), (0, f"ready: {base}/readyz: 200 OK\n", ""))
        code, out, _ = self.probe(f"{base}/missing")
        self.assertEqual(code, 1)
        self.assertTrue(out.startswith(f"not ready: {base}/missing: 404 "), out)

    def test_usage(self):
        """
        A bad command line exits 2 with the usage on standard error.
        """
        code, out, err = self.probe("--timeout", "-1")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("usage: gateway-probe [-h] [-t SECONDS] [url]", err)
        self.assertIn("must be a positive number of seconds, not '-1'", err)
