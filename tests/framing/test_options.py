# -*- test-case-name: tests.framing.test_options -*-
"""
Tests for framing options: escapes, the C{--listen} syntax, and checking
options against what a framing declares.
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.framing.options import (
    FramingOption,
    ListenSpec,
    OptionError,
    boolean,
    byteString,
    choice,
    integer,
    parseListen,
    resolveOptions,
    splitEscaped,
    unescape,
)
from gateway.framing.plugin import FramingPlugin


class UnescapeTests(SynchronousTestCase):
    """
    L{unescape} and L{byteString}.
    """

    def test_escapes(self):
        """
        Backslash escapes give control bytes, hex bytes and the characters
        the C{--listen} syntax reserves.
        """
        self.assertEqual(unescape("\\r\\n"), b"\r\n")
        self.assertEqual(unescape("\\0\\t\\x1e\\xFF"), b"\0\t\x1e\xff")
        self.assertEqual(unescape("a\\,b\\)c\\\\"), b"a,b)c\\")
        self.assertEqual(unescape("é"), "é".encode())

    def test_unknownEscape(self):
        """
        An unknown escape is refused rather than taken literally.
        """
        self.assertRaises(ValueError, unescape, "\\q")
        self.assertRaises(ValueError, unescape, "\\x4")

    def test_byteString(self):
        """
        A byte string option accepts written text or bytes, never empty.
        """
        self.assertEqual(byteString("\\r\\n"), b"\r\n")
        self.assertEqual(byteString(b"\n"), b"\n")
        self.assertRaises(ValueError, byteString, "")
        self.assertRaises(ValueError, byteString, 5)


class SplitEscapedTests(SynchronousTestCase):
    """
    L{splitEscaped}, shared by listener options and endpoint descriptions.
    """

    def test_split(self):
        """
        Every unescaped separator splits; empty parts are kept, so the
        parts are one more than the separators.
        """
        self.assertEqual(splitEscaped("a=1,b=2", ","), ["a=1", "b=2"])
        self.assertEqual(splitEscaped(",a,,", ","), ["", "a", "", ""])
        self.assertEqual(splitEscaped("", ","), [""])
        self.assertEqual(splitEscaped("tcp:9000:interface=::1", ":")[:2], ["tcp", "9000"])

    def test_escapesKept(self):
        """
        An escaped separator does not split, and every escape (backslash
        and character) stays in its part for the part's own parser; an
        escaped backslash does not escape what follows it.
        """
        self.assertEqual(
            splitEscaped("tcp6:9000:interface=\\:\\:1", ":"),
            ["tcp6", "9000", "interface=\\:\\:1"],
        )
        self.assertEqual(splitEscaped("a=x\\,y,b=\\n", ","), ["a=x\\,y", "b=\\n"])
        self.assertEqual(splitEscaped("a\\\\,b", ","), ["a\\\\", "b"])
        self.assertEqual(splitEscaped("a\\", ","), ["a\\"])

    def test_maxsplit(self):
        """
        With C{maxsplit} the rest after the last split is one part, as
        written.
        """
        self.assertEqual(splitEscaped("a\\)b)=x:y)", ")", maxsplit=1), ["a\\)b", "=x:y)"])
        self.assertEqual(splitEscaped("ab", ")", maxsplit=1), ["ab"])


class CoercerTests(SynchronousTestCase):
    """
    L{integer}, L{choice}, L{boolean}.
    """

    def test_integer(self):
        """
        Whole numbers within bounds pass, written or given as Python ints.
        """
        coerce = integer(minimum=1, maximum=10)
        self.assertEqual(coerce("7"), 7)
        self.assertEqual(coerce(10), 10)
        for bad in ("0", "11", "x", True):
            self.assertRaises(ValueError, coerce, bad)

    def test_choice(self):
        """
        A choice returns the allowed value matching what was written.
        """
        coerce = choice(1, 2, 4, 8)
        self.assertEqual(coerce("8"), 8)
        self.assertEqual(coerce(2), 2)
        self.assertRaises(ValueError, coerce, "3")

    def test_boolean(self):
        """
        The usual spellings of true and false are accepted, nothing else.
        """
        for text in ("true", "Yes", "on", "1", True):
            self.assertIs(boolean(text), True)
        for text in ("false", "NO", "off", "0", False):
            self.assertIs(boolean(text), False)
        self.assertRaises(ValueError, boolean, "maybe")


class ParseListenTests(SynchronousTestCase):
    """
    L{parseListen}.
    """

    def test_plain(self):
        """
        C{FRAMING=ENDPOINT}: the endpoint keeps its own C{=} and colons.
        """
        self.assertEqual(
            parseListen("lines=tcp:9000:interface=127.0.0.1"),
            ListenSpec("lines", {}, "tcp:9000:interface=127.0.0.1"),
        )

    def test_options(self):
        """
        Options in parentheses; escaped commas and parentheses stay in the
        values (the option's coercer decodes them); spaces around names and
        values are ignored.
        """
        self.assertEqual(
            parseListen("lines( delimiter=\\r\\n , max-size=10 ) = unix:/s"),
            ListenSpec("lines", {"delimiter": "\\r\\n", "max-size": "10"}, "unix:/s"),
        )
        spec = parseListen("lines(delimiter=\\,\\))=tcp:1")
        self.assertEqual(unescape(spec.options["delimiter"]), b",)")

    def test_dottedPath(self):
        """
        A dotted path with a colon is a framing name like any other.
        """
        self.assertEqual(
            parseListen("my.pkg.mod:Framing(x=1)=tcp:1").framing, "my.pkg.mod:Framing"
        )

    def test_malformed(self):
        """
        Missing endpoint, unclosed parentheses, an option without C{=} or
        given twice are refused.
        """
        for text in (
            "lines",
            "lines=",
            "lines(x=1=tcp:1",
            "lines(x)=tcp:1",
            "lines(x=1,x=2)=tcp:1",
            "(x=1)=tcp:1",
            "lines(x=1)tcp:1",
        ):
            self.assertRaises(OptionError, parseListen, text)


class ResolveOptionsTests(SynchronousTestCase):
    """
    L{resolveOptions}.
    """

    plugin = FramingPlugin(
        "demo",
        "demo",
        "x.Y",
        options=[FramingOption("size", integer(1, 8), 4, "size", "1-8")],
    )

    def test_defaultsAndMaxSize(self):
        """
        Declared options take their defaults; C{max-size} the listener's.
        """
        self.assertEqual(resolveOptions(self.plugin, {}, 100), {"size": 4, "max-size": 100})

    def test_given(self):
        """
        Given values are coerced, C{max-size} included.
        """
        self.assertEqual(
            resolveOptions(self.plugin, {"size": "2", "max-size": "9"}, 100),
            {"size": 2, "max-size": 9},
        )

    def test_errors(self):
        """
        An undeclared option names what the framing accepts; a bad value
        names the option.
        """
        error = self.assertRaises(OptionError, resolveOptions, self.plugin, {"colour": "x"}, 1)
        self.assertIn("max-size", str(error))
        self.assertIn("size", str(error))
        error = self.assertRaises(OptionError, resolveOptions, self.plugin, {"size": "9"}, 1)
        self.assertIn("size='9'", str(error))
