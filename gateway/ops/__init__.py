# -*- test-case-name: tests.test_layout -*-
"""
The operations layer: the HTTP site, metrics, the status page, the
readiness command and the Kafka connection count.
"""
