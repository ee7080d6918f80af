# -*- test-case-name: tests.test_addresses -*-
"""
Tests for L{gateway.addresses}: the one way the gateway writes a network
address, in logs, record headers and keys, the status page and the probes.
"""

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from gateway.addresses import formatAddress, formatHostPort, isIPAddress


class FormatHostPortTests(SynchronousTestCase):
    """
    L{formatHostPort}.
    """

    def test_ipv4AndNames(self):
        """
        An IPv4 address or a host name is followed by a colon and the port.
        """
        self.assertEqual(formatHostPort("127.0.0.1", 9092), "127.0.0.1:9092")
        self.assertEqual(formatHostPort("kafka.example", 9092), "kafka.example:9092")

    def test_ipv6InBrackets(self):
        """
        An IPv6 address is put in brackets, so the port stays unambiguous.
        """
        self.assertEqual(formatHostPort("::1", 9092), "[::1]:9092")
        self.assertEqual(formatHostPort("fe80::1%eth0", 80), "[fe80::1%eth0]:80")


class FormatAddressTests(SynchronousTestCase):
    """
    L{formatAddress} renders a transport's address.
    """

    def test_tcp(self):
        """
        TCP addresses are C{host:port}, IPv6 hosts in brackets.
        """
        self.assertEqual(formatAddress(IPv4Address("TCP", "10.0.0.1", 40001)), "10.0.0.1:40001")
        self.assertEqual(formatAddress(IPv6Address("TCP", "::1", 9000)), "[::1]:9000")

    def test_unixSocket(self):
        """
        An address without a port (a UNIX socket) is its path.
        """
        self.assertEqual(formatAddress(UNIXAddress("/run/gateway.sock")), "/run/gateway.sock")

    def test_anythingElse(self):
        """
        An address with neither a port nor a name is its string form.
        """
        self.assertEqual(formatAddress(UNIXAddress(None)), str(UNIXAddress(None)))
        self.assertEqual(formatAddress("somewhere"), "somewhere")


class IsIPAddressTests(SynchronousTestCase):
    """
    L{isIPAddress}.
    """

    def test_addresses(self):
        """
        IPv4 and IPv6 addresses are addresses.
        """
        for host in ("127.0.0.1", "203.0.113.7", "::1", "2001:db8::5"):
            self.assertTrue(isIPAddress(host), host)

    def test_notAddresses(self):
        """
        Host names, empty strings, malformed addresses and non-strings are
        not.
        """
        for host in ("localhost", "kafka.example", "", "256.0.0.1", "1.2.3", None, 7.5):
            self.assertFalse(isIPAddress(host), host)
