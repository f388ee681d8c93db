"""The schemas objects are validated against: kubernetes-validate's strict
ones for built-in kinds, the CRDs vendored in manifests/crds/ (every object
schema closed) for custom resources."""

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

from .model import LoadError, rel

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


class Schemas:
    """kubernetes-validate's strict schemas for built-in kinds, the vendored
    CRDs for SpinKube kinds."""

    DEFS_ID = "https://kubernetes.io/api/_definitions.json"
    OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

    def __init__(self, crd_dir: Path, root: Path):
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
