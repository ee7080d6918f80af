# -*- test-case-name: tests.test_addresses -*-
"""
How the gateway writes a network address, everywhere: logs, record headers,
keys, the status page and the Kafka probes.
"""

import ipaddress
import os

__all__ = ["formatAddress", "formatHostPort", "isIPAddress"]


def formatHostPort(host, port):
    """
    C{host:port}, with an IPv6 host in brackets (C{[::1]:9092}).
    """
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def formatAddress(address):
    """
    Render a transport address as C{host:port} (or its string form when it
    has no port, e.g. a UNIX socket).

    :param address: an L{twisted.internet.interfaces.IAddress}.
    :rtype: L{str}
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        name = getattr(address, "name", None)
        # Twisted's UNIXAddress holds its path as bytes.
        return (os.fsdecode(name) if isinstance(name, bytes) else name) or str(address)
    return formatHostPort(host, port)


def isIPAddress(host):
    """
    :return: whether C{host} is an IPv4 or IPv6 address (not a name).
    """
    try:
        ipaddress.ip_address(host)
    except (TypeError, ValueError):
        return False
    return True
