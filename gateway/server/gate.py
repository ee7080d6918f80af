# -*- test-case-name: tests.server.test_gate -*-
"""
The gate of one listener: admits connections from the addresses it allows
and under its caps, counts what it refuses and closes, and logs a flood of
refusals as one line per interval.
"""

from collections import Counter

from twisted.logger import Logger

from gateway.logs import OncePerInterval
from gateway.server.policy import MAX_CONNECTIONS, MAX_PER_ADDRESS, NOT_ALLOWED

__all__ = ["ListenerGate"]


class ListenerGate:
    """
    Apply one listener's connection caps and count what it refuses and
    closes.

    :ivar policy: the L{ConnectionPolicy}.
    :ivar admitted: connections admitted and not yet closed.
    """

    log = Logger()

    def __init__(self, name, policy, stats, clock, interval=10.0):
        """
        :param name: the listener's name.
        :param policy: its L{ConnectionPolicy}.
        :param stats: its L{gateway.server.listener.ListenerStats}.
        :param clock: an L{twisted.internet.interfaces.IReactorTime}.
        :param interval: seconds between refusal log lines at most.
        """
        self.name = name
        self.policy = policy
        self.stats = stats
        self.admitted = 0
        self._perAddress = Counter() if policy.maxPerAddress else None
        self._refusals = OncePerInterval(clock, interval)
        self._closings = OncePerInterval(clock, interval)

    def admit(self, host, peer):
        """
        Decide whether a new connection may stay.

        :param host: the client's address without the port (checked
            against C{allow}, and the per-address cap's key).
        :param peer: C{host:port}, for the log.
        :return: L{True} if admitted (call L{release} when it closes), or
            L{False} after counting and logging the refusal: close it.
        """
        policy = self.policy
        if policy.allow is not None and not policy.allows(host):
            return self.refuse(NOT_ALLOWED, None, peer)
        if policy.maxConnections is not None and self.admitted >= policy.maxConnections:
            return self.refuse(MAX_CONNECTIONS, policy.maxConnections, peer)
        perAddress = self._perAddress
        if perAddress is not None:
            if perAddress[host] >= policy.maxPerAddress:
                return self.refuse(MAX_PER_ADDRESS, policy.maxPerAddress, peer)
            perAddress[host] += 1
        self.admitted += 1
        return True

    def release(self, host):
        """
        An admitted connection closed.
        """
        self.admitted -= 1
        perAddress = self._perAddress
        if perAddress is not None:
            left = perAddress[host] - 1
            if left > 0:
                perAddress[host] = left
            else:
                del perAddress[host]

    def closing(self, reason, peer, after, counted=False):
        """
        The gateway closes a connection for C{reason} (L{IDLE_TIMEOUT},
        L{MAX_AGE} or L{FRAME_TIMEOUT}): count it, and log once per
        interval.

        :param after: the limit in seconds, for the log.
        :param counted: whether it is already counted (by the framing's
            C{abandon}).
        """
        if not counted:
            self.stats.closedBy[reason] += 1
        counts = self._closings.event(reason)
        if counts is not None:
            self.log.info(
                "{listener}: closing {peer} ({reason}, {after:g} s); "
                "{summary} since the last such line",
                listener=self.name,
                peer=peer,
                reason=reason,
                after=after,
                summary=_summary(counts),
            )

    def refuse(self, reason, limit, peer):
        """
        Count and log (once per interval) a connection refused for
        C{reason} at C{limit}.

        :param limit: the cap reached, or L{None} for a refusal that is not
            a cap's (L{NOT_ALLOWED}).
        :return: L{False}.
        """
        self.stats.refused[reason] += 1
        counts = self._refusals.event(reason)
        if counts is not None:
            self.log.warn(
                "{listener}: refused {peer}: {why} ({open} open); {summary} "
                "since the last such line",
                listener=self.name,
                peer=peer,
                reason=reason,
                limit=limit,
                why=f"{reason} {limit} reached" if limit is not None else reason,
                open=self.admitted,
                summary=_summary(counts),
            )
        return False


def _summary(counts):
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
