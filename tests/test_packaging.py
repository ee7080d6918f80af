# -*- test-case-name: tests.test_packaging -*-
"""
The wheel carries the twistd plugin and none of the C{__init__.py} files
that would replace Twisted's own, and a plain install of it gives a working
C{twistd gateway}.
"""

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """
    Build the project's wheel once for this module, from its sdist, so that
    nothing left in a local C{build/} directory can leak into it.
    """
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [path] = out.glob("*.whl")
    return path


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
        "gateway/reuseport.py",
        "gateway/kafka/producer.py",
        "gateway/devkafka/pom.xml",
    ):
        assert module in names


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
