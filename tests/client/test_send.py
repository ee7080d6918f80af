# -*- test-case-name: tests.client.test_send -*-
"""
C{gateway-send}, run as a process of its own (so its reactor thread is the
real one) against L{tests.client.ackserver.AckServer} on loopback: what it
prints and its exit status, refusals, a dropped connection, silence, no
listener, and a bad command line.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from gateway.client import Deduplicator
from tests.client.ackserver import AckServer

ROOT = Path(__file__).resolve().parent.parent.parent


def gatewaySend(*argv, stdin=b""):
    """
    Run C{gateway-send} from this checkout.

    :return: the L{subprocess.CompletedProcess}, with text output.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "gateway.client.send", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


class SendTests(SynchronousTestCase):
    """
    C{gateway-send} against a listener in ack mode.
    """

    def serve(self, **kwargs):
        server = AckServer(**kwargs).start()
        self.addCleanup(server.stop)
        return server

    def test_stdin(self):
        """
        Each non-empty line of stdin is one message; when all are confirmed
        it says how many, with the session, and exits 0.
        """
        server = self.serve()
        done = gatewaySend("--session", "s1", server.address, stdin=b"one\n\ntwo\nthree")
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        self.assertEqual(
            done.stdout, "gateway-send: 3 messages confirmed (session s1, next seq 4)\n"
        )
        self.assertEqual(server.handshakes, [b"SESSION s1 1\n"])
        self.assertEqual(
            server.records, [("s1", 1, b"one"), ("s1", 2, b"two"), ("s1", 3, b"three")]
        )

    def test_filesAndRefusal(self):
        """
        Lines are read from the files in order; a refused message makes the
        exit status 1, and stderr names how many and why.
        """
        server = self.serve()
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        first, second = directory / "first", directory / "second"
        first.write_bytes(b"a\nrefuse-me\n")
        second.write_bytes(b"b\n")
        done = gatewaySend(server.address, str(first), str(second))
        self.assertEqual(done.returncode, 1)
        self.assertIn("gateway-send: 2 messages confirmed", done.stdout)
        self.assertEqual(
            done.stderr, "gateway-send: 1 of 3 messages not confirmed (1 refused: 2 too-large)\n"
        )
        self.assertEqual([payload for _, _, payload in server.records], [b"a", b"refuse-me", b"b"])

    def test_resendAfterDrop(self):
        """
        The listener closes the connection with three messages
        unacknowledged: gateway-send reconnects, resumes the session at the
        first of them and resends from there.  Every message is confirmed;
        the listener saw those three twice, and L{Deduplicator} drops
        exactly those copies.
        """
        server = self.serve(dropAfter=10)
        lines = b"".join(b"m%d\n" % n for n in range(1, 21))
        done = gatewaySend("--session", "r", "--window", "5", server.address, stdin=lines)
        self.assertEqual((done.returncode, done.stderr), (0, ""), done)
        self.assertIn("20 messages confirmed", done.stdout)
        self.assertEqual(server.handshakes, [b"SESSION r 1\n", b"SESSION r 8\n"])
        dedup = Deduplicator()
        unique = [
            payload
            for session, seq, payload in server.records
            if not dedup.isDuplicate([("gateway-session", session), ("gateway-seq", str(seq))])
        ]
        self.assertEqual(unique, [b"m%d" % n for n in range(1, 21)])
        self.assertEqual(dedup.duplicates, 3)

    def test_unacknowledged(self):
        """
        Without acknowledgements within the timeout, it exits 1 naming how
        many are unacknowledged and how to resend them.
        """
        server = self.serve(silent=True)
        done = gatewaySend("--session", "q", "--timeout", "1", server.address, stdin=b"a\nb\n")
        self.assertEqual(done.returncode, 1)
        self.assertIn("0 messages confirmed", done.stdout)
        self.assertEqual(
            done.stderr,
            "gateway-send: 2 of 2 messages not confirmed (2 unacknowledged after 1 s; "
            "to resend from message 1: --session q --first-seq 1)\n",
        )

    def test_cannotConnect(self):
        """
        Nothing listening: one line on stderr naming the address, exit 1.
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        done = gatewaySend(f"127.0.0.1:{port}", stdin=b"a\n")
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertTrue(
            done.stderr.startswith(f"gateway-send: cannot connect to 127.0.0.1:{port}: "),
            done.stderr,
        )
        self.assertIn("refused", done.stderr)
        self.assertEqual(done.stderr.count("\n"), 1, done.stderr)

    def test_badFraming(self):
        """
        A framing without message boundaries is a usage error (exit 2).
        """
        done = gatewaySend("--framing", "chunks", "127.0.0.1:1")
        self.assertEqual(done.returncode, 2)
        self.assertIn("framing 'chunks' has no message boundaries", done.stderr)
