# -*- test-case-name: tests.server.test_incomplete -*-
"""
The cap on bytes of incomplete frames, all connections together.

Those bytes are not in the byte budget (L{gateway.router}): pausing clients
cannot bring them down, since a paused client cannot complete its frame, so
clients sending frames they never finish would pause every client for good.
One connection holds at most one frame in progress, which the message size
limit bounds (each framing enforces it); this caps the total.  Over the cap,
the connections holding the most incomplete bytes are closed (reason
C{incomplete-cap}) until the total is under it again, and logged as one line
per interval.
"""

from twisted.logger import Logger

from gateway.logs import OncePerInterval

__all__ = ["INCOMPLETE_CAP", "IncompleteCap", "defaultCap"]

#: The reason a connection is closed for: counted in the listener's
#: C{closedBy} (C{gateway_connections_timed_out}).
INCOMPLETE_CAP = "incomplete-cap"


def defaultCap(budget):
    """
    The cap when none is given: half the byte budget, so the gateway holds
    at most 1.5 x C{--budget} of client bytes (what Kafka has not
    confirmed, and frames in progress).

    :param budget: the byte budget.
    :rtype: L{int}
    """
    return budget // 2


class IncompleteCap:
    """
    Check the bytes of incomplete frames held by every connection against
    the cap, and close the biggest holders when over it.

    :ivar cap: bytes of incomplete frames held at most.
    :ivar lastBytes: the total at the last check.
    :ivar closed: connections closed over the cap, in all.
    """

    log = Logger()

    def __init__(self, budget, cap=None, clock=None, interval=10.0):
        """
        :param budget: the byte budget (for the default cap).
        :param cap: bytes of incomplete frames held at most (L{None}:
            L{defaultCap}).
        :param clock: an L{twisted.internet.interfaces.IReactorTime} for
            the log's rate limit (the global reactor when L{None}).
        :param interval: seconds between log lines at most.
        """
        self.cap = defaultCap(budget) if cap is None else cap
        self.lastBytes = 0
        self.closed = 0
        self.clock = clock
        self.interval = interval
        self._lines = None
        self._unlogged = 0

    def check(self, clients):
        """
        Sum the bytes of incomplete frames; over the cap, close the
        connections holding the most until the rest is within it, and log
        that as one line.

        :param clients: the open connections' protocols, each with
            C{bufferedByteCount()} and C{abandon(reason)} (see
            L{gateway.framing.base.FramingProtocol}).
        :return: how many connections were closed.
        """
        total = self.lastBytes = sum(client.bufferedByteCount() for client in clients)
        if total <= self.cap:
            return 0
        holders = sorted(
            ((client.bufferedByteCount(), client) for client in clients),
            key=lambda holder: holder[0],
            reverse=True,
        )
        closing = []
        left = total
        for held, client in holders:
            if left <= self.cap or not held:
                break
            closing.append((held, client))
            left -= held
        for _, client in closing:
            client.abandon(INCOMPLETE_CAP)
        self.lastBytes = left
        self.closed += len(closing)
        self._unlogged += len(closing)
        rounds = self._rateLimit().event(INCOMPLETE_CAP)
        if rounds is not None:
            self.log.warn(
                "closing {count} client connections holding the most bytes of "
                "incomplete frames ({dropped} bytes; the largest {largest}): "
                "{total} bytes held, over the {cap}-byte cap ({reason}); "
                "{since} closed in {rounds} rounds since the last such line",
                count=len(closing),
                dropped=total - left,
                largest=closing[0][0],
                total=total,
                cap=self.cap,
                reason=INCOMPLETE_CAP,
                since=self._unlogged,
                rounds=rounds[INCOMPLETE_CAP],
            )
            self._unlogged = 0
        return len(closing)

    def _rateLimit(self):
        if self._lines is None:
            clock = self.clock
            if clock is None:
                from twisted.internet import reactor as clock
            self._lines = OncePerInterval(clock, self.interval)
        return self._lines
