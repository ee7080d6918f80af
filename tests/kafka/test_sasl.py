# -*- test-case-name: tests.kafka.test_sasl -*-
"""
The probe's SASL authentication against a fake broker that checks PLAIN
and SCRAM the way Kafka does (its server side written here from RFC 5802),
so a wrong password, a wrong mechanism and a forged broker are each seen.
"""

import base64
import hashlib
import hmac
import struct

from twisted.internet.task import Clock
from twisted.protocols.basic import Int32StringReceiver
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka._probe import KafkaProbeProtocol
from gateway.kafka.sasl import AuthenticationFailed, authenticate
from tests.kafka.test_wire import apiVersionsReply, parseRequest

USERS = {"alice": "alice-secret"}
SALT = b"kafka-salt"
ITERATIONS = 4096


def string(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


class FakeSaslBroker(Int32StringReceiver):
    """
    A listener enabling C{mechanisms}: SaslHandshake v1, then SaslAuthenticate
    v0 tokens, then ApiVersions.

    :ivar forge: answer SCRAM with a server signature made without the
        password (a broker impersonating the real one).
    """

    mechanisms = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    forge = False

    def connectionMade(self):
        self.mechanism = None
        self.authenticated = False
        self.scram = None
        self.apiKeys = []

    def reply(self, correlationId, body):
        self.sendString(struct.pack(">i", correlationId) + body)

    def authReply(self, correlationId, errorCode=0, message=None, token=b""):
        text = struct.pack(">h", -1) if message is None else string(message)
        self.reply(
            correlationId,
            struct.pack(">h", errorCode) + text + struct.pack(">i", len(token)) + token,
        )

    def stringReceived(self, request):
        apiKey, version, correlationId, _, body = parseRequest(request)
        self.apiKeys.append((apiKey, version))
        if apiKey == 17:
            (size,) = struct.unpack_from(">h", body)
            self.mechanism = body[2 : 2 + size].decode()
            names = b"".join(string(m) for m in self.mechanisms)
            code = 0 if self.mechanism in self.mechanisms else 33
            self.reply(correlationId, struct.pack(">hi", code, len(self.mechanisms)) + names)
        elif apiKey == 36:
            (size,) = struct.unpack_from(">i", body)
            self.token(correlationId, body[4 : 4 + size])
        elif apiKey == 18 and self.authenticated:
            self.transport.write(apiVersionsReply(correlationId))
        else:
            self.transport.loseConnection()

    def token(self, correlationId, token):
        if self.mechanism == "PLAIN":
            _, user, password = token.decode().split("\0")
            if USERS.get(user) == password:
                self.authenticated = True
                return self.authReply(correlationId)
            return self.authReply(
                correlationId, 58, "Authentication failed: Invalid username or password"
            )
        algorithm = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[self.mechanism]
        if self.scram is None:
            bare = token.decode()[3:]
            fields = dict(part.split("=", 1) for part in bare.split(","))
            nonce = fields["r"] + "server-part"
            first = f"r={nonce},s={base64.b64encode(SALT).decode()},i={ITERATIONS}"
            self.scram = (fields["n"], bare, first)
            return self.authReply(correlationId, token=first.encode())
        user, bare, first = self.scram
        withoutProof, _, proof = token.decode().rpartition(",p=")
        password = USERS.get(user, "") if not self.forge else "forged"
        salted = hashlib.pbkdf2_hmac(algorithm, password.encode(), SALT, ITERATIONS)
        clientKey = hmac.new(salted, b"Client Key", algorithm).digest()
        stored = hashlib.new(algorithm, clientKey).digest()
        message = f"{bare},{first},{withoutProof}".encode()
        signature = hmac.new(stored, message, algorithm).digest()
        given = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if not self.forge and hashlib.new(algorithm, given).digest() != stored:
            return self.authReply(
                correlationId,
                58,
                f"Authentication failed during authentication due to invalid credentials "
                f"with SASL mechanism {self.mechanism}",
            )
        serverKey = hmac.new(salted, b"Server Key", algorithm).digest()
        verifier = base64.b64encode(hmac.new(serverKey, message, algorithm).digest())
        self.authenticated = True
        self.authReply(correlationId, token=b"v=" + verifier)


class AuthenticateTests(SynchronousTestCase):
    """
    L{authenticate} over a real protocol pair.
    """

    def exchange(
        self, mechanism, username="alice", password="alice-secret", broker=FakeSaslBroker
    ):
        clock = Clock()
        self.client, self.broker, pump = iosim.connectedServerAndClient(
            broker, lambda: KafkaProbeProtocol(clock, timeout=1.0), clock=clock
        )
        d = authenticate(self.client, mechanism, username, password)
        pump.flush()
        return d

    def assertAccepted(self, mechanism):
        self.successResultOf(self.exchange(mechanism))
        self.assertTrue(self.broker.authenticated)
        self.assertEqual(self.broker.apiKeys[0], (17, 1))
        self.assertEqual(self.broker.apiKeys[1], (36, 0))

    def assertRefused(self, mechanism, words, **kwargs):
        failure = self.failureResultOf(self.exchange(mechanism, **kwargs), AuthenticationFailed)
        message = failure.getErrorMessage()
        self.assertIn(words, message)
        self.assertNotIn("secret", message)
        self.assertEqual(len(message.splitlines()), 1)
        return message

    def test_plain(self):
        """
        PLAIN with the right password is accepted in one token.
        """
        self.assertAccepted("PLAIN")

    def test_scramSha256(self):
        """
        SCRAM-SHA-256 with the right password is accepted.
        """
        self.assertAccepted("SCRAM-SHA-256")
        self.assertEqual(self.broker.apiKeys.count((36, 0)), 2)

    def test_scramSha512(self):
        """
        SCRAM-SHA-512 with the right password is accepted.
        """
        self.assertAccepted("SCRAM-SHA-512")

    def test_plainWrongPassword(self):
        """
        A wrong PLAIN password fails with the broker's reason, in one line.
        """
        message = self.assertRefused("PLAIN", "Invalid username or password", password="nope")
        self.assertIn("SASL PLAIN authentication as 'alice' failed", message)

    def test_scramWrongPassword(self):
        """
        A wrong SCRAM password fails with the broker's reason.
        """
        self.assertRefused("SCRAM-SHA-256", "invalid credentials", password="wrong-secret")

    def test_forgedBroker(self):
        """
        A broker that accepts any proof but cannot sign with the password is
        refused.
        """

        class Forger(FakeSaslBroker):
            forge = True

        self.assertRefused("SCRAM-SHA-256", "server signature is wrong", broker=Forger)

    def test_mechanismNotEnabled(self):
        """
        A mechanism the listener does not enable fails naming those it does.
        """

        class PlainOnly(FakeSaslBroker):
            mechanisms = ("PLAIN",)

        message = self.assertRefused("SCRAM-SHA-512", "does not enable", broker=PlainOnly)
        self.assertIn("(it enables PLAIN)", message)
