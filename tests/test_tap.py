# -*- test-case-name: tests.test_tap -*-
"""
Tests for the C{twistd gateway} command line.
"""

import io
import os
import platform
import sys

import confluent_kafka
from twisted.internet.error import CannotListenError
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

import twisted
from gateway import __version__
from gateway.errors import StartupGuard
from gateway.framing.options import ListenSpec
from gateway.service import DEFAULT_MAX_MESSAGE_SIZE, GatewayService
from gateway.tap import Options, makeService, versions
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

    def test_refusedSecretNotShown(self):
        """
        A secret property the backend refuses is named without its value.
        """
        from gateway.settings import SettingsError

        options = self.parse(*VALID, "--kafka-option", f"sasl.password={self.PASSWORD}")
        error = SettingsError("kafkaOptions", "refused: bad value")
        error.option = "sasl.password"
        self.assertEqual(
            options._explain(error), "--kafka-option sasl.password=...: refused: bad value"
        )

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


class CheckOptionTests(SynchronousTestCase):
    """
    C{--check} leaves unwritable paths to the check, which reports each.
    """

    def test_pathsReported(self):
        """
        A spool in a missing directory is accepted by the options with
        C{--check} (refused without), and the check names it in a C{FAIL}
        line.
        """
        from gateway.check import runCheck

        missing = os.path.join(temporaryDirectory(self), "gone")
        arguments = [*VALID, "--spool", f"{missing}/s.jsonl", "--dead-letter", f"{missing}/d"]
        self.assertRaises(UsageError, Options().parseOptions, arguments)
        options = Options()
        options.parseOptions([*arguments, "--check"])
        out = io.StringIO()
        self.assertEqual(runCheck(options["settings"], out=out), 1)
        lines = out.getvalue().splitlines()
        problem = f"directory {missing} does not exist"
        self.assertIn(f"FAIL  --spool {missing}/s.jsonl: {problem}", lines)
        self.assertIn(f"FAIL  --dead-letter {missing}/d: {problem}", lines)
        self.assertEqual(lines[-1], "check failed: 2 problems")


class LogFileCheckTests(SynchronousTestCase):
    """
    The gateway checks twistd's C{--logfile} before twistd opens it.
    """

    def test_missingDirectoryRefused(self):
        """
        A C{--logfile} in a missing directory is refused in one line naming
        the option and the path (on standard error, exit status 1, as every
        usage error under twistd), before the settings are checked.
        """
        from twisted.scripts.twistd import ServerOptions

        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        path = os.path.join(temporaryDirectory(self), "gone", "twistd.log")
        twistd = ServerOptions()
        error = self.assertRaises(
            SystemExit, twistd.parseOptions, ["-n", f"--logfile={path}", "gateway", *VALID]
        )
        self.assertEqual(error.code, 1)
        self.assertTrue(
            stderr.getvalue().startswith(f"gateway: --logfile {path}: cannot write there"),
            stderr.getvalue(),
        )
        twistd = ServerOptions()
        twistd.parseOptions(["-n", "--logfile=-", "gateway", *VALID])


#: twistd's own options (a dict) of C{twistd -n}, logging to standard output.
TWISTD_FOREGROUND = {"nodaemon": True, "logfile": None, "syslog": False}


class OneLineTests(SynchronousTestCase):
    """
    Each option's bad value named in one line; under twistd, that line on
    standard error and exit status 1.
    """

    def assertLine(self, arguments, line):
        error = self.assertRaises(UsageError, Options().parseOptions, arguments)
        self.assertEqual(str(error), line)

    def test_numbersNameTheirOption(self):
        """
        A numeric option's bad value names the option, what it expected and
        an example (twistd's own coercion would say only C{Parameter type
        enforcement failed}).
        """
        self.assertLine(
            VALID + ["--budget", "0"],
            "--budget '0': expected a whole number of bytes, 1 or more, e.g. --budget 67108864",
        )
        self.assertLine(
            VALID + ["--workers", "0"],
            "--workers '0': expected a whole number of processes, 1 or more, e.g. --workers 2",
        )
        self.assertLine(
            VALID + ["--max-message-size", "-5"],
            "--max-message-size '-5': expected a whole number of bytes, 1 or more, "
            "e.g. --max-message-size 65536",
        )
        self.assertLine(
            VALID + ["--drain-timeout", "nan"],
            "--drain-timeout 'nan': expected a number of seconds, 0 or more, "
            "e.g. --drain-timeout 30",
        )
        self.assertLine(
            VALID + ["--health-interval", "inf"],
            "--health-interval 'inf': expected a number of seconds, 0 or more, "
            "e.g. --health-interval 5",
        )

    def test_numbersAccepted(self):
        """
        Right values are coerced: whole numbers to L{int}, seconds to
        L{float}, the bounds included.
        """
        options = Options()
        options.parseOptions(
            VALID + ["--budget", "1", "--drain-timeout", "0", "--reserve-descriptors", "0"]
        )
        self.assertEqual(
            (options["budget"], options["drain-timeout"], options["reserve-descriptors"]),
            (1, 0.0, 0),
        )

    def test_kafkaOptionAlias(self):
        """
        A refused value of a librdkafka alias names the option as given
        (librdkafka names C{queue.buffering.max.ms} for C{linger.ms}).
        """
        error = self.assertRaises(
            UsageError, Options().parseOptions, VALID + ["--kafka-option", "linger.ms=abc"]
        )
        self.assertTrue(str(error).startswith("--kafka-option linger.ms=abc: refused: "), error)

    def test_bootstrapServers(self):
        """
        A malformed broker address is refused at once, naming the option.
        """
        self.assertLine(
            VALID + ["--bootstrap-servers", "kafka1:9092,foo::bar"],
            "--bootstrap-servers 'kafka1:9092,foo::bar': bad broker address "
            "'foo::bar': use host:port or [ipv6]:port",
        )

    def test_endpointPort(self):
        """
        A port that is not a number names the option and says so.
        """
        self.assertLine(
            ["-t", "t", "--listen", "lines=tcp:notaport"],
            "--listen lines...=tcp:notaport: malformed endpoint 'tcp:notaport': "
            "expected a number, not 'notaport'",
        )

    def test_unixSocketDirectory(self):
        """
        A C{unix:} socket in a missing directory names the option, the
        socket and the directory, once each.
        """
        missing = os.path.join(temporaryDirectory(self), "gone")
        self.assertLine(
            ["-t", "t", "--listen", f"lines=unix:{missing}/g.sock"],
            f"--listen lines...=unix:{missing}/g.sock: cannot create the socket "
            f"{missing}/g.sock: directory {missing} does not exist",
        )
        self.assertLine(
            [*VALID, "--http", f"unix:{missing}/h.sock"],
            f"--http unix:{missing}/h.sock: cannot create the socket "
            f"{missing}/h.sock: directory {missing} does not exist",
        )

    def test_logRate(self):
        """
        A bad C{GATEWAY_LOG_RATE} is refused with the options, not when
        twistd makes the log observer.
        """
        self.patch(os, "environ", dict(os.environ, GATEWAY_LOG_RATE="abc"))
        self.assertLine(
            VALID,
            "GATEWAY_LOG_RATE must be a whole number of events per second "
            "(0 for no limit), not 'abc'",
        )

    def test_checkKafkaAlone(self):
        """
        C{--check-kafka} goes with C{--check}.
        """
        self.assertLine(VALID + ["--check-kafka"], "--check-kafka goes with --check")

    def test_underTwistd(self):
        """
        Under twistd (a parent command), a usage error is the line on
        standard error and exit status 1.
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        options = Options()
        options.parent = TWISTD_FOREGROUND
        error = self.assertRaises(SystemExit, options.parseOptions, ["--listen", "lines=tcp:0"])
        self.assertEqual(error.code, 1)
        self.assertEqual(
            stderr.getvalue(),
            "gateway: --listen lines...=tcp:0: no Kafka topic: give the listener topic=NAME, "
            "or a default topic (--topic)\n",
        )

    def test_underTwistdDebug(self):
        """
        With C{GATEWAY_DEBUG=1}, twistd gets the L{UsageError}.
        """
        self.patch(os, "environ", dict(os.environ, GATEWAY_DEBUG="1"))
        options = Options()
        options.parent = TWISTD_FOREGROUND
        self.assertRaises(UsageError, options.parseOptions, ["--listen", "lines=tcp:0"])


class VersionAndHelpTests(SynchronousTestCase):
    """
    C{--version} and C{--help}.
    """

    def test_version(self):
        """
        C{--version} prints the versions of the gateway, Twisted, librdkafka
        and Python, and exits 0.
        """
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, Options().parseOptions, ["--version"])
        self.assertEqual(error.code, 0)
        self.assertEqual(stdout.getvalue(), versions() + "\n")
        self.assertIn(f"kafka-gateway {__version__} (Twisted {twisted.__version__}, ", versions())
        self.assertIn(f"librdkafka {confluent_kafka.libversion()[0]}", versions())
        self.assertIn(f"Python {platform.python_version()})", versions())

    def test_workerIndexHidden(self):
        """
        The internal C{--worker-index} is not in the help, but still parses.
        """
        self.assertNotIn("worker-index", Options().getUsage())
        options = Options()
        options.parseOptions(
            ["-t", "t", "--listen", "lines=reuseport:9000", "--http", "none"]
            + ["--workers", "2", "--worker-index", "2"]
        )
        self.assertEqual(options["worker-index"], 2)

    def test_defaultsSaidOnce(self):
        """
        An option whose help says its default has no contradicting
        C{[default: none]} after it.
        """
        lines = Options().getUsage().splitlines()
        [backlog] = [line for line in lines if "backlog=" in line]
        self.assertIn("(default 4096", backlog)
        self.assertNotIn("[default:", backlog)
        [idle] = [line for line in lines if "idle-ms=" in line]
        self.assertTrue(idle.endswith("[default: 200]"), idle)
        for line in lines:
            if "[default:" in line:
                self.assertEqual(line.count("default"), 1, line)


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService}: the check, and the guard around the service tree.
    """

    def setUp(self):
        self.patch(sys, "excepthook", sys.excepthook)
        self.directory = temporaryDirectory(self)

    def options(self, *extra):
        options = Options()
        options.parseOptions(
            VALID + ["--http", "none", "--spool", os.path.join(self.directory, "s.jsonl"), *extra]
        )
        return options

    def test_check(self):
        """
        With C{--check}, nothing is built: the check prints and its status
        ends the process.
        """
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, makeService, self.options("--check"))
        self.assertEqual(error.code, 0)
        self.assertEqual(stdout.getvalue().splitlines()[-1], "check passed")

    def test_guarded(self):
        """
        The gateway runs under a L{StartupGuard} that names the listener
        which could not bind.
        """
        root = makeService(self.options())
        self.assertIsInstance(root, StartupGuard)
        [gateway] = list(root)
        self.assertIsInstance(gateway, GatewayService)
        error = CannotListenError("", 9000, OSError(98, "Address already in use"))
        self.assertEqual(
            root.explain(error),
            "--listen lines=tcp:9000: cannot listen on *:9000: address already in use",
        )
        gateway.listeners[0].port = object()
        self.assertEqual(root.explain(error), "cannot listen on *:9000: address already in use")
