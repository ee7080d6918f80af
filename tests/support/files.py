# -*- test-case-name: tests.test_support -*-
"""
Temporary directories for tests, outside the working tree (trial's
C{mktemp} makes them under the current directory, which under pytest is the
repository), removed after the test.
"""

import tempfile

__all__ = ["temporaryDirectory"]


def temporaryDirectory(testCase):
    """
    :param testCase: the running test; the directory is removed at its end.
    :return: the path of a new empty directory.
    """
    directory = tempfile.TemporaryDirectory()
    testCase.addCleanup(directory.cleanup)
    return directory.name
