# -*- test-case-name: tests.framing.test_options -*-
"""
Framing options: how a plugin declares them, and how a listener gives them.

On the command line a listener is C{FRAMING[(NAME=VALUE,...)]=ENDPOINT}, for
example C{lines(delimiter=\\r\\n,max-size=65536)=tcp:9000}.  Values take
backslash escapes (C{\\n}, C{\\r}, C{\\t}, C{\\0}, C{\\xHH}, C{\\\\}, C{\\,},
C{\\)}) so any byte string can be written; spaces around names and values
are ignored (a space is C{\\x20}).
"""

import re
from dataclasses import dataclass

__all__ = [
    "ACK",
    "ACK_INTERVAL",
    "ACK_OPTIONS",
    "FramingOption",
    "ListenSpec",
    "MAX_SIZE",
    "OptionError",
    "boolean",
    "byteString",
    "choice",
    "integer",
    "parseListen",
    "resolveOptions",
    "splitEscaped",
    "unescape",
]

#: The option every framing accepts: the listener's message size limit.
MAX_SIZE = "max-size"

#: Acknowledgement options (see C{docs/guarantees.md}), given to every
#: listener; C{ack=on} is refused by a framing that cannot write them.
ACK = "ack"
ACK_INTERVAL = "ack-interval"
#: Seconds between a connection's acknowledgement writes, by default.
DEFAULT_ACK_INTERVAL = 0.01


class OptionError(ValueError):
    """
    A listener specification or a framing option is malformed.
    """


@dataclass(frozen=True)
class FramingOption:
    """
    One option a framing plugin accepts.

    :ivar name: as written in C{--listen}, e.g. C{"delimiter"}.
    :ivar coerce: turns the written value (a L{str}) or a Python value given
        in a C{.tac} file into the value the protocol uses; raises
        L{ValueError} when it cannot.
    :ivar default: the value when the option is not given (already coerced).
    :ivar help: one line for C{--help} and the docs.
    :ivar kind: the value's type in words, e.g. C{"bytes"}, C{"1|2|4|8"}.
    """

    name: str
    coerce: object
    default: object
    help: str
    kind: str


_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE = {
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"0": b"\0",
    b"\\": b"\\",
    b",": b",",
    b")": b")",
    b"(": b"(",
    b"=": b"=",
}


def unescape(text):
    """
    Decode backslash escapes in an option value.

    :param text: the value as written.
    :rtype: L{bytes}
    :raises ValueError: for an unknown escape.
    """

    def replace(match):
        escape = match.group(1)
        if escape.startswith(b"x") and len(escape) == 3:
            return bytes([int(escape[1:], 16)])
        if escape in _SIMPLE:
            return _SIMPLE[escape]
        raise ValueError(f"unknown escape \\{escape.decode(errors='replace')}")

    return _ESCAPE.sub(replace, text.encode("utf-8"))


def byteString(value):
    """
    A non-empty byte string, written with escapes (see L{unescape}).
    """
    if isinstance(value, str):
        value = unescape(value)
    if not isinstance(value, bytes) or not value:
        raise ValueError("must be a non-empty byte string")
    return value


def integer(minimum=None, maximum=None):
    """
    :return: a coercer accepting whole numbers within the bounds given.
    """

    def coerce(value):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be a whole number")
        try:
            number = int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise ValueError(f"must be at most {maximum}")
        return number

    return coerce


def choice(*allowed):
    """
    :return: a coercer accepting exactly one of C{allowed} (compared as
        strings, returned as the allowed value).
    """

    def coerce(value):
        for candidate in allowed:
            if str(value) == str(candidate):
                return candidate
        raise ValueError("must be one of " + ", ".join(map(str, allowed)))

    return coerce


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def boolean(value):
    """
    C{true}/C{false} (also yes/no, on/off, 1/0), or a Python L{bool}.
    """
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("must be true or false")


def _seconds(value):
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    number = float(value)
    if not 0 <= number < float("inf"):
        raise ValueError("must be a number of seconds, 0 or more")
    return number


#: The acknowledgement options every listener takes (after its framing's).
ACK_OPTIONS = (
    FramingOption(
        ACK,
        boolean,
        False,
        "write back, on the same connection and in the listener's framing, "
        "ACK <n> once Kafka confirmed every message up to the nth "
        "(and NACK <n> <reason> for one refused); sessions: SESSION <id> <first-seq>",
        "on|off",
    ),
    FramingOption(
        ACK_INTERVAL,
        _seconds,
        DEFAULT_ACK_INTERVAL,
        "at most one acknowledgement write per connection per interval "
        "(always one when the connection's last message is confirmed)",
        "seconds",
    ),
)
_ACK_DECLARED = {option.name: option for option in ACK_OPTIONS}


@dataclass(frozen=True)
class ListenSpec:
    """
    A parsed C{--listen} value.

    :ivar framing: the framing's name or dotted path.
    :ivar options: option name to the value as written (L{str}).
    :ivar endpoint: the endpoint description.
    """

    framing: str
    options: dict
    endpoint: str


def splitEscaped(text, separator, maxsplit=-1):
    """
    Split C{text} at each C{separator} that no backslash escapes, keeping
    the escapes (the backslash and the character after it) in the parts for
    their own parser: C{lines(a=x\\,y,b=1)}'s options, an endpoint
    description's C{tcp6:9000:interface=\\:\\:1}.

    :param separator: one character.
    :param maxsplit: split this many times at most (all by default).
    :return: the parts, one more than the separators split at.
    """
    parts, current, escaped = [], [], False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
            if len(parts) == maxsplit:
                return parts + [text[index + 1 :]]
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _splitOptions(text):
    """
    Split C{a=1,b=x\\,y} at unescaped commas into name/value pairs, leaving
    escapes in values for the option's coercer.
    """
    options = {}
    for pair in splitEscaped(text, ","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise OptionError(f"option {pair!r}: expected NAME=VALUE")
        if name in options:
            raise OptionError(f"option {name!r} given twice")
        # Spaces around values are layout; a value that is a space is
        # written \x20.
        options[name] = value.strip()
    return options


def parseListen(text):
    """
    Parse C{FRAMING[(NAME=VALUE,...)]=ENDPOINT}.

    :rtype: L{ListenSpec}
    :raises OptionError: when it does not have that form.
    """
    match = re.match(r"\s*([^=(\s]+)\s*", text)
    if not match:
        raise OptionError("expected FRAMING[(OPTIONS)]=ENDPOINT")
    framing, rest = match.group(1), text[match.end() :]
    options = {}
    if rest.startswith("("):
        parts = splitEscaped(rest[1:], ")", maxsplit=1)
        if len(parts) == 1:
            raise OptionError("options opened with '(' are not closed with ')'")
        options = _splitOptions(parts[0])
        rest = parts[1].lstrip()
    if not rest.startswith("=") or not rest[1:].strip():
        raise OptionError("expected FRAMING[(OPTIONS)]=ENDPOINT")
    return ListenSpec(framing, options, rest[1:].strip())


def resolveOptions(plugin, given, defaultMaxSize):
    """
    Check and coerce the options given for a listener against the ones its
    framing declares, filling in defaults.

    :param plugin: the L{gateway.interfaces.IFramingPlugin}.
    :param given: option name to value (written L{str} or Python value).
    :param defaultMaxSize: C{max-size} when not given.
    :return: a L{dict} holding every declared option and C{max-size}, and
        the ack options given (L{ACK_OPTIONS}).
    :raises OptionError: naming the framing and the option.
    """
    declared = {option.name: option for option in plugin.options}
    unknown = sorted(set(given) - set(declared) - {MAX_SIZE} - set(_ACK_DECLARED))
    if unknown:
        accepted = ", ".join(sorted(set(declared) | {MAX_SIZE}))
        raise OptionError(
            f"framing {plugin.name!r} has no option {unknown[0]!r}; "
            f"it accepts: {accepted}, and the connection options "
            "(twistd gateway --help lists them)"
        )
    resolved = {}
    for name, option in declared.items():
        resolved[name] = _coerce(plugin, option.name, option.coerce, given, option.default)
    resolved[MAX_SIZE] = _coerce(plugin, MAX_SIZE, integer(minimum=1), given, defaultMaxSize)
    # The ack options are resolved only when given: C{ack} absent is off.
    for name, option in _ACK_DECLARED.items():
        if name in given:
            resolved[name] = _coerce(plugin, name, option.coerce, given, option.default)
    if resolved.get(ACK):
        _checkAcks(plugin)
    return resolved


def _checkAcks(plugin):
    """
    Refuse C{ack=on} for a framing that cannot write acknowledgements: its
    protocol must declare C{supportsAcks} and implement C{encodeFrame}.
    """
    protocolClass = getattr(plugin, "protocolClass", None)
    protocol = protocolClass() if protocolClass is not None else None
    if not getattr(protocol, "supportsAcks", False):
        raise OptionError(
            f"framing {plugin.name!r} option ack=on: this framing cannot write "
            "acknowledgements (it declares no ack support); use a framing "
            "with message boundaries, e.g. lines or length-prefixed"
        )


def _coerce(plugin, name, coerce, given, default):
    if name not in given:
        return default
    try:
        return coerce(given[name])
    except ValueError as e:
        raise OptionError(f"framing {plugin.name!r} option {name}={given[name]!r}: {e}") from e
