"""What every layer of the checker speaks: the objects read from the
manifests, the sets `kubectl apply` would be given, and the Check a rule
records its findings on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml


# libyaml's loader where PyYAML was built with it (its wheels are): the same
# documents, parsed several times faster; most of a run is spent parsing.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str):
    """yaml.safe_load, on libyaml when present."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def parse_yaml_all(text: str):
    """yaml.safe_load_all, on libyaml when present."""
    return yaml.load_all(text, Loader=_LOADER)  # noqa: S506 - a safe loader


class LoadError(Exception):
    """The manifests could not be read at all; no check can run."""


# The source of an object kubectl rendered (no file of its own).
RENDERED_SOURCE_PREFIX = "kubectl kustomize "


@dataclass
class Obj:
    doc: dict
    source: str  # file (relative to --root) the object came from, or RENDERED_SOURCE_PREFIX + the directory

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

    @property
    def file(self) -> str | None:
        """The manifest file the object was read from; None for kubectl's renders."""
        return None if self.source.startswith(RENDERED_SOURCE_PREFIX) else self.source

    def key(self) -> str:
        """Kind/namespace/name (the namespace empty for a cluster-scoped object)."""
        return f"{self.kind}/{self.namespace or ''}/{self.name}"

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
    # The components a kustomization includes, as directories under manifests/
    # ("components/monitoring"), nested ones too.
    components: tuple[str, ...] = ()
    # Examples only: the component whose secrets.example.yaml they are (they
    # stand for the Secrets of the sets that include it); "" for
    # manifests/secrets.example.yaml.
    for_component: str = ""

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.kind == kind]

    def find(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        for o in self.objects:
            if o.kind == kind and o.name == name and (o.namespace or "default") == (namespace or "default"):
                return o
        return None


@dataclass(frozen=True)
class Finding:
    """One problem a rule found: its message (the text report's line), and
    what it is about when the rule said so: the object, and the file."""

    message: str
    obj: Obj | None = field(default=None, compare=False)
    file: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.message


@dataclass
class Check:
    name: str
    failures: list[Finding] = field(default_factory=list)
    summary: str = ""

    def fail(self, message: str, obj: Obj | None = None, file: str | None = None) -> None:
        """Records a problem. `obj` is the object it is about and `file`
        the file (by default obj's); both only feed the JSON report, which
        otherwise takes the first object whose ref() the message quotes."""
        # The base's objects are also in every overlay: report each problem once.
        if all(f.message != message for f in self.failures):
            self.failures.append(Finding(message, obj, file))


def rule(name: str) -> Callable:
    """Marks a function `(ctx, check)` as the rule whose Check is called
    `name`; its docstring is the rule's documentation (--list-rules)."""

    def named(fn: Callable) -> Callable:
        fn.rule_name = name
        return fn

    return named


# --------------------------------------------------------------------------
# Reading files


def rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def read_yaml(path: Path, root: Path):
    name = rel(path, root)
    try:
        return parse_yaml(path.read_text())
    except FileNotFoundError:
        raise LoadError(f"{name}: file not found")
    except yaml.YAMLError as e:
        raise LoadError(f"{name}: not valid YAML: {e}")


def load_yaml_docs(path: Path, root: Path) -> list[Obj]:
    name = rel(path, root)
    try:
        docs = list(parse_yaml_all(path.read_text()))
    except FileNotFoundError:
        raise LoadError(f"{name}: file not found")
    except yaml.YAMLError as e:
        raise LoadError(f"{name}: not valid YAML: {e}")
    objs = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise LoadError(f"{name}: document {i + 1} is not a Kubernetes object (no kind/apiVersion)")
        objs.append(Obj(doc, name))
    return objs


# --------------------------------------------------------------------------
# Walking documents and sets

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


def deployable(sets: list[ObjectSet], from_step: int = 0) -> Iterator[ObjectSet]:
    """The sets an operator applies (not the examples), from apply step
    `from_step` on: what most rules look at."""
    return (s for s in sets if s.deployable and s.step >= from_step)


def applied_before(sets: list[ObjectSet], s: ObjectSet) -> list[ObjectSet]:
    """The sets applied at an earlier step than s (manifests/cluster before an app)."""
    return [t for t in sets if t.deployable and 0 < t.step < s.step]


def applied_with(sets: list[ObjectSet], s: ObjectSet) -> list[ObjectSet]:
    """What the cluster holds once s is applied: the earlier steps' sets, and s."""
    return applied_before(sets, s) + [s]
