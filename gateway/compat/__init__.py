# -*- test-case-name: tests.test_layout -*-
"""
What the gateway relies on in its libraries beyond their public API: one
module per library, each entry with the version it was checked against and
a test (C{tests/compat/}) that fails when it disappears or changes.
"""
