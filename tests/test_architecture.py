# -*- test-case-name: tests.test_architecture -*-
"""
C{docs/architecture.md} against the tree: its picture's layers are the
import-linter contract's, the rendered picture is its source's, and the page
names every package and module under C{gateway/} and only paths that exist.
A layer, package or module added without the page is a failing test here.
"""

import ast
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"
PAGE = ROOT / "docs" / "architecture.md"
DOT = ROOT / "docs" / "architecture.dot"
SVG = ROOT / "docs" / "architecture.svg"
RENDER = "dot -Tsvg docs/architecture.dot -o docs/architecture.svg"
SVGNS = "{http://www.w3.org/2000/svg}"


def parseLayer(text):
    """
    One line of a C{layers} contract, normalised.

    :param text: for example C{"server | kafka"} or C{"service : testing"}.
    :return: C{(separator, names)}: C{"|"} (independent siblings), C{":"}
        (siblings that may import each other) or C{None} for a single
        module, and the layer's module names in order.
    """
    for separator in "|:":
        if separator in text:
            return separator, tuple(name.strip() for name in text.split(separator))
    return None, (text.strip(),)


def contractLayers():
    """
    The layers of the import-linter contract on C{gateway}, top first.
    """
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = [
        contract
        for contract in config["tool"]["importlinter"]["contracts"]
        if contract["type"] == "layers" and contract.get("containers") == ["gateway"]
    ]
    assert len(contracts) == 1, contracts
    return [parseLayer(layer) for layer in contracts[0]["layers"]]


def dotBlock(source, start):
    """
    The text between the brace opening at C{start} and its match.
    """
    depth = 0
    for index in range(start, len(source)):
        if source[index] == "{":
            depth += 1
        elif source[index] == "}":
            depth -= 1
            if depth == 0:
                return source[start + 1 : index]
    raise ValueError("unbalanced braces in " + str(DOT))


def dotNodes(text):
    """
    The node declarations in a piece of DOT source: C{{id: label lines}}.
    """
    return {
        name: label.split("\\n")
        for name, label in re.findall(r'^\s*(\w+)\s*\[label="((?:[^"\\]|\\.)*)"', text, re.M)
    }


def pictureLayers():
    """
    The layers drawn in C{docs/architecture.dot}, top first: each
    C{cluster_layerN} cluster's label, parsed like a contract line, and the
    ids of the nodes inside it.
    """
    source = DOT.read_text()
    layers = []
    for match in re.finditer(r"subgraph\s+cluster_layer(\d+)\s*\{", source):
        body = dotBlock(source, match.end() - 1)
        label = re.search(r'\blabel="([^"]*)"', body).group(1)
        layers.append((int(match.group(1)), parseLayer(label), tuple(dotNodes(body))))
    layers.sort()
    return [(layer, nodes) for _, layer, nodes in layers]


def isShim(path):
    """
    Whether a module is a deprecated re-export: its docstring says so.
    """
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return docstring.startswith("Deprecated")


def githubAnchor(heading):
    """
    The fragment GitHub gives a Markdown heading.
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


class PictureTests(SynchronousTestCase):
    """
    The picture's source and its rendering against the import-linter contract.
    """

    def test_layersAreTheContracts(self):
        """
        The clusters of C{docs/architecture.dot}, top to bottom, are the
        lines of the C{layers} contract in C{pyproject.toml}, with the same
        modules and the same kind of siblings (C{|} or C{:}).
        """
        drawn = [layer for layer, _ in pictureLayers()]
        self.assertEqual(drawn, contractLayers())

    def test_layerNodesAreItsModules(self):
        """
        Each layer's cluster holds one node per module of its label, named
        like the module, so the boxes say what the contract says.
        """
        for (_, names), nodes in pictureLayers():
            self.assertEqual(sorted(nodes), sorted(names))

    def test_renderingShowsTheSource(self):
        """
        C{docs/architecture.svg} has exactly the nodes of the source, each
        with the lines of its label, and every layer's label: a change to the
        source that was not rendered fails here (render with C{RENDER}).
        """
        tree = ET.parse(SVG)
        rendered = {}
        clusterLabels = set()
        for group in tree.iter(SVGNS + "g"):
            title = group.findtext(SVGNS + "title")
            texts = [text.text or "" for text in group.iter(SVGNS + "text")]
            if group.get("class") == "node":
                rendered[title] = texts
            elif group.get("class") == "cluster":
                clusterLabels.update(texts)
        source = dotNodes(DOT.read_text())
        self.assertEqual(rendered, source, "re-render: " + RENDER)
        for (separator, names), _ in pictureLayers():
            label = f" {separator} ".join(names) if separator else names[0]
            self.assertIn(label, clusterLabels, "re-render: " + RENDER)


class PageTests(SynchronousTestCase):
    """
    C{docs/architecture.md} against the files under C{gateway/}.
    """

    def setUp(self):
        self.page = PAGE.read_text()

    def test_namesEveryPackageAndModule(self):
        """
        The page names every package (C{gateway/NAME/}) and top-level module
        (C{gateway/NAME.py}) of the gateway, and every public module of each
        package (C{PACKAGE/NAME.py}); deprecated re-exports and C{__init__}
        are left out, private C{_name.py} modules too.
        """
        missing = []
        for path in sorted(GATEWAY.iterdir()):
            if path.is_dir() and (path / "__init__.py").exists():
                if f"gateway/{path.name}/" not in self.page:
                    missing.append(f"gateway/{path.name}/")
                for module in sorted(path.glob("*.py")):
                    if module.name.startswith("_"):
                        continue
                    if f"{path.name}/{module.name}" not in self.page:
                        missing.append(f"gateway/{path.name}/{module.name}")
            elif path.suffix == ".py" and not path.name.startswith("_"):
                if not isShim(path) and f"gateway/{path.name}" not in self.page:
                    missing.append(f"gateway/{path.name}")
        self.assertEqual(missing, [])

    def test_namesEveryDeprecatedPath(self):
        """
        Every deprecated re-export under C{gateway/} is named on the page by
        its import path, C{gateway.NAME}.
        """
        shims = [path.stem for path in sorted(GATEWAY.glob("*.py")) if isShim(path)]
        self.assertNotEqual(shims, [])
        self.assertEqual([name for name in shims if f"`gateway.{name}`" not in self.page], [])

    def test_pathsExist(self):
        """
        Every path the page quotes exists: from the repository's root, or
        under C{gateway/} for the short C{PACKAGE/NAME.py} form.
        """
        missing = []
        for quoted in re.findall(r"`([^`\s]+)`", self.page):
            path = quoted.removeprefix("./")
            # Not paths: commands in .venv/, URLs and the HTTP site's paths.
            if "/" not in path or path.startswith((".venv/", "/", "http")):
                continue
            if not ((ROOT / path).exists() or (GATEWAY / path).exists()):
                missing.append(quoted)
        self.assertEqual(missing, [])

    def test_linksResolve(self):
        """
        Every relative link on the page leads to a file that exists, and a
        link to a heading (of that file, or of the page itself) to a heading
        that exists.
        """
        broken = []
        for target in re.findall(r"\]\(([^)\s]+)\)", self.page):
            if re.match(r"\w+:", target):
                continue
            name, _, fragment = target.partition("#")
            # A link to a heading of the page itself has no file name.
            linked = (PAGE.parent / name).resolve() if name else PAGE
            if not linked.exists():
                broken.append(target)
            elif fragment:
                headings = re.findall(r"^#+\s+(.*)$", linked.read_text(), re.M)
                if fragment not in {githubAnchor(heading) for heading in headings}:
                    broken.append(target)
        self.assertEqual(broken, [])
