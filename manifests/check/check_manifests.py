#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in manifests/.

Run from the repository root:

    python3 manifests/check/check_manifests.py [--root DIR] [--no-kubectl]

It loads the base (manifests/kustomization.yaml), every overlay
(manifests/overlays/*/kustomization.yaml) and the example Secrets
(manifests/secrets.example.yaml), and, when kubectl is on PATH, also the
output of `kubectl kustomize` for the base and each overlay. Then:

- built-in kinds are validated with kubernetes-validate in strict mode
  (unknown fields are errors) against each Kubernetes version in K8S_VERSIONS;
- SpinApp and SpinAppExecutor are validated against the CRDs vendored in
  manifests/crds/, with every object schema closed so unknown fields are errors;
- the project's own rules hold (see the check_* functions: freshness,
  executor, replicas, variables, outbound, secrets, hardening, references,
  image).

Each check prints one line; failures are listed under it. The exit code is 0
only when every check passes.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import importlib_resources
import jsonschema
import kubernetes_validate
import referencing
import yaml

# K3s v1.31 is the oldest cluster we support; 1.33 is the one the README
# installs. Manifests must be valid for both.
K8S_VERSIONS = ("1.31", "1.33")

# Rates must never be served older than this (the service's promise), so the refresher
# must run more often than this.
MAX_RATE_AGE_S = 300

# Kinds kustomize's namespace transformer leaves alone (cluster-scoped).
CLUSTER_SCOPED = {
    "Namespace",
    "RuntimeClass",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
}

# The kustomization fields the built-in loader understands. Anything else is
# refused rather than silently ignored (kubectl would apply it; we would not).
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources"}

# Marks an object of secrets.example.yaml as an example (label and annotation).
EXAMPLE_MARK = "forex.example/example-only"

# Workload kinds and where their pod spec lives.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


class LoadError(Exception):
    """The manifests could not be read at all; no check can run."""


@dataclass
class Obj:
    doc: dict
    source: str  # file (relative to --root) the object came from

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", "?"))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", "?"))

    @property
    def namespace(self) -> str | None:
        return (self.doc.get("metadata") or {}).get("namespace")

    def ref(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name} ({self.source})"

    def identity(self) -> tuple:
        return (self.doc.get("apiVersion"), self.kind, self.namespace, self.name)


@dataclass
class ObjectSet:
    """One thing `kubectl apply` would be given: the base or an overlay."""

    label: str
    objects: list[Obj]
    deployable: bool = True  # False for the example Secrets
    rendered: bool = False  # True for kubectl kustomize output

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.kind == kind]

    def find(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        for o in self.objects:
            if o.kind == kind and o.name == name and (o.namespace or "default") == (namespace or "default"):
                return o
        return None


@dataclass
class Check:
    name: str
    failures: list[str] = field(default_factory=list)
    summary: str = ""

    def fail(self, message: str) -> None:
        # The base's objects are also in every overlay: report each problem once.
        if message not in self.failures:
            self.failures.append(message)


# --------------------------------------------------------------------------
# Loading


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def load_yaml_docs(path: Path, root: Path) -> list[Obj]:
    rel = _rel(path, root)
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except FileNotFoundError:
        raise LoadError(f"{rel}: file not found")
    except yaml.YAMLError as e:
        raise LoadError(f"{rel}: not valid YAML: {e}")
    objs = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise LoadError(f"{rel}: document {i + 1} is not a Kubernetes object (no kind/apiVersion)")
        objs.append(Obj(doc, rel))
    return objs


def load_kustomization(directory: Path, root: Path) -> list[Obj]:
    """A small subset of kustomize: resources (files and directories),
    namespace, and labels without selectors or templates."""
    kfile = directory / "kustomization.yaml"
    rel = _rel(kfile, root)
    try:
        k = yaml.safe_load(kfile.read_text()) or {}
    except FileNotFoundError:
        raise LoadError(f"{rel}: file not found")
    except yaml.YAMLError as e:
        raise LoadError(f"{rel}: not valid YAML: {e}")
    unknown = set(k) - KUSTOMIZATION_FIELDS
    if unknown:
        raise LoadError(
            f"{rel}: fields {sorted(unknown)} are not understood by this checker; "
            f"extend load_kustomization() or use only {sorted(KUSTOMIZATION_FIELDS)}"
        )
    objs: list[Obj] = []
    for entry in k.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            objs += load_kustomization(target, root)
        elif target.is_file():
            objs += load_yaml_docs(target, root)
        else:
            raise LoadError(f"{rel}: resource {entry!r} does not exist")

    namespace = k.get("namespace")
    for o in objs:
        meta = o.doc.setdefault("metadata", {})
        if namespace and o.kind not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        for group in k.get("labels") or []:
            if group.get("includeSelectors") or group.get("includeTemplates"):
                raise LoadError(f"{rel}: labels with includeSelectors/includeTemplates are not supported by this checker")
            meta.setdefault("labels", {}).update(group.get("pairs") or {})
    return objs


def kubectl_kustomize(directory: Path, root: Path) -> list[Obj]:
    rel = _rel(directory, root)
    try:
        out = subprocess.run(
            ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        raise LoadError(f"kubectl kustomize {rel}: timed out")
    if out.returncode != 0:
        raise LoadError(f"kubectl kustomize {rel} failed: {out.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    return [Obj(d, f"kubectl kustomize {rel}") for d in docs]


def load_sets(root: Path, use_kubectl: bool) -> tuple[list[ObjectSet], list[str]]:
    manifests = root / "manifests"
    notes = []
    sets = [ObjectSet("base", load_kustomization(manifests, root))]
    overlay_dirs = sorted(p.parent for p in (manifests / "overlays").glob("*/kustomization.yaml"))
    for d in overlay_dirs:
        sets.append(ObjectSet(f"overlay {d.name}", load_kustomization(d, root)))
    sets.append(ObjectSet("examples", load_yaml_docs(manifests / "secrets.example.yaml", root), deployable=False))

    if not use_kubectl:
        notes.append("kubectl kustomize: skipped (--no-kubectl)")
    elif shutil.which("kubectl") is None:
        notes.append("kubectl kustomize: skipped (kubectl is not on PATH; optional)")
    else:
        for label, d in [("base", manifests)] + [(f"overlay {d.name}", d) for d in overlay_dirs]:
            sets.append(ObjectSet(f"{label} (kubectl kustomize)", kubectl_kustomize(d, root), rendered=True))
    return sets, notes


# --------------------------------------------------------------------------
# Schemas


def close_schema(schema):
    """Reject unknown fields: every object schema that lists its properties
    and does not say otherwise gets additionalProperties: false."""
    if isinstance(schema, list):
        for s in schema:
            close_schema(s)
        return
    if not isinstance(schema, dict):
        return
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    for key in ("properties", "patternProperties"):
        for sub in (schema.get(key) or {}).values():
            close_schema(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), (dict, list)):
            close_schema(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        close_schema(schema.get(key) or [])


class Schemas:
    """kubernetes-validate's strict schemas for built-in kinds, the vendored
    CRDs for SpinKube kinds."""

    DEFS_ID = "https://kubernetes.io/api/_definitions.json"
    OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

    def __init__(self, crd_dir: Path, root: Path):
        # ObjectMeta for CRD objects comes from the same strict schemas as the
        # built-in kinds, so a typo under metadata is caught there too.
        defs_path = (
            importlib_resources.files("kubernetes_validate")
            / "kubernetes-json-schema"
            / f"v{K8S_VERSIONS[0]}.0-local-strict"
            / "_definitions.json"
        )
        defs = json.loads(defs_path.read_text())
        self.registry = referencing.Registry().with_resource(
            self.DEFS_ID, referencing.Resource.from_contents(defs)
        )
        self.crds: dict[tuple[str, str], dict] = {}  # (apiVersion, kind) -> closed schema
        self.crd_groups: set[str] = set()
        crd_files = sorted(crd_dir.glob("*.yaml"))
        if not crd_files:
            raise LoadError(f"{_rel(crd_dir, root)}: no CRDs found")
        for path in crd_files:
            crd = yaml.safe_load(path.read_text())
            spec = crd["spec"]
            self.crd_groups.add(spec["group"])
            for version in spec["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                close_schema(schema)
                schema["properties"]["metadata"] = {"$ref": f"{self.DEFS_ID}#/$defs/{self.OBJECT_META}"}
                schema.setdefault("required", [])
                for key in ("apiVersion", "kind", "metadata"):
                    if key not in schema["required"]:
                        schema["required"].append(key)
                schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version['name']}"}
                schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
                self.crds[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
        self._cache: dict[str, list[str]] = {}

    def is_crd_kind(self, doc: dict) -> bool:
        group = str(doc.get("apiVersion", "")).split("/")[0]
        return group in self.crd_groups

    def validate(self, doc: dict) -> list[str]:
        """Problems with doc, as messages without the object's name."""
        key = json.dumps(doc, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = self._crd(doc) if self.is_crd_kind(doc) else self._builtin(doc)
        return self._cache[key]

    def _crd(self, doc: dict) -> list[str]:
        schema = self.crds.get((doc.get("apiVersion"), doc.get("kind")))
        if schema is None:
            known = ", ".join(f"{k} {v}" for v, k in sorted(self.crds))
            return [f"no vendored CRD defines apiVersion {doc.get('apiVersion')} kind {doc.get('kind')} (known: {known})"]
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return [
            f"{_path(e)}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]

    def _builtin(self, doc: dict) -> list[str]:
        problems = []
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"Kubernetes {version}: {_path(e)}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(
                    f"Kubernetes {version}: unknown kind {e.kind} {e.api_version} "
                    f"(a typo in kind/apiVersion, or a CRD that is not vendored in manifests/crds/)"
                )
        return problems


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


# --------------------------------------------------------------------------
# Helpers for the project rules


def get(doc, *path, default=None):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return default
        doc = doc[key]
    return doc


def pod_spec(obj: Obj) -> dict | None:
    path = POD_SPEC_PATHS.get(obj.kind)
    return get(obj.doc, *path) if path else None


def containers_of(spec: dict):
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            yield key, c


SECRET_WORDS = {"TOKEN", "PASSWORD", "PASSWD", "PASS", "SECRET", "CREDENTIALS", "CREDENTIAL", "APIKEY", "AUTH"}
# "KEY" alone names a key *of something* (RATES_KEY is a Valkey key name);
# these are the kinds of key that are credentials.
SECRET_KEY_PREFIXES = {"API", "ACCESS", "PRIVATE", "SECRET", "SIGNING", "ENCRYPTION", "CLIENT", "AUTH"}
URL_WITH_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@]*@")


def looks_secret(name: str) -> bool:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    if any(w in SECRET_WORDS for w in words):
        return True
    if words == ["KEY"]:
        return True
    return any(w == "KEY" and i > 0 and words[i - 1] in SECRET_KEY_PREFIXES for i, w in enumerate(words))


def parse_minutes(field_text: str) -> list[int]:
    """Minutes of the hour a cron minute field fires at: `*`, `*/N`, `A`,
    `A-B`, `A-B/N`, `A/N` and comma lists of these."""
    minutes: set[int] = set()
    for part in field_text.split(","):
        m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not m:
            raise ValueError(f"cannot read minute field part {part!r}")
        span, step = m.group(1), int(m.group(2) or 1)
        if step < 1:
            raise ValueError(f"step 0 in {part!r}")
        if span == "*":
            lo, hi = 0, 59
        elif "-" in span:
            lo, hi = map(int, span.split("-"))
        else:
            lo = int(span)
            hi = 59 if m.group(2) else lo
        if not (0 <= lo <= hi <= 59):
            raise ValueError(f"minute range {part!r} is outside 0-59 or reversed")
        minutes.update(range(lo, hi + 1, step))
    return sorted(minutes)


def gaps_seconds(minutes: list[int]) -> list[int]:
    """Time between each run and the next, across the hour boundary too."""
    gaps = [b - a for a, b in zip(minutes, minutes[1:])]
    gaps.append(minutes[0] + 60 - minutes[-1])
    return [g * 60 for g in gaps]


def parse_schedule(schedule: str) -> list[int]:
    text = schedule.strip()
    if text == "@hourly":
        text = "0 * * * *"
    if text.startswith("@"):
        raise ValueError(f"{schedule!r} runs at most hourly")
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{schedule!r} does not have 5 fields")
    for name, value in zip(("hour", "day of month", "month", "day of week"), fields[1:]):
        if value not in ("*", "?"):
            raise ValueError(
                f"{schedule!r}: the {name} field must be '*' (this check only reasons about the minute field)"
            )
    return parse_minutes(fields[0])


def spin_variables(spin: dict) -> dict[str, dict]:
    return {name: (decl if isinstance(decl, dict) else {}) for name, decl in (spin.get("variables") or {}).items()}


# --------------------------------------------------------------------------
# The checks. Each takes the loaded sets (and whatever else it needs) and
# records failures on a Check.


def check_load(sets: list[ObjectSet], notes: list[str]) -> Check:
    c = Check("load")
    counts = ", ".join(f"{s.label}: {len(s.objects)}" for s in sets)
    for s in sets:
        seen = {}
        for o in s.objects:
            if o.name == "?":
                c.fail(f"{o.ref()}: metadata.name is missing")
            if o.identity() in seen:
                c.fail(f"{o.ref()} is defined twice (also in {seen[o.identity()]})")
            seen[o.identity()] = o.source
    c.summary = counts + ("; " + "; ".join(notes) if notes else "")
    return c


def check_kustomize_agreement(sets: list[ObjectSet]) -> Check:
    """The built-in loader and kubectl kustomize must produce the same objects,
    so the checks below judge what kubectl would really apply."""
    c = Check("kustomize")
    by_label = {s.label: s for s in sets}
    compared = 0
    for s in sets:
        if not s.rendered:
            continue
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
    return c


def check_schemas(sets: list[ObjectSet], schemas: Schemas) -> tuple[Check, Check]:
    builtin, crd = Check("schema"), Check("crd-schema")
    n_builtin, n_crd = set(), set()
    for s in sets:
        for o in s.objects:
            key = json.dumps(o.doc, sort_keys=True)
            is_crd = schemas.is_crd_kind(o.doc)
            seen = n_crd if is_crd else n_builtin
            if key in seen:
                continue  # the same object from another set: reported once
            seen.add(key)
            for problem in schemas.validate(o.doc):
                (crd if is_crd else builtin).fail(f"{o.ref()}: {problem}")
    builtin.summary = (
        f"{len(n_builtin)} built-in object(s) valid in strict mode for Kubernetes {', '.join(K8S_VERSIONS)}"
    )
    crd.summary = f"{len(n_crd)} SpinKube object(s) valid against manifests/crds/ (unknown fields rejected)"
    return builtin, crd


def check_freshness(sets: list[ObjectSet]) -> Check:
    """Rule 1: the CronJob runs often enough that rates stay under 5 minutes
    old: the largest gap between two scheduled runs is below 300 s. And a run
    always ends before the next one is due (activeDeadlineSeconds below the
    smallest gap), or concurrencyPolicy Forbid would skip that next run and
    double the gap."""
    c = Check("freshness")
    seen = []
    for s in sets:
        if not s.deployable:
            continue
        for o in s.of_kind("CronJob"):
            schedule = get(o.doc, "spec", "schedule")
            if not schedule:
                c.fail(f"{o.ref()}: spec.schedule is missing")
                continue
            try:
                minutes = parse_schedule(str(schedule))
            except ValueError as e:
                c.fail(f"{o.ref()}: schedule {schedule!r} cannot be proven to keep rates fresh: {e}")
                continue
            gaps = gaps_seconds(minutes)
            gap, smallest = max(gaps), min(gaps)
            if gap >= MAX_RATE_AGE_S:
                c.fail(
                    f"{o.ref()}: schedule {schedule!r} leaves {gap} s between runs; rates must be refreshed "
                    f"in under {MAX_RATE_AGE_S} s (e.g. '*/4 * * * *')"
                )
            deadline = get(o.doc, "spec", "jobTemplate", "spec", "activeDeadlineSeconds")
            if deadline is None:
                c.fail(f"{o.ref()}: spec.jobTemplate.spec.activeDeadlineSeconds is missing; a hung run would block later runs")
            elif deadline >= smallest:
                c.fail(
                    f"{o.ref()}: activeDeadlineSeconds {deadline} is not below the {smallest} s between runs; "
                    f"with concurrencyPolicy Forbid a slow run would skip the next one"
                )
            if get(o.doc, "spec", "concurrencyPolicy") != "Forbid":
                c.fail(f"{o.ref()}: concurrencyPolicy must be Forbid (two refreshers would race for the same quota)")
            seen.append(f"{o.name} {schedule!r}: max gap {gap} s")
    if not seen and not c.failures:
        c.fail("no CronJob found: nothing refreshes the rates")
    c.summary = "; ".join(sorted(set(seen))) + f" (< {MAX_RATE_AGE_S} s)"
    return c


def check_executor(sets: list[ObjectSet]) -> Check:
    """Rule 2: a SpinApp's executor exists in the SpinApp's own namespace
    (spin-operator looks it up there only)."""
    c = Check("executor")
    n = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            executor = get(app.doc, "spec", "executor")
            if not executor:
                c.fail(f"{app.ref()}: spec.executor is missing")
            elif s.find("SpinAppExecutor", app.namespace, executor) is None:
                elsewhere = [e.ref() for e in s.of_kind("SpinAppExecutor") if e.name == executor]
                hint = f"; found only {', '.join(elsewhere)}" if elsewhere else ""
                c.fail(
                    f"{app.ref()}: SpinAppExecutor {executor!r} does not exist in namespace "
                    f"{app.namespace or 'default'}{hint}"
                )
    c.summary = f"{len(n)} SpinApp(s) use an executor of their own namespace"
    return c


def check_replicas(sets: list[ObjectSet]) -> Check:
    """Rule 3: a SpinApp runs at least one pod unless an autoscaler owns the count."""
    c = Check("replicas")
    n = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            if get(app.doc, "spec", "enableAutoscaling") is True:
                continue
            replicas = get(app.doc, "spec", "replicas")
            if not isinstance(replicas, int) or replicas < 1:
                got = "missing" if replicas is None else f"{replicas!r}"
                c.fail(f"{app.ref()}: replicas is {got}; it must be at least 1 unless enableAutoscaling is true")
    c.summary = f"{len(n)} SpinApp(s) run at least one replica"
    return c


def check_variables(sets: list[ObjectSet], spin: dict) -> Check:
    """Rule 4: the SpinApp supplies every variable spin.toml requires and
    nothing spin.toml does not declare."""
    c = Check("variables")
    declared = spin_variables(spin)
    required = sorted(n for n, d in declared.items() if d.get("required") is True)
    n = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            supplied = {}
            for var in get(app.doc, "spec", "variables", default=[]) or []:
                name = var.get("name")
                if name in supplied:
                    c.fail(f"{app.ref()}: variable {name!r} is given twice")
                supplied[name] = var
                if name not in declared:
                    c.fail(
                        f"{app.ref()}: variable {name!r} is not declared in spin.toml [variables] "
                        f"(declared: {', '.join(sorted(declared))})"
                    )
                if "value" not in var and "valueFrom" not in var:
                    c.fail(f"{app.ref()}: variable {name!r} has neither value nor valueFrom")
            for name in required:
                if name not in supplied:
                    c.fail(
                        f"{app.ref()}: spin.toml variable {name!r} is required but the SpinApp "
                        f"does not supply it in spec.variables"
                    )
    c.summary = f"{len(n)} SpinApp(s) supply the required {', '.join(required) or '(none)'} and only declared variables"
    return c


OUTBOUND_HOST = re.compile(r"redis://\{\{\s*valkey_host\s*\}\}")


def check_outbound(sets: list[ObjectSet], spin: dict) -> Check:
    """Rule 5: the components may reach Valkey and nothing else: every
    allowed_outbound_hosts entry is redis://{{ valkey_host }}, and the
    SpinApp's valkey_host is the Valkey Service of its namespace."""
    c = Check("outbound")
    components = spin.get("component") or {}
    if "valkey_host" not in spin_variables(spin):
        c.fail("spin.toml does not declare the variable valkey_host")
    for cid, comp in sorted(components.items()):
        for host in comp.get("allowed_outbound_hosts") or []:
            if not OUTBOUND_HOST.fullmatch(str(host)):
                c.fail(
                    f"spin.toml [component.{cid}] allowed_outbound_hosts has {host!r}; the components may reach "
                    f"only Valkey: use exactly 'redis://{{{{ valkey_host }}}}'"
                )
    hosts = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            ns = app.namespace or "default"
            var = next((v for v in get(app.doc, "spec", "variables", default=[]) or [] if v.get("name") == "valkey_host"), None)
            if var is None:
                continue  # reported by the variables check
            value = var.get("value")
            if value is None:
                c.fail(f"{app.ref()}: valkey_host must be an inline value (it is not secret), so it can be checked")
                continue
            pattern = rf"valkey(\.{re.escape(ns)}(\.svc(\.cluster\.local)?)?)?:6379"
            if not re.fullmatch(pattern, value):
                c.fail(
                    f"{app.ref()}: valkey_host {value!r} is not the Valkey Service of namespace {ns} "
                    f"(expected e.g. valkey.{ns}.svc.cluster.local:6379)"
                )
            if s.deployable and s.find("Service", ns, "valkey") is None:
                c.fail(f"{app.ref()}: there is no Service valkey in namespace {ns}")
            hosts.add(value)
    # The example edge-url must point at the same host, or copying it would break the edge.
    for s in sets:
        if s.deployable:
            continue
        for secret in s.of_kind("Secret"):
            url = get(secret.doc, "stringData", "edge-url")
            if url:
                m = re.fullmatch(r"redis://[^@/]*@([^/?#]+)/?.*", url)
                if not m or m.group(1) not in hosts:
                    c.fail(f"{secret.ref()}: edge-url's host is not the SpinApp's valkey_host ({', '.join(sorted(hosts))})")
    n_hosts = sum(len(comp.get("allowed_outbound_hosts") or []) for comp in components.values())
    c.summary = f"{len(components)} component(s), {n_hosts} outbound host(s), all redis://{{{{ valkey_host }}}} = {', '.join(sorted(hosts))}"
    return c


def check_secrets(sets: list[ObjectSet]) -> Check:
    """Rule 6: no plaintext secret outside the marked examples."""
    c = Check("secrets")
    for s in sets:
        if not s.deployable:
            for o in s.objects:
                meta = o.doc.get("metadata") or {}
                if o.kind != "Secret":
                    c.fail(f"{o.ref()}: the examples file should hold only Secrets")
                if (meta.get("labels") or {}).get(EXAMPLE_MARK) != "true" or EXAMPLE_MARK not in (meta.get("annotations") or {}):
                    c.fail(f"{o.ref()}: an example must carry the label and annotation {EXAMPLE_MARK}")
            continue
        for o in s.objects:
            if o.kind == "Secret" and (o.doc.get("data") or o.doc.get("stringData")):
                c.fail(
                    f"{o.ref()}: a Secret with data is in the manifests; real values never go in git "
                    f"(create it with kubectl create secret generic, see manifests/secrets.example.yaml)"
                )
            if o.kind == "ConfigMap":
                for key, value in (o.doc.get("data") or {}).items():
                    if URL_WITH_CREDENTIALS.search(str(value)):
                        c.fail(f"{o.ref()}: data.{key} is a URL with credentials; put it in a Secret")
                    if looks_secret(key):
                        c.fail(f"{o.ref()}: data.{key} looks like a secret; put it in a Secret")
            spec = pod_spec(o)
            if spec:
                for _, cont in containers_of(spec):
                    for env in cont.get("env") or []:
                        name, value = env.get("name", ""), env.get("value")
                        if value is None:
                            continue
                        if looks_secret(name):
                            c.fail(
                                f"{o.ref()}: container {cont.get('name')!r} env {name} has a plaintext "
                                f"value; use valueFrom.secretKeyRef"
                            )
                        elif URL_WITH_CREDENTIALS.search(str(value)):
                            c.fail(
                                f"{o.ref()}: container {cont.get('name')!r} env {name} is a URL with "
                                f"credentials; use valueFrom.secretKeyRef"
                            )
            if o.kind == "SpinApp":
                entries = [("variable", v) for v in get(o.doc, "spec", "variables", default=[]) or []]
                for store_kind in ("keyValueStores", "sqliteDatabases"):
                    for store in get(o.doc, "spec", "runtimeConfig", store_kind, default=[]) or []:
                        entries += [(f"{store_kind} {store.get('name')} option", v) for v in store.get("options") or []]
                for what, v in entries:
                    name, value = v.get("name", ""), v.get("value")
                    if value is None:
                        continue
                    if looks_secret(name) or "@" in str(value):
                        c.fail(
                            f"{o.ref()}: {what} {name!r} has an inline value that looks secret; "
                            f"use valueFrom.secretKeyRef"
                        )
    c.summary = "no plaintext secret in the manifests; examples are marked"
    return c


def _effective(container_sc: dict, pod_sc: dict, key: str):
    return container_sc[key] if key in container_sc else pod_sc.get(key)


def check_hardening(sets: list[ObjectSet]) -> Check:
    """Rule 7: every container has cpu and memory requests and limits, cannot
    run as root, cannot gain privileges, drops all capabilities and uses a
    seccomp profile; the SpinApp has resources."""
    c = Check("hardening")
    n = set()
    for s in sets:
        if not s.deployable:
            continue
        for o in s.objects:
            if o.kind == "SpinApp":
                for part in ("requests", "limits"):
                    got = get(o.doc, "spec", "resources", part, default={}) or {}
                    for res in ("cpu", "memory"):
                        if res not in got:
                            c.fail(f"{o.ref()}: spec.resources.{part}.{res} is missing")
                continue
            spec = pod_spec(o)
            if spec is None:
                continue
            pod_sc = spec.get("securityContext") or {}
            for kind, cont in containers_of(spec):
                n.add((o.identity(), kind, cont.get("name")))
                where = f"{o.ref()}: {kind[:-1]} {cont.get('name')!r}"
                for part in ("requests", "limits"):
                    got = get(cont, "resources", part, default={}) or {}
                    missing = [r for r in ("cpu", "memory") if r not in got]
                    if missing:
                        c.fail(f"{where}: resources.{part} lacks {', '.join(missing)}")
                sc = cont.get("securityContext") or {}
                user = _effective(sc, pod_sc, "runAsUser")
                if user == 0:
                    c.fail(f"{where}: runs as root (runAsUser 0)")
                elif not (_effective(sc, pod_sc, "runAsNonRoot") is True or isinstance(user, int)):
                    c.fail(f"{where}: may run as root; set runAsNonRoot: true or a non-zero runAsUser")
                if sc.get("allowPrivilegeEscalation") is not False:
                    c.fail(f"{where}: securityContext.allowPrivilegeEscalation must be false")
                if "ALL" not in (get(sc, "capabilities", "drop", default=[]) or []):
                    c.fail(f"{where}: securityContext.capabilities.drop must include ALL")
                if sc.get("privileged"):
                    c.fail(f"{where}: must not be privileged")
                seccomp = get(sc, "seccompProfile", "type") or get(pod_sc, "seccompProfile", "type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    c.fail(f"{where}: needs seccompProfile RuntimeDefault (pod or container)")
    c.summary = f"{len(n)} container(s) limited and non-root; SpinApps have resources"
    return c


def check_references(sets: list[ObjectSet]) -> Check:
    """Every ConfigMap key a workload reads exists in the same set; every
    Secret key it reads is documented by the examples; every Ingress backend
    is a Service of the set (or the Service spin-operator makes for a SpinApp)."""
    c = Check("references")
    examples = [o for s in sets if not s.deployable for o in s.objects]
    n = set()
    for s in sets:
        if not s.deployable:
            continue
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
                    ex = next((e for e in examples if e.kind == "Secret" and e.name == r.get("name") and (e.namespace or "default") == ns), None)
                    if ex is None:
                        c.fail(f"{o.ref()}: reads Secret {r.get('name')!r}, which secrets.example.yaml does not describe")
                    elif r.get("key") not in {**(ex.doc.get("data") or {}), **(ex.doc.get("stringData") or {})}:
                        c.fail(f"{o.ref()}: reads key {r.get('key')!r} of Secret {r.get('name')!r}, which the example lacks")
            if o.kind == "Ingress":
                for rule in get(o.doc, "spec", "rules", default=[]) or []:
                    for p in get(rule, "http", "paths", default=[]) or []:
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
    return c


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """An image reference's repository, tag and digest (None when absent)."""
    rest, _, digest = ref.partition("@")
    colon, slash = rest.rfind(":"), rest.rfind("/")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def check_image(sets: list[ObjectSet], spin: dict) -> Check:
    """The SpinApp runs what `make push REGISTRY=<registry>/<name>:<tag>`
    pushes from spin.toml: a repository named like [application] name, tagged
    with [application] version (the version the artifact is annotated with),
    or pinned by digest."""
    c = Check("image")
    app_meta = spin.get("application") or {}
    name, version = app_meta.get("name"), app_meta.get("version")
    if not name or not version:
        c.fail("spin.toml [application] needs a name and a version (the SpinApp's image is checked against them)")
    images = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            image = str(get(app.doc, "spec", "image", default=""))
            repository, tag, digest = split_image(image)
            expected = f"<registry>/{name}:{version}"
            if repository.rsplit("/", 1)[-1] != name or "/" not in repository:
                c.fail(f"{app.ref()}: image {image!r} is not what `make push` pushes from spin.toml; expected {expected}")
            elif digest is None and tag != version:
                c.fail(
                    f"{app.ref()}: image {image!r} has tag {tag or '(none)'}, not spin.toml's version {version!r}: "
                    f"push it as {expected} (bump the version for a new push) or pin it by digest"
                )
            images.add(image)
    c.summary = f"SpinApp image(s) {', '.join(sorted(images))} match spin.toml {name} {version}"
    return c


# --------------------------------------------------------------------------


def run(root: Path, use_kubectl: bool) -> int:
    try:
        sets, notes = load_sets(root, use_kubectl)
        schemas = Schemas(root / "manifests" / "crds", root)
        spin_path = root / "spin.toml"
        try:
            spin = tomllib.loads(spin_path.read_text())
        except FileNotFoundError:
            raise LoadError("spin.toml: file not found (the checker compares the SpinApp with it)")
        except tomllib.TOMLDecodeError as e:
            raise LoadError(f"spin.toml: not valid TOML: {e}")
    except LoadError as e:
        print(f"FAIL load: {e}")
        print("manifests: could not be loaded")
        return 1

    checks = [check_load(sets, notes), check_kustomize_agreement(sets)]
    checks += check_schemas(sets, schemas)
    # The project rules read the loader's sets; the kustomize check above
    # proves kubectl renders exactly the same objects.
    loaded = [s for s in sets if not s.rendered]
    checks += [
        check_freshness(loaded),
        check_executor(loaded),
        check_replicas(loaded),
        check_variables(loaded, spin),
        check_outbound(loaded, spin),
        check_secrets(loaded),
        check_hardening(loaded),
        check_references(loaded),
        check_image(loaded, spin),
    ]
    for check in checks:
        if check.failures:
            print(f"FAIL {check.name}: {len(check.failures)} problem(s)")
            for f in check.failures:
                print(f"  - {f}")
        else:
            print(f"ok   {check.name}: {check.summary}")

    distinct = {json.dumps(o.doc, sort_keys=True) for s in sets for o in s.objects}
    failed = [c.name for c in checks if c.failures]
    if failed:
        print(f"manifests: {len(distinct)} objects, {len(failed)} check(s) failed: {', '.join(failed)}")
        return 1
    print(f"manifests: {len(distinct)} objects, all checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="repository root holding manifests/ and spin.toml (default: this checkout)",
    )
    parser.add_argument("--no-kubectl", action="store_true", help="do not render with kubectl kustomize")
    args = parser.parse_args(argv)
    return run(args.root.resolve(), use_kubectl=not args.no_kubectl)


if __name__ == "__main__":
    sys.exit(main())
