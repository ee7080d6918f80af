"""
A smoke test of C{bench/slowloris.py}: a tiny session against a real Kafka
(the script starts its own, in a temporary run folder, so a benchmark running
meanwhile keeps its broker), so the script keeps working as the gateway and
C{bench/throughput.py} change.
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

import slowloris  # noqa: E402


class SlowlorisSmokeTests(SynchronousTestCase):
    """
    One round of each kind and the idle phase, with a few messages and a few
    tricklers on a one-second C{frame-timeout}.
    """

    def test_tinySession(self):
        """
        Kafka holds every message of every run; in the idle phase the
        gateway closes each trickler at least once, logging the reason
        C{frame-timeout}; the report ends with the split of the cost.
        """
        messages, tricklers = 20_000, 10
        out = io.StringIO()
        runRoot = tempfile.TemporaryDirectory(prefix="slowloris-smoke-")
        self.addCleanup(runRoot.cleanup)
        with contextlib.redirect_stdout(out):
            runs, idle = slowloris.main(
                [
                    f"--messages={messages}",
                    "--clients=2",
                    f"--tricklers={tricklers}",
                    "--interval=0.25",
                    "--frame-timeout=1",
                    "--repeat=1",
                    "--idle-seconds=3",
                    f"--run-root={runRoot.name}",
                ]
            )
        self.assertEqual(
            {label: [r["held"] for r in results] for label, results in runs.items()},
            {label: [messages] for label in runs},
        )
        self.assertGreaterEqual(idle["tricklersClosed"], tricklers)
        self.assertGreater(idle["frameTimeoutLines"], 0)
        self.assertGreater(idle["trickleBytes"], 0)
        self.assertIn("the tricklers' reactor CPU", out.getvalue())
