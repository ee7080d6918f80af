# -*- test-case-name: tests.kafka.test_wire -*-
"""
The few Kafka wire-protocol messages the gateway writes itself, in one place:
the health probe (L{gateway.kafka._probe}), the pykafka backend's Kafka 4
check (L{gateway.kafka._pykafkaworker}) and the development broker's
readiness probe all speak ApiVersions v0, and must agree on its bytes.

Pure functions over bytes, except L{blockingCall}, which drives any object
with C{sendall}/C{recv} (a blocking socket).

Wire format (U{https://kafka.apache.org/protocol.html}), every integer
big-endian, every message preceded by its INT32 size:

 - request header v1: C{api_key INT16, api_version INT16, correlation_id
   INT32, client_id NULLABLE_STRING (INT16 size + bytes)}; ApiVersions v0
   has an empty body;
 - response header v0: C{correlation_id INT32}; ApiVersions v0 body:
   C{error_code INT16, api_keys ARRAY (INT32 count) of (api_key INT16,
   min_version INT16, max_version INT16)}.

ApiVersions is the cheapest request a broker serves (no topic, no log, no
authorisation) and every Kafka from 0.10 to 4.x answers version 0.
"""

import struct
from collections import namedtuple

__all__ = [
    "API_METADATA",
    "API_PRODUCE",
    "API_VERSIONS",
    "ApiVersions",
    "MalformedResponse",
    "blockingCall",
    "correlationIdOf",
    "decodeApiVersionsResponse",
    "encodeApiVersionsRequest",
    "encodeEmptyProduceRequest",
    "encodeRequest",
    "framed",
    "versionRange",
]

#: Kafka's api_key for Produce.
API_PRODUCE = 0
#: Kafka's api_key for Metadata.
API_METADATA = 3
#: Kafka's api_key for ApiVersions.
API_VERSIONS = 18

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhih")
_REPLY_HEAD = struct.Struct(">ihi")
_API_KEY = struct.Struct(">hhh")
# Produce v0 body: acks INT16, timeout INT32, topic_data ARRAY (INT32 count).
_EMPTY_PRODUCE = struct.Struct(">hii")


class MalformedResponse(ValueError):
    """
    Bytes that are not the Kafka response expected.
    """


class ApiVersions(namedtuple("ApiVersions", "correlationId errorCode apiKeys")):
    """
    A decoded ApiVersions v0 response.

    :ivar correlationId: the id the request carried.
    :ivar errorCode: the response's error_code (C{0}: no error).
    :ivar apiKeys: tuple of C{(apiKey, minVersion, maxVersion)}.
    """

    __slots__ = ()


def framed(payload):
    """
    :return: C{payload} preceded by its INT32 size, as sent on the wire.
    """
    return _SIZE.pack(len(payload)) + payload


def encodeRequest(apiKey, apiVersion, correlationId, clientId, body=b""):
    """
    Encode a request: header v1, then C{body}; size prefix excluded.

    :param clientId: the client id, as bytes (it shows in the broker's
        request log).
    :rtype: L{bytes}
    """
    return _HEADER.pack(apiKey, apiVersion, correlationId, len(clientId)) + clientId + body


def encodeApiVersionsRequest(correlationId, clientId):
    """
    Encode an ApiVersions v0 request (empty body), size prefix excluded.
    """
    return encodeRequest(API_VERSIONS, 0, correlationId, clientId)


def encodeEmptyProduceRequest(correlationId, clientId, acks=1, timeoutMs=1000):
    """
    Encode a Produce v0 request naming no topic (nothing is written), size
    prefix excluded: the request pykafka sends, which Kafka 4 no longer
    answers (it closes the connection).
    """
    return encodeRequest(
        API_PRODUCE, 0, correlationId, clientId, _EMPTY_PRODUCE.pack(acks, timeoutMs, 0)
    )


def correlationIdOf(payload):
    """
    :return: the correlation id a response (size prefix excluded) carries,
        or L{None} when it is too short to carry one.
    """
    if len(payload) < _SIZE.size:
        return None
    return _SIZE.unpack_from(payload)[0]


def decodeApiVersionsResponse(payload):
    """
    Decode an ApiVersions v0 response, size prefix excluded; bytes after the
    v0 fields (as later versions add) are ignored.

    :rtype: L{ApiVersions}
    :raises MalformedResponse: if the bytes are not such a response.
    """
    try:
        correlationId, errorCode, count = _REPLY_HEAD.unpack_from(payload)
    except struct.error as e:
        size = len(payload)
        raise MalformedResponse(f"malformed ApiVersions reply ({size} bytes): {e}") from e
    if count < 0 or _REPLY_HEAD.size + count * _API_KEY.size > len(payload):
        size = len(payload)
        raise MalformedResponse(f"ApiVersions reply announces {count} APIs in {size} bytes")
    apiKeys = tuple(
        _API_KEY.unpack_from(payload, _REPLY_HEAD.size + i * _API_KEY.size) for i in range(count)
    )
    return ApiVersions(correlationId, errorCode, apiKeys)


def versionRange(apiKeys, apiKey):
    """
    :param apiKeys: an L{ApiVersions}' C{apiKeys}.
    :return: C{(minVersion, maxVersion)} the broker serves for C{apiKey}, or
        L{None} when it does not offer it.
    """
    for key, low, high in apiKeys:
        if key == apiKey:
            return low, high
    return None


def _receive(sock, size):
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def blockingCall(sock, request, correlationId):
    """
    Send one request and read its response over a blocking socket.

    :param sock: anything with C{sendall} and C{recv}.
    :param request: the request, size prefix excluded (e.g. from
        L{encodeRequest}).
    :param correlationId: the id C{request} carries.
    :return: the response, size prefix excluded (correlation id included).
    :raises ConnectionError: when the broker closes the connection.
    :raises MalformedResponse: for a response to another request.
    :raises OSError: for socket errors and timeouts.
    """
    sock.sendall(framed(request))
    (size,) = _SIZE.unpack(_receive(sock, _SIZE.size))
    if size < _SIZE.size:
        raise MalformedResponse(f"a response of {size} bytes")
    response = _receive(sock, size)
    if correlationIdOf(response) != correlationId:
        raise MalformedResponse(
            f"a response with correlation id {correlationIdOf(response)}, not {correlationId}"
        )
    return response
