"""
The message path's picture, C{docs/message-path.svg}, is rendered from its
source, C{docs/message-path.dot} (the layers' picture has
L{tests.test_architecture}).
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

DOCS = Path(__file__).resolve().parents[2] / "docs"
RENDER = "dot -Tsvg docs/message-path.dot -o docs/message-path.svg"
SVGNS = "{http://www.w3.org/2000/svg}"


class MessagePathTests(SynchronousTestCase):
    """
    C{docs/message-path.svg} against C{docs/message-path.dot}.
    """

    def test_renderedFromSource(self):
        """
        The SVG draws exactly the nodes and edges of the source, each node
        with its label's lines.
        """
        source = (DOCS / "message-path.dot").read_text()
        nodes = {
            name: label.split("\\n")
            for name, label in re.findall(r'^\s*(\w+) \[label="([^"]*)"', source, re.M)
        }
        edges = set(re.findall(r"^\s*(\w+) -> (\w+)", source, re.M))
        drawn, drawnEdges = {}, set()
        for group in ET.parse(DOCS / "message-path.svg").iter(SVGNS + "g"):
            title = group.findtext(SVGNS + "title")
            texts = [text.text or "" for text in group.iter(SVGNS + "text")]
            if group.get("class") == "node":
                drawn[title] = texts
            elif group.get("class") == "edge":
                drawnEdges.add(tuple(title.split("->")))
        self.assertEqual(drawn, nodes, "re-render: " + RENDER)
        self.assertEqual(drawnEdges, edges, "re-render: " + RENDER)
