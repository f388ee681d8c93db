"""kustomize's `patches:`: strategic merge patches (with the Kubernetes
schema's merge keys) and JSON 6902 patches, applied to the objects a
target selects, or to the one object a strategic merge patch names."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import yaml

from .model import LoadError, Obj, parse_yaml_all, rel
from .schemas import k8s_definitions

PATCH_FIELDS = {"path", "patch", "target"}
SELECTOR_FIELDS = {"group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"}
_DELETE = object()
MISSING = object()


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
            merged = strategic_merge(out.get(key, MISSING), value, sub, where)
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
                    merged = strategic_merge(by_key.get(e.get(key), MISSING), e, items, where)
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


def apply_patch(objs: list[Obj], entry, directory: Path, root: Path, where: str) -> list[Obj]:
    """One entry of `patches:` applied to objs; the objects after it."""
    if not isinstance(entry, dict) or set(entry) - PATCH_FIELDS:
        raise LoadError(f"{where}: use only {sorted(PATCH_FIELDS)} (options are not supported by this checker)")
    if ("path" in entry) == ("patch" in entry):
        raise LoadError(f"{where}: give exactly one of path and patch")
    if "path" in entry:
        path = directory / entry["path"]
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise LoadError(f"{where}: patch file {rel(path, root)} not found")
    else:
        text = str(entry["patch"])
    try:
        docs = [d for d in parse_yaml_all(text) if d is not None]
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
