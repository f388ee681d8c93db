"""The alert rules and their routes: each PrometheusRule has its plain rule
file and promtool tests beside it, each AlertmanagerConfig its plain
Alertmanager file; every alert says how bad it is and where its runbook is,
and reaches the AlertmanagerConfig's route, a critical one without a wait."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import re
import sys
from pathlib import Path

from ...context import Context
from ...model import Check, Obj, deployable, get, read_yaml, rel, rule
from ...patches import MISSING
from .queries import alert_rules
from .scrape import prometheus_seconds

# What every alert carries (manifests/monitoring.md, "Alerts"), and where its runbook is.
ALERT_SEVERITIES = {"critical", "warning", "info"}
ALERT_ANNOTATIONS = ("summary", "what_to_do", "runbook_url")
RUNBOOK = "manifests/monitoring.md"

# Alertmanager's group_wait for a route that sets none and whose parents set
# none (kube-prometheus-stack's root route says 30s too).
ALERTMANAGER_DEFAULT_GROUP_WAIT = "30s"
# The longest a critical alert's route may wait before its first
# notification. ForexRatesStale fires at an oldest rate of up to 270 + 15 s
# (one evaluation of its group late) and the edge refuses the rates at 300 s:
# 15 s at worst for Prometheus, Alertmanager and the on-call tool together.
PAGE_GROUP_WAIT_MAX_SECONDS = 5
# AlertmanagerConfig route fields and their names in Alertmanager's file.
ROUTE_FIELDS = (
    ("groupBy", "group_by"),
    ("groupWait", "group_wait"),
    ("groupInterval", "group_interval"),
    ("repeatInterval", "repeat_interval"),
    ("muteTimeIntervals", "mute_time_intervals"),
    ("activeTimeIntervals", "active_time_intervals"),
)
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")


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


def parse_matcher(text: str) -> tuple[str, str, str] | None:
    """(label, operator, value) of an Alertmanager matcher such as
    `alertname=~"Forex.+"`; None if it is none."""
    m = _MATCHER.fullmatch(str(text))
    if not m:
        return None
    value = m.group(3)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return m.group(1), m.group(2), value


def operator_route(route: dict, namespace: str | None, first: bool = True) -> dict:
    """The route of Alertmanager's configuration that prometheus-operator
    makes of an AlertmanagerConfig's spec.route (pkg/alertmanager/amcfg.go):
    the fields in Alertmanager's names, matchers as (label, operator, value),
    and on the first level `continue: true` and a last matcher on the
    object's namespace (the operator's default matcher strategy,
    OnNamespace). Receivers keep their names here; the operator prefixes
    them with <namespace>/<object name>/."""
    out = {}
    if route.get("receiver"):
        out["receiver"] = route["receiver"]
    matchers = [
        (str(m.get("name")), m.get("matchType") or ("=~" if m.get("regex") else "="), str(m.get("value", "")))
        for m in route.get("matchers") or []
    ]
    if first and namespace:
        matchers.append(("namespace", "=", namespace))
    if matchers:
        out["matchers"] = matchers
    for ours, theirs in ROUTE_FIELDS:
        if route.get(ours) not in (None, []):
            out[theirs] = route[ours]
    if first or route.get("continue"):
        out["continue"] = True
    if route.get("routes"):
        out["routes"] = [operator_route(r, namespace, first=False) for r in route["routes"]]
    return out


def plain_route(route: dict) -> dict:
    """A route of an Alertmanager configuration file in operator_route's
    form: matchers parsed, empty lists and a false `continue` left out."""
    out = {}
    for key, value in (route or {}).items():
        if value in (None, []) or (key == "continue" and not value):
            continue
        if key == "matchers":
            out[key] = [parse_matcher(m) or ("?", "?", str(m)) for m in value]
        elif key == "routes":
            out[key] = [plain_route(r) for r in value]
        else:
            out[key] = value
    return out


def integration_key(name: str) -> str:
    """webhookConfigs -> webhook_configs: an AlertmanagerConfig receiver's
    integration list as Alertmanager's file names it."""
    return name.removesuffix("Configs").lower() + "_configs"


def routes_file(root: Path, obj: Obj) -> Path:
    """Where an AlertmanagerConfig's plain twin lives: alertmanager/<name>.routes.yaml beside it."""
    return (root / obj.source).parent / "alertmanager" / f"{obj.name}.routes.yaml"


def _alertmanager_twin(root: Path, o: Obj, c: Check) -> None:
    """Fails unless the plain Alertmanager file of AlertmanagerConfig `o`
    has its route (the root's first) and receivers."""
    path = routes_file(root, o)
    if not path.is_file():
        c.fail(f"{o.ref()}: {rel(path, root)} does not exist; keep the same route there, as plain Alertmanager configuration")
        return
    plain = read_yaml(path, root) or {}
    spec = o.doc.get("spec") or {}
    ours = operator_route(spec.get("route") or {}, o.namespace)
    routes = (plain.get("route") or {}).get("routes") or []
    if not routes:
        c.fail(f"{rel(path, root)}: the root route has no routes; the route of {o.ref()} goes first among them")
        return
    theirs = plain_route(routes[0])
    if theirs != ours:
        where = _first_difference(ours, theirs)
        c.fail(
            f"{o.ref()}: spec.route differs from the first route of {rel(path, root)} (first at {where}); "
            f"the two must stay identical (that file holds what prometheus-operator makes of the object)"
        )
    receivers = {r.get("name"): r for r in plain.get("receivers") or []}
    for receiver in spec.get("receivers") or []:
        name = receiver.get("name")
        twin = receivers.get(name)
        if twin is None:
            c.fail(f"{o.ref()}: receiver {name!r} is not in {rel(path, root)}")
            continue
        kinds = {integration_key(k) for k, v in receiver.items() if k.endswith("Configs") and v}
        kinds_twin = {k for k, v in twin.items() if k.endswith("_configs") and v}
        if kinds != kinds_twin:
            c.fail(f"{o.ref()}: receiver {name!r} sends with {', '.join(sorted(kinds)) or 'nothing'}, {rel(path, root)} with {', '.join(sorted(kinds_twin)) or 'nothing'}")
            continue
        for kind in sorted(kinds):
            mine = [k for k in receiver if integration_key(k) == kind and k.endswith("Configs")]
            ours_list, theirs_list = receiver[mine[0]], twin[kind]
            if len(ours_list) != len(theirs_list):
                c.fail(f"{o.ref()}: receiver {name!r} has {len(ours_list)} {kind}, {rel(path, root)} {len(theirs_list)}")
                continue
            for i, (x, y) in enumerate(zip(ours_list, theirs_list)):
                if x.get("sendResolved") != y.get("send_resolved"):
                    c.fail(f"{o.ref()}: receiver {name!r} {kind}[{i}]: sendResolved {x.get('sendResolved')!r}, {rel(path, root)} send_resolved {y.get('send_resolved')!r}")


def route_of(route: dict, labels: dict, timing: dict | None = None) -> tuple[dict, dict] | None | str:
    """The deepest route of `route` (operator_route's form) whose matchers
    match `labels`, with the timing it applies (its own, else its
    parents'); None if the route does not match; a label's name when a
    matcher needs a label that `labels` lacks (it cannot be told)."""
    timing = dict(timing or {})
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route:
            timing[key] = route[key]
    for name, op, value in route.get("matchers") or []:
        if name not in labels:
            return name
        try:
            found = re.fullmatch(value, labels[name]) is not None if op in ("=~", "!~") else labels[name] == value
        except re.error:
            return name
        if found != (op in ("=", "=~")):
            return None
    for child in route.get("routes") or []:
        hit = route_of(child, labels, timing)
        if hit is not None:
            return hit
    return route, timing


@rule("rule-files")
def rule_files(ctx: Context, c: Check) -> None:
    """Every PrometheusRule has its plain Prometheus twin beside it,
    rules/<name>.rules.yaml, with the same groups (what a Prometheus without
    the operator loads, and what promtool tests), and a promtool test file
    rules/<name>.rules.test.yaml that tests it: for every alert, a case where
    it fires and one where it stays quiet. Every AlertmanagerConfig has its
    plain Alertmanager twin beside it, alertmanager/<name>.routes.yaml (what
    an Alertmanager without the operator loads, and what the end-to-end test
    runs): the root route's first route is what prometheus-operator makes of
    spec.route (matchers, then namespace="<its namespace>"; continue: true),
    and the receivers have the same integrations."""
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
    configs = set()
    for s in deployable(ctx.sets):
        for o in s.of_kind("AlertmanagerConfig"):
            key = (o.source, o.namespace, json.dumps(o.doc.get("spec"), sort_keys=True))
            if key not in configs:
                configs.add(key)
                _alertmanager_twin(root, o, c)
    c.summary = (
        f"{len(seen)} PrometheusRule(s) identical to their plain rule files; promtool tests for each of {n_alerts} alert(s), "
        f"firing and quiet; {len(configs)} AlertmanagerConfig(s) identical to their plain Alertmanager files"
    )


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
    names are unique. Every alert sets labels.namespace to its
    PrometheusRule's namespace, and where an AlertmanagerConfig of that
    namespace is deployed beside it, its labels reach that object's route
    (prometheus-operator hands the route only alerts of its namespace);
    a critical one with a group_wait of at most PAGE_GROUP_WAIT_MAX_SECONDS,
    so that ForexRatesStale pages before the rates are 300 s old."""
    path = ctx.root / RUNBOOK
    try:
        anchors = markdown_anchors(path.read_text())
    except FileNotFoundError:
        anchors = set()
        c.fail(f"{RUNBOOK} does not exist: the runbooks of the alerts are there")
    names, routed = set(), set()
    for s in deployable(ctx.sets):
        configs = s.of_kind("AlertmanagerConfig")
        for o in s.of_kind("PrometheusRule"):
            counted = {}
            for _, alert in alert_rules(o):
                name = alert.get("alert")
                if name is None:
                    continue
                names.add(name)
                counted[name] = counted.get(name, 0) + 1
                where = f"{o.ref()}: alert {name}"
                labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
                severity = labels.get("severity")
                if severity not in ALERT_SEVERITIES:
                    c.fail(f"{where}: labels.severity is {severity!r}, not one of {', '.join(sorted(ALERT_SEVERITIES))}")
                if o.namespace and labels.get("namespace") != o.namespace:
                    c.fail(
                        f"{where}: labels.namespace is {labels.get('namespace')!r}, not {o.namespace!r}: an AlertmanagerConfig of "
                        f"{o.namespace} sees only alerts labelled namespace={o.namespace}, and some expressions lose the series' own"
                    )
                for config in configs:
                    if config.namespace != o.namespace:
                        continue
                    hit = route_of(operator_route(get(config.doc, "spec", "route", default={}) or {}, config.namespace), {**labels, "alertname": name})
                    if hit is None:
                        c.fail(f"{where}: its labels do not reach the route of {config.ref()}; nobody would be notified")
                        continue
                    if isinstance(hit, str):
                        c.fail(f"{where}: the route of {config.ref()} matches on label {hit!r}, which the rule does not set: it cannot be told whether it reaches it")
                        continue
                    routed.add((name, config.identity()))
                    wait = hit[1].get("group_wait", ALERTMANAGER_DEFAULT_GROUP_WAIT)
                    seconds = prometheus_seconds(str(wait))
                    if severity == "critical" and (seconds is None or seconds > PAGE_GROUP_WAIT_MAX_SECONDS):
                        c.fail(
                            f"{where}: critical, but the route of {config.ref()} waits group_wait {wait} before notifying "
                            f"(at most {PAGE_GROUP_WAIT_MAX_SECONDS}s: ForexRatesStale fires at most 30 s before the promise breaks)"
                        )
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
    c.summary = (
        f"{len(names)} alert(s) with severity, namespace, summary, what_to_do and a runbook section of {RUNBOOK}; "
        f"{len({n for n, _ in routed})} reach an AlertmanagerConfig's route, the critical ones without a wait"
    )
