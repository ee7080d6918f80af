"""
Tests for L{tests.docs.snippets}: the examples are found, and every one
either runs or says why it cannot.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.docs import snippets
from tests.support.files import temporaryDirectory


class SnippetTests(SynchronousTestCase):
    """
    The examples of the README and C{docs/}.
    """

    def test_markers(self):
        """
        The marker on the line before a fence sets the example's kind and
        reason; an unmarked example runs; other languages are left out.
        """
        page = str(snippets.Path(temporaryDirectory(self)) / "page.md")
        with open(page, "w") as f:
            f.write(
                "text\n\n"
                "<!-- docs-snippet: skip (a synopsis (not a command)) -->\n"
                "```sh\ntwistd -n gateway [options]\n```\n\n"
                "```python\nprint(1)\n```\n\n"
                "<!-- docs-snippet: gateway -->\n```sh\ntwistd -n gateway\n```\n\n"
                "```ini\n[Service]\n```\n"
            )
        found = snippets.snippets(page, root=snippets.Path(page).parent)
        self.assertEqual(
            [(s.line, s.language, s.kind, s.reason, s.text) for s in found],
            [
                (4, "sh", "skip", "a synopsis (not a command)", "twistd -n gateway [options]\n"),
                (8, "python", None, None, "print(1)\n"),
                (13, "sh", "gateway", None, "twistd -n gateway\n"),
            ],
        )

    def test_everySkipHasAReason(self):
        """
        Every skipped example of the documentation says why.
        """
        unexplained = [str(s) for s in snippets.allSnippets() if s.kind == "skip" and not s.reason]
        self.assertEqual(unexplained, [])

    def test_oneGatewayAndSomeToRun(self):
        """
        Exactly one example starts the gateway the others talk to, and the
        quick start's examples are among those that run.
        """
        found = snippets.allSnippets()
        self.assertEqual([s.path for s in found if s.kind == "gateway"], ["docs/quickstart.md"])
        running = {s.path for s in found if s.kind is None}
        self.assertIn("docs/quickstart.md", running)
        self.assertIn("README.md", running)
