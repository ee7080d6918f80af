# -*- test-case-name: tests.compat.test_twisted -*-
"""
Everything the gateway relies on in Twisted beyond its public API, in one
place.  Each entry names the Twisted version it was checked against
(L{CHECKED}); C{tests/compat/test_twisted.py} checks each against the
installed Twisted and fails when one disappears or changes.
"""

import re

from twisted.plugin import getCache

__all__ = [
    "ACCEPT_FAILED_FORMAT",
    "CHECKED",
    "CLASSIC_LOG_LEVEL",
    "EMFILE_RECOVERY_FORMAT",
    "PROCESS_LINE_FIELD",
    "acceptBatch",
    "beforeEachAcceptBatch",
    "cachedPlugins",
    "listeningSocket",
    "monitoredCount",
    "proxyHeaderRead",
    "setAcceptBatch",
]

#: The Twisted version every entry below was checked against.
CHECKED = "26.10.0"

# twisted.internet.tcp._accept logs these (with the errno's name in the
# field acceptError) when accept() fails; the descriptor guard watches for
# them because Twisted reports the failure no other way.

#: At the process's descriptor limit: Twisted frees its reserved descriptor,
#: accepts and closes what it cannot serve.
EMFILE_RECOVERY_FORMAT = "EMFILE encountered"
#: Any other accept error in tcp._ACCEPT_ERRORS (ENFILE, ENOBUFS, ENOMEM...).
ACCEPT_FAILED_FORMAT = "Could not accept new connection ({acceptError})"


def acceptBatch(port):
    """
    How many connections a Twisted TCP port accepts at its next read of the
    listening socket (C{tcp.Port.numberAccepts}, private: it grows by 20
    after every full batch).

    :return: the number, or L{None} for ports without one (e.g. UNIX).
    """
    return getattr(port, "numberAccepts", None)


def setAcceptBatch(port, count):
    """
    Set how many connections the port accepts at its next read (see
    L{acceptBatch}); ports without batches are left alone.
    """
    if hasattr(port, "numberAccepts"):
        port.numberAccepts = count


def proxyHeaderRead(wrapper):
    """
    Whether Twisted's C{HAProxyProtocolWrapper} has read the PROXY header
    (its private C{_proxyInfo} is set once it has).

    :return: L{True} or L{False}, or L{None} when C{wrapper} is not such a
        wrapper (or the attribute is gone).  A wrapper's own attribute only:
        Twisted's protocol wrappers (TLS) pass unknown names on to their
        transport, which may be the PROXY wrapper.
    """
    if "_proxyInfo" not in getattr(wrapper, "__dict__", ()):
        return None
    return wrapper._proxyInfo is not None


def cachedPlugins(package):
    """
    The plugins of a plugin package without importing their modules, from
    Twisted's plugin cache (C{getCache}: its C{CachedDropin.moduleName},
    C{.plugins} and C{CachedPlugin.name}, C{.provided}, C{.load}).

    :return: C{(moduleName, name, provided, load)} tuples.
    """
    for dropin in getCache(package).values():
        for cached in dropin.plugins:
            yield dropin.moduleName, cached.name, cached.provided, cached.load


def listeningSocket(port):
    """
    The listening socket of a Twisted port (C{tcp.Port.socket}, set by
    C{startListening}: a public name, but not part of C{IListeningPort}).

    :return: the L{socket.socket}, or L{None} for ports without one.
    """
    return getattr(port, "socket", None)


def monitoredCount(monitor):
    """
    How many processes a C{ProcessMonitor} runs (its private C{_processes};
    the public C{processes} is deprecated since Twisted 18.7).
    """
    return len(monitor._processes)


# A worker's output reaches the group's log through ProcessMonitor, which
# logs every line its children write with its own log's info (as
# "[{tag}] {line}"); a worker writes twistd's classic text format, whose
# "[namespace#level]" after the time stamp names the level the worker gave.

#: The field of ProcessMonitor's event holding the line a process wrote.
PROCESS_LINE_FIELD = "line"
#: A line of twistd's classic text log (C{formatEventAsClassicLogText}) at
#: level warn, error or critical; group 1 is the level's name.
CLASSIC_LOG_LEVEL = re.compile(r"^\S+ \[[^\]]*#(warn|error|critical)\]")


# tcp.Port.doRead is one read of the listening socket: it reads
# numberAccepts once, at its start, accepts up to that many connections
# whatever happens during the batch (stopReading does not end it), then
# grows numberAccepts by 20 if the batch was full.  The reactor calls the
# port's doRead attribute, so a wrapper set on the instance runs before each
# batch.


def beforeEachAcceptBatch(port, hook):
    """
    Call C{hook()} before each read of a Twisted TCP (or UNIX) port's
    listening socket, when that read's accept batch (L{acceptBatch}) can
    still be set, by wrapping the port's C{doRead} on the instance.

    :param hook: returns whether to read at all this time (L{False}: accept
        nothing now).
    :return: L{True}, or L{False} for ports without accept batches (left
        alone).
    """
    if acceptBatch(port) is None:
        return False
    read = port.doRead

    def doRead():
        if hook():
            return read()
        return None

    port.doRead = doRead
    return True
