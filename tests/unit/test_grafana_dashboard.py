"""The shipped Grafana dashboard (deploy/grafana/hourcast.json) against the metric names the API exports,
read from ``hourcast.monitor.prometheus`` (the one definition): every query names only exported metrics, every
forecast-quality gauge has a panel, and the dashboard imports with a Prometheus datasource of one's choice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from hourcast.monitor import prometheus

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hourcast.json"
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
NAME = re.compile(r"(?<![\w$.:])[a-zA-Z_:][\w:]*(?!\w*\s*\()")


def metrics_in(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values(expr, label)`` query) selects:
    identifiers outside label matchers, strings, ranges and grouping lists that are not functions,
    keywords or Grafana variables."""
    if found := re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr):
        expr = found.group(1)
    for pattern in (r'"(?:[^"\\]|\\.)*"', r"\{[^}]*\}", r"\[[^\]]*\]", GROUPING.pattern):
        expr = re.sub(pattern, " ", expr)
    return {name for name in NAME.findall(expr) if name not in PROMQL_WORDS}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels_of(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    return [
        inner
        for panel in dashboard["panels"]
        for inner in [panel, *panel.get("panels", [])]
        if "targets" in inner
    ]


def variable_queries(dashboard: dict) -> list[str]:
    return [
        variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]


def test_metric_names_are_what_the_exposition_carries() -> None:
    board = pd.DataFrame(columns=["model", "symbol", "window", *prometheus.GAUGES])
    text = prometheus.prometheus_text(board, "m:1", {"BTC/USDT": 1.0})
    assert re.findall(r"^# TYPE (\S+) gauge$", text, re.MULTILINE) == prometheus.metric_names()


def test_metrics_in_reads_names_not_functions_labels_or_variables() -> None:
    assert metrics_in('avg by (symbol) (rate(a_b{x="y",z=~"$v"}[$__rate_interval])) / on (symbol) c') == {
        "a_b",
        "c",
    }
    assert metrics_in('label_values(hourcast_x{symbol=~"$symbol"}, model)') == {"hourcast_x"}
    assert metrics_in("1e3 * up offset 5m") == {"up"}


def test_every_query_names_only_exported_metrics(dashboard: dict) -> None:
    exported = set(prometheus.metric_names())
    queries = [target["expr"] for panel in panels_of(dashboard) for target in panel["targets"]]
    queries += variable_queries(dashboard)
    assert queries
    for query in queries:
        names = metrics_in(query)
        assert names and names <= exported, f"{query!r} names {sorted(names - exported) or 'no metric'}"


def test_every_forecast_quality_gauge_has_a_panel(dashboard: dict) -> None:
    shown = {
        name
        for panel in panels_of(dashboard)
        for target in panel["targets"]
        for name in metrics_in(target["expr"])
    }
    assert {prometheus.forecast_gauge(column) for column in prometheus.GAUGES} <= shown


def test_it_imports_with_a_prometheus_datasource_variable(dashboard: dict) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels_of(dashboard):
        assert panel["datasource"] == wanted and all(t["datasource"] == wanted for t in panel["targets"])
    for variable in variables.values():
        assert variable["type"] != "query" or variable["datasource"] == wanted
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(
        {"x", "y", "w", "h"} <= set(p["gridPos"]) for p in dashboard["panels"]
    )
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert "id" not in dashboard  # Grafana assigns it on import
