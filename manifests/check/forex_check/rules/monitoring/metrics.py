"""The series the alerts and the dashboard select exist (metrics.yaml
lists what each exporter exports), and the dashboard works with any
Prometheus data source."""

from __future__ import annotations

import difflib
import re

from ...context import METRICS_FILE, Context
from ...model import Check, ObjectSet, deployable, get, rule
from .queries import dashboard_panels, dashboards, metric_family, monitoring_queries, promql_selectors
from .scrape import monitored_pods, monitored_services

# Series Prometheus makes itself.
PROMETHEUS_OWN_METRICS = {"up", "ALERTS"}
# Labels Prometheus attaches to every target of a ServiceMonitor/PodMonitor
# (prometheus-operator's relabelling), whatever the exporter exports.
TARGET_LABELS = {"job", "instance", "namespace", "service", "pod", "container", "endpoint"}


def monitor_jobs(sets: list[ObjectSet]) -> set[str]:
    """The job label of every target the ServiceMonitors and PodMonitors of
    the sets make: the Service's name (or the value of its jobLabel label),
    <namespace>/<name> of a PodMonitor (or its pods' jobLabel)."""
    jobs = set()
    for s in deployable(sets):
        for sm in s.of_kind("ServiceMonitor"):
            label = get(sm.doc, "spec", "jobLabel")
            for svc in monitored_services(s, sm):
                jobs.add((get(svc.doc, "metadata", "labels", default={}) or {}).get(label) if label else svc.name)
        for pm in s.of_kind("PodMonitor"):
            label = get(pm.doc, "spec", "jobLabel")
            jobs |= {labels.get(label) for _, labels in monitored_pods(s, sets, pm)} if label else {f"{pm.namespace}/{pm.name}"}
    return {j for j in jobs if j}


def traefik_service_name(namespace: str | None, backend: dict) -> str:
    """The `service` label Traefik's metrics give an Ingress backend:
    <namespace>-<service>-<port name or number>, through Traefik's Normalize
    (runs of other characters than letters and digits become one `-`), and
    the provider: traefik/traefik pkg/provider/kubernetes/ingress."""
    port = get(backend, "port", "name") or get(backend, "port", "number")
    text = f"{namespace or 'default'}-{backend.get('name')}-{port}"
    return "-".join(p for p in re.split(r"[^A-Za-z0-9]+", text) if p) + "@kubernetes"


def traefik_services(sets: list[ObjectSet]) -> set[str]:
    return {
        traefik_service_name(ing.namespace, get(p, "backend", "service", default={}) or {})
        for s in deployable(sets)
        for ing in s.of_kind("Ingress")
        for ingress_rule in get(ing.doc, "spec", "rules", default=[]) or []
        for p in get(ingress_rule, "http", "paths", default=[]) or []
        if get(p, "backend", "service")
    }


def autoscaler_names(sets: list[ObjectSet]) -> set[str]:
    """The HorizontalPodAutoscalers the manifests make, by the name
    kube-state-metrics gives them (label horizontalpodautoscaler): each HPA's
    own, and for a KEDA ScaledObject the HPA KEDA makes of it,
    keda-hpa-<ScaledObject> unless advanced.horizontalPodAutoscalerConfig.name
    says otherwise."""
    names = set()
    for s in deployable(sets):
        names |= {hpa.name for hpa in s.of_kind("HorizontalPodAutoscaler")}
        for so in s.of_kind("ScaledObject"):
            names.add(get(so.doc, "spec", "advanced", "horizontalPodAutoscalerConfig", "name") or f"keda-hpa-{so.name}")
    return names


def unknown_autoscalers(op: str, value: str, names: set[str]) -> list[str]:
    """What a horizontalpodautoscaler matcher names that no autoscaler of the
    manifests is: each name of an `=` or of a `|` list of plain names, or a
    regular expression that matches none."""
    if op == "=":
        return [] if value in names else [value]
    alternatives = value.split("|")
    if all(re.fullmatch(r"[A-Za-z0-9.-]+", a) for a in alternatives):
        return [a for a in alternatives if a not in names]
    try:
        return [] if any(re.fullmatch(value, n) for n in names) else [value]
    except re.error:
        return [value]


@rule("metrics")
def metrics(ctx: Context, c: Check) -> None:
    """Every series an alert rule, a dashboard panel or a KEDA prometheus
    trigger selects is one that something exports: a family of metrics.yaml (histograms with their
    _bucket/_sum/_count series) or Prometheus's own `up` and `ALERTS`. Its
    label matchers use labels the family has (or that Prometheus gives every
    target), and values of the labels metrics.yaml enumerates; `job` names
    the job of a ServiceMonitor/PodMonitor of the manifests, Traefik's
    `service` an Ingress backend as Traefik names it, and kube-state-metrics'
    `horizontalpodautoscaler` an autoscaler of the manifests when they have
    one (a ScaledObject's by the HPA KEDA makes of it). A misspelt name or
    value would make an alert that never fires, or an autoscaler that never
    scales, silently."""
    families = ctx.metrics
    jobs, backends, autoscalers = monitor_jobs(ctx.sets), traefik_services(ctx.sets), autoscaler_names(ctx.sets)
    used, queries = set(), set()
    for s in deployable(ctx.sets):
        for where, expr in monitoring_queries(s):
            queries.add((where, expr))
    for where, expr in sorted(queries):
        for name, matchers in promql_selectors(expr):
            if matchers is None:
                c.fail(f"{where}: cannot read the label matchers of {name!r} in {expr!r}")
                continue
            family = None if name in PROMETHEUS_OWN_METRICS else metric_family(name, families)
            if family is None and name not in PROMETHEUS_OWN_METRICS:
                close = difflib.get_close_matches(name, list(families), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                c.fail(f"{where}: uses {name}, which no exporter lists in manifests/{METRICS_FILE}{hint}")
                continue
            used.add(family or name)
            labels = families[family]["labels"] if family else {}
            bucket = family is not None and name != family
            for label, op, value in matchers:
                if label == "job" and op == "=" and value not in jobs:
                    c.fail(f"{where}: job {value!r} is the job of no ServiceMonitor/PodMonitor of the manifests ({', '.join(sorted(jobs)) or 'none'})")
                if family and families[family]["exporter"] == "traefik" and label == "service" and op == "=" and value not in backends:
                    c.fail(f"{where}: Traefik names no Ingress backend of the manifests {value!r} ({', '.join(sorted(backends)) or 'none'})")
                # Without any autoscaler (a fixed replica count) the HPA series
                # are simply absent; with one, a name that is none of them is a typo.
                if autoscalers and family and families[family]["exporter"] == "kube-state-metrics" and label == "horizontalpodautoscaler" and op in ("=", "=~"):
                    for unknown in unknown_autoscalers(op, value, autoscalers):
                        c.fail(f"{where}: {name}{{{label}{op}{value!r}}}: {unknown!r} is no autoscaler of the manifests ({', '.join(sorted(autoscalers)) or 'none'})")
                if family is None or label in TARGET_LABELS or label == "__name__" or (bucket and label == "le"):
                    continue
                if label not in labels:
                    c.fail(f"{where}: {name} has no label {label!r} in manifests/{METRICS_FILE} ({', '.join(sorted(labels)) or 'none'})")
                    continue
                values = labels[label]
                if values is None or value == "":
                    continue
                if op in ("=", "!="):
                    ok = value in values
                else:
                    try:
                        ok = any(re.fullmatch(value, v) for v in values)
                    except re.error as e:
                        c.fail(f"{where}: {name}{{{label}{op}{value!r}}} is no valid regular expression: {e}")
                        continue
                if not ok:
                    c.fail(f"{where}: {name}{{{label}{op}{value!r}}} matches none of the values {label} takes ({', '.join(values)})")
    c.summary = f"{len(queries)} rule/panel/trigger query(ies) use {len(used)} metric(s), each listed in manifests/{METRICS_FILE} or Prometheus's own"


@rule("dashboards")
def dashboards_use_the_data_source_variable(ctx: Context, c: Check) -> None:
    """Every Grafana dashboard ConfigMap (label grafana_dashboard: "1")
    holds dashboards as JSON with a uid and a title, a data source variable,
    and panels whose queries all go through it (so the dashboard works with
    whatever Prometheus data source Grafana has)."""
    n = set()
    for s in deployable(ctx.sets):
        for cm, key, board in dashboards(s):
            where = f"{cm.ref()}: {key}"
            if not isinstance(board, dict):
                c.fail(f"{where}: not a JSON dashboard ({board})")
                continue
            n.add((cm.identity(), key))
            for field_name in ("uid", "title"):
                if not board.get(field_name):
                    c.fail(f"{where}: has no {field_name}")
            variables = [v.get("name") for v in get(board, "templating", "list", default=[]) or [] if v.get("type") == "datasource"]
            if not variables:
                c.fail(f"{where}: has no data source variable (templating, type datasource)")
                continue
            allowed = {f"${variables[0]}", f"${{{variables[0]}}}"}
            for panel in dashboard_panels(board):
                title = panel.get("title")
                targets = panel.get("targets") or []
                if not targets:
                    c.fail(f"{where}: panel {title!r} has no query")
                for item in [panel] + targets:
                    uid = get(item, "datasource", "uid")
                    if item is panel and "datasource" not in panel:
                        continue
                    if uid not in allowed:
                        c.fail(f"{where}: panel {title!r} uses data source {uid!r}, not the variable ${{{variables[0]}}}")
                for target in targets:
                    if not target.get("expr"):
                        c.fail(f"{where}: panel {title!r} target {target.get('refId')!r} has no expr")
    c.summary = f"{len(n)} dashboard(s), every panel querying through the data source variable"
