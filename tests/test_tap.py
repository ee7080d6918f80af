# -*- test-case-name: tests.test_tap -*-
"""
Tests for the C{twistd gateway} command line.
"""

import os

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.options import ListenSpec
from gateway.service import DEFAULT_MAX_MESSAGE_SIZE
from gateway.tap import Options
from tests.support.files import temporaryDirectory

VALID = ["--topic", "t", "--listen", "lines=tcp:9000"]


class OptionsTests(SynchronousTestCase):
    """
    L{Options}.
    """

    def parse(self, *args):
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_defaults(self):
        """
        Only topic and one listener are required; the rest has defaults.
        """
        options = self.parse(*VALID)
        self.assertEqual(options["bootstrap-servers"], "127.0.0.1:9092")
        self.assertEqual(options["max-message-size"], DEFAULT_MAX_MESSAGE_SIZE)
        self.assertEqual(options["listen"], [ListenSpec("lines", {}, "tcp:9000")])
        self.assertEqual(options["kafka-options"], {})

    def test_incompleteCap(self):
        """
        C{--incomplete-cap} reaches the settings; without it the router's
        default (half the budget) applies; it must be a positive integer.
        """
        self.assertIsNone(self.parse(*VALID)["settings"].incompleteCap)
        options = self.parse(*VALID, "--incomplete-cap", "4096")
        self.assertEqual(options["settings"].incompleteCap, 4096)
        self.assertRaises(UsageError, self.parse, *VALID, "--incomplete-cap", "0")

    def test_repeatableListenAndKafkaOptions(self):
        """
        C{--listen} and C{--kafka-option} may be given several times; an
        endpoint keeps its own C{=} signs and colons.
        """
        options = self.parse(
            "-t",
            "t",
            "--listen",
            "lines=tcp:9000:interface=127.0.0.1",
            "-l",
            "length-prefixed=unix:/tmp/g.sock",
            "--kafka-option",
            "linger.ms=20",
            "--kafka-option",
            "client.id=gw=1",
            "-m",
            "4096",
        )
        self.assertEqual(
            options["listen"],
            [
                ListenSpec("lines", {}, "tcp:9000:interface=127.0.0.1"),
                ListenSpec("length-prefixed", {}, "unix:/tmp/g.sock"),
            ],
        )
        self.assertEqual(options["kafka-options"], {"linger.ms": "20", "client.id": "gw=1"})
        self.assertEqual(options["max-message-size"], 4096)

    def assertUsageError(self, args, fragment):
        error = self.assertRaises(UsageError, self.parse, *args)
        self.assertIn(fragment, str(error))
        self.assertNotIn("\n", str(error))

    def test_missingTopic(self):
        """
        Without C{--topic} the command line is refused.
        """
        self.assertUsageError(["--listen", "lines=tcp:9000"], "--topic")

    def test_missingListener(self):
        """
        Without any C{--listen} the command line is refused.
        """
        self.assertUsageError(["--topic", "t"], "--listen")

    def test_unknownFraming(self):
        """
        An unknown framing is refused, naming the available ones.
        """
        self.assertUsageError(["-t", "t", "--listen", "xml=tcp:9000"], "lines")

    def test_malformedEndpoint(self):
        """
        A malformed or unknown endpoint type is refused while parsing.
        """
        self.assertUsageError(["-t", "t", "--listen", "lines=tcp:port"], "tcp:port")
        self.assertUsageError(["-t", "t", "--listen", "lines=carrier-pigeon:1"], "carrier-pigeon")

    def test_malformedListenAndKafkaOption(self):
        """
        C{--listen} without C{=} and C{--kafka-option} without C{=} are refused.
        """
        self.assertUsageError(["-t", "t", "--listen", "lines"], "ENDPOINT")
        self.assertUsageError(VALID + ["--kafka-option", "linger.ms"], "KEY=VALUE")

    def test_badKafkaOption(self):
        """
        A librdkafka property that does not exist, or settings librdkafka
        refuses together, are usage errors giving librdkafka's reason.
        """
        self.assertUsageError(VALID + ["--kafka-option", "lingr.ms=5"], "lingr.ms")
        self.assertUsageError(VALID + ["--kafka-option", "acks=1"], "acks")

    def test_framingOptions(self):
        """
        Framing options are given in parentheses after the framing; escaped
        commas and parentheses stay in values.
        """
        options = self.parse(
            "-t",
            "t",
            "--listen",
            "lines(delimiter=\\r\\n,max-size=65536)=tcp:9000",
            "--listen",
            "lines(delimiter=a\\,b\\)) = tcp:9001",
        )
        self.assertEqual(
            options["listen"],
            [
                ListenSpec("lines", {"delimiter": "\\r\\n", "max-size": "65536"}, "tcp:9000"),
                ListenSpec("lines", {"delimiter": "a\\,b\\)"}, "tcp:9001"),
            ],
        )

    def test_badFramingOptions(self):
        """
        An option the framing does not declare, a value its coercer refuses,
        or unbalanced parentheses are usage errors naming the option.
        """
        self.assertUsageError(["-t", "t", "--listen", "lines(colour=red)=tcp:9000"], "colour")
        self.assertUsageError(
            ["-t", "t", "--listen", "length-prefixed(prefix-size=3)=tcp:9000"],
            "prefix-size",
        )
        self.assertUsageError(["-t", "t", "--listen", "lines(max-size=0)=tcp:9000"], "max-size")
        self.assertUsageError(["-t", "t", "--listen", "lines(delimiter=x=tcp:9000"], "not closed")

    def test_dottedPathFraming(self):
        """
        A framing given as C{package.module:Name} is imported and verified;
        one that does not exist is a usage error.
        """
        options = self.parse(
            "-t",
            "t",
            "--listen",
            "gateway.plugins.gateway_builtin:lines=tcp:9000",
        )
        self.assertEqual(options["listen"][0].framing, "gateway.plugins.gateway_builtin:lines")
        self.assertUsageError(
            ["-t", "t", "--listen", "no.such.module:Framing=tcp:9000"], "cannot be imported"
        )

    def test_http(self):
        """
        C{--http} defaults to port 8080 on loopback, takes any endpoint, is
        off with C{none}, and a malformed endpoint is a usage error.
        """
        self.assertEqual(self.parse(*VALID)["http"], "tcp:8080:interface=127.0.0.1")
        self.assertEqual(
            self.parse(*(VALID + ["--http", "unix:/tmp/g.http"]))["http"], "unix:/tmp/g.http"
        )
        self.assertIsNone(self.parse(*(VALID + ["--http", "none"]))["http"])
        self.assertUsageError(VALID + ["--http", "tcp:web"], "tcp:web")

    def test_badMessageSize(self):
        """
        A size limit that is not a positive integer is refused.
        """
        self.assertRaises(UsageError, self.parse, *(VALID + ["-m", "0"]))
        self.assertRaises(UsageError, self.parse, *(VALID + ["-m", "big"]))

    def test_helpListsFramings(self):
        """
        The help text lists every option and every framing with its
        description.
        """
        text = Options().getUsage()
        for option in (
            "--listen",
            "--bootstrap-servers",
            "--topic",
            "--kafka-option",
            "--max-message-size",
            "--drain-timeout",
        ):
            self.assertIn(option, text)
        self.assertIn("lines ", text)
        self.assertIn("length-prefixed ", text)

    def test_usageAfterErrorIsOneLine(self):
        """
        After a usage error the usage text twistd prints above the error is a
        single hint line, not the whole help.
        """
        options = Options()
        self.assertRaises(UsageError, options.parseOptions, ["-t", "t"])
        self.assertEqual(len(options.getUsage().splitlines()), 1)


class KafkaSecretOptionsTests(SynchronousTestCase):
    """
    C{--kafka-option-file}, C{--kafka-option-env} and secrets on the command
    line.
    """

    PASSWORD = "tap-secret-password"
    #: Two workers: the options they are started with are computed.
    WORKERS = ["--topic", "t", "--listen", "lines=reuseport:9000", "--workers", "2"]
    SASL = [
        "--kafka-option",
        "security.protocol=SASL_PLAINTEXT",
        "--kafka-option",
        "sasl.mechanism=PLAIN",
        "--kafka-option",
        "sasl.username=alice",
    ]

    def parse(self, *args):
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_file(self):
        """
        C{--kafka-option-file KEY=PATH} reads the property from the file; the
        workers' command line names the file, not the password.
        """
        import os
        import shutil
        import tempfile

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "pw")
        with open(path, "w") as f:
            f.write(self.PASSWORD + "\n")
        options = self.parse(
            *self.WORKERS, *self.SASL, "--kafka-option-file", f"sasl.password={path}"
        )
        self.assertEqual(options["kafka-options"]["sasl.password"], self.PASSWORD)
        self.assertEqual(options.inlineSecrets, [])
        arguments, environment = options.workerArguments
        self.assertNotIn(self.PASSWORD, " ".join(arguments))
        self.assertEqual(environment, {})

    def test_env(self):
        """
        C{--kafka-option-env KEY=VARIABLE} reads the property from the
        environment; an unset variable is a usage error naming it.
        """
        import os

        os.environ["KSEC_TEST_PASSWORD"] = self.PASSWORD
        self.addCleanup(os.environ.pop, "KSEC_TEST_PASSWORD")
        options = self.parse(
            *VALID, *self.SASL, "--kafka-option-env", "sasl.password=KSEC_TEST_PASSWORD"
        )
        self.assertEqual(options["kafka-options"]["sasl.password"], self.PASSWORD)
        error = self.assertRaises(
            UsageError,
            self.parse,
            *VALID,
            "--kafka-option-env",
            "sasl.password=KSEC_TEST_UNSET",
        )
        self.assertEqual(
            str(error),
            "--kafka-option-env sasl.password=KSEC_TEST_UNSET: KSEC_TEST_UNSET is not set",
        )

    def test_inline(self):
        """
        A secret given with C{--kafka-option} is noted (for a warning) and
        reaches the workers through their environment.
        """
        options = self.parse(
            *self.WORKERS, *self.SASL, "--kafka-option", f"sasl.password={self.PASSWORD}"
        )
        self.assertEqual(options.inlineSecrets, ["sasl.password"])
        arguments, environment = options.workerArguments
        self.assertNotIn(self.PASSWORD, " ".join(arguments))
        self.assertEqual(environment, {"GATEWAY_KAFKA_SECRET_SASL_PASSWORD": self.PASSWORD})

    def test_badSecurityNoSecret(self):
        """
        A refused security setting is a one-line usage error that does not
        show the password.
        """
        error = self.assertRaises(
            UsageError,
            self.parse,
            *VALID,
            "--kafka-option",
            "security.protocol=SASL_SSL",
            "--kafka-option",
            f"sasl.password={self.PASSWORD}",
        )
        self.assertIn("needs sasl.mechanism", str(error))
        self.assertNotIn(self.PASSWORD, str(error))


class LogFileCheckTests(SynchronousTestCase):
    """
    The gateway checks twistd's C{--logfile} before twistd opens it.
    """

    def test_missingDirectoryRefused(self):
        """
        A C{--logfile} in a missing directory is a usage error naming the
        option and the path, before the settings are checked.
        """
        from twisted.scripts.twistd import ServerOptions

        path = os.path.join(temporaryDirectory(self), "gone", "twistd.log")
        twistd = ServerOptions()
        error = self.assertRaises(
            UsageError, twistd.parseOptions, ["-n", f"--logfile={path}", "gateway", *VALID]
        )
        self.assertIn(f"--logfile {path}: cannot write there", str(error))
        twistd = ServerOptions()
        twistd.parseOptions(["-n", "--logfile=-", "gateway", *VALID])
