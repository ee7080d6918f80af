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

SASL (the probe's authentication, see L{gateway.kafka.sasl}) adds
SaslHandshake v1 (C{mechanism STRING} -> C{error_code INT16, mechanisms
ARRAY of STRING}) and SaslAuthenticate v0/v1 (C{auth_bytes BYTES} ->
C{error_code INT16, error_message NULLABLE_STRING, auth_bytes BYTES}, v1
then C{session_lifetime_ms INT64}); a STRING is an INT16 size and UTF-8
bytes, BYTES an INT32 size and bytes.
"""

import struct
from collections import namedtuple

__all__ = [
    "API_METADATA",
    "API_PRODUCE",
    "API_SASL_AUTHENTICATE",
    "API_SASL_HANDSHAKE",
    "API_VERSIONS",
    "ApiVersions",
    "MalformedResponse",
    "blockingCall",
    "correlationIdOf",
    "decodeApiVersionsResponse",
    "decodeSaslAuthenticateResponse",
    "decodeSaslHandshakeResponse",
    "encodeApiVersionsRequest",
    "encodeEmptyProduceRequest",
    "encodeRequest",
    "encodeSaslAuthenticateRequest",
    "encodeSaslHandshakeRequest",
    "framed",
    "versionRange",
]

#: Kafka's api_key for Produce.
API_PRODUCE = 0
#: Kafka's api_key for Metadata.
API_METADATA = 3
#: Kafka's api_key for SaslHandshake.
API_SASL_HANDSHAKE = 17
#: Kafka's api_key for ApiVersions.
API_VERSIONS = 18
#: Kafka's api_key for SaslAuthenticate.
API_SASL_AUTHENTICATE = 36

_SIZE = struct.Struct(">i")
_INT16 = struct.Struct(">h")
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


def encodeSaslHandshakeRequest(correlationId, clientId, mechanism):
    """
    Encode a SaslHandshake v1 request naming C{mechanism}, size prefix
    excluded.
    """
    name = mechanism.encode("utf-8")
    body = _INT16.pack(len(name)) + name
    return encodeRequest(API_SASL_HANDSHAKE, 1, correlationId, clientId, body)


def encodeSaslAuthenticateRequest(correlationId, clientId, authBytes, version=1):
    """
    Encode a SaslAuthenticate request (v0 or v1: the same body) carrying
    C{authBytes}, size prefix excluded.
    """
    body = _SIZE.pack(len(authBytes)) + authBytes
    return encodeRequest(API_SASL_AUTHENTICATE, version, correlationId, clientId, body)


class _Reader:
    """
    Read Kafka's primitive types off a response, failing with
    L{MalformedResponse} naming C{what}.
    """

    def __init__(self, payload, what):
        self.payload, self.what, self.offset = payload, what, 0

    def take(self, format):
        try:
            values = format.unpack_from(self.payload, self.offset)
        except struct.error as e:
            raise MalformedResponse(
                f"malformed {self.what} reply ({len(self.payload)} bytes): {e}"
            ) from e
        self.offset += format.size
        return values[0] if len(values) == 1 else values

    def raw(self, size):
        if size < 0 or self.offset + size > len(self.payload):
            raise MalformedResponse(
                f"{self.what} reply announces {size} bytes at offset {self.offset} "
                f"of {len(self.payload)}"
            )
        self.offset += size
        return self.payload[self.offset - size : self.offset]

    def string(self, nullable=False):
        size = self.take(_INT16)
        if size == -1 and nullable:
            return None
        return self.raw(size).decode("utf-8", "replace")


def decodeSaslHandshakeResponse(payload):
    """
    Decode a SaslHandshake v0/v1 response, size prefix excluded.

    :return: C{(correlationId, errorCode, mechanisms)}, the mechanisms the
        broker's listener enables as a tuple of names.
    :raises MalformedResponse: if the bytes are not such a response.
    """
    reader = _Reader(payload, "SaslHandshake")
    correlationId, errorCode, count = reader.take(_REPLY_HEAD)
    if count < 0 or count > len(payload):
        raise MalformedResponse(f"SaslHandshake reply announces {count} mechanisms")
    return correlationId, errorCode, tuple(reader.string() for _ in range(count))


def decodeSaslAuthenticateResponse(payload):
    """
    Decode a SaslAuthenticate v0/v1 response, size prefix excluded
    (v1's session lifetime is ignored).

    :return: C{(correlationId, errorCode, errorMessage, authBytes)}; the
        message may be L{None}.
    :raises MalformedResponse: if the bytes are not such a response.
    """
    reader = _Reader(payload, "SaslAuthenticate")
    correlationId = reader.take(_SIZE)
    errorCode = reader.take(_INT16)
    message = reader.string(nullable=True)
    authBytes = reader.raw(reader.take(_SIZE))
    return correlationId, errorCode, message, authBytes


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
