# -*- test-case-name: tests.server.test_tls -*-
"""
The protocol class of a TLS listener (L{gateway.server.tls}): its
connections open their message stream when the TLS handshake completes, so
no byte of an unverified client is read and the verified client
certificate's subject is known to the stream (the C{gateway-client-cert}
header).  Composed by the server layer between the framing's class and the
listener's hygiene (L{gateway.server.factory}).

A handshake that fails with a TLS error (an old version, no or an untrusted
client certificate, not TLS at all) is counted as refused with reason
L{TLS_HANDSHAKE} and logged once per interval; a client that goes away, or
is closed by the caps or timers, is counted as such, not here.
"""

from OpenSSL import SSL
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from zope.interface import classImplements

from gateway.logs import OncePerInterval

__all__ = ["TLS_HANDSHAKE", "peerSubject", "tlsProtocol"]

#: The refusal reason of a connection whose TLS handshake failed.
TLS_HANDSHAKE = "tls-handshake"


def peerSubject(transport):
    """
    :return: the RFC 4514 subject of the verified client certificate, as
        L{bytes}, or L{None} when the client sent none.
    """
    certificate = transport.getPeerCertificate()
    if certificate is None:
        return None
    return certificate.to_cryptography().subject.rfc4514_string().encode()


def tlsProtocol(protocol, config, interval=10.0):
    """
    The framing protocol class of a TLS listener: the stream opens when the
    handshake completes (and the listener's hygiene admitted the
    connection), carrying the client certificate's subject.

    :param protocol: the framing's protocol class.
    :param config: the listener's L{gateway.server.listener.ListenerConfig}.
    :param interval: seconds between handshake-failure log lines at most.
    :return: a subclass of C{protocol} providing L{IHandshakeListener}.
    """
    frameMade = protocol.connectionMade
    frameLost = protocol.connectionLost
    stats = config.stats
    failures = OncePerInterval(config.clock, interval) if config.clock is not None else None
    log = Logger(namespace=__name__)

    def connectionMade(self):
        """
        Admitted: open the stream once the handshake has completed.
        """
        self._tlsAdmitted = True
        if self._tlsDone:
            frameMade(self)

    def handshakeCompleted(self):
        """
        The client is verified: remember its certificate's subject, and
        open the stream if the connection was admitted.
        """
        self._tlsDone = True
        self.clientSubject = peerSubject(self.transport)
        if self._tlsAdmitted:
            frameMade(self)

    def connectionLost(self, reason=connectionDone):
        """
        Count a connection whose handshake failed (a TLS error, not a close
        by the client or by the gateway's caps and timers).
        """
        if not self._tlsDone and reason.check(SSL.Error):
            stats.refused[TLS_HANDSHAKE] += 1
            counts = failures.event(TLS_HANDSHAKE) if failures is not None else None
            if counts is not None:
                log.warn(
                    "{listener}: TLS handshake with {peer} failed: {error}; "
                    "{count} such since the last such line",
                    listener=config.name,
                    peer=self.peer,
                    error=reason.getErrorMessage(),
                    count=counts[TLS_HANDSHAKE],
                )
        frameLost(self, reason)

    namespace = {
        "__module__": protocol.__module__,
        "__doc__": protocol.__doc__,
        "connectionMade": connectionMade,
        "handshakeCompleted": handshakeCompleted,
        "connectionLost": connectionLost,
        "clientSubject": None,
        "_tlsAdmitted": False,
        "_tlsDone": False,
    }
    subclass = type(protocol.__name__, (protocol,), namespace)
    classImplements(subclass, IHandshakeListener)
    return subclass
