# -*- test-case-name: tests.test_packaging -*-
"""
A Twisted gateway from many TCP clients to one shared Kafka producer.

Importing this package imports nothing from Twisted's networking, so the
twistd plugin scan stays cheap (see ``twisted/plugins/gateway_plugin.py``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
