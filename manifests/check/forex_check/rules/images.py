"""The images: each is what the project's build pushes (scripts/images.txt
says which image is built from what), tagged with its version or pinned by
digest; and the placeholders an operator still has to fill in."""

from __future__ import annotations

import re

from ..context import IMAGES_FILE, Context
from ..kustomize import image_slots, split_image
from ..model import Check, Obj, deployable, get, rule

# Overlays whose every image (the SpinApp's and every container's) must be
# pinned by digest.
PINNED_OVERLAYS = ("production", "runtime-shim")

# The image of a `spinImage` executor (spin-operator's alternative to a
# RuntimeClass), as kustomizeconfig.yaml in manifests/cluster declares it.
SPIN_IMAGE_FIELD = ("SpinAppExecutor", ("spec", "deploymentConfig", "spinImage"))

# A placeholder left for the operator: a host under example.com/.net/.org or
# with a label `example` (registry.example.com, one-frame.example.internal,
# ops@example.com), or a digest of zeros.
PLACEHOLDER_HOST = re.compile(r"(?<![A-Za-z0-9.-])(?:[A-Za-z0-9-]+\.)*example(?:\.[A-Za-z0-9-]+)+|(?<![A-Za-z0-9.-])(?:[A-Za-z0-9-]+\.)+example(?![A-Za-z0-9-])")
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


@rule("image")
def image(ctx: Context, c: Check) -> None:
    """Every image is what the project's build pushes (scripts/images.txt),
    judged after each kustomization's `images:`:
    - the SpinApp runs what `make push REGISTRY=<registry>/<prefix>/<name>:<tag>`
      pushes from spin.toml: a repository named like [application] name (the
      image scripts/images.txt builds from spin.toml), tagged with
      [application] version (the version the artifact is annotated with), or
      pinned by digest;
    - the containers and `spinImage` executors running an image built from a
      crate (forex-refresher, one-frame, runtime-shim) run what `make images`
      builds: a repository named like the image, tagged with its crate's
      version, or pinned by digest;
    - in an overlay these carry a registry (the base names them without one,
      for the overlays' `images:` to complete); in the overlays production
      and runtime-shim (PINNED_OVERLAYS) the SpinApp's and every container's
      image is pinned by digest, while demo may use tags."""
    app_meta = ctx.spin.get("application") or {}
    name, version = app_meta.get("name"), app_meta.get("version")
    if not name or not version:
        c.fail("spin.toml [application] needs a name and a version (the SpinApp's image is checked against them)")
    app_images = [i.name for i in ctx.images.values() if not i.cargo_toml]
    if name and name not in app_images:
        c.fail(f"spin.toml [application] name {name!r} is not the image {IMAGES_FILE} builds from spin.toml ({', '.join(app_images)})")
    crates = ctx.crate_images
    images = set()
    for s in ctx.sets:
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
            ref = str(get(app.doc, "spec", "image", default=""))
            judge(app, ref, name, version, "`make push`", "spin.toml's version")
            images.add(ref)
        for o in s.objects:
            for m, k in image_slots(o, [SPIN_IMAGE_FIELD]):
                built = crates.get(split_image(m[k])[0].rsplit("/", 1)[-1])
                if built is not None:
                    judge(o, m[k], built.name, built.version, "`make images`", f"{built.cargo_toml}'s version")
                    images.add(m[k])
        if s.label.removeprefix("overlay ") not in PINNED_OVERLAYS:
            continue
        for o in s.objects:
            for m, k in image_slots(o, [("SpinApp", ("spec", "image"))]):
                if split_image(m[k])[2] is None:
                    c.fail(f"[{s.label}] {o.ref()}: image {m[k]!r} is not pinned by digest; add it to the overlay's images: with a digest")
    versions = ", ".join(f"{n} {v}" for n, v in [(name, version), *sorted((n, i.version) for n, i in crates.items())])
    c.summary = f"{len(images)} image reference(s) of the project's builds match {versions}; {', '.join(PINNED_OVERLAYS)} pinned by digest"


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


@rule("placeholders")
def placeholders(ctx: Context, c: Check) -> None:
    """Lists, for each set an operator applies, the placeholders it still
    holds: strings naming a host under an example domain (image registries,
    URLs, the ACME contact address, the Ingress's domain) and digests of
    zeros. Informational: it never fails, the untouched tree has them."""
    found: dict[str, set[str]] = {}
    for s in deployable(ctx.sets):
        for o in s.objects:
            for _, value in _strings({k: v for k, v in o.doc.items() if k != "metadata"}):
                if PLACEHOLDER_DIGEST in value:
                    found.setdefault(s.label, set()).add(value.replace(PLACEHOLDER_DIGEST, "sha256:000…"))
                elif PLACEHOLDER_HOST.search(value):
                    found.setdefault(s.label, set()).add(value)
    listed = "; ".join(f"[{label}] {', '.join(sorted(values))}" for label, values in sorted(found.items()))
    c.summary = f"to fill in before applying: {listed}" if listed else "none left"
