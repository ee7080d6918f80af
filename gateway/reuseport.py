# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.server.reuseport}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.server.reuseport import *  # noqa: F403
from gateway.server.reuseport import __all__  # noqa: F401

warnings.warn(
    "gateway.reuseport is deprecated; import from gateway.server.reuseport",
    DeprecationWarning,
    stacklevel=2,
)
