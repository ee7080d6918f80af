# -*- test-case-name: tests.kafka.test_credentials -*-
"""
Secret Kafka properties: which names are secrets, reading them from files
and the environment, and keeping them off workers' command lines.
"""

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka.credentials import (
    isSecret,
    readOptionEnv,
    readOptionFile,
    redacted,
    workerSecrets,
)

PASSWORD = "s3cret-Pa55word"


class IsSecretTests(SynchronousTestCase):
    """
    L{isSecret} by the property's name.
    """

    def test_secrets(self):
        """
        Passwords, inline private keys, OAuth secrets and JAAS configs are
        secrets.
        """
        for name in (
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "SASL.PASSWORD",
        ):
            self.assertTrue(isSecret(name), name)

    def test_notSecrets(self):
        """
        User names, file locations and tuning properties are not.
        """
        for name in ("sasl.username", "ssl.key.location", "linger.ms", "ssl.certificate.pem"):
            self.assertFalse(isSecret(name), name)

    def test_redacted(self):
        """
        L{redacted} hides every secret's value and keeps the others.
        """
        self.assertEqual(
            redacted({"sasl.password": PASSWORD, "sasl.username": "alice"}),
            {"sasl.password": "<secret>", "sasl.username": "alice"},
        )


class ReadTests(SynchronousTestCase):
    """
    C{--kafka-option-file} and C{--kafka-option-env}.
    """

    def test_file(self):
        """
        The file's content, one trailing line end removed, is the value.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "password")
        with open(path, "w") as f:
            f.write(PASSWORD + "\r\n")
        self.assertEqual(readOptionFile(f"sasl.password={path}"), ("sasl.password", PASSWORD))

    def test_missingFile(self):
        """
        A file that cannot be read is named, with the reason.
        """
        error = self.assertRaises(ValueError, readOptionFile, "sasl.password=/nonexistent/x")
        self.assertEqual(
            str(error),
            "--kafka-option-file sasl.password=/nonexistent/x: cannot read it: "
            "No such file or directory",
        )

    def test_malformedFile(self):
        """
        Without KEY=PATH the error shows the expected form.
        """
        error = self.assertRaises(ValueError, readOptionFile, "sasl.password")
        self.assertIn("expected KEY=PATH", str(error))

    def test_env(self):
        """
        The variable's value is the value.
        """
        self.assertEqual(
            readOptionEnv("sasl.password=PW", {"PW": PASSWORD}), ("sasl.password", PASSWORD)
        )

    def test_envUnset(self):
        """
        An unset variable is named.
        """
        error = self.assertRaises(ValueError, readOptionEnv, "sasl.password=PW", {})
        self.assertEqual(str(error), "--kafka-option-env sasl.password=PW: PW is not set")


class WorkerSecretsTests(SynchronousTestCase):
    """
    L{workerSecrets}: a worker's command line without the secrets.
    """

    def test_inline(self):
        """
        C{--kafka-option SECRET=VALUE}, in either form, moves to the
        environment; other options stay as they were.
        """
        arguments = [
            "--topic",
            "t",
            "--kafka-option",
            f"sasl.password={PASSWORD}",
            f"--kafka-option=ssl.key.password={PASSWORD}x",
            "--kafka-option",
            "linger.ms=20",
        ]
        options = {"sasl.password": PASSWORD, "ssl.key.password": PASSWORD + "x"}
        kept, environment = workerSecrets(arguments, options)
        self.assertEqual(
            kept,
            [
                "--topic",
                "t",
                "--kafka-option-env=sasl.password=GATEWAY_KAFKA_SECRET_SASL_PASSWORD",
                "--kafka-option-env=ssl.key.password=GATEWAY_KAFKA_SECRET_SSL_KEY_PASSWORD",
                "--kafka-option=linger.ms=20",
            ],
        )
        self.assertEqual(
            environment,
            {
                "GATEWAY_KAFKA_SECRET_SASL_PASSWORD": PASSWORD,
                "GATEWAY_KAFKA_SECRET_SSL_KEY_PASSWORD": PASSWORD + "x",
            },
        )

    def test_fileAndEnvStay(self):
        """
        C{--kafka-option-file} and C{--kafka-option-env} carry no secret and
        stay.
        """
        arguments = ["--kafka-option-file", "sasl.password=/run/pw", "--kafka-option-env=a=B"]
        self.assertEqual(workerSecrets(arguments, {"sasl.password": PASSWORD}), (arguments, {}))

    def test_unrecognisedForm(self):
        """
        A secret left on the command line in a form not recognised is an
        error that does not show it.
        """
        error = self.assertRaises(
            ValueError, workerSecrets, ["--other", PASSWORD], {"sasl.password": PASSWORD}
        )
        self.assertNotIn(PASSWORD, str(error))
