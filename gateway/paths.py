# -*- test-case-name: tests.test_paths -*-
"""
Whether the gateway can write where it was told to: the spool, the
dead-letter file, a C{unix:} socket, the log file.

Checked at start, so that a typo is one line and exit status 1 before
anything listens, rather than a stop that cannot keep its records; and
again at run time (the producer asks), because a directory can be removed
or a disk fill up later.
"""

import errno
import os

__all__ = [
    "directoryProblem",
    "fileProblem",
    "freeSpaceProblem",
    "logFilePath",
    "logFileProblem",
    "unixSocketPath",
]

#: Free bytes under which a file system counts as full (one block).
FULL = 4096


def directoryProblem(directory, access=os.access):
    """
    Why files cannot be created in C{directory}, if they cannot.

    :param directory: the directory (C{""} is the working directory).
    :param access: L{os.access} (a test can say what the kernel would).
    :return: the reason, or L{None} when files can be created there.
    """
    directory = directory or "."
    if not os.path.exists(directory):
        return f"directory {directory} does not exist"
    if not os.path.isdir(directory):
        return f"{directory} is not a directory"
    if _readOnly(directory):
        return f"directory {directory} is on a read-only file system"
    if not access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    return None


def fileProblem(path, access=os.access):
    """
    Why the file C{path} cannot be created or appended to, if it cannot.

    :param path: the file's path.
    :param access: L{os.access} (a test can say what the kernel would).
    :return: the reason, or L{None} when it can be written.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return f"{path} is a directory"
    if os.path.exists(path) and not access(path, os.W_OK):
        return f"{path} is not writable"
    return directoryProblem(os.path.dirname(path), access)


def freeSpaceProblem(path, statvfs=os.statvfs):
    """
    Whether the file system a file would be written to is full.

    :param path: the file's path.
    :param statvfs: L{os.statvfs} (a test can say what the kernel would).
    :return: the reason, or L{None} (also when its directory is gone:
        L{fileProblem} says that).
    """
    try:
        stat = statvfs(os.path.dirname(os.fspath(path)) or ".")
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    if free < FULL:
        return f"no space left ({free} bytes free)"
    return None


def unixSocketPath(description):
    """
    The file a C{unix:} server endpoint binds, or L{None}: for another kind
    of endpoint, or an abstract-namespace socket (C{unix:@name}) which is
    no file.

    :param description: a server endpoint description already parsed
        once (see L{gateway.settings.checkEndpoint}).
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    if not description.strip().lower().startswith("unix:"):
        return None
    reactor = MemoryReactor()
    serverFromString(reactor, description).listen(None)
    (address, *_) = reactor.unixServers[0]
    if isinstance(address, bytes):
        address = os.fsdecode(address)
    if address.startswith(("@", "\0")):
        return None
    return address


def logFilePath(twistdOptions):
    """
    The log file twistd will open, if it will open one.

    :param twistdOptions: twistd's own options (the gateway's options'
        C{parent}), or L{None} when the gateway's options stand alone.
    :return: its path, or L{None} (no twistd, syslog, standard output).
    """
    if twistdOptions is None or twistdOptions.get("syslog"):
        return None
    path = twistdOptions.get("logfile")
    if path == "-" or (twistdOptions.get("nodaemon") and not path):
        return None
    return path or "twistd.log"


def logFileProblem(twistdOptions, access=os.access):
    """
    Why twistd could not open its log file, if it could not: twistd itself
    would raise a traceback when it opens it.

    :param twistdOptions: see L{logFilePath}.
    :return: a message naming C{--logfile} and the path, or L{None}.
    """
    path = logFilePath(twistdOptions)
    problem = None if path is None else fileProblem(path, access)
    return None if problem is None else f"--logfile {path}: cannot write there: {problem}"


def _readOnly(directory):
    """
    Whether C{directory}'s file system is mounted read-only (checked first:
    L{os.access} only says "not writable").
    """
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError as e:  # pragma: no cover - statvfs on an existing directory
        return e.errno == errno.EROFS
