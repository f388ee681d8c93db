"""What keeps secrets out of git and the containers locked down: no
plaintext secret outside the marked examples, and every container limited,
non-root, without privileges or capabilities."""

from __future__ import annotations

import re

from ..context import Context
from ..model import Check, containers_of, deployable, get, pod_spec, rule

# Marks an object of secrets.example.yaml as an example (label and annotation).
EXAMPLE_MARK = "forex.example/example-only"

SECRET_WORDS = {"TOKEN", "PASSWORD", "PASSWD", "PASS", "SECRET", "CREDENTIALS", "CREDENTIAL", "APIKEY", "AUTH"}
# "KEY" alone names a key *of something* (RATES_KEY is a Valkey key name);
# these are the kinds of key that are credentials.
SECRET_KEY_PREFIXES = {"API", "ACCESS", "PRIVATE", "SECRET", "SIGNING", "ENCRYPTION", "CLIENT", "AUTH"}
URL_WITH_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@]*@")


def looks_secret(name: str) -> bool:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    if any(w in SECRET_WORDS for w in words):
        return True
    if words == ["KEY"]:
        return True
    return any(w == "KEY" and i > 0 and words[i - 1] in SECRET_KEY_PREFIXES for i, w in enumerate(words))


@rule("secrets")
def secrets(ctx: Context, c: Check) -> None:
    """No plaintext secret outside the marked examples: no Secret with data
    in the manifests, no ConfigMap key or container env value that looks like
    a credential or is a URL with one, no SpinApp variable or store option
    with an inline value that looks secret. secrets.example.yaml holds only
    Secrets, each marked with the label and annotation
    forex.example/example-only."""
    for s in ctx.sets:
        if not s.deployable:
            for o in s.objects:
                meta = o.doc.get("metadata") or {}
                if o.kind != "Secret":
                    c.fail(f"{o.ref()}: the examples file should hold only Secrets")
                if (meta.get("labels") or {}).get(EXAMPLE_MARK) != "true" or EXAMPLE_MARK not in (meta.get("annotations") or {}):
                    c.fail(f"{o.ref()}: an example must carry the label and annotation {EXAMPLE_MARK}")
            continue
        for o in s.objects:
            if o.kind == "Secret" and (o.doc.get("data") or o.doc.get("stringData")):
                c.fail(
                    f"{o.ref()}: a Secret with data is in the manifests; real values never go in git "
                    f"(create it with kubectl create secret generic, see manifests/secrets.example.yaml)"
                )
            if o.kind == "ConfigMap":
                for key, value in (o.doc.get("data") or {}).items():
                    if URL_WITH_CREDENTIALS.search(str(value)):
                        c.fail(f"{o.ref()}: data.{key} is a URL with credentials; put it in a Secret")
                    if looks_secret(key):
                        c.fail(f"{o.ref()}: data.{key} looks like a secret; put it in a Secret")
            spec = pod_spec(o)
            if spec:
                for _, cont in containers_of(spec):
                    for env in cont.get("env") or []:
                        name, value = env.get("name", ""), env.get("value")
                        if value is None:
                            continue
                        if looks_secret(name):
                            c.fail(
                                f"{o.ref()}: container {cont.get('name')!r} env {name} has a plaintext "
                                f"value; use valueFrom.secretKeyRef"
                            )
                        elif URL_WITH_CREDENTIALS.search(str(value)):
                            c.fail(
                                f"{o.ref()}: container {cont.get('name')!r} env {name} is a URL with "
                                f"credentials; use valueFrom.secretKeyRef"
                            )
            if o.kind == "SpinApp":
                entries = [("variable", v) for v in get(o.doc, "spec", "variables", default=[]) or []]
                for store_kind in ("keyValueStores", "sqliteDatabases"):
                    for store in get(o.doc, "spec", "runtimeConfig", store_kind, default=[]) or []:
                        entries += [(f"{store_kind} {store.get('name')} option", v) for v in store.get("options") or []]
                for what, v in entries:
                    name, value = v.get("name", ""), v.get("value")
                    if value is None:
                        continue
                    if looks_secret(name) or "@" in str(value):
                        c.fail(
                            f"{o.ref()}: {what} {name!r} has an inline value that looks secret; "
                            f"use valueFrom.secretKeyRef"
                        )
    c.summary = "no plaintext secret in the manifests; examples are marked"


def _effective(container_sc: dict, pod_sc: dict, key: str):
    return container_sc[key] if key in container_sc else pod_sc.get(key)


@rule("hardening")
def hardening(ctx: Context, c: Check) -> None:
    """Every container (init containers too) has cpu and memory requests and
    limits, cannot run as root (runAsNonRoot or a non-zero runAsUser), cannot
    gain privileges, is not privileged, drops all capabilities and uses a
    seccomp profile (RuntimeDefault or Localhost, of the pod or the
    container); every SpinApp has cpu and memory requests and limits."""
    n = set()
    for s in deployable(ctx.sets):
        for o in s.objects:
            if o.kind == "SpinApp":
                for part in ("requests", "limits"):
                    got = get(o.doc, "spec", "resources", part, default={}) or {}
                    for res in ("cpu", "memory"):
                        if res not in got:
                            c.fail(f"{o.ref()}: spec.resources.{part}.{res} is missing")
                continue
            spec = pod_spec(o)
            if spec is None:
                continue
            pod_sc = spec.get("securityContext") or {}
            for kind, cont in containers_of(spec):
                n.add((o.identity(), kind, cont.get("name")))
                where = f"{o.ref()}: {kind[:-1]} {cont.get('name')!r}"
                for part in ("requests", "limits"):
                    got = get(cont, "resources", part, default={}) or {}
                    missing = [r for r in ("cpu", "memory") if r not in got]
                    if missing:
                        c.fail(f"{where}: resources.{part} lacks {', '.join(missing)}")
                sc = cont.get("securityContext") or {}
                user = _effective(sc, pod_sc, "runAsUser")
                if user == 0:
                    c.fail(f"{where}: runs as root (runAsUser 0)")
                elif not (_effective(sc, pod_sc, "runAsNonRoot") is True or isinstance(user, int)):
                    c.fail(f"{where}: may run as root; set runAsNonRoot: true or a non-zero runAsUser")
                if sc.get("allowPrivilegeEscalation") is not False:
                    c.fail(f"{where}: securityContext.allowPrivilegeEscalation must be false")
                if "ALL" not in (get(sc, "capabilities", "drop", default=[]) or []):
                    c.fail(f"{where}: securityContext.capabilities.drop must include ALL")
                if sc.get("privileged"):
                    c.fail(f"{where}: must not be privileged")
                seccomp = get(sc, "seccompProfile", "type") or get(pod_sc, "seccompProfile", "type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    c.fail(f"{where}: needs seccompProfile RuntimeDefault (pod or container)")
    c.summary = f"{len(n)} container(s) limited and non-root; SpinApps have resources"
