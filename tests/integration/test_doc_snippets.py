"""
Every example of the README and C{docs/} that is not marked to skip runs
against a real gateway and broker: the quick start's gateway command (the
example marked C{gateway}) is started, with the ports and topic of the
examples moved to free ones and the suite's broker, and every other example
must exit 0 (L{tests.docs.snippets}).
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from devkafka import freePort
from tests.docs.snippets import ROOT, allSnippets
from tests.support.waiting import waitFor

#: Seconds one example may take (the machine is small and shared).
TIMEOUT = 300


def adapter(bootstrap):
    """
    @return: a function moving an example's fixed ports, broker and topic
        to this test's.
    """
    ports = {port: freePort() for port in ("9000", "9001", "8080")}
    topic = f"docs-{uuid.uuid4().hex[:8]}"

    def adapt(text):
        text = text.replace("127.0.0.1:9092", bootstrap)
        text = text.replace("--topic gateway", f"--topic {topic}")
        text = text.replace('topic="gateway"', f'topic="{topic}"')
        text = text.replace(
            "devkafka consume ", f"devkafka consume --bootstrap-servers {bootstrap} "
        )
        for port, free in ports.items():
            text = text.replace(f":{port}", f":{free}").replace(f", {port})", f", {free})")
        return text

    adapt.httpPort = ports["8080"]
    return adapt


def environment():
    """
    @return: the environment of the examples: the virtualenv's commands
        first on the C{PATH}, as after C{source .venv/bin/activate}.
    """
    bin = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=f"{bin}{os.pathsep}{os.environ.get('PATH', '')}")


def command(snippet, text):
    """
    @return: the command that runs an example's C{text}.
    """
    if snippet.language == "python":
        return [sys.executable, "-c", text]
    return ["bash", "-euo", "pipefail", "-c", text]


def ready(port):
    """
    @return: whether the gateway's C{/readyz} answers 200.
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_examplesRun(kafka, tmp_path):
    """
    The quick start's gateway starts and becomes ready, and every example
    not marked to skip exits 0 against it, in reading order.
    """
    found = allSnippets()
    adapt = adapter(kafka.bootstrap)
    (gatewaySnippet,) = [s for s in found if s.kind == "gateway"]
    log = (tmp_path / "gateway.log").open("wb")
    # The example uses the default HTTP port; here it gets a free one.
    gatewayCommand = adapt(gatewaySnippet.text).rstrip() + (
        f" --http tcp:{adapt.httpPort}:interface=127.0.0.1"
    )
    gateway = subprocess.Popen(
        command(gatewaySnippet, "exec " + gatewayCommand),
        cwd=tmp_path,
        env=environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    failures = []
    try:
        waitFor(
            lambda: ready(adapt.httpPort) or gateway.poll() is not None,
            120,
            lambda: (
                f"the gateway of {gatewaySnippet} ready:\n{(tmp_path / 'gateway.log').read_text()}"
            ),
        )
        assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
        ran = 0
        for snippet in found:
            if snippet.kind is not None:
                continue
            started = time.monotonic()
            result = subprocess.run(
                command(snippet, adapt(snippet.text)),
                cwd=ROOT,
                env=environment(),
                capture_output=True,
                timeout=TIMEOUT,
            )
            ran += 1
            if result.returncode != 0:
                failures.append(
                    f"{snippet} exited {result.returncode} after "
                    f"{time.monotonic() - started:.1f} s:\n{adapt(snippet.text)}\n"
                    f"{result.stdout.decode(errors='replace')}"
                    f"{result.stderr.decode(errors='replace')}"
                )
        assert ran >= 5
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
        log.close()
    assert failures == [], "\n\n".join(failures)
