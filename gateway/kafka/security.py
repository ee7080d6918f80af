# -*- test-case-name: tests.kafka.test_security -*-
"""
How the gateway reaches a secured Kafka: the producer's C{security.protocol},
C{sasl.*} and C{ssl.*} properties (librdkafka's names), checked once with
one-line errors, and turned into what the health probe needs to connect the
same way: a TLS client endpoint (through Twisted) and SASL credentials.

The producer gets the properties unchanged; only what the probe cannot
follow (GSSAPI, OAUTHBEARER, PKCS#12 keystores) is refused, since a probe
that cannot authenticate would keep C{/readyz} false on a working cluster.
"""

import os
from dataclasses import dataclass, field

from gateway.kafka.sasl import MECHANISMS

__all__ = ["PROTOCOLS", "KafkaSecurity", "securityFromConfig"]

#: The values of C{security.protocol} (librdkafka accepts any case).
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class KafkaSecurity:
    """
    The checked security settings of the connections to Kafka.

    :ivar protocol: one of L{PROTOCOLS}.
    :ivar mechanism: the SASL mechanism, or L{None} without SASL.
    :ivar username: the SASL user name, or L{None}.
    :ivar verifyHostname: whether the broker's certificate must name the
        address connected to (C{ssl.endpoint.identification.algorithm}).
    :ivar verifyCertificate: whether the broker's certificate is checked at
        all (C{enable.ssl.certificate.verification}).
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = None
    username: str = None
    password: str = field(default=None, repr=False)
    caPEM: bytes = field(default=None, repr=False)
    certificatePEM: bytes = field(default=None, repr=False)
    keyPEM: bytes = field(default=None, repr=False)
    keyPassword: str = field(default=None, repr=False)
    verifyHostname: bool = True
    verifyCertificate: bool = True

    @property
    def tls(self):
        """
        Whether connections use TLS.
        """
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self):
        """
        Whether connections authenticate with SASL.
        """
        return self.protocol.startswith("SASL_")

    def endpointFactory(self, plain):
        """
        :param plain: the factory of plain TCP endpoints, taking C{(reactor,
            host, port, timeout)}.
        :return: C{plain} without TLS, else a factory of the same signature
            wrapping C{plain}'s endpoints in TLS.
        """
        if not self.tls:
            return plain
        from twisted.internet.endpoints import wrapClientTLS

        def endpoint(reactor, host, port, timeout):
            return wrapClientTLS(self.tlsOptions(host), plain(reactor, host, port, timeout))

        self.tlsOptions("127.0.0.1")  # fail now, not at the first connection
        return endpoint

    def tlsOptions(self, host):
        """
        :return: the Twisted client TLS options for a broker at C{host}:
            TLS 1.2 or later, the CA and client certificate configured.
        """
        from twisted.internet import ssl

        trustRoot = None
        if self.verifyCertificate:
            if self.caPEM is None:
                trustRoot = ssl.platformTrust()
            else:
                trustRoot = ssl.trustRootFromCertificates(
                    [ssl.Certificate.loadPEM(pem) for pem in _certificates(self.caPEM)]
                )
        client, chain = None, []
        if self.certificatePEM is not None:
            from OpenSSL import crypto

            key = crypto.load_privatekey(
                crypto.FILETYPE_PEM,
                self.keyPEM,
                (self.keyPassword or "").encode("utf-8"),
            )
            certificates = [
                ssl.Certificate.loadPEM(pem) for pem in _certificates(self.certificatePEM)
            ]
            client = ssl.PrivateCertificate.fromCertificateAndKeyPair(
                certificates[0], ssl.KeyPair(key)
            )
            chain = [c.original for c in certificates[1:]]
        minimum = ssl.TLSVersion.TLSv1_2
        if self.verifyCertificate and self.verifyHostname:
            extra = {"raiseMinimumTo": minimum}
            if chain:
                extra["extraCertChain"] = chain
            return ssl.optionsForClientTLS(host, trustRoot, client, extraCertificateOptions=extra)
        keywords = {"raiseMinimumTo": minimum, "extraCertChain": chain or None}
        if client is not None:
            keywords.update(privateKey=client.privateKey.original, certificate=client.original)
        if trustRoot is not None:
            keywords["trustRoot"] = trustRoot
        return ssl.CertificateOptions(**keywords)


def _certificates(pem):
    """
    Split PEM data into its certificates.
    """
    marker = b"-----BEGIN CERTIFICATE-----"
    return [marker + part for part in pem.split(marker)[1:]]


def _read(config, name, what):
    path = config.get(name)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{name} {path!r}: cannot read the {what}: {e.strerror}") from None


def _pem(config, location, inline, what):
    if config.get(location) is not None and config.get(inline) is not None:
        raise ValueError(f"{location} and {inline} both given: give one")
    if config.get(inline) is not None:
        return str(config[inline]).encode("utf-8")
    return _read(config, location, what)


def _flag(config, name, default):
    value = str(config.get(name, default)).lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"{name} {config[name]!r}: expected true or false")
    return value in _TRUE


def securityFromConfig(config):
    """
    Check the producer configuration's security properties.

    :param config: the producer properties (librdkafka's names).
    :rtype: L{KafkaSecurity}
    :raises ValueError: a one-line reason naming the property (never a
        secret's value).
    """
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"security.protocol {config['security.protocol']!r}: expected "
            + ", ".join(PROTOCOLS[:-1])
            + f" or {PROTOCOLS[-1]}"
        )
    settings = {"protocol": protocol}
    if protocol.startswith("SASL_"):
        mechanism = config.get("sasl.mechanism", config.get("sasl.mechanisms"))
        choices = ", ".join(MECHANISMS)
        if mechanism is None:
            raise ValueError(
                f"security.protocol {protocol} needs sasl.mechanism: one of {choices}"
            )
        mechanism = str(mechanism).upper()
        if mechanism not in MECHANISMS:
            raise ValueError(
                f"sasl.mechanism {mechanism}: the gateway (producer and health probe) "
                f"speaks {choices}"
            )
        for name in ("sasl.username", "sasl.password"):
            if not config.get(name):
                raise ValueError(f"sasl.mechanism {mechanism} needs {name}")
        settings.update(
            mechanism=mechanism,
            username=str(config["sasl.username"]),
            password=str(config["sasl.password"]),
        )
    if protocol in ("SSL", "SASL_SSL"):
        settings.update(_tlsSettings(config))
    return KafkaSecurity(**settings)


def _tlsSettings(config):
    for name in ("ssl.keystore.location", "ssl.engine.location", "ssl.providers"):
        if config.get(name) is not None:
            raise ValueError(
                f"{name}: the health probe reads PEM files only; use ssl.certificate.location "
                "and ssl.key.location"
            )
    ca = config.get("ssl.ca.location")
    if ca is not None and os.path.isdir(ca):
        raise ValueError(f"ssl.ca.location {ca!r}: give a file of PEM certificates, not a folder")
    caPEM = (
        None if ca == "probe" else _pem(config, "ssl.ca.location", "ssl.ca.pem", "CA certificates")
    )
    if caPEM is not None and not _certificates(caPEM):
        raise ValueError("ssl.ca.location/ssl.ca.pem holds no PEM certificate")
    certificate = _pem(config, "ssl.certificate.location", "ssl.certificate.pem", "certificate")
    key = _pem(config, "ssl.key.location", "ssl.key.pem", "private key")
    if (certificate is None) != (key is None):
        raise ValueError(
            "a client certificate needs both ssl.certificate.location and ssl.key.location"
        )
    algorithm = str(config.get("ssl.endpoint.identification.algorithm", "https")).lower()
    if algorithm not in ("https", "none"):
        raise ValueError(
            f"ssl.endpoint.identification.algorithm {algorithm!r}: expected https or none"
        )
    settings = {
        "caPEM": caPEM,
        "certificatePEM": certificate,
        "keyPEM": key,
        "keyPassword": config.get("ssl.key.password"),
        "verifyHostname": algorithm == "https",
        "verifyCertificate": _flag(config, "enable.ssl.certificate.verification", "true"),
    }
    try:
        from OpenSSL import crypto
    except ImportError:
        raise ValueError("TLS to Kafka needs pyOpenSSL: install twisted[tls]") from None
    if key is not None:
        try:
            password = (settings["keyPassword"] or "").encode("utf-8")
            crypto.load_privatekey(crypto.FILETYPE_PEM, key, password)
        except Exception:
            raise ValueError(
                "ssl.key.location: cannot load the private key (not a PEM key, or "
                "ssl.key.password missing or wrong)"
            ) from None
    try:
        KafkaSecurity(protocol="SSL", **settings).tlsOptions("127.0.0.1")
    except Exception as e:
        raise ValueError(f"the TLS certificates cannot be loaded: {_oneLine(e)}") from None
    return settings


def _oneLine(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
