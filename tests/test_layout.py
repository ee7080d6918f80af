# -*- test-case-name: tests.test_layout -*-
"""
Tests for the layout of the source tree: every module's first line names
the test module that tests it (C{# -*- test-case-name: ... -*-}, what
Twisted's tools and editors use to run "the tests of this file"), and that
test module exists.

A header naming a test module that was renamed or never written sends
whoever changes the module to no tests at all; a product module without one
is a module nobody has said where its tests are.
"""

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parents[1]

HEADER = re.compile(r"# -\*- test-case-name: (?P<names>[\w.]+(?:, *[\w.]+)*) -\*-$")

#: The deprecated re-export shims: tested together by one module.
SHIMS = {
    f"gateway/{name}.py"
    for name in (
        "listener",
        "connections",
        "factory",
        "descriptors",
        "reuseport",
        "workers",
        "web",
        "metrics",
        "statuspage",
        "probe",
    )
}
SHIMS_TEST = "tests.test_deprecated"


def productModules():
    """
    :return: the relative paths of the modules whose headers are checked:
        the C{gateway} package, the twistd plugins, and each out-of-tree
        plugin distribution's drop-ins.
    """
    paths = sorted(ROOT.glob("gateway/**/*.py"))
    paths += sorted(ROOT.glob("twisted/plugins/*.py"))
    paths += sorted(ROOT.glob("plugins/*/gateway/plugins/*.py"))
    return [p.relative_to(ROOT).as_posix() for p in paths]


def headerNames(path):
    """
    :return: the test module names of a module's first line, or L{None}
        when it has no header.
    """
    with open(ROOT / path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
    match = HEADER.match(first)
    if match is None:
        return None
    return [name.strip() for name in match["names"].split(",")]


def candidateFiles(path, name):
    """
    Where a test module named in the header of C{path} may be.

    A module of this repository names test modules by their dotted path
    from the repository's root.  An out-of-tree plugin distribution
    (C{plugins/NAME/}) is tested from its own folder, its test modules in
    its C{tests/} folder imported by their bare name (pytest's default
    C{prepend} import mode, without an C{__init__.py}), so a name there may
    also be relative to that folder or its C{tests/}.

    :return: the candidate files.
    """
    relative = Path(*name.split("."))
    roots = [ROOT]
    parts = Path(path).parts
    if parts[0] == "plugins":
        distribution = ROOT / parts[0] / parts[1]
        roots += [distribution, distribution / "tests"]
    return [
        candidate
        for root in roots
        for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py")
    ]


def isTested(path):
    """
    Whether a product module must be named by a header of its own: every
    module of C{gateway} but package C{__init__}s, C{__main__}, the
    built-in plugin drop-ins (C{gateway/plugins/}, tested through the
    registry) and the deprecated shims.
    """
    name = Path(path).name
    return (
        path.startswith("gateway/")
        and name not in ("__init__.py", "__main__.py")
        and not path.startswith("gateway/plugins/")
        and path not in SHIMS
    )


class HeaderTests(SynchronousTestCase):
    """
    The C{test-case-name} headers.
    """

    def test_everyModuleHasAHeader(self):
        """
        Every module of C{gateway}, C{twisted/plugins} and the plugin
        distributions starts with a C{test-case-name} header.
        """
        modules = productModules()
        self.assertIn("gateway/router.py", modules)
        self.assertIn("twisted/plugins/gateway_plugin.py", modules)
        missing = [path for path in modules if headerNames(path) is None]
        self.assertEqual(missing, [])

    def test_headersNameExistingTestModules(self):
        """
        Each test module a header names exists in the repository.
        """
        dangling = {}
        for path in productModules():
            for name in headerNames(path) or ():
                if not any(f.exists() for f in candidateFiles(path, name)):
                    dangling.setdefault(name, []).append(path)
        self.assertEqual(dangling, {})

    def test_headersNameTestModules(self):
        """
        A header names a test module (its last part starts with C{test_}),
        not a helper or a package.
        """
        wrong = {
            path: names
            for path in productModules()
            for names in [headerNames(path) or []]
            if any(not name.rsplit(".", 1)[-1].startswith("test_") for name in names)
        }
        self.assertEqual(wrong, {})

    def test_productModulesHaveTestsOfTheirOwn(self):
        """
        Each product module of C{gateway} (see L{isTested}) names a test
        module of its own kind: not the layout test (which tests no
        behaviour) nor the deprecated paths' test; each shim names the
        deprecated paths' test.
        """
        wrong = {}
        for path in productModules():
            names = headerNames(path) or []
            if path in SHIMS:
                if names != [SHIMS_TEST]:
                    wrong[path] = names
            elif isTested(path) and (not names or {"tests.test_layout", SHIMS_TEST} & set(names)):
                wrong[path] = names
        self.assertEqual(wrong, {})
