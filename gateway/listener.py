# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.server.listener}, C{formatAddress} to
L{gateway.addresses}, C{HTTPService} to L{gateway.ops.http}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.addresses import formatAddress  # noqa: F401
from gateway.ops.http import HTTPService  # noqa: F401
from gateway.server.listener import (  # noqa: F401
    ListenerConfig,
    ListenerService,
    ListenerStats,
    listenNow,
)

warnings.warn(
    "gateway.listener is deprecated; import from gateway.server.listener (and "
    "formatAddress from gateway.addresses, HTTPService from gateway.ops.http)",
    DeprecationWarning,
    stacklevel=2,
)
