# -*- test-case-name: tests.test_support -*-
"""
PROXY protocol headers (HAProxy's v1 text and v2 binary forms) for a client
behind a proxy, as a load balancer would send them before the client's
bytes.
"""

import socket
import struct

__all__ = ["proxyWrappingFactory", "proxyV1", "proxyV2"]

#: The v2 signature, then version 2 + command PROXY, AF_INET + STREAM.
_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_PROXY_TCP4 = bytes([0x21, 0x11])


def proxyV1(source, sourcePort, destination="127.0.0.1", destinationPort=9000):
    """
    :return: a PROXY protocol v1 header for a TCP4 connection.
    """
    return b"PROXY TCP4 %s %s %d %d\r\n" % (
        source.encode(),
        destination.encode(),
        sourcePort,
        destinationPort,
    )


def proxyV2(source, sourcePort, destination="127.0.0.1", destinationPort=9000):
    """
    :return: a PROXY protocol v2 header (binary) for a TCP4 connection.
    """
    addresses = (
        socket.inet_aton(source)
        + socket.inet_aton(destination)
        + struct.pack("!HH", sourcePort, destinationPort)
    )
    return _V2_SIGNATURE + _V2_PROXY_TCP4 + struct.pack("!H", len(addresses)) + addresses


def proxyWrappingFactory(factory):
    """
    Wrap a factory as a C{haproxy:} endpoint's port wraps it: its protocols
    read a PROXY header first.  Twisted's wrapping factory is private; this
    gets it through the public L{proxyEndpoint}.
    """
    from twisted.internet.defer import succeed
    from twisted.protocols.haproxy import proxyEndpoint

    listened = []

    class Endpoint:
        def listen(self, wrapped):
            listened.append(wrapped)
            return succeed(None)

    proxyEndpoint(Endpoint()).listen(factory)
    return listened[0]
