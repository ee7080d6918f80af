# -*- test-case-name: tests.ops.test_deploy -*-
"""
The Grafana dashboard (C{deploy/grafana/kafka-gateway.json}) and the
Prometheus alerting rules (C{deploy/prometheus/gateway-alerts.yml}) against
what the gateway exports: every metric their queries name is in a scrape of
L{gateway.ops.metrics.GatewayCollector} (with the process metrics), with the
labels they match on or group by; and the rules pass C{promtool check rules}
and their unit tests (C{promtool test rules}).

promtool is Debian's C{prometheus} package (C{scripts/test} installs it when
run as root); without it the promtool tests fail, they are never skipped.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from gateway.ops.metrics import GatewayCollector
from gateway.ops.web import metricsRegistry
from tests.ops.test_metrics import BROKER, GatewayMixin
from tests.support.procfs import fakeProc, temporaryProc

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "kafka-gateway.json"
RULES = ROOT / "deploy" / "prometheus" / "gateway-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "gateway-alerts.test.yml"
PROMTOOL = os.environ.get("GATEWAY_TEST_PROMTOOL") or shutil.which("promtool")

#: Labels Prometheus adds to every series it scrapes.
SCRAPE_LABELS = {"instance", "job"}

#: The alerts the operations guide promises.
ALERTS = {
    "GatewayNotReady",
    "GatewayBudgetHigh",
    "GatewayRecordsDeadLettered",
    "GatewayAcceptErrors",
    "GatewayDescriptorRoomLow",
}

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
#: An identifier, and the parenthesis after it when it is a function's name.
_IDENTIFIER = re.compile(r"(?<![\w.$:])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*$")


def parseQuery(expr):
    """
    The metrics a PromQL expression reads and the labels it uses, found
    without a full parser: string literals and range durations are dropped,
    label matchers and grouping clauses taken out, and the identifiers left
    that are not functions, keywords or numbers are metric names.

    :param expr: the expression, L{str}.
    :return: C{(metrics, matched, grouped)}: the metric names, a set; metric
        name to the label names its matchers use; the label names of C{by},
        C{without}, C{on}, C{ignoring} and C{group_*} clauses, a set.
    """
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    grouped = set()
    for labels in _GROUPING.findall(expr):
        grouped.update(label.strip() for label in labels.split(",") if label.strip())
    expr = _GROUPING.sub(" ", expr)
    matched = {}
    for metric, matchers in _SELECTOR.findall(expr):
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
        if metric.lower() in _KEYWORDS:
            metric = ""
        matched.setdefault(metric or None, set()).update(labels)
    expr = _SELECTOR.sub(lambda m: " " + (m.group(1) or "") + " ", expr)
    metrics = {
        name
        for name, call in _IDENTIFIER.findall(expr)
        if not call and name.lower() not in _KEYWORDS
    }
    return metrics, matched, grouped


def dashboardQueries(dashboard):
    """
    :return: every PromQL expression of the dashboard's panels, and the
        C{(metric, label)} of each C{label_values} variable.
    """
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    variables = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            found = _LABEL_VALUES.match(query)
            assert found, f"variable {variable['name']}: not label_values(metric, label)"
            variables.append(found.groups())
    return queries, variables


def ruleQueries(rules):
    """
    :return: C{{alert or record name: expression}} of the rule file.
    """
    return {
        rule.get("alert") or rule["record"]: str(rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    }


class ExportedMixin(GatewayMixin):
    """
    What a scrape of a gateway with every metric present gives.
    """

    def exported(self):
        """
        :return: sample name to its label names (with the scrape's own),
            for a gateway that delivered a record, got its client's
            statistics and counted its Kafka connections, with the process
            metrics on, as C{/metrics} serves it.
        """
        gateway = self.makeGateway()
        self.start()
        self.connect().dataReceived(b"a\n")
        self.backend.producers[0].reportStatistics()
        gateway.producer.latency = lambda: {"rtt": {"0.99": 0.01}}
        self.confirm()
        proc = fakeProc(temporaryProc(self), [(50001, BROKER, "01", 1)], ownInodes=[1])
        text = generate_latest(metricsRegistry(GatewayCollector(gateway, proc=proc))).decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, set(SCRAPE_LABELS)).update(sample.labels)
        return samples

    def assertQueriesExported(self, queries, exported):
        """
        Every metric of C{queries} is exported, with the labels matched on;
        the labels grouped by are those of its metrics.

        :param queries: C{{where: expression}}.
        :return: the metrics used, a set.
        """
        used, problems = set(), []
        for where, expr in queries.items():
            metrics, matched, grouped = parseQuery(expr)
            used |= metrics
            for metric in sorted(metrics - exported.keys()):
                problems.append(f"{where}: {metric} is not exported")
            for metric, labels in matched.items():
                known = exported.get(metric, set()) if metric else SCRAPE_LABELS
                for label in sorted(labels - known):
                    problems.append(f"{where}: {metric} has no label {label}")
            labels = set(SCRAPE_LABELS).union(*(exported.get(m, set()) for m in metrics))
            for label in sorted(grouped - labels):
                problems.append(f"{where}: no metric of it has the label {label}")
        self.assertEqual(problems, [])
        return used


class ParseQueryTests(SynchronousTestCase):
    """
    L{parseQuery} finds the metrics and labels of an expression.
    """

    def test_metricsAndLabels(self):
        """
        Metric names are found inside functions, aggregations and binary
        operations, with the labels of their matchers and of grouping
        clauses; functions, keywords, durations, numbers, Grafana's
        variables and string contents are not metric names.
        """
        metrics, matched, grouped = parseQuery(
            'sum without (listener) (rate(a_total{instance=~"$instance", x="y{z}"}'
            "[$__rate_interval]))"
            " > 0.9 * on (instance) group_left (version) b_info"
            ' or c == bool 1e3 and {__name__="d"} offset 5m unless e:f'
        )
        self.assertEqual(metrics, {"a_total", "b_info", "c", "e:f"})
        self.assertEqual(matched, {"a_total": {"instance", "x"}, None: {"__name__"}})
        self.assertEqual(grouped, {"listener", "instance", "version"})


class DeployTests(ExportedMixin, SynchronousTestCase):
    """
    The dashboard and the rules use only what the gateway exports.
    """

    def test_dashboardMetricsExported(self):
        """
        Every query of every dashboard panel, and the gateway variable,
        names metrics and labels the gateway exports; every panel has a
        query, and the dashboard covers the status page's figures.
        """
        dashboard = json.loads(DASHBOARD.read_text())
        exported = self.exported()
        queries, variables = dashboardQueries(dashboard)
        for panel in dashboard["panels"]:
            self.assertTrue(panel["targets"], panel["title"])
        used = self.assertQueriesExported(
            {f"query {i}": q for i, q in enumerate(queries)}, exported
        )
        for metric, label in variables:
            self.assertIn(label, exported[metric])
        self.assertLessEqual(
            {
                "gateway_ready",
                "gateway_messages_received_total",
                "gateway_messages_delivered_total",
                "gateway_received_bytes_total",
                "gateway_kafka_sent_bytes_total",
                "gateway_budget_held_bytes",
                "gateway_budget_bytes",
                "gateway_connections_open",
                "gateway_kafka_broker_up",
                "gateway_kafka_health_state",
            },
            used,
        )

    def test_dashboardLayout(self):
        """
        The dashboard imports cleanly: a fixed uid, unique panel ids, every
        panel on the 24-column grid without overlapping another, and every
        query on the chosen Prometheus data source.
        """
        dashboard = json.loads(DASHBOARD.read_text())
        self.assertEqual(dashboard["uid"], "kafka-gateway")
        panels = dashboard["panels"]
        self.assertEqual(len({p["id"] for p in panels}), len(panels))
        cells = set()
        for panel in panels:
            grid = panel["gridPos"]
            self.assertLessEqual(grid["x"] + grid["w"], 24, panel["title"])
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            self.assertFalse(cells & area, f"{panel['title']} overlaps another panel")
            cells |= area
            for target in [panel, *panel["targets"]]:
                self.assertEqual(
                    target["datasource"], {"type": "prometheus", "uid": "${datasource}"}
                )

    def test_rulesMetricsExported(self):
        """
        Every alerting rule's expression names metrics and labels the
        gateway exports, and the promised alerts are there.
        """
        rules = ruleQueries(yaml.safe_load(RULES.read_text()))
        self.assertLessEqual(ALERTS, rules.keys())
        used = self.assertQueriesExported(rules, self.exported())
        self.assertLessEqual(
            {
                "gateway_ready",
                "gateway_budget_held_bytes",
                "gateway_messages_dead_lettered_total",
                "gateway_accept_errors_total",
                "gateway_client_connection_capacity",
            },
            used,
        )

    def test_unknownMetricCaught(self):
        """
        A query naming a metric the gateway does not export, or a label its
        metric does not have, is reported.
        """
        exported = self.exported()
        self.assertRaises(
            self.failureException,
            self.assertQueriesExported,
            {"typo": "rate(gateway_messages_recieved_total[5m])"},
            exported,
        )
        self.assertRaises(
            self.failureException,
            self.assertQueriesExported,
            {"label": 'gateway_ready{listener="lines"}'},
            exported,
        )
        self.assertRaises(
            self.failureException,
            self.assertQueriesExported,
            {"grouping": "sum by (topic) (gateway_ready)"},
            exported,
        )


def requirePromtool():
    """
    Fail, with what to do, when promtool is missing.
    """
    assert PROMTOOL and Path(PROMTOOL).exists(), (
        "promtool is missing: the alerting rules' tests need Debian's prometheus "
        "package (apt-get install prometheus; scripts/test installs it when run as "
        "root), or GATEWAY_TEST_PROMTOOL naming a promtool"
    )


class PromtoolTests(SynchronousTestCase):
    """
    The rules as Prometheus reads them.
    """

    def promtool(self, *args):
        requirePromtool()
        done = subprocess.run(
            [PROMTOOL, *args], capture_output=True, text=True, cwd=RULES.parent, timeout=120
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done.stdout

    def test_checkRules(self):
        """
        C{promtool check rules} accepts the rule file.
        """
        self.assertIn("SUCCESS", self.promtool("check", "rules", RULES.name))

    def test_ruleUnitTests(self):
        """
        C{promtool test rules} passes the rules' unit tests: each alert
        fires on series shaped like the gateway's, with its labels and
        annotations, and not before its condition has held long enough.
        """
        self.assertIn("SUCCESS", self.promtool("test", "rules", RULE_TESTS.name))
        tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
        self.assertEqual(tested, set(ruleQueries(yaml.safe_load(RULES.read_text()))))
