# -*- test-case-name: tests.test_layout -*-
"""
The server layer: listeners, connection policy and hygiene, descriptors,
reuseport and workers.
"""
