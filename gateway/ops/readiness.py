# -*- test-case-name: tests.ops.test_readiness -*-
"""
C{gateway-probe}: a health check for containers and init systems::

    gateway-probe [URL] [--timeout SECONDS]

GETs C{URL} (C{http://127.0.0.1:8080/readyz} unless given), prints one line
and exits 0 when the answer is C{200}, 1 otherwise: another status, a
refused connection, no answer within the timeout (5 s unless given; it
covers connecting, the answer and its body). A bad command line exits 2.
"""

import argparse
import json
import math
import sys

from twisted.internet.defer import TimeoutError, inlineCallbacks
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES

__all__ = ["DEFAULT_URL", "DEFAULT_TIMEOUT", "main", "parser", "probe", "run"]

#: What is probed when no URL is given: the gateway's readiness on its
#: default HTTP endpoint.
DEFAULT_URL = "http://127.0.0.1:8080/readyz"
#: Seconds allowed for the whole exchange when C{--timeout} is not given.
DEFAULT_TIMEOUT = 5.0
#: The most of a body quoted in the printed line.
DETAIL_LIMIT = 200

#: Exit codes.
READY, NOT_READY, USAGE = 0, 1, 2


def _seconds(value):
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not (number > 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value!r}")
    return number


def _url(value):
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"not an http:// or https:// URL: {value!r}")
    return value


def parser():
    """
    The command line: C{[URL] [--timeout SECONDS]}, in either order (an
    L{argparse} parser rather than L{twisted.python.usage.Options}, whose
    getopt stops at the first argument, so that C{gateway-probe URL
    --timeout 2} works as people write it).

    :rtype: L{argparse.ArgumentParser}
    """
    parser = argparse.ArgumentParser(
        prog="gateway-probe",
        description=(
            "GET URL, print one line, exit 0 when the status is 200 and 1 "
            "otherwise (another status, no connection, no answer in time); "
            "2 for a bad command line."
        ),
    )
    parser.add_argument(
        "url",
        nargs="?",
        default=DEFAULT_URL,
        type=_url,
        help=f"what to GET (default {DEFAULT_URL})",
    )
    parser.add_argument(
        "-t",
        "--timeout",
        default=DEFAULT_TIMEOUT,
        type=_seconds,
        metavar="SECONDS",
        help="give up after this many seconds: connecting, the answer and its "
        f"body (default {DEFAULT_TIMEOUT:g})",
    )
    return parser


def _detail(body):
    """
    One line about a body: C{state (reason)} for the gateway's JSON, else its
    first line, shortened.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and "state" in document:
        reason = document.get("reason")
        text = f"{document['state']} ({reason})" if reason else str(document["state"])
    text = text.splitlines()[0] if text else ""
    if len(text) > DETAIL_LIMIT:
        text = text[:DETAIL_LIMIT] + "..."
    return text


def _failureLine(failure, url, timeout):
    if failure.check(TimeoutError):
        return f"not ready: no answer from {url} within {timeout:g} s"
    if failure.check(ConnectionRefusedError):
        return f"not ready: {url}: connection refused"
    if failure.check(DNSLookupError):
        return f"not ready: {url}: cannot resolve the host name"
    reasons = getattr(failure.value, "reasons", None)  # ResponseFailed and kin
    if reasons:
        failure = reasons[0]
    message = failure.getErrorMessage() or failure.type.__name__
    return f"not ready: {url}: {message}"


@inlineCallbacks
def probe(client, clock, url=DEFAULT_URL, timeout=DEFAULT_TIMEOUT):
    """
    GET C{url} once.

    :param client: a L{treq.client.HTTPClient} (or C{treq} itself, or a
        L{treq.testing.StubTreq}).
    :param clock: an L{twisted.internet.interfaces.IReactorTime} for the
        timeout.
    :param url: the URL.
    :param timeout: seconds for connecting, the answer and its body.
    :return: a L{Deferred} firing with C{(ready, line)}: whether the status
        was 200, and the line to print. It never fails.
    """

    @inlineCallbacks
    def exchange():
        response = yield client.get(url)
        body = yield response.content()
        return response, body

    def timedOut(result, timeout):
        # However the cancelled request failed (Agent wraps the
        # CancelledError), it is a timeout.
        return Failure(TimeoutError(timeout, url))

    attempt = exchange()
    attempt.addTimeout(timeout, clock, onTimeoutCancel=timedOut)
    try:
        response, body = yield attempt
    except Exception:
        return False, _failureLine(Failure(), url, timeout)
    code = response.code
    phrase = (response.phrase or RESPONSES.get(code, b"")).decode("latin-1")
    status = f"{code} {phrase}".strip()
    if code == 200:
        return True, f"ready: {url}: {status}"
    detail = _detail(body)
    return False, f"not ready: {url}: {status}" + (f": {detail}" if detail else "")


@inlineCallbacks
def run(reactor, argv, client=None, stdout=None):
    """
    Probe as the command line says, print the line, and exit.

    :param reactor: the reactor (L{twisted.internet.task.react} gives it).
    :param argv: the arguments, without the program name.
    :param client: the HTTP client (a new L{treq.client.HTTPClient} on
        C{reactor} unless given).
    :param stdout: where the line goes (L{sys.stdout} unless given).
    :raise SystemExit: always, with L{READY}, L{NOT_READY} or L{USAGE}
        (argparse's own code for a bad command line).
    """
    stdout = sys.stdout if stdout is None else stdout
    arguments = parser().parse_args(argv)  # exits 2 on a bad command line
    if client is None:
        from treq.client import HTTPClient
        from twisted.web.client import Agent

        client = HTTPClient(Agent(reactor))
    ready, line = yield probe(client, reactor, arguments.url, arguments.timeout)
    print(line, file=stdout, flush=True)
    raise SystemExit(READY if ready else NOT_READY)


def main(argv=None):
    """
    The C{gateway-probe} console script.

    :param argv: the arguments, without the program name (C{sys.argv[1:]}
        unless given).
    """
    from twisted.internet.task import react

    react(run, [sys.argv[1:] if argv is None else argv])


if __name__ == "__main__":
    main()
