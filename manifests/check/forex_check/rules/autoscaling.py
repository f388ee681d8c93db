"""The autoscalers: a HorizontalPodAutoscaler (the base) or a KEDA
ScaledObject (components/autoscaling-keda) scales the Deployment that
spin-operator makes for a SpinApp with enableAutoscaling: true. What they
aim at, that each such SpinApp has exactly one, what they measure, their
minimum against the PodDisruptionBudget, and how slowly they scale down."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ..context import Context
from ..model import Check, Obj, ObjectSet, deployable, get, rule
from ..workloads import pod_labels, selector_matches
from .networking import disruptions_allowed

HPA = "HorizontalPodAutoscaler"
SCALED_OBJECT = "ScaledObject"
AUTOSCALER_KINDS = (HPA, SCALED_OBJECT)

# What spin-operator v0.6.1 makes of a SpinApp: a Deployment of this
# apiVersion and kind, under the SpinApp's name (manifests/executors.md). A
# ScaledObject's scaleTargetRef defaults to the same (KEDA); an HPA's has no
# defaults.
SPINAPP_DEPLOYMENT = ("apps/v1", "Deployment")

# The shortest scale-down stabilization window allowed, in seconds: a dip
# shorter than this must not remove pods and their warm caches.
MIN_SCALE_DOWN_WINDOW = 300

# The HPA metric types that measure a resource of the pods, and the field
# naming it.
HPA_RESOURCE_METRICS = {"Resource": "resource", "ContainerResource": "containerResource"}

# KEDA's triggers that measure a resource of the pods, named as the resource.
KEDA_RESOURCE_TRIGGERS = ("cpu", "memory")

# The metadata KEDA v2.20's prometheus scaler reads (prometheusMetadata in
# pkg/scalers/prometheus_scaler.go), and what it requires. It ignores any
# other key, so a misspelt one is lost silently.
PROMETHEUS_TRIGGER_KEYS = {
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "awsRegion",
    "timeout",
    "identityOwner",
    "authModes",
}
PROMETHEUS_TRIGGER_REQUIRED = ("serverAddress", "query", "threshold")


# -- what an autoscaler says, whichever kind it is -------------------------------


def autoscalers(s: ObjectSet) -> list[Obj]:
    return [o for o in s.objects if o.kind in AUTOSCALER_KINDS]


def scale_target(a: Obj) -> tuple[str | None, str | None, str | None]:
    """(apiVersion, kind, name) of what an autoscaler scales, with KEDA's
    defaults for a ScaledObject."""
    ref = get(a.doc, "spec", "scaleTargetRef", default={}) or {}
    if a.kind == SCALED_OBJECT:
        return ref.get("apiVersion") or SPINAPP_DEPLOYMENT[0], ref.get("kind") or SPINAPP_DEPLOYMENT[1], ref.get("name")
    return ref.get("apiVersion"), ref.get("kind"), ref.get("name")


def scaled_spinapp(s: ObjectSet, a: Obj) -> Obj | None:
    """The SpinApp of the set whose Deployment the autoscaler scales."""
    api_version, kind, name = scale_target(a)
    if (api_version, kind) != SPINAPP_DEPLOYMENT:
        return None
    return s.find("SpinApp", a.namespace, name)


def autoscaled(app: Obj) -> bool:
    return get(app.doc, "spec", "enableAutoscaling") is True


def bounds(a: Obj) -> tuple[str, int, str, int | None]:
    """(field, minimum, field, maximum) of an autoscaler, with the defaults:
    an HPA's minReplicas 1, a ScaledObject's minReplicaCount 0 and
    maxReplicaCount 100."""
    spec = get(a.doc, "spec", default={}) or {}
    if a.kind == SCALED_OBJECT:
        return "minReplicaCount", spec.get("minReplicaCount", 0), "maxReplicaCount", spec.get("maxReplicaCount", 100)
    return "minReplicas", spec.get("minReplicas", 1), "maxReplicas", spec.get("maxReplicas")


def behavior_path(a: Obj) -> tuple[str, ...]:
    """Where an autoscaler keeps the HPA's behavior."""
    if a.kind == SCALED_OBJECT:
        return ("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior")
    return ("spec", "behavior")


def measured_resources(a: Obj) -> Iterator[tuple[str, str]]:
    """(resource, what measures it) of every pod resource an autoscaler
    compares: an HPA's Resource and ContainerResource metrics (CPU when it
    lists none, the HPA's default; autoscaling/v1 measures only CPU), a
    ScaledObject's cpu and memory triggers."""
    if a.kind == SCALED_OBJECT:
        for i, trigger in enumerate(get(a.doc, "spec", "triggers", default=[]) or []):
            if trigger.get("type") in KEDA_RESOURCE_TRIGGERS:
                yield trigger["type"], f"triggers[{i}] ({trigger['type']})"
        return
    if a.doc.get("apiVersion") == "autoscaling/v1":
        yield "cpu", "an autoscaling/v1 HPA"
        return
    metrics = get(a.doc, "spec", "metrics", default=[]) or []
    if not metrics:
        yield "cpu", "spec.metrics (none: the HPA's default, CPU)"
    for i, metric in enumerate(metrics):
        key = HPA_RESOURCE_METRICS.get(metric.get("type"))
        if key and get(metric, key, "name"):
            yield metric[key]["name"], f"metrics[{i}] ({metric['type']})"


def targets(ctx: Context) -> Iterator[tuple[ObjectSet, Obj, Obj]]:
    """(set, autoscaler, the SpinApp it scales) of every autoscaler of the
    sets an operator applies that scales a SpinApp's Deployment."""
    for s in deployable(ctx.sets):
        for a in autoscalers(s):
            app = scaled_spinapp(s, a)
            if app is not None:
                yield s, a, app


# -- the rules ---------------------------------------------------------------------


@rule("autoscaler-target")
def autoscaler_target(ctx: Context, c: Check) -> None:
    """Every HorizontalPodAutoscaler and KEDA ScaledObject scales the
    Deployment spin-operator makes for a SpinApp: its scaleTargetRef is
    apiVersion apps/v1, kind Deployment (a ScaledObject's defaults) and the
    name of a SpinApp of its namespace in the same set, and that SpinApp has
    enableAutoscaling: true. Without it spin-operator sets the Deployment's
    replicas back to the SpinApp's on every reconcile, undoing the autoscaler."""
    n = set()
    for s in deployable(ctx.sets):
        apps = sorted(app.name for app in s.of_kind("SpinApp"))
        for a in autoscalers(s):
            n.add(a.identity())
            api_version, kind, name = scale_target(a)
            if (api_version, kind) != SPINAPP_DEPLOYMENT:
                c.fail(
                    f"{a.ref()}: scaleTargetRef is {kind or '(no kind)'} {name!r} of {api_version or '(no apiVersion)'}; "
                    f"the edge's pods belong to the {SPINAPP_DEPLOYMENT[0]} {SPINAPP_DEPLOYMENT[1]} spin-operator makes "
                    f"for a SpinApp, under the SpinApp's name",
                    obj=a,
                )
                continue
            app = s.find("SpinApp", a.namespace, name)
            if app is None:
                c.fail(
                    f"{a.ref()}: scaleTargetRef names Deployment {name!r}, which no SpinApp of namespace {a.namespace} "
                    f"makes (SpinApps: {', '.join(apps) or 'none'}): the autoscaler would scale nothing",
                    obj=a,
                )
            elif not autoscaled(app):
                c.fail(
                    f"{a.ref()}: scales the Deployment of {app.ref()}, which does not set enableAutoscaling: true: "
                    f"spin-operator would set its replicas back to the SpinApp's on every reconcile",
                    obj=a,
                )
    c.summary = f"{len(n)} autoscaler(s), each scaling the {SPINAPP_DEPLOYMENT[1]} spin-operator makes for an autoscaled SpinApp"


@rule("autoscaler-count")
def autoscaler_count(ctx: Context, c: Check) -> None:
    """Every SpinApp with enableAutoscaling: true is scaled by exactly one
    autoscaler of its set. With none its Deployment stays at one pod (the
    operator leaves the count alone, Kubernetes' default is 1); with two (an
    HPA and a ScaledObject, for which KEDA makes an HPA of its own) each sets
    the count, and KEDA's webhook refuses the ScaledObject.
    components/autoscaling-keda therefore removes the base's HPA."""
    kinds, n_sets = set(), 0
    for s in deployable(ctx.sets):
        apps = [app for app in s.of_kind("SpinApp") if autoscaled(app)]
        n_sets += bool(apps)
        for app in apps:
            mine = [a for a in autoscalers(s) if scaled_spinapp(s, a) is app]
            kinds |= {a.kind for a in mine}
            if not mine:
                c.fail(
                    f"[{s.label}] {app.ref()}: enableAutoscaling: true, but no HorizontalPodAutoscaler or ScaledObject "
                    f"scales its Deployment {app.name!r}: it would stay at one pod",
                    obj=app,
                )
            elif len(mine) > 1:
                c.fail(
                    f"[{s.label}] {app.ref()}: scaled by {len(mine)} autoscalers ({', '.join(a.ref() for a in mine)}), "
                    f"which would each set its Deployment's replica count; keep one (components/autoscaling-keda "
                    f"removes the base's HPA)",
                    obj=app,
                )
    c.summary = f"in {n_sets} set(s) every autoscaled SpinApp has exactly one autoscaler ({', '.join(sorted(kinds)) or 'none'})"


@rule("autoscaler-metrics")
def autoscaler_metrics(ctx: Context, c: Check) -> None:
    """What an autoscaler measures can be measured. The SpinApp it scales
    requests (resources.requests, which spin-operator gives the container)
    every resource it compares: an HPA's Resource and ContainerResource
    metrics (CPU when it lists none), a ScaledObject's cpu and memory
    triggers; utilisation is a share of the request, and the pods it adds
    need their share of a node reserved. A ScaledObject's prometheus trigger
    gives serverAddress (an http(s) URL), query and a positive numeric
    threshold, and no metadata key KEDA's prometheus scaler does not read
    (PROMETHEUS_TRIGGER_KEYS: it ignores a misspelt one)."""
    measured, n_prometheus = set(), 0
    for _, a, app in targets(ctx):
        requests = get(app.doc, "spec", "resources", "requests", default={}) or {}
        for resource, what in measured_resources(a):
            measured.add(resource)
            if resource not in requests:
                c.fail(
                    f"{a.ref()}: {what} measures {resource}, but {app.ref()} sets no resources.requests.{resource}: "
                    f"the HPA cannot compute its utilisation, and the pods it adds would reserve none",
                    obj=a,
                )
        if a.kind != SCALED_OBJECT:
            continue
        for i, trigger in enumerate(get(a.doc, "spec", "triggers", default=[]) or []):
            if trigger.get("type") != "prometheus":
                continue
            n_prometheus += 1
            where = f"{a.ref()}: triggers[{i}] (prometheus)"
            metadata = trigger.get("metadata") or {}
            for key in PROMETHEUS_TRIGGER_REQUIRED:
                if not metadata.get(key):
                    c.fail(f"{where}: metadata.{key} is missing; KEDA refuses the trigger", obj=a)
            for key in sorted(set(metadata) - PROMETHEUS_TRIGGER_KEYS):
                close = difflib.get_close_matches(key, sorted(PROMETHEUS_TRIGGER_KEYS), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                c.fail(f"{where}: metadata.{key} is not a setting of KEDA's prometheus scaler, which ignores it{hint}", obj=a)
            for key in ("threshold", "activationThreshold"):
                if key not in metadata:
                    continue
                try:
                    value = float(str(metadata[key]))
                except ValueError:
                    value = None
                if value is None or (key == "threshold" and not value > 0):
                    c.fail(f"{where}: metadata.{key} {metadata[key]!r} is not a {'positive ' if key == 'threshold' else ''}number", obj=a)
            address = str(metadata.get("serverAddress") or "")
            if address and not address.startswith(("http://", "https://")):
                c.fail(f"{where}: metadata.serverAddress {address!r} is not an http:// or https:// URL of Prometheus", obj=a)
    c.summary = (
        f"the SpinApps request the {', '.join(sorted(measured)) or 'no resource'} their autoscalers measure; "
        f"{n_prometheus} prometheus trigger(s) complete"
    )


@rule("autoscaler-min-replicas")
def autoscaler_min_replicas(ctx: Context, c: Check) -> None:
    """An autoscaler's minimum lets a drain go on: at minReplicas (an HPA's;
    1 when unset) or minReplicaCount (a ScaledObject's; 0 when unset) pods,
    every PodDisruptionBudget over the SpinApp's pods still lets one be
    evicted. So with minAvailable: N the minimum is at least N + 1, and a
    budget of maxUnavailable: 0 (which blocks every drain) is refused
    outright. The minimum is at most the maximum (maxReplicas;
    maxReplicaCount, 100 when unset)."""
    n = set()
    for s, a, app in targets(ctx):
        n.add(a.identity())
        lo_field, lo, hi_field, hi = bounds(a)
        if not isinstance(lo, int) or (hi is not None and not isinstance(hi, int)):
            continue  # the schema rules report it
        if hi is not None and lo > hi:
            c.fail(f"{a.ref()}: {lo_field} {lo} is above {hi_field} {hi}", obj=a)
        labels = pod_labels(app) or {}
        for pdb in s.of_kind("PodDisruptionBudget"):
            spec = get(pdb.doc, "spec", default={}) or {}
            if pdb.namespace != app.namespace or not selector_matches(spec.get("selector") or {}, labels):
                continue
            if "maxUnavailable" in spec and str(spec["maxUnavailable"]).rstrip("%") == "0":
                c.fail(
                    f"{pdb.ref()}: maxUnavailable: {spec['maxUnavailable']} over the pods of {app.ref()}, which "
                    f"{a.ref()} scales: it refuses every eviction, so no drain ever finishes; give minAvailable "
                    f"below the autoscaler's {lo_field} instead",
                    obj=pdb,
                )
                continue
            allowed = disruptions_allowed(spec, lo)
            if allowed is not None and allowed < 1:
                budget = ", ".join(f"{k}: {spec[k]}" for k in ("minAvailable", "maxUnavailable") if k in spec)
                need = f" (at least {int(spec['minAvailable']) + 1})" if isinstance(spec.get("minAvailable"), int) else ""
                c.fail(
                    f"{a.ref()}: {lo_field} {lo}: at that minimum {pdb.ref()} with {budget} lets no pod go, so a drain "
                    f"would wait until load adds one; raise {lo_field}{need}",
                    obj=a,
                )
    c.summary = f"{len(n)} autoscaler(s) whose minimum lets the PodDisruptionBudget evict a pod, within their maximum"


@rule("autoscaler-scale-down")
def autoscaler_scale_down(ctx: Context, c: Check) -> None:
    """Every autoscaler waits before it removes pods: its
    behavior.scaleDown.stabilizationWindowSeconds (an HPA's spec.behavior, a
    ScaledObject's spec.advanced.horizontalPodAutoscalerConfig.behavior) is
    written out and at least MIN_SCALE_DOWN_WINDOW (300) seconds, so that a
    short dip in load does not throw away pods, and their warm caches, that a
    returning peak needs again."""
    windows = {}
    for s in deployable(ctx.sets):
        for a in autoscalers(s):
            path = behavior_path(a) + ("scaleDown", "stabilizationWindowSeconds")
            window = get(a.doc, *path)
            where = f"{a.ref()}: {'.'.join(path)}"
            if window is None:
                c.fail(
                    f"{where} is not set; give it, at least {MIN_SCALE_DOWN_WINDOW} s, so that a short dip does not "
                    f"remove pods and their warm caches",
                    obj=a,
                )
            elif not isinstance(window, int) or window < MIN_SCALE_DOWN_WINDOW:
                c.fail(
                    f"{where} is {window!r}, under {MIN_SCALE_DOWN_WINDOW} s: a short dip would remove pods and their "
                    f"warm caches",
                    obj=a,
                )
            else:
                windows[a.identity()] = window
    shortest = f", the shortest {min(windows.values())} s" if windows else ""
    c.summary = f"{len(windows)} autoscaler(s) wait at least {MIN_SCALE_DOWN_WINDOW} s before scaling down{shortest}"
