# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.ops.readiness}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.ops.readiness import *  # noqa: F403
from gateway.ops.readiness import __all__  # noqa: F401

warnings.warn(
    "gateway.probe is deprecated; import from gateway.ops.readiness",
    DeprecationWarning,
    stacklevel=2,
)
