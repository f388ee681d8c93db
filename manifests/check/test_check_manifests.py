"""The manifest checker fails, naming the problem, when a manifest is broken.

Run from the repository root:

    python3 -m unittest discover -s manifests/check -p 'test_*.py'

Each test copies manifests/, spin.toml and the Cargo.toml files that version
the images into a temporary directory, breaks one thing there, and runs
check_manifests.py against that copy with --root.
"""

from __future__ import annotations

import base64
import json
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
        for manifest in ("Cargo.toml", "refresher/Cargo.toml", "e2e/one-frame/Cargo.toml", "runtime-shim/Cargo.toml"):
            (self.root / manifest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / manifest, self.root / manifest)

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
        self.edit("base/disruptionbudgets.yaml", "PodDisruptionBudget", "valkey", lambda d: d.update(kind="PodDisruptionBudgt"))
        self.assert_fails_with(r"FAIL schema", r"unknown kind PodDisruptionBudgt")

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
        self.edit(
            "cluster/spinappexecutor.yaml",
            "SpinAppExecutor",
            "containerd-shim-spin",
            lambda d: d["spec"]["deploymentConfig"].update(runtimeClassName="wasmtime-spin"),
        )
        self.assert_fails_with(r"FAIL runtime", r"runtimeClassName 'wasmtime-spin' matches no RuntimeClass")

    # -- spinImage executor (runtime-shim) -------------------------------

    def runtime_shim_executor(self, change) -> None:
        self.edit("cluster/spinappexecutor.yaml", "SpinAppExecutor", "runtime-shim", lambda d: change(d["spec"]["deploymentConfig"]))

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

    # -- rule 3: replicas --------------------------------------------------

    def test_zero_replicas_without_autoscaling(self):
        self.spinapp(lambda spec: spec.update(replicas=0))
        self.assert_fails_with(r"FAIL replicas", r"replicas is 0")

    def test_zero_replicas_with_autoscaling_is_fine(self):
        self.spinapp(lambda spec: spec.update(replicas=0, enableAutoscaling=True))
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_replicas_with_autoscaling(self):
        self.spinapp(lambda spec: spec.update(enableAutoscaling=True))
        self.assert_fails_with(r"FAIL replicas", r"replicas is 2 with enableAutoscaling: true")

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

    def test_volume_named_like_spin_operators_own(self):
        def rename(spec):
            spec["volumes"][0]["name"] = "spin-ca"
            spec["volumeMounts"][0]["name"] = "spin-ca"

        self.spinapp(rename)
        self.assert_fails_with(r"FAIL kv-store", r"volume 'spin-ca' clashes with the volume spin-operator adds")

    # -- paths ---------------------------------------------------------------

    def test_readiness_path_the_app_does_not_serve(self):
        self.spinapp(lambda spec: spec["checks"]["readiness"]["httpGet"].update(path="/ready"))
        self.assert_fails_with(r"FAIL paths", r"checks.readiness path '/ready' is not a health path the edge serves")

    def test_ingress_path_the_app_does_not_serve(self):
        self.edit("base/ingress.yaml", "Ingress", "forex-edge", lambda d: d["spec"]["rules"][0]["http"]["paths"][0].update(path="/rate"))
        self.assert_fails_with(r"FAIL paths", r"path '/rate' \(Exact\) routes to nothing the edge serves")

    # -- TLS -----------------------------------------------------------------

    def test_tls_secret_other_than_the_certificates(self):
        self.ingress_patch("tls-letsencrypt", lambda ops: self.op(ops, "/spec/tls")["value"][0].update(secretName="forex-edge-cert"))
        self.assert_fails_with(
            r"FAIL tls", r"Ingress forex/forex-edge .*tls\[0\] secretName 'forex-edge-cert' is the secretName of no Certificate"
        )

    def test_certificate_not_covering_the_ingress_host(self):
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"].update(dnsNames=["api.example.com"])
        )
        self.assert_fails_with(
            r"FAIL tls", r"Certificate forex/forex-edge .*dnsNames \['api.example.com'\] do not cover host 'rates.example.com'"
        )

    def test_wildcard_certificate_covers_the_host(self):
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"].update(dnsNames=["*.example.com"])
        )
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_ingress_host_outside_its_tls_entries(self):
        self.ingress_patch("tls-selfsigned", lambda ops: self.op(ops, "/spec/rules/0/host").update(value="api.forex.test"))
        self.assert_fails_with(r"FAIL tls", r"host 'api.forex.test' is in no tls entry")

    def test_certificate_naming_a_missing_issuer(self):
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"]["issuerRef"].update(name="letsencrypt-prod")
        )
        self.assert_fails_with(
            r"FAIL tls", r"issuerRef Issuer 'letsencrypt-prod' is neither an Issuer of namespace forex nor a ClusterIssuer", r"Issuer letsencrypt-staging"
        )

    def test_certificate_naming_a_cluster_issuer_nobody_defines(self):
        self.component_object(
            "tls-selfsigned/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"]["issuerRef"].update(kind="ClusterIssuer")
        )
        self.assert_fails_with(r"FAIL tls", r"issuerRef ClusterIssuer 'forex-lab-ca' is neither")

    def test_cluster_issuer_in_the_app(self):
        def to_cluster(docs):
            issuer = next(d for d in docs if d["metadata"]["name"] == "letsencrypt")
            issuer["kind"] = "ClusterIssuer"

        self.component_file("tls-letsencrypt/issuers.yaml", to_cluster)
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"]["issuerRef"].update(kind="ClusterIssuer")
        )
        self.assert_fails_with(r"FAIL apply-order", r"ClusterIssuer forex/letsencrypt .*belongs in manifests/cluster/.*cluster-wide")

    def test_ca_issuer_whose_secret_is_no_ca(self):
        self.component_object("tls-selfsigned/issuers.yaml", "Certificate", "forex-lab-ca", lambda d: d["spec"].pop("isCA"))
        self.assert_fails_with(r"FAIL tls", r"Certificate forex/forex-lab-ca .*makes the CA Secret 'forex-lab-ca' of Issuer forex/forex-lab-ca .*but is not isCA: true")

    def test_ca_issuer_whose_secret_nothing_makes(self):
        self.component_object("tls-selfsigned/issuers.yaml", "Issuer", "forex-lab-ca", lambda d: d["spec"]["ca"].update(secretName="lab-ca"))
        self.assert_fails_with(r"FAIL tls", r"Issuer forex/forex-lab-ca .*its CA Secret 'lab-ca' is made by no Certificate")

    def test_http01_solver_of_another_ingress_class(self):
        def nginx(docs):
            for d in docs:
                d["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"] = "nginx"

        self.component_file("tls-letsencrypt/issuers.yaml", nginx)
        self.assert_fails_with(r"FAIL tls", r"Issuer forex/letsencrypt .*HTTP-01 solver uses ingress class 'nginx', not 'traefik'")

    def test_redirect_middleware_that_does_not_exist(self):
        self.component_object(
            "tls-letsencrypt/redirect-https.yaml", "Middleware", "redirect-https", lambda d: d["metadata"].update(name="https-redirect")
        )
        self.assert_fails_with(
            r"FAIL tls",
            r"names 'forex-redirect-https@kubernetescrd', which is no <namespace>-<name> of a Middleware of the manifests \(forex-https-redirect\)",
            r"HTTP is not redirected to HTTPS",
        )

    def test_middleware_that_does_not_redirect_to_https(self):
        self.component_object(
            "tls-selfsigned/redirect-https.yaml", "Middleware", "redirect-https", lambda d: d["spec"]["redirectScheme"].update(scheme="http")
        )
        self.assert_fails_with(r"FAIL tls", r"Ingress forex/forex-edge .*HTTP is not redirected to HTTPS")

    def test_tls_ingress_without_redirect_annotation(self):
        self.ingress_patch("tls-letsencrypt", lambda ops: ops.remove(self.op(ops, "/metadata/annotations")))
        self.assert_fails_with(r"FAIL tls", r"HTTP is not redirected to HTTPS")

    def test_overlay_without_tls(self):
        self.kustomization("overlays/demo", lambda k: k.pop("components"))
        self.assert_fails_with(r"FAIL tls", r"\[overlay demo\] Ingress forex/forex-edge .*has no tls:")

    def test_misspelled_certificate_field(self):
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"].update(dnsName=d["spec"].pop("dnsNames"))
        )
        self.assert_fails_with(r"FAIL crd-schema", r"Certificate forex/forex-edge .*'dnsName' was unexpected")

    def test_acme_issuer_without_server(self):
        self.component_object("tls-letsencrypt/issuers.yaml", "Issuer", "letsencrypt", lambda d: d["spec"]["acme"].pop("server"))
        self.assert_fails_with(r"FAIL crd-schema", r"Issuer forex/letsencrypt .*spec.acme: 'server' is a required property")

    def test_misspelled_middleware_field(self):
        def misspell(d):
            d["spec"]["redirectSchema"] = d["spec"].pop("redirectScheme")

        self.component_object("tls-selfsigned/redirect-https.yaml", "Middleware", "redirect-https", misspell)
        self.assert_fails_with(r"FAIL crd-schema", r"Middleware forex/redirect-https .*'redirectSchema' was unexpected")

    def test_solver_policy_without_http01_issuers(self):
        def no_http01(docs):
            for d in docs:
                d["spec"]["acme"]["solvers"] = [{"dns01": {"webhook": {"groupName": "acme.example.com", "solverName": "x"}}}]

        self.component_file("tls-letsencrypt/issuers.yaml", no_http01)
        self.assert_fails_with(r"FAIL selectors", r"NetworkPolicy forex/acme-http01-solver .*selects no pod")

    # -- Valkey over TLS ---------------------------------------------------------

    def valkey_deployment(self, change) -> None:
        self.edit("base/valkey.yaml", "Deployment", "valkey", lambda d: change(d["spec"]["template"]["spec"]))

    @staticmethod
    def container(pod: dict, name: str) -> dict:
        return next(c for c in pod["containers"] if c["name"] == name)

    def example_valkey_url(self, key: str, change) -> None:
        self.edit("secrets.example.yaml", "Secret", "valkey", lambda d: d["stringData"].update({key: change(d["stringData"][key])}))

    def test_production_valkey_url_in_clear(self):
        self.example_valkey_url("edge-url", lambda url: url.replace("rediss://", "redis://"))
        self.assert_fails_with(
            r"FAIL valkey-urls",
            r"\[overlay production\] SpinApp forex/forex-edge .*variable 'valkey_url': redis://edge:\*\*\*@valkey.forex.svc.cluster.local:6379 is a redis:// URL in clear",
            r"\[overlay runtime-shim\] SpinApp forex/forex-edge .*variable 'valkey_url': redis://edge:\*\*\*@",
        )

    def test_production_valkey_url_with_insecure(self):
        self.example_valkey_url("refresher-url", lambda url: url + "/#insecure")
        self.assert_fails_with(
            r"FAIL valkey-urls",
            r"\[overlay production\] CronJob forex/refresher .*container 'refresher' env VALKEY_URL: rediss://:\*\*\*@valkey.forex.svc.cluster.local:6379/#insecure has #insecure",
        )

    def test_production_valkey_url_in_clear_in_an_example_secrets_data(self):
        def to_data(d):
            url = d["stringData"].pop("exporter-url").replace("rediss://", "redis://")
            d["data"] = {"exporter-url": base64.b64encode(url.encode()).decode()}

        self.edit("secrets.example.yaml", "Secret", "valkey", to_data)
        self.assert_fails_with(
            r"FAIL valkey-urls", r"\[overlay production\] Deployment forex/forex-exporter .*env VALKEY_URL: redis://exporter:\*\*\*@.* is a redis:// URL in clear"
        )

    def test_production_env_valkey_url_in_clear(self):
        def plain(container):
            for e in container["env"]:
                if e["name"] == "VALKEY_URL":
                    e.pop("valueFrom")
                    e["value"] = "redis://valkey.forex.svc.cluster.local:6379"

        self.refresher_container(plain)
        out = self.run_checker("--no-kubectl")
        text = out.stdout + out.stderr
        self.assertNotEqual(out.returncode, 0, text)
        self.assertRegex(text, r"FAIL valkey-urls")
        self.assertRegex(text, r"\[overlay production\] CronJob forex/refresher .*env VALKEY_URL: redis://valkey.forex.svc.cluster.local:6379 is a redis:// URL in clear")
        self.assertNotRegex(text, r"\[(base|overlay demo)\] CronJob forex/refresher .*in clear")  # only the production overlays insist

    def test_valkey_with_a_plain_port(self):
        self.replace_text("base/valkey.yaml", "'port 0'", "'port 6380'")
        self.assert_fails_with(r"FAIL valkey-tls", r"Deployment forex/valkey .*container 'valkey': opens the plain port 6380: .*set `port 0`")

    def test_valkey_without_a_port_directive_opens_the_default(self):
        self.replace_text("base/valkey.yaml", "'port 0' \\\n", "")
        self.assert_fails_with(r"FAIL valkey-tls", r"container 'valkey': opens the plain port 6379 \(Valkey's default when `port` is not set\)")

    def test_valkey_plain_port_on_the_command_line(self):
        self.valkey_deployment(lambda pod: self.container(pod, "valkey")["command"].extend(["--port", "6379"]))
        self.assert_fails_with(r"FAIL valkey-tls", r"container 'valkey': opens the plain port 6379: ")

    def test_valkey_without_tls_port_or_certificate(self):
        self.replace_text("base/valkey.yaml", "'tls-port 6379' \\\n", "")
        self.replace_text("base/valkey.yaml", "'tls-cert-file /tls/tls.crt' \\\n", "")
        self.assert_fails_with(
            r"FAIL valkey-tls", r"container 'valkey': has no tls-port: Valkey would serve no TLS", r"container 'valkey': has no tls-cert-file"
        )

    def test_valkey_offering_tls_1_0(self):
        self.replace_text("base/valkey.yaml", '"TLSv1.2 TLSv1.3"', '"TLSv1 TLSv1.2 TLSv1.3"')
        self.assert_fails_with(r"FAIL valkey-tls", r"tls-protocols 'TLSv1 TLSv1.2 TLSv1.3' offers more than TLS 1.2 and 1.3")

    def test_valkey_service_to_a_port_valkey_does_not_serve_tls_on(self):
        self.replace_text("base/valkey.yaml", "'tls-port 6379'", "'tls-port 6380'")
        self.assert_fails_with(r"FAIL valkey-tls", r"Service forex/valkey .*port 6379 goes to container port 6379 of Deployment forex/valkey .*not Valkey's tls-port 6380")

    def test_valkey_certificate_not_covering_valkey_host(self):
        self.edit("base/valkey.yaml", "Certificate", "valkey-tls", lambda d: d["spec"]["dnsNames"].remove("valkey.forex.svc.cluster.local"))
        self.assert_fails_with(
            r"FAIL valkey-certificate",
            r"\[base\] Certificate forex/valkey-tls .*do not cover 'valkey.forex.svc.cluster.local' \(valkey_host of SpinApp forex/forex-edge",
        )

    def test_valkey_certificate_mounted_with_subpath(self):
        def sub_paths(pod):
            valkey = self.container(pod, "valkey")
            valkey["volumeMounts"] = [m for m in valkey["volumeMounts"] if m["name"] != "tls"] + [
                {"name": "tls", "mountPath": f"/tls/{key}", "subPath": key, "readOnly": True} for key in ("tls.crt", "tls.key", "ca.crt")
            ]

        self.valkey_deployment(sub_paths)
        self.assert_fails_with(r"FAIL valkey-certificate", r"container 'valkey': tls-cert-file /tls/tls.crt is mounted with subPath, so the kubelet never updates it")

    def test_valkey_certificate_secret_no_certificate_makes(self):
        self.edit("base/valkey.yaml", "Certificate", "valkey-tls", lambda d: d["spec"].update(secretName="valkey-cert"))
        self.assert_fails_with(
            r"FAIL valkey-certificate", r"container 'valkey': its certificate comes from Secret 'valkey-tls', which no Certificate of namespace forex makes"
        )

    def test_refresher_without_the_valkey_ca(self):
        self.refresher_container(lambda c: c.update(env=[e for e in c["env"] if e["name"] != "SSL_CERT_FILE"]))
        self.assert_fails_with(r"FAIL valkey-ca", r"CronJob forex/refresher .*container 'refresher': connects to Valkey \(VALKEY_URL\) but sets no SSL_CERT_FILE")

    def test_client_ca_volume_projecting_the_private_key(self):
        def whole_secret(d):
            d["spec"]["template"]["spec"]["volumes"][0]["secret"].pop("items")

        self.component_object("monitoring/exporter.yaml", "Deployment", "forex-exporter", whole_secret)
        self.assert_fails_with(
            r"FAIL valkey-ca", r"Deployment forex/forex-exporter .*volume 'valkey-ca' projects every key of Secret 'valkey-tls', the private key tls.key too"
        )

    def test_client_ca_from_the_ca_secret(self):
        self.cronjob(lambda spec: spec["jobTemplate"]["spec"]["template"]["spec"]["volumes"][0]["secret"].update(secretName="forex-internal-ca"))
        self.assert_fails_with(
            r"FAIL valkey-ca", r"container 'refresher': SSL_CERT_FILE /etc/valkey-ca/ca.crt comes from Secret 'forex-internal-ca', not from Valkey's certificate Secret \(valkey-tls\)"
        )

    def test_executor_without_a_ca_bundle_secret(self):
        self.edit("cluster/spinappexecutor.yaml", "SpinAppExecutor", "containerd-shim-spin", lambda d: d["spec"]["deploymentConfig"].pop("caCertSecret"))
        self.assert_fails_with(
            r"FAIL valkey-ca", r"SpinAppExecutor forex/containerd-shim-spin .*: no caCertSecret, so the pods of SpinApp forex/forex-edge .*installDefaultCACerts alone"
        )

    def test_executor_ca_bundle_the_examples_do_not_describe(self):
        self.runtime_shim_executor(lambda c: c.update(caCertSecret="forex-ca"))
        self.assert_fails_with(r"FAIL valkey-ca", r"SpinAppExecutor forex/runtime-shim .*caCertSecret 'forex-ca' is not described by secrets.example.yaml with the key ca-certificates.crt")

    # -- placeholders ----------------------------------------------------------

    def test_placeholders_are_listed_until_filled_in(self):
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        listed = self.placeholder_line(out.stdout)
        for placeholder in ("ops@example.com", "rates.example.com", "valkey/valkey:8.1.4@sha256:000…", "registry.example.com/forex/one-frame:0.1.0"):
            self.assertIn(placeholder, listed)

        def email(docs):
            for d in docs:
                d["spec"]["acme"]["email"] = "ops@forex.dev"

        self.component_file("tls-letsencrypt/issuers.yaml", email)
        self.component_object(
            "tls-letsencrypt/certificate.yaml", "Certificate", "forex-edge", lambda d: d["spec"].update(dnsNames=["rates.forex.dev"])
        )

        def host(ops):
            self.op(ops, "/spec/rules/0/host")["value"] = "rates.forex.dev"
            self.op(ops, "/spec/tls")["value"][0]["hosts"] = ["rates.forex.dev"]

        self.ingress_patch("tls-letsencrypt", host)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        listed = self.placeholder_line(out.stdout)
        self.assertNotIn("example.com,", listed.replace("registry.example.com", ""))
        self.assertNotIn("ops@", listed)
        self.assertIn("valkey/valkey:8.1.4@sha256:000…", listed)

    # -- kustomize components ------------------------------------------------

    def test_component_listed_as_a_resource(self):
        def move(k):
            k["resources"] += k.pop("components")

        self.kustomization("overlays/production", move)
        self.assert_fails_with(r"FAIL load", r"tls-letsencrypt/kustomization.yaml: a Component can only be listed under components:")

    def test_kustomization_listed_as_a_component(self):
        self.kustomization("overlays/demo", lambda k: k["components"].append("../production"))
        self.assert_fails_with(r"FAIL load", r"overlays/production/kustomization.yaml: listed under components:, so it must be .*kind Component")

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
        self.spinapp(lambda spec: spec.update(image="forex-edge:0.2.0"))
        self.assert_fails_with(r"FAIL image", r"\[base\] SpinApp .*tag 0.2.0, not spin.toml's version '0.1.0'")

    def test_image_of_another_app(self):
        self.spinapp(lambda spec: spec.update(image="forex-api:0.1.0"))
        for overlay in ("production", "demo"):
            self.image_entry("forex-edge", lambda e: e.update(name="forex-api", newName="registry.example.com/forex/forex-api"), overlay)
        self.assert_fails_with(r"FAIL image", r"'forex-api:0.1.0' is not what `make push` pushes")

    def test_image_pinned_by_digest_is_fine(self):
        def pin(e):
            e.pop("newTag")
            e.update(newName="127.0.0.1:5000/forex-edge", digest="sha256:" + "1" * 64)

        self.image_entry("forex-edge", pin)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)
        # The pinned image is no placeholder any more; the others still are.
        listed = self.placeholder_line(out.stdout)
        self.assertNotIn("forex-edge:0.1.0@sha256:000", listed)
        self.assertIn("forex-refresher:0.1.0@sha256:000", listed)

    def test_overlay_image_tag_other_than_spin_toml_version(self):
        def retag(e):
            e.pop("digest")
            e.update(newTag="0.2.0")

        self.image_entry("forex-edge", retag)
        self.assert_fails_with(
            r"FAIL image", r"\[overlay production\] SpinApp .*'registry.example.com/forex/forex-edge:0.2.0' has tag 0.2.0, not spin.toml's version"
        )

    def test_overlay_image_of_another_app(self):
        self.image_entry("forex-edge", lambda e: e.update(newName="registry.example.com/forex/forex-api"))
        self.assert_fails_with(
            r"FAIL image", r"'registry.example.com/forex/forex-api:0.1.0@sha256:0+' is not what `make push` pushes"
        )

    def test_overlay_image_without_registry(self):
        self.image_entry("forex-refresher", lambda e: e.pop("newName"), "demo")
        self.assert_fails_with(
            r"FAIL image",
            r"\[overlay demo\] CronJob forex/refresher .*'forex-refresher:0.1.0' has no registry: give the overlay's images: entry "
            r"'forex-refresher' a newName <registry>/<prefix>/forex-refresher",
        )

    def test_refresher_image_tag_other_than_the_crate_version(self):
        self.image_entry("forex-refresher", lambda e: e.update(newTag="0.2.0"), "demo")
        self.assert_fails_with(
            r"FAIL image",
            r"\[overlay demo\] CronJob forex/refresher .*has tag 0.2.0, not refresher/Cargo.toml's version '0.1.0': `make images` tags it",
        )

    def test_emulator_image_follows_its_crate_version(self):
        cargo = self.root / "e2e" / "one-frame" / "Cargo.toml"
        text = cargo.read_text()
        cargo.write_text(text.replace('version = "0.1.0"', 'version = "0.2.0"', 1))
        self.assertNotEqual(text, cargo.read_text())
        self.assert_fails_with(
            r"FAIL image", r"Deployment forex/one-frame .*has tag 0.1.0, not e2e/one-frame/Cargo.toml's version '0.2.0'"
        )

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
        self.assert_fails_with(r"FAIL load", r"overlays/demo/kustomization.yaml: patches\[0\]: target .* matches no resource")

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
        # manifests/cluster, the base and every overlay.
        renders = 2 + len(list((self.root / "manifests" / "overlays").glob("*/kustomization.yaml")))
        self.assertRegex(out.stdout, rf"(?m)^ok   kustomize: {renders} kubectl render\(s\) match the checker's loader$", out.stdout)
        self.assertEqual(out.returncode, 0, out.stdout)

    # -- monitoring ------------------------------------------------------------

    def replace_text(self, relpath: str, old: str, new: str) -> None:
        """Replace old (which must be there) by new in manifests/relpath."""
        path = self.root / "manifests" / relpath
        text = path.read_text()
        self.assertIn(old, text, relpath)
        path.write_text(text.replace(old, new))

    def alert_rules(self, change) -> None:
        """Apply change(groups) to the PrometheusRule and to its plain rule
        file alike, so that only the change itself is judged."""
        self.component_object("monitoring/prometheusrule.yaml", "PrometheusRule", "forex", lambda d: change(d["spec"]["groups"]))
        path = self.root / "manifests" / "components" / "monitoring" / "rules" / "forex.rules.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc["groups"])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    @staticmethod
    def rule(groups, alert: str) -> dict:
        return next(r for g in groups for r in g["rules"] if r.get("alert") == alert)

    def dashboard(self, change) -> None:
        path = self.root / "manifests" / "components" / "monitoring" / "dashboards" / "forex-edge.json"
        board = json.loads(path.read_text())
        change(board)
        path.write_text(json.dumps(board, indent=2))

    @staticmethod
    def panel(board, title: str) -> dict:
        return next(p for p in board["panels"] if p.get("title") == title)

    def test_misspelled_servicemonitor_field(self):
        self.component_object(
            "monitoring/servicemonitor.yaml", "ServiceMonitor", "forex-exporter", lambda d: d["spec"]["endpoints"][0].update(intervall="15s")
        )
        self.assert_fails_with(r"FAIL crd-schema", r"ServiceMonitor forex/forex-exporter .*'intervall' was unexpected")

    def test_misspelled_prometheusrule_field(self):
        self.component_object(
            "monitoring/prometheusrule.yaml",
            "PrometheusRule",
            "forex",
            lambda d: self.rule(d["spec"]["groups"], "ForexValkeyDown").update(annotation={"summary": "x"}),
        )
        self.assert_fails_with(r"FAIL crd-schema", r"PrometheusRule forex/forex .*'annotation' was unexpected")

    def test_alert_metric_nothing_exports(self):
        def rename(groups):
            rule = self.rule(groups, "ForexRatesStale")
            rule["expr"] = rule["expr"].replace("forex_snapshot_oldest_rate_timestamp_seconds", "forex_snapshot_oldest_rate_timestamp")

        self.alert_rules(rename)
        self.assert_fails_with(
            r"FAIL metrics",
            r"alert ForexRatesStale: uses forex_snapshot_oldest_rate_timestamp, which no exporter lists in "
            r"manifests/components/monitoring/metrics.yaml \(did you mean forex_snapshot_oldest_rate_timestamp_seconds\?\)",
        )

    def test_dashboard_metric_nothing_exports(self):
        def rename(board):
            target = self.panel(board, "p99 latency (runtime-shim)")["targets"][0]
            target["expr"] = target["expr"].replace("runtime_shim_http_request_duration_seconds_bucket", "runtime_shim_request_seconds_bucket")

        self.dashboard(rename)
        self.assert_fails_with(r"FAIL metrics", r"forex-edge.json panel 'p99 latency \(runtime-shim\)': uses runtime_shim_request_seconds_bucket")

    def test_alert_label_value_the_metric_never_takes(self):
        def misspell(groups):
            rule = self.rule(groups, "ForexSnapshotMissing")
            rule["expr"] = rule["expr"].replace('verdict="missing"', 'verdict="absent"')

        self.alert_rules(misspell)
        self.assert_fails_with(r"FAIL metrics", r"forex_status_verdict\{verdict='absent'\} matches none of the values verdict takes")

    def test_alert_on_a_job_nothing_scrapes(self):
        def rename(groups):
            rule = self.rule(groups, "ForexExporterDown")
            rule["expr"] = rule["expr"].replace('job="forex-exporter"', 'job="exporter"')

        self.alert_rules(rename)
        self.assert_fails_with(r"FAIL metrics", r"alert ForexExporterDown: job 'exporter' is the job of no ServiceMonitor/PodMonitor")

    def test_traefik_service_that_is_no_ingress_backend(self):
        def rename(groups):
            rule = self.rule(groups, "ForexEdgeErrorsTraefik")
            rule["expr"] = rule["expr"].replace("forex-forex-edge-80@kubernetes", "forex-edge-80@kubernetes")

        self.alert_rules(rename)
        self.assert_fails_with(
            r"FAIL metrics",
            r"alert ForexEdgeErrorsTraefik: Traefik names no Ingress backend of the manifests 'forex-edge-80@kubernetes' \(forex-forex-edge-80@kubernetes\)",
        )

    def test_prometheusrule_and_rule_file_differ(self):
        path = self.root / "manifests" / "components" / "monitoring" / "rules" / "forex.rules.yaml"
        doc = yaml.safe_load(path.read_text())
        self.rule(doc["groups"], "ForexValkeyDown")["for"] = "1m"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.assert_fails_with(r"FAIL rule-files", r"PrometheusRule forex/forex .*spec differs from manifests/components/monitoring/rules/forex.rules.yaml \(first at groups\[0\].rules\[\d+\].for\)")

    def test_alert_without_promtool_tests(self):
        def add(groups):
            rule = dict(self.rule(groups, "ForexValkeyDown"), alert="ForexValkeySlow")
            groups[0]["rules"].append(rule)

        self.alert_rules(add)
        self.assert_fails_with(
            r"FAIL rule-files", r"forex.rules.test.yaml: no test where alert ForexValkeySlow fires", r"no test where alert ForexValkeySlow stays quiet"
        )

    def test_runbook_section_that_does_not_exist(self):
        self.alert_rules(lambda groups: self.rule(groups, "ForexQuotaAtRisk")["annotations"].update(runbook_url="manifests/README.md#forex-quota-at-risk"))
        self.assert_fails_with(r"FAIL alerts", r"alert ForexQuotaAtRisk: runbook_url .*has no heading with anchor #forex-quota-at-risk \(did you mean #forexquotaatrisk\?\)")

    def test_runbook_url_may_be_a_full_url(self):
        def absolute(groups):
            for g in groups:
                for r in g["rules"]:
                    r["annotations"]["runbook_url"] = "https://git.forex.dev/forex/forex-edge/blob/main/" + r["annotations"]["runbook_url"]

        self.alert_rules(absolute)
        out = self.run_checker("--no-kubectl")
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_alert_without_severity_or_what_to_do(self):
        def strip(groups):
            rule = self.rule(groups, "ForexEdgeLatencyTraefik")
            rule["labels"].pop("severity")
            rule["annotations"].pop("what_to_do")

        self.alert_rules(strip)
        self.assert_fails_with(
            r"FAIL alerts", r"alert ForexEdgeLatencyTraefik: labels.severity is None", r"alert ForexEdgeLatencyTraefik: annotations.what_to_do is missing"
        )

    def test_scrape_target_selecting_nothing(self):
        self.component_object(
            "monitoring/servicemonitor.yaml",
            "ServiceMonitor",
            "forex-exporter",
            lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "exporter"}),
        )
        self.assert_fails_with(r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*selector .*exporter.* selects no Service of the manifests in forex")

    def test_scrape_port_the_service_lacks(self):
        self.component_object(
            "monitoring/runtime-shim/edge-metrics.yaml", "ServiceMonitor", "forex-edge-metrics", lambda d: d["spec"]["endpoints"][0].update(port="http-metrics")
        )
        self.assert_fails_with(r"FAIL scrape", r"ServiceMonitor forex/forex-edge-metrics .*endpoints\[0\] port 'http-metrics' is no port of Service forex/forex-edge-metrics .*\(metrics\)")

    def test_scrape_target_prometheus_may_not_reach(self):
        self.component_object(
            "monitoring/networkpolicies.yaml", "NetworkPolicy", "forex-exporter", lambda d: d["spec"]["ingress"][0]["ports"][0].update(port=9090)
        )
        self.assert_fails_with(
            r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*no NetworkPolicy lets Prometheus .*reach port 9464 of Deployment forex/forex-exporter"
        )

    def test_scrape_timeout_above_the_interval(self):
        self.component_object(
            "monitoring/servicemonitor.yaml", "ServiceMonitor", "forex-exporter", lambda d: d["spec"]["endpoints"][0].update(scrapeTimeout="1m")
        )
        self.assert_fails_with(r"FAIL scrape", r"ServiceMonitor forex/forex-exporter .*endpoint 0: scrapeTimeout 1m is above its interval 15s")

    def test_monitoring_object_without_release_label(self):
        self.component_object("monitoring/prometheusrule.yaml", "PrometheusRule", "forex", lambda d: d["metadata"]["labels"].pop("release"))
        self.assert_fails_with(r"FAIL scrape", r"PrometheusRule forex/forex .*has no label release: kube-prometheus-stack's Prometheus")

    def test_dashboard_panel_with_a_fixed_data_source(self):
        self.dashboard(lambda board: self.panel(board, "Oldest rate age").update(datasource={"type": "prometheus", "uid": "prometheus"}))
        self.assert_fails_with(r"FAIL dashboards", r"panel 'Oldest rate age' uses data source 'prometheus', not the variable \$\{datasource\}")

    def test_config_map_generator_with_a_name_hash(self):
        def hashed(k):
            k["configMapGenerator"][0]["options"].pop("disableNameSuffixHash")

        self.kustomization("components/monitoring", hashed)
        self.assert_fails_with(r"FAIL load", r"configMapGenerator\[0\]: this checker needs options.disableNameSuffixHash: true")

    # -- the exporter's Valkey user ----------------------------------------------

    EXPORTER_LINE = "printf 'user exporter on >%s resetkeys %%R~%s %%R~rates:seq %%R~oneframe:calls:* %%R~refresher:last-run resetchannels -@all +get +hgetall "

    def test_exporter_acl_with_a_write_command(self):
        self.replace_text("base/valkey.yaml", self.EXPORTER_LINE, self.EXPORTER_LINE + "+set +del ")
        self.assert_fails_with(
            r"FAIL exporter-acl",
            r"Deployment forex/valkey .*ACL user exporter: \+del: more than it needs \(it reads with get, hgetall only\)",
            r"ACL user exporter: \+set: more than it needs",
        )

    def test_exporter_acl_with_a_writable_key(self):
        self.replace_text("base/valkey.yaml", self.EXPORTER_LINE, self.EXPORTER_LINE.replace("%%R~rates:seq", "~rates:seq"))
        self.assert_fails_with(r"FAIL exporter-acl", r"ACL user exporter: ~rates:seq: may write keys")

    def test_exporter_acl_missing_a_key_and_granting_a_channel(self):
        line = self.EXPORTER_LINE.replace(" %%R~refresher:last-run", "").replace("resetchannels", "resetchannels &%s")
        self.replace_text("base/valkey.yaml", self.EXPORTER_LINE, line)
        self.replace_text("base/valkey.yaml", '"$VALKEY_EXPORTER_PASSWORD" "$RATES_KEY"\n', '"$VALKEY_EXPORTER_PASSWORD" "$RATES_KEY" "$RATES_CHANNEL"\n')
        self.assert_fails_with(
            r"FAIL exporter-acl",
            r"ACL user exporter: cannot read refresher:last-run, which it reads",
            r"ACL user exporter: &rates_updated: may use a Pub/Sub channel",
        )

    def test_exporter_whose_valkey_user_is_never_written(self):
        self.kustomization("components/monitoring", lambda k: k.pop("patches"))
        self.assert_fails_with(r"FAIL exporter-acl", r"\[overlay production\] .*ACL user exporter: VALKEY_EXPORTER_PASSWORD not set, so the user is never written")

    def test_exporter_reading_another_rates_key(self):
        def key(d):
            d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "RATES_KEY", "value": "rates:v2"})

        self.component_object("monitoring/exporter.yaml", "Deployment", "forex-exporter", key)
        self.assert_fails_with(
            r"FAIL rates-contract",
            r"Deployment forex/forex-exporter .*container 'exporter' reads RATES_KEY 'rates:v2', not the SpinApp's rates_key 'rates'",
            r"FAIL exporter-acl",
            r"ACL user exporter: cannot read rates:v2, which it reads",
        )

    def test_example_exporter_url_of_another_user(self):
        self.edit(
            "secrets.example.yaml",
            "Secret",
            "valkey",
            lambda d: d["stringData"].update({"exporter-url": d["stringData"]["exporter-url"].replace("rediss://exporter:", "rediss://edge:")}),
        )
        self.assert_fails_with(r"FAIL exporter-acl", r"Secret forex/valkey .*exporter-url \(the exporter's VALKEY_URL\) must log in as exporter")


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


class MonitoringReaders(unittest.TestCase):
    """The PromQL and Markdown readers behind the monitoring rules."""

    def setUp(self):
        sys.dont_write_bytecode = True
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        import check_manifests

        self.cm = check_manifests

    def names(self, expr: str) -> list[str]:
        return [name for name, _ in self.cm.promql_selectors(expr)]

    def test_selectors_skip_functions_keywords_label_lists_and_durations(self):
        expr = (
            'sum by (service, le) (rate(a_bucket{service="x", code=~"5.."}[$__rate_interval])) / on (service) group_left (le) '
            "sum without (pod) (b_total offset 5m) > bool 0.3 and c unless absent(up{job=\"j\"}) or vector(1) * inf"
        )
        self.assertEqual(self.names(expr), ["a_bucket", "b_total", "c", "up"])
        self.assertEqual(self.cm.promql_selectors('x{a="}", b!~"c|d"}'), [("x", [("a", "=", "}"), ("b", "!~", "c|d")])])
        self.assertEqual(self.names("count_values(\"v\", y) + sum(z) by (le)"), ["y", "z"])

    def test_histogram_series_belong_to_their_family(self):
        metrics = {"h_seconds": {"type": "histogram"}, "g": {"type": "gauge"}}
        for name, family in (("h_seconds_bucket", "h_seconds"), ("h_seconds_count", "h_seconds"), ("g", "g"), ("g_count", None)):
            self.assertEqual(self.cm.metric_family(name, metrics), family, name)

    def test_markdown_anchors_like_github(self):
        text = "# A Guide\n## 10. Watch the refresher\n```\n# not a heading\n```\n### ForexRatesStale\n## Traefik's metrics on K3s\n## A Guide\n"
        self.assertEqual(
            self.cm.markdown_anchors(text), {"a-guide", "10-watch-the-refresher", "forexratesstale", "traefiks-metrics-on-k3s", "a-guide-1"}
        )

    def test_prometheus_durations(self):
        for text, seconds in (("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("15", None), ("s", None), ("1m x", None)):
            self.assertEqual(self.cm.prometheus_seconds(text), seconds, text)

    def test_traefik_names_an_ingress_backend(self):
        self.assertEqual(self.cm.traefik_service_name("forex", {"name": "forex-edge", "port": {"number": 80}}), "forex-forex-edge-80@kubernetes")
        self.assertEqual(self.cm.traefik_service_name("a.b", {"name": "svc", "port": {"name": "http"}}), "a-b-svc-http@kubernetes")


if __name__ == "__main__":
    unittest.main()
