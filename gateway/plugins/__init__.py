# -*- test-case-name: tests.test_registry -*-
"""
The framing plugin namespace: every C{gateway/plugins/} directory on
C{sys.path} contributes modules, so other distributions add framings here
without touching C{twisted.plugins}.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__ = []
