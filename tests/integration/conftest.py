# -*- test-case-name: tests.integration.test_devkafka -*-
"""
Real Apache Kafka brokers for the integration tests, and a guard that the
C{twistd} they start runs the checkout's code.

The jars are shared with the command line (``$GATEWAY_DEVKAFKA_HOME`` or
``<rootdir>/.devkafka``, fetched on first use) so a fresh machine needs only
``pytest``; each session's data lives in pytest's temporary folder. A broker
that cannot start fails the tests that need it: they are never skipped.

The gateway processes these tests start run the copy of kafka-gateway
installed in the virtualenv (``scripts/test`` reinstalls it, and
``tools/devkafka``, on every run; no editable install), not the checkout
that pytest imports. A checkout edited since then fails every integration
test with the one command that fixes it, rather than testing old code.
"""

import base64
import hashlib
import os
import sysconfig
from importlib.metadata import distributions
from pathlib import Path

import pytest

from devkafka import DevKafka


def devkafkaHome(config):
    """
    The jar cache the fixtures share with ``python -m devkafka``.

    :param config: the pytest config; its rootdir stands for ``.``, so the
        cache is the same wherever pytest is started from.
    """
    return os.environ.get("GATEWAY_DEVKAFKA_HOME") or config.rootpath / ".devkafka"


ROOT = Path(__file__).resolve().parents[2]

#: Each distribution the scripts install from the checkout: its source
#: folder, and the prefixes and suffixes of the files it installs from there.
_INSTALLED = {
    "kafka-gateway": (ROOT, ("gateway/", "twisted/plugins/gateway_"), (".py", ".html")),
    "kafka-gateway-devkafka": (
        ROOT / "tools" / "devkafka",
        ("devkafka/",),
        (".py", ".xml", ".properties"),
    ),
}


def _digest(path):
    """
    A file's hash as a wheel's C{RECORD} writes it.
    """
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def staleFiles(name, source, prefixes, suffixes):
    """
    Where the installed distribution C{name} and its C{source} folder differ,
    among the files whose relative paths start with one of C{prefixes} and
    end with one of C{suffixes}.

    :return: the relative paths added, changed or removed in C{source} since
        the distribution was installed (its name if it is not installed).
    """

    def wanted(path):
        return path.startswith(prefixes) and path.endswith(suffixes) and "__pycache__" not in path

    site = sysconfig.get_paths()["purelib"]
    found = list(distributions(name=name, path=[site]))
    if not found:
        return [f"{name} (not installed)"]
    installed = {
        str(record): f"{record.hash.mode}={record.hash.value}"
        for record in found[0].files
        if record.hash and wanted(str(record))
    }
    current = {}
    for top in {prefix.split("/")[0] for prefix in prefixes}:
        for path in (source / top).rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and wanted(relative):
                current[relative] = _digest(path)
    return sorted(
        path
        for path in installed.keys() | current.keys()
        if installed.get(path) != current.get(path)
    )


@pytest.fixture(scope="session", autouse=True)
def installedCheckout():
    """
    Fail, once for the session, when the virtualenv's kafka-gateway or
    devkafka is not the checkout's: the gateway processes would run old
    code.
    """
    stale = []
    for name, (source, prefixes, suffixes) in _INSTALLED.items():
        files = staleFiles(name, source, prefixes, suffixes)
        if files:
            stale.append(f"{name}: {', '.join(files[:5])}")
    if stale:
        pytest.fail(
            f"the virtualenv holds other code than the checkout ({'; '.join(stale)}); "
            f"reinstall: {ROOT}/scripts/test does, or "
            f"{ROOT}/.venv/bin/pip install {ROOT} {ROOT}/tools/devkafka",
            pytrace=False,
        )


def _broker(request, tmpPathFactory, version, name):
    broker = DevKafka(
        version,
        home=devkafkaHome(request.config),
        name=name,
        runRoot=tmpPathFactory.mktemp("devkafka"),
    )
    try:
        broker.start(timeout=120.0)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(request, tmp_path_factory):
    """
    A Kafka 4.x broker for the whole session (``kafka.bootstrap``).
    """
    yield from _broker(request, tmp_path_factory, "4", "pytest-4")


@pytest.fixture(scope="session")
def kafka39(request, tmp_path_factory):
    """
    A Kafka 3.9 broker (for the pykafka backend), started on first use.
    """
    yield from _broker(request, tmp_path_factory, "3.9", "pytest-3.9")
