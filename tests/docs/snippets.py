# -*- test-case-name: tests.docs.test_snippets -*-
"""
The shell and Python examples of the documentation, found so that a test
can run them (L{tests.integration.test_doc_snippets}) against a real gateway
and broker.

An example is a fenced block of C{sh} or C{python} in C{README.md} or a page
of C{docs/}.  The HTML comment on the line before it may say how to treat
it::

    <!-- docs-snippet: skip (the reason it cannot run) -->
    <!-- docs-snippet: gateway -->

C{skip} needs its reason; C{gateway} marks the command that starts the
gateway the other examples talk to.  Every other example runs, in the order
of the pages.
"""

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("sh", "python")
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- docs-snippet: (?P<kind>skip|gateway)(?: \((?P<reason>.+)\))? -->$")


@dataclass(frozen=True)
class Snippet:
    """
    One example.

    @ivar path: its page, relative to the repository.
    @ivar line: the line of its opening fence.
    @ivar language: C{"sh"} or C{"python"}.
    @ivar text: the code.
    @ivar kind: L{None} (run it), C{"skip"} or C{"gateway"}.
    @ivar reason: why it is skipped.
    """

    path: str
    line: int
    language: str
    text: str
    kind: object = None
    reason: object = None

    def __str__(self):
        return f"{self.path}:{self.line}"


def pages(root=ROOT):
    """
    @return: the pages whose examples run: the README and C{docs/*.md}
        (C{docs/reference/} is generated and has none).
    """
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def snippets(path, root=ROOT):
    """
    @return: the L{Snippet}s of one page.
    """
    lines = Path(path).read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start, language = index, fence.group(1)
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if language in LANGUAGES:
            marker = _MARKER.match(lines[start - 1].strip()) if start else None
            found.append(
                Snippet(
                    str(Path(path).relative_to(root)),
                    start + 1,
                    language,
                    "\n".join(lines[start + 1 : end]) + "\n",
                    marker["kind"] if marker else None,
                    marker["reason"] if marker else None,
                )
            )
        index = end + 1
    return found


def allSnippets(root=ROOT):
    """
    @return: every L{Snippet} of every page, in reading order.
    """
    return [snippet for page in pages(root) for snippet in snippets(page, root)]
