"""The loading: the untouched tree passes, every object is schema-valid,
and the kustomize subset loads what kubectl would apply (or says what it
does not understand)."""

from __future__ import annotations

import shutil
import unittest

from forex_check.context import OPTIONAL_COMPONENTS

from forex_check.model import parse_yaml

from .harness import REPO, UPSTREAM_CRDS, ManifestsTestCase


class OwnSchemas(unittest.TestCase):
    """manifests/crds/ holds schemas of the project's own, each reduced from
    an upstream CRD, never a copy of one."""

    def test_every_crd_is_reduced_and_no_copy_of_upstream(self):
        for path in sorted((REPO / "manifests" / "crds").glob("*.yaml")):
            with self.subTest(crd=path.name):
                text = path.read_text()
                header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
                self.assertIn("reduced for the offline checker", header, "its first lines say what it is reduced from")
                upstream = UPSTREAM_CRDS / path.name if UPSTREAM_CRDS else None
                if upstream is not None and upstream.is_file():
                    self.assertNotEqual(text, upstream.read_text())
                    self.assertNotEqual(parse_yaml(text)["spec"]["versions"], parse_yaml(upstream.read_text())["spec"]["versions"])


class LoadingFails(ManifestsTestCase):
    """The tree loads whole and valid, or the checker says why."""

    # -- the untouched tree ----------------------------------------------

    def test_untouched_tree_passes(self):
        out = self.run_checker()  # with kubectl kustomize when it is on PATH
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"(?m)^manifests: \d+ objects, all checks passed$")

    # -- schema ----------------------------------------------------------

    def test_misspelled_spinapp_field(self):
        def misspell(spec):
            spec["enableAutoScaling"] = spec.pop("enableAutoscaling")

        self.spinapp(misspell)
        self.assert_fails_with(r"FAIL crd-schema", r"'enableAutoScaling' was unexpected")

    def test_misspelled_field_deep_in_a_spinapp(self):
        self.spinapp(lambda spec: spec["checks"]["readiness"].update(httpget=spec["checks"]["readiness"].pop("httpGet")))
        self.assert_fails_with(r"FAIL crd-schema", r"checks\.readiness", r"'httpget' was unexpected")

    def test_spinapp_probe_with_a_period_of_zero(self):
        """Upstream takes it; the Deployment spin-operator makes would be refused."""
        self.spinapp(lambda spec: spec["checks"]["readiness"].update(periodSeconds=0))
        self.assert_fails_with(r"FAIL crd-schema", r"SpinApp forex/forex-edge.*checks\.readiness\.periodSeconds: 0 is less than the minimum of 1")

    def test_spinapp_variable_with_a_value_and_a_source(self):
        self.spinapp(lambda spec: next(v for v in spec["variables"] if "valueFrom" in v).update(value="x"))
        self.assert_fails_with(r"FAIL crd-schema", r"SpinApp forex/forex-edge.*variables\.\d+: .* should not be valid")

    def test_executor_with_two_ways_to_run_the_app(self):
        self.shim_executor_config(spinImage="registry.example.com/runtime-shim:1")
        self.assert_fails_with(r"FAIL crd-schema", r"SpinAppExecutor .*containerd-shim-spin.*deploymentConfig: .* is valid under each of")

    def test_misspelled_field_in_a_deployment(self):
        self.edit("base/valkey.yaml", "StatefulSet", "valkey", lambda d: d["spec"].update(replica=1))
        self.assert_fails_with(r"FAIL schema", r"StatefulSet forex/valkey", r"'replica' was unexpected")

    def test_cronjob_without_schedule(self):
        self.cronjob(lambda spec: spec.pop("schedule"))
        self.assert_fails_with(r"FAIL schema", r"'schedule' is a required property", r"FAIL freshness")

    def test_unknown_kind(self):
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", "forex-edge", lambda d: d.update(kind="PodDisruptionBudgt"))
        self.assert_fails_with(r"FAIL schema", r"unknown kind PodDisruptionBudgt")

    # -- kustomize components ------------------------------------------------

    def test_component_listed_as_a_resource(self):
        def move(k):
            k["resources"] += k.pop("components")

        self.kustomization("overlays/production", move)
        self.assert_fails_with(r"FAIL load", r"tls-letsencrypt/kustomization.yaml: a Component can only be listed under components:")

    def test_kustomization_listed_as_a_component(self):
        self.kustomization("overlays/demo", lambda k: k["components"].append("../production"))
        self.assert_fails_with(r"FAIL load", r"overlays/production/kustomization.yaml: listed under components:, so it must be .*kind Component")

    # -- overlays: patches ---------------------------------------------------

    def test_overlay_strategic_merge_patch_is_checked(self):
        self.add_patch(
            "overlays/production",
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: refresher\nspec:\n  schedule: '*/5 * * * *'\n",
        )
        self.assert_fails_with(r"FAIL freshness", r"'\*/5 \* \* \* \*' leaves 300 s between runs")

    def test_overlay_json_patch_is_checked(self):
        self.add_patch("overlays/demo", "- op: replace\n  path: /spec/enableAutoscaling\n  value: false\n", {"kind": "SpinApp", "name": "forex-edge"})
        self.assert_fails_with(r"FAIL replicas", r"replicas is missing", r"FAIL autoscaler-target", r"does not set enableAutoscaling: true")

    def test_overlay_patch_matching_nothing(self):
        self.add_patch("overlays/demo", "- op: remove\n  path: /spec/replicas\n", {"kind": "SpinApp", "name": "forex-api"})
        self.assert_fails_with(r"FAIL load", r"overlays/demo/kustomization.yaml: patches\[0\]: target .* matches no resource")

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not on PATH")
    def test_overlay_patches_render_like_kubectl(self):
        """The loader's strategic merge and JSON patches give what kubectl
        kustomize gives: merged containers, env and volumes in kustomize's
        order, a deleted list element, a SpinApp's maps merged."""
        self.add_patch(
            "overlays/production",
            """apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: valkey
spec:
  template:
    spec:
      containers:
        - name: valkey
          resources: {limits: {memory: 256Mi}}
          env: [{name: VALKEY_EXTRA, value: "1"}]
      volumes:
        - name: data
          $patch: delete
        - name: data
          emptyDir: {sizeLimit: 1Gi}
""",
        )
        self.add_patch(
            "overlays/production",
            "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinApp\nmetadata:\n  name: x\nspec:\n  resources: {requests: {cpu: 200m}}\n",
            {"kind": "SpinApp"},
        )
        self.add_patch(
            "overlays/production",
            "- op: add\n  path: /spec/jobTemplate/spec/template/spec/containers/0/env/-\n  value: {name: RATES_KEY, value: rates}\n"
            "- op: test\n  path: /spec/concurrencyPolicy\n  value: Forbid\n",
            {"kind": "CronJob", "labelSelector": "app.kubernetes.io/name=refresher"},
        )
        out = self.run_checker()
        # manifests/cluster, the base, every overlay, every optional component on its overlay.
        renders = 2 + len(list((self.root / "manifests" / "overlays").glob("*/kustomization.yaml"))) + len(OPTIONAL_COMPONENTS)
        self.assertRegex(out.stdout, rf"(?m)^ok   kustomize: {renders} kubectl render\(s\) match the checker's loader$", out.stdout)
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_config_map_generator_with_a_name_hash(self):
        def hashed(k):
            k["configMapGenerator"][0]["options"].pop("disableNameSuffixHash")

        self.kustomization("components/monitoring", hashed)
        self.assert_fails_with(r"FAIL load", r"configMapGenerator\[0\]: this checker needs options.disableNameSuffixHash: true")

