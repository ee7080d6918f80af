# -*- test-case-name: tests.test_packaging -*-
"""
The wheel carries the twistd plugin and none of the C{__init__.py} files
that would replace Twisted's own, nor the development broker; a plain
install of it gives a working C{twistd gateway}, C{gateway-probe} and
C{gateway-send}. The development broker is a distribution of its own
(C{tools/devkafka}) that carries its Maven and Kafka configuration files.
"""

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVKAFKA = ROOT / "tools" / "devkafka"


def buildWheel(source, out):
    """
    Build the wheel of the project in C{source} into C{out}, from its sdist,
    so that nothing left in a local C{build/} directory can leak into it.

    :return: the wheel's path.
    """
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [path] = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """
    The project's wheel, built once for this module.
    """
    return buildWheel(ROOT, tmp_path_factory.mktemp("wheel"))


def test_wheelHoldsPluginWithoutTwistedInit(wheel):
    """
    C{twisted/plugins/gateway_plugin.py} and C{gateway_endpoints.py} are in
    the wheel; C{twisted/__init__.py} and C{twisted/plugins/__init__.py} are
    not, nor a C{dropin.cache}.
    """
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/gateway_plugin.py" in names
    assert "twisted/plugins/gateway_endpoints.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert not [n for n in names if n.endswith("dropin.cache")]
    for module in (
        "gateway/tap.py",
        "gateway/plugins/gateway_builtin.py",
        "gateway/server/reuseport.py",
        "gateway/kafka/producer.py",
        "gateway/ops/readiness.py",
        "gateway/ops/static/status.html",
        "gateway/ops/static/uPlot.iife.min.js",
        "gateway/ops/static/uPlot.min.css",
        "gateway/ops/static/uPlot.LICENSE.txt",
    ):
        assert module in names


def test_wheelWithoutDevelopmentBroker(wheel):
    """
    Nothing of the development broker, which fetches Kafka from Maven
    Central, is in the wheel: no C{devkafka} package at the top or inside
    C{gateway}, and no C{pom.xml} anywhere.
    """
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if "devkafka" in n or n.endswith("pom.xml")] == []
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"gateway", "twisted"}


def test_wheelCarriesLicense(wheel):
    """
    The MIT licence C{setup.cfg} names is in the wheel's metadata, the
    file itself (C{LICENSE}).
    """
    archive = zipfile.ZipFile(wheel)
    [name] = [n for n in archive.namelist() if n.endswith("/LICENSE") and ".dist-info/" in n]
    assert archive.read(name).decode().startswith("MIT License")
    assert (ROOT / "LICENSE").read_text() == archive.read(name).decode()


def test_plainInstallGivesTwistdGateway(wheel, tmp_path):
    """
    Installed with plain pip into a new virtual environment, the wheel gives
    a C{twistd gateway --help} that lists the built-in framings.
    """
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [str(env / "bin" / "twistd"), "gateway", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stderr
    assert "--bootstrap-servers" in result.stdout
    assert "length-prefixed" in result.stdout
    probe = subprocess.run(
        [str(env / "bin" / "gateway-probe"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert "usage: gateway-probe" in probe.stdout
    send = subprocess.run(
        [str(env / "bin" / "gateway-send"), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert send.returncode == 0, send.stderr
    assert "usage: gateway-send" in send.stdout
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, gateway.ops, pathlib; "
            "print(u.find_spec('devkafka'), u.find_spec('devkafka')); "
            "print((pathlib.Path(gateway.ops.__file__).parent / 'static' / 'status.html')"
            ".is_file())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["None", "None", "True"]


def test_developmentBrokerWheel(tmp_path):
    """
    The development broker's own wheel holds the top-level C{devkafka}
    package with the files it reads at run time (the Maven project and the
    broker's and log4j's properties), and nothing of the gateway.
    """
    names = set(zipfile.ZipFile(buildWheel(DEVKAFKA, tmp_path)).namelist())
    for name in (
        "devkafka/__init__.py",
        "devkafka/__main__.py",
        "devkafka/pom.xml",
        "devkafka/server.properties",
        "devkafka/log4j.properties",
        "devkafka/log4j2.properties",
    ):
        assert name in names
    assert not [n for n in names if n.startswith(("gateway/", "twisted/"))]
