# -*- test-case-name: tests.compat.test_checked -*-
"""
Every compatibility module says which version of its library it was checked
against, and has its own behaviour tests.

A newer installed library is not a failure here: the behaviour tests in this
package are what fail when an entry disappears or changes.  It is reported
as a warning naming the library and both versions, so that whoever upgrades
re-reads the module and moves its C{CHECKED} forward.  An installed library
I{older} than the one checked against is a failure: the entries were never
checked on it.
"""

import importlib
import pkgutil
import warnings
from importlib.metadata import packages_distributions, version
from pathlib import Path

from packaging.version import Version
from twisted.trial.unittest import SynchronousTestCase

import gateway.compat


def compatModules():
    """
    :return: C{{library import name: compat module}} for every module of
        L{gateway.compat}.
    """
    return {
        info.name: importlib.import_module(f"gateway.compat.{info.name}")
        for info in pkgutil.iter_modules(gateway.compat.__path__)
        # A private module (the accelerated path's C extension) serves one.
        if not info.name.startswith("_")
    }


class CheckedTests(SynchronousTestCase):
    """
    Each module's C{CHECKED} against the installed library.
    """

    def test_modulesFound(self):
        """
        The libraries fenced today are all found (so the tests below do not
        pass on an empty list).
        """
        self.assertTrue({"automat", "pykafka", "twisted"} <= set(compatModules()))

    def test_checkedAgainstInstalled(self):
        """
        Each module names a version of its library (the distribution that
        provides the module's name) no newer than the one installed; a newer
        installed one is a warning naming the library and both versions.
        """
        distributions = packages_distributions()
        for name, module in compatModules().items():
            self.assertIsInstance(
                getattr(module, "CHECKED", None), str, f"{module.__name__} has no CHECKED"
            )
            # twisted/plugins/ makes the gateway a provider of "twisted" too.
            [distribution] = set(distributions[name]) - {"kafka-gateway"}
            installed, checked = Version(version(distribution)), Version(module.CHECKED)
            self.assertLessEqual(
                checked,
                installed,
                f"{distribution} {installed} is installed, older than the {checked} "
                f"{module.__name__} was checked against",
            )
            if checked != installed:
                warnings.warn(
                    f"{module.__name__} was checked against {distribution} {checked}, "
                    f"{installed} is installed: re-check its entries (its tests pass) "
                    f"and move CHECKED forward",
                    stacklevel=1,
                )

    def test_eachHasTests(self):
        """
        Each module has a test module of its name in this package.
        """
        here = Path(__file__).parent
        for name in compatModules():
            self.assertTrue((here / f"test_{name}.py").exists(), f"no tests/compat/test_{name}.py")
