# -*- test-case-name: test_jsontype -*-
"""
Route JSON lines by their C{"type"} field: C{{"type": "metric", ...}} to the
topic C{metrics}, everything else to C{events}.

The example routing plugin (see docs/routing.md): per-message routing, so
the router prepares both outcomes once per connection and each message
costs one C{orjson.loads} and a dictionary look-up.
"""

import orjson

from gateway.routing import RoutingPlugin


class JSONTypeRouter:
    """
    One connection's router.

    :ivar topic: the connection's topic (the listener's), unused per
        message but kept as the interface asks.
    """

    __slots__ = ("topic", "key", "headers", "_metrics", "_events")

    #: Where metrics and everything else go.
    METRICS = "metrics"
    EVENTS = "events"

    def __init__(self, connection):
        """
        :param connection: the connection's L{gateway.routing.RoutingContext}.
        """
        self.topic = connection.topic
        self.key = connection.key
        self.headers = connection.headers
        self._metrics = (self.METRICS, self.key, self.headers)
        self._events = (self.EVENTS, self.key, self.headers)

    def route(self, payload):
        """
        :return: C{(topic, key, headers)} of one message.
        """
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self._events
        if type(document) is dict and document.get("type") == "metric":
            return self._metrics
        return self._events


jsonType = RoutingPlugin(
    "json-type",
    'JSON messages with "type": "metric" to the topic metrics, the rest to events',
    JSONTypeRouter,
    perMessage=True,
)
