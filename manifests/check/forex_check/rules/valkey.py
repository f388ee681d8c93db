"""Valkey over TLS (manifests/valkey-tls.md): Valkey
serves TLS only, with a certificate cert-manager keeps and Valkey reloads,
and every client reaches it by a TLS URL and can verify that certificate.
Valkey's configuration is read from what its init container writes and its
command line."""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from dataclasses import dataclass

from .. import redis_url
from ..context import Context
from ..model import Check, Obj, ObjectSet, applied_with, containers_of, deployable, get, pod_spec, rule
from ..workloads import (
    certificate_making,
    container_script,
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

# A Redis/Valkey URL: plain (redis://, valkey://) or TLS (rediss://, valkeys://).
VALKEY_URL = re.compile(r"\b((?:redis|valkey)s?)://([^\s\"']*)", re.I)
# The programs that serve Valkey (the image's valkey-server; redis-server alike).
VALKEY_SERVERS = {"valkey-server", "redis-server"}
# The protocol versions Valkey may offer (tls-protocols): TLS 1.2 and later.
TLS_PROTOCOLS = {"TLSv1.2", "TLSv1.3"}
# The Secret key spin-operator v0.6.1 mounts from an executor's caCertSecret
# at /etc/ssl/certs/ca-certificates.crt (internal/controller/deployment.go).
SPIN_CA_KEY = "ca-certificates.crt"
# cert-manager's key of the issuing CA's certificate in a certificate's Secret.
CERT_CA_KEY = "ca.crt"
# The environment variables by which the native clients (refresher, exporter)
# take Valkey's URL and the extra CA file they trust (ops/src/valkey.rs).
VALKEY_URL_ENV = "VALKEY_URL"
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


def printf_lines(script: str) -> list[str] | str:
    """The lines a shell script writes with `printf '%s\\n' 'line' ...`
    (each argument one line, as printf writes them); the reason when one
    cannot be read."""
    out, lines, i = [], script.splitlines(), 0
    while i < len(lines):
        text = lines[i].strip()
        i += 1
        if not re.match(r"printf\s+'%s\\n'", text):
            continue
        while text.endswith("\\") and i < len(lines):
            text = text[:-1] + " " + lines[i].strip()
            i += 1
        try:
            words = shlex.split(text)
        except ValueError as e:
            return f"cannot read a printf line of its config script: {e}"
        if any("$" in w for w in words[2:]):
            return "a printf '%s\\n' line of its config script writes a $variable, which this checker cannot resolve"
        out += words[2:]
    return out


def config_directives(lines: list[str]) -> dict[str, str]:
    """Valkey config lines as {directive (lower case): value, quotes removed};
    a later line wins, as in Valkey."""
    out = {}
    for line in lines:
        name, _, value = line.strip().partition(" ")
        if not name or name.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[name.lower()] = value
    return out


@dataclass
class ValkeyServer:
    """A Valkey of the manifests: the workload, its valkey-server container
    and the directives it runs with (None, with `problem`, when the
    manifests do not show them)."""

    obj: Obj
    container: dict
    directives: dict[str, str] | None
    problem: str = ""


def valkey_servers(s: ObjectSet) -> list[ValkeyServer]:
    """Every container of the set that runs valkey-server, with the
    directives of its config: the lines the pod's init containers write into
    the config file it is started with (`printf '%s\\n' 'directive value' ...`,
    as base/valkey.yaml does), then its `--directive value` arguments, which
    Valkey applies after the file."""
    out = []
    for o in s.objects:
        spec = pod_spec(o) or {}
        for cont in spec.get("containers") or []:
            words = [str(w) for w in (cont.get("command") or []) + (cont.get("args") or [])]
            start = next((i for i, w in enumerate(words) if posixpath.basename(w) in VALKEY_SERVERS), None)
            if start is None:
                continue
            rest = words[start + 1 :]
            files = []
            while rest and not rest[0].startswith("--"):
                files.append(rest.pop(0))
            lines, problem = [], ""
            for path in files:
                writers = [c for c in spec.get("initContainers") or [] if path in container_script(c)]
                if not writers:
                    problem = f"its config file {path} is written by no init container; this checker reads the config an init container writes with printf '%s\\n' lines"
                for writer in writers:
                    written = printf_lines(container_script(writer))
                    if isinstance(written, str):
                        problem = f"init container {writer.get('name')!r}: {written}"
                    else:
                        lines += written
            while rest:
                name = rest.pop(0)[2:]
                value = []
                while rest and not rest[0].startswith("--"):
                    value.append(rest.pop(0))
                lines.append(f"{name} {' '.join(value)}")
            out.append(ValkeyServer(o, cont, None if problem else config_directives(lines), problem))
    return out


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


@rule("valkey-urls")
def valkey_urls(ctx: Context, c: Check) -> None:
    """In the overlays production and runtime-shim (TLS_ONLY_OVERLAYS) every
    Valkey URL is TLS: no redis:// (or valkey://) URL and none with the
    fragment #insecure, which makes Spin skip the certificate check (redis-rs
    with native-tls) and the allowed-hosts check cannot see. Judged on every
    value the overlay's workloads and SpinApps read: literals, ConfigMap keys,
    and the example Secrets' keys (stringData or data) they stand for."""
    examples = example_secrets(ctx.sets)
    n = set()  # (where) of every value holding a Valkey URL
    for s in deployable(ctx.sets):
        if s.label.removeprefix("overlay ") not in TLS_ONLY_OVERLAYS:
            continue
        for o in s.objects:
            for where, _, value in resolved_values(s, examples, o):
                for m in VALKEY_URL.finditer(value or ""):
                    url = m.group(0)
                    n.add(where)
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
    c.summary = f"{len(n)} setting(s) with a Valkey URL in {', '.join(TLS_ONLY_OVERLAYS)}, all rediss:// without #insecure"


@rule("valkey-tls")
def valkey_tls_only(ctx: Context, c: Check) -> None:
    """Every Valkey serves TLS only: `port 0` (Valkey opens 6379 in clear
    when `port` is not set), a `tls-port`, `tls-cert-file` and
    `tls-key-file`; `tls-protocols`, when set, offers only TLS 1.2 and 1.3;
    and every Service selecting it sends its ports to that tls-port."""
    n = set()
    for s in deployable(ctx.sets):
        for server in valkey_servers(s):
            where = f"{server.obj.ref()}: container {server.container.get('name')!r}"
            n.add(server.obj.identity())
            if server.directives is None:
                c.fail(f"{where}: cannot tell whether Valkey serves TLS only: {server.problem}")
                continue
            d = server.directives
            port = d.get("port", "6379")
            if port != "0":
                c.fail(
                    f"{where}: opens the plain port {port}"
                    + ("" if "port" in d else " (Valkey's default when `port` is not set)")
                    + ": passwords and rates would cross the network in clear; set `port 0` and serve on tls-port"
                )
            tls_port = d.get("tls-port", "0")
            if tls_port in ("", "0"):
                c.fail(f"{where}: has no tls-port: Valkey would serve no TLS; set tls-port 6379")
            for directive in ("tls-cert-file", "tls-key-file"):
                if not d.get(directive):
                    c.fail(f"{where}: has no {directive}: Valkey cannot serve TLS without its certificate and key")
            protocols = d.get("tls-protocols")
            if protocols is not None and (not protocols.split() or set(protocols.split()) - TLS_PROTOCOLS):
                c.fail(f"{where}: tls-protocols {protocols!r} offers more than TLS 1.2 and 1.3 ({' '.join(sorted(TLS_PROTOCOLS))})")
            labels = pod_labels(server.obj) or {}
            ports = {p.get("name"): p.get("containerPort") for p in server.container.get("ports") or []}
            for svc in s.of_kind("Service"):
                if not service_selects(svc, server.obj.namespace, labels):
                    continue
                for p in get(svc.doc, "spec", "ports", default=[]) or []:
                    target = p.get("targetPort", p.get("port"))
                    number = ports.get(target) if isinstance(target, str) else target
                    if tls_port not in ("", "0") and str(number) != tls_port:
                        c.fail(
                            f"{svc.ref()}: port {p.get('port')} goes to container port {number if number is not None else target!r} "
                            f"of {server.obj.ref()}, not Valkey's tls-port {tls_port}"
                        )
    c.summary = f"{len(n)} Valkey(s) serve TLS 1.2+ only (port 0, tls-port, certificate and key), behind their Services"


@rule("valkey-certificate")
def valkey_certificate(ctx: Context, c: Check) -> None:
    """Valkey's certificate is one cert-manager keeps, valid for every
    name clients connect to: tls-cert-file and tls-key-file are files of a
    Secret volume mounted as a directory (never subPath: renewals would not
    reach Valkey), that Secret is made by a Certificate of the namespace, and
    the Certificate covers the valkey_host of every SpinApp of the set and
    the host of every Valkey URL its workloads read (the example Secrets')."""
    examples = example_secrets(ctx.sets)
    covered = set()
    for s in deployable(ctx.sets):
        applied = applied_with(ctx.sets, s)
        for server in valkey_servers(s):
            if server.directives is None:
                continue  # valkey-tls reports it
            where = f"{server.obj.ref()}: container {server.container.get('name')!r}"
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
                    names = (get(cert.doc, "spec", "dnsNames", default=[]) or []) + (get(cert.doc, "spec", "ipAddresses", default=[]) or [])
                    c.fail(
                        f"[{s.label}] {cert.ref()}: {names} do not cover {host!r} ({whose}): clients verify the host name "
                        f"and would refuse Valkey's certificate"
                    )
    c.summary = f"Valkey's certificate comes from a Certificate, mounted for renewals, valid for {len({h for _, h in covered})} host name(s) clients use"


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
    examples = example_secrets(ctx.sets)
    n = set()
    for s in deployable(ctx.sets):
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
