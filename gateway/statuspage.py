# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.ops.statuspage}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.ops.statuspage import *  # noqa: F403
from gateway.ops.statuspage import __all__  # noqa: F401

warnings.warn(
    "gateway.statuspage is deprecated; import from gateway.ops.statuspage",
    DeprecationWarning,
    stacklevel=2,
)
