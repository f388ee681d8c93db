"""Everything the rules judge, read once: the sets of objects an operator
applies (and kubectl's renders of them), the schemas, spin.toml, the images
the project builds with their crates' versions, and the metrics the
exporters export. Any of it missing or unreadable is a LoadError."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from .kustomize import load_build
from .model import RENDERED_SOURCE_PREFIX, LoadError, Obj, ObjectSet, load_yaml_docs, parse_yaml, parse_yaml_all, read_yaml, rel
from .schemas import Schemas

# The apply steps of manifests/README.md. Step 1 creates what the app needs to
# exist first; step 2 is the app, the base or one of the overlays.
CLUSTER_DIR = "cluster"  # manifests/cluster
APP_BASE_DIR = "base"  # manifests/base; every overlay in manifests/overlays/ is an app too

# Components no overlay lists, each checked as an operator would use it: added
# to the `components:` of the overlay named beside it (under manifests/). The
# set is labelled "overlay <name> + <component>".
OPTIONAL_COMPONENTS = (("components/autoscaling-keda", "overlays/production"),)

# The images the project builds and what each is built from; scripts/images.sh
# reads the same file.
IMAGES_FILE = "scripts/images.txt"

# The metric families alerts and dashboards may use, by exporter (under manifests/).
METRICS_FILE = "components/monitoring/metrics.yaml"

# The example Secrets (under manifests/): the base's, and a component's own
# beside its kustomization.yaml, which stand instead of the base's Secrets of
# the same names for every set that includes that component.
EXAMPLES_FILE = "secrets.example.yaml"


@dataclass(frozen=True)
class BuiltImage:
    """An image of IMAGES_FILE: the Spin app pushed from spin.toml (`make
    push`), or a crate's binary (`make images`), tagged with the crate's
    version."""

    name: str
    source: str  # spin.toml, or the crate's directory
    version: str | None = None  # the crate's version; None for the Spin app (spin.toml's)

    @property
    def cargo_toml(self) -> str | None:
        return None if self.source.endswith(".toml") else f"{self.source}/Cargo.toml"


@dataclass
class Context:
    """What every rule is given."""

    root: Path
    sets: list[ObjectSet]  # the checker's own loads, the examples included: what the project rules judge
    renders: list[ObjectSet]  # `kubectl kustomize` of each kustomization; none without kubectl
    notes: list[str]  # said on the load line (kubectl skipped, ...)
    schemas: Schemas
    spin: dict  # spin.toml
    max_rate_age: int  # seconds; spin.toml's default of the variable max_rate_age
    images: dict[str, BuiltImage]  # by image name, in IMAGES_FILE's order
    metrics: dict[str, dict]  # metrics.yaml, by family

    @property
    def every_set(self) -> list[ObjectSet]:
        return self.sets + self.renders

    @property
    def crate_images(self) -> dict[str, BuiltImage]:
        return {name: image for name, image in self.images.items() if image.cargo_toml}

    def image_built_from(self, source: str) -> str:
        return next(image.name for image in self.images.values() if image.source == source)


def load_context(root: Path, use_kubectl: bool, upstream_crds: Path | None = None) -> Context:
    """Everything the rules judge. `upstream_crds`: a directory of full
    upstream CRDs to validate custom resources against besides the reduced
    ones of manifests/crds/ (Schemas)."""
    sets, renders, notes = load_sets(root, use_kubectl)
    schemas = Schemas(root / "manifests" / "crds", root, upstream_crds)
    spin = read_toml(root, "spin.toml", "the checker compares the SpinApp with it")
    images = load_images(root)
    return Context(
        root=root,
        sets=sets,
        renders=renders,
        notes=notes,
        schemas=schemas,
        spin=spin,
        max_rate_age=max_rate_age(spin),
        images=images,
        metrics=load_metrics(root),
    )


def kubectl_kustomize(directory: Path, root: Path, extra_components: tuple[Path, ...] = ()) -> list[Obj]:
    """kubectl's render of a kustomization; with `extra_components`, of a
    copy of manifests/ in which they are added to its `components:`."""
    name = rel(directory, root) + "".join(f" + {rel(c, root / 'manifests')}" for c in extra_components)
    with tempfile.TemporaryDirectory(prefix="forex-check-") as tmp:
        if extra_components:
            manifests = root / "manifests"
            copy = Path(tmp) / "manifests"
            shutil.copytree(manifests, copy, ignore=shutil.ignore_patterns("__pycache__", "check"))
            kfile = copy / directory.relative_to(manifests) / "kustomization.yaml"
            k = parse_yaml(kfile.read_text())
            k["components"] = list(k.get("components") or []) + [os.path.relpath(c, directory) for c in extra_components]
            kfile.write_text(yaml.safe_dump(k, sort_keys=False))
            directory = kfile.parent
        try:
            out = subprocess.run(
                ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            raise LoadError(f"kubectl kustomize {name}: timed out")
    if out.returncode != 0:
        raise LoadError(f"kubectl kustomize {name} failed: {out.stderr.strip()}")
    docs = [d for d in parse_yaml_all(out.stdout) if d is not None]
    return [Obj(d, RENDERED_SOURCE_PREFIX + name) for d in docs]


def load_sets(root: Path, use_kubectl: bool) -> tuple[list[ObjectSet], list[ObjectSet], list[str]]:
    """Every kustomization an operator applies, with its apply step, and the
    examples; then kubectl's renders of the kustomizations; and notes. Each
    of OPTIONAL_COMPONENTS is a set of its own: its overlay with it."""
    manifests = root / "manifests"
    notes = []
    overlay_dirs = sorted(p.parent for p in (manifests / "overlays").glob("*/kustomization.yaml"))
    plan = [("cluster", manifests / CLUSTER_DIR, 1, ()), ("base", manifests / APP_BASE_DIR, 2, ())]
    plan += [(f"overlay {d.name}", d, 2, ()) for d in overlay_dirs]
    for component, overlay in OPTIONAL_COMPONENTS:
        if not (manifests / component / "kustomization.yaml").is_file():
            raise LoadError(f"manifests/{component}: no kustomization.yaml (the checker renders it on manifests/{overlay})")
        plan.append((f"overlay {Path(overlay).name} + {component}", manifests / overlay, 2, (manifests / component,)))
    sets = []
    for label, d, step, extra in plan:
        build = load_build(d, root, extra)
        components = tuple(dict.fromkeys(rel(c, manifests) for c in build.components))
        sets.append(ObjectSet(label, build.objs, step=step, components=components))
    sets.append(ObjectSet("examples", load_yaml_docs(manifests / EXAMPLES_FILE, root), deployable=False))
    for path in sorted((manifests / "components").glob(f"**/{EXAMPLES_FILE}")):
        component = rel(path.parent, manifests)
        sets.append(ObjectSet(f"examples {component}", load_yaml_docs(path, root), deployable=False, for_component=component))

    renders = []
    if not use_kubectl:
        notes.append("kubectl kustomize: skipped (--no-kubectl)")
    elif shutil.which("kubectl") is None:
        notes.append("kubectl kustomize: skipped (kubectl is not on PATH; optional)")
    else:
        for label, d, step, extra in plan:
            renders.append(ObjectSet(f"{label} (kubectl kustomize)", kubectl_kustomize(d, root, extra), rendered=True, step=step))
    return sets, renders, notes


def read_toml(root: Path, name: str, why: str) -> dict:
    try:
        return tomllib.loads((root / name).read_text())
    except FileNotFoundError:
        raise LoadError(f"{name}: file not found ({why})")
    except tomllib.TOMLDecodeError as e:
        raise LoadError(f"{name}: not valid TOML: {e}")


def spin_variables(spin: dict) -> dict[str, dict]:
    """spin.toml's [variables], each as its declaration."""
    return {name: (decl if isinstance(decl, dict) else {}) for name, decl in (spin.get("variables") or {}).items()}


def max_rate_age(spin: dict) -> int:
    """The age in seconds past which the edge never serves a rate: the
    default of spin.toml's variable max_rate_age."""
    default = spin_variables(spin).get("max_rate_age", {}).get("default")
    if not (isinstance(default, str) and default.isdigit() and int(default) > 0):
        raise LoadError(
            "spin.toml: [variables] max_rate_age has no default of whole seconds "
            "(the freshness rule holds the refresher's schedule to it)"
        )
    return int(default)


def crate_version(root: Path, manifest: str) -> str:
    """[package] version of a Cargo.toml (or the workspace's, when inherited)."""
    why = "the checker compares image tags with it"
    version = (read_toml(root, manifest, why).get("package") or {}).get("version")
    if isinstance(version, dict) and version.get("workspace"):
        version = ((read_toml(root, "Cargo.toml", why).get("workspace") or {}).get("package") or {}).get("version")
    if not isinstance(version, str):
        raise LoadError(f"{manifest}: no [package] version")
    return version


def read_images_file(path: Path) -> list[tuple[str, str]]:
    """(image, source) of every line of IMAGES_FILE: two words, `#` starts a comment."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise LoadError(f"{IMAGES_FILE}:{n}: give an image and what it is built from (spin.toml or a crate's directory)")
        rows.append((words[0], words[1]))
    return rows


def load_images(root: Path) -> dict[str, BuiltImage]:
    try:
        rows = read_images_file(root / IMAGES_FILE)
    except FileNotFoundError:
        raise LoadError(f"{IMAGES_FILE}: file not found (the images the project builds, and from what)")
    images = {}
    for name, source in rows:
        image = BuiltImage(name, source)
        if image.cargo_toml:
            image = BuiltImage(name, source, crate_version(root, image.cargo_toml))
        images[name] = image
    if not any(not image.cargo_toml for image in images.values()) or "refresher" not in {i.source for i in images.values()}:
        raise LoadError(f"{IMAGES_FILE}: names no image built from spin.toml, or none from refresher")
    return images


def load_metrics(root: Path) -> dict[str, dict]:
    """metrics.yaml as {family: {"exporter", "type", "labels": {label: [values] or None}}}."""
    path = root / "manifests" / METRICS_FILE
    doc = read_yaml(path, root) or {}
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
