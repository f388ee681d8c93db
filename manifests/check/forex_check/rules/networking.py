"""How the objects find each other: the paths probes and the Ingress use,
the selectors of NetworkPolicies, Services and PodDisruptionBudgets, the
budgets themselves, and the ConfigMap, Secret and Service references."""

from __future__ import annotations

import json
import math

from ..context import Context
from ..model import Check, containers_of, deployable, get, pod_spec, rule
from ..workloads import (
    example_secret,
    example_secret_keys,
    example_secrets,
    pods,
    replicas_of,
    selector_matches,
    selector_text,
)

# The paths the edge serves (docs/api.md), plus Spin's own health endpoint,
# which Spin answers before routing. True marks a path a probe may use (200
# without a query string when healthy).
SERVED_PATHS = {
    "/rates": False,
    "/healthz": True,
    "/readyz": True,
    "/.well-known/spin/health": True,
}


@rule("paths")
def paths(ctx: Context, c: Check) -> None:
    """Probes and Ingress routes use paths the edge serves (/rates, /healthz,
    /readyz, /.well-known/spin/health: SERVED_PATHS, from docs/api.md);
    probes only the health paths among them."""
    health = sorted(p for p, probe in SERVED_PATHS.items() if probe)
    n = set()
    for s in ctx.sets:
        apps = {(a.namespace, a.name) for a in s.of_kind("SpinApp")}
        for app in s.of_kind("SpinApp"):
            for probe in ("readiness", "liveness"):
                path = get(app.doc, "spec", "checks", probe, "httpGet", "path")
                if path is None:
                    continue
                n.add((app.identity(), probe, path))
                if not SERVED_PATHS.get(path):
                    c.fail(
                        f"{app.ref()}: checks.{probe} path {path!r} is not a health path the edge serves "
                        f"({', '.join(health)}); the probe would fail on every pod"
                    )
        for ing in s.of_kind("Ingress"):
            for ingress_rule in get(ing.doc, "spec", "rules", default=[]) or []:
                for p in get(ingress_rule, "http", "paths", default=[]) or []:
                    if (ing.namespace, get(p, "backend", "service", "name")) not in apps:
                        continue
                    path, kind = p.get("path", "/"), p.get("pathType")
                    n.add((ing.identity(), path))
                    if kind == "Exact":
                        served = path in SERVED_PATHS
                    else:
                        served = path == "/" or any(sp == path.rstrip("/") or sp.startswith(path.rstrip("/") + "/") for sp in SERVED_PATHS)
                    if not served:
                        c.fail(f"{ing.ref()}: path {path!r} ({kind}) routes to nothing the edge serves ({', '.join(SERVED_PATHS)})")
    c.summary = f"{len(n)} probe/Ingress path(s) served by the edge"


@rule("selectors")
def selectors(ctx: Context, c: Check) -> None:
    """Every selector picks pods the manifests make (cert-manager's HTTP-01
    solver pods included): a NetworkPolicy's podSelector and its
    same-namespace peers, a Service's selector, a PodDisruptionBudget's
    selector. One that selects nothing protects or serves nothing, silently."""
    n = set()
    for s in deployable(ctx.sets):
        made = pods(s, ctx.sets)

        def need(o, what, selector):
            n.add((o.identity(), what))
            if not any(p.namespace == o.namespace and selector_matches(selector, ls) for p, ls in made):
                c.fail(f"{o.ref()}: {what} {selector_text(selector)} selects no pod the manifests make in namespace {o.namespace}")

        for np in s.of_kind("NetworkPolicy"):
            selector = get(np.doc, "spec", "podSelector", default={}) or {}
            if selector:
                need(np, "spec.podSelector", selector)
            for direction, peers in (("ingress", "from"), ("egress", "to")):
                for i, policy_rule in enumerate(get(np.doc, "spec", direction, default=[]) or []):
                    for j, peer in enumerate(policy_rule.get(peers) or []):
                        if peer.get("podSelector") and "namespaceSelector" not in peer:
                            need(np, f"spec.{direction}[{i}].{peers}[{j}].podSelector", peer["podSelector"])
        for svc in s.of_kind("Service"):
            selector = get(svc.doc, "spec", "selector")
            if selector:
                need(svc, "spec.selector", {"matchLabels": selector})
        for pdb in s.of_kind("PodDisruptionBudget"):
            need(pdb, "spec.selector", get(pdb.doc, "spec", "selector", default={}) or {})
    c.summary = f"{len(n)} selector(s) each pick pods of the manifests"


def disruptions_allowed(spec: dict, replicas: int) -> int | None:
    """How many of `replicas` Ready pods a budget's spec lets go (None: neither field)."""

    def amount(value, up: bool) -> int:
        if isinstance(value, str) and value.endswith("%"):
            share = replicas * int(value[:-1]) / 100
            return math.ceil(share) if up else math.floor(share)
        return int(value)

    if "minAvailable" in spec:
        return replicas - amount(spec["minAvailable"], up=True)
    if "maxUnavailable" in spec:
        return amount(spec["maxUnavailable"], up=True)
    return None


@rule("disruption")
def disruption(ctx: Context, c: Check) -> None:
    """A drain never takes every edge pod at once, and never blocks
    for good. Every SpinApp has a PodDisruptionBudget; each budget covers the
    pods of one workload, which no other budget covers (the eviction API
    refuses pods under two); a budget of a workload with several replicas lets
    at least one go. A single-replica workload's budget may refuse all
    evictions: that is its only meaningful form (see disruptionbudgets.yaml).
    An autoscaled SpinApp has no fixed count: autoscaler-min-replicas holds
    its budget to the autoscaler's minimum."""
    n = set()
    for s in deployable(ctx.sets):
        made = pods(s, ctx.sets)
        covered: dict[tuple, list] = {}
        for pdb in s.of_kind("PodDisruptionBudget"):
            selector = get(pdb.doc, "spec", "selector", default={}) or {}
            workloads = [o for o, ls in made if o.namespace == pdb.namespace and selector_matches(selector, ls)]
            for w in workloads:
                covered.setdefault(w.identity(), []).append(pdb)
            if len(workloads) > 1:
                c.fail(f"{pdb.ref()}: selects the pods of several workloads ({', '.join(w.ref() for w in workloads)}); give each its own")
            if len(workloads) != 1:
                continue
            w = workloads[0]
            replicas = replicas_of(w)
            allowed = None if replicas is None else disruptions_allowed(get(pdb.doc, "spec", default={}) or {}, replicas)
            n.add(pdb.identity())
            if replicas is not None and replicas > 1 and allowed is not None and allowed < 1:
                c.fail(
                    f"{pdb.ref()}: allows no disruption of {w.ref()}'s {replicas} replicas, so a drain never "
                    f"finishes; let at least one go (e.g. minAvailable: {replicas - 1})"
                )
        for o, _ in made:
            budgets = covered.get(o.identity(), [])
            if len(budgets) > 1:
                c.fail(f"{o.ref()}: its pods are under several PodDisruptionBudgets ({', '.join(b.name for b in budgets)}); the eviction API refuses to evict them")
            if o.kind == "SpinApp" and not budgets:
                c.fail(f"{o.ref()}: no PodDisruptionBudget selects its pods; a drain may evict every replica at once")
    c.summary = f"{len(n)} PodDisruptionBudget(s), one per workload; every SpinApp has one, none blocks a multi-replica drain"


@rule("references")
def references(ctx: Context, c: Check) -> None:
    """Every ConfigMap key a workload or SpinApp reads exists in the same
    set; every Secret key it reads is described by secrets.example.yaml;
    every Ingress backend is a Service of the set with that port (or the
    Service spin-operator makes for a SpinApp, on port 80)."""
    n = set()
    for s in deployable(ctx.sets):
        examples = example_secrets(ctx.sets, s)
        for o in s.objects:
            ns = o.namespace or "default"
            refs = []
            spec = pod_spec(o)
            if spec:
                for _, cont in containers_of(spec):
                    refs += [e.get("valueFrom") or {} for e in cont.get("env") or []]
                    refs += [{"configMapRef": f["configMapRef"]} for f in cont.get("envFrom") or [] if "configMapRef" in f]
                    refs += [{"secretRef": f["secretRef"]} for f in cont.get("envFrom") or [] if "secretRef" in f]
            if o.kind == "SpinApp":
                refs += [v.get("valueFrom") or {} for v in get(o.doc, "spec", "variables", default=[]) or []]
                for store in get(o.doc, "spec", "runtimeConfig", "keyValueStores", default=[]) or []:
                    refs += [v.get("valueFrom") or {} for v in store.get("options") or []]
            for ref in refs:
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    n.add((o.identity(), json.dumps(r, sort_keys=True)))
                    cm = s.find("ConfigMap", ns, r.get("name"))
                    if cm is None:
                        c.fail(f"{o.ref()}: reads ConfigMap {r.get('name')!r}, which is not in the manifests")
                    elif r.get("key") not in (cm.doc.get("data") or {}):
                        c.fail(f"{o.ref()}: reads key {r.get('key')!r} of ConfigMap {r.get('name')!r}, which it lacks")
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    n.add((o.identity(), json.dumps(r, sort_keys=True)))
                    ex = example_secret(examples, ns, r.get("name"))
                    if ex is None:
                        c.fail(f"{o.ref()}: reads Secret {r.get('name')!r}, which secrets.example.yaml does not describe")
                    elif r.get("key") not in example_secret_keys(ex):
                        c.fail(f"{o.ref()}: reads key {r.get('key')!r} of Secret {r.get('name')!r}, which the example lacks")
            if o.kind == "Ingress":
                for ingress_rule in get(o.doc, "spec", "rules", default=[]) or []:
                    for p in get(ingress_rule, "http", "paths", default=[]) or []:
                        svc = get(p, "backend", "service") or {}
                        n.add((o.identity(), json.dumps(svc, sort_keys=True)))
                        port = get(svc, "port", "number")
                        service = s.find("Service", ns, svc.get("name"))
                        if service is not None:
                            ports = [pp.get("port") for pp in get(service.doc, "spec", "ports", default=[]) or []]
                            if port not in ports:
                                c.fail(f"{o.ref()}: Service {svc.get('name')!r} has no port {port}")
                        elif s.find("SpinApp", ns, svc.get("name")) is not None:
                            if port != 80:
                                c.fail(f"{o.ref()}: spin-operator's Service {svc.get('name')!r} listens on 80, not {port}")
                        else:
                            c.fail(f"{o.ref()}: backend Service {svc.get('name')!r} is neither in the manifests nor made for a SpinApp")
    c.summary = f"{len(n)} ConfigMap/Secret/Service reference(s) resolve"
