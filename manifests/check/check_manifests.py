#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in manifests/.

Run from the repository root:

    python3 manifests/check/check_manifests.py [--root DIR] [--no-kubectl]

It loads every kustomization an operator applies, in the order of
manifests/README.md: manifests/cluster (step 1), then the app (step 2): the
base (manifests/base) or one of the overlays (manifests/overlays/*, with the
components of manifests/components/ they use); and the example Secrets
(manifests/secrets.example.yaml). When kubectl is on PATH it also loads
`kubectl kustomize` of each kustomization, which must agree. Then:

- built-in kinds are validated with kubernetes-validate in strict mode
  (unknown fields are errors) against each Kubernetes version in K8S_VERSIONS;
- custom resources (SpinKube's SpinApp and SpinAppExecutor, cert-manager's
  Certificate, Issuer and ClusterIssuer, Traefik's Middleware,
  prometheus-operator's ServiceMonitor, PodMonitor and PrometheusRule) are
  validated against the CRDs vendored in manifests/crds/, with every object
  schema closed so unknown fields are errors;
- the project's own rules hold (see the check_* functions: freshness, apply
  order, runtime, replicas, variables, outbound, rates contract, key-value
  store, paths, TLS, Valkey over TLS (URLs, TLS-only config, its
  certificate, the CA in every client), selectors, disruption, secrets,
  hardening, references, image, and for monitoring: scrape targets, rule
  files, alerts, metrics, dashboards, the exporter's ACL), and the
  placeholders left to fill in are listed.

Each check prints one line; failures are listed under it. The exit code is 0
only when every check passes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import difflib
import functools
import json
import math
import ipaddress
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
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

# The apply steps of manifests/README.md. Step 1 creates what the app needs to
# exist first; step 2 is the app, one of APP_DIRS.
CLUSTER_DIR = "cluster"  # manifests/cluster
APP_BASE_DIR = "base"  # manifests/base; every overlay in manifests/overlays/ is an app too

# Overlays whose every image must be pinned by digest.
PINNED_OVERLAYS = ("production", "runtime-shim")

# Overlays that may reach Valkey only over TLS: no redis:// URL, no #insecure.
TLS_ONLY_OVERLAYS = ("production", "runtime-shim")

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
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}

# The kustomization fields the built-in loader understands. Anything else is
# refused rather than silently ignored (kubectl would apply it; we would not).
KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "components",
    "configurations",
    "patches",
    "images",
    "configMapGenerator",
}

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

# The paths the edge serves: README.md, "API" (the table of requests), plus
# Spin's own health endpoint, which Spin answers before routing. True marks a
# path a probe may use (200 without a query string when healthy).
SERVED_PATHS = {
    "/rates": False,
    "/healthz": True,
    "/readyz": True,
    "/.well-known/spin/health": True,
}

# The containerd runtime handler K3s registers when it finds
# containerd-shim-spin-v2 on a node (manifests/README.md, "Nodes").
SPIN_SHIM_HANDLER = "spin"

# Key-value store types of Spin 3.6.3, the Spin inside containerd-shim-spin
# 0.24 (spin-operator passes `type` through unchecked). `spin` is SQLite, in a
# file when given a `path`.
KV_STORE_TYPES = {"spin", "redis", "azure_cosmos", "aws_dynamo"}

# Labels spin-operator v0.6.1 puts on every pod of a SpinApp (besides spec.podLabels).
def spinapp_operator_labels(name: str) -> dict[str, str]:
    return {"core.spinkube.dev/app-name": name, f"core.spinkube.dev/app.{name}.status": "ready"}


# Volume names spin-operator v0.6.1 adds to a SpinApp's pod itself (runtime
# config Secret, CA bundle): a spec.volumes entry of the same name makes an
# invalid Deployment (internal/controller/deployment.go).
SPINAPP_RESERVED_VOLUMES = {"spin-runtime-config", "spin-ca"}

# The container images `make images` builds, and the crate whose version
# tags each (scripts/images.sh: <name>:<version>).
IMAGE_CRATES = {
    "forex-refresher": "refresher/Cargo.toml",
    "one-frame": "e2e/one-frame/Cargo.toml",
    "runtime-shim": "runtime-shim/Cargo.toml",
}
# The image of a `spinImage` executor (spin-operator's alternative to a
# RuntimeClass), as kustomizeconfig.yaml in manifests/cluster declares it.
SPIN_IMAGE_FIELD = ("SpinAppExecutor", ("spec", "deploymentConfig", "spinImage"))

# cert-manager's HTTP-01 solver pods carry this label (and listen on 8089):
# pkg/apis/acme/v1/types.go and pkg/issuer/acme/http/pod.go at v1.20.0.
ACME_SOLVER_LABELS = {"acme.cert-manager.io/http01-solver": "true"}
CERT_MANAGER_GROUP = "cert-manager.io"

# Traefik's Ingress annotation naming the middlewares of the Ingress's
# routers, each `<namespace>-<name>@kubernetescrd` for a Middleware resource.
TRAEFIK_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"

# A placeholder left for the operator: a host under example.com/.net/.org or
# with a label `example` (registry.example.com, one-frame.example.internal,
# ops@example.com), or a digest of zeros.
PLACEHOLDER_HOST = re.compile(r"(?<![A-Za-z0-9.-])(?:[A-Za-z0-9-]+\.)*example(?:\.[A-Za-z0-9-]+)+|(?<![A-Za-z0-9.-])(?:[A-Za-z0-9-]+\.)+example(?![A-Za-z0-9-])")
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


# The refresher's defaults for settings the manifests may leave out
# (refresher/src/config.rs).
REFRESHER_DEFAULTS = {"REFRESH_DEADLINE": "60s", "RATES_KEY": "rates", "RATES_CHANNEL": "rates_updated"}


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
    """One thing `kubectl apply` would be given: a kustomization, or the examples."""

    label: str
    objects: list[Obj]
    deployable: bool = True  # False for the example Secrets
    rendered: bool = False  # True for kubectl kustomize output
    step: int = 0  # apply step (1: manifests/cluster, 2: an app); 0: never applied

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


def _read_yaml(path: Path, root: Path):
    rel = _rel(path, root)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LoadError(f"{rel}: file not found")
    except yaml.YAMLError as e:
        raise LoadError(f"{rel}: not valid YAML: {e}")


@dataclass
class Build:
    objs: list[Obj]
    # (kind, path) of the fields besides container images that `images:`
    # rewrites, from `configurations:` here and in the kustomizations below.
    image_fields: list[tuple[str, tuple[str, ...]]]


def load_kustomization(directory: Path, root: Path) -> list[Obj]:
    """A subset of kustomize: resources (files and directories), components,
    configMapGenerator (files and literals, without name hash), patches
    (strategic merge and JSON 6902), namespace, labels without selectors or
    templates, images, and configurations that name image fields. Applied in
    kustomize's order: resources, then each component (its resources join
    the ones accumulated so far, and its own generators, patches, namespace,
    labels and images apply to all of them), then this kustomization's
    generated ConfigMaps, patches, namespace, labels, images."""
    return _build(directory, root).objs


COMPONENT_API_VERSION = "kustomize.config.k8s.io/v1alpha1"


def _read_kustomization(directory: Path, root: Path, component: bool) -> dict:
    kfile = directory / "kustomization.yaml"
    rel = _rel(kfile, root)
    k = _read_yaml(kfile, root) or {}
    if not isinstance(k, dict):
        raise LoadError(f"{rel}: not a kustomization (a mapping)")
    unknown = set(k) - KUSTOMIZATION_FIELDS
    if unknown:
        raise LoadError(
            f"{rel}: fields {sorted(unknown)} are not understood by this checker; "
            f"extend load_kustomization() or use only {sorted(KUSTOMIZATION_FIELDS)}"
        )
    is_component = k.get("kind") == "Component"
    if component and not (is_component and k.get("apiVersion") == COMPONENT_API_VERSION):
        raise LoadError(
            f"{rel}: listed under components:, so it must be apiVersion {COMPONENT_API_VERSION}, kind Component "
            f"(kubectl refuses anything else there)"
        )
    if not component and is_component:
        raise LoadError(f"{rel}: a Component can only be listed under components:, not under resources:")
    return k


def _build(directory: Path, root: Path) -> Build:
    return _accumulate(_read_kustomization(directory, root, component=False), directory, root, [], [])


def _accumulate(k: dict, directory: Path, root: Path, objs: list[Obj], image_fields: list) -> Build:
    """Adds what kustomization k (in directory) makes to objs, then runs its
    transformers over all of them: for a kustomization objs starts empty, for
    a component it holds what its parent accumulated before it."""
    rel = _rel(directory / "kustomization.yaml", root)
    objs, image_fields = list(objs), list(image_fields)
    for entry in k.get("configurations") or []:
        image_fields += _load_configuration(directory / entry, root)
    for entry in k.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            sub = _build(target, root)
            objs += sub.objs
            image_fields += sub.image_fields
        elif target.is_file():
            objs += load_yaml_docs(target, root)
        else:
            raise LoadError(f"{rel}: resource {entry!r} does not exist")
    for entry in k.get("components") or []:
        target = (directory / entry).resolve()
        if not target.is_dir():
            raise LoadError(f"{rel}: component {entry!r} is not a directory with a kustomization.yaml")
        built = _accumulate(_read_kustomization(target, root, component=True), target, root, objs, image_fields)
        objs, image_fields = built.objs, built.image_fields
    for i, entry in enumerate(k.get("configMapGenerator") or []):
        objs.append(_generate_configmap(entry, directory, root, f"{rel}: configMapGenerator[{i}]"))

    for i, entry in enumerate(k.get("patches") or []):
        objs = _apply_patch(objs, entry, directory, root, f"{rel}: patches[{i}]")

    namespace = k.get("namespace")
    for o in objs:
        meta = o.doc.setdefault("metadata", {})
        if namespace and o.kind not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        for group in k.get("labels") or []:
            if group.get("includeSelectors") or group.get("includeTemplates"):
                raise LoadError(f"{rel}: labels with includeSelectors/includeTemplates are not supported by this checker")
            meta.setdefault("labels", {}).update(group.get("pairs") or {})

    if k.get("images"):
        _apply_images(objs, k["images"], image_fields, rel)
    return Build(objs, image_fields)


def _load_configuration(path: Path, root: Path) -> list[tuple[str, tuple[str, ...]]]:
    """A kustomize transformer configuration; only `images:` field specs."""
    rel = _rel(path, root)
    conf = _read_yaml(path, root) or {}
    if not isinstance(conf, dict) or set(conf) - {"images"}:
        raise LoadError(f"{rel}: this checker understands only `images:` field specs in a configuration")
    out = []
    for spec in conf.get("images") or []:
        path_text, kind = spec.get("path"), spec.get("kind")
        if not path_text or not kind or set(spec) - {"path", "kind", "group", "version", "create"} or "[]" in path_text:
            raise LoadError(f"{rel}: images field spec {spec!r}: give a kind and a plain path such as spec/image")
        out.append((kind, tuple(path_text.strip("/").split("/"))))
    return out


# -- generators ----------------------------------------------------------------

GENERATOR_FIELDS = {"name", "files", "literals", "options"}
GENERATOR_OPTIONS = {"disableNameSuffixHash", "labels", "annotations"}


def _generate_configmap(entry, directory: Path, root: Path, where: str) -> Obj:
    """A configMapGenerator entry: `files` (`path` or `key=path`) and
    `literals` (`key=value`), with options.labels/annotations. The name must
    stay fixed (options.disableNameSuffixHash: true): this checker does not
    reproduce kustomize's name hash, nor rewrite the references to it."""
    if not isinstance(entry, dict) or set(entry) - GENERATOR_FIELDS or not entry.get("name"):
        raise LoadError(f"{where}: give a name and use only {sorted(GENERATOR_FIELDS)} (behavior and envs are not supported by this checker)")
    options = entry.get("options") or {}
    if set(options) - GENERATOR_OPTIONS or options.get("disableNameSuffixHash") is not True:
        raise LoadError(
            f"{where}: this checker needs options.disableNameSuffixHash: true and understands only {sorted(GENERATOR_OPTIONS)}"
        )
    data = {}
    for item in entry.get("files") or []:
        key, _, path_text = str(item).rpartition("=")
        path = directory / path_text
        try:
            data[key or path.name] = path.read_text()
        except FileNotFoundError:
            raise LoadError(f"{where}: file {_rel(path, root)} not found")
    for item in entry.get("literals") or []:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise LoadError(f"{where}: literal {item!r} is not key=value")
        data[key] = value
    meta = {"name": entry["name"]}
    for key in ("labels", "annotations"):
        if options.get(key):
            meta[key] = {str(k): str(v) for k, v in options[key].items()}
    return Obj({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}, _rel(directory / "kustomization.yaml", root))


# -- images ------------------------------------------------------------------

IMAGE_ENTRY_FIELDS = {"name", "newName", "newTag", "digest"}
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """An image reference's repository, tag and digest (None when absent)."""
    rest, _, digest = ref.partition("@")
    colon, slash = rest.rfind(":"), rest.rfind("/")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def image_slots(obj: Obj, image_fields) -> list[tuple[dict, str]]:
    """(mapping, key) of every image `images:` rewrites in obj: the image of
    every entry of any `containers`/`initContainers` list (kustomize's own
    rule), and the configured fields."""
    slots = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    slots.extend((c, "image") for c in value if isinstance(c, dict) and isinstance(c.get("image"), str))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj.doc)
    for kind, path in image_fields:
        parent = get(obj.doc, *path[:-1]) if obj.kind == kind else None
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), str):
            slots.append((parent, path[-1]))
    return slots


def _apply_images(objs: list[Obj], entries, image_fields, rel: str) -> None:
    slots = [slot for o in objs for slot in image_slots(o, image_fields)]
    used = sorted({split_image(m[k])[0] for m, k in slots})
    for i, e in enumerate(entries):
        where = f"{rel}: images[{i}]"
        if not isinstance(e, dict) or set(e) - IMAGE_ENTRY_FIELDS:
            raise LoadError(f"{where}: use only {sorted(IMAGE_ENTRY_FIELDS)}")
        for key in ("name", "newName"):
            value = e.get(key)
            if key in e and (not isinstance(value, str) or "@" in value or split_image(value)[1] is not None):
                raise LoadError(f"{where}: {key} {value!r} must be an image name without tag or digest")
        if "name" not in e:
            raise LoadError(f"{where}: name is missing")
        if "newTag" in e and not (isinstance(e["newTag"], str) and TAG.fullmatch(e["newTag"])):
            raise LoadError(f"{where}: newTag {e['newTag']!r} is not a tag (quote it: a YAML number is no tag)")
        if "digest" in e and not (isinstance(e["digest"], str) and DIGEST.fullmatch(e["digest"])):
            raise LoadError(f"{where}: digest {e['digest']!r} is not sha256:<64 hex digits>")
        if not set(e) & {"newName", "newTag", "digest"}:
            raise LoadError(f"{where}: changes nothing (give newName, newTag or digest)")
        hits = [(m, k) for m, k in slots if split_image(m[k])[0] == e["name"]]
        if not hits:
            raise LoadError(
                f"{where}: name {e['name']!r} matches no image of the resources it applies to "
                f"(they use {', '.join(used) or 'none'}); kustomize would silently change nothing"
            )
        for m, k in hits:
            name, tag, digest = split_image(m[k])
            name = e.get("newName", name)
            if "digest" in e:
                tag, digest = e.get("newTag"), e["digest"]
            elif "newTag" in e:
                tag, digest = e["newTag"], None
            m[k] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# -- patches -------------------------------------------------------------------

PATCH_FIELDS = {"path", "patch", "target"}
SELECTOR_FIELDS = {"group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"}
_DELETE = object()
_MISSING = object()


@functools.cache
def k8s_definitions() -> dict:
    """The $defs of kubernetes-validate's strict schemas for K8S_VERSIONS[0]."""
    path = (
        importlib_resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{K8S_VERSIONS[0]}.0-local-strict"
        / "_definitions.json"
    )
    return json.loads(path.read_text())["$defs"]


@functools.cache
def _kind_schema(api_version: str, kind: str) -> str | None:
    """Name of the definition of a built-in kind; None for custom resources."""
    group, _, version = api_version.rpartition("/")
    for name, schema in k8s_definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                return name
    return None


def _resolve(schema):
    while isinstance(schema, dict) and "$ref" in schema:
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**k8s_definitions()[schema["$ref"].rsplit("/", 1)[-1]], **merged}
    return schema if isinstance(schema, dict) else None


def strategic_merge(dest, patch, schema, where: str):
    """kustomize's strategic merge of patch into dest (kyaml merge2 with the
    Kubernetes schema's patch strategies): maps merge, null deletes, lists with
    patch strategy `merge` merge by their merge key (the patch's elements
    first, then the rest, as kustomize orders them), other lists are replaced.
    Custom resources have no schema here, so all their lists are replaced.
    Returns the result, or _DELETE."""
    schema = _resolve(schema)
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        body = {k: v for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return _DELETE
        if directive == "replace":
            return copy.deepcopy(body)
        if directive is not None or any(str(k).startswith("$") for k in body):
            raise LoadError(f"{where}: strategic merge directives other than $patch: delete/replace are not supported by this checker")
        if not isinstance(dest, dict):
            return copy.deepcopy(body)
        out = copy.deepcopy(dest)
        for key, value in body.items():
            if value is None:
                out.pop(key, None)
                continue
            sub = ((schema or {}).get("properties") or {}).get(key)
            merged = strategic_merge(out.get(key, _MISSING), value, sub, where)
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if isinstance(patch, list):
        strategy = str((schema or {}).get("x-kubernetes-patch-strategy", "")).split(",")
        key = (schema or {}).get("x-kubernetes-patch-merge-key")
        if "merge" in strategy and isinstance(dest, list):
            if key and all(isinstance(e, dict) for e in patch + dest):
                items = (schema or {}).get("items")
                by_key = {e.get(key): e for e in dest}
                out, seen = [], set()
                for e in patch:
                    if e.get(key) in seen:
                        continue  # kustomize merges only the first element of a key
                    seen.add(e.get(key))
                    merged = strategic_merge(by_key.get(e.get(key), _MISSING), e, items, where)
                    if merged is not _DELETE:
                        out.append(merged)
                return out + [copy.deepcopy(e) for e in dest if e.get(key) not in seen]
            if not key:
                return copy.deepcopy(patch) + [copy.deepcopy(e) for e in dest if e not in patch]
        return copy.deepcopy(patch)
    return copy.deepcopy(patch)


def _pointer(text: str, where: str) -> list[str]:
    if text == "":
        return []
    if not isinstance(text, str) or not text.startswith("/"):
        raise LoadError(f"{where}: JSON pointer {text!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _walk_to(doc, parts: list[str], where: str):
    node = doc
    for p in parts:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            raise LoadError(f"{where}: path /{'/'.join(parts)} does not exist")
    return node


def json_patch(doc: dict, ops, where: str) -> dict:
    """RFC 6902: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    for n, op in enumerate(ops):
        at = f"{where}, operation {n}"
        if not isinstance(op, dict) or op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
            raise LoadError(f"{at}: not a JSON patch operation: {op!r}")
        parts = _pointer(op.get("path"), at)
        if not parts:
            raise LoadError(f"{at}: patching the whole object is not supported by this checker")
        parent, last = _walk_to(doc, parts[:-1], at), parts[-1]
        kind = op["op"]
        if kind in ("move", "copy"):
            source = _pointer(op.get("from"), at)
            value = copy.deepcopy(_walk_to(doc, source, at))
            if kind == "move":
                src_parent = _walk_to(doc, source[:-1], at)
                del src_parent[int(source[-1]) if isinstance(src_parent, list) else source[-1]]
                parent = _walk_to(doc, parts[:-1], at)
            kind = "add"
        else:
            value = op.get("value")
        if kind == "test":
            if _walk_to(doc, parts, at) != value:
                raise LoadError(f"{at}: test of {op.get('path')} failed")
        elif kind == "remove" or kind == "replace":
            _walk_to(doc, parts, at)  # must exist
            if kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            else:
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(value)
        elif isinstance(parent, list):
            if last == "-":
                parent.append(copy.deepcopy(value))
            elif last.isdigit() and int(last) <= len(parent):
                parent.insert(int(last), copy.deepcopy(value))
            else:
                raise LoadError(f"{at}: index {last!r} is out of range")
        elif isinstance(parent, dict):
            parent[last] = copy.deepcopy(value)
        else:
            raise LoadError(f"{at}: {op.get('path')} is inside a scalar")
    return doc


def _selector_matches(text: str, labels: dict, where: str) -> bool:
    """kustomize's labelSelector/annotationSelector: k=v, k!=v, k, !k, comma-separated."""
    for term in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"(!?)([A-Za-z0-9./_-]+)(?:\s*(==|=|!=)\s*([A-Za-z0-9._-]*))?", term)
        if not m:
            raise LoadError(f"{where}: selector term {term!r} is not supported by this checker")
        neg, key, op, value = m.groups()
        if op is None:
            if (key in labels) == bool(neg):
                return False
        elif neg or (labels.get(key) == value) != (op in ("=", "==")):
            return False
    return True


def _select(objs: list[Obj], target, where: str) -> list[Obj]:
    if not isinstance(target, dict) or set(target) - SELECTOR_FIELDS:
        raise LoadError(f"{where}: target may use only {sorted(SELECTOR_FIELDS)}")
    out = []
    for o in objs:
        group, _, version = str(o.doc.get("apiVersion", "")).rpartition("/")
        meta = o.doc.get("metadata") or {}
        fields = {"group": group, "version": version, "kind": o.kind, "name": o.name, "namespace": o.namespace or ""}
        if any(key in target and not re.fullmatch(str(target[key]), value) for key, value in fields.items()):
            continue
        if "labelSelector" in target and not _selector_matches(target["labelSelector"], meta.get("labels") or {}, where):
            continue
        if "annotationSelector" in target and not _selector_matches(target["annotationSelector"], meta.get("annotations") or {}, where):
            continue
        out.append(o)
    if not out:
        raise LoadError(f"{where}: target {target!r} matches no resource, so the patch would change nothing")
    return out


def _apply_patch(objs: list[Obj], entry, directory: Path, root: Path, where: str) -> list[Obj]:
    if not isinstance(entry, dict) or set(entry) - PATCH_FIELDS:
        raise LoadError(f"{where}: use only {sorted(PATCH_FIELDS)} (options are not supported by this checker)")
    if ("path" in entry) == ("patch" in entry):
        raise LoadError(f"{where}: give exactly one of path and patch")
    if "path" in entry:
        path = directory / entry["path"]
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise LoadError(f"{where}: patch file {_rel(path, root)} not found")
    else:
        text = str(entry["patch"])
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise LoadError(f"{where}: not valid YAML: {e}")
    target = entry.get("target")

    if len(docs) == 1 and isinstance(docs[0], list):
        if target is None:
            raise LoadError(f"{where}: a JSON patch needs a target")
        for o in _select(objs, target, where):
            o.doc = json_patch(o.doc, docs[0], where)
        return objs
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise LoadError(f"{where}: neither a strategic merge patch nor a JSON patch")
    if target is not None:
        if len(docs) != 1:
            raise LoadError(f"{where}: a target allows only one strategic merge patch")
        chosen = [(o, docs[0]) for o in _select(objs, target, where)]
    else:
        chosen = []
        for d in docs:
            meta = d.get("metadata") or {}
            hits = [
                o
                for o in objs
                if o.kind == d.get("kind")
                and o.name == meta.get("name")
                and str(o.doc.get("apiVersion")) == str(d.get("apiVersion"))
                and ("namespace" not in meta or o.namespace == meta["namespace"])
            ]
            if len(hits) != 1:
                raise LoadError(
                    f"{where}: {len(hits)} resources match {d.get('apiVersion')} {d.get('kind')} {meta.get('name')!r}; "
                    f"a strategic merge patch without target must match exactly one"
                )
            chosen.append((hits[0], d))
    for o, d in chosen:
        name, namespace, kind = o.name, o.namespace, o.kind
        definition = _kind_schema(str(o.doc.get("apiVersion")), kind)
        schema = {"$ref": f"#/$defs/{definition}"} if definition else None
        result = strategic_merge(o.doc, d, schema, where)
        if result is _DELETE:
            objs = [x for x in objs if x is not o]
            continue
        result["kind"] = kind
        meta = result.setdefault("metadata", {})
        meta["name"] = name
        if namespace is None:
            meta.pop("namespace", None)
        else:
            meta["namespace"] = namespace
        o.doc = result
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
    """Every kustomization an operator applies, with its apply step."""
    manifests = root / "manifests"
    notes = []
    overlay_dirs = sorted(p.parent for p in (manifests / "overlays").glob("*/kustomization.yaml"))
    plan = [("cluster", manifests / CLUSTER_DIR, 1), ("base", manifests / APP_BASE_DIR, 2)]
    plan += [(f"overlay {d.name}", d, 2) for d in overlay_dirs]
    sets = [ObjectSet(label, load_kustomization(d, root), step=step) for label, d, step in plan]
    sets.append(ObjectSet("examples", load_yaml_docs(manifests / "secrets.example.yaml", root), deployable=False))

    if not use_kubectl:
        notes.append("kubectl kustomize: skipped (--no-kubectl)")
    elif shutil.which("kubectl") is None:
        notes.append("kubectl kustomize: skipped (kubectl is not on PATH; optional)")
    else:
        for label, d, step in plan:
            sets.append(ObjectSet(f"{label} (kubectl kustomize)", kubectl_kustomize(d, root), rendered=True, step=step))
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
        self.cluster_kinds: set[str] = set()  # kinds of the vendored CRDs with scope Cluster
        crd_files = sorted(crd_dir.glob("*.yaml"))
        if not crd_files:
            raise LoadError(f"{_rel(crd_dir, root)}: no CRDs found")
        for path in crd_files:
            crd = yaml.safe_load(path.read_text())
            spec = crd["spec"]
            self.crd_groups.add(spec["group"])
            if spec.get("scope") == "Cluster":
                self.cluster_kinds.add(spec["names"]["kind"])
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


def pod_labels(obj: Obj) -> dict | None:
    """Labels of the pods a workload makes (SpinApp: as spin-operator makes
    them); None for objects that make no pods."""
    if obj.kind == "SpinApp":
        return {**(get(obj.doc, "spec", "podLabels", default={}) or {}), **spinapp_operator_labels(obj.name)}
    path = POD_SPEC_PATHS.get(obj.kind)
    if path is None:
        return None
    return get(obj.doc, *path[:-1], "metadata", "labels", default={}) or {}


def replicas_of(obj: Obj) -> int | None:
    """How many pods a workload runs; None when not fixed (autoscaled, jobs)."""
    if obj.kind == "SpinApp":
        return None if get(obj.doc, "spec", "enableAutoscaling") else get(obj.doc, "spec", "replicas", default=1)
    if obj.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return get(obj.doc, "spec", "replicas", default=1)
    return 1 if obj.kind == "Pod" else None


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against pod labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_text(selector: dict) -> str:
    return json.dumps(selector, sort_keys=True, separators=(",", ":"))


_UNRESOLVED = object()


def env_value(s: ObjectSet, obj: Obj, container: dict, name: str):
    """The value of a container's environment variable: a literal or a
    ConfigMap key of the set. None when the variable is not set; _UNRESOLVED
    when it comes from somewhere the manifests do not show (a Secret)."""
    for e in container.get("env") or []:
        if e.get("name") != name:
            continue
        if "value" in e:
            return str(e["value"])
        ref = get(e, "valueFrom", "configMapKeyRef")
        if ref:
            cm = s.find("ConfigMap", obj.namespace, ref.get("name"))
            value = (cm.doc.get("data") or {}).get(ref.get("key")) if cm else None
            return _UNRESOLVED if value is None else str(value)
        return _UNRESOLVED
    found = None
    for source in container.get("envFrom") or []:  # later sources win; env above wins over all
        prefix, ref = source.get("prefix", ""), source.get("configMapRef")
        if ref and name.startswith(prefix):
            cm = s.find("ConfigMap", obj.namespace, ref.get("name"))
            data = (cm.doc.get("data") or {}) if cm else {}
            if name[len(prefix) :] in data:
                found = str(data[name[len(prefix) :]])
    return found


def cert_issuer(cert: Obj, applied: list[ObjectSet]) -> tuple[Obj | None, str]:
    """The Issuer (of the Certificate's namespace) or ClusterIssuer that a
    Certificate's issuerRef names, among the sets applied up to its own; and
    the reference in words. None for a missing one or another group's."""
    ref = get(cert.doc, "spec", "issuerRef", default={}) or {}
    kind, group, name = ref.get("kind") or "Issuer", ref.get("group") or CERT_MANAGER_GROUP, ref.get("name")
    desc = f"{kind} {name!r}" + ("" if group == CERT_MANAGER_GROUP else f" of group {group}")
    if group != CERT_MANAGER_GROUP or kind not in ("Issuer", "ClusterIssuer"):
        return None, desc
    for t in applied:
        for o in t.of_kind(kind):
            if o.name == name and (kind == "ClusterIssuer" or (o.namespace or "default") == (cert.namespace or "default")):
                return o, desc
    return None, desc


def http01_ingress_solvers(issuer: Obj) -> list[dict]:
    """The http01.ingress settings of an ACME issuer's solvers."""
    solvers = get(issuer.doc, "spec", "acme", "solvers", default=[]) or []
    return [s["http01"]["ingress"] for s in solvers if isinstance(get(s, "http01", "ingress"), dict)]


def dns_name_covers(pattern: str, host: str) -> bool:
    """A certificate's DNS name matches a host: equal, or a wildcard
    `*.example.com` for exactly one more label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def parse_duration(text: str) -> float:
    """The refresher's durations: `250ms`, `30s`, `4m`, `1h` (refresher/src/config.rs)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration the refresher accepts (e.g. 500ms, 30s, 4m, 1h)")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# --------------------------------------------------------------------------
# The checks. Each takes the loaded sets (and whatever else it needs) and
# records failures on a Check.


def deployable(sets: list[ObjectSet], from_step: int = 0) -> Iterator[ObjectSet]:
    """The sets an operator applies (not the examples), from apply step
    `from_step` on: what most rules look at."""
    return (s for s in sets if s.deployable and s.step >= from_step)


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
    crd.summary = f"{len(n_crd)} custom resource(s) valid against manifests/crds/ (unknown fields rejected)"
    return builtin, crd



def check_freshness(sets: list[ObjectSet]) -> Check:
    """Rule 1: the CronJob runs often enough that rates stay under 5 minutes
    old: the largest gap between two scheduled runs is below 300 s. And a run
    always ends before the next one is due (activeDeadlineSeconds below the
    smallest gap), or concurrencyPolicy Forbid would skip that next run and
    double the gap. The refresher's own deadline (REFRESH_DEADLINE) lets every
    attempt the Job makes (backoffLimit + 1) end within activeDeadlineSeconds,
    or the Job is killed mid-run and its retry never happens."""
    c = Check("freshness")
    seen = []
    for s in deployable(sets):
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
            attempts = get(o.doc, "spec", "jobTemplate", "spec", "backoffLimit", default=6) + 1
            for _, cont in containers_of(pod_spec(o) or {}):
                value = env_value(s, o, cont, "REFRESH_DEADLINE")
                if value is _UNRESOLVED:
                    c.fail(f"{o.ref()}: container {cont.get('name')!r} REFRESH_DEADLINE must be a literal or a ConfigMap key of the manifests")
                    continue
                value = REFRESHER_DEFAULTS["REFRESH_DEADLINE"] if value is None else value
                try:
                    run = parse_duration(value)
                except ValueError as e:
                    c.fail(f"{o.ref()}: container {cont.get('name')!r} REFRESH_DEADLINE: {e}")
                    continue
                if deadline is not None and run * attempts >= deadline:
                    c.fail(
                        f"{o.ref()}: container {cont.get('name')!r} REFRESH_DEADLINE {value} × {attempts} attempt(s) "
                        f"(backoffLimit {attempts - 1}) = {run * attempts:g} s is not below activeDeadlineSeconds "
                        f"{deadline}: the Job would be killed before its runs end"
                    )
                seen.append(f"{o.name} {schedule!r}: max gap {gap} s, {attempts} × {value} < {deadline} s")
    if not seen and not c.failures:
        c.fail("no CronJob found: nothing refreshes the rates")
    c.summary = "; ".join(sorted(set(seen))) + f" (gaps < {MAX_RATE_AGE_S} s)"
    return c


def check_apply_order(sets: list[ObjectSet], cluster_kinds: set[str] = frozenset()) -> Check:
    """Rule 2: what an app needs exists before it is applied. Step 1
    (manifests/cluster) creates the namespaces and every SpinApp's executor, in
    the SpinApp's namespace (spin-operator looks only there, and its webhook
    rejects a SpinApp whose executor does not exist yet; in one apply kustomize
    emits the SpinApp first). An app holds nothing cluster-wide and no
    Namespace, so `kubectl delete -k` of it leaves them and the Secrets."""
    c = Check("apply-order")
    n = set()
    for s in deployable(sets, from_step=2):
        earlier = [t for t in sets if t.deployable and 0 < t.step < s.step]
        for o in s.objects:
            if o.kind in CLUSTER_SCOPED or o.kind in cluster_kinds:
                what = "deleting it deletes the namespace's Secrets and everything else in it" if o.kind == "Namespace" else "it is cluster-wide"
                c.fail(
                    f"{o.ref()}: belongs in manifests/{CLUSTER_DIR}/, not in an app: "
                    f"`kubectl delete -k` of the app would delete it, and {what}"
                )
            elif o.namespace is None:
                c.fail(f"{o.ref()}: has no namespace; it would land in kubectl's current namespace")
        for ns in sorted({o.namespace for o in s.objects if o.kind not in CLUSTER_SCOPED and o.namespace}):
            if not any(t.find("Namespace", None, ns) for t in earlier):
                c.fail(f"namespace {ns} of the app is not created by manifests/{CLUSTER_DIR}, which is applied first")
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            executor = get(app.doc, "spec", "executor")
            ns = app.namespace or "default"
            if not executor:
                c.fail(f"{app.ref()}: spec.executor is missing")
            elif any(t.find("SpinAppExecutor", ns, executor) for t in earlier):
                continue
            elif s.find("SpinAppExecutor", ns, executor):
                c.fail(
                    f"{app.ref()}: SpinAppExecutor {executor!r} is created by the same apply as the SpinApp; "
                    f"kustomize emits the SpinApp first and spin-operator's webhook rejects it while the executor "
                    f"does not exist: move the executor to manifests/{CLUSTER_DIR}/"
                )
            else:
                elsewhere = sorted({e.ref() for t in earlier + [s] for e in t.of_kind("SpinAppExecutor") if e.name == executor})
                hint = f"; found only {', '.join(elsewhere)}" if elsewhere else ""
                c.fail(
                    f"{app.ref()}: SpinAppExecutor {executor!r} does not exist in namespace {ns} "
                    f"after manifests/{CLUSTER_DIR}{hint}"
                )
    c.summary = (
        f"manifests/{CLUSTER_DIR} creates the namespace and the executor of {len(n)} SpinApp(s) before the app; "
        f"the apps hold nothing cluster-wide"
    )
    return c


def spinapp_executors(sets: list[ObjectSet]) -> Iterator[tuple[ObjectSet, list[ObjectSet], Obj, Obj | None]]:
    """(set, the sets applied by then, SpinApp, its executor or None) for
    every SpinApp of an app: the executor spin-operator finds in the
    SpinApp's namespace once the app is applied."""
    for s in deployable(sets, from_step=2):
        applied = [t for t in sets if t.deployable and 0 < t.step < s.step] + [s]
        for app in s.of_kind("SpinApp"):
            ns, executor = app.namespace or "default", get(app.doc, "spec", "executor")
            yield s, applied, app, next((e for t in applied if (e := t.find("SpinAppExecutor", ns, executor))), None)


def check_runtime(sets: list[ObjectSet]) -> Check:
    """The executor of every SpinApp names in runtimeClassName a RuntimeClass
    that exists once the app is applied, and that class's handler is the one
    K3s registers for containerd-shim-spin-v2."""
    c = Check("runtime")
    used = set()
    for _, applied, app, ex in spinapp_executors(sets):
        name = get(ex.doc, "spec", "deploymentConfig", "runtimeClassName") if ex else None
        if not name:
            continue  # no executor (apply-order reports it), or a spinImage executor
        rc = next((r for t in applied for r in t.of_kind("RuntimeClass") if r.name == name), None)
        if rc is None:
            known = sorted({r.name for t in applied for r in t.of_kind("RuntimeClass")})
            c.fail(
                f"{ex.ref()}: runtimeClassName {name!r} matches no RuntimeClass of the manifests "
                f"(RuntimeClasses: {', '.join(known) or 'none'}); the pods of {app.ref()} would never start"
            )
            continue
        used.add(name)
        if rc.doc.get("handler") != SPIN_SHIM_HANDLER:
            c.fail(
                f"{rc.ref()}: handler {rc.doc.get('handler')!r} is not {SPIN_SHIM_HANDLER!r}, the containerd runtime "
                f"K3s registers for containerd-shim-spin-v2; the pods of {app.ref()} would not start"
            )
    c.summary = f"RuntimeClass(es) {', '.join(sorted(used)) or 'none'} exist and use handler {SPIN_SHIM_HANDLER!r}"
    return c


def check_replicas(sets: list[ObjectSet]) -> Check:
    """Rule 3: a SpinApp runs at least one pod unless an autoscaler owns the
    count, and then it sets no replicas: spin-operator v0.6.1's webhook
    refuses both (internal/webhook/spinapp_validating.go, validateReplicas)."""
    c = Check("replicas")
    n = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            if get(app.doc, "spec", "enableAutoscaling") is True:
                if get(app.doc, "spec", "replicas") not in (None, 0):
                    c.fail(
                        f"{app.ref()}: replicas is {get(app.doc, 'spec', 'replicas')!r} with enableAutoscaling: true; "
                        f"spin-operator refuses replicas when an autoscaler owns the count (drop it)"
                    )
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


OUTBOUND_HOST = re.compile(r"rediss?://\{\{\s*valkey_host\s*\}\}")


def check_outbound(sets: list[ObjectSet], spin: dict) -> Check:
    """Rule 5: the components may reach Valkey and nothing else: every
    allowed_outbound_hosts entry is redis://{{ valkey_host }} or (TLS)
    rediss://{{ valkey_host }}, and the SpinApp's valkey_host is the Valkey
    Service of its namespace."""
    c = Check("outbound")
    components = spin.get("component") or {}
    if "valkey_host" not in spin_variables(spin):
        c.fail("spin.toml does not declare the variable valkey_host")
    for cid, comp in sorted(components.items()):
        for host in comp.get("allowed_outbound_hosts") or []:
            if not OUTBOUND_HOST.fullmatch(str(host)):
                c.fail(
                    f"spin.toml [component.{cid}] allowed_outbound_hosts has {host!r}; the components may reach "
                    f"only Valkey: use exactly 'redis://{{{{ valkey_host }}}}' or 'rediss://{{{{ valkey_host }}}}'"
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
                m = re.fullmatch(r"rediss?://[^@/]*@([^/?#]+)/?.*", url)
                if not m or m.group(1) not in hosts:
                    c.fail(f"{secret.ref()}: edge-url's host is not the SpinApp's valkey_host ({', '.join(sorted(hosts))})")
    n_hosts = sum(len(comp.get("allowed_outbound_hosts") or []) for comp in components.values())
    c.summary = f"{len(components)} component(s), {n_hosts} outbound host(s), all redis[s]://{{{{ valkey_host }}}} = {', '.join(sorted(hosts))}"
    return c




def check_rates_contract(sets: list[ObjectSet], spin: dict) -> Check:
    """The Valkey key and channel are the same everywhere: the
    SpinApp's rates_key/rates_channel (or spin.toml's defaults), the key and
    channel Valkey's ACL grants the edge (RATES_KEY/RATES_CHANNEL of the
    Deployment valkey), the ones the refresher writes (its
    RATES_KEY/RATES_CHANNEL, or its defaults), and the key the exporter
    (components/monitoring) reads."""
    c = Check("rates-contract")
    declared = spin_variables(spin)
    agreed = set()
    pairs = (("rates_key", "RATES_KEY"), ("rates_channel", "RATES_CHANNEL"))
    for s in deployable(sets):
        for app in s.of_kind("SpinApp"):
            ns = app.namespace
            variables = {v.get("name"): v for v in get(app.doc, "spec", "variables", default=[]) or []}
            expected = {}
            for var, env in pairs:
                v = variables.get(var)
                if v is not None and "value" not in v:
                    c.fail(f"{app.ref()}: {var} must be an inline value (it is not secret), so it can be checked")
                    continue
                expected[env] = str(v["value"]) if v is not None else str(declared.get(var, {}).get("default"))
            valkey = s.find("Deployment", ns, "valkey")
            if valkey is None:
                c.fail(f"{app.ref()}: there is no Deployment valkey in namespace {ns}")
            else:
                acl = [cont for _, cont in containers_of(pod_spec(valkey) or {}) if any(env_value(s, valkey, cont, env) is not None for _, env in pairs)]
                if not acl:
                    c.fail(f"{valkey.ref()}: no container sets RATES_KEY/RATES_CHANNEL, from which the edge's ACL is written")
                for cont in acl:
                    for env, want in expected.items():
                        got = env_value(s, valkey, cont, env)
                        if got != want:
                            c.fail(
                                f"{valkey.ref()}: container {cont.get('name')!r} {env} {got if got is _UNRESOLVED else repr(got)} "
                                f"(what Valkey's ACL lets the edge use) is not the SpinApp's {env.lower()} {want!r} ({app.ref()})"
                            )
            readers = [(job, cont, "writes") for job in s.of_kind("CronJob") for _, cont in containers_of(pod_spec(job) or {})]
            readers += [(o, cont, "reads") for o, cont in exporter_containers(s)]
            for job, cont, verb in readers:
                if job.namespace != ns:
                    continue
                for env, want in expected.items():
                    if verb == "reads" and env != "RATES_KEY":
                        continue  # the exporter subscribes to nothing
                    got = env_value(s, job, cont, env)
                    got = REFRESHER_DEFAULTS[env] if got is None else got
                    if got != want:
                        c.fail(
                            f"{job.ref()}: container {cont.get('name')!r} {verb} {env} {got if got is _UNRESOLVED else repr(got)}, "
                            f"not the SpinApp's {env.lower()} {want!r} ({app.ref()})"
                        )
            agreed.add(f"{expected.get('RATES_KEY')}/{expected.get('RATES_CHANNEL')}")
    c.summary = f"key/channel {', '.join(sorted(agreed))} agree across the SpinApp, Valkey's ACL, the refresher and the exporter"
    return c


def check_kv_stores(sets: list[ObjectSet]) -> Check:
    """Every key-value store of a SpinApp has a type Spin knows; a
    `spin` (SQLite) store has an absolute path on a writable volume mounted
    into the pod, which every volumeMount names."""
    c = Check("kv-store")
    n = set()
    for s in sets:
        for app in s.of_kind("SpinApp"):
            volumes = {v.get("name") for v in get(app.doc, "spec", "volumes", default=[]) or []}
            mounts = get(app.doc, "spec", "volumeMounts", default=[]) or []
            for name in sorted(volumes & SPINAPP_RESERVED_VOLUMES):
                c.fail(f"{app.ref()}: volume {name!r} clashes with the volume spin-operator adds to the pod under that name; rename it")
            for m in mounts:
                if m.get("name") not in volumes:
                    c.fail(f"{app.ref()}: volumeMount {m.get('name')!r} names no volume of spec.volumes")
            if get(app.doc, "spec", "runtimeConfig", "loadFromSecret"):
                continue  # the runtime config is in a Secret: not in the manifests
            for store in get(app.doc, "spec", "runtimeConfig", "keyValueStores", default=[]) or []:
                name, kind = store.get("name"), store.get("type")
                where = f"{app.ref()}: key-value store {name!r}"
                n.add((app.identity(), name))
                if kind not in KV_STORE_TYPES:
                    c.fail(
                        f"{where} has type {kind!r}, which Spin 3.6.3 (containerd-shim-spin 0.24) does not know "
                        f"({', '.join(sorted(KV_STORE_TYPES))}; SQLite is 'spin')"
                    )
                    continue
                if kind != "spin":
                    continue
                option = next((o for o in store.get("options") or [] if o.get("name") == "path"), None)
                path = None if option is None else option.get("value")
                if path is None:
                    c.fail(f"{where}: needs an inline path option, a file on a mounted volume (without one the store lives in memory)")
                    continue
                if not str(path).startswith("/"):
                    c.fail(
                        f"{where}: path {path!r} must be absolute (Spin resolves a relative one against the runtime "
                        f"config file's directory, / under containerd-shim-spin: on no volume)"
                    )
                    continue
                mount = max(
                    (m for m in mounts if str(path).startswith(str(m.get("mountPath", "")).rstrip("/") + "/")),
                    key=lambda m: len(str(m.get("mountPath"))),
                    default=None,
                )
                if mount is None:
                    where_mounted = ", ".join(str(m.get("mountPath")) for m in mounts) or "none"
                    c.fail(f"{where}: path {path!r} is on no volumeMount of the SpinApp (mounted: {where_mounted})")
                elif mount.get("readOnly"):
                    c.fail(f"{where}: path {path!r} is on the read-only volumeMount {mount.get('mountPath')!r}")
    c.summary = f"{len(n)} key-value store(s) of a known type; SQLite files on mounted volumes"
    return c


def check_paths(sets: list[ObjectSet]) -> Check:
    """Probes and Ingress routes use paths the edge serves
    (SERVED_PATHS); probes only the health paths among them."""
    c = Check("paths")
    health = sorted(p for p, probe in SERVED_PATHS.items() if probe)
    n = set()
    for s in sets:
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
            for rule in get(ing.doc, "spec", "rules", default=[]) or []:
                for p in get(rule, "http", "paths", default=[]) or []:
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
    return c


def _pods(s: ObjectSet, sets: list[ObjectSet]) -> list[tuple[Obj, dict]]:
    """Every (maker, pod labels) of the pods set s brings about: workloads,
    SpinApps (as spin-operator labels them), and the HTTP-01 solver pods
    cert-manager runs in a Certificate's namespace while an ACME issuer with
    an Ingress solver issues it (listed under the Certificate)."""
    pods = [(o, labels) for o in s.objects if (labels := pod_labels(o)) is not None]
    applied = [t for t in sets if t.deployable and 0 < t.step < s.step] + [s]
    for cert in s.of_kind("Certificate"):
        issuer, _ = cert_issuer(cert, applied)
        if issuer is not None and http01_ingress_solvers(issuer):
            pods.append((cert, dict(ACME_SOLVER_LABELS)))
    return pods


def check_selectors(sets: list[ObjectSet]) -> Check:
    """Every selector picks pods the manifests make: a NetworkPolicy's
    podSelector and its same-namespace peers, a Service's selector, a
    PodDisruptionBudget's selector. One that selects nothing protects or
    serves nothing, silently."""
    c = Check("selectors")
    n = set()
    for s in deployable(sets):
        pods = _pods(s, sets)

        def selects(ns, selector):
            return any(o.namespace == ns and selector_matches(selector, ls) for o, ls in pods)

        def need(o, what, selector):
            n.add((o.identity(), what))
            if not selects(o.namespace, selector):
                c.fail(f"{o.ref()}: {what} {_selector_text(selector)} selects no pod the manifests make in namespace {o.namespace}")

        for np in s.of_kind("NetworkPolicy"):
            selector = get(np.doc, "spec", "podSelector", default={}) or {}
            if selector:
                need(np, "spec.podSelector", selector)
            for direction, peers in (("ingress", "from"), ("egress", "to")):
                for i, rule in enumerate(get(np.doc, "spec", direction, default=[]) or []):
                    for j, peer in enumerate(rule.get(peers) or []):
                        if peer.get("podSelector") and "namespaceSelector" not in peer:
                            need(np, f"spec.{direction}[{i}].{peers}[{j}].podSelector", peer["podSelector"])
        for svc in s.of_kind("Service"):
            selector = get(svc.doc, "spec", "selector")
            if selector:
                need(svc, "spec.selector", {"matchLabels": selector})
        for pdb in s.of_kind("PodDisruptionBudget"):
            need(pdb, "spec.selector", get(pdb.doc, "spec", "selector", default={}) or {})
    c.summary = f"{len(n)} selector(s) each pick pods of the manifests"
    return c


def _disruptions_allowed(spec: dict, replicas: int) -> int | None:
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


def check_disruption(sets: list[ObjectSet]) -> Check:
    """A drain never takes every edge pod at once, and never blocks
    for good. Every SpinApp has a PodDisruptionBudget; each budget covers the
    pods of one workload, which no other budget covers (the eviction API
    refuses pods under two); a budget of a workload with several replicas lets
    at least one go. A single-replica workload's budget may refuse all
    evictions: that is its only meaningful form (see disruptionbudgets.yaml)."""
    c = Check("disruption")
    n = set()
    for s in deployable(sets):
        pods = _pods(s, sets)
        pdbs = s.of_kind("PodDisruptionBudget")
        covered: dict[tuple, list[Obj]] = {}
        for pdb in pdbs:
            selector = get(pdb.doc, "spec", "selector", default={}) or {}
            workloads = [o for o, ls in pods if o.namespace == pdb.namespace and selector_matches(selector, ls)]
            for w in workloads:
                covered.setdefault(w.identity(), []).append(pdb)
            if len(workloads) > 1:
                c.fail(f"{pdb.ref()}: selects the pods of several workloads ({', '.join(w.ref() for w in workloads)}); give each its own")
            if len(workloads) != 1:
                continue
            w = workloads[0]
            replicas = replicas_of(w)
            allowed = None if replicas is None else _disruptions_allowed(get(pdb.doc, "spec", default={}) or {}, replicas)
            n.add(pdb.identity())
            if replicas is not None and replicas > 1 and allowed is not None and allowed < 1:
                c.fail(
                    f"{pdb.ref()}: allows no disruption of {w.ref()}'s {replicas} replicas, so a drain never "
                    f"finishes; let at least one go (e.g. minAvailable: {replicas - 1})"
                )
        for o, _ in pods:
            budgets = covered.get(o.identity(), [])
            if len(budgets) > 1:
                c.fail(f"{o.ref()}: its pods are under several PodDisruptionBudgets ({', '.join(b.name for b in budgets)}); the eviction API refuses to evict them")
            if o.kind == "SpinApp" and not budgets:
                c.fail(f"{o.ref()}: no PodDisruptionBudget selects its pods; a drain may evict every replica at once")
    c.summary = f"{len(n)} PodDisruptionBudget(s), one per workload; every SpinApp has one, none blocks a multi-replica drain"
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
    for s in deployable(sets):
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
    for s in deployable(sets):
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



def check_image(sets: list[ObjectSet], spin: dict, crate_versions: dict[str, str]) -> Check:
    """Every image is what the project's build pushes, judged after each
    kustomization's `images:`:
    - the SpinApp runs what `make push REGISTRY=<registry>/<prefix>/<name>:<tag>`
      pushes from spin.toml: a repository named like [application] name,
      tagged with [application] version (the version the artifact is
      annotated with), or pinned by digest;
    - the containers of IMAGE_CRATES run what `make images` builds: a
      repository named like the image, tagged with its crate's version, or
      pinned by digest;
    - in an overlay these carry a registry (the base names them without one,
      for the overlays' `images:` to complete); in the overlays of
      PINNED_OVERLAYS every image is pinned by digest."""
    c = Check("image")
    app_meta = spin.get("application") or {}
    name, version = app_meta.get("name"), app_meta.get("version")
    if not name or not version:
        c.fail("spin.toml [application] needs a name and a version (the SpinApp's image is checked against them)")
    images = set()
    for s in sets:
        overlay = s.label.startswith("overlay ")

        def judge(o: Obj, image: str, want_name: str, want_version: str, pushed_by: str, versioned_in: str) -> None:
            repository, tag, digest = split_image(image)
            expected = f"<registry>/<prefix>/{want_name}:{want_version}"
            if repository.rsplit("/", 1)[-1] != want_name:
                c.fail(f"{o.ref()}: image {image!r} is not what {pushed_by} pushes; expected {expected}")
            elif overlay and "/" not in repository:
                c.fail(
                    f"[{s.label}] {o.ref()}: image {image!r} has no registry: give the overlay's images: entry "
                    f"{want_name!r} a newName {'/'.join(expected.split('/')[:-1])}/{want_name}"
                )
            elif digest is None and tag != want_version:
                c.fail(
                    f"[{s.label}] {o.ref()}: image {image!r} has tag {tag or '(none)'}, not {versioned_in} {want_version!r}: "
                    f"{pushed_by} tags it {want_name}:{want_version} (bump the version for a new push) or pin it by digest"
                )

        for app in s.of_kind("SpinApp"):
            image = str(get(app.doc, "spec", "image", default=""))
            judge(app, image, name, version, "`make push`", "spin.toml's version")
            images.add(image)
        for o in s.objects:
            for m, k in image_slots(o, [SPIN_IMAGE_FIELD]):
                crate = split_image(m[k])[0].rsplit("/", 1)[-1]
                if crate in crate_versions:
                    judge(o, m[k], crate, crate_versions[crate], "`make images`", f"{IMAGE_CRATES[crate]}'s version")
                    images.add(m[k])
        if s.label.removeprefix("overlay ") not in PINNED_OVERLAYS:
            continue
        for o in s.objects:
            for m, k in image_slots(o, [("SpinApp", ("spec", "image"))]):
                if split_image(m[k])[2] is None:
                    c.fail(f"[{s.label}] {o.ref()}: image {m[k]!r} is not pinned by digest; add it to the overlay's images: with a digest")
    versions = ", ".join(f"{n} {v}" for n, v in [(name, version), *sorted(crate_versions.items())])
    c.summary = f"{len(images)} image reference(s) of the project's builds match {versions}; {', '.join(PINNED_OVERLAYS)} pinned by digest"
    return c


def check_spin_image_executor(sets: list[ObjectSet]) -> Check:
    """A SpinApp on a `spinImage` executor (runtime-shim) can start: the
    container pulls the app itself, anonymously (spin-operator passes no
    imagePullSecrets on), over HTTPS trusting the CA bundle the executor
    mounts (installDefaultCACerts or caCertSecret), and runtime-shim accepts
    only the runtime config it implements: key-value store `default` of type
    `spin`, no SQLite databases, LLM or runtime config from a Secret."""
    c = Check("spin-image")
    n = set()
    for s, _, app, ex in spinapp_executors(sets):
        executor = get(app.doc, "spec", "executor")
        config = get(ex.doc, "spec", "deploymentConfig", default={}) if ex else {}
        if not config.get("spinImage"):
            continue
        n.add(app.identity())
        where = f"[{s.label}] {app.ref()} (executor {executor!r}, spinImage)"
        if get(app.doc, "spec", "imagePullSecrets"):
            c.fail(f"{where}: imagePullSecrets do not reach the container, which pulls the app anonymously; make the app's image public")
        if not config.get("installDefaultCACerts") and not config.get("caCertSecret"):
            c.fail(f"{ex.ref()}: neither installDefaultCACerts nor caCertSecret: the container has no CA bundle to pull the app over HTTPS")
        runtime = get(app.doc, "spec", "runtimeConfig", default={}) or {}
        for key in ("loadFromSecret", "sqliteDatabases", "llmCompute"):
            if runtime.get(key):
                c.fail(f"{where}: runtimeConfig.{key} is not supported by runtime-shim, which would refuse to start")
        for store in runtime.get("keyValueStores") or []:
            if (store.get("name"), store.get("type")) != ("default", "spin"):
                c.fail(
                    f"{where}: key-value store {store.get('name')!r} of type {store.get('type')!r}: runtime-shim "
                    f"provides only 'default' of type 'spin', and would refuse to start"
                )
    c.summary = f"{len(n)} SpinApp(s) on a spinImage executor: public app image, CA bundle, runtime config runtime-shim accepts"
    return c


def check_tls(sets: list[ObjectSet]) -> Check:
    """Every Ingress an overlay applies serves HTTPS with a certificate that
    cert-manager keeps, and redirects HTTP to it:
    - the Ingress has tls:, and every host of its rules is in one of its tls
      entries (Traefik picks the certificate by SNI; a host without one gets
      Traefik's default certificate);
    - each tls secretName is the secretName of a Certificate of the same
      namespace, and that Certificate's dnsNames cover the entry's hosts;
    - every Certificate's issuerRef names an Issuer of its namespace or a
      ClusterIssuer, applied with it or before; a CA issuer's secret is made
      by a Certificate with isCA; an ACME issuer that solves HTTP-01 with an
      Ingress uses the class of the Ingresses it issues certificates for;
    - every `<namespace>-<name>@kubernetescrd` of the Ingress's
      router.middlewares annotation is a Middleware of the set (Traefik
      drops a router whose middleware is missing), and a TLS Ingress names
      one that redirects to https."""
    c = Check("tls")
    n_ing, n_cert = set(), set()
    for s in deployable(sets, from_step=1):
        applied = [t for t in sets if t.deployable and 0 < t.step < s.step] + [s]
        at = f"[{s.label}] "
        issuers = sorted({f"{o.kind} {o.name}" for t in applied for o in t.objects if o.kind in ("Issuer", "ClusterIssuer")})

        def certificate_for(ns: str | None, secret: str) -> Obj | None:
            return next(
                (x for x in s.of_kind("Certificate") if x.namespace == ns and get(x.doc, "spec", "secretName") == secret), None
            )

        for cert in s.of_kind("Certificate"):
            n_cert.add(cert.identity())
            issuer, desc = cert_issuer(cert, applied)
            if issuer is None:
                c.fail(
                    f"{at}{cert.ref()}: issuerRef {desc} is neither an Issuer of namespace {cert.namespace} nor a ClusterIssuer "
                    f"of the manifests (issuers: {', '.join(issuers) or 'none'}); it would never be issued"
                )
        for issuer in s.of_kind("Issuer"):
            secret = get(issuer.doc, "spec", "ca", "secretName")
            if not secret:
                continue
            ca = certificate_for(issuer.namespace, secret)
            if ca is None:
                c.fail(f"{at}{issuer.ref()}: its CA Secret {secret!r} is made by no Certificate of namespace {issuer.namespace}")
            elif get(ca.doc, "spec", "isCA") is not True:
                c.fail(f"{at}{ca.ref()}: makes the CA Secret {secret!r} of {issuer.ref()} but is not isCA: true")
        for ing in s.of_kind("Ingress"):
            n_ing.add(ing.identity())
            tls = get(ing.doc, "spec", "tls", default=[]) or []
            hosts = [r.get("host") for r in get(ing.doc, "spec", "rules", default=[]) or []]
            if not tls and s.label.startswith("overlay "):
                c.fail(
                    f"{at}{ing.ref()}: has no tls:; every overlay serves the edge over HTTPS "
                    f"(a component of manifests/components/, manifests/README.md \"HTTPS\")"
                )
            tls_hosts = {h for entry in tls for h in entry.get("hosts") or []}
            for host in hosts if tls else []:
                if host is None:
                    c.fail(f"{at}{ing.ref()}: a rule without host in an Ingress with tls:; Traefik picks the certificate by host")
                elif host not in tls_hosts:
                    c.fail(f"{at}{ing.ref()}: host {host!r} is in no tls entry; Traefik would answer it with its default certificate")
            for i, entry in enumerate(tls):
                secret = entry.get("secretName")
                cert = certificate_for(ing.namespace, secret) if secret else None
                if cert is None:
                    made = sorted(str(get(x.doc, "spec", "secretName")) for x in s.of_kind("Certificate") if x.namespace == ing.namespace)
                    c.fail(
                        f"{at}{ing.ref()}: tls[{i}] secretName {secret!r} is the secretName of no Certificate of namespace "
                        f"{ing.namespace} (they make: {', '.join(made) or 'nothing'})"
                    )
                    continue
                names = get(cert.doc, "spec", "dnsNames", default=[]) or []
                for host in entry.get("hosts") or []:
                    if not any(dns_name_covers(str(p), str(host)) for p in names):
                        c.fail(
                            f"{at}{cert.ref()}: dnsNames {names} do not cover host {host!r} of {ing.ref()}; "
                            f"clients would refuse the certificate"
                        )
                issuer, _ = cert_issuer(cert, applied)
                for solver in http01_ingress_solvers(issuer) if issuer is not None else []:
                    wanted = get(ing.doc, "spec", "ingressClassName")
                    got = solver.get("ingressClassName") or solver.get("class")
                    if "name" not in solver and got != wanted:
                        c.fail(
                            f"{at}{issuer.ref()}: its HTTP-01 solver uses ingress class {got!r}, not {wanted!r} of {ing.ref()}: "
                            f"the ACME server's request for the challenge would not reach the solver"
                        )
            annotations = get(ing.doc, "metadata", "annotations", default={}) or {}
            redirects = False
            for ref in filter(None, (r.strip() for r in str(annotations.get(TRAEFIK_MIDDLEWARES, "")).split(","))):
                name, _, provider = ref.partition("@")
                if provider != "kubernetescrd":
                    continue  # another provider's (file, ...): not in the manifests
                known = sorted(f"{m.namespace}-{m.name}" for m in s.of_kind("Middleware"))
                mw = next((m for m in s.of_kind("Middleware") if f"{m.namespace}-{m.name}" == name), None)
                if mw is None:
                    c.fail(
                        f"{at}{ing.ref()}: {TRAEFIK_MIDDLEWARES} names {ref!r}, which is no <namespace>-<name> of a Middleware "
                        f"of the manifests ({', '.join(known) or 'none'}); Traefik would not route the Ingress"
                    )
                elif get(mw.doc, "spec", "redirectScheme", "scheme") == "https":
                    redirects = True
            if tls and not redirects:
                c.fail(
                    f"{at}{ing.ref()}: HTTP is not redirected to HTTPS: {TRAEFIK_MIDDLEWARES} names no Middleware "
                    f"with redirectScheme scheme https"
                )
    c.summary = (
        f"{len(n_ing)} Ingress(es) and {len(n_cert)} Certificate(s): TLS Secrets made by Certificates covering the hosts, "
        f"issuers and redirect middlewares exist; every overlay serves HTTPS"
    )
    return c


# -- Valkey over TLS ----------------------------------------------------------
# Valkey serves TLS only, with a certificate cert-manager keeps, and every
# client verifies it (manifests/README.md, "Valkey over TLS").

# A Redis/Valkey URL: plain (redis://, valkey://) or TLS (rediss://, valkeys://).
VALKEY_URL = re.compile(r"\b((?:redis|valkey)s?)://([^\s\"']*)", re.I)
PLAIN_VALKEY_SCHEMES = {"redis", "valkey"}
# The programs that serve Valkey (the image's valkey-server; redis-server alike).
VALKEY_SERVERS = {"valkey-server", "redis-server"}
# The protocol versions Valkey may offer (tls-protocols): TLS 1.2 and later.
TLS_PROTOCOLS = {"TLSv1.2", "TLSv1.3"}
# The Secret key spin-operator v0.6.1 mounts from an executor's caCertSecret
# at /etc/ssl/certs/ca-certificates.crt (internal/controller/deployment.go).
SPIN_CA_KEY = "ca-certificates.crt"
# cert-manager's key of the issuing CA's certificate in a certificate's Secret.
CERT_CA_KEY = "ca.crt"
# The environment variables by which the native clients (refresher, exporter)
# take Valkey's URL and the extra CA file they trust (ops/src/valkey.rs).
VALKEY_URL_ENV = "VALKEY_URL"
CA_FILE_ENV = "SSL_CERT_FILE"


def example_secrets(sets: list[ObjectSet]) -> list[Obj]:
    return [o for s in sets if not s.deployable for o in s.objects if o.kind == "Secret"]


def example_secret_value(examples: list[Obj], namespace: str | None, name: str, key: str) -> str | None:
    """A key of an example Secret (stringData, or data decoded); None when
    the examples do not have it."""
    for ex in examples:
        if ex.name != name or (ex.namespace or "default") != (namespace or "default"):
            continue
        string_data, data = ex.doc.get("stringData") or {}, ex.doc.get("data") or {}
        if key in string_data:
            return str(string_data[key])
        if key in data:
            try:
                return base64.b64decode(str(data[key]), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def resolved_values(s: ObjectSet, examples: list[Obj], obj: Obj) -> list[tuple[str, str, str | None]]:
    """(where, variable, value) of every environment variable of a
    workload's containers and every variable of a SpinApp, with its value
    resolved: a literal, a ConfigMap key of the set, a key of an example
    Secret (secrets.example.yaml stands for the Secrets made by hand); None
    when the manifests do not show it. envFrom sources give all their keys."""
    out = []
    ns = obj.namespace
    variables = get(obj.doc, "spec", "variables", default=[]) or [] if obj.kind == "SpinApp" else []
    for v in variables:
        secret, config = get(v, "valueFrom", "secretKeyRef"), get(v, "valueFrom", "configMapKeyRef")
        value = str(v["value"]) if "value" in v else None
        if secret:
            value = example_secret_value(examples, ns, secret.get("name"), secret.get("key"))
        elif config:
            cm = s.find("ConfigMap", ns, config.get("name"))
            found = (cm.doc.get("data") or {}).get(config.get("key")) if cm else None
            value = None if found is None else str(found)
        out.append((f"{obj.ref()}: variable {v.get('name')!r}", str(v.get("name")), value))
    for _, cont in containers_of(pod_spec(obj) or {}):
        where = f"{obj.ref()}: container {cont.get('name')!r}"
        for e in cont.get("env") or []:
            ref = get(e, "valueFrom", "secretKeyRef")
            value = example_secret_value(examples, ns, ref.get("name"), ref.get("key")) if ref else env_value(s, obj, cont, e.get("name"))
            out.append((f"{where} env {e.get('name')}", str(e.get("name")), None if value is _UNRESOLVED else value))
        for source in cont.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if source.get("configMapRef"):
                cm = s.find("ConfigMap", ns, source["configMapRef"].get("name"))
                for key, value in ((cm.doc.get("data") or {}) if cm else {}).items():
                    out.append((f"{where} env {prefix}{key}", prefix + key, str(value)))
            if source.get("secretRef"):
                name = source["secretRef"].get("name")
                ex = next((x for x in examples if x.name == name and (x.namespace or "default") == (ns or "default")), None)
                for key in {**(ex.doc.get("data") or {}), **(ex.doc.get("stringData") or {})} if ex else {}:
                    out.append((f"{where} env {prefix}{key}", prefix + key, example_secret_value(examples, ns, name, key)))
    return out


def redact_url(url: str) -> str:
    """A URL without its password."""
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", url)


def valkey_url_host(url: str) -> str | None:
    """The host of a Redis/Valkey URL (without port or brackets)."""
    m = re.match(r"[A-Za-z]+://(?:[^@/]*@)?(\[[^\]]*\]|[^:/?#]*)", url)
    return m.group(1).strip("[]") if m and m.group(1) else None


def host_of(host_port: str) -> str:
    """The host of host:port (an IPv6 address in brackets too)."""
    if host_port.startswith("["):
        return host_port[1:].split("]", 1)[0]
    return host_port.rsplit(":", 1)[0] if ":" in host_port else host_port


def certificate_covers(cert: Obj, host: str) -> bool:
    """A Certificate is valid for a host: an IP address among its
    ipAddresses, a name covered by one of its dnsNames."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return any(dns_name_covers(str(p), host) for p in get(cert.doc, "spec", "dnsNames", default=[]) or [])
    return any(ipaddress.ip_address(str(a)) == ip for a in get(cert.doc, "spec", "ipAddresses", default=[]) or [])


def _shell_script(container: dict) -> str:
    return "\n".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))


def printf_lines(script: str) -> list[str] | str:
    """The lines a shell script writes with `printf '%s\\n' 'line' ...`
    (each argument one line, as printf writes them); the reason when one
    cannot be read."""
    out, lines, i = [], script.splitlines(), 0
    while i < len(lines):
        text = lines[i].strip()
        i += 1
        if not re.match(r"printf\s+'%s\\n'", text):
            continue
        while text.endswith("\\") and i < len(lines):
            text = text[:-1] + " " + lines[i].strip()
            i += 1
        try:
            words = shlex.split(text)
        except ValueError as e:
            return f"cannot read a printf line of its config script: {e}"
        if any("$" in w for w in words[2:]):
            return "a printf '%s\\n' line of its config script writes a $variable, which this checker cannot resolve"
        out += words[2:]
    return out


def config_directives(lines: list[str]) -> dict[str, str]:
    """Valkey config lines as {directive (lower case): value, quotes removed};
    a later line wins, as in Valkey."""
    out = {}
    for line in lines:
        name, _, value = line.strip().partition(" ")
        if not name or name.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[name.lower()] = value
    return out


@dataclass
class ValkeyServer:
    """A Valkey of the manifests: the workload, its valkey-server container
    and the directives it runs with (None, with `problem`, when the
    manifests do not show them)."""

    obj: Obj
    container: dict
    directives: dict[str, str] | None
    problem: str = ""


def valkey_servers(s: ObjectSet) -> list[ValkeyServer]:
    """Every container of the set that runs valkey-server, with the
    directives of its config: the lines the pod's init containers write into
    the config file it is started with (`printf '%s\\n' 'directive value' ...`,
    as base/valkey.yaml does), then its `--directive value` arguments, which
    Valkey applies after the file."""
    out = []
    for o in s.objects:
        spec = pod_spec(o) or {}
        for cont in spec.get("containers") or []:
            words = [str(w) for w in (cont.get("command") or []) + (cont.get("args") or [])]
            start = next((i for i, w in enumerate(words) if posixpath.basename(w) in VALKEY_SERVERS), None)
            if start is None:
                continue
            rest = words[start + 1 :]
            files = []
            while rest and not rest[0].startswith("--"):
                files.append(rest.pop(0))
            lines, problem = [], ""
            for path in files:
                writers = [c for c in spec.get("initContainers") or [] if path in _shell_script(c)]
                if not writers:
                    problem = f"its config file {path} is written by no init container; this checker reads the config an init container writes with printf '%s\\n' lines"
                for writer in writers:
                    written = printf_lines(_shell_script(writer))
                    if isinstance(written, str):
                        problem = f"init container {writer.get('name')!r}: {written}"
                    else:
                        lines += written
            while rest:
                name = rest.pop(0)[2:]
                value = []
                while rest and not rest[0].startswith("--"):
                    value.append(rest.pop(0))
                lines.append(f"{name} {' '.join(value)}")
            out.append(ValkeyServer(o, cont, None if problem else config_directives(lines), problem))
    return out


def valkey_tls_secret(s: ObjectSet, server: ValkeyServer) -> tuple[str | None, str]:
    """The Secret a Valkey's tls-cert-file and tls-key-file come from: a
    Secret volume mounted as a directory (a subPath mount never sees the
    files of a renewal); and the reason when they do not."""
    spec = pod_spec(server.obj) or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    names = set()
    for directive in ("tls-cert-file", "tls-key-file"):
        path = (server.directives or {}).get(directive)
        if not path:
            return None, f"has no {directive}"
        mount = max(
            (m for m in server.container.get("volumeMounts") or [] if path == m.get("mountPath") or path.startswith(str(m.get("mountPath", "")).rstrip("/") + "/")),
            key=lambda m: len(str(m.get("mountPath"))),
            default=None,
        )
        if mount is None:
            return None, f"{directive} {path} is on no volumeMount of container {server.container.get('name')!r}"
        if mount.get("subPath") or mount.get("subPathExpr"):
            return None, (
                f"{directive} {path} is mounted with subPath, so the kubelet never updates it: a renewed certificate "
                f"would not reach Valkey; mount the Secret as a directory"
            )
        secret = get(volumes.get(mount.get("name")) or {}, "secret", "secretName")
        if not secret:
            return None, f"{directive} {path} is not on a Secret volume (volume {mount.get('name')!r})"
        names.add(secret)
    if len(names) != 1:
        return None, f"tls-cert-file and tls-key-file come from different Secrets ({', '.join(sorted(names))})"
    return names.pop(), ""


def check_valkey_urls(sets: list[ObjectSet]) -> Check:
    """In the overlays of TLS_ONLY_OVERLAYS every Valkey URL is TLS:
    no redis:// (or valkey://) URL and none with the fragment #insecure,
    which makes Spin skip the certificate check (redis-rs with native-tls)
    and the allowed-hosts check cannot see. Judged on every value the
    overlay's workloads and SpinApps read: literals, ConfigMap keys, and the
    example Secrets' keys (stringData or data) they stand for."""
    c = Check("valkey-urls")
    examples = example_secrets(sets)
    n = set()  # (where) of every value holding a Valkey URL
    for s in deployable(sets):
        if s.label.removeprefix("overlay ") not in TLS_ONLY_OVERLAYS:
            continue
        for o in s.objects:
            for where, _, value in resolved_values(s, examples, o):
                for m in VALKEY_URL.finditer(value or ""):
                    url = m.group(0)
                    n.add(where)
                    if m.group(1).lower() in PLAIN_VALKEY_SCHEMES:
                        c.fail(
                            f"[{s.label}] {where}: {redact_url(url)} is a {m.group(1)}:// URL in clear; Valkey serves TLS "
                            f"only and passwords must not cross the network in clear: use rediss://"
                        )
                    if "#" in url and "insecure" in url.split("#", 1)[1].lower():
                        c.fail(
                            f"[{s.label}] {where}: {redact_url(url)} has #insecure, which makes Spin skip the check of "
                            f"Valkey's certificate and host name (runtime-shim and the refresher refuse it): remove it"
                        )
    c.summary = f"{len(n)} setting(s) with a Valkey URL in {', '.join(TLS_ONLY_OVERLAYS)}, all rediss:// without #insecure"
    return c


def check_valkey_tls_only(sets: list[ObjectSet]) -> Check:
    """Every Valkey serves TLS only: `port 0` (Valkey opens 6379 in clear
    when `port` is not set), a `tls-port`, `tls-cert-file` and
    `tls-key-file`; `tls-protocols`, when set, offers only TLS 1.2 and 1.3;
    and every Service selecting it sends its ports to that tls-port."""
    c = Check("valkey-tls")
    n = set()
    for s in deployable(sets):
        for server in valkey_servers(s):
            where = f"{server.obj.ref()}: container {server.container.get('name')!r}"
            n.add(server.obj.identity())
            if server.directives is None:
                c.fail(f"{where}: cannot tell whether Valkey serves TLS only: {server.problem}")
                continue
            d = server.directives
            port = d.get("port", "6379")
            if port != "0":
                c.fail(
                    f"{where}: opens the plain port {port}"
                    + ("" if "port" in d else " (Valkey's default when `port` is not set)")
                    + ": passwords and rates would cross the network in clear; set `port 0` and serve on tls-port"
                )
            tls_port = d.get("tls-port", "0")
            if tls_port in ("", "0"):
                c.fail(f"{where}: has no tls-port: Valkey would serve no TLS; set tls-port 6379")
            for directive in ("tls-cert-file", "tls-key-file"):
                if not d.get(directive):
                    c.fail(f"{where}: has no {directive}: Valkey cannot serve TLS without its certificate and key")
            protocols = d.get("tls-protocols")
            if protocols is not None and (not protocols.split() or set(protocols.split()) - TLS_PROTOCOLS):
                c.fail(f"{where}: tls-protocols {protocols!r} offers more than TLS 1.2 and 1.3 ({' '.join(sorted(TLS_PROTOCOLS))})")
            labels = pod_labels(server.obj) or {}
            ports = {p.get("name"): p.get("containerPort") for p in server.container.get("ports") or []}
            for svc in s.of_kind("Service"):
                selector = get(svc.doc, "spec", "selector") or {}
                if svc.namespace != server.obj.namespace or not selector or not selector_matches({"matchLabels": selector}, labels):
                    continue
                for p in get(svc.doc, "spec", "ports", default=[]) or []:
                    target = p.get("targetPort", p.get("port"))
                    number = ports.get(target) if isinstance(target, str) else target
                    if tls_port not in ("", "0") and str(number) != tls_port:
                        c.fail(
                            f"{svc.ref()}: port {p.get('port')} goes to container port {number if number is not None else target!r} "
                            f"of {server.obj.ref()}, not Valkey's tls-port {tls_port}"
                        )
    c.summary = f"{len(n)} Valkey(s) serve TLS 1.2+ only (port 0, tls-port, certificate and key), behind their Services"
    return c


def check_valkey_certificate(sets: list[ObjectSet]) -> Check:
    """Valkey's certificate is one cert-manager keeps, valid for every
    name clients connect to: tls-cert-file and tls-key-file are files of a
    Secret volume mounted as a directory (never subPath: renewals would not
    reach Valkey), that Secret is made by a Certificate of the namespace, and
    the Certificate covers the valkey_host of every SpinApp of the set and
    the host of every Valkey URL its workloads read (the example Secrets')."""
    c = Check("valkey-certificate")
    examples = example_secrets(sets)
    covered = set()
    for s in deployable(sets):
        applied = [t for t in sets if t.deployable and 0 < t.step < s.step] + [s]
        for server in valkey_servers(s):
            if server.directives is None:
                continue  # valkey-tls reports it
            where = f"{server.obj.ref()}: container {server.container.get('name')!r}"
            secret, problem = valkey_tls_secret(s, server)
            if secret is None:
                if server.directives.get("tls-cert-file"):
                    c.fail(f"{where}: {problem}")
                continue
            ns = server.obj.namespace
            cert = next(
                (x for t in applied for x in t.of_kind("Certificate") if x.namespace == ns and get(x.doc, "spec", "secretName") == secret),
                None,
            )
            if cert is None:
                c.fail(f"{where}: its certificate comes from Secret {secret!r}, which no Certificate of namespace {ns} makes: nothing would renew it")
                continue
            hosts = {}
            for app in s.of_kind("SpinApp"):
                var = next((v for v in get(app.doc, "spec", "variables", default=[]) or [] if v.get("name") == "valkey_host"), None)
                if app.namespace == ns and var is not None and var.get("value"):
                    hosts.setdefault(host_of(str(var["value"])), f"valkey_host of {app.ref()}")
            for o in s.objects:
                if o.namespace != ns:
                    continue
                for w, _, value in resolved_values(s, examples, o):
                    for m in VALKEY_URL.finditer(value or ""):
                        host = valkey_url_host(m.group(0))
                        if host and m.group(1).lower() not in PLAIN_VALKEY_SCHEMES:
                            hosts.setdefault(host, f"the URL of {w}")
            for host, whose in sorted(hosts.items()):
                covered.add((cert.identity(), host))
                if not certificate_covers(cert, host):
                    names = (get(cert.doc, "spec", "dnsNames", default=[]) or []) + (get(cert.doc, "spec", "ipAddresses", default=[]) or [])
                    c.fail(
                        f"[{s.label}] {cert.ref()}: {names} do not cover {host!r} ({whose}): clients verify the host name "
                        f"and would refuse Valkey's certificate"
                    )
    c.summary = f"Valkey's certificate comes from a Certificate, mounted for renewals, valid for {len({h for _, h in covered})} host name(s) clients use"
    return c


def check_valkey_ca(sets: list[ObjectSet]) -> Check:
    """Every pod that connects to Valkey over TLS can verify its
    certificate:
    - a container with VALKEY_URL (the refresher, the exporter) whose URL is
      not plain sets SSL_CERT_FILE to a file of a mounted Secret volume that
      projects ca.crt of the Secret of Valkey's certificate, and only that
      key: never tls.key;
    - every SpinApp's executor sets caCertSecret (spin-operator mounts its
      ca-certificates.crt at /etc/ssl/certs/ca-certificates.crt; with
      installDefaultCACerts alone it would be the operator's public roots,
      without the internal CA), a Secret the examples describe with that key."""
    c = Check("valkey-ca")
    examples = example_secrets(sets)
    n = set()
    for s in deployable(sets):
        tls_secrets = {secret for server in valkey_servers(s) if server.directives for secret in [valkey_tls_secret(s, server)[0]] if secret}
        for o in s.objects:
            spec = pod_spec(o)
            if spec is None:
                continue
            volumes = {v.get("name"): v for v in spec.get("volumes") or []}
            for _, cont in containers_of(spec):
                names = {e.get("name") for e in cont.get("env") or []}
                if VALKEY_URL_ENV not in names:
                    continue
                where = f"{o.ref()}: container {cont.get('name')!r}"
                values = {name: value for w, name, value in resolved_values(s, examples, o) if w.startswith(where + " ")}
                url = values.get(VALKEY_URL_ENV)
                m = VALKEY_URL.match(url or "")
                if m and m.group(1).lower() in PLAIN_VALKEY_SCHEMES:
                    continue  # in clear: nothing to verify (valkey-urls refuses it where TLS is required)
                n.add((o.identity(), cont.get("name")))
                path = values.get(CA_FILE_ENV)
                if not path:
                    c.fail(
                        f"{where}: connects to Valkey ({VALKEY_URL_ENV}) but sets no {CA_FILE_ENV} as a literal path: it "
                        f"could not verify Valkey's certificate (the image has no CA bundle)"
                    )
                    continue
                mount = max(
                    (m for m in cont.get("volumeMounts") or [] if path.startswith(str(m.get("mountPath", "")).rstrip("/") + "/") or path == m.get("mountPath")),
                    key=lambda m: len(str(m.get("mountPath"))),
                    default=None,
                )
                volume = volumes.get(mount.get("name")) if mount else None
                secret = get(volume or {}, "secret", "secretName")
                if mount is None or secret is None:
                    c.fail(f"{where}: {CA_FILE_ENV} {path} is on no mounted Secret volume; mount {CERT_CA_KEY} of Valkey's certificate Secret ({', '.join(sorted(tls_secrets)) or 'none'})")
                    continue
                if tls_secrets and secret not in tls_secrets:
                    c.fail(f"{where}: {CA_FILE_ENV} {path} comes from Secret {secret!r}, not from Valkey's certificate Secret ({', '.join(sorted(tls_secrets))})")
                    continue
                rel = mount.get("subPath") or posixpath.relpath(path, str(mount.get("mountPath")))
                items = get(volume, "secret", "items")
                if items is None:
                    c.fail(
                        f"{where}: volume {mount.get('name')!r} projects every key of Secret {secret!r}, the private key "
                        f"tls.key too: give it items: [{{key: {CERT_CA_KEY}, path: {CERT_CA_KEY}}}]"
                    )
                    continue
                for item in items:
                    if item.get("key") != CERT_CA_KEY:
                        c.fail(f"{where}: volume {mount.get('name')!r} projects {item.get('key')!r} of Secret {secret!r}; a client needs only {CERT_CA_KEY}")
                if not any(item.get("key") == CERT_CA_KEY and item.get("path") == rel for item in items):
                    c.fail(f"{where}: {CA_FILE_ENV} {path} is not the {CERT_CA_KEY} of Secret {secret!r} that volume {mount.get('name')!r} projects")
    for s, _, app, ex in spinapp_executors(sets):
        if ex is None:
            continue  # apply-order reports it
        n.add(app.identity())
        secret = get(ex.doc, "spec", "deploymentConfig", "caCertSecret")
        if not secret:
            c.fail(
                f"{ex.ref()}: no caCertSecret, so the pods of {app.ref()} have no bundle with the CA of Valkey's certificate "
                f"(installDefaultCACerts alone mounts spin-operator's public roots): set caCertSecret: forex-ca-bundle "
                f"(manifests/README.md, section 6)"
            )
        elif example_secret_value(examples, app.namespace, secret, SPIN_CA_KEY) is None:
            c.fail(f"{ex.ref()}: caCertSecret {secret!r} is not described by secrets.example.yaml with the key {SPIN_CA_KEY} spin-operator mounts")
    c.summary = f"{len(n)} Valkey client(s) (containers, SpinApps) have the CA of Valkey's certificate, and no more of its Secret"
    return c


def _strings(node, path: str = ""):
    """(path, value) of every string in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def check_placeholders(sets: list[ObjectSet]) -> Check:
    """Lists, for each set an operator applies, the placeholders it still
    holds: strings naming a host under an example domain (image registries,
    URLs, the ACME contact address, the Ingress's domain) and digests of
    zeros. Informational: it never fails, the untouched tree has them."""
    c = Check("placeholders")
    found: dict[str, set[str]] = {}
    for s in deployable(sets):
        for o in s.objects:
            for path, value in _strings({k: v for k, v in o.doc.items() if k != "metadata"}):
                if PLACEHOLDER_DIGEST in value:
                    found.setdefault(s.label, set()).add(value.replace(PLACEHOLDER_DIGEST, "sha256:000…"))
                elif PLACEHOLDER_HOST.search(value):
                    found.setdefault(s.label, set()).add(value)
    listed = "; ".join(f"[{label}] {', '.join(sorted(values))}" for label, values in sorted(found.items()))
    c.summary = f"to fill in before applying: {listed}" if listed else "none left"
    return c


# --------------------------------------------------------------------------
# Monitoring (manifests/components/monitoring): the prometheus-operator
# objects, the alert rules and their plain twin, the Grafana dashboard, and
# the exporter's Valkey user.

# The metric families alerts and dashboards may use, by exporter (under manifests/).
METRICS_FILE = "components/monitoring/metrics.yaml"
# Series Prometheus makes itself.
PROMETHEUS_OWN_METRICS = {"up", "ALERTS"}
# Labels Prometheus attaches to every target of a ServiceMonitor/PodMonitor
# (prometheus-operator's relabelling), whatever the exporter exports.
TARGET_LABELS = {"job", "instance", "namespace", "service", "pod", "container", "endpoint"}
# Series of a histogram family besides its name; `le` is their bucket label.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# kube-prometheus-stack's Prometheus: its pods' labels, its namespace (as the
# NetworkPolicies name it), and the label by which it selects ServiceMonitors,
# PodMonitors and PrometheusRules (`release: <Helm release>`).
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}
PROMETHEUS_NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS_SELECTOR_LABEL = "release"
PROMETHEUS_OPERATOR_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
# What every alert carries (manifests/README.md, "Monitoring").
ALERT_SEVERITIES = {"critical", "warning", "info"}
ALERT_ANNOTATIONS = ("summary", "what_to_do", "runbook_url")
RUNBOOK = "manifests/README.md"
# Grafana's dashboard sidecar (kube-prometheus-stack) loads ConfigMaps with this label.
GRAFANA_DASHBOARD_LABEL = ("grafana_dashboard", "1")

# The exporter: `refresher exporter` in the refresher's image, and its Valkey
# ACL user. It reads the snapshot (RATES_KEY), rates:seq, the per-day call
# counters and the last run's hash, with GET and HGETALL; the connection
# commands are what a client library sends on connecting.
REFRESHER_IMAGE = "forex-refresher"
EXPORTER_USER = "exporter"
EXPORTER_KEY_PATTERNS = ("rates:seq", "oneframe:calls:*", "refresher:last-run")  # and RATES_KEY
EXPORTER_COMMANDS = {"get", "hgetall"}
CONNECTION_COMMANDS = {"ping", "auth", "hello", "client|setinfo", "client|setname"}


def load_metrics(root: Path) -> dict[str, dict]:
    """metrics.yaml as {family: {"exporter", "type", "labels": {label: [values] or None}}}."""
    path = root / "manifests" / METRICS_FILE
    doc = _read_yaml(path, root) or {}
    families = {}
    for exporter, metrics in doc.items():
        for name, spec in (metrics or {}).items():
            labels = (spec or {}).get("labels") or {}
            families[name] = {
                "exporter": exporter,
                "type": (spec or {}).get("type"),
                "labels": {k: (list(map(str, v)) if isinstance(v, list) else None) for k, v in labels.items()},
            }
    if not families:
        raise LoadError(f"manifests/{METRICS_FILE}: lists no metric")
    return families


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
    """(where, PromQL) of every query the set makes Prometheus or Grafana run:
    each PrometheusRule expression, each dashboard panel target and query variable."""
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
        for rule in get(ing.doc, "spec", "rules", default=[]) or []
        for p in get(rule, "http", "paths", default=[]) or []
        if get(p, "backend", "service")
    }


def check_metrics(sets: list[ObjectSet], metrics: dict[str, dict]) -> Check:
    """Every series an alert rule or a dashboard panel selects is one that
    something exports: a family of metrics.yaml (histograms with their
    _bucket/_sum/_count series) or Prometheus's own `up` and `ALERTS`. Its
    label matchers use labels the family has (or that Prometheus gives every
    target), and values of the labels metrics.yaml enumerates; `job` names
    the job of a ServiceMonitor/PodMonitor of the manifests, and Traefik's
    `service` an Ingress backend as Traefik names it. A misspelt name or
    value would make an alert that never fires, silently."""
    c = Check("metrics")
    jobs, backends = monitor_jobs(sets), traefik_services(sets)
    used, queries = set(), set()
    for s in deployable(sets):
        for where, expr in monitoring_queries(s):
            queries.add((where, expr))
    for where, expr in sorted(queries):
        for name, matchers in promql_selectors(expr):
            if matchers is None:
                c.fail(f"{where}: cannot read the label matchers of {name!r} in {expr!r}")
                continue
            family = None if name in PROMETHEUS_OWN_METRICS else metric_family(name, metrics)
            if family is None and name not in PROMETHEUS_OWN_METRICS:
                close = difflib.get_close_matches(name, list(metrics), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                c.fail(f"{where}: uses {name}, which no exporter lists in manifests/{METRICS_FILE}{hint}")
                continue
            used.add(family or name)
            labels = metrics[family]["labels"] if family else {}
            bucket = family is not None and name != family
            for label, op, value in matchers:
                if label == "job" and op == "=" and value not in jobs:
                    c.fail(f"{where}: job {value!r} is the job of no ServiceMonitor/PodMonitor of the manifests ({', '.join(sorted(jobs)) or 'none'})")
                if family and metrics[family]["exporter"] == "traefik" and label == "service" and op == "=" and value not in backends:
                    c.fail(f"{where}: Traefik names no Ingress backend of the manifests {value!r} ({', '.join(sorted(backends)) or 'none'})")
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
    c.summary = f"{len(queries)} rule/panel query(ies) use {len(used)} metric(s), each listed in manifests/{METRICS_FILE} or Prometheus's own"
    return c


def _first_difference(a, b, path: str = "") -> str:
    """Where two parsed YAML documents first differ, as a path."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key, _MISSING) != b.get(key, _MISSING):
                return _first_difference(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}.{key}" if path else str(key))
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
    return path or "(top level)"


def check_rule_files(sets: list[ObjectSet], root: Path) -> Check:
    """Every PrometheusRule has its plain Prometheus twin beside it,
    rules/<name>.rules.yaml, with the same groups (what a Prometheus without
    the operator loads, and what promtool tests), and a promtool test file
    rules/<name>.rules.test.yaml that tests it: for every alert, a case where
    it fires and one where it stays quiet."""
    c = Check("rule-files")
    seen, n_alerts = set(), 0
    for s in deployable(sets):
        for o in s.of_kind("PrometheusRule"):
            key = (o.source, json.dumps(o.doc.get("spec"), sort_keys=True))
            if key in seen:
                continue  # the same object in another overlay
            seen.add(key)
            rules_dir = (root / o.source).parent / "rules"
            path, test_path = rules_dir / f"{o.name}.rules.yaml", rules_dir / f"{o.name}.rules.test.yaml"
            if not path.is_file():
                c.fail(f"{o.ref()}: {_rel(path, root)} does not exist; keep the same groups there, for promtool and a Prometheus without the operator")
                continue
            plain = _read_yaml(path, root)
            if plain != o.doc.get("spec"):
                where = _first_difference(o.doc.get("spec"), plain)
                c.fail(f"{o.ref()}: spec differs from {_rel(path, root)} (first at {where}); the two must stay identical")
            if not test_path.is_file():
                c.fail(f"{o.ref()}: no promtool tests {_rel(test_path, root)}")
                continue
            tests = _read_yaml(test_path, root) or {}
            if path.name not in (tests.get("rule_files") or []):
                c.fail(f"{_rel(test_path, root)}: rule_files does not list {path.name}")
            cases = [case for test in tests.get("tests") or [] for case in test.get("alert_rule_test") or []]
            for _, rule in alert_rules(o):
                if "alert" not in rule:
                    continue
                n_alerts += 1
                mine = [case for case in cases if case.get("alertname") == rule["alert"]]
                if not any(case.get("exp_alerts") for case in mine):
                    c.fail(f"{_rel(test_path, root)}: no test where alert {rule['alert']} fires")
                if not any(not case.get("exp_alerts") for case in mine):
                    c.fail(f"{_rel(test_path, root)}: no test where alert {rule['alert']} stays quiet")
    c.summary = f"{len(seen)} PrometheusRule(s) identical to their plain rule files; promtool tests for each of {n_alerts} alert(s), firing and quiet"
    return c


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case,
    punctuation dropped, spaces to `-`, -1/-2 for repeats) and its <a id>s."""
    anchors, counts, fence = set(re.findall(r'<a (?:id|name)="([^"]+)"', text)), {}, False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            anchors.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
            counts[slug] = counts.get(slug, 0) + 1
    return anchors


def check_alerts(sets: list[ObjectSet], root: Path) -> Check:
    """Every alert says how bad it is and what to do: labels.severity
    (ALERT_SEVERITIES), annotations summary, a one-line what_to_do and a
    runbook_url whose anchor is a heading of manifests/README.md (the path
    before it may be a full URL of the repository). Alert names are unique."""
    c = Check("alerts")
    path = root / RUNBOOK
    try:
        anchors = markdown_anchors(path.read_text())
    except FileNotFoundError:
        anchors = set()
        c.fail(f"{RUNBOOK} does not exist: the runbooks of the alerts are there")
    names = set()
    for s in deployable(sets):
        for o in s.of_kind("PrometheusRule"):
            counted = {}
            for _, rule in alert_rules(o):
                name = rule.get("alert")
                if name is None:
                    continue
                names.add(name)
                counted[name] = counted.get(name, 0) + 1
                where = f"{o.ref()}: alert {name}"
                severity = (rule.get("labels") or {}).get("severity")
                if severity not in ALERT_SEVERITIES:
                    c.fail(f"{where}: labels.severity is {severity!r}, not one of {', '.join(sorted(ALERT_SEVERITIES))}")
                annotations = rule.get("annotations") or {}
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
    return c


def check_dashboards(sets: list[ObjectSet]) -> Check:
    """Every Grafana dashboard ConfigMap (label grafana_dashboard: "1")
    holds dashboards as JSON with a uid and a title, a data source variable,
    and panels whose queries all go through it (so the dashboard works with
    whatever Prometheus data source Grafana has)."""
    c = Check("dashboards")
    n = set()
    for s in deployable(sets):
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
    return c


# -- scrape targets ---------------------------------------------------------------


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
    return [(o, labels) for o, labels in _pods(s, sets) if o.namespace in namespaces and selector_matches(selector, labels)]


def container_ports(obj: Obj) -> list[dict]:
    """The container ports of the pods a workload makes (a SpinApp's: the
    one spin-operator declares, 80 named http-app)."""
    if obj.kind == "SpinApp":
        return [{"name": "http-app", "containerPort": 80}]
    return [p for _, cont in containers_of(pod_spec(obj) or {}) for p in cont.get("ports") or []]


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
        for rule in get(np.doc, "spec", "ingress", default=[]) or []:
            peers = rule.get("from") or []
            if peers and not any(_peer_admits(p, namespace, PROMETHEUS_NAMESPACE_LABELS, prometheus_ns, PROMETHEUS_POD_LABELS) for p in peers):
                continue
            for p in rule.get("ports") or [{}]:
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


def check_scrape_targets(sets: list[ObjectSet]) -> Check:
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
    c = Check("scrape")
    n = set()
    for s in deployable(sets):
        pods = _pods(s, sets)
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
                c.fail(f"{sm.ref()}: selector {_selector_text(selector)} selects no Service of the manifests in {', '.join(sorted(map(str, monitor_namespaces(s, sm))))}")
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
                    selected = [(o, ls) for o, ls in pods if o.namespace == svc.namespace and selector_matches({"matchLabels": get(svc.doc, "spec", "selector", default={}) or {}}, ls)]
                    for maker, labels in selected:
                        reachable(sm, f"endpoints[{i}] via {svc.kind} {svc.name}", maker, labels, target)
        for pm in s.of_kind("PodMonitor"):
            selected = monitored_pods(s, sets, pm)
            if not selected:
                selector = get(pm.doc, "spec", "selector", default={}) or {}
                c.fail(f"{pm.ref()}: selector {_selector_text(selector)} selects no pod the manifests make")
                continue
            for i, ep in enumerate(get(pm.doc, "spec", "podMetricsEndpoints", default=[]) or []):
                target = ep.get("port", ep.get("portNumber", ep.get("targetPort")))
                for maker, labels in selected:
                    n.add((pm.identity(), i, maker.identity()))
                    reachable(pm, f"podMetricsEndpoints[{i}]", maker, labels, target)
    c.summary = f"{len(n)} scrape endpoint(s) select a Service/pod with that port, reachable by Prometheus; one {PROMETHEUS_SELECTOR_LABEL} label"
    return c


# -- the exporter's Valkey user ---------------------------------------------------


def is_exporter(container: dict) -> bool:
    """A container running `refresher exporter`."""
    image = split_image(str(container.get("image", "")))[0].rsplit("/", 1)[-1]
    return image == REFRESHER_IMAGE and "exporter" in (container.get("command") or []) + (container.get("args") or [])


def exporter_containers(s: ObjectSet) -> list[tuple[Obj, dict]]:
    return [(o, cont) for o in s.objects for _, cont in containers_of(pod_spec(o) or {}) if is_exporter(cont)]


UNSET = "<unset>"


def valkey_acl_users(s: ObjectSet, obj: Obj, container: dict) -> dict[str, tuple[list[str], list[str]] | str]:
    """The ACL users a container's shell script writes with
    `printf 'user NAME RULES...\\n' "$VAR"...`: NAME -> (rules, names of the
    variables the line uses that the container does not set), with each
    `"$VAR"` replaced by the container's value (a Secret's by <secret>), as
    printf would write them; or NAME -> the reason it cannot be read."""
    script = "\n".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))
    users, lines = {}, script.splitlines()
    for i, line in enumerate(lines):
        if not re.match(r"\s*printf\s+'user\s", line):
            continue
        text = line.strip()
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        name = text.split()[2] if len(text.split()) > 2 else "?"
        try:
            words = shlex.split(text)
        except ValueError as e:
            users[name] = f"cannot read the printf line: {e}"
            continue
        unset, args = [], []
        for word in words[2:]:
            m = re.fullmatch(r"\$\{?(\w+)\}?", word)
            value = env_value(s, obj, container, m.group(1)) if m else word
            if value is None:
                unset.append(m.group(1))
                value = UNSET
            args.append("<secret>" if value is _UNRESOLVED else value)
        try:
            rendered = words[1].removesuffix("\\n") % tuple(args)
        except (TypeError, ValueError) as e:
            users[name] = f"printf would not render it ({e})"
            continue
        tokens = rendered.split()
        users[tokens[1]] = (tokens[2:], unset)
    return users


def acl_problems(rules: list[str], needed_keys: set[str], commands: set[str]) -> list[str]:
    """What a user's ACL rules allow beyond reading `needed_keys` with
    `commands` (plus the connection commands), or what it lacks of them."""
    problems, patterns, granted = [], set(), set()
    if "on" not in rules:
        problems.append("is not `on`")
    if "nopass" in rules or not any(r[:1] in (">", "#") for r in rules):
        problems.append("has no password (>…)")
    for r in rules:
        if r in ("on", "off", "resetkeys", "resetchannels", "resetpass", "nopass") or r[:1] in (">", "<", "#"):
            continue
        m = re.fullmatch(r"(%(R|W|RW)~|~)(.+)", r)
        if r == "allkeys" or m:
            pattern = "*" if r == "allkeys" else m.group(3)
            if r == "allkeys" or m.group(2) != "R":
                problems.append(f"{r}: may write keys (the exporter only reads: %R~)")
            patterns.add(pattern)
        elif r == "allchannels" or r.startswith("&"):
            problems.append(f"{r}: may use a Pub/Sub channel (the exporter needs none: resetchannels only)")
        elif r in ("allcommands", "+@all") or r.startswith("+@"):
            problems.append(f"{r}: grants a whole category of commands; grant them one by one")
        elif r in ("nocommands", "-@all"):
            granted = set()
        elif r.startswith("+"):
            granted.add(r[1:].lower())
        elif r.startswith("-"):
            granted.discard(r[1:].lower())
        else:
            problems.append(f"{r}: a rule this checker does not know")
    for cmd in sorted(granted - commands - CONNECTION_COMMANDS):
        problems.append(f"+{cmd}: more than it needs (it reads with {', '.join(sorted(commands))} only)")
    for cmd in sorted(commands - granted):
        problems.append(f"cannot run {cmd}, which it needs")
    for pattern in sorted(needed_keys - patterns):
        problems.append(f"cannot read {pattern}, which it reads")
    for pattern in sorted(patterns - needed_keys):
        problems.append(f"may read {pattern}, which it does not need")
    return problems


def check_exporter_acl(sets: list[ObjectSet]) -> Check:
    """The exporter's Valkey user (written by Valkey's init container, as
    `printf 'user exporter ...'`) can read what the exporter reads, the
    snapshot (RATES_KEY), rates:seq, oneframe:calls:* and refresher:last-run,
    with GET and HGETALL, and nothing more: read-only key patterns, exactly
    those, no channel, no other command than the connection's. Where the
    exporter runs, Valkey's init container gets the user's password (so the
    line is written), and the example Secret's URL the exporter reads logs in
    as that user."""
    c = Check("exporter-acl")
    examples = [o for s in sets if not s.deployable for o in s.objects if o.kind == "Secret"]
    checked = set()
    for s in deployable(sets):
        exporters = exporter_containers(s)
        for valkey in s.of_kind("Deployment"):
            for _, cont in containers_of(pod_spec(valkey) or {}):
                users = valkey_acl_users(s, valkey, cont)
                if EXPORTER_USER not in users:
                    continue
                where = f"{valkey.ref()}: container {cont.get('name')!r}, ACL user {EXPORTER_USER}"
                user = users[EXPORTER_USER]
                if isinstance(user, str):
                    c.fail(f"{where}: {user}")
                    continue
                rules, unset = user
                key = next((env_value(s, o, e, "RATES_KEY") for o, e in exporters if env_value(s, o, e, "RATES_KEY")), None)
                key = key or env_value(s, valkey, cont, "RATES_KEY") or REFRESHER_DEFAULTS["RATES_KEY"]
                for problem in acl_problems(rules, {str(key), *EXPORTER_KEY_PATTERNS}, EXPORTER_COMMANDS):
                    c.fail(f"{where}: {problem}")
                checked.add(valkey.identity())
                if exporters and unset:
                    c.fail(
                        f"[{s.label}] {where}: {', '.join(unset)} not set, so the user is never written and the exporter "
                        f"cannot log in (components/monitoring sets it)"
                    )
        if exporters and not any(EXPORTER_USER in valkey_acl_users(s, v, cont) for v in s.of_kind("Deployment") for _, cont in containers_of(pod_spec(v) or {})):
            c.fail(f"[{s.label}] the exporter runs, but no Valkey init container writes an ACL user {EXPORTER_USER}")
        for o, cont in exporters:
            for e in cont.get("env") or []:
                ref = get(e, "valueFrom", "secretKeyRef")
                if e.get("name") != "VALKEY_URL" or not ref:
                    continue
                example = next((x for x in examples if x.name == ref.get("name")), None)
                url = str(get(example.doc, "stringData", ref.get("key"), default="")) if example else ""
                m = re.fullmatch(r"rediss?://([^:@/]*)(?::[^@/]*)?@.*", url)
                if url and (not m or m.group(1) != EXPORTER_USER):
                    c.fail(f"{example.ref()}: {ref.get('key')} (the exporter's VALKEY_URL) must log in as {EXPORTER_USER}: rediss://{EXPORTER_USER}:<password>@…")
    c.summary = (
        f"ACL user {EXPORTER_USER} of {len(checked)} Valkey(s) reads the rates key, {', '.join(EXPORTER_KEY_PATTERNS)} "
        f"with {', '.join(sorted(EXPORTER_COMMANDS))}, and nothing more"
    )
    return c


# --------------------------------------------------------------------------


def crate_version(root: Path, manifest: str) -> str:
    """[package] version of a Cargo.toml (or the workspace's, when inherited)."""
    def read(rel: str) -> dict:
        try:
            return tomllib.loads((root / rel).read_text())
        except FileNotFoundError:
            raise LoadError(f"{rel}: file not found (the checker compares image tags with it)")
        except tomllib.TOMLDecodeError as e:
            raise LoadError(f"{rel}: not valid TOML: {e}")

    version = (read(manifest).get("package") or {}).get("version")
    if isinstance(version, dict) and version.get("workspace"):
        version = ((read("Cargo.toml").get("workspace") or {}).get("package") or {}).get("version")
    if not isinstance(version, str):
        raise LoadError(f"{manifest}: no [package] version")
    return version


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
        crate_versions = {image: crate_version(root, manifest) for image, manifest in IMAGE_CRATES.items()}
        metrics = load_metrics(root)
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
        check_apply_order(loaded, schemas.cluster_kinds),
        check_runtime(loaded),
        check_spin_image_executor(loaded),
        check_replicas(loaded),
        check_variables(loaded, spin),
        check_outbound(loaded, spin),
        check_rates_contract(loaded, spin),
        check_kv_stores(loaded),
        check_paths(loaded),
        check_tls(loaded),
        check_valkey_urls(loaded),
        check_valkey_tls_only(loaded),
        check_valkey_certificate(loaded),
        check_valkey_ca(loaded),
        check_selectors(loaded),
        check_disruption(loaded),
        check_secrets(loaded),
        check_hardening(loaded),
        check_references(loaded),
        check_image(loaded, spin, crate_versions),
        check_scrape_targets(loaded),
        check_rule_files(loaded, root),
        check_alerts(loaded, root),
        check_metrics(loaded, metrics),
        check_dashboards(loaded),
        check_exporter_acl(loaded),
        check_placeholders(loaded),
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
