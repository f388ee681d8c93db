"""The schemas objects are validated against: kubernetes-validate's strict
ones for built-in kinds, the CRDs vendored in manifests/crds/ (every object
schema closed) for custom resources, and, where a directory of the full
upstream CRDs is at hand, those too for the kinds whose vendored CRD is
reduced."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import importlib_resources
import jsonschema
import kubernetes_validate
import referencing
import yaml

from .model import LoadError, parse_yaml, rel

# K3s v1.31 is the oldest cluster we support; 1.33 is the one the README
# installs. Manifests must be valid for both.
K8S_VERSIONS = ("1.31", "1.33")


@functools.cache
def k8s_definitions_document() -> dict:
    """kubernetes-validate's strict _definitions.json for K8S_VERSIONS[0]."""
    path = (
        importlib_resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{K8S_VERSIONS[0]}.0-local-strict"
        / "_definitions.json"
    )
    return json.loads(path.read_text())


def k8s_definitions() -> dict:
    """The $defs of kubernetes-validate's strict schemas for K8S_VERSIONS[0]."""
    return k8s_definitions_document()["$defs"]


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


def crd_versions(crd: dict):
    """(apiVersion, kind, openAPIV3Schema) of every version of a CRD."""
    spec = crd["spec"]
    for version in spec["versions"]:
        yield f"{spec['group']}/{version['name']}", spec["names"]["kind"], version["schema"]["openAPIV3Schema"]


class Schemas:
    """kubernetes-validate's strict schemas for built-in kinds, the vendored
    CRDs for custom resources; and the upstream CRDs of `upstream_dir` (when
    it is a directory) for every vendored kind whose schema differs from
    upstream's, i.e. is reduced."""

    DEFS_ID = "https://kubernetes.io/api/_definitions.json"
    OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

    def __init__(self, crd_dir: Path, root: Path, upstream_dir: Path | None = None):
        # ObjectMeta for CRD objects comes from the same strict schemas as the
        # built-in kinds, so a typo under metadata is caught there too.
        self.registry = referencing.Registry().with_resource(
            self.DEFS_ID, referencing.Resource.from_contents(k8s_definitions_document())
        )
        self.crds: dict[tuple[str, str], dict] = {}  # (apiVersion, kind) -> closed schema
        self.crd_groups: set[str] = set()
        self.cluster_kinds: set[str] = set()  # kinds of the vendored CRDs with scope Cluster
        crd_files = sorted(crd_dir.glob("*.yaml"))
        if not crd_files:
            raise LoadError(f"{rel(crd_dir, root)}: no CRDs found")
        vendored = {}  # (apiVersion, kind) -> the schema as written
        for path in crd_files:
            crd = parse_yaml(path.read_text())
            spec = crd["spec"]
            self.crd_groups.add(spec["group"])
            if spec.get("scope") == "Cluster":
                self.cluster_kinds.add(spec["names"]["kind"])
            for api_version, kind, schema in crd_versions(crd):
                vendored[(api_version, kind)] = schema
                self.crds[(api_version, kind)] = self._object_schema(schema, api_version, kind)
        # (apiVersion, kind) -> (file name, closed schema) of the upstream CRDs
        self.upstream: dict[tuple[str, str], tuple[str, dict]] = {}
        self.upstream_dir = upstream_dir if upstream_dir is not None and upstream_dir.is_dir() else None
        for path in sorted(self.upstream_dir.glob("*.yaml")) if self.upstream_dir else []:
            try:
                crd = parse_yaml(path.read_text())
                versions = list(crd_versions(crd))
            except (yaml.YAMLError, KeyError, TypeError) as e:
                raise LoadError(f"{path}: not a CustomResourceDefinition the checker can read ({e})")
            for api_version, kind, schema in versions:
                if (api_version, kind) in vendored and schema != vendored[(api_version, kind)]:
                    self.upstream[(api_version, kind)] = (path.name, self._object_schema(schema, api_version, kind))
        self._cache: dict[str, list[str]] = {}

    def _object_schema(self, schema: dict, api_version: str, kind: str) -> dict:
        """A CRD version's schema, closed, with the strict ObjectMeta and the
        exact apiVersion and kind."""
        schema = copy.deepcopy(schema)
        close_schema(schema)
        schema["properties"]["metadata"] = {"$ref": f"{self.DEFS_ID}#/$defs/{self.OBJECT_META}"}
        schema.setdefault("required", [])
        for key in ("apiVersion", "kind", "metadata"):
            if key not in schema["required"]:
                schema["required"].append(key)
        schema["properties"]["apiVersion"] = {"const": api_version}
        schema["properties"]["kind"] = {"const": kind}
        return schema

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
        problems = self._problems(schema, doc)
        upstream = self.upstream.get((doc.get("apiVersion"), doc.get("kind")))
        if upstream is not None:
            name, full = upstream
            problems += [f"upstream CRD {name}: {p}" for p in self._problems(full, doc)]
        return problems

    def _problems(self, schema: dict, doc: dict) -> list[str]:
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
