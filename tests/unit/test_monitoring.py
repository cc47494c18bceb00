"""The alert rules and the Grafana dashboard in deploy/monitoring/ name only series that
exist, with labels those series have, in PromQL that parses (promql-parser, the Rust parser
Prometheus-compatible tools use; promtool itself is a Go binary no package here ships).
The rules' structure is checked against the PrometheusRule CRD's schema by
test_deploy_manifests.py, as deploy/k8s/generate.py wraps them into one."""
import json
import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

from hocvu import metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
RULES = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana-dashboard.json").read_text())

# series from elsewhere, named in deploy/README.md: Prometheus's own, and RabbitMQ's exporter
# (rabbitmq_prometheus, /metrics/detailed with the queue_coarse_metrics and
# queue_consumer_count families)
EXTERNAL = {
    "up": ("job", "instance"),
    "rabbitmq_detailed_queue_messages_ready": ("vhost", "queue"),
    "rabbitmq_detailed_queue_consumers": ("vhost", "queue"),
}
# labels every scraped series gets from Prometheus
TARGET_LABELS = ("job", "instance")


def _process_series() -> dict[str, tuple[str, ...]]:
    """prometheus_client's own process_* and python_* series, as served by every service."""
    return {sample.name: tuple(sample.labels) for family in REGISTRY.collect()
            if family.name.startswith(("process_", "python_")) for sample in family.samples}


KNOWN = {**metrics.series(), **_process_series(), **EXTERNAL}


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each series an expression selects: its name and the labels its matchers and its
    aggregations name. Fails on an expression that does not parse."""
    found, grouped = [], set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, {m.name for m in node.matchers.matchers}))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouped.update(node.modifier.labels)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return [(name, labels | grouped) for name, labels in found]


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def test_the_parser_refuses_what_prometheus_would():
    with pytest.raises(ValueError):
        promql_parser.parse('sum(rate(hocvu_http_requests_total[5m])')
    with pytest.raises(ValueError):
        promql_parser.parse('rate(hocvu_http_requests_total)')  # a range vector is needed


@pytest.mark.parametrize("expr", [*dashboard_expressions(), *(r["expr"] for r in alert_rules())])
def test_every_expression_names_only_series_and_labels_that_exist(expr):
    for name, labels in selectors(expr):
        assert name in KNOWN, f"{name} is served by nothing: {expr}"
        unknown = labels - set(KNOWN[name]) - set(TARGET_LABELS) - {"__name__"}
        if name.startswith(("hocvu_", "rabbitmq_")):
            assert not unknown, f"{name} has no label {unknown}: {expr}"


def test_the_dashboard_shows_every_fact_the_services_measure():
    shown = {name for expr in dashboard_expressions() for name, _ in selectors(expr)}
    measured = {re.sub(r"_(bucket|sum|count)$", "", name) for name in metrics.series()}
    assert {re.sub(r"_(bucket|sum|count)$", "", name) for name in shown} >= measured


def test_the_issue_s_alerts_are_there_each_with_a_severity_and_a_runbook_section():
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {"HocvuDeadLettersGrowing", "HocvuRelayLagging", "HocvuSmsFailureRateHigh",
            "HocvuConsumerDown"} <= names
    outside_code = re.sub(r"```.*?```", "", OPERATIONS_DOC.read_text(), flags=re.S)
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in outside_code.splitlines() if line.startswith("#")}
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        section = rule["annotations"]["runbook"].split("#", 1)[1]
        assert section in anchors, f"{rule['alert']}: no section #{section} in docs/operations.md"
