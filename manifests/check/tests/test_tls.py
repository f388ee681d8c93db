"""HTTPS at the Ingress: certificates, issuers and Traefik's redirect."""

from __future__ import annotations

from .harness import ManifestsTestCase


class TlsFails(ManifestsTestCase):
    """An Ingress that would not serve HTTPS with a kept certificate fails."""

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

