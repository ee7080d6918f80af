# -*- test-case-name: tests.integration.test_devkafka -*-
"""
A blocking, dependency-free Kafka probe: ApiVersions v0, then Metadata.

Readiness is decided with a real Kafka request on the bootstrap port rather
than with a client library, so it depends neither on librdkafka's logging nor
on its reconnect timers. Kafka 4 dropped Metadata v0-v3, so the Metadata
version is picked from the broker's ApiVersions answer.  Request headers,
ApiVersions and the blocking exchange are the gateway's own Kafka codec's
(L{gateway.kafka.wire}, installed alongside); only Metadata is decoded here.
"""

import socket
import struct
from collections import namedtuple

from gateway.kafka.wire import (
    API_METADATA,
    MalformedResponse,
    blockingCall,
    decodeApiVersionsResponse,
    encodeApiVersionsRequest,
    encodeRequest,
    versionRange,
)

__all__ = ["ClusterInfo", "ProbeError", "probeMetadata"]

_CLIENT_ID = b"devkafka-probe"
#: Highest non-flexible Metadata version; v9+ use compact encodings.
_MAX_METADATA = 8

#: What the broker said about the cluster.
ClusterInfo = namedtuple("ClusterInfo", "brokers clusterId controllerId metadataVersion")
ClusterInfo.__doc__ = """
Answer to a Metadata request.

:ivar brokers: list of ``(nodeId, host, port)``.
:ivar clusterId: the cluster id (``None`` before Metadata v2).
:ivar controllerId: the node id the broker reports as controller.
:ivar metadataVersion: the Metadata request version used.
"""


class ProbeError(Exception):
    """
    The broker did not answer, or answered something unexpected.
    """


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def unpack(self, fmt):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def string(self):
        size = self.unpack(">h")
        if size < 0:
            return None
        value = self.data[self.pos : self.pos + size].decode("utf-8", "replace")
        self.pos += size
        return value


def _metadataRange(sock):
    answer = decodeApiVersionsResponse(
        blockingCall(sock, encodeApiVersionsRequest(1, _CLIENT_ID), 1)
    )
    if answer.errorCode:
        raise ProbeError(f"ApiVersions error code {answer.errorCode}")
    metadata = versionRange(answer.apiKeys, API_METADATA)
    if metadata is None:
        raise ProbeError("broker offers no Metadata API")
    return metadata


def _metadataBody(version):
    # Ask for no topic (v0 has no way to say so: an empty list means all).
    body = struct.pack(">i", 0)
    if version >= 4:
        body += struct.pack(">?", False)  # allow_auto_topic_creation
    if version >= 8:
        body += struct.pack(">??", False, False)  # authorized operations
    return body


def probeMetadata(host, port, timeout=5.0):
    """
    Ask a broker for cluster metadata over a fresh connection.

    :param host: broker host.
    :param port: broker port.
    :param timeout: seconds for connecting and for each reply.
    :return: a :class:`ClusterInfo`.
    :raises ProbeError: if the broker does not answer properly.
    :raises OSError: if it cannot be reached.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            return _metadata(sock)
        except MalformedResponse as e:
            raise ProbeError(str(e)) from e


def _metadata(sock):
    low, high = _metadataRange(sock)
    version = min(high, _MAX_METADATA)
    if version < low:
        raise ProbeError(f"broker needs Metadata v{low}+ (flexible versions)")
    request = encodeRequest(API_METADATA, version, 2, _CLIENT_ID, _metadataBody(version))
    reply = _Reader(blockingCall(sock, request, 2))
    reply.unpack(">i")  # correlation_id, checked by blockingCall
    if version >= 3:
        reply.unpack(">i")  # throttle_time_ms
    brokers = []
    for _ in range(reply.unpack(">i")):
        nodeId = reply.unpack(">i")
        brokerHost = reply.string()
        brokerPort = reply.unpack(">i")
        if version >= 1:
            reply.string()  # rack
        brokers.append((nodeId, brokerHost, brokerPort))
    clusterId = reply.string() if version >= 2 else None
    controllerId = reply.unpack(">i") if version >= 1 else -1
    return ClusterInfo(brokers, clusterId, controllerId, version)
