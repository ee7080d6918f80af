# -*- test-case-name: tests.test_interfaces -*-
"""
The contracts between the gateway's pieces, and the ones plugin authors implement.

A framing plugin turns a listener's configuration into a protocol factory;
its protocols cut a byte stream into messages and hand each one to a message
stream opened on the L{IMessageSink}, which owns topic, key, headers and
back-pressure.
"""

from zope.interface import Attribute, Interface

__all__ = ["IFramingPlugin", "IMessageSink", "IMessageStream"]


class IFramingPlugin(Interface):
    """
    A named way of cutting a TCP byte stream into messages.

    Found with C{twisted.plugin.getPlugins(IFramingPlugin, gateway.plugins)};
    the object must also provide L{twisted.plugin.IPlugin}.
    """

    name = Attribute("Short name used in C{--listen NAME=ENDPOINT}, e.g. C{'lines'}.")
    description = Attribute("One line shown in C{twistd gateway --help}.")
    options = Attribute(
        "The options the framing accepts besides C{max-size}: a sequence of "
        "L{gateway.framing.options.FramingOption} (name, coercer, default, "
        "help, kind)."
    )

    def buildFactory(listener):
        """
        Build the protocol factory serving one listener.

        :param listener: a L{gateway.listener.ListenerConfig} naming the
            listener, its message sink, its resolved C{options} (every
            declared option plus C{max-size}) and its clock.
        :return: an L{twisted.internet.interfaces.IProtocolFactory}.
        """


class IMessageStream(Interface):
    """
    One client connection's way into Kafka, opened once per connection so that
    everything constant (topic, key, headers) is prepared once, not per message.
    """

    def send(payload):
        """
        Publish one complete message.  This is the hot path: it returns nothing
        and allocates no per-message Deferred.

        :param payload: the message, without framing.
        :type payload: L{bytes}
        """

    def close():
        """
        The connection is gone; release what the stream holds.
        """


class IMessageSink(Interface):
    """
    Where framing protocols deliver messages: it decides the Kafka record and
    pauses or resumes client connections when Kafka cannot keep up.
    """

    def openStream(listener, peer, producer):
        """
        Open the stream for a new client connection.

        :param listener: the listener's name.
        :type listener: L{str}
        :param peer: the client's address, as C{host:port}.
        :type peer: L{str}
        :param producer: the connection's L{twisted.internet.interfaces.IPushProducer}
            (the framing protocol), paused and resumed for back-pressure.
        :rtype: L{IMessageStream}
        """
