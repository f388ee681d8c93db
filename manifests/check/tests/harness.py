"""The base of the checker's tests: each test copies manifests/, spin.toml,
scripts/images.txt and the Cargo.toml files that version the images into a
temporary directory, breaks one thing there, and runs check_manifests.py
against that copy with --root.

Run them all from the repository root (`make check-manifests` does):

    python3 manifests/check/run_tests.py      # one process per core
    python3 -m unittest discover -s manifests/check -p 'test_*.py'   # the same, in one
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

from forex_check.cli import UPSTREAM_CRDS_ENV, default_upstream_crds
from forex_check.context import IMAGES_FILE, BuiltImage, read_images_file

HERE = Path(__file__).resolve().parents[1]  # manifests/check
REPO = HERE.parents[1]
CHECKER = HERE / "check_manifests.py"
# The upstream CRDs beside this checkout, if any: a copy in a temporary
# directory has nothing beside it, so the checker is told where they are.
UPSTREAM_CRDS = default_upstream_crds(REPO)


def crate_manifests() -> list[str]:
    """The workspace's Cargo.toml and those of the crates images are built from."""
    images = [BuiltImage(name, source) for name, source in read_images_file(REPO / IMAGES_FILE)]
    return ["Cargo.toml"] + [image.cargo_toml for image in images if image.cargo_toml]


class ManifestsTestCase(unittest.TestCase):
    """A copy of what the checker reads, to break; and the means to break it."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="manifests-check-")
        self.root = Path(self._tmp.name)
        shutil.copytree(REPO / "manifests", self.root / "manifests", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("spin.toml", IMAGES_FILE, *crate_manifests()):
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, self.root / name)

    def tearDown(self):
        self._tmp.cleanup()

    # -- helpers ---------------------------------------------------------

    def run_checker(self, *extra: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        if UPSTREAM_CRDS:
            env.setdefault(UPSTREAM_CRDS_ENV, str(UPSTREAM_CRDS))
        return subprocess.run(
            [sys.executable, str(CHECKER), "--root", str(self.root), *extra],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )

    def assert_fails_with(self, *patterns: str) -> None:
        """The checker exits non-zero and its output matches every pattern."""
        # kubectl (when present) renders the broken copy too; skipping it keeps
        # these tests quick and identical with and without kubectl.
        out = self.run_checker("--no-kubectl")
        text = out.stdout + out.stderr
        self.assertNotEqual(out.returncode, 0, f"checker passed a broken tree:\n{text}")
        self.assertNotIn("all checks passed", text)
        for pattern in patterns:
            self.assertRegex(text, pattern)

    def edit(self, relpath: str, kind: str, name: str, change) -> None:
        """Apply change(doc) to the object kind/name in manifests/relpath."""
        path = self.root / "manifests" / relpath
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        hits = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
        self.assertEqual(len(hits), 1, f"{kind} {name} not found once in {relpath}")
        change(hits[0])
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    def edit_kustomization_images(self, directory: str, name: str, **fields) -> None:
        """Set (or, with None, remove) fields of the images: entry `name`."""
        path = self.root / "manifests" / directory / "kustomization.yaml"
        doc = yaml.safe_load(path.read_text())
        entry = next(e for e in doc["images"] if e["name"] == name)
        for key, value in fields.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def spinapp(self, change) -> None:
        self.edit("base/forex-edge.yaml", "SpinApp", "forex-edge", lambda d: change(d["spec"]))

    def shim_executor_config(self, **fields) -> None:
        """Set fields of the containerd-shim-spin executor's deploymentConfig."""
        self.edit(
            "cluster/spinappexecutor.yaml",
            "SpinAppExecutor",
            "containerd-shim-spin",
            lambda d: d["spec"]["deploymentConfig"].update(fields),
        )

    def cronjob(self, change) -> None:
        self.edit("base/refresher.yaml", "CronJob", "refresher", lambda d: change(d["spec"]))

    def refresher_container(self, change) -> None:
        self.cronjob(lambda spec: change(spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]))

    def set_variable(self, spec, name, **fields) -> None:
        """Sets a SpinApp variable in its place (components/valkey-single
        patches valkey_host by position), or adds it at the end."""
        entry = {"name": name, **fields}
        names = [v["name"] for v in spec["variables"]]
        if name in names:
            spec["variables"][names.index(name)] = entry
        else:
            spec["variables"].append(entry)

    def kustomization(self, reldir: str, change) -> None:
        """Apply change(k) to manifests/reldir/kustomization.yaml."""
        path = self.root / "manifests" / reldir / "kustomization.yaml"
        k = yaml.safe_load(path.read_text())
        change(k)
        path.write_text(yaml.safe_dump(k, sort_keys=False))

    def move_resource(self, filename: str, src: str, dst: str) -> None:
        """Move a resource file from one kustomization to another."""
        (self.root / "manifests" / src / filename).rename(self.root / "manifests" / dst / filename)
        self.kustomization(src, lambda k: k["resources"].remove(filename))
        self.kustomization(dst, lambda k: k["resources"].append(filename))

    def image_entry(self, name: str, change, overlay: str = "production") -> None:
        """Apply change(entry) to an overlay's images: entry for name."""

        def edit(k):
            hits = [e for e in k["images"] if e["name"] == name]
            self.assertEqual(len(hits), 1, name)
            change(hits[0])

        self.kustomization(f"overlays/{overlay}", edit)

    def component_file(self, relpath: str, change) -> None:
        """Apply change(docs) to the list of documents of manifests/components/relpath."""
        path = self.root / "manifests" / "components" / relpath
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        change(docs)
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    def component_object(self, relpath: str, kind: str, name: str, change) -> None:
        """Apply change(doc) to the object kind/name of manifests/components/relpath."""

        def edit(docs):
            hits = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
            self.assertEqual(len(hits), 1, f"{kind} {name} not found once in {relpath}")
            change(hits[0])

        self.component_file(relpath, edit)

    def ingress_patch(self, component: str, change) -> None:
        """Apply change(ops) to the JSON patch a TLS component makes to the Ingress."""
        path = self.root / "manifests" / "components" / component / "ingress-tls.yaml"
        ops = yaml.safe_load(path.read_text())
        change(ops)
        path.write_text(yaml.safe_dump(ops, sort_keys=False))

    @staticmethod
    def op(ops: list, path: str) -> dict:
        return next(o for o in ops if o["path"] == path)

    def add_patch(self, reldir: str, patch: str, target: dict | None = None) -> None:
        entry = {"patch": patch} | ({"target": target} if target else {})
        self.kustomization(reldir, lambda k: k.setdefault("patches", []).append(entry))

    @staticmethod
    def placeholder_line(stdout: str) -> str:
        return next(line for line in stdout.splitlines() if line.startswith("ok   placeholders:"))

    def replace_text(self, relpath: str, old: str, new: str) -> None:
        """Replace old (which must be there) by new in manifests/relpath."""
        path = self.root / "manifests" / relpath
        text = path.read_text()
        self.assertIn(old, text, relpath)
        path.write_text(text.replace(old, new))

    def autoscaler(self, change) -> None:
        """Apply change(spec) to the base's HorizontalPodAutoscaler."""
        self.edit("base/autoscaler.yaml", "HorizontalPodAutoscaler", "forex-edge", lambda d: change(d["spec"]))

    def scaled_object(self, change) -> None:
        """Apply change(spec) to the ScaledObject of components/autoscaling-keda."""
        self.component_object("autoscaling-keda/scaledobject.yaml", "ScaledObject", "forex-edge", lambda d: change(d["spec"]))

    def without_autoscaling(self, replicas: int = 2) -> None:
        """The edge with a fixed replica count and no autoscaler: the base's
        HPA gone, and the KEDA component (checked on production) emptied."""

        def fixed(spec):
            spec.pop("enableAutoscaling")
            spec["replicas"] = replicas

        self.spinapp(fixed)
        self.kustomization("base", lambda k: k["resources"].remove("autoscaler.yaml"))
        self.kustomization("components/autoscaling-keda", lambda k: [k.pop("patches"), k.update(resources=[])])

    def runtime_shim_executor(self, change) -> None:
        self.edit("cluster/spinappexecutor.yaml", "SpinAppExecutor", "runtime-shim", lambda d: change(d["spec"]["deploymentConfig"]))

