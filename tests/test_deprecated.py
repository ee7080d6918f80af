# -*- test-case-name: tests.test_deprecated -*-
"""
Tests for the deprecated import paths (C{gateway.listener},
C{gateway.connections}, C{gateway.web}, ...): each still gives the same
objects as the module they moved to, and warns once imported, naming where
to import from now.
"""

import ast
import importlib
import sys
import warnings
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import gateway

#: The old paths the changelog lists as deprecated.
SHIMS = [
    "connections",
    "descriptors",
    "factory",
    "listener",
    "metrics",
    "probe",
    "reuseport",
    "statuspage",
    "web",
    "workers",
]


def reExports(name):
    """
    :return: C{(new module, name)} for every name the shim C{gateway.NAME}
        imports, read from its source (C{*} expanded to the module's
        C{__all__}).
    """
    source = (Path(gateway.__file__).parent / f"{name}.py").read_text()
    pairs = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                names = module.__all__ if alias.name == "*" else [alias.name]
                pairs += [(module, n) for n in names]
    return pairs


def freshImport(name):
    """
    Import C{gateway.NAME} again, recording the warnings it gives.

    :return: the module and the warnings.
    """
    sys.modules.pop(f"gateway.{name}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(f"gateway.{name}")
    return module, caught


class DeprecatedPathsTests(SynchronousTestCase):
    """
    The shims in L{SHIMS}.
    """

    def test_shimsAreTheModulesLeft(self):
        """
        L{SHIMS} lists exactly the top-level modules of C{gateway} whose
        docstring says they are deprecated.
        """
        root = Path(gateway.__file__).parent
        deprecated = {
            path.stem
            for path in root.glob("*.py")
            if (ast.get_docstring(ast.parse(path.read_text())) or "").startswith("Deprecated")
        }
        self.assertEqual(deprecated, set(SHIMS))

    def test_warnsNamingTheNewPath(self):
        """
        Importing a shim gives one L{DeprecationWarning} naming the old path
        and each module it re-exports from.
        """
        for name in SHIMS:
            _, caught = freshImport(name)
            messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
            self.assertEqual(len(messages), 1, (name, messages))
            self.assertIn(f"gateway.{name} is deprecated", messages[0])
            moved = {m.__name__ for m, _ in reExports(name)} - {
                "gateway.addresses",
                "gateway.logs",
            }
            for module in moved:
                self.assertIn(module, messages[0], name)

    def test_sameObjects(self):
        """
        Every name a shim re-exports is the very object of the module it
        moved to, so C{isinstance} checks and patches keep working.
        """
        for name in SHIMS:
            shim, _ = freshImport(name)
            pairs = reExports(name)
            self.assertTrue(pairs, name)
            for module, attribute in pairs:
                self.assertIs(
                    getattr(shim, attribute), getattr(module, attribute), (name, attribute)
                )
