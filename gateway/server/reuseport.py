# -*- test-case-name: tests.server.test_reuseport -*-
"""
The C{reuseport:} server endpoint: a TCP listener with C{SO_REUSEPORT}, so
several gateway worker processes can each bind the same port and the kernel
spreads incoming connections across them.

Description syntax (colons in values are backslash-escaped, as for C{tcp:})::

    reuseport:PORT[:interface=ADDRESS][:backlog=N]
    reuseport:port=PORT[:interface=ADDRESS][:backlog=N]

Twisted's own C{tcp:} endpoint cannot do this: it sets C{SO_REUSEADDR} only,
and a socket option set after C{bind} is too late.  So the endpoint builds
and binds the socket itself and hands it to
L{IReactorSocket.adoptStreamPort<twisted.internet.interfaces.IReactorSocket.adoptStreamPort>}.

Linux shares a port only between sockets that all set C{SO_REUSEPORT} and
belong to the same effective user; a C{tcp:} listener on the port, or one
of another user, makes the bind fail with L{CannotListenError}.
"""

import socket

from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

from gateway.server.policy import DEFAULT_BACKLOG

__all__ = [
    "DEFAULT_BACKLOG",
    "ReusePortParser",
    "ReusePortServerEndpoint",
]

_MAX_BACKLOG = 2**31 - 1  # listen() takes a C int

_SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", None)  # None on Windows


@implementer(IStreamServerEndpoint)
class ReusePortServerEndpoint:
    """
    A TCP server endpoint whose socket has C{SO_REUSEADDR} and
    C{SO_REUSEPORT} set before it is bound.

    :ivar port: the port to bind; 0 lets the kernel choose one.
    :ivar interface: the IPv4 or IPv6 address to bind.
    :ivar backlog: the C{listen} backlog.
    :ivar addressFamily: C{AF_INET6} for an IPv6 interface, else C{AF_INET}.
    """

    def __init__(self, reactor, port, interface="0.0.0.0", backlog=DEFAULT_BACKLOG):
        """
        :param reactor: an L{IReactorSocket} provider.
        :param port: the port, 0 to 65535.
        :param interface: an IPv4 or IPv6 address literal (not a host name:
            binding must not wait for DNS); C{""} means all IPv4 addresses.
        :param backlog: the C{listen} backlog, at least 1.
        :raises ValueError: for any of them out of range, or on a platform
            without C{SO_REUSEPORT}.
        """
        if _SO_REUSEPORT is None:
            raise ValueError("reuseport: this platform has no SO_REUSEPORT")
        if not 0 <= port <= 65535:
            raise ValueError(f"reuseport: port must be 0 to 65535, not {port}")
        if not 1 <= backlog <= _MAX_BACKLOG:
            raise ValueError(f"reuseport: backlog must be 1 to {_MAX_BACKLOG}, not {backlog}")
        interface = interface or "0.0.0.0"
        if isIPv6Address(interface):
            self.addressFamily = socket.AF_INET6
        elif isIPAddress(interface):
            self.addressFamily = socket.AF_INET
        else:
            raise ValueError(
                f"reuseport: interface must be an IPv4 or IPv6 address "
                f"(escape colons as \\:), not {interface!r}"
            )
        self._reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(port={self.port}, "
            f"interface={self.interface!r}, backlog={self.backlog})"
        )

    def listen(self, protocolFactory):
        """
        Bind and listen now: the returned Deferred has already fired with
        the L{IListeningPort} (whose C{socket} is the listening socket), or
        failed with L{CannotListenError}.
        """
        return defer.execute(self._listen, protocolFactory)

    def _listen(self, protocolFactory):
        skt = None
        try:
            skt = socket.socket(self.addressFamily, socket.SOCK_STREAM)
            skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            skt.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 1)
            skt.bind(self._sockaddr())
            skt.listen(self.backlog)
            skt.setblocking(False)
            # The port gets its own duplicate of the descriptor.
            return self._reactor.adoptStreamPort(skt.fileno(), self.addressFamily, protocolFactory)
        except OSError as e:
            raise CannotListenError(self.interface, self.port, e) from e
        finally:
            if skt is not None:
                skt.close()

    def _sockaddr(self):
        """
        The address to bind; for IPv6 through C{getaddrinfo}, which fills in
        the scope of a link-local C{fe80::1%eth0}.
        """
        if self.addressFamily == socket.AF_INET:
            return (self.interface, self.port)
        [(_, _, _, _, sockaddr), *_] = socket.getaddrinfo(
            self.interface,
            self.port,
            socket.AF_INET6,
            socket.SOCK_STREAM,
            0,
            socket.AI_NUMERICHOST | socket.AI_PASSIVE,
        )
        return sockaddr


def _number(name, text):
    """
    Parse a description's decimal value strictly (no sign, spaces or
    underscores, which C{int} would take).
    """
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"reuseport: {name} must be a decimal number, not {text!r}")
    return int(text)


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ReusePortParser:
    """
    Parses C{reuseport:} descriptions for
    L{serverFromString<twisted.internet.endpoints.serverFromString>}; every
    mistake is a C{ValueError} at parse time, before anything is bound.
    """

    prefix = "reuseport"

    def parseStreamServer(self, reactor, *args, **kwargs):
        """
        :return: a L{ReusePortServerEndpoint}.
        :raises ValueError: naming the port, interface, backlog or option
            that is wrong.
        """
        unknown = sorted(set(kwargs) - {"port", "interface", "backlog"})
        if unknown:
            raise ValueError(
                f"reuseport: unknown option {', '.join(unknown)} (known: port, interface, backlog)"
            )
        if len(args) > 1:
            raise ValueError(
                f"reuseport: unexpected {':'.join(args[1:])!r} after the port "
                f"(options are written name=value; escape colons as \\:)"
            )
        if args and "port" in kwargs:
            raise ValueError("reuseport: port given twice")
        if not args and "port" not in kwargs:
            raise ValueError("reuseport: no port given")
        port = _number("port", args[0] if args else kwargs["port"])
        backlog = kwargs.get("backlog")
        return ReusePortServerEndpoint(
            reactor,
            port,
            kwargs.get("interface", "0.0.0.0"),
            DEFAULT_BACKLOG if backlog is None else _number("backlog", backlog),
        )
