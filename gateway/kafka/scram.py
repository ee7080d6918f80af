# -*- test-case-name: tests.kafka.test_scram -*-
"""
The client side of SCRAM (RFC 5802), for SCRAM-SHA-256 and SCRAM-SHA-512
(RFC 7677) as Kafka speaks them: the health probe authenticates with it the
way librdkafka authenticates the producer.

No channel binding (Kafka offers none: the GS2 header is always C{n,,}).
The password is used as its UTF-8 bytes, without SASLprep: Kafka's
C{ScramFormatter} and librdkafka both skip it, and the probe must derive the
same keys as the broker stored and the producer sends.  The user name is
escaped as RFC 5802 says (C{=} as C{=3D}, C{,} as C{=2C}).

Pure functions and one small state object; nothing here does I/O.
"""

import base64
import hashlib
import hmac
import re
import secrets

__all__ = ["MECHANISMS", "ScramClient", "ScramError"]

#: Mechanism name to hash function name.
MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}

#: Fewer iterations than RFC 7677 asks for (and Kafka's minimum) would let a
#: forged server make the proof cheap to attack.
MIN_ITERATIONS = 4096
#: More than this would let a forged server make the probe burn CPU (Kafka
#: allows at most 16384).
MAX_ITERATIONS = 100_000

_GS2_HEADER = "n,,"


class ScramError(Exception):
    """
    The server's SCRAM messages are malformed, refuse us, or fail to prove
    that the server knows the password.
    """


def _attributes(message):
    """
    Split C{a=value,b=value} into a mapping; values may hold C{=}.
    """
    attributes = {}
    for part in message.split(","):
        name, sep, value = part.partition("=")
        if not sep or len(name) != 1:
            raise ScramError(f"malformed SCRAM message attribute {part[:20]!r}")
        attributes.setdefault(name, value)
    return attributes


def _escapeName(name):
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """
    One SCRAM exchange: L{first}, then L{final} with the server's first
    message, then L{verify} with the server's final message.

    :ivar mechanism: C{SCRAM-SHA-256} or C{SCRAM-SHA-512}.
    """

    def __init__(self, mechanism, username, password, nonce=None):
        """
        :param nonce: the client nonce; a fresh random one by default (tests
            give the RFC's).
        :raises ValueError: for a mechanism other than L{MECHANISMS}.
        """
        if mechanism not in MECHANISMS:
            raise ValueError(f"unknown SCRAM mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._hash = MECHANISMS[mechanism]
        self._username = username
        self._password = password.encode("utf-8")
        self._nonce = nonce if nonce is not None else secrets.token_urlsafe(24)
        self._firstBare = f"n={_escapeName(username)},r={self._nonce}"
        self._serverSignature = None

    def __repr__(self):
        return f"<ScramClient {self.mechanism} for {self._username!r}>"

    def _hmac(self, key, message):
        return hmac.new(key, message, self._hash).digest()

    def first(self):
        """
        :return: the client-first-message, as bytes.
        """
        return (_GS2_HEADER + self._firstBare).encode("utf-8")

    def final(self, serverFirst):
        """
        :param serverFirst: the server-first-message, as bytes.
        :return: the client-final-message (with its proof), as bytes.
        :raises ScramError: for a malformed message, a nonce that does not
            extend ours, or an iteration count out of bounds.
        """
        try:
            text = serverFirst.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ScramError("SCRAM server-first-message is not UTF-8") from e
        attributes = _attributes(text)
        if "m" in attributes:
            raise ScramError("SCRAM server-first-message asks for an unsupported extension")
        if "e" in attributes:
            raise ScramError(f"SCRAM server error: {attributes['e']}")
        try:
            nonce, salt, iterations = attributes["r"], attributes["s"], attributes["i"]
        except KeyError as e:
            raise ScramError(f"SCRAM server-first-message lacks {e.args[0]}=") from None
        if not (nonce.startswith(self._nonce) and len(nonce) > len(self._nonce)):
            raise ScramError("SCRAM server nonce does not extend the client nonce")
        if not re.fullmatch(r"[0-9]{1,9}", iterations) or not (
            MIN_ITERATIONS <= int(iterations) <= MAX_ITERATIONS
        ):
            raise ScramError(
                f"SCRAM iteration count {iterations[:12]!r} is outside "
                f"{MIN_ITERATIONS}..{MAX_ITERATIONS}"
            )
        try:
            salt = base64.b64decode(salt, validate=True)
        except ValueError as e:
            raise ScramError("SCRAM salt is not base64") from e
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, int(iterations))
        clientKey = self._hmac(salted, b"Client Key")
        storedKey = hashlib.new(self._hash, clientKey).digest()
        withoutProof = "c=" + base64.b64encode(_GS2_HEADER.encode()).decode() + ",r=" + nonce
        authMessage = ",".join((self._firstBare, text, withoutProof)).encode("utf-8")
        signature = self._hmac(storedKey, authMessage)
        proof = bytes(a ^ b for a, b in zip(clientKey, signature, strict=True))
        serverKey = self._hmac(salted, b"Server Key")
        self._serverSignature = self._hmac(serverKey, authMessage)
        return f"{withoutProof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, serverFinal):
        """
        Check the server-final-message: the server proves it knows the
        password too (a forged broker cannot).

        :raises ScramError: for an error from the server, a malformed
            message or a wrong server signature.
        """
        if self._serverSignature is None:
            raise ScramError("SCRAM server-final-message before the client-final-message")
        try:
            attributes = _attributes(serverFinal.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ScramError("SCRAM server-final-message is not UTF-8") from e
        if "e" in attributes:
            raise ScramError(f"SCRAM server error: {attributes['e']}")
        try:
            signature = base64.b64decode(attributes.get("v", ""), validate=True)
        except ValueError as e:
            raise ScramError("SCRAM server signature is not base64") from e
        if not hmac.compare_digest(signature, self._serverSignature):
            raise ScramError("SCRAM server signature is wrong: the broker does not know the user")
