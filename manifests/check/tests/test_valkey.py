"""Valkey over TLS: TLS-only URLs and config, its certificate, the CA in every client."""

from __future__ import annotations

import base64

from .harness import ManifestsTestCase


class ValkeyTlsFails(ManifestsTestCase):
    """A Valkey or a client that could talk in clear, or not verify, fails."""

    def valkey_deployment(self, change) -> None:
        self.edit("base/valkey.yaml", "StatefulSet", "valkey", lambda d: change(d["spec"]["template"]["spec"]))

    @staticmethod
    def container(pod: dict, name: str) -> dict:
        return next(c for c in pod["containers"] if c["name"] == name)

    def example_valkey_url(self, key: str, change) -> None:
        self.edit("secrets.example.yaml", "Secret", "valkey", lambda d: d["stringData"].update({key: change(d["stringData"][key])}))

    def test_production_valkey_url_in_clear(self):
        self.example_valkey_url("edge-url", lambda url: url.replace("rediss://", "redis://"))
        self.assert_fails_with(
            r"FAIL valkey-urls",
            r"\[overlay production\] SpinApp forex/forex-edge .*variable 'valkey_url': redis://edge:\*\*\*@valkey-read.forex.svc.cluster.local:6379 is a redis:// URL in clear",
            r"\[overlay runtime-shim\] SpinApp forex/forex-edge .*variable 'valkey_url': redis://edge:\*\*\*@",
        )

    def test_production_valkey_url_with_insecure(self):
        self.example_valkey_url("refresher-url", lambda url: url + "/#insecure")
        self.assert_fails_with(
            r"FAIL valkey-urls",
            r"\[overlay production\] CronJob forex/refresher .*container 'refresher' env VALKEY_URL: rediss://:\*\*\*@valkey-read.forex.svc.cluster.local:6379/#insecure has #insecure",
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
        self.assert_fails_with(
            r"FAIL valkey-tls",
            r"StatefulSet forex/valkey .*container 'valkey': opens the plain port 6380: .*set `port 0`",
            r"StatefulSet forex/valkey .*container 'sentinel': opens the plain port 6380: ",
        )

    def test_valkey_without_a_port_directive_opens_the_default(self):
        self.replace_text("base/valkey.yaml", "'port 0' \\\n", "")
        self.assert_fails_with(
            r"FAIL valkey-tls",
            r"container 'valkey': opens the plain port 6379 \(Valkey's default when `port` is not set\)",
            r"container 'sentinel': opens the plain port 26379 \(Sentinel's default when `port` is not set\)",
        )

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
        self.assert_fails_with(
            r"FAIL valkey-tls",
            r"Service forex/valkey-read .*port 6379 goes to container port 6379 of StatefulSet forex/valkey .*not the tls-port of one of its Valkeys \(6380 \(valkey\), 26379 \(sentinel\)\)",
        )

    def test_valkey_certificate_not_covering_valkey_host(self):
        self.edit("base/valkey.yaml", "Certificate", "valkey-tls", lambda d: d["spec"]["dnsNames"].remove("valkey-read.forex.svc.cluster.local"))
        self.assert_fails_with(
            r"FAIL valkey-certificate",
            r"\[base\] Certificate forex/valkey-tls .*do not cover 'valkey-read.forex.svc.cluster.local' \(valkey_host of SpinApp forex/forex-edge",
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

