# -*- test-case-name: tests.test_deprecated -*-
"""
Deprecated: moved to L{gateway.server.policy}, C{ListenerGate} to
L{gateway.server.gate}, C{OncePerInterval} to L{gateway.logs}.
This module re-exports the old names and will be removed in a later release.
"""

import warnings

from gateway.logs import OncePerInterval  # noqa: F401
from gateway.server.gate import ListenerGate  # noqa: F401
from gateway.server.policy import (  # noqa: F401
    CONNECTION_OPTIONS,
    DEFAULT_BACKLOG,
    IDLE_TIMEOUT,
    MAX_AGE,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    ConnectionPolicy,
    configurePort,
    splitOptions,
)

warnings.warn(
    "gateway.connections is deprecated; import from gateway.server.policy (and "
    "ListenerGate from gateway.server.gate, OncePerInterval from gateway.logs)",
    DeprecationWarning,
    stacklevel=2,
)
