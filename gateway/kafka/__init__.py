# -*- test-case-name: tests.kafka.test_producer -*-
"""
The process's one Kafka producer and what it needs.
"""

from gateway.kafka.producer import KafkaProducerService, producerConfig

__all__ = ["KafkaProducerService", "producerConfig"]
