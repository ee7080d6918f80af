"""
The peers' programs, from Debian's packages, without installing them as
services: C{rsyslog} and C{syslog-ng-core} conflict as packages, so both are
unpacked (C{apt-get download} + C{dpkg -x}) into one folder and run from
there; only their shared libraries, C{kcat} and the allocator the gateway's
launchers preload are installed with C{apt-get}.  Nothing here starts or
configures a system service.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT

#: The packages unpacked into L{home}C{/root}.
UNPACKED = ("rsyslog", "rsyslog-kafka", "syslog-ng-core", "syslog-ng-mod-rdkafka")
#: The Debian package of L{gateway.allocator.PRELOAD}.
MIMALLOC = "libmimalloc2.0"
#: Where they go; C{GATEWAY_PEERS_HOME} moves it (like C{GATEWAY_DEVKAFKA_HOME}).
HOME = Path(os.environ.get("GATEWAY_PEERS_HOME", ROOT / ".peers"))
_DEPENDS = re.compile(r"^\s\s\|?Depends: (lib\S+)$", re.M)
_LOCKED = ("Could not get lock", "Unable to acquire the dpkg frontend lock", "is locked")


def _apt(*args, attempts=60):
    """
    Run C{apt-get} (or C{apt-cache}), waiting while another process holds
    the package manager's lock.

    :return: its standard output.
    """
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for _ in range(attempts):
        done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=HOME)
        if done.returncode == 0:
            return done.stdout
        if not any(word in done.stderr for word in _LOCKED):
            break
        time.sleep(5)
    raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-500:]}")


def _candidate(package):
    out = _apt("apt-cache", "policy", package)
    found = re.search(r"Candidate: (\S+)", out)
    return found and found[1] != "(none)"


def libraryDependencies(dependsOutput, exclude=UNPACKED):
    """
    The libraries that C{apt-cache depends} output names as dependencies,
    without the alternatives it lists under a virtual package.

    :rtype: L{list} of L{str}, sorted, without duplicates
    """
    return sorted({name for name in _DEPENDS.findall(dependsOutput) if name not in exclude})


def ensureInstalled(packages):
    """
    C{apt-get install} the packages not installed yet (refreshing the
    package lists once if one has no candidate).
    """
    missing = [
        p
        for p in packages
        if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
        ).stdout
        != "install ok installed"
    ]
    if not missing:
        return
    HOME.mkdir(parents=True, exist_ok=True)
    if not all(_candidate(p) for p in missing):
        _apt("apt-get", "update", "-q")
    _apt("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing)


def ensureKcat():
    """
    :return: the path of C{kcat}, installed from Debian's package if missing.
    """
    if shutil.which("kcat") is None:
        ensureInstalled(["kcat"])
    return shutil.which("kcat")


def ensureMimalloc():
    """
    Install the allocator the gateway's launchers preload
    (L{gateway.allocator.PRELOAD}), so that the gateway runs as they
    start it.
    """
    ensureInstalled([MIMALLOC])


def ensureMatplotlib():
    """
    Install matplotlib (for the plot) into this virtualenv when missing.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)


def unpackedRoot():
    """
    Unpack rsyslog (with omkafka) and syslog-ng (with kafka-c) once, after
    installing their libraries.

    :return: the folder holding their C{usr/} tree.
    """
    root = HOME / "root"
    stamp = root / ".unpacked"
    if stamp.exists():
        return root
    HOME.mkdir(parents=True, exist_ok=True)
    if not all(_candidate(p) for p in UNPACKED):
        _apt("apt-get", "update", "-q")
    depends = _apt(
        "apt-cache",
        "depends",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
        *UNPACKED,
    )
    ensureInstalled(libraryDependencies(depends))
    debs = HOME / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["apt-get", "download", *UNPACKED], cwd=debs, check=True, env=env, capture_output=True
    )
    shutil.rmtree(root, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    versions = {
        deb.name.split("_")[0]: deb.name.split("_")[1].replace("%3a", ":")
        for deb in debs.glob("*.deb")
    }
    stamp.write_text("".join(f"{k} {v}\n" for k, v in sorted(versions.items())))
    return root


def versions():
    """
    The unpacked packages' versions and the installed C{kcat} and
    C{librdkafka1} (Debian's, used by all three peers).

    :rtype: L{dict}
    """
    out = {}
    stamp = HOME / "root" / ".unpacked"
    if stamp.exists():
        for line in stamp.read_text().splitlines():
            name, version = line.split()
            out[name] = version
    for package in ("kcat", "librdkafka1", MIMALLOC):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
        )
        if done.returncode == 0 and done.stdout:
            out[package] = done.stdout
    return out
