# -*- test-case-name: tests.kafka.test_wire -*-
"""
The gateway's Kafka codec, byte for byte against the protocol guide
(U{https://kafka.apache.org/protocol.html}): request header v1, ApiVersions
v0 both ways, the empty Produce v0 of the pykafka check, and the blocking
exchange the two blocking probes share.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.wire import (
    API_METADATA,
    API_PRODUCE,
    API_SASL_AUTHENTICATE,
    API_SASL_HANDSHAKE,
    API_VERSIONS,
    ApiVersions,
    MalformedResponse,
    blockingCall,
    correlationIdOf,
    decodeApiVersionsResponse,
    decodeSaslAuthenticateResponse,
    decodeSaslHandshakeResponse,
    encodeApiVersionsRequest,
    encodeEmptyProduceRequest,
    encodeRequest,
    encodeSaslAuthenticateRequest,
    encodeSaslHandshakeRequest,
    framed,
    versionRange,
)

#: What a Kafka 4.1 broker offers, abridged: (api_key, min, max).
APIS = ((0, 3, 12), (3, 0, 13), (18, 0, 4))


def apiVersionsReply(correlationId, errorCode=0, apis=APIS):
    """
    An ApiVersions v0 response, written out field by field from the Kafka
    protocol guide (response header v0, then the v0 body), size prefix
    included.
    """
    body = struct.pack(">i", correlationId)  # response header: correlation_id INT32
    body += struct.pack(">h", errorCode)  # error_code INT16
    body += struct.pack(">i", len(apis))  # api_keys: ARRAY => INT32 count
    for key, low, high in apis:
        body += struct.pack(">hhh", key, low, high)  # api_key, min_version, max_version
    return struct.pack(">i", len(body)) + body


def parseRequest(message):
    """
    Split one request (size prefix excluded) as the protocol guide lays out
    request header v1: C{(apiKey, version, correlationId, clientId, body)}.
    """
    apiKey, version, correlationId, idSize = struct.unpack_from(">hhih", message)
    return apiKey, version, correlationId, message[10 : 10 + idSize], message[10 + idSize :]


def parseRequests(data):
    """
    Split what a probe wrote into ``(apiKey, version, correlationId,
    clientId)`` ApiVersions v0 requests (whose body is empty).
    """
    requests = []
    while data:
        (size,) = struct.unpack_from(">i", data)
        message, data = data[4 : 4 + size], data[4 + size :]
        *header, body = parseRequest(message)
        assert body == b"", "ApiVersions v0 has an empty body"
        requests.append(tuple(header))
    return requests


class EncodeTests(SynchronousTestCase):
    """
    Requests, byte for byte.
    """

    def test_apiKeys(self):
        """
        The api_keys are the protocol guide's.
        """
        self.assertEqual((API_PRODUCE, API_METADATA, API_VERSIONS), (0, 3, 18))

    def test_requestHeader(self):
        """
        A request is header v1 (api_key, api_version, correlation_id,
        client_id as INT16 size and bytes) followed by the body.
        """
        self.assertEqual(
            encodeRequest(3, 8, 0x01020304, b"me", b"BODY"),
            b"\x00\x03\x00\x08\x01\x02\x03\x04\x00\x02meBODY",
        )

    def test_apiVersionsRequest(self):
        """
        An ApiVersions v0 request is api_key 18, version 0 and no body.
        """
        self.assertEqual(
            encodeApiVersionsRequest(7, b"kafka-gateway-probe"),
            b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x13kafka-gateway-probe",
        )

    def test_emptyProduceRequest(self):
        """
        The pykafka check's Produce v0 carries acks 1, a 1000 ms timeout and
        an empty topic list: nothing is written.
        """
        request = encodeEmptyProduceRequest(2, b"kafka-gateway")
        self.assertEqual(
            parseRequest(request), (0, 0, 2, b"kafka-gateway", struct.pack(">hii", 1, 1000, 0))
        )

    def test_framed(self):
        """
        On the wire a message is preceded by its INT32 size.
        """
        self.assertEqual(framed(b"abc"), b"\x00\x00\x00\x03abc")


class DecodeTests(SynchronousTestCase):
    """
    ApiVersions v0 responses, byte for byte.
    """

    def test_responseDecoded(self):
        """
        A response gives its correlation id, error code and API ranges.
        """
        answer = decodeApiVersionsResponse(apiVersionsReply(9, 35)[4:])
        self.assertEqual(answer, ApiVersions(9, 35, APIS))
        self.assertEqual((answer.correlationId, answer.errorCode), (9, 35))

    def test_responseTrailingBytesIgnored(self):
        """
        Bytes after the v0 fields (as later versions add) are ignored.
        """
        reply = apiVersionsReply(9, 0)[4:] + b"\x00\x00\x00\x00"
        self.assertEqual(decodeApiVersionsResponse(reply), (9, 0, APIS))

    def test_truncatedResponse(self):
        """
        A response shorter than its fields say is a L{MalformedResponse}
        (a L{ValueError}).
        """
        reply = apiVersionsReply(9, 0)[4:-1]
        self.assertRaises(MalformedResponse, decodeApiVersionsResponse, reply)
        self.assertRaises(MalformedResponse, decodeApiVersionsResponse, b"\x00\x00")
        self.assertTrue(issubclass(MalformedResponse, ValueError))

    def test_negativeCount(self):
        """
        A negative API count is a L{MalformedResponse}, not an empty list.
        """
        reply = struct.pack(">ihi", 1, 0, -1)
        self.assertRaises(MalformedResponse, decodeApiVersionsResponse, reply)

    def test_correlationIdOf(self):
        """
        The correlation id is the response's first INT32; a shorter
        response has none.
        """
        self.assertEqual(correlationIdOf(struct.pack(">i", -5) + b"rest"), -5)
        self.assertIsNone(correlationIdOf(b"\x00\x00\x01"))

    def test_versionRange(self):
        """
        C{versionRange} gives the versions offered for one API, L{None} for
        an API not offered.
        """
        self.assertEqual(versionRange(APIS, API_METADATA), (0, 13))
        self.assertEqual(versionRange(APIS, API_PRODUCE), (3, 12))
        self.assertIsNone(versionRange(APIS, 1))


class FakeSocket:
    """
    A blocking socket's two methods: C{sendall} records, C{recv} returns at
    most C{chunk} bytes of the scripted input at a time.
    """

    def __init__(self, incoming, chunk=3):
        self.incoming = incoming
        self.chunk = chunk
        self.sent = []

    def sendall(self, data):
        self.sent.append(data)

    def recv(self, size):
        data = self.incoming[: min(size, self.chunk)]
        self.incoming = self.incoming[len(data) :]
        return data


class BlockingCallTests(SynchronousTestCase):
    """
    L{blockingCall}: one request out, its response back.
    """

    def test_exchange(self):
        """
        The request goes out framed; the response, read however the socket
        splits it, comes back without its size prefix.
        """
        reply = apiVersionsReply(4)
        sock = FakeSocket(reply + b"next")
        request = encodeApiVersionsRequest(4, b"x")
        self.assertEqual(blockingCall(sock, request, 4), reply[4:])
        self.assertEqual(sock.sent, [framed(request)])
        self.assertEqual(sock.incoming, b"next")

    def test_closed(self):
        """
        A connection closed before the whole response arrived is a
        L{ConnectionError} (what Kafka 4 does to Produce v0).
        """
        self.assertRaises(ConnectionError, blockingCall, FakeSocket(b""), b"r", 1)
        truncated = apiVersionsReply(1)[:-2]
        self.assertRaises(ConnectionError, blockingCall, FakeSocket(truncated), b"r", 1)

    def test_wrongCorrelationId(self):
        """
        A response to another request is a L{MalformedResponse}, and so is
        one too short to carry a correlation id.
        """
        self.assertRaises(
            MalformedResponse, blockingCall, FakeSocket(apiVersionsReply(2)), b"r", 1
        )
        self.assertRaises(
            MalformedResponse, blockingCall, FakeSocket(b"\x00\x00\x00\x02ab"), b"r", 1
        )


class SaslCodecTests(SynchronousTestCase):
    """
    SaslHandshake v1 and SaslAuthenticate v0 as the protocol guide lays
    them out.
    """

    def test_handshakeRequest(self):
        """
        A SaslHandshake v1 request carries the mechanism as a STRING.
        """
        request = encodeSaslHandshakeRequest(7, b"probe", "SCRAM-SHA-256")
        self.assertEqual(
            parseRequest(request),
            (API_SASL_HANDSHAKE, 1, 7, b"probe", b"\x00\x0dSCRAM-SHA-256"),
        )

    def test_authenticateRequest(self):
        """
        A SaslAuthenticate request carries the token as BYTES.
        """
        request = encodeSaslAuthenticateRequest(8, b"probe", b"\x00u\x00p", version=0)
        self.assertEqual(
            parseRequest(request),
            (API_SASL_AUTHENTICATE, 0, 8, b"probe", b"\x00\x00\x00\x04\x00u\x00p"),
        )

    def test_handshakeResponse(self):
        """
        The error code and the mechanisms enabled are read.
        """
        reply = struct.pack(">ihi", 3, 33, 2) + b"\x00\x05PLAIN" + b"\x00\x0dSCRAM-SHA-512"
        self.assertEqual(decodeSaslHandshakeResponse(reply), (3, 33, ("PLAIN", "SCRAM-SHA-512")))

    def test_authenticateResponse(self):
        """
        The error code, the nullable message and the token are read; v1's
        session lifetime after them is ignored.
        """
        ok = struct.pack(">ihhi", 4, 0, -1, 3) + b"v=x" + struct.pack(">q", 0)
        self.assertEqual(decodeSaslAuthenticateResponse(ok), (4, 0, None, b"v=x"))
        failed = struct.pack(">ihh", 5, 58, 6) + b"denied" + struct.pack(">i", 0)
        self.assertEqual(decodeSaslAuthenticateResponse(failed), (5, 58, "denied", b""))

    def test_truncated(self):
        """
        Replies cut short are malformed, not crashes.
        """
        self.assertRaises(MalformedResponse, decodeSaslHandshakeResponse, b"\x00\x00")
        self.assertRaises(
            MalformedResponse,
            decodeSaslHandshakeResponse,
            struct.pack(">ihi", 3, 0, 1) + b"\x00\x09PLA",
        )
        self.assertRaises(
            MalformedResponse,
            decodeSaslAuthenticateResponse,
            struct.pack(">ihhi", 4, 0, -1, 100) + b"short",
        )


class SaslDecodeRobustnessTests(SynchronousTestCase):
    """
    Random replies fail the SASL decoders only with L{MalformedResponse}.
    """

    def test_anyReply(self):
        """
        Whatever the bytes, each decoder returns or raises
        L{MalformedResponse}.
        """
        from hypothesis import given, settings
        from hypothesis import strategies as st

        @settings(max_examples=300, deadline=None)
        @given(st.binary(max_size=40))
        def check(payload):
            for decode in (decodeSaslHandshakeResponse, decodeSaslAuthenticateResponse):
                try:
                    decode(payload)
                except MalformedResponse:
                    pass

        check()
