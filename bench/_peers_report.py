"""
The peers benchmark's results: the summary table (best run per system and
cell), the plot, and the section of C{bench/RESULTS.md} they go in, written
between markers so that a rerun replaces only its own section.
"""

import platform
import re
from collections import defaultdict

from _common import rate

BEGIN = "<!-- peers:begin (written by bench/peers.py) -->"
END = "<!-- peers:end -->"
ORDER = ("kcat", "rsyslog", "syslog-ng", "gateway", "gateway-glibc", "sink")
LABELS = {
    "kcat": "librdkafka alone (`kcat -P` from a file, no TCP hop)",
    "rsyslog": "rsyslog imtcp → omkafka",
    "syslog-ng": "syslog-ng network() → kafka-c()",
    "gateway": "this gateway, defaults (2 headers, acks=all, idempotent)",
    "gateway-glibc": "the same, with glibc's malloc (no mimalloc preloaded)",
    "sink": "load generator into a discarding sink (no Kafka)",
}


def best(runs):
    """
    The fastest complete run of each C{(system, connections, size)}, with
    every run's losses added up.

    :return: a L{dict} from C{(system, connections, size)} to
        C{(best run, [runs])}.
    """
    groups = defaultdict(list)
    for run in runs:
        groups[run["system"], run["connections"], run["size"]].append(run)
    return {key: (max(group, key=lambda r: r["rate"]), group) for key, group in groups.items()}


def _cell(group):
    top, runs = group
    text = f"{rate(top['rate'] / 1000)}k"
    lost = sum(r["lost"] for r in runs)
    duplicated = sum(r["duplicated"] for r in runs)
    mangled = sum(r["mangled"] for r in runs)
    notes = []
    if lost:
        notes.append(f"{lost:,} lost")
    if duplicated:
        notes.append(f"{duplicated:,} dup")
    if mangled:
        notes.append(f"{mangled:,} mangled")
    if any(r["short"] for r in runs):
        text += "*"
    return text + (", **" + ", ".join(notes) + "**" if notes else "")


def summaryTable(runs, cells):
    """
    Messages/s per system and cell (best run), in Markdown.

    :param cells: C{(connections, size)} pairs, in column order.
    """
    groups = best(runs)
    headers = [f"M={m}, {s} B" for m, s in cells]
    sizes = sorted({s for _, s in cells})
    headers += [f"CPU µs/msg at {s} B" for s in sizes]
    lines = [
        "| system | " + " | ".join(headers) + " | peak RSS MiB | broker TCP conns |",
        "|---" * (len(headers) + 3) + "|",
    ]
    for system in ORDER:
        mine = [r for r in runs if r["system"] == system]
        if not mine:
            continue
        row = [LABELS[system]]
        for m, s in cells:
            key = (system, m, s)
            if system == "kcat":
                key = (system, 1, s)
                row.append(_cell(groups[key]) if key in groups and m == 1 else "")
            else:
                row.append(_cell(groups[key]) if key in groups else "")
        for size in sizes:
            cpu = [
                r["cpuPerMessage"]
                for r in mine
                if r["size"] == size and r["cpuPerMessage"] is not None
            ]
            row.append(f"{min(cpu):.1f}–{max(cpu):.1f}" if cpu else "–")
        rss = [r["peakRssMiB"] for r in mine if r["peakRssMiB"] is not None]
        conns = [r["brokerConnections"] for r in mine if r["brokerConnections"] is not None]
        row.append(f"{min(rss):.0f}–{max(rss):.0f}" if rss else "–")
        row.append(f"{min(conns)}–{max(conns)}" if conns else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ratios(runs, cells):
    """
    The gateway's best messages/s against rsyslog's per cell and against
    kcat's per size (issue 14's targets), as a sentence.
    """
    groups = best(runs)

    def ratio(a, b):
        if a in groups and b in groups:
            return f"{groups[a][0]['rate'] / groups[b][0]['rate']:.2f}"
        return "–"

    versusRsyslog = ", ".join(
        f"M={m} {s} B {ratio(('gateway', m, s), ('rsyslog', m, s))}" for m, s in cells
    )
    versusKcat = ", ".join(
        f"{s} B {ratio(('gateway', m, s), ('kcat', m, s))}"
        for m, s in cells
        if m == min(c for c, z in cells if z == s)
    )
    versusGlibc = ", ".join(
        f"M={m} {s} B {ratio(('gateway', m, s), ('gateway-glibc', m, s))}"
        for m, s in cells
        if ("gateway-glibc", m, s) in groups
    )
    return (
        f"Gateway ÷ rsyslog (messages/s): {versusRsyslog}. Gateway ÷ kcat at each "
        f"size's smallest M: {versusKcat}."
        + (f" Gateway ÷ gateway-glibc: {versusGlibc}." if versusGlibc else "")
    )


def plot(runs, cells, path):
    """
    Messages/s against connections, one panel per message size, one line per
    system (C{kcat} as a horizontal line: it has no connections).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups = best(runs)
    sizes = sorted({s for _, s in cells})
    connections = sorted({m for m, _ in cells})
    figure, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for axis, size in zip(axes[0], sizes):
        sink = [groups[k][0]["rate"] for k in groups if k[0] == "sink" and k[2] == size]
        title = f"{size}-byte messages"
        if sink:
            # Far above the others: stated, not drawn, so they stay readable.
            title += f"\nload generator into a discarding sink: {min(sink) / 1e6:.1f}"
            title += f"–{max(sink) / 1e6:.1f} M/s"
        for system in ORDER:
            if system == "sink":
                continue
            if system == "kcat":
                if (system, 1, size) in groups:
                    axis.axhline(
                        groups[system, 1, size][0]["rate"],
                        linestyle="--",
                        color="grey",
                        label="kcat -P (librdkafka alone)",
                    )
                continue
            xs = [m for m in connections if (system, m, size) in groups]
            ys = [groups[system, m, size][0]["rate"] for m in xs]
            if xs:
                axis.plot(xs, ys, marker="o", label=system)
        axis.set_xscale("log")
        axis.set_xticks(connections, [str(m) for m in connections])
        axis.set_xlabel("client connections")
        axis.set_ylabel("messages/s (best run)")
        axis.set_title(title)
        axis.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k")
        )
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def section(runs, cells, context):
    """
    The C{bench/RESULTS.md} section for one invocation.

    :param context: C{date}, C{command}, C{machine}, C{versions} (a L{dict}),
        C{settings} (a L{dict} by system), C{plot} (a file name), C{note},
        C{warmup} (rounds of unrecorded runs first; 0 if absent).
    """
    warmup = context.get("warmup", 0)
    warmed = (
        f" after {warmup} round{'s' if warmup > 1 else ''} of unrecorded warm-up runs "
        "(one per system)"
        if warmup
        else ""
    )
    versions = ", ".join(f"{k} {v}" for k, v in context["versions"].items())
    settings = "\n".join(f"- **{name}**: {text}" for name, text in context["settings"].items())
    losses = sum(r["lost"] + r["duplicated"] + r["mangled"] for r in runs)
    counted = "losses as marked" if losses else "no message lost, duplicated or mangled"
    return f"""{BEGIN}
## `bench/peers.py`: this gateway against rsyslog, syslog-ng and kcat — {context["date"]}

{context["note"]}

Command: `{context["command"]}`. Machine: {context["machine"]}. Versions: {versions}.
One Kafka broker (`devkafka`), a fresh 1-partition topic per run, newline
framing; messages/s from the first byte until the topic's end offset reached
N, best of the interleaved runs{warmed}; every run's topic read back: {counted}.
`*`: a run shorter than `--seconds` (N chosen from a lower rate, or capped by
`--max-mb`). CPU is the system's
process (all threads) per message; RSS its `VmHWM`; broker connections its
established TCP connections to the broker port, mid-run and at the end.

{summaryTable(runs, cells)}

{ratios(runs, cells)}

![messages/s against connections]({context["plot"]})

Settings:

{settings}
{END}"""


def writeSection(path, text):
    """
    Replace the peers section of C{path}, or put it before the first
    existing section.
    """
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old)
    elif "\n## " in old:
        at = old.index("\n## ") + 1
        new = old[:at] + text + "\n\n" + old[at:]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)


def machine():
    """
    A one-line description of this machine.
    """
    import os

    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1])
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, {total / 1024**2:.0f} GiB, Linux {platform.release()}, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end"
    )
