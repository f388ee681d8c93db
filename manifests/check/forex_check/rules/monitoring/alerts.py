"""The alert rules: each PrometheusRule has its plain rule file and
promtool tests beside it, and every alert says how bad it is and where its
runbook is."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import re
import sys
from pathlib import Path

from ...context import Context
from ...model import Check, deployable, read_yaml, rel, rule
from ...patches import MISSING
from .queries import alert_rules

# What every alert carries (manifests/monitoring.md, "Alerts"), and where its runbook is.
ALERT_SEVERITIES = {"critical", "warning", "info"}
ALERT_ANNOTATIONS = ("summary", "what_to_do", "runbook_url")
RUNBOOK = "manifests/monitoring.md"


def _first_difference(a, b, path: str = "") -> str:
    """Where two parsed YAML documents first differ, as a path."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key, MISSING) != b.get(key, MISSING):
                return _first_difference(a.get(key, MISSING), b.get(key, MISSING), f"{path}.{key}" if path else str(key))
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
    return path or "(top level)"


@rule("rule-files")
def rule_files(ctx: Context, c: Check) -> None:
    """Every PrometheusRule has its plain Prometheus twin beside it,
    rules/<name>.rules.yaml, with the same groups (what a Prometheus without
    the operator loads, and what promtool tests), and a promtool test file
    rules/<name>.rules.test.yaml that tests it: for every alert, a case where
    it fires and one where it stays quiet."""
    root = ctx.root
    seen, n_alerts = set(), 0
    for s in deployable(ctx.sets):
        for o in s.of_kind("PrometheusRule"):
            key = (o.source, json.dumps(o.doc.get("spec"), sort_keys=True))
            if key in seen:
                continue  # the same object in another overlay
            seen.add(key)
            rules_dir = (root / o.source).parent / "rules"
            path, test_path = rules_dir / f"{o.name}.rules.yaml", rules_dir / f"{o.name}.rules.test.yaml"
            if not path.is_file():
                c.fail(f"{o.ref()}: {rel(path, root)} does not exist; keep the same groups there, for promtool and a Prometheus without the operator")
                continue
            plain = read_yaml(path, root)
            if plain != o.doc.get("spec"):
                where = _first_difference(o.doc.get("spec"), plain)
                c.fail(f"{o.ref()}: spec differs from {rel(path, root)} (first at {where}); the two must stay identical")
            if not test_path.is_file():
                c.fail(f"{o.ref()}: no promtool tests {rel(test_path, root)}")
                continue
            tests = read_yaml(test_path, root) or {}
            if path.name not in (tests.get("rule_files") or []):
                c.fail(f"{rel(test_path, root)}: rule_files does not list {path.name}")
            cases = [case for test in tests.get("tests") or [] for case in test.get("alert_rule_test") or []]
            for _, alert in alert_rules(o):
                if "alert" not in alert:
                    continue
                n_alerts += 1
                mine = [case for case in cases if case.get("alertname") == alert["alert"]]
                if not any(case.get("exp_alerts") for case in mine):
                    c.fail(f"{rel(test_path, root)}: no test where alert {alert['alert']} fires")
                if not any(not case.get("exp_alerts") for case in mine):
                    c.fail(f"{rel(test_path, root)}: no test where alert {alert['alert']} stays quiet")
    c.summary = f"{len(seen)} PrometheusRule(s) identical to their plain rule files; promtool tests for each of {n_alerts} alert(s), firing and quiet"


def markdown_anchors(text: str) -> set[str]:
    """The anchors a Markdown file offers, as GitHub makes them: the same
    rule `make check-docs` holds every link to (scripts/check_docs.py)."""
    return _check_docs().anchors(text)


@functools.cache
def _check_docs():
    """scripts/check_docs.py of the repository this checker belongs to."""
    path = Path(__file__).resolve().parents[5] / "scripts" / "check_docs.py"
    spec = importlib.util.spec_from_file_location("check_docs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_docs", module)
    spec.loader.exec_module(module)
    return module


@rule("alerts")
def alerts(ctx: Context, c: Check) -> None:
    """Every alert says how bad it is and what to do: labels.severity
    (critical, warning or info), annotations summary, a one-line what_to_do
    and a runbook_url whose anchor is a heading of manifests/monitoring.md
    (RUNBOOK; the path before it may be a full URL of the repository). Alert
    names are unique."""
    path = ctx.root / RUNBOOK
    try:
        anchors = markdown_anchors(path.read_text())
    except FileNotFoundError:
        anchors = set()
        c.fail(f"{RUNBOOK} does not exist: the runbooks of the alerts are there")
    names = set()
    for s in deployable(ctx.sets):
        for o in s.of_kind("PrometheusRule"):
            counted = {}
            for _, alert in alert_rules(o):
                name = alert.get("alert")
                if name is None:
                    continue
                names.add(name)
                counted[name] = counted.get(name, 0) + 1
                where = f"{o.ref()}: alert {name}"
                severity = (alert.get("labels") or {}).get("severity")
                if severity not in ALERT_SEVERITIES:
                    c.fail(f"{where}: labels.severity is {severity!r}, not one of {', '.join(sorted(ALERT_SEVERITIES))}")
                annotations = alert.get("annotations") or {}
                for key in ALERT_ANNOTATIONS:
                    if not str(annotations.get(key, "")).strip():
                        c.fail(f"{where}: annotations.{key} is missing")
                if "\n" in str(annotations.get("what_to_do", "")).strip():
                    c.fail(f"{where}: annotations.what_to_do must be one line (the runbook has the rest)")
                url = annotations.get("runbook_url")
                if url:
                    m = re.fullmatch(rf"(?:.*/)?{re.escape(RUNBOOK)}#([^#/\s]+)", str(url))
                    if not m:
                        c.fail(f"{where}: runbook_url {url!r} does not point at a section of {RUNBOOK} (…{RUNBOOK}#<anchor>)")
                    elif m.group(1) not in anchors:
                        close = difflib.get_close_matches(m.group(1), sorted(anchors), n=1)
                        hint = f" (did you mean #{close[0]}?)" if close else ""
                        c.fail(f"{where}: runbook_url {url!r}: {RUNBOOK} has no heading with anchor #{m.group(1)}{hint}")
            for name, count in counted.items():
                if count > 1:
                    c.fail(f"{o.ref()}: alert {name} is defined {count} times")
    c.summary = f"{len(names)} alert(s) with severity, summary, what_to_do and a runbook section of {RUNBOOK}"
