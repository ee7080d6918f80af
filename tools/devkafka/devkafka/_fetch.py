# -*- test-case-name: tests.integration.test_devkafka -*-
"""
Kafka versions, the tools they need (java, mvn) and the jar cache.

The jars come from Maven Central through ``pom.xml`` (shipped in this
package), so a developer needs nothing but a JDK and Maven, and CI caches one
folder.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

__all__ = [
    "DevKafkaError",
    "VERSIONS",
    "defaultHome",
    "fetchJars",
    "findJava",
    "jarDir",
    "jarsComplete",
    "resolveVersion",
]

#: Short names accepted by ``--kafka`` and ``DevKafka(version=...)``.
VERSIONS = {"4": "4.1.1", "3.9": "3.9.2"}

#: Written in a jar folder after a successful fetch; lists the jar names.
MARKER = ".complete"

_HOME_ENV = "GATEWAY_DEVKAFKA_HOME"
_JAVA_HINT = "Debian: apt-get install openjdk-17-jre-headless"


class DevKafkaError(Exception):
    """
    A development broker could not be fetched, started or stopped.

    The message is meant for a human: the command line prints it as is.
    """


def resolveVersion(version):
    """
    Turn a short name (``"4"``, ``"3.9"``) or a full version into a full one.

    :param version: ``"4"``, ``"3.9"`` or a full ``X.Y.Z`` Kafka version.
    :return: the full version, e.g. ``"4.1.1"``.
    :raises DevKafkaError: for anything else.
    """
    version = str(version).strip()
    if version in VERSIONS:
        return VERSIONS[version]
    if re.fullmatch(r"[34]\.\d+\.\d+", version):
        return version
    raise DevKafkaError(
        f"unknown Kafka version {version!r}: use 4, 3.9 or a full 3.x/4.x version "
        f"(pinned: {', '.join(f'{k}={v}' for k, v in VERSIONS.items())})"
    )


def defaultHome():
    """
    The cache folder: ``$GATEWAY_DEVKAFKA_HOME`` or ``./.devkafka``.

    :return: an absolute path (it need not exist yet).
    """
    return Path(os.environ.get(_HOME_ENV) or ".devkafka").absolute()


def jarDir(home, version):
    """
    Where the jars of one Kafka version live.

    :param home: the cache folder.
    :param version: a full Kafka version.
    """
    return Path(home) / "jars" / version


def jarsComplete(folder):
    """
    Tell whether a jar folder holds a whole, successful fetch.

    :param folder: a folder from :func:`jarDir`.
    """
    marker = Path(folder) / MARKER
    try:
        names = marker.read_text().split()
    except OSError:
        return False
    return bool(names) and all((Path(folder) / n).is_file() for n in names)


def javaMajor(java):
    """
    The major version of a ``java`` executable (8 for ``1.8.0_x``).

    :param java: path of the executable.
    :return: an int, or ``None`` if it cannot be told.
    """
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def findJava(version):
    """
    Find a ``java`` new enough for a Kafka version (17 for 4.x, 11 for 3.x).

    ``$JAVA_HOME/bin/java`` wins over ``PATH``, as in Kafka's own scripts.

    :param version: a full Kafka version.
    :return: the path of the executable.
    :raises DevKafkaError: if there is none, or it is too old.
    """
    needed = 17 if version.startswith("4.") else 11
    kafka = f"Kafka {version.split('.')[0]}"
    javaHome = os.environ.get("JAVA_HOME")
    java = None
    if javaHome and os.access(os.path.join(javaHome, "bin", "java"), os.X_OK):
        java = os.path.join(javaHome, "bin", "java")
    else:
        java = shutil.which("java")
    if java is None:
        raise DevKafkaError(f"java not found on PATH; {kafka} needs Java {needed}+ ({_JAVA_HINT})")
    major = javaMajor(java)
    if major is not None and major < needed:
        raise DevKafkaError(f"{java} is Java {major}; {kafka} needs Java {needed}+ ({_JAVA_HINT})")
    return java


def _profile(version):
    return "kafka-4" if version.startswith("4.") else "kafka-3"


def fetchJars(home, version, log=None):
    """
    Download a Kafka broker's runtime jars with Maven unless already cached.

    The fetch goes to a temporary sibling folder renamed into place at the
    end, so an interrupted or concurrent fetch never leaves a half folder.

    :param home: the cache folder.
    :param version: a full Kafka version.
    :param log: called with one progress line (a str), or ``None``.
    :return: the jar folder.
    :raises DevKafkaError: if ``mvn`` is missing or fails.
    """
    target = jarDir(home, version)
    if jarsComplete(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevKafkaError(
            "mvn not found on PATH; it fetches the Kafka jars from Maven Central "
            "(Debian: apt-get install maven)"
        )
    findJava(version)  # Maven runs on Java: say so before Maven does.
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        pom = work / "pom.xml"
        pom.write_bytes(resources.files(__package__).joinpath("pom.xml").read_bytes())
        jars = work / "jars"
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "-P",
            _profile(version),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={jars}",
        ]
        if log:
            log(f"fetching Kafka {version} jars with Maven into {target}")
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        names = sorted(p.name for p in jars.glob("*.jar")) if jars.is_dir() else []
        if done.returncode != 0 or not any(n.startswith("kafka_") for n in names):
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
            raise DevKafkaError(
                f"Maven could not fetch Kafka {version} (exit {done.returncode}):\n{tail}"
            )
        (jars / MARKER).write_text("\n".join(names) + "\n")
        try:
            os.rename(jars, target)
        except OSError:
            # Another fetch finished first, or a broken folder is in the way.
            if not jarsComplete(target):
                shutil.rmtree(target, ignore_errors=True)
                os.rename(jars, target)
        if log:
            log(f"fetched {len(names)} jars in {time.monotonic() - started:.1f}s")
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)
