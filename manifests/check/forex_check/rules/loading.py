"""The rules about the loading itself: every set loads whole, kubectl
renders the same objects, and every object is valid against its schema."""

from __future__ import annotations

import json

from ..context import Context
from ..model import Check, rule
from ..schemas import K8S_VERSIONS


@rule("load")
def load(ctx: Context, c: Check) -> None:
    """Every kustomization an operator applies (manifests/cluster, the base,
    each overlay) and the example Secrets load; no object lacks a name or is
    defined twice in one set. Its line counts the objects of each set."""
    counts = ", ".join(f"{s.label}: {len(s.objects)}" for s in ctx.every_set)
    for s in ctx.every_set:
        seen = {}
        for o in s.objects:
            if o.name == "?":
                c.fail(f"{o.ref()}: metadata.name is missing")
            if o.identity() in seen:
                c.fail(f"{o.ref()} is defined twice (also in {seen[o.identity()]})")
            seen[o.identity()] = o.source
    c.summary = counts + ("; " + "; ".join(ctx.notes) if ctx.notes else "")


@rule("kustomize")
def kustomize_agreement(ctx: Context, c: Check) -> None:
    """The built-in loader and `kubectl kustomize` (when kubectl is on PATH)
    produce the same objects, so the rules below judge what kubectl would
    really apply."""
    by_label = {s.label: s for s in ctx.sets}
    compared = 0
    for s in ctx.renders:
        ours = by_label[s.label.removesuffix(" (kubectl kustomize)")]
        mine = {o.identity(): o.doc for o in ours.objects}
        theirs = {o.identity(): o.doc for o in s.objects}
        for ident in sorted(set(mine) - set(theirs), key=str):
            c.fail(f"[{ours.label}] {ident} is loaded by the checker but not rendered by kubectl kustomize")
        for ident in sorted(set(theirs) - set(mine), key=str):
            c.fail(f"[{ours.label}] {ident} is rendered by kubectl kustomize but not loaded by the checker")
        for ident in sorted(set(mine) & set(theirs), key=str):
            if mine[ident] != theirs[ident]:
                c.fail(f"[{ours.label}] {ident} differs between the checker's loader and kubectl kustomize")
        compared += 1
    c.summary = f"{compared} kubectl render(s) match the checker's loader" if compared else "no kubectl render to compare"


def _validate(ctx: Context, c: Check, crd: bool) -> int:
    """Validates every distinct object of the sets whose kind is (crd) or is
    not a custom resource; how many there were."""
    seen = set()
    for s in ctx.every_set:
        for o in s.objects:
            if ctx.schemas.is_crd_kind(o.doc) != crd:
                continue
            key = json.dumps(o.doc, sort_keys=True)
            if key in seen:
                continue  # the same object from another set: reported once
            seen.add(key)
            for problem in ctx.schemas.validate(o.doc):
                c.fail(f"{o.ref()}: {problem}")
    return len(seen)


@rule("schema")
def schema(ctx: Context, c: Check) -> None:
    """Every object of a built-in kind is valid in strict mode (an unknown
    field is an error) for each Kubernetes version of K8S_VERSIONS (K3s
    v1.31, the oldest supported, and v1.33), with kubernetes-validate."""
    n = _validate(ctx, c, crd=False)
    c.summary = f"{n} built-in object(s) valid in strict mode for Kubernetes {', '.join(K8S_VERSIONS)}"


@rule("crd-schema")
def crd_schema(ctx: Context, c: Check) -> None:
    """Every custom resource (SpinApp, SpinAppExecutor, Certificate, Issuer,
    ClusterIssuer, Middleware, ServiceMonitor, PodMonitor, PrometheusRule,
    ScaledObject) is valid against the CRDs vendored in manifests/crds/,
    every object schema closed so that an unknown field is an error (a field
    the reduced cert-manager, Traefik, prometheus-operator and KEDA CRDs
    leave out is reported as unknown: add it there from upstream). Where a
    directory of the full upstream CRDs is given (--upstream-crds), a kind
    whose vendored CRD is reduced is also validated against upstream's,
    closed likewise."""
    n = _validate(ctx, c, crd=True)
    schemas = ctx.schemas
    upstream = (
        f"; {', '.join(sorted(kind for _, kind in schemas.upstream))} also against the upstream CRDs of {schemas.upstream_dir}"
        if schemas.upstream
        else "; no upstream CRDs to compare with"
    )
    c.summary = f"{n} custom resource(s) valid against manifests/crds/ (unknown fields rejected){upstream}"
