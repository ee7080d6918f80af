# -*- test-case-name: tests.integration.test_devkafka -*-
"""
A real Apache Kafka broker on loopback for development, tests and benchmarks.

Jars come from Maven Central (see ``pom.xml``), are cached under
``$GATEWAY_DEVKAFKA_HOME`` or ``./.devkafka``, and run as one KRaft node.
Command line: ``python -m devkafka --help``; docs: ``docs/devkafka.md``.
"""

from ._broker import DevKafka, freePort
from ._certs import Certificates, makeCertificates
from ._consume import Record, consume, iterRecords
from ._fetch import VERSIONS, DevKafkaError, defaultHome, resolveVersion
from ._probe import ClusterInfo, ProbeError, probeMetadata

__all__ = [
    "VERSIONS",
    "Certificates",
    "ClusterInfo",
    "DevKafka",
    "DevKafkaError",
    "ProbeError",
    "Record",
    "consume",
    "defaultHome",
    "freePort",
    "iterRecords",
    "makeCertificates",
    "probeMetadata",
    "resolveVersion",
]
