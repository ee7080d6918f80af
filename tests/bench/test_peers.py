"""
Tests for the reusable parts of C{bench/peers.py}: counting what a topic
holds, choosing runs, reading Debian's dependency lists, the results file
and the CI guard's verdict.
"""

import contextlib
import io
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _peers_install  # noqa: E402
import peers  # noqa: E402
from _common import payloads  # noqa: E402
from _peers_check import PREFIX, Tally  # noqa: E402
from _peers_install import libraryDependencies  # noqa: E402
from _peers_report import BEGIN, END, ratios, section, summaryTable, writeSection  # noqa: E402


def run(system, connections=10, size=100, rate=1000.0, **losses):
    """
    A run's result as L{peers.runOne} returns it.
    """
    result = {
        "system": system,
        "connections": connections,
        "size": size,
        "rate": rate,
        "short": False,
        "cpuPerMessage": 2.0,
        "peakRssMiB": 80.0,
        "brokerConnections": 1,
        "lost": 0,
        "duplicated": 0,
        "mangled": 0,
    }
    result.update(losses)
    return result


class TallyTests(SynchronousTestCase):
    """
    L{Tally} counts every record read back against the payloads sent.
    """

    def test_everyPayloadOnce(self):
        """
        The load generator's payloads, each read once, are all received and
        none is lost, duplicated or mangled.
        """
        tally = Tally(50, 100)
        for value in payloads(50, 100, prefix=PREFIX):
            tally.add(value)
        self.assertEqual(
            tally.summary(),
            {"received": 50, "lost": 0, "duplicated": 0, "mangled": 0, "missing": []},
        )

    def test_lostAndDuplicated(self):
        """
        A payload read twice counts once as duplicated; payloads never read
        are lost, and the first of them are named.
        """
        tally = Tally(5, 20)
        sent = payloads(5, 20, prefix=PREFIX)
        for value in (sent[0], sent[2], sent[2], sent[4]):
            tally.add(value)
        summary = tally.summary()
        self.assertEqual(
            (summary["received"], summary["lost"], summary["duplicated"], summary["missing"]),
            (4, 2, 1, [1, 3]),
        )

    def test_mangled(self):
        """
        A record that is no payload sent (changed, cut, without the prefix,
        with an index out of range or no value) counts as mangled and not as
        delivered.
        """
        tally = Tally(3, 20)
        good = payloads(1, 20, start=1, prefix=PREFIX)[0]
        for value in (
            good[:-1],
            good[:-1] + b"y",
            good[len(PREFIX) :],
            payloads(1, 20, start=3, prefix=PREFIX)[0],
            b"mabc:xxxx",
            None,
        ):
            tally.add(value)
        self.assertEqual((tally.mangled, tally.lost, tally.received), (6, 3, 6))


class ScheduleTests(SynchronousTestCase):
    """
    L{peers.schedule} interleaves the systems and L{peers.messagesFor} sizes
    the runs.
    """

    def test_rotates(self):
        """
        Each repeat visits every cell, the systems in an order rotated by one
        per repeat; kcat runs only in each size's smallest-connection cell.
        """
        order = peers.schedule(["a", "kcat"], [(1, 100), (10, 100)], 2)
        self.assertEqual(
            order,
            [
                ("a", 1, 100),
                ("kcat", 1, 100),
                ("a", 10, 100),
                ("kcat", 1, 100),
                ("a", 1, 100),
                ("a", 10, 100),
            ],
        )

    def test_warmupSchedule(self):
        """
        Each warm-up round runs every system that talks to Kafka once, in
        the smallest cell; none without rounds.
        """
        cells = [(10, 100), (1, 1000), (1, 100)]
        self.assertEqual(
            peers.warmupSchedule(["gateway", "sink", "kcat"], cells, 2),
            [("gateway", 1, 100), ("kcat", 1, 100)] * 2,
        )
        self.assertEqual(peers.warmupSchedule(["gateway"], cells, 0), [])

    def test_messagesFor(self):
        """
        N covers the wanted seconds (with a quarter to spare) at the best
        rate measured so far in the cell, else in the system's other cells
        of that size, else at the prior estimate, and is capped by bytes.
        """
        measured = {("gateway", 10, 100): 1000, ("gateway", 100, 100): 4000}
        self.assertEqual(peers.messagesFor("gateway", 1, 100, 2, {}, 10**9), (1_000_000, False))
        self.assertEqual(peers.messagesFor("gateway", 10, 100, 2, measured, 10**9), (2500, False))
        self.assertEqual(peers.messagesFor("gateway", 1, 100, 2, measured, 10**9), (10_000, False))
        self.assertEqual(peers.messagesFor("gateway", 1, 1000, 5, {}, 10**6), (1000, True))


class InstallTests(SynchronousTestCase):
    """
    L{libraryDependencies} reads C{apt-cache depends}.
    """

    def test_libraries(self):
        """
        Only direct library dependencies are kept: not the packages unpacked
        themselves, not programs, not the alternatives listed under a
        virtual package.
        """
        output = (
            "rsyslog-kafka\n  Depends: libc6\n  Depends: librdkafka1\n  Depends: rsyslog\n"
            "syslog-ng-core\n  Depends: libsystemd0\n    libelogind0\n"
            " |Depends: sysvinit-utils\n  Depends: lsb-base\n  Depends: libc6\n"
            "syslog-ng-mod-rdkafka\n  Depends: syslog-ng-core\n"
        )
        self.assertEqual(libraryDependencies(output), ["libc6", "librdkafka1", "libsystemd0"])


class ReportTests(SynchronousTestCase):
    """
    The results section and its place in C{bench/RESULTS.md}.
    """

    def test_sectionReplaced(self):
        """
        The section goes before the first existing section, and a rerun
        replaces it, leaving the rest of the file as it was.
        """
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "RESULTS.md"
            path.write_text("# Results\n\nintro\n\n## older\n\nkept\n")
            writeSection(path, f"{BEGIN}\nfirst\n{END}")
            writeSection(path, f"{BEGIN}\nsecond\n{END}")
            self.assertEqual(
                path.read_text(),
                f"# Results\n\nintro\n\n{BEGIN}\nsecond\n{END}\n\n## older\n\nkept\n",
            )

    def test_tableShowsBestAndLosses(self):
        """
        Each cell shows the best run's messages/s and every loss of the
        cell's runs; a short run is starred.
        """
        runs = [
            run("rsyslog", rate=1000.0, lost=3),
            run("rsyslog", rate=2000.0),
            run("gateway", rate=1500.0, short=True),
        ]
        table = summaryTable(runs, [(10, 100)])
        self.assertIn("| rsyslog imtcp → omkafka | 2k, **3 lost** |", table)
        self.assertIn("| 2k* |", table)

    def test_ratios(self):
        """
        The gateway's best rate is set against rsyslog's in every cell and
        against kcat's in each size's smallest-M cell; a missing figure is
        a dash.
        """
        runs = [
            run("gateway", connections=1, rate=500.0),
            run("gateway", connections=1, rate=300.0),
            run("rsyslog", connections=1, rate=1000.0),
            run("kcat", connections=1, rate=2000.0),
            run("gateway", connections=10, rate=800.0),
        ]
        self.assertEqual(
            ratios(runs, [(1, 100), (10, 100)]),
            "Gateway ÷ rsyslog (messages/s): M=1 100 B 0.50, M=10 100 B –. "
            "Gateway ÷ kcat at each size's smallest M: 100 B 0.25.",
        )

    def test_ratiosAgainstGlibc(self):
        """
        Where the gateway also ran on glibc's C{malloc}, the sentence sets
        the two against each other in the cells where both ran.
        """
        runs = [
            run("gateway", connections=10, rate=600.0),
            run("gateway-glibc", connections=10, rate=500.0),
            run("rsyslog", connections=10, rate=400.0),
            run("gateway", connections=100, rate=700.0),
        ]
        self.assertTrue(
            ratios(runs, [(10, 100), (100, 100)]).endswith(
                " Gateway ÷ gateway-glibc: M=10 100 B 1.20."
            )
        )

    def test_commandLine(self):
        """
        The command shown in the results leaves out the note's text.
        """
        self.assertEqual(
            peers.commandLine(["--repeat", "3", "--note", "a b", "--note=c"]),
            "python bench/peers.py --repeat 3 --note … --note=…",
        )

    def test_noteAfterTheRun(self):
        """
        C{--from-json} with C{--note} rewrites the results from the saved
        runs with the new note, and saves it with them; without C{--note} the
        saved note stays.
        """
        written = []
        self.patch(_peers_install, "ensureMatplotlib", lambda: None)
        self.patch(peers, "report", lambda runs, cells, context: written.append(context))
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "runs.json"
            saved.write_text('{"runs": [], "cells": [[10, 100]], "context": {"note": "old"}}')
            self.assertEqual(peers.main(["--from-json", str(saved)]), 0)
            self.assertEqual(peers.main(["--from-json", str(saved), "--note", "new"]), 0)
            self.assertEqual([c["note"] for c in written], ["old", "new"])
            self.assertIn('"note": "new"', saved.read_text())

    def test_section(self):
        """
        The section is framed by the markers and states the date, command,
        versions, settings, the plot and whether any message went astray.
        """
        context = {
            "date": "2026-12-02",
            "command": "python bench/peers.py --repeat 3",
            "machine": "2 CPUs",
            "versions": {"rsyslog": "8.2302.0"},
            "settings": {"rsyslog": "imtcp -> omkafka"},
            "plot": "peers.png",
            "note": "A note.",
        }
        text = section([run("rsyslog", lost=2)], [(10, 100)], context)
        self.assertTrue(text.startswith(BEGIN) and text.endswith(END))
        for fragment in (
            "— 2026-12-02",
            "`python bench/peers.py --repeat 3`",
            "rsyslog 8.2302.0",
            "- **rsyslog**: imtcp -> omkafka",
            "![messages/s against connections](peers.png)",
            "losses as marked",
            "A note.",
        ):
            self.assertIn(fragment, text)
        self.assertNotIn("warm-up", text)
        warmed = section([run("rsyslog")], [(10, 100)], dict(context, warmup=1))
        self.assertIn(
            "best of the interleaved runs after 1 round of unrecorded warm-up runs "
            "(one per system)",
            " ".join(warmed.split()),
        )


class GuardTests(SynchronousTestCase):
    """
    The CI guard fails on a large drop against kcat, or on any message not
    delivered exactly once, and on nothing else.
    """

    def verdict(self, runs):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = peers.guard(runs)
        return code, out.getvalue()

    def test_passes(self):
        """
        A gateway at a third of kcat's rate passes, the figure printed next
        to the ceiling.
        """
        code, out = self.verdict([run("kcat", rate=900.0), run("gateway", rate=300.0)])
        self.assertEqual(code, 0)
        self.assertIn("gateway 300 msg/s, kcat ceiling 900 msg/s", out)

    def test_dropFails(self):
        """
        Below L{peers.GUARD_RATIO} of kcat the guard fails.
        """
        ceiling = 1000.0
        code, _ = self.verdict(
            [run("kcat", rate=ceiling), run("gateway", rate=ceiling * peers.GUARD_RATIO * 0.9)]
        )
        self.assertEqual(code, 1)

    def test_lossFails(self):
        """
        A lost message fails the guard whatever the rate.
        """
        code, _ = self.verdict([run("kcat", rate=900.0), run("gateway", rate=900.0, lost=1)])
        self.assertEqual(code, 1)
