# -*- test-case-name: tests.kafka.test_security -*-
"""
The security properties of the connections to Kafka: what is accepted, the
one-line refusals (never showing a secret), and the TLS options the health
probe gets from them.
"""

import shutil
import tempfile

from twisted.internet import ssl
from twisted.internet._sslverify import ClientTLSOptions
from twisted.internet.endpoints import _WrapperEndpoint
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from devkafka import makeCertificates
from gateway.kafka.health import tcpEndpoint
from gateway.kafka.security import securityFromConfig
from gateway.settings import SettingsCheck, SettingsError

PASSWORD = "do-not-show-me"
SASL = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-256",
    "sasl.username": "alice",
    "sasl.password": PASSWORD,
}


class SaslSettingsTests(SynchronousTestCase):
    """
    C{security.protocol} and the C{sasl.*} properties.
    """

    def assertRefused(self, config, message):
        error = self.assertRaises(ValueError, securityFromConfig, config)
        self.assertEqual(str(error), message)
        self.assertNotIn(PASSWORD, str(error))

    def test_plaintextDefault(self):
        """
        Without C{security.protocol}, plain text without SASL.
        """
        security = securityFromConfig({})
        self.assertEqual(
            (security.protocol, security.tls, security.sasl), ("PLAINTEXT", False, False)
        )

    def test_sasl(self):
        """
        SASL settings are taken, the protocol and mechanism in any case,
        C{sasl.mechanisms} (librdkafka's alias) too.
        """
        config = dict(SASL, **{"security.protocol": "sasl_plaintext"})
        del config["sasl.mechanism"]
        config["sasl.mechanisms"] = "scram-sha-512"
        security = securityFromConfig(config)
        self.assertEqual(
            (security.protocol, security.mechanism, security.username, security.password),
            ("SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", PASSWORD),
        )
        self.assertNotIn(PASSWORD, repr(security))

    def test_unknownProtocol(self):
        """
        An unknown protocol is refused with the choices.
        """
        self.assertRefused(
            {"security.protocol": "TLS"},
            "security.protocol 'TLS': expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        )

    def test_noMechanism(self):
        """
        SASL without a mechanism (librdkafka would pick GSSAPI) is refused.
        """
        config = dict(SASL)
        del config["sasl.mechanism"]
        self.assertRefused(
            config,
            "security.protocol SASL_PLAINTEXT needs sasl.mechanism: one of PLAIN, "
            "SCRAM-SHA-256, SCRAM-SHA-512",
        )

    def test_unsupportedMechanism(self):
        """
        GSSAPI and OAUTHBEARER are refused: the probe cannot speak them.
        """
        self.assertRefused(
            dict(SASL, **{"sasl.mechanism": "GSSAPI"}),
            "sasl.mechanism GSSAPI: the gateway (producer and health probe) speaks "
            "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        )

    def test_noPassword(self):
        """
        SASL without a password is refused.
        """
        config = dict(SASL)
        del config["sasl.password"]
        self.assertRefused(config, "sasl.mechanism SCRAM-SHA-256 needs sasl.password")

    def test_settingsCheck(self):
        """
        The gateway's settings check refuses them as producer settings.
        """
        error = self.assertRaises(
            SettingsError,
            SettingsCheck().gateway,
            topic="t",
            kafkaOptions=dict(SASL, **{"sasl.mechanism": "OAUTHBEARER"}),
        )
        self.assertEqual(error.setting, "kafkaOptions")


class TlsSettingsTests(SynchronousTestCase):
    """
    The C{ssl.*} properties and the probe's TLS options.
    """

    def setUp(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.certs = makeCertificates(directory, clientKeyPassword=PASSWORD)

    def config(self, **extra):
        config = {"security.protocol": "SSL", "ssl.ca.location": str(self.certs.ca)}
        config.update({k.replace("_", "."): v for k, v in extra.items()})
        return config

    def assertRefused(self, config, words):
        error = self.assertRaises(ValueError, securityFromConfig, config)
        self.assertIn(words, str(error))
        self.assertNotIn(PASSWORD, str(error))
        self.assertEqual(len(str(error).splitlines()), 1)

    def test_ca(self):
        """
        With a CA file the probe verifies the broker's certificate and name,
        TLS 1.2 at least.
        """
        security = securityFromConfig(self.config())
        self.assertTrue(security.tls)
        options = security.tlsOptions("127.0.0.1")
        self.assertIsInstance(options, ClientTLSOptions)

    def test_clientCertificate(self):
        """
        An encrypted client key with its password is loaded.
        """
        security = securityFromConfig(
            self.config(
                ssl_certificate_location=str(self.certs.client),
                ssl_key_location=str(self.certs.clientKeyEncrypted),
                ssl_key_password=PASSWORD,
            )
        )
        self.assertIsNotNone(security.tlsOptions("localhost"))

    def test_wrongKeyPassword(self):
        """
        A wrong key password is refused without showing either password.
        """
        self.assertRefused(
            self.config(
                ssl_certificate_location=str(self.certs.client),
                ssl_key_location=str(self.certs.clientKeyEncrypted),
                ssl_key_password=PASSWORD + "x",
            ),
            "ssl.key.location: cannot load the private key",
        )

    def test_certificateWithoutKey(self):
        """
        A client certificate needs its key.
        """
        self.assertRefused(
            self.config(ssl_certificate_location=str(self.certs.client)),
            "needs both ssl.certificate.location and ssl.key.location",
        )

    def test_missingCa(self):
        """
        A CA file that cannot be read is named.
        """
        self.assertRefused(
            self.config(ssl_ca_location="/nonexistent/ca.pem"),
            "ssl.ca.location '/nonexistent/ca.pem': cannot read the CA certificates",
        )

    def test_keystore(self):
        """
        PKCS#12 keystores are refused with what to use instead.
        """
        self.assertRefused(
            self.config(ssl_keystore_location="/k.p12"), "use ssl.certificate.location"
        )

    def test_noHostnameCheck(self):
        """
        C{ssl.endpoint.identification.algorithm=none} still verifies the
        chain, not the name.
        """
        security = securityFromConfig(self.config(ssl_endpoint_identification_algorithm="none"))
        self.assertIsInstance(security.tlsOptions("10.1.2.3"), ssl.CertificateOptions)

    def test_endpointFactory(self):
        """
        With TLS the probe's endpoints wrap plain TCP ones in TLS; without,
        they are the plain ones.
        """
        factory = securityFromConfig(self.config()).endpointFactory(tcpEndpoint)
        endpoint = factory(MemoryReactor(), "127.0.0.1", 9093, 3.0)
        self.assertIsInstance(endpoint, _WrapperEndpoint)
        self.assertIs(securityFromConfig({}).endpointFactory(tcpEndpoint), tcpEndpoint)


class PykafkaTests(SynchronousTestCase):
    """
    The pykafka backend speaks plain text only.
    """

    def test_refused(self):
        """
        SASL settings are refused by name, with the backend to use instead,
        and without the password.
        """
        from gateway.kafka._pykafka import translateConfig

        error = self.assertRaises(
            ValueError, translateConfig, dict(SASL, **{"bootstrap.servers": "h:9092"})
        )
        self.assertIn("security.protocol=SASL_PLAINTEXT", str(error))
        self.assertIn("use --kafka-backend confluent", str(error))
        self.assertNotIn(PASSWORD, str(error))
