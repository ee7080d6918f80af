"""
Tests for L{tests.docs.reference}: the checked-in reference pages are what
the code says today.
"""

import tempfile

from twisted.trial.unittest import SynchronousTestCase

from gateway.registry import FramingRegistry
from gateway.tap import Options
from tests.docs import reference


class ReferenceTests(SynchronousTestCase):
    """
    C{docs/reference/} is the generator's output, and the generator covers
    everything it should.
    """

    def setUp(self):
        self.pages = reference.pages()

    def test_checkedInPagesAreCurrent(self):
        """
        Every page in C{docs/reference/} is exactly what the generator makes
        now; run C{.venv/bin/python -m tests.docs.reference} after changing
        an option, a metric or a C{/status.json} field.
        """
        stale = [
            name
            for name, text in self.pages.items()
            if not (reference.DIRECTORY / name).exists()
            or (reference.DIRECTORY / name).read_text() != text
        ]
        self.assertEqual(
            stale, [], "run .venv/bin/python -m tests.docs.reference and commit docs/reference/"
        )

    def test_everyOptionListed(self):
        """
        Every documented twistd option is on the options page.
        """
        options = Options()
        page = self.pages["options.md"]
        missing = [
            name.rstrip("=")
            for name in options.longOpt
            if options.docs.get(name.rstrip("=")) and f"`--{name.rstrip('=')}" not in page
        ]
        self.assertEqual(missing, [])

    def test_everyShippedFramingListed(self):
        """
        Every framing of the distribution has a section with each of its
        options.
        """
        registry = FramingRegistry()
        page = self.pages["framings.md"]
        for name in reference._SHIPPED:
            self.assertIn(f"## `{name}`", page)
            for option in registry.get(name).options:
                self.assertIn(f"| `{option.name}` |", page)

    def test_metricsHaveLabelsAndHelp(self):
        """
        The metrics page lists labelled metrics with their labels, and every
        row has help text.
        """
        page = self.pages["metrics.md"]
        self.assertIn(
            "| `gateway_connections_refused_total` | counter | `listener`, `reason` |", page
        )
        rows = [line for line in page.splitlines() if line.startswith("| `gateway_")]
        self.assertGreater(len(rows), 20)
        for row in rows:
            self.assertNotEqual(row.rstrip("|").rsplit("|", 1)[1].strip(), "", row)

    def test_statusFieldsNested(self):
        """
        The C{/status.json} page lists nested fields by their path.
        """
        page = self.pages["status-json.md"]
        for path in ("budget.held", "listeners[].frameErrors", "descriptors.capacity", "time"):
            self.assertIn(f"| `{path}` |", page)

    def test_everyStatusFieldMeans(self):
        """
        Every field of C{/status.json} has its meaning on the page (the
        generator's L{reference.STATUS_FIELDS}), and no meaning is kept for
        a field that is gone.
        """
        with tempfile.TemporaryDirectory() as directory:
            gateway, collector = reference._scrapedGateway(directory)
            try:
                snapshot = reference.statusSnapshot(collector, 1.0, 1767225600.0)
            finally:
                gateway.stopService()
        paths = {path for path, _ in reference._fields(snapshot, "") if path}
        self.assertEqual(sorted(paths - set(reference.STATUS_FIELDS)), [])
        self.assertEqual(sorted(set(reference.STATUS_FIELDS) - paths), [])

    def test_processMetricsListed(self):
        """
        The metrics page lists the process metrics the endpoint serves
        beside the gateway's own.
        """
        page = self.pages["metrics.md"]
        for name in ("process_open_fds", "process_max_fds", "python_info"):
            self.assertIn(f"| `{name}` |", page)
