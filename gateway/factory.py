# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.server.factory}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.server.factory import (  # noqa: F401
    GatewayFactory,
    listenerFactory,
)

warnings.warn(
    "gateway.factory is deprecated; import from gateway.server.factory",
    DeprecationWarning,
    stacklevel=2,
)
