"""
C{docs/troubleshooting.md} lists every warning and error the gateway logs
(L{tests.docs.logmessages}).
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.docs.logmessages import ROOT, messages

PAGE = ROOT / "docs" / "troubleshooting.md"


class TroubleshootingTests(SynchronousTestCase):
    """
    The troubleshooting page against the code.
    """

    def test_everyMessageListed(self):
        """
        Every message logged at warning level or above is on the page, as
        written in the code, in a table row of its own.
        """
        page = PAGE.read_text()
        missing = [
            f"{where}: {text}" for _, text, where in messages() if f"| `{text}` |" not in page
        ]
        self.assertEqual(missing, [], "add them to docs/troubleshooting.md")

    def test_messagesFound(self):
        """
        The extraction finds the messages of plain calls, of concatenated
        formats and of the probe's helper.
        """
        texts = {text for _, text, _ in messages()}
        self.assertIn("pausing {count} client connections: {why}", texts)
        self.assertIn(
            "Kafka probe: malformed reply from {peer}: {error}; closing the connection", texts
        )
        self.assertTrue(any(t.startswith("Kafka producer stopped: ") for t in texts))
        self.assertGreater(len(texts), 30)
