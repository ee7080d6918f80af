# -*- test-case-name: tests.kafka.test_scram -*-
"""
The SCRAM client against RFC 7677's SCRAM-SHA-256 example, byte for byte,
and against servers that misbehave.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.scram import ScramClient, ScramError

#: RFC 7677, section 3.
NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfcClient(password="pencil"):
    """
    The RFC example's client: user C{user}, its nonce.
    """
    return ScramClient("SCRAM-SHA-256", "user", password, nonce=NONCE)


class RFC7677Tests(SynchronousTestCase):
    """
    The exchange of RFC 7677 section 3.
    """

    def test_first(self):
        """
        The client-first-message is the RFC's.
        """
        self.assertEqual(rfcClient().first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")

    def test_final(self):
        """
        The client-final-message, proof included, is the RFC's.
        """
        client = rfcClient()
        client.first()
        self.assertEqual(client.final(SERVER_FIRST), CLIENT_FINAL)

    def test_verify(self):
        """
        The RFC's server-final-message is accepted.
        """
        client = rfcClient()
        client.final(SERVER_FIRST)
        client.verify(SERVER_FINAL)

    def test_wrongServerSignature(self):
        """
        A server that does not know the password (its signature differs) is
        refused.
        """
        client = rfcClient(password="pencil2")
        client.final(SERVER_FIRST)
        error = self.assertRaises(ScramError, client.verify, SERVER_FINAL)
        self.assertIn("server signature is wrong", str(error))

    def test_randomNonce(self):
        """
        Without a nonce given, each client makes a fresh one.
        """
        first = ScramClient("SCRAM-SHA-512", "u", "p").first()
        self.assertNotEqual(first, ScramClient("SCRAM-SHA-512", "u", "p").first())
        self.assertTrue(first.startswith(b"n,,n=u,r="))


class MisbehavingServerTests(SynchronousTestCase):
    """
    Server messages that must not be trusted.
    """

    def assertRefused(self, serverFirst, words):
        error = self.assertRaises(ScramError, rfcClient().final, serverFirst)
        self.assertIn(words, str(error))
        self.assertNotIn("pencil", str(error))

    def test_nonceNotExtended(self):
        """
        A server nonce that does not start with ours is refused.
        """
        self.assertRefused(b"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce")

    def test_nonceNotLonger(self):
        """
        A server nonce that adds nothing to ours is refused.
        """
        self.assertRefused(f"r={NONCE},s=c2FsdA==,i=4096".encode(), "nonce")

    def test_fewIterations(self):
        """
        Fewer than 4096 iterations (a downgrade) are refused.
        """
        self.assertRefused(f"r={NONCE}x,s=c2FsdA==,i=1".encode(), "iteration count")

    def test_manyIterations(self):
        """
        An iteration count meant to burn CPU is refused.
        """
        self.assertRefused(f"r={NONCE}x,s=c2FsdA==,i=100000000".encode(), "iteration count")

    def test_mandatoryExtension(self):
        """
        A mandatory extension (C{m=}) is refused.
        """
        self.assertRefused(f"m=ext,r={NONCE}x,s=c2FsdA==,i=4096".encode(), "extension")

    def test_missingSalt(self):
        """
        A message without a salt is refused.
        """
        self.assertRefused(f"r={NONCE}x,i=4096".encode(), "lacks s=")

    def test_badSalt(self):
        """
        A salt that is not base64 is refused.
        """
        self.assertRefused(f"r={NONCE}x,s=!!,i=4096".encode(), "base64")

    def test_serverError(self):
        """
        An C{e=} server-final-message is an error naming the server's reason.
        """
        client = rfcClient()
        client.final(SERVER_FIRST)
        error = self.assertRaises(ScramError, client.verify, b"e=invalid-proof")
        self.assertIn("invalid-proof", str(error))

    def test_verifyTooEarly(self):
        """
        A server-final-message before our final message is refused.
        """
        self.assertRaises(ScramError, rfcClient().verify, SERVER_FINAL)

    def test_escapedName(self):
        """
        C{=} and C{,} in the user name are escaped as RFC 5802 says.
        """
        first = ScramClient("SCRAM-SHA-256", "a=b,c", "p", nonce="n").first()
        self.assertEqual(first, b"n,,n=a=3Db=2Cc,r=n")

    def test_unknownMechanism(self):
        """
        Only SCRAM-SHA-256 and SCRAM-SHA-512 are known.
        """
        self.assertRaises(ValueError, ScramClient, "SCRAM-SHA-1", "u", "p")

    def test_sha512(self):
        """
        SCRAM-SHA-512 proofs are 64 bytes.
        """
        client = ScramClient("SCRAM-SHA-512", "user", "pencil", nonce=NONCE)
        final = client.final(SERVER_FIRST)
        proof = base64.b64decode(final.rpartition(b"p=")[2])
        self.assertEqual(len(proof), 64)


class RobustnessTests(SynchronousTestCase):
    """
    Whatever a server sends, the client fails only with L{ScramError}.
    """

    def test_anyServerFirst(self):
        """
        Random server-first-messages (some close to real ones) raise only
        L{ScramError}, or give a final message.
        """
        from hypothesis import given, settings
        from hypothesis import strategies as st

        nearReal = st.builds(
            lambda r, s, i: f"r={NONCE}{r},s={s},i={i}".encode(),
            st.text(max_size=8),
            st.text(max_size=12),
            st.text(max_size=8),
        )

        @settings(max_examples=200, deadline=None)
        @given(st.one_of(st.binary(max_size=64), nearReal))
        def check(serverFirst):
            try:
                rfcClient().final(serverFirst)
            except ScramError:
                pass

        check()

    def test_anyServerFinal(self):
        """
        Random server-final-messages raise only L{ScramError}.
        """
        from hypothesis import given, settings
        from hypothesis import strategies as st

        client = rfcClient()
        client.final(SERVER_FIRST)

        @settings(max_examples=200, deadline=None)
        @given(st.binary(max_size=64))
        def check(serverFinal):
            try:
                client.verify(serverFinal)
            except ScramError:
                pass

        check()
