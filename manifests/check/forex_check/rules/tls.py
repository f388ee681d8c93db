"""HTTPS at the Ingress: every overlay serves the edge over HTTPS with a
certificate cert-manager keeps, issued by an issuer that exists and can
solve its challenge, and Traefik redirects HTTP to it."""

from __future__ import annotations

from ..context import Context
from ..model import Check, applied_with, deployable, get, rule
from ..workloads import cert_issuer, certificate_making, dns_name_covers, http01_ingress_solvers

# Traefik's Ingress annotation naming the middlewares of the Ingress's
# routers, each `<namespace>-<name>@kubernetescrd` for a Middleware resource.
TRAEFIK_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"


@rule("tls")
def tls(ctx: Context, c: Check) -> None:
    """Every Ingress an overlay applies serves HTTPS with a certificate that
    cert-manager keeps, and redirects HTTP to it:
    - the Ingress has tls:, and every host of its rules is in one of its tls
      entries (Traefik picks the certificate by SNI; a host without one gets
      Traefik's default certificate);
    - each tls secretName is the secretName of a Certificate of the same
      namespace, and that Certificate's dnsNames cover the entry's hosts;
    - every Certificate's issuerRef names an Issuer of its namespace or a
      ClusterIssuer, applied with it or before; a CA issuer's secret is made
      by a Certificate with isCA; an ACME issuer that solves HTTP-01 with an
      Ingress uses the class of the Ingresses it issues certificates for;
    - every `<namespace>-<name>@kubernetescrd` of the Ingress's
      router.middlewares annotation is a Middleware of the set (Traefik
      drops a router whose middleware is missing), and a TLS Ingress names
      one that redirects to https."""
    n_ing, n_cert = set(), set()
    for s in deployable(ctx.sets, from_step=1):
        applied = applied_with(ctx.sets, s)
        at = f"[{s.label}] "
        issuers = sorted({f"{o.kind} {o.name}" for t in applied for o in t.objects if o.kind in ("Issuer", "ClusterIssuer")})

        for cert in s.of_kind("Certificate"):
            n_cert.add(cert.identity())
            issuer, desc = cert_issuer(cert, applied)
            if issuer is None:
                c.fail(
                    f"{at}{cert.ref()}: issuerRef {desc} is neither an Issuer of namespace {cert.namespace} nor a ClusterIssuer "
                    f"of the manifests (issuers: {', '.join(issuers) or 'none'}); it would never be issued"
                )
        for issuer in s.of_kind("Issuer"):
            secret = get(issuer.doc, "spec", "ca", "secretName")
            if not secret:
                continue
            ca = certificate_making([s], issuer.namespace, secret)
            if ca is None:
                c.fail(f"{at}{issuer.ref()}: its CA Secret {secret!r} is made by no Certificate of namespace {issuer.namespace}")
            elif get(ca.doc, "spec", "isCA") is not True:
                c.fail(f"{at}{ca.ref()}: makes the CA Secret {secret!r} of {issuer.ref()} but is not isCA: true")
        for ing in s.of_kind("Ingress"):
            n_ing.add(ing.identity())
            tls = get(ing.doc, "spec", "tls", default=[]) or []
            hosts = [r.get("host") for r in get(ing.doc, "spec", "rules", default=[]) or []]
            if not tls and s.label.startswith("overlay "):
                c.fail(
                    f"{at}{ing.ref()}: has no tls:; every overlay serves the edge over HTTPS "
                    f"(a component of manifests/components/, manifests/README.md \"HTTPS\")"
                )
            tls_hosts = {h for entry in tls for h in entry.get("hosts") or []}
            for host in hosts if tls else []:
                if host is None:
                    c.fail(f"{at}{ing.ref()}: a rule without host in an Ingress with tls:; Traefik picks the certificate by host")
                elif host not in tls_hosts:
                    c.fail(f"{at}{ing.ref()}: host {host!r} is in no tls entry; Traefik would answer it with its default certificate")
            for i, entry in enumerate(tls):
                secret = entry.get("secretName")
                cert = certificate_making([s], ing.namespace, secret) if secret else None
                if cert is None:
                    made = sorted(str(get(x.doc, "spec", "secretName")) for x in s.of_kind("Certificate") if x.namespace == ing.namespace)
                    c.fail(
                        f"{at}{ing.ref()}: tls[{i}] secretName {secret!r} is the secretName of no Certificate of namespace "
                        f"{ing.namespace} (they make: {', '.join(made) or 'nothing'})"
                    )
                    continue
                names = get(cert.doc, "spec", "dnsNames", default=[]) or []
                for host in entry.get("hosts") or []:
                    if not any(dns_name_covers(str(p), str(host)) for p in names):
                        c.fail(
                            f"{at}{cert.ref()}: dnsNames {names} do not cover host {host!r} of {ing.ref()}; "
                            f"clients would refuse the certificate"
                        )
                issuer, _ = cert_issuer(cert, applied)
                for solver in http01_ingress_solvers(issuer) if issuer is not None else []:
                    wanted = get(ing.doc, "spec", "ingressClassName")
                    got = solver.get("ingressClassName") or solver.get("class")
                    if "name" not in solver and got != wanted:
                        c.fail(
                            f"{at}{issuer.ref()}: its HTTP-01 solver uses ingress class {got!r}, not {wanted!r} of {ing.ref()}: "
                            f"the ACME server's request for the challenge would not reach the solver"
                        )
            annotations = get(ing.doc, "metadata", "annotations", default={}) or {}
            redirects = False
            for ref in filter(None, (r.strip() for r in str(annotations.get(TRAEFIK_MIDDLEWARES, "")).split(","))):
                name, _, provider = ref.partition("@")
                if provider != "kubernetescrd":
                    continue  # another provider's (file, ...): not in the manifests
                known = sorted(f"{m.namespace}-{m.name}" for m in s.of_kind("Middleware"))
                mw = next((m for m in s.of_kind("Middleware") if f"{m.namespace}-{m.name}" == name), None)
                if mw is None:
                    c.fail(
                        f"{at}{ing.ref()}: {TRAEFIK_MIDDLEWARES} names {ref!r}, which is no <namespace>-<name> of a Middleware "
                        f"of the manifests ({', '.join(known) or 'none'}); Traefik would not route the Ingress"
                    )
                elif get(mw.doc, "spec", "redirectScheme", "scheme") == "https":
                    redirects = True
            if tls and not redirects:
                c.fail(
                    f"{at}{ing.ref()}: HTTP is not redirected to HTTPS: {TRAEFIK_MIDDLEWARES} names no Middleware "
                    f"with redirectScheme scheme https"
                )
    c.summary = (
        f"{len(n_ing)} Ingress(es) and {len(n_cert)} Certificate(s): TLS Secrets made by Certificates covering the hosts, "
        f"issuers and redirect middlewares exist; every overlay serves HTTPS"
    )
