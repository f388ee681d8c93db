"""The SpinApp and its executors: apply order, runtime, spinImage,
replicas, variables, outbound hosts, the rates contract, key-value stores."""

from __future__ import annotations

import shutil
import subprocess
import unittest

import yaml

from .harness import ManifestsTestCase


class SpinAppFails(ManifestsTestCase):
    """A SpinApp that could not run as spin.toml and the cluster expect fails."""

    # -- apply order -----------------------------------------------

    def test_executor_in_another_namespace(self):
        self.kustomization("cluster", lambda k: k.pop("namespace"))
        self.edit("cluster/spinappexecutor.yaml", "SpinAppExecutor", "containerd-shim-spin", lambda d: d["metadata"].update(namespace="spin-system"))
        self.assert_fails_with(
            r"FAIL apply-order", r"SpinAppExecutor 'containerd-shim-spin' does not exist in namespace forex", r"spin-system"
        )

    def test_unknown_executor(self):
        self.spinapp(lambda spec: spec.update(executor="containerd-shim-spn"))
        self.assert_fails_with(r"FAIL apply-order", r"'containerd-shim-spn' does not exist")

    def test_executor_in_the_app_kustomization(self):
        # The executors' image entry goes with them (kustomize would change nothing).
        self.kustomization("cluster", lambda k: k.pop("images"))
        self.move_resource("spinappexecutor.yaml", "cluster", "base")
        self.assert_fails_with(r"FAIL apply-order", r"SpinAppExecutor 'containerd-shim-spin' is created by the same apply as the SpinApp")

    def test_runtimeclass_in_the_app_kustomization(self):
        self.move_resource("runtimeclass.yaml", "cluster", "base")
        self.assert_fails_with(r"FAIL apply-order", r"RuntimeClass wasmtime-spin-v2 .*belongs in manifests/cluster/.*cluster-wide")

    def test_namespace_in_the_app_kustomization(self):
        self.move_resource("namespace.yaml", "cluster", "base")
        self.assert_fails_with(
            r"FAIL apply-order",
            r"Namespace forex .*belongs in manifests/cluster/.*deletes the namespace's Secrets",
            r"namespace forex of the app is not created by manifests/cluster",
        )

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not on PATH")
    def test_kustomize_emits_a_spinapp_before_its_executor(self):
        """Why the executor is in manifests/cluster: in one kustomization,
        kubectl (kustomize's legacy order) emits the SpinApp first."""
        self.move_resource("spinappexecutor.yaml", "cluster", "base")
        out = subprocess.run(
            ["kubectl", "kustomize", str(self.root / "manifests" / "base")], capture_output=True, text=True, check=True
        )
        kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout) if d]
        self.assertLess(kinds.index("SpinApp"), kinds.index("SpinAppExecutor"), kinds)

    # -- runtime -----------------------------------------------------------

    def test_misspelled_runtime_handler(self):
        self.edit("cluster/runtimeclass.yaml", "RuntimeClass", "wasmtime-spin-v2", lambda d: d.update(handler="spin-v2"))
        self.assert_fails_with(r"FAIL runtime", r"handler 'spin-v2' is not 'spin'")

    def test_executor_runtime_class_that_does_not_exist(self):
        self.shim_executor_config(runtimeClassName="wasmtime-spin")
        self.assert_fails_with(r"FAIL runtime", r"runtimeClassName 'wasmtime-spin' matches no RuntimeClass")

    # -- spinImage executor (runtime-shim) -------------------------------

    def test_spin_image_executor_without_a_ca_bundle(self):
        self.runtime_shim_executor(lambda c: [c.pop("installDefaultCACerts"), c.pop("caCertSecret")])
        self.assert_fails_with(r"FAIL spin-image", r"SpinAppExecutor forex/runtime-shim .*: neither installDefaultCACerts nor caCertSecret")

    def test_spin_image_executor_with_a_store_runtime_shim_lacks(self):
        self.spinapp(lambda spec: spec["runtimeConfig"]["keyValueStores"][0].update(type="redis", options=[{"name": "url", "value": "redis://x"}]))
        self.assert_fails_with(
            r"FAIL spin-image",
            r"\[overlay runtime-shim\] SpinApp forex/forex-edge .*\(executor 'runtime-shim', spinImage\): key-value store 'default' of type 'redis'",
        )

    def test_spin_image_executor_with_pull_secrets(self):
        self.spinapp(lambda spec: spec.update(imagePullSecrets=[{"name": "registry"}]))
        self.assert_fails_with(r"FAIL spin-image", r"imagePullSecrets do not reach the container")

    def test_spin_image_with_another_version(self):
        self.runtime_shim_executor(lambda c: c.update(spinImage="runtime-shim:0.0.9"))
        self.edit_kustomization_images("cluster", "runtime-shim", newTag="0.0.9", digest=None)
        self.assert_fails_with(r"FAIL image", r"image 'registry.example.com/forex/runtime-shim:0.0.9' has tag 0.0.9, not runtime-shim/Cargo.toml's version '0.1.0'")

    # -- replicas --------------------------------------------------

    # (replicas beside enableAutoscaling: test_autoscaling.py)

    def test_zero_replicas_without_autoscaling(self):
        self.without_autoscaling(replicas=0)
        self.assert_fails_with(r"FAIL replicas", r"replicas is 0")

    def test_fixed_replicas_without_an_autoscaler_are_fine(self):
        self.without_autoscaling(replicas=2)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_zero_replicas_with_autoscaling_is_fine(self):
        self.spinapp(lambda spec: spec.update(replicas=0))
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    # -- variables -------------------------------------------------

    def test_variable_spin_toml_does_not_declare(self):
        self.spinapp(lambda spec: self.set_variable(spec, "valkey_port", value="6379"))
        self.assert_fails_with(r"FAIL variables", r"'valkey_port' is not declared in spin.toml")

    def test_missing_required_variable(self):
        self.spinapp(lambda spec: spec.update(variables=[v for v in spec["variables"] if v["name"] != "valkey_url"]))
        self.assert_fails_with(r"FAIL variables", r"'valkey_url' is required")

    def test_newly_required_variable_in_spin_toml(self):
        spin = self.root / "spin.toml"
        spin.write_text(spin.read_text().replace("[variables]\n", '[variables]\nregion = { required = true }\n', 1))
        self.assert_fails_with(r"FAIL variables", r"'region' is required")

    # -- outbound --------------------------------------------------

    def test_extra_allowed_outbound_host(self):
        spin = self.root / "spin.toml"
        text = spin.read_text()
        broken = text.replace(
            '"rediss://{{ valkey_host }}"]',
            '"rediss://{{ valkey_host }}", "https://example.com"]',
            1,
        )
        self.assertNotEqual(text, broken)
        spin.write_text(broken)
        self.assert_fails_with(r"FAIL outbound", r"'https://example.com'")

    def test_valkey_host_pointing_elsewhere(self):
        self.spinapp(lambda spec: self.set_variable(spec, "valkey_host", value="redis.example.com:6379"))
        self.assert_fails_with(r"FAIL outbound", r"'redis.example.com:6379' is not the Valkey Service")

    # -- rates contract ----------------------------------------------------

    def valkey_acl_env(self, name: str, value: str) -> None:
        def change(d):
            init = d["spec"]["template"]["spec"]["initContainers"][0]
            for e in init["env"]:
                if e["name"] == name:
                    e["value"] = value

        self.edit("base/valkey.yaml", "StatefulSet", "valkey", change)

    def test_valkey_acl_channel_other_than_the_spinapps(self):
        self.valkey_acl_env("RATES_CHANNEL", "rates_changed")
        self.assert_fails_with(
            r"FAIL rates-contract", r"container 'render-config' RATES_CHANNEL 'rates_changed' .* is not the SpinApp's rates_channel 'rates_updated'"
        )

    def test_spinapp_key_other_than_valkeys_and_the_refreshers(self):
        self.spinapp(lambda spec: self.set_variable(spec, "rates_key", value="rates:v2"))
        self.assert_fails_with(
            r"FAIL rates-contract",
            r"'render-config' RATES_KEY 'rates' .* not the SpinApp's rates_key 'rates:v2'",
            r"CronJob forex/refresher .*writes RATES_KEY 'rates', not the SpinApp's rates_key 'rates:v2'",
        )

    # -- key-value store ---------------------------------------------------

    def test_misspelled_kv_store_type(self):
        self.spinapp(lambda spec: spec["runtimeConfig"]["keyValueStores"][0].update(type="sqlite"))
        self.assert_fails_with(r"FAIL kv-store", r"store 'default' has type 'sqlite', which Spin 3.6.3")

    def test_kv_path_off_its_volume(self):
        self.spinapp(lambda spec: spec["runtimeConfig"]["keyValueStores"][0]["options"][0].update(value="/var/lib/forex-edge/default.db"))
        self.assert_fails_with(r"FAIL kv-store", r"path '/var/lib/forex-edge/default.db' is on no volumeMount of the SpinApp")

    def test_kv_path_relative(self):
        self.spinapp(lambda spec: spec["runtimeConfig"]["keyValueStores"][0]["options"][0].update(value="kv/default.db"))
        self.assert_fails_with(r"FAIL kv-store", r"path 'kv/default.db' must be absolute")

    def test_volume_named_like_spin_operators_own(self):
        def rename(spec):
            spec["volumes"][0]["name"] = "spin-ca"
            spec["volumeMounts"][0]["name"] = "spin-ca"

        self.spinapp(rename)
        self.assert_fails_with(r"FAIL kv-store", r"volume 'spin-ca' clashes with the volume spin-operator adds")

