# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.server.descriptors}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.server.descriptors import (  # noqa: F401
    DEFAULT_RESERVE,
    DESCRIPTORS,
    DescriptorGuard,
    openDescriptors,
    raiseDescriptorLimit,
)

warnings.warn(
    "gateway.descriptors is deprecated; import from gateway.server.descriptors",
    DeprecationWarning,
    stacklevel=2,
)
