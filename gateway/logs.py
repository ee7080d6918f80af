# -*- test-case-name: tests.test_logs -*-
"""
Log observers for C{twistd --logger}, and a rate limit for floods.

twistd calls the factory named by C{--logger} with no arguments, once, after
the application is built and before the reactor runs, and the observer it
returns replaces C{--logfile} and C{--syslog} (the option takes precedence
over both)::

    twistd -n --logger gateway.logs.jsonObserver gateway ...
    twistd -n --logger gateway.logs.textObserver gateway ...

Both write to standard output, or append to the file named by the
C{GATEWAY_LOG_FILE} environment variable; C{jsonObserver} writes one JSON
object per line (L{twisted.logger.jsonFileLogObserver} with no record
separator), C{textObserver} the lines twistd writes by default.

Both put events from the gateway's own namespaces through a
L{RateLimiter}: at most C{GATEWAY_LOG_RATE} events (10 unless set; 0 turns
the limit off) per second per (namespace, format), so a flood of bad clients
logging the same event over and over cannot flood the log; what it holds back
is counted and summed up in one event per second.
"""

import os
import sys
from collections import Counter

from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogLevel,
    PredicateResult,
    formatEvent,
    jsonFileLogObserver,
    textFileLogObserver,
)
from zope.interface import implementer

__all__ = [
    "OncePerInterval",
    "RateLimiter",
    "jsonObserver",
    "logRate",
    "rateLimited",
    "textObserver",
]

#: The environment variable naming a file to append the log to.
LOG_FILE_ENV = "GATEWAY_LOG_FILE"
#: The environment variable giving the rate limit, in events per second per
#: (namespace, format); 0 turns it off.
LOG_RATE_ENV = "GATEWAY_LOG_RATE"
#: The rate limit when C{GATEWAY_LOG_RATE} is not set.
DEFAULT_RATE = 10
#: The namespaces whose events are rate-limited (each and everything below
#: it).
LIMITED_NAMESPACES = ("gateway", "librdkafka")
#: The format of the summary event.
SUPPRESSED_FORMAT = (
    "suppressed {log_suppressed} similar events in {log_interval} s: {log_suppressed_format}"
)


def _inNamespaces(namespace, prefixes):
    namespace = namespace or ""
    return any(namespace == prefix or namespace.startswith(prefix + ".") for prefix in prefixes)


class _Window:
    """
    One (namespace, format)'s current interval.

    :ivar start: when the interval began.
    :ivar passed: events let through in it.
    :ivar suppressed: events held back in it.
    :ivar summary: the L{IDelayedCall} that will sum up the held back events,
        once there are some.
    :ivar level: the highest level among the held back events.
    """

    __slots__ = ("start", "passed", "suppressed", "summary", "level")

    def __init__(self, start):
        self.start = start
        self.passed = 0
        self.suppressed = 0
        self.summary = None
        self.level = None


@implementer(ILogFilterPredicate)
class RateLimiter:
    """
    A filter predicate letting through at most C{rate} events per
    C{interval} per (namespace, C{log_format}), and summing up the rest.

    The first event of a (namespace, format) opens an interval of
    C{interval} seconds; events of the same pair beyond C{rate} in that
    interval are suppressed and counted. When the interval ends, one summary
    event goes to C{observer}: namespace the same, level the highest
    suppressed one, C{log_format} L{SUPPRESSED_FORMAT}, with the fields
    C{log_suppressed} (how many), C{log_suppressed_format} (their format) and
    C{log_interval}. Intervals with nothing suppressed cost no timer.

    :ivar suppressedTotal: events suppressed since this limiter was made.
    """

    def __init__(
        self, observer, clock, rate=DEFAULT_RATE, interval=1.0, namespaces=LIMITED_NAMESPACES
    ):
        """
        :param observer: the L{twisted.logger.ILogObserver} that receives the
            summary events (the one the filter passes events on to).
        :param clock: an L{twisted.internet.interfaces.IReactorTime}.
        :param rate: events let through per interval per key; C{0} lets
            everything through.
        :param interval: the interval, in seconds.
        :param namespaces: the namespaces limited (each and everything below
            it); events from other namespaces always pass.
        """
        if rate < 0:
            raise ValueError(f"rate must be 0 (no limit) or more, not {rate!r}")
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.observer = observer
        self.clock = clock
        self.rate = rate
        self.interval = interval
        self.namespaces = tuple(namespaces)
        self.suppressedTotal = 0
        self._windows = {}

    def __call__(self, event):
        """
        Decide whether C{event} is logged.

        :return: L{PredicateResult.no} to suppress it,
            L{PredicateResult.maybe} otherwise (other predicates decide).
        """
        if self.rate == 0:
            return PredicateResult.maybe
        namespace = event.get("log_namespace")
        if not _inNamespaces(namespace, self.namespaces):
            return PredicateResult.maybe
        key = (namespace, event.get("log_format"))
        now = self.clock.seconds()
        window = self._windows.get(key)
        if window is None or (window.summary is None and now - window.start >= self.interval):
            window = self._windows[key] = _Window(now)
        if window.passed < self.rate:
            window.passed += 1
            return PredicateResult.maybe
        window.suppressed += 1
        self.suppressedTotal += 1
        level = event.get("log_level")
        if window.level is None or (level is not None and level > window.level):
            window.level = level
        if window.summary is None:
            delay = max(0.0, window.start + self.interval - now)
            window.summary = self.clock.callLater(delay, self._summarise, key)
        return PredicateResult.no

    def _summarise(self, key):
        window = self._windows.pop(key)
        namespace, format = key
        self.observer(
            {
                "log_namespace": namespace,
                "log_level": window.level or LogLevel.warn,
                "log_time": self.clock.seconds(),
                "log_format": SUPPRESSED_FORMAT,
                "log_suppressed": window.suppressed,
                "log_suppressed_format": format,
                "log_interval": self.interval,
                "log_system": "-",
            }
        )

    def flush(self):
        """
        Sum up what is suppressed now, without waiting for the intervals to
        end (e.g. at shutdown).
        """
        for key, window in list(self._windows.items()):
            if window.summary is not None:
                if window.summary.active():
                    window.summary.cancel()
                self._summarise(key)
        self._windows.clear()


def rateLimited(observer, clock, rate=DEFAULT_RATE, interval=1.0, namespaces=LIMITED_NAMESPACES):
    """
    Wrap C{observer} in a L{FilteringLogObserver} with a L{RateLimiter}.

    :return: the filtering observer; its C{limiter} attribute is the
        L{RateLimiter}.
    :rtype: L{FilteringLogObserver}
    """
    limiter = RateLimiter(observer, clock, rate, interval, namespaces)
    filtering = FilteringLogObserver(observer, [limiter])
    filtering.limiter = limiter
    return filtering


#: Event keys left out of the JSON lines (objects, not data).
_UNPERSISTABLE = frozenset(("log_logger", "log_source"))


@implementer(ILogObserver)
class _WithText:
    """
    Add C{log_text}, the event's formatted message, to a copy of each event
    before C{observer} sees it (other observers keep the original), leaving
    out the emitting L{Logger} and object, which JSON cannot carry.
    """

    def __init__(self, observer):
        self.observer = observer

    def __call__(self, event):
        copy = {k: v for k, v in event.items() if k not in _UNPERSISTABLE}
        copy["log_text"] = formatEvent(event)
        self.observer(copy)


def logRate(environ=None):
    """
    The rate limit the gateway's observers will use, checked before they
    are made (twistd makes them after the service, when a bad value could
    only be a traceback).

    :param environ: the environment (L{os.environ} by default).
    :return: C{GATEWAY_LOG_RATE}, in events per second (0: no limit).
    :raises ValueError: naming the variable, for a value that is not a
        whole number, 0 or more.
    """
    return _rateFromEnvironment(os.environ if environ is None else environ)


def _rateFromEnvironment(environ):
    value = environ.get(LOG_RATE_ENV, "").strip()
    if not value:
        return DEFAULT_RATE
    try:
        rate = int(value)
    except ValueError:
        raise ValueError(
            f"{LOG_RATE_ENV} must be a whole number of events per second "
            f"(0 for no limit), not {value!r}"
        ) from None
    if rate < 0:
        raise ValueError(f"{LOG_RATE_ENV} must be 0 or more, not {rate}")
    return rate


def _outputFile(environ, stdout):
    path = environ.get(LOG_FILE_ENV)
    if path:
        return open(path, "a", buffering=1, encoding="utf-8")
    return stdout


def _clock():
    # The reactor twistd installed (it has, before it asks for the
    # observer); imported here, never at module level.
    from twisted.internet import reactor

    return reactor


def jsonObserver(environ=None, stdout=None, clock=None):
    """
    The JSON-lines observer for C{twistd --logger gateway.logs.jsonObserver}.

    Each event becomes one line: the event's own fields (C{log_namespace},
    C{log_level}, C{log_time}, C{log_format}, and the gateway's fields such as
    C{listener}, C{peer}, C{connection}, C{reason}, C{topic}) plus
    C{log_text}, the formatted message. Gateway events are rate-limited (see
    L{RateLimiter}).

    twistd calls it with no arguments; the parameters are for tests.

    :param environ: the environment (L{os.environ} by default):
        C{GATEWAY_LOG_FILE} and C{GATEWAY_LOG_RATE}.
    :param stdout: the default output (L{sys.stdout} by default).
    :param clock: an L{twisted.internet.interfaces.IReactorTime} (the global
        reactor by default).
    :rtype: L{twisted.logger.ILogObserver}
    """
    environ = os.environ if environ is None else environ
    output = _outputFile(environ, sys.stdout if stdout is None else stdout)
    observer = _WithText(jsonFileLogObserver(output, recordSeparator=""))
    return _limit(observer, environ, clock)


def textObserver(environ=None, stdout=None, clock=None):
    """
    The text observer for C{twistd --logger gateway.logs.textObserver}:
    twistd's usual lines, with gateway events rate-limited as in
    L{jsonObserver} (whose parameters it takes).

    :rtype: L{twisted.logger.ILogObserver}
    """
    environ = os.environ if environ is None else environ
    output = _outputFile(environ, sys.stdout if stdout is None else stdout)
    return _limit(textFileLogObserver(output), environ, clock)


def _limit(observer, environ, clock):
    rate = _rateFromEnvironment(environ)
    clock = _clock() if clock is None else clock
    filtering = rateLimited(observer, clock, rate)
    if hasattr(clock, "addSystemEventTrigger"):
        # Sum up what is still held back once the gateway has stopped,
        # before twistd removes the observer.
        clock.addSystemEventTrigger("after", "shutdown", filtering.limiter.flush)
    return filtering


class OncePerInterval:
    """
    Count events and let one log line through per interval, which then
    reports the counts since the last line: a flood of refusals is one line
    every few seconds, not one per connection.
    """

    def __init__(self, clock, interval=10.0):
        """
        :param clock: an L{twisted.internet.interfaces.IReactorTime}.
        :param interval: seconds between lines at most.
        """
        self.clock = clock
        self.interval = interval
        self.counts = Counter()
        self._last = None

    def event(self, kind):
        """
        Count one event.

        :return: the counts to report now (L{Counter}), or L{None} when a
            line was logged less than an interval ago.
        """
        self.counts[kind] += 1
        now = self.clock.seconds()
        if self._last is not None and now - self._last < self.interval:
            return None
        self._last = now
        counts, self.counts = self.counts, Counter()
        return counts
