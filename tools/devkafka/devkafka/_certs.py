# -*- test-case-name: tests.integration.test_kafka_security -*-
"""
Certificates made on the spot for a secured development broker: a CA, the
broker's certificate (for 127.0.0.1 and localhost) and a client
certificate, as PEM files Kafka (C{ssl.keystore.type=PEM}) and librdkafka
read directly.  Nothing here is meant to protect anything but a test.
"""

import datetime
import ipaddress
from collections import namedtuple
from pathlib import Path

__all__ = ["Certificates", "certificatesIn", "makeCertificates"]

_FILES = ("ca.pem", "broker.pem", "client.pem", "client.key", "client-enc.key")
_KEY_PASSWORD = "client-key-password"


class Certificates(
    namedtuple("Certificates", "ca broker client clientKey clientKeyEncrypted clientKeyPassword")
):
    """
    Paths of the PEM files L{makeCertificates} wrote.

    :ivar ca: the CA certificate (the trust store of both sides).
    :ivar broker: the broker's PKCS#8 key followed by its certificate.
    :ivar client: the client certificate.
    :ivar clientKey: its key, unencrypted.
    :ivar clientKeyEncrypted: the same key encrypted with
        C{clientKeyPassword}.
    """

    __slots__ = ()


def _name(common):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(subject, key, issuer, issuerKey, ca=False, names=()):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(issuerKey, hashes.SHA256())


def certificatesIn(directory, clientKeyPassword=_KEY_PASSWORD):
    """
    :return: the L{Certificates} L{makeCertificates} wrote in C{directory}
        before, or L{None} if it holds none.
    """
    paths = Certificates(*(Path(directory) / name for name in _FILES), clientKeyPassword)
    return paths if all(path.is_file() for path in paths[:5]) else None


def makeCertificates(directory, clientKeyPassword=_KEY_PASSWORD):
    """
    Write a CA, a broker certificate and a client certificate under
    C{directory}.

    :rtype: L{Certificates}
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()

    caKey = ec.generate_private_key(ec.SECP256R1())
    caCert = _issue("devkafka test CA", caKey, "devkafka test CA", caKey, ca=True)
    brokerKey = ec.generate_private_key(ec.SECP256R1())
    brokerCert = _issue(
        "localhost",
        brokerKey,
        "devkafka test CA",
        caKey,
        names=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
    )
    clientKey = ec.generate_private_key(ec.SECP256R1())
    clientCert = _issue("kafka-gateway", clientKey, "devkafka test CA", caKey)

    paths = Certificates(*(directory / name for name in _FILES), clientKeyPassword)
    paths.ca.write_bytes(caCert.public_bytes(pem))
    paths.broker.write_bytes(
        brokerKey.private_bytes(pem, pkcs8, plain) + brokerCert.public_bytes(pem)
    )
    paths.client.write_bytes(clientCert.public_bytes(pem))
    paths.clientKey.write_bytes(clientKey.private_bytes(pem, pkcs8, plain))
    encrypted = serialization.BestAvailableEncryption(clientKeyPassword.encode())
    paths.clientKeyEncrypted.write_bytes(clientKey.private_bytes(pem, pkcs8, encrypted))
    for path in paths[:5]:
        path.chmod(0o600)
    return paths
