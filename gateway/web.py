# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.ops.web}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.ops.web import (  # noqa: F401
    buildSite,
)

warnings.warn(
    "gateway.web is deprecated; import from gateway.ops.web",
    DeprecationWarning,
    stacklevel=2,
)
