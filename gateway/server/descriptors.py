# -*- test-case-name: tests.server.test_descriptors -*-
"""
File descriptors: every client connection holds one, and so do Kafka, the
health probes, HTTP requests, logs and the spool.  The process limit
(C{RLIMIT_NOFILE}), not the 65,535 ports, is what bounds the clients one
process holds.

At start the gateway raises its soft limit to the hard one
(L{raiseDescriptorLimit}).  L{DescriptorGuard} then keeps a reserve of
descriptors for the gateway's own needs: when the client connections would
eat into it, every listener stops accepting (new connections wait in the
kernel's backlog) and accepts again as soon as a connection closes.  Each
listener accepts at most L{DescriptorGuard.room} connections per read of
its listening socket (L{gateway.server.listener}), so none waiting in the
backlog is closed for want of room; a connection over the room anyway is
closed at once, counted as refused (C{descriptors}).

If C{accept} fails anyway, the guard logs it once per interval and keeps
the connections it has.  At this process's limit (C{EMFILE}: descriptors
taken by something other than clients), Twisted closes the connections it
could not accept; the guard lowers the room for clients to what is open,
less the reserve, so later clients wait in the backlog instead, and
recounts every few seconds until the room is back.  For C{ENFILE} (the
whole system is out), C{ENOBUFS} or C{ENOMEM}, nothing is accepted and the
listening socket stays readable, so accepting stops for a second at a time
rather than spinning the reactor.
"""

import os
import resource

from twisted.logger import Logger, globalLogPublisher

from gateway.compat.twisted import ACCEPT_FAILED_FORMAT, EMFILE_RECOVERY_FORMAT
from gateway.logs import OncePerInterval

__all__ = [
    "ACCEPT_ERROR",
    "DEFAULT_RESERVE",
    "DESCRIPTORS",
    "DescriptorGuard",
    "openDescriptors",
    "raiseDescriptorLimit",
]

#: Why listeners stop accepting when the descriptor room is full, and why
#: a connection over it is refused.
DESCRIPTORS = "descriptors"

#: Descriptors kept for Kafka, health probes, HTTP, logs and the spool.
DEFAULT_RESERVE = 64

#: Why listeners stop accepting, as L{gateway.server.listener.ListenerService}
#: records it (L{DESCRIPTORS} is also why a connection over the room is
#: refused).
ACCEPT_ERROR = "accept-error"

#: Twisted's log formats for a failed C{accept} (C{twisted.internet.tcp}):
#: at the process's limit, where it frees its reserved descriptor to accept
#: and close what it cannot serve, and for the other errors.
_EMFILE_RECOVERY = EMFILE_RECOVERY_FORMAT
_ACCEPT_FAILURES = (EMFILE_RECOVERY_FORMAT, ACCEPT_FAILED_FORMAT)

#: Seconds between recounts of the descriptors in use after the limit was
#: hit, until room for clients is back.
RECOUNT_INTERVAL = 10.0

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
                log.warn(
                    "could not raise the descriptor limit from {soft} to {hard}: {error}",
                    soft=soft,
                    hard=hard,
                    error=e,
                )
    log.info(
        "descriptor limit (RLIMIT_NOFILE): soft {soft}, hard {hard}{raised}",
        soft=now,
        hard=_limitText(hard),
        before=soft,
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

    def __init__(
        self,
        listeners,
        clock,
        reserve=DEFAULT_RESERVE,
        interval=10.0,
        publisher=globalLogPublisher,
    ):
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
        self._recount = None

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
            limit=_limitText(limit),
            inUse=inUse,
            reserve=self.reserve,
        )
        self._publisher.addObserver(self._watch)

    def stop(self):
        """
        Stop watching; cancel pending timers.
        """
        self._publisher.removeObserver(self._watch)
        for call in (self._retry, self._recount):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._recount = None

    def opened(self):
        """
        A client connection was accepted.

        :return: L{False} if it is over the room: close it.  (Listeners fit
            each accept batch to L{room}, so only a port accepting without
            batches could overshoot.)
        """
        self.open += 1
        if self.capacity is None or self.open < self.capacity:
            return True
        if not self.full:
            self._stopAccepting()
        return self.open <= self.capacity

    @property
    def room(self):
        """
        Client connections that fit now, every listener together: L{None}
        when unlimited.
        """
        if self.capacity is None:
            return None
        return max(self.capacity - self.open, 0)

    def stopAccepting(self):
        """
        Stop every listener accepting until connections close, as when a
        connection fills the room (once: nothing if they are stopped).
        """
        if not self.full:
            self._stopAccepting()

    def closed(self):
        """
        A client connection closed: accept again if that made room.
        """
        self.open -= 1
        if self.full and self.open < self.capacity:
            self._resume()

    def _resume(self):
        """
        Accept again (each listener fits its accept batches to L{room}).
        """
        self.full = False
        for listener in self.listeners:
            listener.resumeAccepting(DESCRIPTORS)

    def _stopAccepting(self):
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
                open=self.open,
                limit=self.limit,
                reserve=self.reserve,
                times=counts[DESCRIPTORS],
            )

    def _watch(self, event):
        text = event.get("log_format") or ""
        if not text.startswith(_ACCEPT_FAILURES):
            return
        error = event.get("acceptError", "EMFILE")
        if error not in _OUT_OF_RESOURCES:
            return  # e.g. ECONNABORTED: the client gave up, nothing to do
        self.acceptErrors += 1
        if text.startswith(_EMFILE_RECOVERY):
            self._atLimit()
            return
        # ENFILE, ENOBUFS, ENOMEM: nothing was accepted and the socket stays
        # readable; without a pause the reactor would spin on it.
        for listener in self.listeners:
            listener.pauseAccepting(ACCEPT_ERROR)
        if self._retry is None or not self._retry.active():
            self._retry = self.clock.callLater(1.0, self._acceptAgain)
        self._acceptFailed(error, "accepting again in 1 s")

    def _atLimit(self):
        """
        This process hit its descriptor limit: something other than clients
        took descriptors from the reserve (Twisted closed the connections
        it could not accept).  Fewer clients fit than was worked out at
        start: stop accepting until the reserve is whole again, and recount
        now and then in case those descriptors come back.
        """
        if self.capacity is None or self.limit == resource.RLIM_INFINITY:
            return
        self.capacity = max(min(self.capacity, self.open - self.reserve), 1)
        if self.open >= self.capacity and not self.full:
            self._stopAccepting()
        if self._recount is None or not self._recount.active():
            self._recount = self.clock.callLater(RECOUNT_INTERVAL, self._recountNow)
        self._acceptFailed(
            "EMFILE",
            f"room lowered to {self.capacity} client connections; "
            "new ones wait in the backlog until connections close",
        )

    def _recountNow(self):
        self._recount = None
        inUse = openDescriptors()
        if inUse is None:
            return
        capacity = max(self.limit - (inUse - self.open) - self.reserve, 1)
        if capacity != self.capacity:
            log.info(
                "client connections: room now {capacity} ({inUse} "
                "descriptors in use, {open} of them clients)",
                capacity=capacity,
                inUse=inUse,
                open=self.open,
            )
            self.capacity = capacity
        if self.full and self.open < self.capacity:
            self._resume()
        if self.capacity <= self.open:
            self._recount = self.clock.callLater(RECOUNT_INTERVAL, self._recountNow)

    def _acceptFailed(self, error, then):
        counts = self._acceptWarnings.event(ACCEPT_ERROR)
        if counts is not None:
            log.warn(
                "accept failed: out of descriptors ({error}) with {open} "
                "client connections; open connections keep working; {then} "
                "({times} times since the last such line)",
                error=error,
                open=self.open,
                then=then,
                times=counts[ACCEPT_ERROR],
            )

    def _acceptAgain(self):
        self._retry = None
        for listener in self.listeners:
            listener.resumeAccepting(ACCEPT_ERROR)


def _limitText(limit):
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
