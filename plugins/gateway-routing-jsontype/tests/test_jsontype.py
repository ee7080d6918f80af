"""
The example routing plugin passes the gateway's conformance kit, and splits
JSON lines by their C{"type"} field.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.plugins.jsontype_routing import jsonType
from gateway.registry import loadRouting
from gateway.testing import RoutingConformanceMixin


class JSONTypeConformanceTests(RoutingConformanceMixin, SynchronousTestCase):
    """
    The conformance kit, with where each sample must go.
    """

    plugin = jsonType
    samples = (
        (b'{"type": "metric", "name": "cpu", "value": 0.5}', "metrics"),
        (b'{"type": "event", "what": "login"}', "events"),
        (b'{"name": "no type"}', "events"),
        (b'["type", "metric"]', "events"),
        (b'{"type": "metric"', "events"),
        (b"not json at all", "events"),
        (b'{"type":"metric"}', "metrics"),
    )


class DiscoveryTests(SynchronousTestCase):
    """
    The gateway finds the installed plugin by name and by dotted path.
    """

    def test_byName(self):
        """
        C{routing=json-type} names it.
        """
        self.assertIs(loadRouting("json-type"), jsonType)

    def test_byPath(self):
        """
        C{routing=gateway.plugins.jsontype_routing:jsonType} names it too.
        """
        self.assertIs(loadRouting("gateway.plugins.jsontype_routing:jsonType"), jsonType)

    def test_keyAndHeadersAreTheConnections(self):
        """
        Records keep the connection's key and the gateway's headers.
        """
        records, _ = JSONTypeConformanceTests("test_samples").route([b'{"type": "metric"}'])
        [(topic, _, key, headers)] = records
        self.assertEqual((topic, key), ("metrics", b"l/192.0.2.1:4000"))
        self.assertEqual([name for name, _ in headers], ["gateway-listener", "gateway-peer"])
