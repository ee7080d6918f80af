# -*- test-case-name: tests.test_routing -*-
"""
Where a connection's records go: the listener's topic template and key
strategy, checked at start and resolved once per connection, so that the
hot path (L{gateway.router.MessageStream.send}) stays one producer call
with everything prepared.

A template names fields known when the connection is made (L{FIELDS}); the
values are made legal topic names by L{topicName}.  What a template cannot
say, a routing plugin (L{gateway.interfaces.IRoutingPlugin}) decides.
"""

import re
import string
from dataclasses import dataclass, field

from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import implementer

from gateway.interfaces import IRoutingPlugin

__all__ = [
    "FIELDS",
    "KEY_STRATEGIES",
    "LATER_FIELDS",
    "Route",
    "RoutingContext",
    "RoutingPlugin",
    "TopicTemplate",
    "fixedTopic",
    "keyStrategy",
    "topicName",
    "topicTemplate",
]

#: Template fields, and the L{RoutingContext} attribute holding each.
FIELDS = {"listener": "listener", "peer_host": "peerHost", "peer_port": "peerPort"}

#: Fields that other features will provide (the session handshake of the
#: acknowledgement mode, the client certificate of TLS listeners), with why
#: they cannot be used yet.
LATER_FIELDS = {
    "session": "needs the acknowledgement mode's session handshake",
    "client_cert_cn": "needs TLS client certificates",
}

#: Key strategies: how a record's key is chosen, which decides the partition
#: and so the order Kafka keeps (see docs/routing.md).
KEY_STRATEGIES = ("connection", "peer-host", "none")

#: Key strategies other features will provide, with why not yet.
LATER_KEYS = {"session": "needs the acknowledgement mode's session handshake"}

#: What Kafka allows in a topic name, and its longest one.
_LEGAL = re.compile(r"[^a-zA-Z0-9._-]")
MAX_TOPIC_LENGTH = 249


def topicName(text):
    """
    Make a legal Kafka topic name of C{text}: every character Kafka does not
    allow (anything but ASCII letters, digits, C{.}, C{_} and C{-}) becomes
    C{_}, a name of only dots gets C{_} for each, and the name is cut at 249
    characters.

    :type text: L{str}
    :rtype: L{str}
    """
    name = _LEGAL.sub("_", text)[:MAX_TOPIC_LENGTH]
    if name in ("", ".", ".."):
        name = "_" * max(1, len(name))
    return name


class TopicTemplate:
    """
    A topic, possibly with C{{field}} references resolved per connection.

    :ivar text: the template as written.
    :ivar fields: the fields it names, in order.
    """

    def __init__(self, text):
        """
        :raises ValueError: for an empty template, a malformed one, an
            unknown field, a field not available yet, or literal text Kafka
            does not allow in a topic name.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("must be a topic name or template, e.g. devices.{peer_host}")
        self.text = text = text.strip()
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as e:
            raise ValueError(f"malformed template {text!r}: {e}") from e
        fields = []
        literal = []
        for prefix, name, spec, conversion in parts:
            literal.append(prefix)
            if name is None:
                continue
            if name in LATER_FIELDS:
                raise ValueError(f"field {{{name}}} {LATER_FIELDS[name]}")
            if name not in FIELDS:
                raise ValueError(
                    f"unknown field {{{name}}} in {text!r}; fields: "
                    + ", ".join("{" + f + "}" for f in FIELDS)
                )
            if spec or conversion:
                raise ValueError(f"field {{{name}}} takes no format or conversion")
            fields.append(name)
        constant = "".join(literal)
        if _LEGAL.search(constant):
            raise ValueError(
                f"{text!r} has characters Kafka does not allow in a topic "
                "name (letters, digits, '.', '_' and '-' only)"
            )
        self.fields = tuple(fields)

    def resolve(self, context):
        """
        :param context: the connection's L{RoutingContext}.
        :return: the topic name for that connection (see L{topicName}).
        """
        if not self.fields:
            return topicName(self.text)
        values = {name: topicName(str(getattr(context, FIELDS[name]))) for name in self.fields}
        return topicName(self.text.format(**values))

    def __eq__(self, other):
        return isinstance(other, TopicTemplate) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return f"TopicTemplate({self.text!r})"

    def __str__(self):
        return self.text


def topicTemplate(value):
    """
    The C{topic=} listener option: a L{TopicTemplate} (a written L{str} or
    one already made).
    """
    if isinstance(value, TopicTemplate):
        return value
    return TopicTemplate(value)


def keyStrategy(value):
    """
    The C{key=} listener option: one of L{KEY_STRATEGIES}.
    """
    text = str(value).strip()
    if text in LATER_KEYS:
        raise ValueError(f"key={text} {LATER_KEYS[text]}")
    if text not in KEY_STRATEGIES:
        raise ValueError("must be one of " + ", ".join(KEY_STRATEGIES))
    return text


@dataclass
class RoutingContext:
    """
    What is known of one connection when it is made: the fields templates
    and routing plugins choose from.  C{session} and C{clientCertCN} are
    filled by the features providing them; a route using them resolves
    once they are known.

    :ivar listener: the listener's name.
    :ivar peer: the client's address as C{host:port} (the PROXY header's,
        behind C{haproxy:}).
    :ivar peerHost: its host part.
    :ivar peerPort: its port part (a L{str}; empty if there is none).
    :ivar topic: the topic the listener's template chose.
    :ivar key: the key the listener's key strategy chose (L{bytes} or
        L{None}).
    :ivar headers: the provenance headers the gateway adds (a L{list} of
        C{(name, bytes)}, shared: copy before changing), or L{None}.
    :ivar chosen: the routing plugin's connection router, or L{None}.
    """

    listener: str
    peer: str
    peerHost: str = ""
    peerPort: str = ""
    topic: str = None
    key: bytes = None
    headers: list = None
    session: str = None
    clientCertCN: str = None
    chosen: object = None

    @classmethod
    def forConnection(cls, listener, peer, headers=None):
        """
        :param peer: C{host:port}, C{[v6host]:port} or a UNIX path.
        """
        host, sep, port = peer.rpartition(":")
        if not sep or not port.isdigit():
            host, port = peer, ""
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(listener, peer, host, port, headers=headers)


@dataclass(frozen=True)
class Route:
    """
    One listener's routing, checked at start.

    :ivar topic: its L{TopicTemplate}, or L{None} for the gateway's topic.
    :ivar key: its key strategy (one of L{KEY_STRATEGIES}).
    :ivar plugin: its L{gateway.interfaces.IRoutingPlugin}, or L{None}.
    """

    topic: TopicTemplate = None
    key: str = "connection"
    plugin: object = field(default=None, compare=False)

    def resolve(self, context, defaultTopic):
        """
        Fill in the context's C{topic} and C{key} for one connection.

        :param context: the connection's L{RoutingContext}.
        :param defaultTopic: the gateway's topic, for a listener naming none.
        :return: C{context}.
        """
        template = self.topic
        context.topic = template.resolve(context) if template is not None else defaultTopic
        strategy = self.key
        if strategy == "connection":
            context.key = f"{context.listener}/{context.peer}".encode()
        elif strategy == "peer-host":
            context.key = context.peerHost.encode()
        else:
            context.key = None
        return context


@implementer(IPlugin, IRoutingPlugin)
class RoutingPlugin:
    """
    The routing plugin most plugins need: a name, and the class (or its
    dotted path, imported when first used) of the connection routers.

    :ivar name: used in C{routing=NAME}.
    :ivar description: one line for the docs.
    :ivar perMessage: whether the routers have a C{route(payload)}.
    """

    def __init__(self, name, description, router, perMessage=False):
        """
        :param router: called with a connection's L{RoutingContext}, returns
            its router (see L{IRoutingPlugin.connectionRouter}); or the
            dotted path C{package.module.Name} of such a callable.
        """
        self.name = name
        self.description = description
        self.perMessage = perMessage
        self._router = router

    def connectionRouter(self, connection):
        """
        See L{IRoutingPlugin.connectionRouter}.
        """
        if isinstance(self._router, str):
            self._router = namedAny(self._router)
        return self._router(connection)


def fixedTopic(route, defaultTopic):
    """
    The one topic every record of a listener goes to, when it is known at
    start: its template has no fields and no routing plugin chooses.

    :param route: the listener's L{Route}.
    :param defaultTopic: the gateway's topic, or L{None}.
    :return: the topic name, or L{None} when it depends on the connection
        or the message.
    """
    if route.plugin is not None:
        return None
    if route.topic is None:
        return defaultTopic
    if route.topic.fields:
        return None
    return topicName(route.topic.text)
