# -*- test-case-name: tests.server.test_hygiene -*-
"""
Connection hygiene, composed by the server layer onto each listener's
protocol class (L{gateway.server.factory}): counting connections,
refusals (descriptor room, the gate's caps), reading the client's address
from a PROXY protocol header on C{haproxy:} listeners, the idle timeout
(never while the gateway paused the connection), the frame timeout (a
slowloris defence), the graceful close at C{max-age}, and spreading
keepalive probes.

A framing knows nothing of this: L{hygieneNamespace} returns the
C{connectionMade}, C{dataReceived} and C{connectionLost} of one listener,
chosen from its policy and wrapping the framing's own, so a listener
without timers or PROXY header runs none of their code per read, and a
connection holds only the timers it has (one attribute each).  The bytes
read are counted by the framing base itself, into the listener's stats: a
wrapper doing only that cost a Python call per read.
"""

import random
import socket

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import connectionDone

from gateway.addresses import formatAddress, isIPAddress
from gateway.compat.twisted import proxyHeaderRead
from gateway.server.descriptors import DESCRIPTORS
from gateway.server.policy import FRAME_TIMEOUT, IDLE_TIMEOUT, MAX_AGE

__all__ = [
    "AGE_GRACE",
    "DESCRIPTORS",
    "FRAME_TICKS",
    "MALFORMED_PROXY_HEADER",
    "hygieneNamespace",
]

#: A C{haproxy:} listener's connection did not start with a valid PROXY
#: protocol header.
MALFORMED_PROXY_HEADER = "malformed-proxy-header"

#: Seconds a connection past its C{max-age} may take to close its side
#: after the gateway closed its own.
AGE_GRACE = 10.0


#: The frame timeout is checked this many times per timeout: a frame still
#: incomplete is closed between 1 and 1 + 1/FRAME_TICKS timeouts after its
#: first byte.
FRAME_TICKS = 4


def _spreadKeepalive(transport, idle):
    """
    Give a connection's first keepalive probe a random delay between
    C{idle} and 2 x C{idle} seconds.  Connections accepted together (a mass
    reconnect) would otherwise probe together, every interval, and a burst
    of probes larger than the network's queues drops enough of them to
    abort healthy connections (seen on loopback with 100,000 clients:
    C{netdev_max_backlog}).
    """
    getHandle = getattr(transport, "getHandle", None)
    if getHandle is None or idle < 2:
        return
    try:
        # random() rather than randrange(): a third of the cost, once per
        # connection (bench/churn.py).
        getHandle().setsockopt(
            socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle + int(random.random() * (idle + 1))
        )
    except (AttributeError, OSError, ValueError):
        pass  # not a TCP socket


def hygieneNamespace(protocol, config):
    """
    The methods and per-connection defaults that apply a listener's
    connection hygiene to its framing protocol class.

    :param protocol: the framing's protocol class (a
        L{gateway.framing.FramingProtocol} subclass); its
        C{connectionMade} (open the stream), C{dataReceived} and
        C{connectionLost} are wrapped.
    :param config: the listener's L{gateway.server.listener.ListenerConfig}.
    :return: class attributes, by name.
    :rtype: L{dict}
    """
    stats = config.stats
    gate = config.gate
    guard = config.descriptors
    policy = gate.policy if gate is not None else None
    idle = policy.idleTimeout if policy is not None else None
    maxAge = policy.maxAge if policy is not None else None
    keepaliveIdle = policy.keepaliveIdle if policy is not None and policy.keepalive else None
    frameTimeout = policy.frameTimeout if policy is not None else None
    frameStep = frameTimeout / FRAME_TICKS if frameTimeout is not None else None
    proxied = config.proxied
    frameMade = protocol.connectionMade
    frameData = protocol.dataReceived
    frameLost = protocol.connectionLost
    frameResume = protocol.resumeProducing

    def callLater(delay, function, *args):
        clock = config.clock
        if clock is None:
            from twisted.internet import reactor as clock
        return clock.callLater(delay, function, *args)

    def refuse(self, reason, limit):
        if gate is not None:
            gate.refuse(reason, limit, self.peer)
        else:
            stats.refused[reason] += 1
        self.transport.loseConnection()

    def admit(self, host):
        """
        Apply the caps, then let the framing open the message stream.

        :param host: the client's address without its port.
        :return: whether the connection was admitted.
        """
        if gate is not None:
            if not gate.admit(host, self.peer):
                self.transport.loseConnection()
                return False
            self._gateHost = host
        frameMade(self)
        return True

    def idleTimeout(self):
        """
        Nothing read for C{idle-timeout} seconds: close the connection,
        unless it is silent because the gateway paused it.
        """
        if self.paused:
            self._idleCall = callLater(idle, idleTimeout, self)
            return
        self._idleCall = None
        gate.closing(IDLE_TIMEOUT, self.peer, idle)
        self.transport.loseConnection()

    def tooOld(self):
        """
        C{max-age} is reached: close gracefully.  Shutting down only the
        write side shows the client an end of stream while what it already
        sent is still read and published; the connection is closed when the
        client closes its side, or after L{AGE_GRACE} seconds.
        """
        self._ageCall = None
        gate.closing(MAX_AGE, self.peer, maxAge)
        loseWriteConnection = getattr(self.transport, "loseWriteConnection", None)
        if ISSLTransport.providedBy(self.transport):
            # TLS's end of stream is its close_notify, which the client may
            # answer after sending the rest (TCP's half-close under TLS
            # would look like a truncation attack to the client).
            loseWriteConnection = self.transport.loseConnection
        elif loseWriteConnection is None:
            self.transport.loseConnection()
            return
        loseWriteConnection()
        self._ageCall = callLater(AGE_GRACE, graceOver, self)

    def graceOver(self):
        self._ageCall = None
        if ISSLTransport.providedBy(self.transport):
            self.transport.abortConnection()  # TLS is already closing
        else:
            self.transport.loseConnection()

    def frameTick(self):
        """
        A tick of the frame timeout (every C{frame-timeout} / L{FRAME_TICKS}
        seconds while bytes of a frame are held): close the connection when
        its frame has been incomplete for more than L{FRAME_TICKS} ticks,
        not counting those that find the gateway pausing it; stop ticking
        when no frame is in progress.  A paused tick is skipped, not a
        restart: under back-pressure that comes and goes (every few
        seconds in C{bench/slowloris.py}) a restart let trickling clients
        live for good.
        """
        if not self.bufferedByteCount():
            self._frameCall = None
            return
        if not self.paused:
            self._staleTicks += 1
            if self._staleTicks > FRAME_TICKS:
                self._frameCall = None
                self.abandon(FRAME_TIMEOUT)
                gate.closing(FRAME_TIMEOUT, self.peer, frameTimeout, counted=True)
                return
        self._frameCall = callLater(frameStep, frameTick, self)

    def timedFrameData(self, data):
        """
        The framing's C{dataReceived}, watched by the frame timeout: a read
        that leaves bytes of a frame starts the ticks if none run, and a
        read that completes a frame starts the count again.  Two length
        checks per read, nothing per message.
        """
        before = self.bufferedByteCount()
        frameData(self, data)
        if self._frameCall is None:
            if self.bufferedByteCount():
                self._staleTicks = 0
                self._frameCall = callLater(frameStep, frameTick, self)
        elif self.bufferedByteCount() < before + len(data):
            self._staleTicks = 0

    def headerRead(self):
        """
        The PROXY header has been read: the client's address is known.

        :return: whether the connection was admitted.
        """
        del self._awaitingHeader
        address = self.transport.getPeer()
        self.peer = formatAddress(address)
        if not isIPAddress(getattr(address, "host", None)):
            # Twisted's v1 parser takes any word for an address.
            self.frameError(MALFORMED_PROXY_HEADER)
            return False
        return admit(self, address.host)

    def awaitHeader(self):
        """
        The wrapper (Twisted's C{HAProxyProtocolWrapper}, our transport)
        passes on the bytes after the header: the stream opens at the first
        of them (L{dataReceived}), or when the wrapper's read of a header
        alone is seen here.
        """
        self._awaitingHeader = True
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
                if self._awaitingHeader:
                    headerRead(self)
            elif wrapper.disconnecting:
                # The wrapper refused the header and is closing.
                self.frameError(MALFORMED_PROXY_HEADER)

        wrapper.dataReceived = watchHeader

    def connectionMade(self):
        """
        Count the connection; refuse it when the descriptor room or a cap
        is exceeded; otherwise open its stream (after the PROXY header on a
        C{haproxy:} listener) and start its timers.
        """
        stats.accepted += 1
        # The peer is read once per connection: the gate and the framing's
        # stream use it too (each getPeer() builds a new address object).
        address = self.transport.getPeer()
        self.peer = formatAddress(address)
        if guard is not None and not guard.opened():
            # Over the room: listeners cap every accept batch to it, so only
            # a port accepting without batches, or descriptors taken by
            # something else since, gets here.
            refuse(self, DESCRIPTORS, guard.capacity)
            return
        if proxied:
            awaitHeader(self)
        elif not admit(self, getattr(address, "host", self.peer)):
            return
        if idle is not None:
            self._idleCall = callLater(idle, idleTimeout, self)
        if maxAge is not None:
            self._ageCall = callLater(maxAge, tooOld, self)
        if keepaliveIdle is not None:
            _spreadKeepalive(self.transport, keepaliveIdle)

    # The framing base counts the bytes read (see its _received).
    framed = timedFrameData if frameTimeout is not None else frameData

    if proxied:

        def dataReceived(self, data):
            call = self._idleCall
            if call is not None:
                call.reset(idle)
            if self._awaitingHeader and not headerRead(self):
                return
            framed(self, data)

    elif idle is not None:

        def dataReceived(self, data):
            call = self._idleCall
            if call is not None:
                call.reset(idle)
            framed(self, data)

    else:
        dataReceived = framed

    def resumeProducing(self):
        """
        The gateway lets the connection read again: its silence until now
        was the gateway's doing, so the idle count starts over.  The frame
        count goes on from where the pause left it (its paused ticks did not
        count).
        """
        call = self._idleCall
        if call is not None:
            call.reset(idle)
        frameResume(self)

    def connectionLost(self, reason=connectionDone):
        """
        Cancel the timers, let the framing publish what it holds and close
        its stream, and give back the descriptor and the gate's slot.
        """
        if self._idleCall is not None:
            self._idleCall.cancel()
            self._idleCall = None
        if self._ageCall is not None:
            self._ageCall.cancel()
            self._ageCall = None
        if self._frameCall is not None:
            self._frameCall.cancel()
            self._frameCall = None
        frameLost(self, reason)
        stats.closed += 1
        if guard is not None:
            guard.closed()
        if self._gateHost is not None:
            gate.release(self._gateHost)
            self._gateHost = None

    namespace = {
        "connectionMade": connectionMade,
        "dataReceived": dataReceived,
        "connectionLost": connectionLost,
        "_idleCall": None,
        "_ageCall": None,
        "_frameCall": None,
        "_gateHost": None,
        "_awaitingHeader": False,
    }
    if idle is not None:
        namespace["resumeProducing"] = resumeProducing
    return namespace
