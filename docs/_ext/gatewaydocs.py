"""
pydoctor's system for the gateway's docstrings (C{scripts/docs} passes it
as C{--system-class=gatewaydocs.GatewaySystem}).

The code writes epytext markup (C{C{...}}, C{L{...}}) with the field lists
Sphinx-style, C{:param x:}; pydoctor's epytext parser knows fields only as
C{@param x:}.  Rewriting the fields as each docstring is read (some are
parsed while their module is, so it cannot wait) renders them as fields,
instead of changing every docstring of the code.
"""

import re

from pydoctor import model

_FIELD = re.compile(
    r"^(\s*):(param|type|return|returns|rtype|raise|raises|ivar|cvar|var|"
    r"keyword|see|note|since|deprecated)\b",
    re.MULTILINE,
)


def epytextFields(docstring):
    """
    @return: C{docstring} with its C{:field ...:} lines as C{@field ...:}.
    """
    return _FIELD.sub(r"\1@\2", docstring)


class GatewaySystem(model.System):
    """
    pydoctor's default system; importing this module makes every
    docstring's fields epytext ones as it is read.
    """


_setDocstringValue = model.Documentable._setDocstringValue


def _setEpytextDocstring(self, doc, lineno):
    _setDocstringValue(self, epytextFields(doc), lineno)


model.Documentable._setDocstringValue = _setEpytextDocstring
