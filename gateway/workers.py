# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.server.workers}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.server.workers import *  # noqa: F403
from gateway.server.workers import __all__  # noqa: F401

warnings.warn(
    "gateway.workers is deprecated; import from gateway.server.workers",
    DeprecationWarning,
    stacklevel=2,
)
