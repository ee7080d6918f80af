"""
C{deploy/kubernetes/kafka-gateway.yaml} against the gateway: its arguments
are options C{twistd gateway} accepts, its ports are those the options
listen on, and its probes ask the HTTP paths the gateway serves.
"""

import re
from pathlib import Path

import yaml
from twisted.trial.unittest import SynchronousTestCase

from gateway.tap import Options

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "kafka-gateway.yaml"
DOCKERFILE = ROOT / "packaging" / "docker" / "Dockerfile"


def documents():
    """
    @return: the manifest's objects, by kind.
    """
    found = {}
    for document in yaml.safe_load_all(MANIFEST.read_text()):
        found.setdefault(document["kind"], []).append(document)
    return found


def container():
    """
    @return: the gateway's container and its pod spec.
    """
    (statefulSet,) = documents()["StatefulSet"]
    pod = statefulSet["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    return gateway, pod


def _port(endpoint):
    """
    @return: the port of a C{tcp:PORT[:...]} endpoint description.
    """
    match = re.match(r"(?:reuseport|tcp):(\d+)", endpoint)
    assert match, endpoint
    return int(match.group(1))


class ManifestTests(SynchronousTestCase):
    """
    The Kubernetes manifest holds together with the gateway's options.
    """

    def setUp(self):
        self.gateway, self.pod = container()
        self.options = Options()
        # With --check the parser leaves the paths, which are the pod's
        # volume's, unchecked.
        self.options.parseOptions([*self.gateway["args"], "--check"])

    def test_argumentsAreGatewayOptions(self):
        """
        The container's arguments are accepted by C{twistd gateway}'s own
        option parser, as the image's entrypoint hands them to it.
        """
        entrypoint = re.search(r"^ENTRYPOINT (.*)$", DOCKERFILE.read_text(), re.M)
        self.assertTrue(entrypoint.group(1).rstrip().endswith('"gateway"]'))
        self.assertEqual(self.options["topic"], "events")
        self.assertNotIn("command", self.gateway)

    def test_containerPortsAreTheListenedOnes(self):
        """
        Each named container port is one the options listen on: the
        listeners' and the HTTP endpoints', and nothing else.
        """
        ports = {port["containerPort"] for port in self.gateway["ports"]}
        listened = {_port(spec.endpoint) for spec in self.options["listen"]}
        listened.add(_port(self.options["http"]))
        self.assertEqual(ports, listened)

    def test_httpOnEveryInterface(self):
        """
        The kubelet probes the pod's address, so the HTTP endpoint does not
        listen on loopback only.
        """
        self.assertNotIn("interface=127.", self.options["http"])

    def test_probesAskServedPaths(self):
        """
        Liveness asks C{/healthz} and readiness C{/readyz} (never the other
        way round), on the named HTTP port, and both are paths the gateway
        serves.
        """
        from twisted.internet.testing import MemoryReactorClock

        from gateway.ops.web import buildSite
        from gateway.service import GatewayService
        from tests.fakes import fakeBackend

        gateway = GatewayService(
            topic="t",
            reactor=MemoryReactorClock(),
            backend=fakeBackend(),
            spoolPath=None,
            deadLetterPath=None,
            healthInterval=None,
        )
        served = set(buildSite(gateway).resource.listNames())
        probes = {
            kind: self.gateway[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")
        }
        self.assertEqual(probes["livenessProbe"]["path"], "/healthz")
        self.assertEqual(probes["readinessProbe"]["path"], "/readyz")
        http = [
            p for p in self.gateway["ports"] if p["containerPort"] == _port(self.options["http"])
        ]
        for probe in probes.values():
            self.assertIn(probe["path"].lstrip("/").encode(), served)
            self.assertEqual(probe["port"], http[0]["name"])

    def test_graceLongerThanDrain(self):
        """
        The pod is given longer than C{--drain-timeout} plus the C{preStop}
        sleep before SIGKILL.
        """
        sleep = float(self.gateway["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertGreater(
            self.pod["terminationGracePeriodSeconds"],
            float(self.options["drain-timeout"]) + sleep,
        )

    def test_filesOnTheVolume(self):
        """
        The spool and the dead-letter file are on the mounted volume, so
        they outlive the container.
        """
        (mount,) = self.gateway["volumeMounts"]
        for name in ("spool", "dead-letter"):
            self.assertTrue(self.options[name].startswith(mount["mountPath"] + "/"), name)

    def test_servicesTargetNamedPorts(self):
        """
        Every Service port targets a port the container names, and selects
        the StatefulSet's pods.
        """
        names = {port["name"] for port in self.gateway["ports"]}
        (statefulSet,) = documents()["StatefulSet"]
        labels = statefulSet["spec"]["template"]["metadata"]["labels"]
        for service in documents()["Service"]:
            self.assertEqual(service["spec"]["selector"], labels)
            for port in service["spec"]["ports"]:
                self.assertIn(port["targetPort"], names)
