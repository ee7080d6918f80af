# -*- test-case-name: tests.integration.test_startup_errors -*-
"""
Every start-up failure an operator can provoke, run as the operator runs
it (C{twistd -n gateway ...}, a subprocess of the installed copy): exit
status 1, exactly one line on standard error naming the option at fault and
what it expected, and no traceback anywhere, unless C{GATEWAY_DEBUG=1}.

No broker is needed: each case fails before the gateway would talk to one.
"""

import os
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.support.process import TWISTD

VALID = ["--topic", "t", "--http", "none"]

#: (id, arguments after C{twistd -n gateway}, environment, what the line must hold)
CASES = [
    ("no-topic", ["--listen", "lines=tcp:0"], {}, "no Kafka topic: give the listener topic=NAME"),
    ("no-listen", ["--topic", "t"], {}, "at least one --listen"),
    ("unknown-option", [*VALID, "--listen", "lines=tcp:0", "--nope"], {}, "--nope"),
    (
        "budget-0",
        [*VALID, "--listen", "lines=tcp:0", "--budget", "0"],
        {},
        "--budget '0': expected a whole number of bytes, 1 or more",
    ),
    (
        "workers-0",
        [*VALID, "--listen", "lines=tcp:0", "--workers", "0"],
        {},
        "--workers '0': expected a whole number of processes, 1 or more",
    ),
    (
        "max-message-size--5",
        [*VALID, "--listen", "lines=tcp:0", "--max-message-size", "-5"],
        {},
        "--max-message-size '-5': expected a whole number of bytes",
    ),
    (
        "drain-timeout-abc",
        [*VALID, "--listen", "lines=tcp:0", "--drain-timeout", "abc"],
        {},
        "--drain-timeout 'abc': expected a number of seconds",
    ),
    (
        "health-interval--1",
        [*VALID, "--listen", "lines=tcp:0", "--health-interval", "-1"],
        {},
        "--health-interval '-1': expected a number of seconds",
    ),
    (
        "reserve-descriptors-x",
        [*VALID, "--listen", "lines=tcp:0", "--reserve-descriptors", "x"],
        {},
        "--reserve-descriptors 'x': expected a whole number of descriptors",
    ),
    (
        "worker-index-over",
        [*VALID, "--listen", "lines=tcp:0", "--workers", "2", "--worker-index", "3"],
        {},
        "--worker-index 3 is over --workers 2",
    ),
    (
        "linger-ms-abc",
        [*VALID, "--listen", "lines=tcp:0", "--kafka-option", "linger.ms=abc"],
        {},
        "--kafka-option linger.ms=abc: refused",
    ),
    (
        "kafka-option-no-value",
        [*VALID, "--listen", "lines=tcp:0", "--kafka-option", "linger.ms"],
        {},
        "--kafka-option 'linger.ms': expected KEY=VALUE",
    ),
    (
        "kafka-backend",
        [*VALID, "--listen", "lines=tcp:0", "--kafka-backend", "nope"],
        {},
        "--kafka-backend: unknown producer backend 'nope'",
    ),
    (
        "bootstrap-servers",
        [*VALID, "--listen", "lines=tcp:0", "--bootstrap-servers", "foo::bar"],
        {},
        "--bootstrap-servers 'foo::bar': bad broker address",
    ),
    (
        "tcp-notaport",
        [*VALID, "--listen", "lines=tcp:notaport"],
        {},
        "--listen lines...=tcp:notaport: malformed endpoint 'tcp:notaport': "
        "expected a number, not 'notaport'",
    ),
    (
        "http-notaport",
        ["--topic", "t", "--listen", "lines=tcp:0", "--http", "tcp:x"],
        {},
        "--http tcp:x: malformed HTTP endpoint 'tcp:x': expected a number",
    ),
    ("listen-syntax", [*VALID, "--listen", "lines"], {}, "--listen 'lines':"),
    ("unknown-framing", [*VALID, "--listen", "nope=tcp:0"], {}, "unknown framing 'nope'"),
    (
        "framing-option",
        [*VALID, "--listen", "lines(foo=1)=tcp:0"],
        {},
        "framing 'lines' has no option 'foo'",
    ),
    (
        "connection-option",
        [*VALID, "--listen", "lines(max-connections=x)=tcp:0"],
        {},
        "max-connections='x': must be a whole number",
    ),
    (
        "idle-timeout",
        [*VALID, "--listen", "lines(idle-timeout=x)=tcp:0"],
        {},
        "idle-timeout='x': must be a number of seconds",
    ),
    (
        "log-rate",
        [*VALID, "--listen", "lines=tcp:0"],
        {"GATEWAY_LOG_RATE": "abc"},
        "GATEWAY_LOG_RATE must be a whole number of events per second",
    ),
    (
        "log-file",
        [*VALID, "--listen", "lines=tcp:0"],
        {"GATEWAY_LOG_FILE": "/nonexistent-gateway-dir/g.log"},
        # The path, whichever check finds it first (at start, or opening it).
        "/nonexistent-gateway-dir",
    ),
    (
        "check-kafka-alone",
        [*VALID, "--listen", "lines=tcp:0", "--check-kafka"],
        {},
        "--check-kafka goes with --check",
    ),
    (
        "unix-missing-directory",
        [*VALID, "--listen", "lines=unix:/nonexistent-gateway-dir/g.sock"],
        {},
        "--listen lines...=unix:/nonexistent-gateway-dir/g.sock: cannot create the socket "
        "/nonexistent-gateway-dir/g.sock: directory /nonexistent-gateway-dir does not exist",
    ),
]


def runGateway(directory, args, env, debug=False):
    """
    Run C{twistd -n gateway ARGS} in C{directory} until it exits.

    :return: the L{subprocess.CompletedProcess}, output as text.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environ.update(env)
    if debug:
        environ["GATEWAY_DEBUG"] = "1"
    logger = ["--logger", "gateway.logs.textObserver"] if "GATEWAY_LOG_FILE" in env else []
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", *logger, "gateway", *args],
        cwd=directory,
        env=environ,
        capture_output=True,
        text=True,
        # Generous: a start on a busy machine takes seconds.
        timeout=120,
    )


def assertOneLine(result, expected):
    """
    Exit status 1, one line on standard error holding C{expected}, no
    traceback on either stream.
    """
    context = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 1, context
    lines = result.stderr.splitlines()
    assert len(lines) == 1, context
    assert lines[0].startswith("gateway: "), context
    assert expected in lines[0], context
    assert "Traceback" not in result.stdout + result.stderr, context


def test_everyCase(tmp_path):
    """
    Each case of L{CASES}, several at a time: one line, exit status 1.
    """

    def run(case):
        name, args, env, expected = case
        directory = tmp_path / name
        directory.mkdir()
        return case, runGateway(directory, args, env)

    with ThreadPoolExecutor(4) as pool:
        for (_, _, _, expected), result in pool.map(run, CASES):
            assertOneLine(result, expected)


@pytest.fixture
def busyPort():
    """
    A loopback port something else listens on.
    """
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    yield taken.getsockname()[1]
    taken.close()


def test_listenPortInUse(tmp_path, busyPort):
    """
    A listener's port already taken: the line names the --listen option and
    the address, once the gateway has begun to start (logging, producer).
    """
    endpoint = f"tcp:{busyPort}:interface=127.0.0.1"
    result = runGateway(tmp_path, [*VALID, "--listen", f"lines={endpoint}"], {})
    assertOneLine(
        result,
        f"--listen lines={endpoint}: cannot listen on 127.0.0.1:{busyPort}: "
        "address already in use",
    )
    assert "gateway not started" in result.stdout


def test_httpPortInUse(tmp_path, busyPort):
    """
    The HTTP endpoint's port already taken: the line names --http.
    """
    endpoint = f"tcp:{busyPort}:interface=127.0.0.1"
    result = runGateway(
        tmp_path, ["--topic", "t", "--listen", "lines=tcp:0", "--http", endpoint], {}
    )
    assertOneLine(result, f"--http {endpoint}: cannot listen on 127.0.0.1:{busyPort}")


def test_tacPortInUse(tmp_path, busyPort):
    """
    The example C{.tac} file (C{twistd -ny docs/examples/gateway.tac}) fails
    in one line too: a port in use, and a setting its gateway refuses.
    """
    tac = Path(__file__).resolve().parents[2] / "docs" / "examples" / "gateway.tac"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}

    def run(**env):
        return subprocess.run(
            [TWISTD, "-n", "--pidfile=", "-y", str(tac)],
            cwd=tmp_path,
            env=dict(environ, **env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = run(
        GATEWAY_LINES_ENDPOINT=f"tcp:{busyPort}:interface=127.0.0.1",
        GATEWAY_LENGTH_PREFIXED_ENDPOINT="tcp:0:interface=127.0.0.1",
    )
    assertOneLine(result, f"cannot listen on 127.0.0.1:{busyPort}: address already in use")
    result = run(GATEWAY_LINES_ENDPOINT="tcp:notaport")
    assertOneLine(result, "malformed endpoint 'tcp:notaport': expected a number, not 'notaport'")


def test_debugKeepsTheTraceback(tmp_path, busyPort):
    """
    With C{GATEWAY_DEBUG=1} the failure is Python's, traceback included:
    for a bad option and for a port in use.
    """
    result = runGateway(tmp_path, [*VALID, "--listen", "lines=tcp:notaport"], {}, debug=True)
    assert result.returncode == 1
    assert "malformed endpoint" in result.stdout + result.stderr
    endpoint = f"tcp:{busyPort}:interface=127.0.0.1"
    result = runGateway(tmp_path, [*VALID, "--listen", f"lines={endpoint}"], {}, debug=True)
    assert result.returncode == 1
    assert "Traceback" in result.stdout + result.stderr
    assert "CannotListenError" in result.stdout + result.stderr


def test_version(tmp_path):
    """
    C{twistd gateway --version} prints the gateway's version and those of
    Twisted, librdkafka and Python, and exits 0.
    """
    from confluent_kafka import libversion

    import twisted
    from gateway import __version__

    result = runGateway(tmp_path, ["--version"], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"kafka-gateway {__version__} ("), result.stdout
    assert f"Twisted {twisted.__version__}" in result.stdout
    assert f"librdkafka {libversion()[0]}" in result.stdout
    assert "Python 3." in result.stdout
