"""Prometheus can scrape what the ServiceMonitors and PodMonitors name,
and kube-prometheus-stack picks them up."""

from __future__ import annotations

import re

from ...context import Context
from ...model import Check, Obj, ObjectSet, deployable, get, rule
from ...workloads import container_ports, pods, selector_matches, selector_text, service_selects

# kube-prometheus-stack's Prometheus: its pods' labels, its namespace (as the
# NetworkPolicies name it), and the label by which it selects ServiceMonitors,
# PodMonitors and PrometheusRules (`release: <Helm release>`).
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}
PROMETHEUS_NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS_SELECTOR_LABEL = "release"
PROMETHEUS_OPERATOR_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def monitor_namespaces(s: ObjectSet, monitor: Obj) -> set[str | None]:
    """The namespaces a ServiceMonitor/PodMonitor looks in (default: its own)."""
    selector = get(monitor.doc, "spec", "namespaceSelector", default={}) or {}
    if selector.get("any"):
        return {o.namespace for o in s.objects}
    return set(selector.get("matchNames") or [monitor.namespace])


def monitored_services(s: ObjectSet, monitor: Obj) -> list[Obj]:
    namespaces = monitor_namespaces(s, monitor)
    selector = get(monitor.doc, "spec", "selector", default={}) or {}
    return [
        svc
        for svc in s.of_kind("Service")
        if svc.namespace in namespaces and selector_matches(selector, get(svc.doc, "metadata", "labels", default={}) or {})
    ]


def monitored_pods(s: ObjectSet, sets: list[ObjectSet], monitor: Obj) -> list[tuple[Obj, dict]]:
    namespaces = monitor_namespaces(s, monitor)
    selector = get(monitor.doc, "spec", "selector", default={}) or {}
    return [(o, labels) for o, labels in pods(s, sets) if o.namespace in namespaces and selector_matches(selector, labels)]


def _peer_admits(peer: dict, own_namespace: str | None, namespace_labels: dict, namespace: str, pod_labels: dict) -> bool:
    if "ipBlock" in peer:
        return False  # pod addresses are not known here
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"] or {}, namespace_labels):
            return False
    elif namespace != own_namespace:
        return False
    return selector_matches(peer.get("podSelector") or {}, pod_labels)


def ingress_allowed(s: ObjectSet, namespace: str | None, labels: dict, port: int | None, port_name: str | None) -> bool:
    """Whether the NetworkPolicies of the set let Prometheus (namespace
    `monitoring`, PROMETHEUS_POD_LABELS) open TCP `port` of a pod."""
    policies = [
        np
        for np in s.of_kind("NetworkPolicy")
        if np.namespace == namespace
        and "Ingress" in (get(np.doc, "spec", "policyTypes") or ["Ingress"])
        and selector_matches(get(np.doc, "spec", "podSelector", default={}) or {}, labels)
    ]
    if not policies:
        return True  # nothing isolates the pod
    prometheus_ns = PROMETHEUS_NAMESPACE_LABELS["kubernetes.io/metadata.name"]
    for np in policies:
        for policy_rule in get(np.doc, "spec", "ingress", default=[]) or []:
            peers = policy_rule.get("from") or []
            if peers and not any(_peer_admits(p, namespace, PROMETHEUS_NAMESPACE_LABELS, prometheus_ns, PROMETHEUS_POD_LABELS) for p in peers):
                continue
            for p in policy_rule.get("ports") or [{}]:
                if p.get("protocol", "TCP") != "TCP":
                    continue
                want = p.get("port")
                if want is None or want == port_name or (port is not None and isinstance(want, int) and want <= port <= p.get("endPort", want)):
                    return True
    return False


def prometheus_seconds(text: str) -> float | None:
    """A Prometheus duration (`15s`, `1m30s`, `500ms`) in seconds; None if it is none."""
    units = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+)(ms|[ywdhms])", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(int(n) * units[u] for n, u in parts)


@rule("scrape")
def scrape_targets(ctx: Context, c: Check) -> None:
    """Prometheus can scrape what the ServiceMonitors and PodMonitors name:
    - a ServiceMonitor selects a Service of the manifests (in its
      namespaceSelector's namespaces), each endpoint's `port` is a port name
      of those Services (or its targetPort one of theirs), and a named
      targetPort is a container port of the pods; a PodMonitor selects pods
      and names a container port of theirs; a scrapeTimeout is not above the
      interval (Prometheus refuses such a configuration);
    - the NetworkPolicies let kube-prometheus-stack's Prometheus (namespace
      monitoring, app.kubernetes.io/name: prometheus) reach that port;
    - every ServiceMonitor, PodMonitor and PrometheusRule carries the
      `release` label kube-prometheus-stack selects them by, the same value
      on all of them."""
    n = set()
    for s in deployable(ctx.sets):
        made = pods(s, ctx.sets)
        releases: dict[str, list[str]] = {}
        for kind in PROMETHEUS_OPERATOR_KINDS:
            for o in s.of_kind(kind):
                value = (get(o.doc, "metadata", "labels", default={}) or {}).get(PROMETHEUS_SELECTOR_LABEL)
                if not value:
                    c.fail(
                        f"{o.ref()}: has no label {PROMETHEUS_SELECTOR_LABEL}: kube-prometheus-stack's Prometheus selects "
                        f"{', '.join(PROMETHEUS_OPERATOR_KINDS)} by release: <its Helm release> and would ignore it"
                    )
                else:
                    releases.setdefault(value, []).append(o.name)
        if len(releases) > 1:
            listed = "; ".join(f"{v}: {', '.join(sorted(names))}" for v, names in sorted(releases.items()))
            c.fail(f"[{s.label}] the {PROMETHEUS_SELECTOR_LABEL} labels differ ({listed}); one Prometheus selects one value")

        def reachable(monitor: Obj, what: str, maker: Obj, labels: dict, target) -> None:
            if isinstance(target, str):
                port = next((p for p in container_ports(maker) if p.get("name") == target), None)
                if port is None:
                    c.fail(f"{monitor.ref()}: {what}: port {target!r} is no container port of {maker.ref()}")
                    return
                number, name = port.get("containerPort"), target
            else:
                number = target
                name = next((p.get("name") for p in container_ports(maker) if p.get("containerPort") == target), None)
            if not ingress_allowed(s, maker.namespace, labels, number, name):
                c.fail(
                    f"{monitor.ref()}: {what}: no NetworkPolicy lets Prometheus (namespace monitoring, app.kubernetes.io/name: "
                    f"prometheus) reach port {number} of {maker.ref()}; every scrape would time out"
                )

        for monitor in s.of_kind("ServiceMonitor") + s.of_kind("PodMonitor"):
            for i, ep in enumerate(get(monitor.doc, "spec", "endpoints" if monitor.kind == "ServiceMonitor" else "podMetricsEndpoints", default=[]) or []):
                interval, timeout = prometheus_seconds(ep.get("interval", "")), prometheus_seconds(ep.get("scrapeTimeout", ""))
                if interval is not None and timeout is not None and timeout > interval:
                    c.fail(f"{monitor.ref()}: endpoint {i}: scrapeTimeout {ep['scrapeTimeout']} is above its interval {ep['interval']}")
        for sm in s.of_kind("ServiceMonitor"):
            services = monitored_services(s, sm)
            selector = get(sm.doc, "spec", "selector", default={}) or {}
            if not services:
                c.fail(f"{sm.ref()}: selector {selector_text(selector)} selects no Service of the manifests in {', '.join(sorted(map(str, monitor_namespaces(s, sm))))}")
                continue
            for i, ep in enumerate(get(sm.doc, "spec", "endpoints", default=[]) or []):
                for svc in services:
                    n.add((sm.identity(), i, svc.identity()))
                    ports = get(svc.doc, "spec", "ports", default=[]) or []
                    if "port" in ep:
                        chosen = [p for p in ports if p.get("name") == ep["port"]]
                    else:
                        chosen = [p for p in ports if p.get("targetPort", p.get("port")) == ep.get("targetPort")]
                    if not chosen:
                        names = ", ".join(str(p.get("name")) for p in ports)
                        c.fail(f"{sm.ref()}: endpoints[{i}] port {ep.get('port', ep.get('targetPort'))!r} is no port of {svc.ref()} ({names})")
                        continue
                    target = chosen[0].get("targetPort", chosen[0].get("port"))
                    selected = [(o, ls) for o, ls in made if service_selects(svc, o.namespace, ls)]
                    if not selected:
                        c.fail(f"{sm.ref()}: endpoints[{i}] via {svc.ref()}: the Service selects no pod the manifests make")
                    for maker, labels in selected:
                        reachable(sm, f"endpoints[{i}] via {svc.kind} {svc.name}", maker, labels, target)
        for pm in s.of_kind("PodMonitor"):
            selected = monitored_pods(s, ctx.sets, pm)
            if not selected:
                selector = get(pm.doc, "spec", "selector", default={}) or {}
                c.fail(f"{pm.ref()}: selector {selector_text(selector)} selects no pod the manifests make")
                continue
            for i, ep in enumerate(get(pm.doc, "spec", "podMetricsEndpoints", default=[]) or []):
                target = ep.get("port", ep.get("portNumber", ep.get("targetPort")))
                for maker, labels in selected:
                    n.add((pm.identity(), i, maker.identity()))
                    reachable(pm, f"podMetricsEndpoints[{i}]", maker, labels, target)
    c.summary = f"{len(n)} scrape endpoint(s) select a Service/pod with that port, reachable by Prometheus; one {PROMETHEUS_SELECTOR_LABEL} label"
