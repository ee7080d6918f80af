# -*- test-case-name: tests.test_install -*-
"""
The production install files under C{packaging/}: the systemd unit is one
systemd accepts (C{systemd-analyze verify}), and its options, like the
container image's, are ones the gateway accepts; the image's health check
asks C{/readyz} where the image's gateway serves it. Building the image
needs a container builder: C{scripts/build-image} does it in CI where one
runs.
"""

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from gateway.allocator import PRELOAD
from gateway.check import runCheck
from gateway.tap import Options
from tests.support.files import temporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "systemd" / "kafka-gateway.service"
ENV = ROOT / "packaging" / "systemd" / "kafka-gateway.env"
DOCKERFILE = ROOT / "packaging" / "docker" / "Dockerfile"
STATE = "/var/lib/kafka-gateway"


def environmentFile(path):
    """
    The variables of a systemd environment file.
    """
    variables = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def dockerInstructions(path):
    """
    The instructions of a Dockerfile, continuation lines joined:
    C{[(INSTRUCTION, arguments)]}.
    """
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def checkOptions(testCase, arguments):
    """
    Parse C{arguments} as the gateway's options, with the state directory
    moved to a temporary one, and run the gateway's own check on them.

    :return: the check's output lines.
    """
    directory = temporaryDirectory(testCase)
    arguments = [a.replace(STATE, directory) for a in arguments]
    options = Options()
    options.parseOptions(arguments)
    out = io.StringIO()
    testCase.assertEqual(runCheck(options["settings"], out=out), 0, out.getvalue())
    return out.getvalue().splitlines()


class SystemdTests(SynchronousTestCase):
    """
    C{packaging/systemd/}.
    """

    def test_verify(self):
        """
        C{systemd-analyze verify} accepts the unit without a warning, its
        commands pointed at this virtualenv and its environment file at the
        example's.
        """
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(
            analyze, "systemd-analyze is needed (Debian: apt-get install systemd)"
        )
        directory = Path(temporaryDirectory(self))
        unit = UNIT.read_text()
        unit = unit.replace("/opt/kafka-gateway/bin", str(Path(sys.executable).parent))
        unit = unit.replace("/etc/kafka-gateway/kafka-gateway.env", str(ENV))
        commands = [line for line in unit.splitlines() if not line.startswith("#")]
        self.assertNotIn("/opt/kafka-gateway", "\n".join(commands))
        path = directory / "kafka-gateway.service"
        path.write_text(unit)
        result = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, timeout=120
        )
        self.assertEqual((result.returncode, result.stderr), (0, ""), result.stdout)

    def test_verifyRefusesAMistake(self):
        """
        The check above can fail: a command that does not exist is refused.
        """
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze)
        path = Path(temporaryDirectory(self)) / "kafka-gateway.service"
        path.write_text(UNIT.read_text().replace("/etc/kafka-gateway/kafka-gateway.env", str(ENV)))
        result = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, timeout=120
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("/opt/kafka-gateway/bin/twistd", result.stderr)

    def test_optionsPassTheCheck(self):
        """
        The example environment file's options pass C{twistd gateway
        --check}, which the unit runs before starting; the unit passes them
        to both commands.
        """
        options = environmentFile(ENV)["GATEWAY_OPTIONS"]
        lines = checkOptions(self, options.split())
        self.assertEqual(lines[-1], "check passed")
        unit = UNIT.read_text()
        self.assertIn("gateway --check $GATEWAY_OPTIONS\n", unit)
        self.assertIn("gateway $GATEWAY_OPTIONS\n", unit)
        self.assertEqual(int(environmentFile(ENV)["GATEWAY_LOG_RATE"]), 10)

    def test_preloadsTheAllocator(self):
        """
        The environment file preloads the allocator the gateway's other
        launchers preload.
        """
        self.assertEqual(environmentFile(ENV)["LD_PRELOAD"], PRELOAD)


class DockerfileTests(SynchronousTestCase):
    """
    C{packaging/docker/Dockerfile}, read (built by C{scripts/build-image}).
    """

    def setUp(self):
        self.instructions = dockerInstructions(DOCKERFILE)

    def instruction(self, keyword):
        [arguments] = [rest for name, rest in self.instructions if name == keyword]
        return arguments

    def test_installsThePackage(self):
        """
        The image installs the wheel built from the checkout, not the
        sources, and runs as a user of its own.
        """
        runs = [rest for name, rest in self.instructions if name == "RUN"]
        self.assertTrue(any("pip wheel" in run and run.endswith(" .") for run in runs), runs)
        self.assertTrue(any("pip install" in run and "/wheels/*.whl" in run for run in runs))
        self.assertEqual(self.instruction("USER"), "kafka-gateway")

    def test_preloadsTheAllocator(self):
        """
        The image installs mimalloc and preloads it (C{docs/architecture.md},
        "The allocator").
        """
        runs = [rest for name, rest in self.instructions if name == "RUN"]
        self.assertTrue(any("apt-get install" in r and "libmimalloc2.0" in r for r in runs))
        self.assertEqual(self.instruction("ENV"), f"LD_PRELOAD={PRELOAD}")

    def test_runsTheGateway(self):
        """
        The entry point is twistd in the foreground with JSON logs; the
        default command is options the gateway accepts and checks.
        """
        entry = json.loads(self.instruction("ENTRYPOINT"))
        self.assertEqual(
            entry,
            ["twistd", "-n", "--pidfile=", "--logger", "gateway.logs.jsonObserver", "gateway"],
        )
        command = json.loads(self.instruction("CMD"))
        lines = checkOptions(self, command)
        self.assertEqual(lines[-1], "check passed")

    def test_healthCheckIsReadiness(self):
        """
        The health check asks C{/readyz} with C{gateway-probe} (an installed
        console script), on the port the default command's C{--http} serves.
        """
        health = self.instruction("HEALTHCHECK")
        options, _, command = health.partition("CMD ")
        self.assertIn("--interval=", options)
        probe = json.loads(command)
        self.assertEqual(probe[0], "gateway-probe")
        self.assertIn(
            "gateway-probe = gateway.ops.readiness:main", (ROOT / "setup.cfg").read_text()
        )
        command = json.loads(self.instruction("CMD"))
        http = command[command.index("--http") + 1]
        port = http.split(":")[1]
        self.assertIn(f"http://127.0.0.1:{port}/readyz", probe)
        self.assertIn(port, self.instruction("EXPOSE").split())

    def test_contextLeavesOutTheBulk(self):
        """
        C{.dockerignore} keeps the virtualenv, the Kafka jars and git out of
        the build context.
        """
        ignored = shlex.split((ROOT / ".dockerignore").read_text(), comments=True)
        for path in (".git", ".venv", ".devkafka"):
            self.assertIn(path, ignored)
        self.assertTrue(os.access(ROOT / "scripts" / "build-image", os.X_OK))
