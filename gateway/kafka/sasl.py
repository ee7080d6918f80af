# -*- test-case-name: tests.kafka.test_sasl -*-
"""
SASL authentication of the health probe's connection (KIP-152): a
SaslHandshake v1 naming the mechanism, then SaslAuthenticate v0 requests
carrying the mechanism's tokens: one for PLAIN, two for SCRAM
(L{gateway.kafka.scram}).  The probe authenticates as the producer does, so
C{/readyz} says whether the producer's credentials are accepted.
"""

from twisted.internet.defer import inlineCallbacks

from gateway.kafka._probe import ProbeError
from gateway.kafka.scram import MECHANISMS as SCRAM_MECHANISMS
from gateway.kafka.scram import ScramClient, ScramError
from gateway.kafka.wire import (
    decodeSaslAuthenticateResponse,
    decodeSaslHandshakeResponse,
    encodeSaslAuthenticateRequest,
    encodeSaslHandshakeRequest,
)

__all__ = ["MECHANISMS", "AuthenticationFailed", "authenticate"]

#: The SASL mechanisms the gateway speaks (the producer and the probe).
MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)

_UNSUPPORTED_SASL_MECHANISM = 33
_SASL_AUTHENTICATION_FAILED = 58


class AuthenticationFailed(ProbeError):
    """
    The broker refused our credentials or mechanism, or could not prove it
    knows the SCRAM password.  Retrying does not help until the
    configuration (or the broker's users) change.
    """


@inlineCallbacks
def authenticate(protocol, mechanism, username, password):
    """
    Authenticate a freshly made connection.

    :param protocol: a connected L{gateway.kafka._probe.KafkaProbeProtocol}.
    :param mechanism: one of L{MECHANISMS}.
    :return: a L{Deferred} firing with L{None} once the broker accepted us,
        or failing with L{AuthenticationFailed} (a one-line reason that never
        holds the password) or the protocol's L{ProbeError}s.
    """
    clientId = protocol.clientId
    _, (_, errorCode, enabled) = yield protocol.request(
        lambda c: encodeSaslHandshakeRequest(c, clientId, mechanism),
        decodeSaslHandshakeResponse,
    )
    if errorCode == _UNSUPPORTED_SASL_MECHANISM:
        raise AuthenticationFailed(
            f"the broker does not enable SASL mechanism {mechanism} on this listener "
            f"(it enables {', '.join(enabled) or 'none'})"
        )
    if errorCode:
        raise AuthenticationFailed(f"SaslHandshake error code {errorCode}")

    def exchange(token):
        return protocol.request(
            lambda c: encodeSaslAuthenticateRequest(c, clientId, token, version=0),
            decodeSaslAuthenticateResponse,
        )

    def refused(errorCode, message):
        detail = message or f"error code {errorCode}"
        return AuthenticationFailed(
            f"SASL {mechanism} authentication as {username!r} failed: {detail}"
        )

    if mechanism == "PLAIN":
        token = b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")
        _, (_, errorCode, message, _) = yield exchange(token)
        if errorCode:
            raise refused(errorCode, message)
        return None
    if mechanism not in SCRAM_MECHANISMS:
        raise AuthenticationFailed(f"unsupported SASL mechanism {mechanism}")
    scram = ScramClient(mechanism, username, password)
    try:
        _, (_, errorCode, message, serverFirst) = yield exchange(scram.first())
        if errorCode:
            raise refused(errorCode, message)
        _, (_, errorCode, message, serverFinal) = yield exchange(scram.final(serverFirst))
        if errorCode:
            raise refused(errorCode, message)
        scram.verify(serverFinal)
    except ScramError as e:
        raise AuthenticationFailed(
            f"SASL {mechanism} authentication as {username!r} failed: {e}"
        ) from None
    return None
