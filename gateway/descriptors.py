# -*- test-case-name: tests.test_descriptors -*-
"""
File descriptors: every client connection holds one, and so do Kafka, the
health probes, HTTP requests, logs and the spool.  The process limit
(C{RLIMIT_NOFILE}), not the 65,535 ports, is what bounds the clients one
process holds.

At start the gateway raises its soft limit to the hard one
(L{raiseDescriptorLimit}).  L{DescriptorGuard} then keeps a reserve of
descriptors for the gateway's own needs: when the client connections would
eat into it, every listener stops accepting (new connections wait in the
kernel's backlog, nothing is refused) and accepts again as soon as a
connection closes.  If C{accept} fails anyway (C{EMFILE}, C{ENFILE}:
descriptors taken by something else), Twisted closes the connection it could
not serve; the guard logs it once per interval and stops accepting for a
second so a full descriptor table does not spin the reactor.
"""

import os
import resource

from twisted.logger import Logger, globalLogPublisher

from gateway.connections import OncePerInterval

__all__ = [
    "ACCEPT_ERROR",
    "DEFAULT_RESERVE",
    "DESCRIPTORS",
    "DescriptorGuard",
    "openDescriptors",
    "raiseDescriptorLimit",
]

#: Descriptors kept for Kafka, health probes, HTTP, logs and the spool.
DEFAULT_RESERVE = 64

#: Why listeners stop accepting, as L{gateway.listener.ListenerService}
#: records it.
DESCRIPTORS = "descriptors"
ACCEPT_ERROR = "accept-error"

#: Twisted's log formats for a failed C{accept} (C{twisted.internet.tcp}).
_ACCEPT_FAILURES = ("EMFILE encountered", "Could not accept new connection")

#: Accept errors that mean the process or system is out of something.
_OUT_OF_RESOURCES = ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")

log = Logger()


def raiseDescriptorLimit(getrlimit=None, setrlimit=None):
    """
    Raise the soft C{RLIMIT_NOFILE} to the hard limit, and log both.

    :return: C{(softBefore, softNow, hard)}.
    """
    getrlimit = getrlimit or resource.getrlimit
    setrlimit = setrlimit or resource.setrlimit
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    now = soft
    if hard == resource.RLIM_INFINITY or soft < hard:
        # An unlimited hard limit cannot be a soft one on Linux (the kernel
        # caps descriptors at fs.nr_open): keep the soft limit then.
        if hard != resource.RLIM_INFINITY:
            try:
                setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                now = hard
            except (OSError, ValueError) as e:
                log.warn("could not raise the descriptor limit from {soft} to "
                         "{hard}: {error}", soft=soft, hard=hard, error=e)
    log.info(
        "descriptor limit (RLIMIT_NOFILE): soft {soft}, hard {hard}"
        "{raised}",
        soft=now, hard=_limitText(hard), before=soft,
        raised=f" (raised from {soft})" if now != soft else "",
    )
    return soft, now, hard


def openDescriptors(directory="/proc/self/fd"):
    """
    :return: the descriptors this process has open now, or L{None} where
        C{/proc} cannot tell.
    """
    try:
        return len(os.listdir(directory))
    except OSError:
        return None


class DescriptorGuard:
    """
    Keep client connections out of the reserved descriptors.

    The listeners' protocols call L{opened} and L{closed} for every
    connection accepted (admitted or not: each holds a descriptor).

    :ivar capacity: client connections that fit: the soft limit, less the
        descriptors open at start, less the reserve.
    :ivar open: client connections open now.
    :ivar full: whether the listeners stopped accepting for lack of
        descriptors.
    """

    def __init__(self, listeners, clock, reserve=DEFAULT_RESERVE,
                 interval=10.0, publisher=globalLogPublisher):
        """
        :param listeners: the listener services (a list the gateway keeps
            adding to), with C{pauseAccepting(reason)} and
            C{resumeAccepting(reason)}.
        :param clock: an L{twisted.internet.interfaces.IReactorTime}.
        :param reserve: descriptors kept for the gateway's own needs.
        :param interval: seconds between warnings at most.
        :param publisher: where Twisted's accept errors are watched for.
        """
        self.listeners = listeners
        self.clock = clock
        self.reserve = reserve
        self.capacity = None
        self.limit = None
        self.open = 0
        self.full = False
        self.acceptErrors = 0
        self._publisher = publisher
        self._fullWarnings = OncePerInterval(clock, interval)
        self._acceptWarnings = OncePerInterval(clock, interval)
        self._retry = None

    def start(self, limit=None, inUse=None):
        """
        Work out the capacity (after the listeners are bound) and start
        watching for accept errors.

        :param limit: the soft descriptor limit (read when L{None}).
        :param inUse: descriptors open now (read when L{None}).
        """
        if limit is None:
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if inUse is None:
            inUse = openDescriptors() or 0
        self.limit = limit
        if limit == resource.RLIM_INFINITY:
            self.capacity = None
        else:
            self.capacity = max(limit - inUse - self.reserve, 1)
        log.info(
            "client connections: room for {capacity} (descriptor limit "
            "{limit}, {inUse} in use at start, {reserve} reserved)",
            capacity=self.capacity if self.capacity is not None else "unlimited",
            limit=_limitText(limit), inUse=inUse, reserve=self.reserve,
        )
        self._publisher.addObserver(self._watch)

    def stop(self):
        """
        Stop watching; cancel a pending retry.
        """
        self._publisher.removeObserver(self._watch)
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def opened(self):
        """
        A client connection was accepted.
        """
        self.open += 1
        if self.capacity is not None and self.open >= self.capacity and not self.full:
            self.full = True
            for listener in self.listeners:
                listener.pauseAccepting(DESCRIPTORS)
            counts = self._fullWarnings.event(DESCRIPTORS)
            if counts is not None:
                log.warn(
                    "descriptor reserve reached: {open} client connections "
                    "(limit {limit}, {reserve} reserved); not accepting until "
                    "connections close, new ones wait in the backlog "
                    "({times} times since the last such line)",
                    open=self.open, limit=self.limit, reserve=self.reserve,
                    times=counts[DESCRIPTORS],
                )

    def closed(self):
        """
        A client connection closed: accept again if that made room.
        """
        self.open -= 1
        if self.full and self.open < self.capacity:
            self.full = False
            for listener in self.listeners:
                listener.resumeAccepting(DESCRIPTORS)

    def _watch(self, event):
        text = event.get("log_format") or ""
        if not text.startswith(_ACCEPT_FAILURES):
            return
        if event.get("acceptError", "EMFILE") not in _OUT_OF_RESOURCES:
            return  # e.g. ECONNABORTED: the client gave up, nothing to do
        self.acceptErrors += 1
        for listener in self.listeners:
            listener.pauseAccepting(ACCEPT_ERROR)
        if self._retry is None or not self._retry.active():
            self._retry = self.clock.callLater(1.0, self._acceptAgain)
        counts = self._acceptWarnings.event(ACCEPT_ERROR)
        if counts is not None:
            log.warn(
                "accept failed: out of descriptors ({detail}); open "
                "connections keep working, accepting again in 1 s "
                "({times} times since the last such line)",
                detail=event.get("acceptError", "EMFILE"),
                times=counts[ACCEPT_ERROR],
            )

    def _acceptAgain(self):
        self._retry = None
        for listener in self.listeners:
            listener.resumeAccepting(ACCEPT_ERROR)


def _limitText(limit):
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
