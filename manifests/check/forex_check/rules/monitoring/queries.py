"""Where the monitoring component's queries are (alert rules, dashboard
panels and variables), and PromQL read just well enough to find the series
an expression selects."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from ...model import Obj, ObjectSet, get

# Grafana's dashboard sidecar (kube-prometheus-stack) loads ConfigMaps with this label.
GRAFANA_DASHBOARD_LABEL = ("grafana_dashboard", "1")
# Series of a histogram family besides its name; `le` is their bucket label.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# -- PromQL, read just well enough to find the series an expression selects --

PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end", "atan2"}
PROMQL_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_PROMQL_STRING = r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`'
_PROMQL_TOKEN = re.compile(
    rf"""(?P<string>{_PROMQL_STRING})
      | (?P<matchers>\{{(?:{_PROMQL_STRING}|[^{{}}"'`])*\}})
      | (?P<range>\[[^\]]*\])
      | (?P<variable>\$\{{[^}}]*\}}|\$\w+)
      | (?P<number>(?:\d|\.\d)[\w.]*)
      | (?P<name>[A-Za-z_:][\w:]*)
      | (?P<other>\S)""",
    re.X,
)
_PROMQL_MATCHER = re.compile(rf"\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*({_PROMQL_STRING})\s*(?:,|$)")


def promql_matchers(text: str) -> list[tuple[str, str, str]] | None:
    """(label, operator, value) of a `{...}` selector; None if unreadable."""
    body, out, pos = text[1:-1].strip(), [], 0
    while pos < len(body):
        m = _PROMQL_MATCHER.match(body, pos)
        if not m:
            return None
        out.append((m.group(1), m.group(2), re.sub(r"\\(.)", r"\1", m.group(3)[1:-1])))
        pos = m.end()
    return out


def promql_selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]] | None]]:
    """(metric name, matchers) of every vector selector of a PromQL
    expression (also with Grafana's $variables). Function and aggregation
    names (followed by `(`), keywords, the label lists of by/without/on/
    ignoring/group_left/group_right, strings, numbers, durations and ranges
    are skipped; a selector without a metric name gives none. Enough for the
    manifests' own queries, not a PromQL parser: promtool checks the syntax."""
    tokens = [(m.lastgroup, m.group()) for m in _PROMQL_TOKEN.finditer(str(expr))]
    out, i = [], 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        i += 1
        if kind != "name":
            continue
        if text.lower() in PROMQL_LABEL_LISTS:
            if following[1] == "(":
                while i < len(tokens) and tokens[i][1] != ")":
                    i += 1
                i += 1
            continue
        if following[1] == "(" or following[1].lower() in ("by", "without") or text.lower() in PROMQL_KEYWORDS:
            continue  # a function, an aggregation (`sum by (le) (...)` too) or a keyword
        if following[0] == "matchers":
            out.append((text, promql_matchers(following[1])))
            i += 1
        else:
            out.append((text, []))
    return out


def metric_family(name: str, metrics: dict[str, dict]) -> str | None:
    """The metrics.yaml family a series name belongs to (a histogram's
    _bucket/_sum/_count series belong to the histogram)."""
    if name in metrics:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and metrics.get(base, {}).get("type") in ("histogram", "summary"):
            return base
    return None


# -- where the queries are ---------------------------------------------------------


def alert_rules(obj: Obj) -> Iterator[tuple[str, dict]]:
    """(group name, rule) of every rule of a PrometheusRule."""
    for group in get(obj.doc, "spec", "groups", default=[]) or []:
        for rule in group.get("rules") or []:
            yield str(group.get("name")), rule


def dashboards(s: ObjectSet) -> Iterator[tuple[Obj, str, object]]:
    """(ConfigMap, key, parsed JSON or the error) of every Grafana dashboard
    of a set: the keys of ConfigMaps labelled for Grafana's sidecar."""
    key, value = GRAFANA_DASHBOARD_LABEL
    for cm in s.of_kind("ConfigMap"):
        if (get(cm.doc, "metadata", "labels", default={}) or {}).get(key) != value:
            continue
        for name, text in (cm.doc.get("data") or {}).items():
            try:
                yield cm, name, json.loads(text)
            except json.JSONDecodeError as e:
                yield cm, name, e


def dashboard_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel of a dashboard, those inside rows too (rows themselves not)."""
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            yield from panel.get("panels") or []
        else:
            yield panel


def monitoring_queries(s: ObjectSet) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every query the set makes Prometheus, Grafana or
    KEDA run: each PrometheusRule expression, each dashboard panel target and
    query variable, each query of a ScaledObject's prometheus trigger."""
    for o in s.of_kind("ScaledObject"):
        for i, trigger in enumerate(get(o.doc, "spec", "triggers", default=[]) or []):
            query = get(trigger, "metadata", "query")
            if trigger.get("type") == "prometheus" and query:
                yield f"{o.ref()}: triggers[{i}] (prometheus)", str(query)
    for o in s.of_kind("PrometheusRule"):
        for _, rule in alert_rules(o):
            yield f"{o.ref()}: {'alert' if 'alert' in rule else 'rule'} {rule.get('alert') or rule.get('record')}", str(rule.get("expr"))
    for cm, key, board in dashboards(s):
        if not isinstance(board, dict):
            continue
        for panel in dashboard_panels(board):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    yield f"{cm.ref()}: {key} panel {panel.get('title')!r}", str(target["expr"])
        for var in get(board, "templating", "list", default=[]) or []:
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            if var.get("type") == "query" and query:
                yield f"{cm.ref()}: {key} variable {var.get('name')!r}", str(query)
