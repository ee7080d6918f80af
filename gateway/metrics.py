# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.ops.metrics}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.ops.metrics import *  # noqa: F403
from gateway.ops.metrics import __all__  # noqa: F401

warnings.warn(
    "gateway.metrics is deprecated; import from gateway.ops.metrics",
    DeprecationWarning,
    stacklevel=2,
)
