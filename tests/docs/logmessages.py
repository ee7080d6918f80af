# -*- test-case-name: tests.docs.test_troubleshooting -*-
"""
The warnings and errors the gateway logs, read from its source, so that
L{tests.docs.test_troubleshooting} can require an entry for each in
C{docs/troubleshooting.md}.

A message is the format string of a C{log.warn}, C{log.error} or
C{log.critical} call (or of the C{format} a helper passes on to one), as
written in the code, C{{placeholders}} and all.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ("warn", "error", "critical")
#: Helpers that log their C{format} argument at warning level.
_HELPERS = ("_giveUp",)


def _text(node):
    """
    @return: the constant text of a format argument: a string, or the
        constant parts of C{a + "..."}; L{None} when there is none.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is None and right is None:
            return None
        return (left or "") + (right or "")
    if isinstance(node, ast.Name):
        return None
    return None


def _variables(tree):
    """
    @return: the string constants assigned to plain names in C{tree}, so a
        C{line + "..."} format can be completed.
    """
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                value = _text(node.value)
                if value is not None:
                    found[target.id] = value
    return found


def messages(package=ROOT / "gateway"):
    """
    @return: C{(level, format, "path:line")} of every message logged at
        warning level or above, sorted by path.
    """
    found = []
    for path in sorted(Path(package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = _variables(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            owner = ast.unparse(node.func.value)
            if name in LEVELS and owner.split(".")[-1].lstrip("_") == "log":
                level, argument = name, node.args[0] if node.args else None
            elif name in _HELPERS:
                level, argument = "warn", node.args[1] if len(node.args) > 1 else None
            else:
                continue
            if argument is None:
                continue
            if isinstance(argument, ast.BinOp) and isinstance(argument.left, ast.Name):
                text = names.get(argument.left.id, "") + (_text(argument.right) or "")
            else:
                text = _text(argument)
            if text is None:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.append((level, text, where))
    return found


if __name__ == "__main__":
    for level, text, where in messages():
        print(f"{level:8} {where:40} {text}")
