# -*- test-case-name: tests.test_registry -*-
"""
The producer backends shipped with the gateway, as plugins.  Their client
libraries are imported only when a backend is used.
"""

from gateway.kafka._pykafka import PykafkaBackend
from gateway.kafka.confluent import ConfluentBackend

confluent = ConfluentBackend()
pykafka = PykafkaBackend()
