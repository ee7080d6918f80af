"""
The example out-of-tree framing plugin, C{plugins/gateway-framing-stx}, as a
third party would ship it: found once installed (C{scripts/test} installs
it into the project's virtualenv before running pytest), carried end to end
to a real Kafka broker, usable by dotted path without being installed, and
gone again after C{pip uninstall} without harming the gateway's own
C{gateway.plugins} package.
"""

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkafka import consume
from tests.integration.support.process import CLEAN_EXIT, TWISTD, GatewayProcess
from tests.integration.support.sockets import sendInRandomPieces
from tests.integration.support.topics import checkRecords, newTopic

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "gateway-framing-stx"
MODULE = PLUGIN / "gateway" / "plugins" / "stx_framing.py"

#: What never goes into a copy of a source tree to install from.
SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".devkafka",
    ".hypothesis",
    ".pytest_cache",
    "__pycache__",
    "build",
    "dist",
    "*.egg-info",
    "dropin.cache",
    "test-artifacts",
    "_trial_temp",
    "*.whl",
)

STX, ETX, DLE = b"\x02", b"\x03", b"\x10"


def frame(message):
    """
    One message on the wire, written out independently of the plugin.
    """
    message = message.replace(DLE, DLE + DLE)
    return STX + message.replace(STX, DLE + STX).replace(ETX, DLE + ETX) + ETX


def listedFramings(helpText):
    """
    The framing names in C{twistd gateway --help}'s framings section.
    """
    section = helpText.split("Framings (", 1)[1]
    return set(re.findall(r"^  (\S+) ", section, re.MULTILINE)) - {"(unavailable)"}


def cleanEnv(**extra):
    """
    This process's environment without C{PYTHONPATH}, plus C{extra}.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def run(command, cwd, **extra):
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=cleanEnv(**extra),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def test_installedPluginListed(tmp_path):
    """
    In the project's virtualenv the installed plugin is imported from
    site-packages, not from the checkout, and C{twistd gateway --help}
    lists C{stx} with its option, and no plugin error.
    """
    found = subprocess.run(
        [sys.executable, "-c", "import gateway.plugins.stx_framing as m; print(m.__file__)"],
        cwd=tmp_path,
        env=cleanEnv(),
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, (
        "the example plugin is not installed: scripts/test installs it "
        f"(pip install ./plugins/gateway-framing-stx)\n{found.stderr}"
    )
    where = found.stdout.strip()
    assert "site-packages" in Path(where).parts
    assert Path(where).read_bytes() == MODULE.read_bytes(), (
        f"{where} is older than {MODULE}: reinstall the plugin"
    )
    helpText = run([TWISTD, "gateway", "--help"], tmp_path).stdout
    assert {"stx", "lines"} <= listedFramings(helpText)
    assert "ignore=bytes" in helpText
    assert "(unavailable)" not in helpText


def payload(client, sequence, rng):
    """
    A binary message, rich in the bytes the framing escapes.
    """
    body = bytearray(rng.randbytes(rng.randint(0, 120)))
    for _ in range(rng.randint(0, 6)):
        body.insert(rng.randint(0, len(body)), rng.choice(b"\x02\x03\x10"))
    return b"%d:%d:" % (client, sequence) + bytes(body)


def test_stxEndToEnd(kafka, tmp_path):
    """
    Three clients of the installed C{stx} and one of the same framing given
    by dotted path to a module that is not installed send escaped binary
    messages cut at random byte boundaries; Kafka holds exactly those
    messages, in order per connection.  A client sending a byte between
    frames is disconnected, and only its message before that is published.
    """
    # A copy of the module outside the gateway.plugins namespace: usable by
    # dotted path, not discovered.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(MODULE, elsewhere / "examplestx.py")
    topic = newTopic(kafka)
    process = GatewayProcess(
        tmp_path,
        [
            "--bootstrap-servers",
            kafka.bootstrap,
            "--topic",
            topic,
            "--listen",
            "stx=tcp:0:interface=127.0.0.1",
            "--listen",
            "examplestx:stx(ignore=\\r\\n)=tcp:0:interface=127.0.0.1",
        ],
        env={"PYTHONPATH": str(elsewhere)},
    ).start(listeners=2)
    try:
        rng = random.Random("stx")
        sent = {"stx": {}, "stx-2": {}}
        sockets = []
        for client in range(4):
            listener = "stx" if client < 3 else "stx-2"
            sock = process.connect(listener)
            sockets.append(sock)
            host, port = sock.getsockname()[:2]
            messages = [payload(client, n, rng) for n in range(200)]
            sent[listener][f"{host}:{port}"] = messages
            between = b"\r\n" if listener == "stx-2" else b""
            sendInRandomPieces(sock, b"".join(between + frame(m) for m in messages), rng)
        bad = process.connect("stx")
        host, port = bad.getsockname()[:2]
        sent["stx"][f"{host}:{port}"] = [b"before"]
        bad.sendall(frame(b"before") + b"\n" + frame(b"never"))
        bad.settimeout(10)
        assert bad.recv(1) == b""  # the gateway closed it
        for sock in sockets:
            sock.close()
        records = consume(kafka.bootstrap, topic, count=801, timeout=60)
    finally:
        exitCode = process.stop()
    byListener = {"stx": [], "stx-2": []}
    for record in records:
        byListener[dict(record.headers)["gateway-listener"].decode()].append(record)
    for listener, messages in sent.items():
        checkRecords(byListener[listener], messages, listener)
    assert exitCode in CLEAN_EXIT
    log = process.log()
    assert "listener stx-2 (stx) listening" in log
    assert "malformed-frame" in log and "byte 10" in log


# A virtualenv of its own, with the gateway installed as a user would (not
# editable), to install and uninstall the plugin in.


def pip(python, *args):
    """
    This virtualenv's pip, working on the environment of C{python}.
    """
    return run([sys.executable, "-m", "pip", "--python", python, *args], ROOT)


@pytest.fixture(scope="module")
def userVenv(tmp_path_factory):
    """
    A new virtualenv holding the gateway installed from a copy of this
    checkout, and a copy of the plugin's source to install from.

    :return: C{(python, twistd, site-packages, plugin source)}.
    """
    base = tmp_path_factory.mktemp("user")
    source = base / "kafka-gateway"
    shutil.copytree(ROOT, source, ignore=SKIP)
    shutil.rmtree(source / "plugins")
    plugin = base / "gateway-framing-stx"
    shutil.copytree(PLUGIN, plugin, ignore=SKIP)
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], base)
    python = venv / "bin" / "python"
    pip(python, "install", "-q", source)
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        base,
    ).stdout.strip()
    return python, venv / "bin" / "twistd", Path(site), plugin


def framingsIn(twistd, cwd, **env):
    """
    The framings a C{twistd gateway --help} run lists; it must print no
    error.
    """
    result = run([twistd, "gateway", "--help"], cwd, **env)
    assert "(unavailable)" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return listedFramings(result.stdout)


def test_discoveredFromAnotherPathEntry(userVenv, tmp_path):
    """
    Installed with C{pip install --target} into a directory of its own, the
    plugin is one file in C{gateway/plugins/} with no C{__init__.py}; with
    that directory on C{PYTHONPATH}, the gateway lists C{stx}; without it,
    not.
    """
    python, twistd, site, plugin = userVenv
    target = tmp_path / "target"
    pip(python, "install", "-q", "--no-deps", "--target", target, plugin)
    installed = {
        path.relative_to(target).as_posix()
        for path in target.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and ".dist-info" not in path.parent.name
    }
    assert installed == {"gateway/plugins/stx_framing.py"}
    assert "stx" in framingsIn(twistd, tmp_path, PYTHONPATH=str(target))
    assert "stx" not in framingsIn(twistd, tmp_path)


def test_installAndUninstall(userVenv, tmp_path):
    """
    C{pip install} puts the plugin's one module into the installed
    gateway's C{gateway/plugins/} directory, where it is listed; C{pip
    uninstall} removes only that module: the gateway's C{__init__.py}
    files and built-in plugins are untouched and still listed, and the
    plugin cache no longer names the module once regenerated.
    """
    python, twistd, site, plugin = userVenv
    plugins = site / "gateway" / "plugins"
    own = [
        "gateway/__init__.py",
        "gateway/plugins/__init__.py",
        "gateway/plugins/gateway_builtin.py",
    ]
    before = {name: (site / name).read_bytes() for name in own}
    assert "stx" not in framingsIn(twistd, tmp_path)
    pip(python, "install", "-q", plugin)
    try:
        assert (plugins / "stx_framing.py").read_bytes() == MODULE.read_bytes()
        assert {"stx", "lines"} <= framingsIn(twistd, tmp_path)
    finally:
        pip(python, "uninstall", "-q", "-y", "gateway-framing-stx")
    assert not (plugins / "stx_framing.py").exists()
    assert {name: (site / name).read_bytes() for name in own} == before
    # pip leaves dropin.cache behind; the next scan drops the stale entry.
    cached = run(
        [
            python,
            "-c",
            "import gateway.plugins; from twisted.plugin import getCache; "
            "print(sorted(getCache(gateway.plugins)))",
        ],
        tmp_path,
    ).stdout
    assert "gateway_builtin" in cached and "stx_framing" not in cached
    framings = framingsIn(twistd, tmp_path)
    assert "stx" not in framings and "lines" in framings
