# -*- test-case-name: tests.server.test_hygiene -*-
"""
The per-connection side of connection hygiene (L{gateway.server.policy}), mixed
into every framing protocol through
L{gateway.framing.base.FramedProtocolMixin}: the idle timeout (Twisted's
L{TimeoutMixin}), the graceful close at C{max-age}, refusals, and reading
the client's address from a PROXY protocol header on C{haproxy:} listeners.
"""

import ipaddress
import random
import socket

from twisted.protocols.policies import TimeoutMixin

import gateway.server.policy as connections
from gateway.addresses import formatAddress
from gateway.compat.twisted import proxyHeaderRead
from gateway.server.descriptors import DESCRIPTORS

__all__ = [
    "AGE_GRACE",
    "ConnectionHygieneMixin",
    "DESCRIPTORS",
    "MALFORMED_PROXY_HEADER",
]

#: A C{haproxy:} listener's connection did not start with a valid PROXY
#: protocol header.
MALFORMED_PROXY_HEADER = "malformed-proxy-header"

#: Seconds a connection past its C{max-age} may take to close its side
#: after the gateway closed its own.
AGE_GRACE = 10.0


def _isIPAddress(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ConnectionHygieneMixin(TimeoutMixin):
    """
    Timers, refusals and the PROXY header for
    L{gateway.framing.base.FramedProtocolMixin}, which provides
    C{factory}, C{peer}, C{_stream}, C{_openStream} and C{frameError}.
    """

    _ageCall = None

    def _startTimers(self, policy):
        """
        Start the idle and age timers, and spread the keepalive probes.
        """
        if policy.idleTimeout is not None:
            self.setTimeout(policy.idleTimeout)
        if policy.maxAge is not None:
            self._ageCall = self.callLater(policy.maxAge, self._tooOld)
        if policy.keepalive:
            self._spreadKeepalive(policy.keepaliveIdle)

    def _spreadKeepalive(self, idle):
        """
        Give this connection's first keepalive probe a random delay between
        C{idle} and 2 x C{idle} seconds.  Connections accepted together
        (a mass reconnect) would otherwise probe together, every interval,
        and a burst of probes larger than the network's queues drops enough
        of them to abort healthy connections (seen on loopback with
        100,000 clients: C{netdev_max_backlog}).
        """
        getHandle = getattr(self.transport, "getHandle", None)
        if getHandle is None or idle < 2:
            return
        try:
            getHandle().setsockopt(
                socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle + random.randrange(idle + 1)
            )
        except (AttributeError, OSError, ValueError):
            pass  # not a TCP socket

    def _awaitProxyHeader(self):
        """
        On a C{haproxy:} listener the client's address is known once the
        wrapper (Twisted's C{HAProxyProtocolWrapper}, our transport) has read
        the PROXY header: open the stream then, whether data follows the
        header (our C{dataReceived} is called) or not (the wrapper's read is
        watched, through its C{_proxyInfo}).
        """
        self.dataReceived = self._afterProxyHeader
        wrapper = self.transport
        if proxyHeaderRead(wrapper) is None:
            return
        read = wrapper.dataReceived

        def watchHeader(data):
            try:
                read(data)
            except ValueError:
                # Twisted's v1 parser on a port that is not a number.
                self.frameError(MALFORMED_PROXY_HEADER)
                return
            if proxyHeaderRead(wrapper):
                del wrapper.dataReceived
                self._proxyHeaderRead()
            elif wrapper.disconnecting:
                # The wrapper refused the header and is closing.
                self.frameError(MALFORMED_PROXY_HEADER)

        wrapper.dataReceived = watchHeader

    def _afterProxyHeader(self, data):
        self._proxyHeaderRead()
        if self._stream is not None:
            self.dataReceived(data)

    def _proxyHeaderRead(self):
        if "dataReceived" not in self.__dict__:
            return  # already done
        del self.dataReceived
        address = self.transport.getPeer()
        self.peer = formatAddress(address)
        if not _isIPAddress(getattr(address, "host", None)):
            # Twisted's v1 parser takes any word for an address.
            self.frameError(MALFORMED_PROXY_HEADER)
            return
        self._openStream()

    def callLater(self, delay, function):
        """
        Schedule with the listener's clock (L{TimeoutMixin} uses this).
        """
        clock = self.factory.config.clock
        if clock is None:
            return TimeoutMixin.callLater(self, delay, function)
        return clock.callLater(delay, function)

    def timeoutConnection(self):
        """
        The client sent nothing for C{idle-timeout} seconds: close it, unless
        it is silent because the gateway paused it.
        """
        if getattr(self, "paused", False):
            # TimeoutMixin has dropped its timer before calling this.
            self.setTimeout(self.timeOut)
            return
        gate = self.factory.config.gate
        gate.closing(connections.IDLE_TIMEOUT, self.peer, gate.policy.idleTimeout)
        self.transport.loseConnection()

    def _tooOld(self):
        """
        C{max-age} is reached: close gracefully.  Shutting down only the
        write side shows the client an end of stream while what it already
        sent is still read and published; the connection is closed when the
        client closes its side, or after L{AGE_GRACE} seconds.
        """
        self._ageCall = None
        gate = self.factory.config.gate
        gate.closing(connections.MAX_AGE, self.peer, gate.policy.maxAge)
        loseWriteConnection = getattr(self.transport, "loseWriteConnection", None)
        if loseWriteConnection is None:
            self.transport.loseConnection()
            return
        loseWriteConnection()
        self._ageCall = self.callLater(AGE_GRACE, self._graceOver)

    def _graceOver(self):
        self._ageCall = None
        self.transport.loseConnection()

    def _refuse(self, reason, limit):
        config = self.factory.config
        if config.gate is not None:
            config.gate.refuse(reason, limit, self.peer)
        else:
            config.stats.refused[reason] += 1
        self.transport.loseConnection()
