# -*- test-case-name: tests.client.test_framing -*-
"""
A framing from the client's side: the gateway's own framing code
(C{encodeFrame} to write messages, C{parseFrames} to read the replies),
found by the name and options a listener uses, so a client speaks exactly
what the listener parses and no codec is written twice.
"""

from gateway.framing.base import FramingError
from gateway.framing.options import MAX_SIZE, OptionError, parseListen, resolveOptions
from gateway.registry import FramingError as UnknownFraming
from gateway.registry import FramingRegistry

__all__ = ["ClientFraming", "FramingError", "REPLY_LIMIT"]

#: The largest reply a client reads: replies are short ASCII lines.
REPLY_LIMIT = 1024


class ClientFraming:
    """
    Encode messages and parse replies with a framing's protocol class, set
    up with a listener's options as the gateway's listener would be.

    :ivar name: the framing's name.
    :ivar options: the resolved options (every declared one, and
        C{max-size}).
    """

    def __init__(self, plugin, options=None):
        """
        :param plugin: a framing plugin with a C{protocolClass()} (every
            L{gateway.framing.FramingPlugin}).
        :param options: option name to value, as in a C{--listen}'s
            parentheses or a C{.tac}'s C{addListener}.
        :raises OptionError: for a framing that cannot frame messages
            (C{chunks}) or a bad option, naming it.
        """
        self.name = plugin.name
        protocolClass = getattr(plugin, "protocolClass", None)
        if protocolClass is None:
            raise OptionError(f"framing {plugin.name!r} has no protocol class a client can use")
        given = dict(options or {})
        self.options = resolveOptions(plugin, given, REPLY_LIMIT)
        base = protocolClass()
        attributes = dict(base.listenerAttributes(self.options), MAX_LENGTH=REPLY_LIMIT)
        self._codec = type(base.__name__, (base,), attributes)()
        try:
            self._codec.encodeFrame(b"ACK 1")
        except NotImplementedError as e:
            raise OptionError(
                f"framing {plugin.name!r} has no message boundaries a client can count"
            ) from e

    @classmethod
    def fromSpec(cls, spec, registry=None):
        """
        The framing a spec names: C{NAME} or C{NAME(OPTION=VALUE,...)}, with
        the same syntax and escapes as the framing part of C{--listen}.

        :param registry: a L{gateway.registry.FramingRegistry} (the
            installed framings unless given).
        :raises OptionError: for a malformed spec, an unknown framing or a
            bad option, in one line.
        """
        # parseListen parses FRAMING[(OPTIONS)]=ENDPOINT: give it a dummy
        # endpoint rather than a second parser of the same syntax.
        parsed = parseListen(spec + "=-")
        if registry is None:
            registry = FramingRegistry()
        try:
            plugin = registry.get(parsed.framing)
        except UnknownFraming as e:
            raise OptionError(str(e)) from e
        if MAX_SIZE in parsed.options:
            raise OptionError(
                f"framing {parsed.framing!r}: max-size is the gateway's, not a client's"
            )
        return cls(plugin, parsed.options)

    def encode(self, payload):
        """
        :return: C{payload} framed.
        :raises ValueError: for a payload the framing cannot carry (an
            empty octet-counted frame, a line holding its delimiter).
        """
        delimiter = getattr(self._codec, "delimiter", None)
        if delimiter is not None and delimiter in payload:
            raise ValueError(f"a {self.name} message cannot hold its delimiter {delimiter!r}")
        return self._codec.encodeFrame(payload)

    def parse(self, buffer):
        """
        :return: C{(frames, consumed)}: the whole replies at the start of
            C{buffer} and the bytes they took.
        :raises FramingError: for bytes that are not replies in this framing.
        """
        return self._codec.parseFrames(buffer, REPLY_LIMIT)
