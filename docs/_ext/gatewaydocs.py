"""
pydoctor's system for the gateway's docstrings (C{scripts/docs} passes it
as C{--system-class=gatewaydocs.GatewaySystem}).

The code writes epytext markup (C{C{...}}, C{L{...}}) with the field lists
Sphinx-style, C{:param x:}; pydoctor's epytext parser knows fields only as
C{@param x:}.  Rewriting the fields before the docstrings are parsed
renders them as fields, instead of changing every docstring of the code.
"""

import re

from pydoctor.model import System

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


class GatewaySystem(System):
    """
    pydoctor's default system, with the fields of every docstring rewritten
    once every module is read.
    """

    def postProcess(self):
        for documentable in self.allobjects.values():
            if documentable.docstring:
                documentable.docstring = epytextFields(documentable.docstring)
        super().postProcess()
