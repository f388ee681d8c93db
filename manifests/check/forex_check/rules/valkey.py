"""Valkey over TLS (manifests/valkey-tls.md): Valkey
serves TLS only, with a certificate cert-manager keeps and Valkey reloads,
and every client reaches it by a TLS URL and can verify that certificate.
Valkey's configuration is read from what its init container writes and its
command line (valkey_config.py); a Sentinel is a Valkey here too. The
replicated topology's own rules are in valkey_ha.py."""

from __future__ import annotations

import ipaddress
import posixpath
import re

from .. import redis_url
from ..context import Context
from ..model import Check, Obj, ObjectSet, applied_with, containers_of, deployable, get, pod_spec, rule
from ..valkey_config import ValkeyServer, valkey_servers
from ..workloads import (
    certificate_making,
    dns_name_covers,
    example_secret_value,
    example_secrets,
    mount_holding,
    pod_labels,
    resolved_values,
    service_selects,
    spinapp_executors,
    spinapp_variable,
)

# Overlays that may reach Valkey only over TLS: no redis:// URL, no #insecure.
TLS_ONLY_OVERLAYS = ("production", "runtime-shim")

# A Redis/Valkey URL: plain (redis://, valkey://) or TLS (rediss://, valkeys://);
# a Sentinel's URL is one too.
VALKEY_URL = re.compile(r"\b((?:redis|valkey)s?)://([^\s\"']*)", re.I)
# The protocol versions Valkey may offer (tls-protocols): TLS 1.2 and later.
TLS_PROTOCOLS = {"TLSv1.2", "TLSv1.3"}
# The Secret key spin-operator v0.6.1 mounts from an executor's caCertSecret
# at /etc/ssl/certs/ca-certificates.crt (internal/controller/deployment.go).
SPIN_CA_KEY = "ca-certificates.crt"
# cert-manager's key of the issuing CA's certificate in a certificate's Secret.
CERT_CA_KEY = "ca.crt"
# The environment variables by which the native clients (refresher, exporter)
# take Valkey's URL, the Sentinels' URL and the primary's name (with
# Sentinels), and the extra CA file they trust (ops/src/valkey.rs).
VALKEY_URL_ENV = "VALKEY_URL"
SENTINELS_ENV = "VALKEY_SENTINELS"
PRIMARY_NAME_ENV = "VALKEY_PRIMARY_NAME"
CA_FILE_ENV = "SSL_CERT_FILE"


def host_of(host_port: str) -> str:
    """The host of host:port (an IPv6 address without its brackets)."""
    url = redis_url.parse(f"redis://{host_port}")
    return url.bare_host if url else host_port


def certificate_covers(cert: Obj, host: str) -> bool:
    """A Certificate is valid for a host: an IP address among its
    ipAddresses, a name covered by one of its dnsNames."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return any(dns_name_covers(str(p), host) for p in get(cert.doc, "spec", "dnsNames", default=[]) or [])
    return any(ipaddress.ip_address(str(a)) == ip for a in get(cert.doc, "spec", "ipAddresses", default=[]) or [])


def valkey_tls_secret(s: ObjectSet, server: ValkeyServer) -> tuple[str | None, str]:
    """The Secret a Valkey's tls-cert-file and tls-key-file come from: a
    Secret volume mounted as a directory (a subPath mount never sees the
    files of a renewal); and the reason when they do not."""
    spec = pod_spec(server.obj) or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    names = set()
    for directive in ("tls-cert-file", "tls-key-file"):
        path = (server.directives or {}).get(directive)
        if not path:
            return None, f"has no {directive}"
        mount = mount_holding(server.container.get("volumeMounts") or [], path)
        if mount is None:
            return None, f"{directive} {path} is on no volumeMount of container {server.container.get('name')!r}"
        if mount.get("subPath") or mount.get("subPathExpr"):
            return None, (
                f"{directive} {path} is mounted with subPath, so the kubelet never updates it: a renewed certificate "
                f"would not reach Valkey; mount the Secret as a directory"
            )
        secret = get(volumes.get(mount.get("name")) or {}, "secret", "secretName")
        if not secret:
            return None, f"{directive} {path} is not on a Secret volume (volume {mount.get('name')!r})"
        names.add(secret)
    if len(names) != 1:
        return None, f"tls-cert-file and tls-key-file come from different Secrets ({', '.join(sorted(names))})"
    return names.pop(), ""


def service_names(svc: Obj) -> set[str]:
    """The host names of a Service inside the cluster: NAME, NAME.NS,
    NAME.NS.svc, NAME.NS.svc.cluster.local."""
    ns = svc.namespace or "default"
    return {svc.name, f"{svc.name}.{ns}", f"{svc.name}.{ns}.svc", f"{svc.name}.{ns}.svc.cluster.local"}


def service_targets(s: ObjectSet, svc: Obj) -> list[tuple[dict, Obj, dict | None, object]]:
    """(port, workload, container, container port number or the unresolved
    targetPort) for every port of a Service and every workload it selects."""
    out = []
    for o in s.objects:
        spec = pod_spec(o)
        if spec is None:
            continue
        labels = pod_labels(o) or {}
        if not service_selects(svc, o.namespace, labels):
            continue
        for p in get(svc.doc, "spec", "ports", default=[]) or []:
            target = p.get("targetPort", p.get("port"))
            found = None
            for _, cont in containers_of(spec):
                for cp in cont.get("ports") or []:
                    if (isinstance(target, str) and cp.get("name") == target) or (not isinstance(target, str) and cp.get("containerPort") == target):
                        found = (cont, cp.get("containerPort"))
            out.append((p, o, found[0] if found else None, found[1] if found else target))
    return out


def valkey_behind(s: ObjectSet, host: str, port: int | None, sentinel: bool) -> tuple[Obj | None, str]:
    """The Service of the set that host:port names and whose port goes to a
    Valkey data node's (sentinel: a Sentinel's) tls-port; else None and
    why not."""
    kind = "Sentinel" if sentinel else "Valkey data node"
    services = [svc for svc in s.of_kind("Service") if host.lower().rstrip(".") in service_names(svc)]
    if not services:
        return None, f"{host!r} is no Service of the set"
    servers = valkey_servers(s)
    for svc in services:
        for p, o, cont, number in service_targets(s, svc):
            if port is not None and p.get("port") != port:
                continue
            if any(v.obj is o and v.container is cont and v.sentinel == sentinel and v.tls_port() == str(number) for v in servers):
                return svc, ""
    return None, f"port {port} of Service {services[0].name} goes to no {kind}'s tls-port"


@rule("valkey-urls")
def valkey_urls(ctx: Context, c: Check) -> None:
    """In the overlays production and runtime-shim (TLS_ONLY_OVERLAYS) every
    Valkey URL is TLS, the Sentinels' (VALKEY_SENTINELS) included: no
    redis:// (or valkey://) URL and none with the fragment #insecure, which
    makes Spin skip the certificate check (redis-rs with native-tls) and the
    allowed-hosts check cannot see. Judged on every value the overlay's
    workloads and SpinApps read: literals, ConfigMap keys, and the example
    Secrets' keys (stringData or data) they stand for."""
    n = set()  # (where) of every value holding a Valkey URL
    sentinel_urls = set()
    for s in deployable(ctx.sets):
        if s.label.removeprefix("overlay ") not in TLS_ONLY_OVERLAYS:
            continue
        examples = example_secrets(ctx.sets, s)
        for o in s.objects:
            for where, variable, value in resolved_values(s, examples, o):
                for m in VALKEY_URL.finditer(value or ""):
                    url = m.group(0)
                    n.add(where)
                    if variable == SENTINELS_ENV:
                        sentinel_urls.add(where)
                    parsed = redis_url.parse(url)
                    if parsed is None:
                        c.fail(f"[{s.label}] {where}: {redis_url.redact(url)}: not a valid Valkey URL")
                        continue
                    if not parsed.tls:
                        c.fail(
                            f"[{s.label}] {where}: {parsed.redacted()} is a {parsed.scheme}:// URL in clear; Valkey serves TLS "
                            f"only and passwords must not cross the network in clear: use rediss://"
                        )
                    if "insecure" in parsed.fragment.lower():
                        c.fail(
                            f"[{s.label}] {where}: {parsed.redacted()} has #insecure, which makes Spin skip the check of "
                            f"Valkey's certificate and host name (runtime-shim and the refresher refuse it): remove it"
                        )
    c.summary = (
        f"{len(n)} setting(s) with a Valkey URL ({len(sentinel_urls)} of Sentinels) in {', '.join(TLS_ONLY_OVERLAYS)}, "
        f"all rediss:// without #insecure"
    )


@rule("valkey-tls")
def valkey_tls_only(ctx: Context, c: Check) -> None:
    """Every Valkey, data node or Sentinel, serves TLS only: `port 0` (Valkey
    opens 6379 in clear when `port` is not set, Sentinel 26379), a
    `tls-port`, `tls-cert-file` and `tls-key-file`; `tls-protocols`, when
    set, offers only TLS 1.2 and 1.3; and every port of every Service
    selecting its pods goes to the tls-port of one of the pod's Valkeys."""
    n = set()
    for s in deployable(ctx.sets):
        servers = valkey_servers(s)
        for server in servers:
            where = server.where()
            n.add((server.obj.identity(), server.container.get("name")))
            if server.directives is None:
                c.fail(f"{where}: cannot tell whether {server.kind} serves TLS only: {server.problem}")
                continue
            d = server.directives
            default = "26379" if server.sentinel else "6379"
            port = d.get("port", default)
            if port != "0":
                c.fail(
                    f"{where}: opens the plain port {port}"
                    + ("" if "port" in d else f" ({server.kind}'s default when `port` is not set)")
                    + ": passwords and rates would cross the network in clear; set `port 0` and serve on tls-port"
                )
            if server.tls_port() is None:
                c.fail(f"{where}: has no tls-port: {server.kind} would serve no TLS; set tls-port {default}")
            for directive in ("tls-cert-file", "tls-key-file"):
                if not d.get(directive):
                    c.fail(f"{where}: has no {directive}: {server.kind} cannot serve TLS without its certificate and key")
            protocols = d.get("tls-protocols")
            if protocols is not None and (not protocols.split() or set(protocols.split()) - TLS_PROTOCOLS):
                c.fail(f"{where}: tls-protocols {protocols!r} offers more than TLS 1.2 and 1.3 ({' '.join(sorted(TLS_PROTOCOLS))})")
        for svc in s.of_kind("Service"):
            for p, o, cont, number in service_targets(s, svc):
                pod = [v for v in servers if v.obj is o]
                if not pod or any(v.directives is None for v in pod):
                    continue
                if not any(v.container is cont and v.tls_port() == str(number) for v in pod):
                    ports = ", ".join(f"{v.tls_port()} ({v.container.get('name')})" for v in pod if v.tls_port())
                    c.fail(
                        f"{svc.ref()}: port {p.get('port')} goes to container port {number!r} of {o.ref()}, "
                        f"not the tls-port of one of its Valkeys ({ports or 'none'})"
                    )
    c.summary = f"{len(n)} Valkey(s) and Sentinel(s) serve TLS 1.2+ only (port 0, tls-port, certificate and key), behind their Services"


@rule("valkey-certificate")
def valkey_certificate(ctx: Context, c: Check) -> None:
    """Valkey's certificate is one cert-manager keeps, valid for every
    name clients connect to: every Valkey's (and Sentinel's) tls-cert-file
    and tls-key-file are files of a Secret volume mounted as a directory
    (never subPath: renewals would not reach it), that Secret is made by a
    Certificate of the namespace, and the Certificate covers the valkey_host
    of every SpinApp of the set and the host of every Valkey URL its
    workloads read (the Sentinels' too; the example Secrets')."""
    covered = set()
    for s in deployable(ctx.sets):
        applied = applied_with(ctx.sets, s)
        examples = example_secrets(ctx.sets, s)
        for server in valkey_servers(s):
            if server.directives is None:
                continue  # valkey-tls reports it
            where = server.where()
            secret, problem = valkey_tls_secret(s, server)
            if secret is None:
                if server.directives.get("tls-cert-file"):
                    c.fail(f"{where}: {problem}")
                continue
            ns = server.obj.namespace
            cert = certificate_making(applied, ns, secret)
            if cert is None:
                c.fail(f"{where}: its certificate comes from Secret {secret!r}, which no Certificate of namespace {ns} makes: nothing would renew it")
                continue
            hosts = {}
            for app in s.of_kind("SpinApp"):
                var = spinapp_variable(app, "valkey_host")
                if app.namespace == ns and var is not None and var.get("value"):
                    hosts.setdefault(host_of(str(var["value"])), f"valkey_host of {app.ref()}")
            for o in s.objects:
                if o.namespace != ns:
                    continue
                for w, _, value in resolved_values(s, examples, o):
                    for m in VALKEY_URL.finditer(value or ""):
                        url = redis_url.parse(m.group(0))
                        if url and url.tls:
                            hosts.setdefault(url.bare_host, f"the URL of {w}")
            for host, whose in sorted(hosts.items()):
                covered.add((cert.identity(), host))
                if not certificate_covers(cert, host):
                    c.fail(
                        f"[{s.label}] {cert.ref()}: {certificate_names(cert)} do not cover {host!r} ({whose}): clients verify the host name "
                        f"and would refuse Valkey's certificate"
                    )
    c.summary = f"Valkey's certificate comes from a Certificate, mounted for renewals, valid for {len({h for _, h in covered})} host name(s) clients use"


def certificate_names(cert: Obj) -> list[str]:
    return (get(cert.doc, "spec", "dnsNames", default=[]) or []) + (get(cert.doc, "spec", "ipAddresses", default=[]) or [])


@rule("valkey-ca")
def valkey_ca(ctx: Context, c: Check) -> None:
    """Every pod that connects to Valkey over TLS can verify its
    certificate:
    - a container with VALKEY_URL (the refresher, the exporter) whose URL is
      not plain sets SSL_CERT_FILE to a file of a mounted Secret volume that
      projects ca.crt of the Secret of Valkey's certificate, and only that
      key: never tls.key;
    - every SpinApp's executor sets caCertSecret (spin-operator mounts its
      ca-certificates.crt at /etc/ssl/certs/ca-certificates.crt; with
      installDefaultCACerts alone it would be the operator's public roots,
      without the internal CA), a Secret the examples describe with that key."""
    n = set()
    for s in deployable(ctx.sets):
        examples = example_secrets(ctx.sets, s)
        tls_secrets = {secret for server in valkey_servers(s) if server.directives for secret in [valkey_tls_secret(s, server)[0]] if secret}
        for o in s.objects:
            spec = pod_spec(o)
            if spec is None:
                continue
            volumes = {v.get("name"): v for v in spec.get("volumes") or []}
            for _, cont in containers_of(spec):
                names = {e.get("name") for e in cont.get("env") or []}
                if VALKEY_URL_ENV not in names:
                    continue
                where = f"{o.ref()}: container {cont.get('name')!r}"
                values = {name: value for w, name, value in resolved_values(s, examples, o) if w.startswith(where + " ")}
                url = values.get(VALKEY_URL_ENV)
                parsed = redis_url.parse(url or "")
                if parsed and not parsed.tls:
                    continue  # in clear: nothing to verify (valkey-urls refuses it where TLS is required)
                n.add((o.identity(), cont.get("name")))
                path = values.get(CA_FILE_ENV)
                if not path:
                    c.fail(
                        f"{where}: connects to Valkey ({VALKEY_URL_ENV}) but sets no {CA_FILE_ENV} as a literal path: it "
                        f"could not verify Valkey's certificate (the image has no CA bundle)"
                    )
                    continue
                mount = mount_holding(cont.get("volumeMounts") or [], path)
                volume = volumes.get(mount.get("name")) if mount else None
                secret = get(volume or {}, "secret", "secretName")
                if mount is None or secret is None:
                    c.fail(f"{where}: {CA_FILE_ENV} {path} is on no mounted Secret volume; mount {CERT_CA_KEY} of Valkey's certificate Secret ({', '.join(sorted(tls_secrets)) or 'none'})")
                    continue
                if tls_secrets and secret not in tls_secrets:
                    c.fail(f"{where}: {CA_FILE_ENV} {path} comes from Secret {secret!r}, not from Valkey's certificate Secret ({', '.join(sorted(tls_secrets))})")
                    continue
                rel = mount.get("subPath") or posixpath.relpath(path, str(mount.get("mountPath")))
                items = get(volume, "secret", "items")
                if items is None:
                    c.fail(
                        f"{where}: volume {mount.get('name')!r} projects every key of Secret {secret!r}, the private key "
                        f"tls.key too: give it items: [{{key: {CERT_CA_KEY}, path: {CERT_CA_KEY}}}]"
                    )
                    continue
                for item in items:
                    if item.get("key") != CERT_CA_KEY:
                        c.fail(f"{where}: volume {mount.get('name')!r} projects {item.get('key')!r} of Secret {secret!r}; a client needs only {CERT_CA_KEY}")
                if not any(item.get("key") == CERT_CA_KEY and item.get("path") == rel for item in items):
                    c.fail(f"{where}: {CA_FILE_ENV} {path} is not the {CERT_CA_KEY} of Secret {secret!r} that volume {mount.get('name')!r} projects")
    for s, _, app, ex in spinapp_executors(ctx.sets):
        if ex is None:
            continue  # apply-order reports it
        examples = example_secrets(ctx.sets, s)
        n.add(app.identity())
        secret = get(ex.doc, "spec", "deploymentConfig", "caCertSecret")
        if not secret:
            c.fail(
                f"{ex.ref()}: no caCertSecret, so the pods of {app.ref()} have no bundle with the CA of Valkey's certificate "
                f"(installDefaultCACerts alone mounts spin-operator's public roots): set caCertSecret: forex-ca-bundle "
                f"(manifests/README.md, section 6)"
            )
        elif example_secret_value(examples, app.namespace, secret, SPIN_CA_KEY) is None:
            c.fail(f"{ex.ref()}: caCertSecret {secret!r} is not described by secrets.example.yaml with the key {SPIN_CA_KEY} spin-operator mounts")
    c.summary = f"{len(n)} Valkey client(s) (containers, SpinApps) have the CA of Valkey's certificate, and no more of its Secret"
