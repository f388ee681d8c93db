"""Secrets and hardening."""

from __future__ import annotations

import shutil
import unittest

import yaml

from forex_check.rules.security import looks_secret

from .harness import ManifestsTestCase


class SecurityFails(ManifestsTestCase):
    """A plaintext secret or a container that could run loose fails."""

    # -- secrets ---------------------------------------------------

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

    # -- hardening -------------------------------------------------

    def test_container_without_resources(self):
        self.refresher_container(lambda c: c.pop("resources"))
        self.assert_fails_with(r"FAIL hardening", r"container 'refresher': resources.requests lacks cpu, memory")

    def test_init_container_without_limits(self):
        def drop_limits(d):
            d["spec"]["template"]["spec"]["initContainers"][0]["resources"].pop("limits")

        self.edit("base/valkey.yaml", "StatefulSet", "valkey", drop_limits)
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


class SecretLookingNames(unittest.TestCase):
    """The names the secrets rule takes for credentials."""

    def test_secret_looking_names(self):
        for name in ("ONE_FRAME_TOKEN", "password", "edge-password", "API_KEY", "AWS_SECRET_ACCESS_KEY", "KEY"):
            self.assertTrue(looks_secret(name), name)
        for name in ("RATES_KEY", "rates_key", "ONE_FRAME_URL", "CURRENCIES", "max_rate_age", "KEYSPACE"):
            self.assertFalse(looks_secret(name), name)

