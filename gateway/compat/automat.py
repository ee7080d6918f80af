# -*- test-case-name: tests.compat.test_automat -*-
"""
What the gateway relies on in Automat (through Twisted's C{ClientService})
beyond Twisted's public API: the exception a state machine raises for an
input it has no transition for.  C{tests/compat/test_automat.py} checks it.
"""

from automat import NoTransition

__all__ = ["CHECKED", "NoTransition"]

#: The Automat version this was checked against.
CHECKED = "25.4.16"
