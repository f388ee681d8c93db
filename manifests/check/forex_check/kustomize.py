"""The subset of kustomize the manifests use, so that the checker judges
what `kubectl apply -k` would apply without needing kubectl: resources,
components, configMapGenerator, patches (patches.py), namespace, labels,
images and the configurations that name image fields. Anything else is
refused rather than silently ignored (kubectl would apply it; we would not)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .model import LoadError, Obj, get, load_yaml_docs, read_yaml, rel
from .patches import apply_patch

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

# The kustomization fields the built-in loader understands.
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

COMPONENT_API_VERSION = "kustomize.config.k8s.io/v1alpha1"


@dataclass
class Build:
    objs: list[Obj]
    # (kind, path) of the fields besides container images that `images:`
    # rewrites, from `configurations:` here and in the kustomizations below.
    image_fields: list[tuple[str, tuple[str, ...]]]
    # The component directories included, in order, nested ones too.
    components: list[Path] = field(default_factory=list)


def load_kustomization(directory: Path, root: Path, extra_components: tuple[Path, ...] = ()) -> list[Obj]:
    """The objects of a kustomization (see load_build)."""
    return load_build(directory, root, extra_components).objs


def load_build(directory: Path, root: Path, extra_components: tuple[Path, ...] = ()) -> Build:
    """A subset of kustomize: resources (files and directories), components,
    configMapGenerator (files and literals, without name hash), patches
    (strategic merge and JSON 6902), namespace, labels without selectors or
    templates, images, and configurations that name image fields. Applied in
    kustomize's order: resources, then each component (its resources join
    the ones accumulated so far, and its own generators, patches, namespace,
    labels and images apply to all of them), then this kustomization's
    generated ConfigMaps, patches, namespace, labels, images.
    `extra_components` are added after the kustomization's own components,
    as if listed there (an optional component checked on an overlay)."""
    k = _read_kustomization(directory, root, component=False)
    if extra_components:
        k = dict(k, components=list(k.get("components") or []) + [os.path.relpath(c, directory) for c in extra_components])
    return _accumulate(k, directory, root, [], [])


def _read_kustomization(directory: Path, root: Path, component: bool) -> dict:
    kfile = directory / "kustomization.yaml"
    name = rel(kfile, root)
    k = read_yaml(kfile, root) or {}
    if not isinstance(k, dict):
        raise LoadError(f"{name}: not a kustomization (a mapping)")
    unknown = set(k) - KUSTOMIZATION_FIELDS
    if unknown:
        raise LoadError(
            f"{name}: fields {sorted(unknown)} are not understood by this checker; "
            f"extend load_kustomization() or use only {sorted(KUSTOMIZATION_FIELDS)}"
        )
    is_component = k.get("kind") == "Component"
    if component and not (is_component and k.get("apiVersion") == COMPONENT_API_VERSION):
        raise LoadError(
            f"{name}: listed under components:, so it must be apiVersion {COMPONENT_API_VERSION}, kind Component "
            f"(kubectl refuses anything else there)"
        )
    if not component and is_component:
        raise LoadError(f"{name}: a Component can only be listed under components:, not under resources:")
    return k


def _build(directory: Path, root: Path) -> Build:
    return _accumulate(_read_kustomization(directory, root, component=False), directory, root, [], [])


def _accumulate(k: dict, directory: Path, root: Path, objs: list[Obj], image_fields: list) -> Build:
    """Adds what kustomization k (in directory) makes to objs, then runs its
    transformers over all of them: for a kustomization objs starts empty, for
    a component it holds what its parent accumulated before it."""
    name = rel(directory / "kustomization.yaml", root)
    objs, image_fields, components = list(objs), list(image_fields), []
    for entry in k.get("configurations") or []:
        image_fields += _load_configuration(directory / entry, root)
    for entry in k.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            sub = _build(target, root)
            objs += sub.objs
            image_fields += sub.image_fields
            components += sub.components
        elif target.is_file():
            objs += load_yaml_docs(target, root)
        else:
            raise LoadError(f"{name}: resource {entry!r} does not exist")
    for entry in k.get("components") or []:
        target = (directory / entry).resolve()
        if not target.is_dir():
            raise LoadError(f"{name}: component {entry!r} is not a directory with a kustomization.yaml")
        built = _accumulate(_read_kustomization(target, root, component=True), target, root, objs, image_fields)
        objs, image_fields = built.objs, built.image_fields
        components += [target, *built.components]
    for i, entry in enumerate(k.get("configMapGenerator") or []):
        objs.append(_generate_configmap(entry, directory, root, f"{name}: configMapGenerator[{i}]"))

    for i, entry in enumerate(k.get("patches") or []):
        objs = apply_patch(objs, entry, directory, root, f"{name}: patches[{i}]")

    namespace = k.get("namespace")
    for o in objs:
        meta = o.doc.setdefault("metadata", {})
        if namespace and o.kind not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        for group in k.get("labels") or []:
            if group.get("includeSelectors") or group.get("includeTemplates"):
                raise LoadError(f"{name}: labels with includeSelectors/includeTemplates are not supported by this checker")
            meta.setdefault("labels", {}).update(group.get("pairs") or {})

    if k.get("images"):
        _apply_images(objs, k["images"], image_fields, name)
    return Build(objs, image_fields, components)


def _load_configuration(path: Path, root: Path) -> list[tuple[str, tuple[str, ...]]]:
    """A kustomize transformer configuration; only `images:` field specs."""
    name = rel(path, root)
    conf = read_yaml(path, root) or {}
    if not isinstance(conf, dict) or set(conf) - {"images"}:
        raise LoadError(f"{name}: this checker understands only `images:` field specs in a configuration")
    out = []
    for spec in conf.get("images") or []:
        path_text, kind = spec.get("path"), spec.get("kind")
        if not path_text or not kind or set(spec) - {"path", "kind", "group", "version", "create"} or "[]" in path_text:
            raise LoadError(f"{name}: images field spec {spec!r}: give a kind and a plain path such as spec/image")
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
            raise LoadError(f"{where}: file {rel(path, root)} not found")
    for item in entry.get("literals") or []:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise LoadError(f"{where}: literal {item!r} is not key=value")
        data[key] = value
    meta = {"name": entry["name"]}
    for key in ("labels", "annotations"):
        if options.get(key):
            meta[key] = {str(k): str(v) for k, v in options[key].items()}
    return Obj({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}, rel(directory / "kustomization.yaml", root))


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


def _apply_images(objs: list[Obj], entries, image_fields, name: str) -> None:
    slots = [slot for o in objs for slot in image_slots(o, image_fields)]
    used = sorted({split_image(m[k])[0] for m, k in slots})
    for i, e in enumerate(entries):
        where = f"{name}: images[{i}]"
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
            repository, tag, digest = split_image(m[k])
            repository = e.get("newName", repository)
            if "digest" in e:
                tag, digest = e.get("newTag"), e["digest"]
            elif "newTag" in e:
                tag, digest = e["newTag"], None
            m[k] = repository + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
