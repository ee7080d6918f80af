# -*- test-case-name: tests.integration.test_tls_kafka -*-
"""
TLS listeners end to end: C{twistd -n gateway} as a subprocess with
certificates made by C{trustme}, Python's own C{ssl} clients, a real Apache
Kafka broker, and every record read back.

Lines over TLS; mutual TLS with the client certificate's subject in the
C{gateway-client-cert} header, and a client without a certificate refused;
a TLS 1.1 client refused by the server; a certificate reloaded on SIGHUP
while a connection made before keeps working; TLS across C{--workers 2}.
"""

import random
import signal
import socket
import ssl
import warnings

import pytest
import trustme
from cryptography import x509

from tests.integration.support.http import listenerStatus, refusedCounts
from tests.integration.support.process import CLEAN_EXIT, GatewayProcess, Gateways, waitForLog
from tests.integration.support.topics import newTopic, records
from tests.integration.test_workers_kafka import getStatus, pickPorts
from tests.support.waiting import DEADLINE, waitFor


class Files:
    """
    A CA, the gateway's certificate and key, and a client certificate, as
    PEM files in a test's folder.
    """

    def __init__(self, directory):
        self.directory = directory
        self.ca = trustme.CA()
        self.caFile = self.write("ca.pem", self.ca.cert_pem.bytes())
        self.issue(self.ca)
        self.client = self.ca.issue_cert("client.example", common_name="client.example")
        self.clientFile = self.write(
            "client.pem", self.client.private_key_and_cert_chain_pem.bytes()
        )

    def write(self, name, data):
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def issue(self, ca):
        """
        (Re)write the gateway's certificate and key, issued by C{ca}.

        :return: the certificate's serial number.
        """
        server = ca.issue_cert("localhost", "127.0.0.1")
        self.cert = self.write("server.pem", server.cert_chain_pems[0].bytes())
        self.key = self.write("server.key", server.private_key_pem.bytes())
        return x509.load_pem_x509_certificate(server.cert_chain_pems[0].bytes()).serial_number

    def listen(self, mutual=False):
        """
        :return: the C{--listen} value of a TLS lines listener.
        """
        options = f"tls-cert={self.cert},tls-key={self.key}"
        if mutual:
            options += f",tls-client-ca={self.caFile}"
        return f"lines({options})=tcp:0:interface=127.0.0.1"

    def context(self, ca=None, certificate=True):
        """
        :return: a client context trusting C{ca} (the test CA by default),
            presenting the client certificate if C{certificate}.
        """
        context = ssl.create_default_context(cafile=ca or self.caFile)
        if certificate:
            context.load_cert_chain(self.clientFile)
        return context


def connect(port, context, **keywords):
    """
    :param keywords: C{wrap_socket}'s.
    :return: a TLS client socket to the gateway, handshake done.
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    return context.wrap_socket(raw, server_hostname="localhost", **keywords)


@pytest.fixture
def files(tmp_path):
    """
    The certificates of one test.
    """
    directory = tmp_path / "certificates"
    directory.mkdir()
    return Files(directory)


@pytest.fixture
def gateway(kafka, tmp_path):
    """
    Start gateways against the test broker; all stopped at the end.
    """
    gateways = Gateways(tmp_path, kafka.bootstrap, "--spool", "none", "--dead-letter", "none")
    yield gateways.start
    gateways.stopAll()


def headers(record):
    return dict(record.headers or ())


def test_linesOverTLS(kafka, files, gateway):
    """
    Lines sent over TLS are read back from Kafka, with the usual headers
    and no client certificate header.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", files.listen())
    with connect(process.ports["lines"], files.context(certificate=False)) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        sock.sendall(b"".join(b"secret %d\n" % n for n in range(100)))
        found = records(kafka, topic, 100)
    assert sorted(r.value for r in found) == sorted(b"secret %d" % n for n in range(100))
    assert all(headers(r)["gateway-listener"] == b"lines" for r in found)
    assert not any("gateway-client-cert" in headers(r) for r in found)
    assert process.stop() in CLEAN_EXIT


def test_mutualTLS(kafka, files, gateway):
    """
    With C{tls-client-ca}, a client presenting a certificate of that CA is
    served and its subject is in every record's C{gateway-client-cert}
    header; a client without one is refused, counted, and none of its bytes
    reach Kafka.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", files.listen(mutual=True))
    port = process.ports["lines"]
    anonymous = connect(port, files.context(certificate=False))
    try:
        # TLS 1.3: the client finishes its side before the server checks
        # it, so the refusal shows as an alert or a close on the next read.
        anonymous.sendall(b"anonymous\n")
        with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
            if anonymous.recv(1) == b"":
                raise ConnectionError("closed")
        assert "CERTIFICATE_REQUIRED" in str(refused.value) or "closed" in str(refused.value)
    finally:
        anonymous.close()
    with connect(port, files.context()) as sock:
        sock.sendall(b"verified 1\nverified 2\n")
        found = records(kafka, topic, 2)
    subject = x509.load_pem_x509_certificate(files.client.cert_chain_pems[0].bytes()).subject
    assert [r.value for r in found] == [b"verified 1", b"verified 2"]
    for record in found:
        assert headers(record)["gateway-client-cert"] == subject.rfc4514_string().encode()
        assert b"CN=client.example" in headers(record)["gateway-client-cert"]
    waitForLog(process, r"lines: TLS handshake with 127\.0\.0\.1:\d+ failed", DEADLINE)
    assert listenerStatus(process, "lines")["refused"] == {"tls-handshake": 1}
    assert refusedCounts(process)[("lines", "tls-handshake")] == 1
    assert process.stop() in CLEAN_EXIT


def test_tls11Refused(kafka, files, gateway):
    """
    A client that offers at most TLS 1.1 gets the server's protocol-version
    alert (its own library allows 1.1 here, so the refusal is the
    gateway's).
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", files.listen())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(files.caFile)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 and 1.1 are
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as refused:
        connect(process.ports["lines"], context)
    assert "PROTOCOL_VERSION" in str(refused.value).upper(), refused.value
    waitForLog(process, r"lines: TLS handshake with 127\.0\.0\.1:\d+ failed", DEADLINE)
    assert process.stop() in CLEAN_EXIT


def test_sighupReload(kafka, files, gateway, tmp_path):
    """
    After new files and a SIGHUP, a connection made before keeps working,
    and a new connection is served the new certificate.
    """
    topic = newTopic(kafka)
    process = gateway("--topic", topic, "--listen", files.listen())
    port = process.ports["lines"]
    before = connect(port, files.context(certificate=False))
    try:
        before.sendall(b"before 1\n")
        records(kafka, topic, 1)
        newCA = trustme.CA()
        serial = files.issue(newCA)
        newCAFile = files.write("new-ca.pem", newCA.cert_pem.bytes())
        process.process.send_signal(signal.SIGHUP)
        waitForLog(process, r"lines: TLS certificate reloaded", DEADLINE)
        before.sendall(b"before 2\n")
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(port, files.context(certificate=False)).close()
        with connect(port, files.context(newCAFile, certificate=False)) as after:
            served = x509.load_der_x509_certificate(after.getpeercert(binary_form=True))
            assert served.serial_number == serial
            after.sendall(b"after\n")
            found = records(kafka, topic, 3)
        assert sorted(r.value for r in found) == [b"after", b"before 1", b"before 2"]
    finally:
        before.close()
    waitFor(lambda: process.process.poll() is None, 1.0, "the gateway still running")
    assert process.stop() in CLEAN_EXIT


def test_workers(kafka, files, tmp_path):
    """
    With C{--workers 2} on a shared C{reuseport:} port, both workers serve
    TLS clients and every line is read back; one SIGHUP to the C{twistd}
    process reloads both workers, after which every new connection gets the
    new certificate.
    """
    topic = newTopic(kafka)
    port, http = pickPorts(random.Random())
    options = f"tls-cert={files.cert},tls-key={files.key}"
    process = GatewayProcess(
        tmp_path,
        [
            "--bootstrap-servers",
            kafka.bootstrap,
            "--topic",
            topic,
            "--spool",
            "none",
            "--dead-letter",
            "none",
            "--workers",
            "2",
            "--listen",
            f"lines({options})=reuseport:{port}:interface=127.0.0.1",
            "--http",
            f"tcp:{http}:interface=127.0.0.1",
        ],
    )
    try:
        process.start(listeners=1)
        for index in (0, 1):
            waitFor(lambda index=index: getStatus(http + index), DEADLINE, "worker answers")

        def accepted():
            return [getStatus(http + i)["listeners"][0]["accepted"] for i in (0, 1)]

        sent = 0
        context = files.context(certificate=False)
        while not all(accepted()) and sent < 200:
            with connect(port, context) as sock:
                sock.sendall(b"line %d\n" % sent)
            sent += 1
        assert all(accepted()), accepted()
        found = records(kafka, topic, sent)
        assert sorted(r.value for r in found) == sorted(b"line %d" % n for n in range(sent))

        newCA = trustme.CA()
        serial = files.issue(newCA)
        newCAFile = files.write("new-ca.pem", newCA.cert_pem.bytes())
        process.process.send_signal(signal.SIGHUP)
        waitForLog(process, r"\[worker-2\] .*lines: TLS certificate reloaded", DEADLINE)
        waitForLog(process, r"(?m)^(?!.*\[worker-2\]).*lines: TLS certificate reloaded", DEADLINE)
        newContext = files.context(newCAFile, certificate=False)
        for _ in range(20):
            with connect(port, newContext) as sock:
                served = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
                assert served.serial_number == serial
    finally:
        assert process.stop() in CLEAN_EXIT


def test_maxAgeOverTLS(kafka, files, gateway):
    """
    At C{max-age} a TLS client reads a clean end of stream (TLS's
    close_notify, not a TCP close that its library calls a truncation), and
    what it sent before is in Kafka.
    """
    topic = newTopic(kafka)
    options = f"tls-cert={files.cert},tls-key={files.key},max-age=2"
    process = gateway("--topic", topic, "--listen", f"lines({options})=tcp:0:interface=127.0.0.1")
    context = files.context(certificate=False)
    # A TCP close without close_notify then raises SSLEOFError.
    with connect(process.ports["lines"], context, suppress_ragged_eofs=False) as sock:
        sock.sendall(b"before the end\n")
        assert sock.recv(1) == b""
    assert [r.value for r in records(kafka, topic, 1)] == [b"before the end"]
    waitForLog(process, r"lines: closing 127\.0\.0\.1:\d+ \(max-age, 2 s\)", DEADLINE)
    assert process.stop() in CLEAN_EXIT
