# -*- test-case-name: tests.test_routing -*-
"""
Where a connection's records go: the listener's topic template and key
strategy, checked at start and resolved once per connection, so that the
hot path (L{gateway.router.MessageStream.send}) stays one producer call
with everything prepared.

A template names fields of the connection (L{FIELDS}); the values are made
legal topic names by L{topicName}.  What a template cannot say, a routing
plugin (L{gateway.interfaces.IRoutingPlugin}) decides.

Two fields and one key come later than the connection: C{{session}} and
C{key=session} when an ack-mode client's handshake arrives (the route is
resolved again then, once: L{Route.resolve}), C{{client_cert_cn}} when a
TLS listener's handshake has verified the client (before the stream opens).
L{Route.check} refuses them where they cannot be known.
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
FIELDS = {
    "listener": "listener",
    "peer_host": "peerHost",
    "peer_port": "peerPort",
    "session": "session",
    "client_cert_cn": "clientCertCN",
}

#: Key strategies: how a record's key is chosen, which decides the partition
#: and so the order Kafka keeps (see docs/routing.md).
KEY_STRATEGIES = ("connection", "peer-host", "session", "none")

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
        :return: the topic name for that connection (see L{topicName}), or
            L{None} while a field it names is not known (C{{session}} before
            the handshake).
        """
        if not self.fields:
            return topicName(self.text)
        values = {}
        for name in self.fields:
            value = getattr(context, FIELDS[name])
            if value is None:
                return None
            values[name] = topicName(str(value))
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
    if text not in KEY_STRATEGIES:
        raise ValueError("must be one of " + ", ".join(KEY_STRATEGIES))
    return text


@dataclass
class RoutingContext:
    """
    What is known of one connection: the fields templates and routing
    plugins choose from.  C{clientCertCN} is known when the stream opens
    (after the TLS handshake); C{session} when the ack-mode handshake
    arrives, and the route is resolved again then.

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
    :ivar session: the ack-mode session id (L{str}), or L{None}.
    :ivar clientCertCN: the common name of the verified client
        certificate (L{str}; empty for a certificate without one), or
        L{None}.
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

    def connectionKey(self):
        """
        :return: the key of C{key=connection}, C{LISTENER/PEER}.
        """
        return f"{self.listener}/{self.peer}".encode()


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

    def needs(self, name):
        """
        :param name: a field of L{FIELDS}.
        :return: whether the listener's topic template names it.
        """
        return self.topic is not None and name in self.topic.fields

    def check(self, ack=False, clientCertificates=False):
        """
        Refuse what this route cannot know or keep on its listener.

        :param ack: whether the listener has C{ack=on}.
        :param clientCertificates: whether it verifies client certificates
            (TLS with C{tls-client-ca}).
        :raises ValueError: one line, naming the option.
        """
        session = self.key == "session" or self.needs("session")
        what = "key=session" if self.key == "session" else "field {session}"
        if session and not ack:
            raise ValueError(f"{what} needs ack=on: the session comes with its handshake")
        if session and self.plugin is not None:
            raise ValueError(
                f"{what} cannot be used with routing=: the plugin is asked when "
                "the connection is made, before the session handshake"
            )
        if self.needs("client_cert_cn") and not clientCertificates:
            raise ValueError(
                "field {client_cert_cn} needs a TLS listener verifying client "
                "certificates (tls-cert=FILE and tls-client-ca=FILE)"
            )
        if ack and self.key == "none":
            raise ValueError(
                "key=none spreads a connection's records over partitions, and "
                "ack=on needs them on one: use key=session, connection or peer-host"
            )
        if ack and self.plugin is not None and self.plugin.perMessage:
            raise ValueError(
                f"routing={self.plugin.name} chooses per message, and ack=on needs "
                "a connection's records on one partition: use a per-connection "
                "routing plugin, or no ack"
            )

    def resolve(self, context, defaultTopic):
        """
        Fill in the context's C{topic} and C{key} for one connection, from
        what it knows: called when the connection's stream opens, and again
        when an ack-mode session's handshake arrives.  Until then
        C{key=session} keys by connection, and a template naming
        C{{session}} gives no topic (L{None}).

        :param context: the connection's L{RoutingContext}.
        :param defaultTopic: the gateway's topic, for a listener naming none.
        :return: C{context}.
        """
        template = self.topic
        context.topic = template.resolve(context) if template is not None else defaultTopic
        strategy = self.key
        if strategy == "session" and context.session is not None:
            context.key = context.session.encode()
        elif strategy in ("connection", "session"):
            context.key = context.connectionKey()
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
