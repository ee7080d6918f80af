# -*- test-case-name: tests.server.test_policy -*-
"""
Connection policy: the per-listener options that bound what clients can
hold (caps, timeouts, TCP keepalive, backlog); L{gateway.server.gate}
applies the caps and L{gateway.server.hygiene} the timers.

A connection over C{max-connections} or C{max-per-address} is accepted and
closed at once, counted as refused (C{gateway_connections_refused_total})
and logged once per interval: a client, or the load balancer in front,
learns at once that this gateway is full and can go elsewhere, instead of
waiting in the backlog.  Running out of descriptors is different (see
L{gateway.server.descriptors}): the gateway stops accepting and connections wait in
the backlog until descriptors free up.
"""

import ipaddress
import socket
from dataclasses import dataclass

from gateway.compat.twisted import listeningSocket
from gateway.framing.options import (
    FramingOption,
    OptionError,
    boolean,
    integer,
)
from gateway.routing import keyStrategy, topicTemplate

__all__ = [
    "CONNECTION_OPTIONS",
    "ROUTING_OPTIONS",
    "ConnectionPolicy",
    "ALLOW",
    "DEFAULT_BACKLOG",
    "FRAME_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_AGE",
    "MAX_CONNECTIONS",
    "MAX_PER_ADDRESS",
    "NOT_ALLOWED",
    "configurePort",
    "splitOptions",
]

#: Refusal and closing reasons, as counted and logged.
MAX_CONNECTIONS = "max-connections"
MAX_PER_ADDRESS = "max-per-address"
IDLE_TIMEOUT = "idle-timeout"
MAX_AGE = "max-age"
FRAME_TIMEOUT = "frame-timeout"
#: The option naming the client addresses a listener admits, and the reason
#: a connection from any other address is refused for.
ALLOW = "allow"
NOT_ALLOWED = "not-allowed"

#: The listen backlog unless the endpoint or the listener says otherwise
#: (Twisted's own default is 50, too few for thousands of clients
#: reconnecting at once, and 1024 still drops SYNs under connection churn:
#: 4096 took one process from 1,260 to 2,767 connections/s in
#: bench/churn.py; the kernel caps it at C{net.core.somaxconn}).
DEFAULT_BACKLOG = 4096


def seconds(value):
    """
    A positive duration in seconds.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return number


def networks(value):
    """
    CIDR ranges separated by C{;} (C{10.0.0.0/8;192.168.1.0/24;::1}); a
    bare address is a range of one.
    """
    if isinstance(value, (tuple, list)):
        given = list(value)
    else:
        given = [part.strip() for part in str(value).split(";") if part.strip()]
    if not given:
        raise ValueError("must name at least one CIDR range")
    ranges = []
    for part in given:
        try:
            ranges.append(ipaddress.ip_network(part, strict=False))
        except ValueError as e:
            raise ValueError(f"{part!r} is not a CIDR range ({e})") from None
    return tuple(ranges)


#: Options every listener takes besides its framing's and C{max-size}.
CONNECTION_OPTIONS = (
    FramingOption(
        MAX_CONNECTIONS,
        integer(minimum=1),
        None,
        "connections open at once on this listener at most; more "
        "are closed at once and counted as refused",
        "count",
    ),
    FramingOption(
        MAX_PER_ADDRESS,
        integer(minimum=1),
        None,
        "connections open at once from one client address at most "
        "(the PROXY header's address behind haproxy:)",
        "count",
    ),
    FramingOption(
        IDLE_TIMEOUT,
        seconds,
        None,
        "close a connection that sends nothing for this long "
        "(never while the gateway itself pauses it)",
        "seconds",
    ),
    FramingOption(
        MAX_AGE, seconds, None, "close a connection this long after it opened", "seconds"
    ),
    FramingOption(
        "keepalive",
        boolean,
        True,
        "TCP keepalive on client connections, so dead peers are found and their descriptors freed",
        "true|false",
    ),
    FramingOption(
        "keepalive-idle",
        integer(minimum=1, maximum=32767),
        60,
        "seconds of silence before the first keepalive probe (TCP_KEEPIDLE)",
        "seconds",
    ),
    FramingOption(
        "keepalive-interval",
        integer(minimum=1, maximum=32767),
        15,
        "seconds between keepalive probes (TCP_KEEPINTVL)",
        "seconds",
    ),
    FramingOption(
        "keepalive-count",
        integer(minimum=1, maximum=127),
        4,
        "unanswered probes before the connection is dropped (TCP_KEEPCNT)",
        "count",
    ),
    FramingOption(
        "backlog",
        integer(minimum=1),
        None,
        "listen backlog: connections the kernel completes before "
        f"the gateway accepts them (default {DEFAULT_BACKLOG}, or "
        "the endpoint's backlog=)",
        "count",
    ),
    FramingOption(
        FRAME_TIMEOUT,
        seconds,
        None,
        "close a connection whose frame is not complete this long after its "
        "first byte (never while the gateway itself pauses it)",
        "seconds",
    ),
    FramingOption(
        ALLOW,
        networks,
        None,
        "admit only clients from these ranges (the PROXY header's address "
        "behind haproxy:); others are closed at once and counted as refused",
        "CIDR;CIDR...",
    ),
    FramingOption(
        "topic",
        topicTemplate,
        None,
        "this listener's Kafka topic, or a template resolved once per "
        "connection with {listener}, {peer_host}, {peer_port}, "
        "{client_cert_cn} (TLS), {session} (ack=on) (default: --topic)",
        "topic",
    ),
    FramingOption(
        "key",
        keyStrategy,
        "connection",
        "record key: connection (one partition per connection), peer-host "
        "(per client host), session (ack=on's session; its default) or none "
        "(sticky partitioner)",
        "connection|peer-host|session|none",
    ),
    FramingOption(
        "routing",
        str,
        None,
        "a routing plugin's name or package.module:Name, choosing topic, "
        "key and headers per connection (or per message)",
        "plugin",
    ),
)

#: The options that route records rather than police connections.
ROUTING_OPTIONS = ("topic", "key", "routing")

_DECLARED = {option.name: option for option in CONNECTION_OPTIONS}


def splitOptions(given):
    """
    Separate a listener's connection options from its framing's options.

    :param given: option name to value, as given for the listener.
    :return: C{(framingOptions, connectionOptions)}, two L{dict}s.
    """
    framing, connection = {}, {}
    for name, value in given.items():
        (connection if name in _DECLARED else framing)[name] = value
    return framing, connection


@dataclass(frozen=True)
class ConnectionPolicy:
    """
    One listener's connection hygiene; L{None} means no limit.

    :ivar maxConnections: connections open at once at most.
    :ivar maxPerAddress: connections from one client address at most.
    :ivar idleTimeout: seconds a connection may send nothing.
    :ivar maxAge: seconds a connection may stay open.
    :ivar keepalive: whether accepted sockets use TCP keepalive.
    :ivar keepaliveIdle: C{TCP_KEEPIDLE}, seconds.
    :ivar keepaliveInterval: C{TCP_KEEPINTVL}, seconds.
    :ivar keepaliveCount: C{TCP_KEEPCNT}.
    :ivar backlog: the listen backlog to set, or L{None} to keep the
        endpoint's.
    :ivar frameTimeout: seconds a frame may take to complete, from its
        first byte.
    :ivar allow: the L{ipaddress} networks clients may connect from, or
        L{None} for any.
    """

    maxConnections: int = None
    maxPerAddress: int = None
    idleTimeout: float = None
    maxAge: float = None
    keepalive: bool = True
    keepaliveIdle: int = 60
    keepaliveInterval: int = 15
    keepaliveCount: int = 4
    backlog: int = DEFAULT_BACKLOG
    frameTimeout: float = None
    allow: tuple = None

    @classmethod
    def fromOptions(cls, given, endpoint=""):
        """
        Check and coerce a listener's connection options.

        :param given: connection option name to value (written L{str} or a
            Python value).
        :param endpoint: the listener's endpoint description: its own
            C{backlog=} is kept unless C{backlog} is given here too, which
            is an error.
        :raises OptionError: naming the option.
        """
        values = {}
        for name, option in _DECLARED.items():
            if name not in given or given[name] is None:
                values[name] = option.default
                continue
            try:
                values[name] = option.coerce(given[name])
            except (TypeError, ValueError) as e:
                raise OptionError(f"listener option {name}={given[name]!r}: {e}") from e
        unknown = sorted(set(given) - set(_DECLARED))
        if unknown:
            raise OptionError(f"no connection option {unknown[0]!r}")
        endpointBacklog = "backlog=" in endpoint
        if endpointBacklog and values["backlog"] is not None:
            raise OptionError(
                "backlog is given both as a listener option and in the "
                f"endpoint {endpoint!r}; give it once"
            )
        if values["backlog"] is None and not endpointBacklog:
            values["backlog"] = DEFAULT_BACKLOG
        return cls(
            maxConnections=values[MAX_CONNECTIONS],
            maxPerAddress=values[MAX_PER_ADDRESS],
            idleTimeout=values[IDLE_TIMEOUT],
            maxAge=values[MAX_AGE],
            keepalive=values["keepalive"],
            keepaliveIdle=values["keepalive-idle"],
            keepaliveInterval=values["keepalive-interval"],
            keepaliveCount=values["keepalive-count"],
            backlog=values["backlog"],
            frameTimeout=values[FRAME_TIMEOUT],
            allow=values[ALLOW],
        )

    def allows(self, host):
        """
        Whether a client address may connect (see C{allow}).

        :param host: the client's address without the port; an IPv4
            address mapped into IPv6 (a C{tcp6:} listener's IPv4 client) is
            matched as IPv4, and what is not an IP address (a UNIX socket's
            peer) never matches a range.
        :rtype: L{bool}
        """
        if self.allow is None:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except (AttributeError, ValueError):
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        return any(address in network for network in self.allow)


def configurePort(port, policy):
    """
    Apply the backlog and keepalive settings to a bound listening socket.

    Linux copies a listening socket's keepalive settings to every socket it
    accepts, so setting them once here costs nothing per connection.

    :param port: the L{twisted.internet.interfaces.IListeningPort}; ports
        without a TCP socket (e.g. UNIX) are left alone.
    :param policy: the listener's L{ConnectionPolicy}.
    :return: the options applied, by name, for the log.
    :rtype: L{dict}
    """
    skt = listeningSocket(port)
    if skt is None or skt.family not in (socket.AF_INET, socket.AF_INET6):
        return {}
    applied = {}
    if policy.backlog is not None:
        skt.listen(policy.backlog)
        applied["backlog"] = policy.backlog
    skt.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(policy.keepalive))
    applied["keepalive"] = policy.keepalive
    if policy.keepalive:
        for option, value in (
            ("TCP_KEEPIDLE", policy.keepaliveIdle),
            ("TCP_KEEPINTVL", policy.keepaliveInterval),
            ("TCP_KEEPCNT", policy.keepaliveCount),
        ):
            if hasattr(socket, option):
                skt.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
                applied[option] = value
    return applied
