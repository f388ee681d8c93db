"""The manifest checker fails, naming the problem, when a manifest is broken.

Run from the repository root:

    python3 -m unittest discover -s manifests/check -p 'test_*.py'

Each test copies manifests/ and spin.toml into a temporary directory, breaks
one thing there, and runs check_manifests.py against that copy with --root.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHECKER = HERE / "check_manifests.py"


class BrokenManifestsFail(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="manifests-check-")
        self.root = Path(self._tmp.name)
        shutil.copytree(REPO / "manifests", self.root / "manifests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "spin.toml", self.root / "spin.toml")

    def tearDown(self):
        self._tmp.cleanup()

    # -- helpers ---------------------------------------------------------

    def run_checker(self, *extra: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
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

    def spinapp(self, change) -> None:
        self.edit("base/forex-edge.yaml", "SpinApp", "forex-edge", lambda d: change(d["spec"]))

    def cronjob(self, change) -> None:
        self.edit("base/refresher.yaml", "CronJob", "refresher", lambda d: change(d["spec"]))

    def refresher_container(self, change) -> None:
        self.cronjob(lambda spec: change(spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]))

    def set_variable(self, spec, name, **fields) -> None:
        spec["variables"] = [v for v in spec["variables"] if v["name"] != name] + [{"name": name, **fields}]

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

    def image_entry(self, name: str, change) -> None:
        """Apply change(entry) to the production overlay's images: entry for name."""

        def edit(k):
            hits = [e for e in k["images"] if e["name"] == name]
            self.assertEqual(len(hits), 1, name)
            change(hits[0])

        self.kustomization("overlays/production", edit)

    def add_patch(self, reldir: str, patch: str, target: dict | None = None) -> None:
        entry = {"patch": patch} | ({"target": target} if target else {})
        self.kustomization(reldir, lambda k: k.setdefault("patches", []).append(entry))

    # -- the untouched tree ----------------------------------------------

    def test_untouched_tree_passes(self):
        out = self.run_checker()  # with kubectl kustomize when it is on PATH
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"(?m)^manifests: \d+ objects, all checks passed$")

    # -- schema ----------------------------------------------------------

    def test_misspelled_spinapp_field(self):
        def misspell(spec):
            spec["replica"] = spec.pop("replicas")

        self.spinapp(misspell)
        self.assert_fails_with(r"FAIL crd-schema", r"'replica' was unexpected")

    def test_misspelled_field_deep_in_a_spinapp(self):
        self.spinapp(lambda spec: spec["checks"]["readiness"].update(httpget=spec["checks"]["readiness"].pop("httpGet")))
        self.assert_fails_with(r"FAIL crd-schema", r"checks\.readiness", r"'httpget' was unexpected")

    def test_misspelled_field_in_a_deployment(self):
        self.edit("base/valkey.yaml", "Deployment", "valkey", lambda d: d["spec"].update(replica=1))
        self.assert_fails_with(r"FAIL schema", r"Deployment forex/valkey", r"'replica' was unexpected")

    def test_cronjob_without_schedule(self):
        self.cronjob(lambda spec: spec.pop("schedule"))
        self.assert_fails_with(r"FAIL schema", r"'schedule' is a required property", r"FAIL freshness")

    def test_unknown_kind(self):
        self.edit("base/ingress.yaml", "Ingress", "forex-edge", lambda d: d.update(kind="Ingres"))
        self.assert_fails_with(r"FAIL schema", r"unknown kind Ingres")

    # -- rule 1: freshness -------------------------------------------------

    def test_every_five_minutes_is_too_slow(self):
        self.cronjob(lambda spec: spec.update(schedule="*/5 * * * *"))
        self.assert_fails_with(r"FAIL freshness", r"'\*/5 \* \* \* \*' leaves 300 s between runs")

    def test_twice_an_hour_is_too_slow(self):
        self.cronjob(lambda spec: spec.update(schedule="0,30 * * * *"))
        self.assert_fails_with(r"FAIL freshness", r"leaves 1800 s between runs")

    def test_a_run_longer_than_the_interval(self):
        self.cronjob(lambda spec: spec["jobTemplate"]["spec"].update(activeDeadlineSeconds=300))
        self.assert_fails_with(r"FAIL freshness", r"activeDeadlineSeconds 300 is not below the 240 s")

    def test_refresh_deadline_beyond_the_job_deadline(self):
        self.edit("base/refresher.yaml", "ConfigMap", "refresher", lambda d: d["data"].update(REFRESH_DEADLINE="90s"))
        self.assert_fails_with(
            r"FAIL freshness", r"REFRESH_DEADLINE 90s × 2 attempt\(s\) \(backoffLimit 1\) = 180 s is not below activeDeadlineSeconds 170"
        )

    def test_refresh_deadline_the_refresher_cannot_read(self):
        self.edit("base/refresher.yaml", "ConfigMap", "refresher", lambda d: d["data"].update(REFRESH_DEADLINE="1m30s"))
        self.assert_fails_with(r"FAIL freshness", r"'1m30s' is not a duration the refresher accepts")

    # -- rule 2: apply order -----------------------------------------------

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
        self.edit(
            "cluster/spinappexecutor.yaml",
            "SpinAppExecutor",
            "containerd-shim-spin",
            lambda d: d["spec"]["deploymentConfig"].update(runtimeClassName="wasmtime-spin"),
        )
        self.assert_fails_with(r"FAIL runtime", r"runtimeClassName 'wasmtime-spin' matches no RuntimeClass")

    # -- rule 3: replicas --------------------------------------------------

    def test_zero_replicas_without_autoscaling(self):
        self.spinapp(lambda spec: spec.update(replicas=0))
        self.assert_fails_with(r"FAIL replicas", r"replicas is 0")

    def test_zero_replicas_with_autoscaling_is_fine(self):
        self.spinapp(lambda spec: spec.update(replicas=0, enableAutoscaling=True))
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    # -- rule 4: variables -------------------------------------------------

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

    # -- rule 5: outbound --------------------------------------------------

    def test_extra_allowed_outbound_host(self):
        spin = self.root / "spin.toml"
        text = spin.read_text()
        broken = text.replace(
            'allowed_outbound_hosts = ["redis://{{ valkey_host }}"]',
            'allowed_outbound_hosts = ["redis://{{ valkey_host }}", "https://example.com"]',
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

        self.edit("base/valkey.yaml", "Deployment", "valkey", change)

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

    # -- paths ---------------------------------------------------------------

    def test_readiness_path_the_app_does_not_serve(self):
        self.spinapp(lambda spec: spec["checks"]["readiness"]["httpGet"].update(path="/ready"))
        self.assert_fails_with(r"FAIL paths", r"checks.readiness path '/ready' is not a health path the edge serves")

    def test_ingress_path_the_app_does_not_serve(self):
        self.edit("base/ingress.yaml", "Ingress", "forex-edge", lambda d: d["spec"]["rules"][0]["http"]["paths"][0].update(path="/rate"))
        self.assert_fails_with(r"FAIL paths", r"path '/rate' \(Exact\) routes to nothing the edge serves")

    # -- selectors -----------------------------------------------------------

    def network_policy(self, name: str, change) -> None:
        self.edit("base/networkpolicies.yaml", "NetworkPolicy", name, lambda d: change(d["spec"]))

    def test_network_policy_selecting_no_pod(self):
        self.network_policy("valkey", lambda spec: spec["podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "redis"}))
        self.assert_fails_with(r"FAIL selectors", r"NetworkPolicy forex/valkey .*spec.podSelector .*redis.* selects no pod")

    def test_network_policy_peer_selecting_no_pod(self):
        self.network_policy(
            "valkey", lambda spec: spec["ingress"][0]["from"][0]["podSelector"]["matchLabels"].update({"core.spinkube.dev/app-name": "edge"})
        )
        self.assert_fails_with(r"FAIL selectors", r"spec.ingress\[0\].from\[0\].podSelector .* selects no pod")

    def test_service_selecting_no_pod(self):
        self.edit("base/valkey.yaml", "Service", "valkey", lambda d: d["spec"]["selector"].update({"app.kubernetes.io/name": "valkey-server"}))
        self.assert_fails_with(r"FAIL selectors", r"Service forex/valkey .*spec.selector .* selects no pod")

    # -- disruption ----------------------------------------------------------

    def pdb(self, name: str, change) -> None:
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", name, lambda d: change(d["spec"]))

    def test_spinapp_without_disruption_budget(self):
        path = self.root / "manifests" / "base" / "disruptionbudgets.yaml"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d["metadata"]["name"] != "forex-edge"]
        path.write_text(yaml.safe_dump_all(docs))
        self.assert_fails_with(r"FAIL disruption", r"SpinApp forex/forex-edge .*no PodDisruptionBudget selects its pods")

    def test_edge_budget_that_blocks_every_drain(self):
        self.pdb("forex-edge", lambda spec: spec.update(minAvailable=2))
        self.assert_fails_with(r"FAIL disruption", r"allows no disruption of SpinApp forex/forex-edge .*'s 2 replicas")

    def test_budget_selecting_no_pod(self):
        self.pdb("valkey", lambda spec: spec["selector"]["matchLabels"].update({"app.kubernetes.io/name": "valkey-0"}))
        self.assert_fails_with(r"FAIL selectors", r"PodDisruptionBudget forex/valkey .*selects no pod")

    def test_two_budgets_over_one_workload(self):
        everything = {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "Exists"}]}
        self.pdb("valkey", lambda spec: spec.update(selector=everything))
        self.assert_fails_with(
            r"FAIL disruption", r"selects the pods of several workloads", r"its pods are under several PodDisruptionBudgets"
        )

    # -- rule 6: secrets ---------------------------------------------------

    def test_plaintext_token_env_value(self):
        def plaintext(container):
            container["env"] = [e for e in container["env"] if e["name"] != "ONE_FRAME_TOKEN"]
            container["env"].append({"name": "ONE_FRAME_TOKEN", "value": "10dc303535874aeccc86a8251e6992f5"})

        self.refresher_container(plaintext)
        self.assert_fails_with(r"FAIL secrets", r"env ONE_FRAME_TOKEN has a plaintext value")

    def test_url_with_password_in_env(self):
        def plaintext(container):
            container["env"] = [e for e in container["env"] if e["name"] != "VALKEY_URL"]
            container["env"].append({"name": "VALKEY_URL", "value": "redis://:hunter2@valkey:6379"})

        self.refresher_container(plaintext)
        self.assert_fails_with(r"FAIL secrets", r"env VALKEY_URL is a URL with credentials")

    def test_inline_valkey_url_variable(self):
        self.spinapp(lambda spec: self.set_variable(spec, "valkey_url", value="redis://edge:pw@valkey.forex.svc.cluster.local:6379"))
        self.assert_fails_with(r"FAIL secrets", r"variable 'valkey_url' has an inline value that looks secret")

    def test_secret_with_data_in_the_base(self):
        shutil.copy(self.root / "manifests" / "secrets.example.yaml", self.root / "manifests" / "base" / "secrets.yaml")
        kpath = self.root / "manifests" / "base" / "kustomization.yaml"
        k = yaml.safe_load(kpath.read_text())
        k["resources"].append("secrets.yaml")
        kpath.write_text(yaml.safe_dump(k))
        self.assert_fails_with(r"FAIL secrets", r"Secret forex/valkey .*real values never go in git")

    def test_unmarked_example_secret(self):
        self.edit("secrets.example.yaml", "Secret", "valkey", lambda d: d["metadata"].pop("labels"))
        self.assert_fails_with(r"FAIL secrets", r"must carry the label and annotation")

    # -- rule 7: hardening -------------------------------------------------

    def test_container_without_resources(self):
        self.refresher_container(lambda c: c.pop("resources"))
        self.assert_fails_with(r"FAIL hardening", r"container 'refresher': resources.requests lacks cpu, memory")

    def test_init_container_without_limits(self):
        def drop_limits(d):
            d["spec"]["template"]["spec"]["initContainers"][0]["resources"].pop("limits")

        self.edit("base/valkey.yaml", "Deployment", "valkey", drop_limits)
        self.assert_fails_with(r"FAIL hardening", r"initContainer 'render-config': resources.limits lacks cpu, memory")

    def test_container_running_as_root(self):
        self.refresher_container(lambda c: c["securityContext"].update(runAsUser=0))
        self.assert_fails_with(r"FAIL hardening", r"container 'refresher': runs as root")

    def test_container_that_may_run_as_root(self):
        def no_user(d):
            pod = d["spec"]["template"]["spec"]
            pod["securityContext"].pop("runAsNonRoot")
            pod["securityContext"].pop("runAsUser")

        self.edit("overlays/demo/one-frame.yaml", "Deployment", "one-frame", no_user)
        self.assert_fails_with(r"FAIL hardening", r"container 'one-frame': may run as root")

    def test_privilege_escalation(self):
        self.refresher_container(lambda c: c["securityContext"].pop("allowPrivilegeEscalation"))
        self.assert_fails_with(r"FAIL hardening", r"allowPrivilegeEscalation must be false")

    def test_spinapp_without_resources(self):
        self.spinapp(lambda spec: spec.pop("resources"))
        self.assert_fails_with(r"FAIL hardening", r"SpinApp forex/forex-edge .*spec.resources.requests.cpu is missing")

    # -- references --------------------------------------------------------

    def test_misspelled_secret_key(self):
        def misspell(container):
            for e in container["env"]:
                if e["name"] == "VALKEY_URL":
                    e["valueFrom"]["secretKeyRef"]["key"] = "refresher_url"

        self.refresher_container(misspell)
        self.assert_fails_with(r"FAIL references", r"key 'refresher_url' of Secret 'valkey'")

    # -- image -------------------------------------------------------------

    def test_image_tag_other_than_spin_toml_version(self):
        self.spinapp(lambda spec: spec.update(image="ghcr.io/example/forex-edge:0.2.0"))
        self.assert_fails_with(r"FAIL image", r"tag 0.2.0, not spin.toml's version '0.1.0'")

    def test_image_of_another_app(self):
        self.spinapp(lambda spec: spec.update(image="ghcr.io/example/forex-api:0.1.0"))
        self.image_entry("ghcr.io/example/forex-edge", lambda e: e.update(name="ghcr.io/example/forex-api", newName="ghcr.io/example/forex-api"))
        self.assert_fails_with(r"FAIL image", r"'ghcr.io/example/forex-api:0.1.0' is not what `make push` pushes")

    def test_image_pinned_by_digest_is_fine(self):
        def pin(e):
            e.pop("newTag")
            e.update(newName="127.0.0.1:5000/forex-edge", digest="sha256:" + "1" * 64)

        self.image_entry("ghcr.io/example/forex-edge", pin)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("127.0.0.1:5000/forex-edge@sha256:" + "1" * 64, out.stdout)

    def test_overlay_image_tag_other_than_spin_toml_version(self):
        def retag(e):
            e.pop("digest")
            e.update(newTag="0.2.0")

        self.image_entry("ghcr.io/example/forex-edge", retag)
        self.assert_fails_with(
            r"FAIL image", r"\[overlay production\] SpinApp .*'ghcr.io/example/forex-edge:0.2.0' has tag 0.2.0, not spin.toml's version"
        )

    def test_overlay_image_of_another_app(self):
        self.image_entry("ghcr.io/example/forex-edge", lambda e: e.update(newName="ghcr.io/example/forex-api"))
        self.assert_fails_with(r"FAIL image", r"'ghcr.io/example/forex-api:0.1.0@sha256:0+' is not what `make push` pushes")

    def test_production_image_not_pinned(self):
        self.image_entry("valkey/valkey", lambda e: e.pop("digest"))
        self.assert_fails_with(r"FAIL image", r"\[overlay production\] Deployment forex/valkey .*'valkey/valkey:8.1.4' is not pinned by digest")

    def test_images_entry_matching_no_image(self):
        self.image_entry("valkey/valkey", lambda e: e.update(name="docker.io/valkey/valkey"))
        self.assert_fails_with(r"FAIL load", r"images\[2\]: name 'docker.io/valkey/valkey' matches no image", r"valkey/valkey")

    def test_malformed_digest(self):
        self.image_entry("valkey/valkey", lambda e: e.update(digest="sha256:1234"))
        self.assert_fails_with(r"FAIL load", r"digest 'sha256:1234' is not sha256:<64 hex digits>")

    # -- overlays: patches ---------------------------------------------------

    def test_overlay_strategic_merge_patch_is_checked(self):
        self.add_patch(
            "overlays/production",
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: refresher\nspec:\n  schedule: '*/5 * * * *'\n",
        )
        self.assert_fails_with(r"FAIL freshness", r"'\*/5 \* \* \* \*' leaves 300 s between runs")

    def test_overlay_json_patch_is_checked(self):
        self.add_patch("overlays/demo", "- op: replace\n  path: /spec/replicas\n  value: 0\n", {"kind": "SpinApp", "name": "forex-edge"})
        self.assert_fails_with(r"FAIL replicas", r"replicas is 0")

    def test_overlay_patch_matching_nothing(self):
        self.add_patch("overlays/demo", "- op: remove\n  path: /spec/replicas\n", {"kind": "SpinApp", "name": "forex-api"})
        self.assert_fails_with(r"FAIL load", r"patches\[1\]: target .* matches no resource")

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not on PATH")
    def test_overlay_patches_render_like_kubectl(self):
        """The loader's strategic merge and JSON patches give what kubectl
        kustomize gives: merged containers, env and volumes in kustomize's
        order, a deleted list element, SpinApp lists replaced whole."""
        self.add_patch(
            "overlays/production",
            """apiVersion: apps/v1
kind: Deployment
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
            "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinApp\nmetadata:\n  name: x\nspec:\n  replicas: 3\n",
            {"kind": "SpinApp"},
        )
        self.add_patch(
            "overlays/production",
            "- op: add\n  path: /spec/jobTemplate/spec/template/spec/containers/0/env/-\n  value: {name: RATES_KEY, value: rates}\n"
            "- op: test\n  path: /spec/concurrencyPolicy\n  value: Forbid\n",
            {"kind": "CronJob", "labelSelector": "app.kubernetes.io/name=refresher"},
        )
        out = self.run_checker()
        self.assertRegex(out.stdout, r"(?m)^ok   kustomize: 4 kubectl render\(s\) match the checker's loader$", out.stdout)
        self.assertEqual(out.returncode, 0, out.stdout)


class ScheduleParsing(unittest.TestCase):
    """The minute-field reader behind the freshness rule."""

    def setUp(self):
        sys.dont_write_bytecode = True  # no __pycache__ left in manifests/check
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        import check_manifests

        self.cm = check_manifests

    def gap(self, schedule: str) -> int:
        return max(self.cm.gaps_seconds(self.cm.parse_schedule(schedule)))

    def test_gaps(self):
        self.assertEqual(self.gap("*/4 * * * *"), 240)  # 56 -> 0 is 4 minutes too
        self.assertEqual(self.gap("*/5 * * * *"), 300)
        self.assertEqual(self.gap("*/7 * * * *"), 420)  # 56 -> 0 is only 4, but 49 -> 56 is 7
        self.assertEqual(self.gap("0,30 * * * *"), 1800)
        self.assertEqual(self.gap("1-59/2 * * * *"), 120)
        self.assertEqual(self.gap("0-10,20-59 * * * *"), 600)
        self.assertEqual(self.gap("7 * * * *"), 3600)
        self.assertEqual(self.gap("@hourly"), 3600)

    def test_refuses_what_it_cannot_reason_about(self):
        for schedule in ("*/4 9-17 * * *", "*/4 * * * 1-5", "@daily", "*/0 * * * *", "61 * * * *", "* * * *", "x * * * *"):
            with self.assertRaises(ValueError, msg=schedule):
                self.cm.parse_schedule(schedule)

    def test_secret_looking_names(self):
        for name in ("ONE_FRAME_TOKEN", "password", "edge-password", "API_KEY", "AWS_SECRET_ACCESS_KEY", "KEY"):
            self.assertTrue(self.cm.looks_secret(name), name)
        for name in ("RATES_KEY", "rates_key", "ONE_FRAME_URL", "CURRENCIES", "max_rate_age", "KEYSPACE"):
            self.assertFalse(self.cm.looks_secret(name), name)


if __name__ == "__main__":
    unittest.main()
