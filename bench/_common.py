"""
Helpers shared by the benchmarks: the repository on C{sys.path}, message
streams, table printing, and what C{/proc} says about a process.
"""

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:
    # "python bench/x.py" puts bench/ first on the path, not the repository;
    # tests.integration.support lives there.
    sys.path.insert(0, str(ROOT))

FRAMINGS = ("lines", "length-prefixed")


def payloads(count, size, start=0, prefix=b""):
    """
    C{count} distinct payloads of C{size} bytes, none containing a newline.

    :param prefix: bytes before each payload's index (C{b"m"} keeps a
        payload from starting with a digit, which rsyslog's C{imtcp} would
        take for an octet count).
    :rtype: L{list} of L{bytes}
    """
    if size < 1:
        raise ValueError("message size must be at least 1 byte")
    filler = b"x" * size
    out = []
    for i in range(start, start + count):
        head = b"%s%d:" % (prefix, i)
        out.append((head + filler)[:size])
    return out


def frame(framing, messages):
    """
    Encode messages as one byte stream in a framing.

    :param framing: C{"lines"} or C{"length-prefixed"}.
    :rtype: L{bytes}
    """
    if framing == "lines":
        return b"".join(m + b"\n" for m in messages)
    if framing == "length-prefixed":
        pack = struct.Struct(">I").pack
        return b"".join(pack(len(m)) + m for m in messages)
    raise ValueError(f"unknown framing {framing!r}")


def frameOverhead(framing):
    """
    :return: the bytes a framing adds to each message.
    """
    return {"lines": 1, "length-prefixed": 4}[framing]


def table(headers, rows, aligns=None):
    """
    Render rows as a plain-text table (first column left-aligned, the others
    right-aligned unless C{aligns} says otherwise).

    :rtype: L{str}
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
        for i, h in enumerate(headers)
    ]
    if aligns is None:
        aligns = "<" + ">" * (len(headers) - 1)

    def line(values):
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, aligns, widths)).rstrip()

    out = [line([str(h) for h in headers]), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def rate(value):
    """
    Format a rate with thousands separators.
    """
    return f"{value:,.0f}"


# /proc


def procStatus(pid, field):
    """
    A C{/proc/<pid>/status} field, e.g. C{VmHWM}, as kB (L{int}), or L{None}.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _statTimes(path):
    with open(path) as f:
        text = f.read()
    # The command name may hold spaces and parentheses: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def cpuTimes(pid):
    """
    CPU seconds used so far by process C{pid}: its main thread (the reactor)
    and all its threads together.

    :return: C{(mainThread, wholeProcess)}, or C{(None, None)} once gone.
    """
    try:
        return _statTimes(f"/proc/{pid}/task/{pid}/stat"), _statTimes(f"/proc/{pid}/stat")
    except (OSError, ValueError):
        return None, None


def fdCount(pid):
    """
    How many descriptors process C{pid} has open (C{/proc/<pid>/fd}), or
    L{None} once it is gone.
    """
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def processLimit(pid, name="Max open files"):
    """
    A C{/proc/<pid>/limits} row as C{(soft, hard)} strings, or L{None}.
    """
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith(name):
                    soft, hard = line[len(name) :].split()[:2]
                    return soft, hard
    except OSError:
        pass
    return None


def readSysctl(name):
    """
    A kernel setting (C{net.core.somaxconn}) as C{/proc/sys} shows it, on
    one line, or C{"?"}.
    """
    path = Path("/proc/sys") / name.replace(".", "/")
    try:
        return " ".join(path.read_text().split())
    except OSError:
        return "?"


def meminfo(field):
    """
    A C{/proc/meminfo} field (C{Slab}, C{MemAvailable}) in kB, or L{None}.
    """
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None
