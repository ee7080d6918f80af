# -*- test-case-name: tests.client.test_wire -*-
"""
The acknowledgement protocol's text: the handshake, the replies, session ids.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.client.wire import Ack, Nack, checkSession, handshake, newSession, parseReply


class SessionTests(SynchronousTestCase):
    """
    L{checkSession} and L{newSession}.
    """

    def test_accepted(self):
        """
        One to 64 printable ASCII characters without spaces are a session id.
        """
        for session in ("a", "x" * 64, "device-7/boot:3", "!~"):
            self.assertEqual(checkSession(session), session)

    def test_refused(self):
        """
        Empty, longer than 64, with a space or a control character, not
        ASCII, or not a string: refused, naming what was expected.
        """
        for session in ("", "x" * 65, "a b", "a\tb", "caf\xe9", b"abc", None, 7):
            e = self.assertRaises(ValueError, checkSession, session)
            self.assertIn("1 to 64 printable ASCII characters without spaces", str(e))

    def test_newSession(self):
        """
        A new session id is valid and different each time.
        """
        first, second = newSession(), newSession()
        self.assertEqual(checkSession(first), first)
        self.assertNotEqual(first, second)


class HandshakeTests(SynchronousTestCase):
    """
    L{handshake}.
    """

    def test_text(self):
        """
        C{SESSION <id> <first-seq>}, ASCII, one space each.
        """
        self.assertEqual(handshake("abc", 1), b"SESSION abc 1")
        self.assertEqual(handshake("s-1", 1234567), b"SESSION s-1 1234567")

    def test_badNumber(self):
        """
        The first number is a whole number of at least 1.
        """
        for number in (0, -1, True, "1", 1.0):
            e = self.assertRaises(ValueError, handshake, "abc", number)
            self.assertIn(">= 1", str(e))

    def test_badSession(self):
        """
        The session id is checked.
        """
        self.assertRaises(ValueError, handshake, "a b", 1)


class ReplyTests(SynchronousTestCase):
    """
    L{parseReply}.
    """

    def test_ack(self):
        """
        C{ACK <k>} is an L{Ack} up to k.
        """
        self.assertEqual(parseReply(b"ACK 5"), Ack(5))
        self.assertEqual(parseReply(b"ACK 0"), Ack(0))
        self.assertEqual(parseReply(b"ACK 18446744073709551616"), Ack(2**64))

    def test_nack(self):
        """
        C{NACK <seq> <reason>} is a L{Nack} with the one-word reason.
        """
        self.assertEqual(parseReply(b"NACK 3 too-large"), Nack(3, "too-large"))

    def test_malformed(self):
        """
        Anything else is a L{ValueError}: other words, missing or extra
        fields, signs, spaces around.
        """
        for payload in (
            b"",
            b"ACK",
            b"ACK ",
            b"ACK -1",
            b"ACK +1",
            b"ACK 1 2",
            b" ACK 1",
            b"ack 1",
            b"NACK 3",
            b"NACK 3 two words",
            b"NACK x reason",
            b"SESSION a 1",
        ):
            self.assertRaises(ValueError, parseReply, payload)
