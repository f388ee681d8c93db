"""What the objects of a set make and read, as several rule families need
to know it: the pods and their labels (spin-operator's and cert-manager's
too), the executor of each SpinApp, the issuer of each Certificate, and the
values of environment variables and SpinApp variables."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator

from .kustomize import split_image
from .model import POD_SPEC_PATHS, Obj, ObjectSet, applied_with, containers_of, deployable, get, pod_spec

# cert-manager's HTTP-01 solver pods carry this label (and listen on 8089):
# pkg/apis/acme/v1/types.go and pkg/issuer/acme/http/pod.go at v1.20.0.
ACME_SOLVER_LABELS = {"acme.cert-manager.io/http01-solver": "true"}
CERT_MANAGER_GROUP = "cert-manager.io"


def spinapp_operator_labels(name: str) -> dict[str, str]:
    """Labels spin-operator v0.6.1 puts on every pod of a SpinApp (besides spec.podLabels)."""
    return {"core.spinkube.dev/app-name": name, f"core.spinkube.dev/app.{name}.status": "ready"}


def pod_labels(obj: Obj) -> dict | None:
    """Labels of the pods a workload makes (SpinApp: as spin-operator makes
    them); None for objects that make no pods."""
    if obj.kind == "SpinApp":
        return {**(get(obj.doc, "spec", "podLabels", default={}) or {}), **spinapp_operator_labels(obj.name)}
    path = POD_SPEC_PATHS.get(obj.kind)
    if path is None:
        return None
    return get(obj.doc, *path[:-1], "metadata", "labels", default={}) or {}


def replicas_of(obj: Obj) -> int | None:
    """How many pods a workload runs; None when not fixed (autoscaled, jobs)."""
    if obj.kind == "SpinApp":
        return None if get(obj.doc, "spec", "enableAutoscaling") else get(obj.doc, "spec", "replicas", default=1)
    if obj.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return get(obj.doc, "spec", "replicas", default=1)
    return 1 if obj.kind == "Pod" else None


def container_ports(obj: Obj) -> list[dict]:
    """The container ports of the pods a workload makes (a SpinApp's: the
    one spin-operator declares, 80 named http-app)."""
    if obj.kind == "SpinApp":
        return [{"name": "http-app", "containerPort": 80}]
    return [p for _, cont in containers_of(pod_spec(obj) or {}) for p in cont.get("ports") or []]


def service_selects(svc: Obj, namespace: str, labels: dict) -> bool:
    """Whether Service `svc` sends its traffic to a pod of `namespace` with
    `labels`. A Service without a selector selects no pod: its endpoints
    are kept by hand."""
    selector = get(svc.doc, "spec", "selector") or {}
    return bool(selector) and svc.namespace == namespace and selector_matches({"matchLabels": selector}, labels)


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against pod labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_text(selector: dict) -> str:
    return json.dumps(selector, sort_keys=True, separators=(",", ":"))


def cert_issuer(cert: Obj, applied: list[ObjectSet]) -> tuple[Obj | None, str]:
    """The Issuer (of the Certificate's namespace) or ClusterIssuer that a
    Certificate's issuerRef names, among the sets applied up to its own; and
    the reference in words. None for a missing one or another group's."""
    ref = get(cert.doc, "spec", "issuerRef", default={}) or {}
    kind, group, name = ref.get("kind") or "Issuer", ref.get("group") or CERT_MANAGER_GROUP, ref.get("name")
    desc = f"{kind} {name!r}" + ("" if group == CERT_MANAGER_GROUP else f" of group {group}")
    if group != CERT_MANAGER_GROUP or kind not in ("Issuer", "ClusterIssuer"):
        return None, desc
    for t in applied:
        for o in t.of_kind(kind):
            if o.name == name and (kind == "ClusterIssuer" or (o.namespace or "default") == (cert.namespace or "default")):
                return o, desc
    return None, desc


def http01_ingress_solvers(issuer: Obj) -> list[dict]:
    """The http01.ingress settings of an ACME issuer's solvers."""
    solvers = get(issuer.doc, "spec", "acme", "solvers", default=[]) or []
    return [s["http01"]["ingress"] for s in solvers if isinstance(get(s, "http01", "ingress"), dict)]


def certificate_making(sets: list[ObjectSet], namespace: str | None, secret: str) -> Obj | None:
    """The Certificate of the namespace, among the sets, whose Secret is `secret`."""
    return next(
        (x for t in sets for x in t.of_kind("Certificate") if x.namespace == namespace and get(x.doc, "spec", "secretName") == secret),
        None,
    )


def dns_name_covers(pattern: str, host: str) -> bool:
    """A certificate's DNS name matches a host: equal, or a wildcard
    `*.example.com` for exactly one more label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def pods(s: ObjectSet, sets: list[ObjectSet]) -> list[tuple[Obj, dict]]:
    """Every (maker, pod labels) of the pods set s brings about: workloads,
    SpinApps (as spin-operator labels them), and the HTTP-01 solver pods
    cert-manager runs in a Certificate's namespace while an ACME issuer with
    an Ingress solver issues it (listed under the Certificate)."""
    made = [(o, labels) for o in s.objects if (labels := pod_labels(o)) is not None]
    applied = applied_with(sets, s)
    for cert in s.of_kind("Certificate"):
        issuer, _ = cert_issuer(cert, applied)
        if issuer is not None and http01_ingress_solvers(issuer):
            made.append((cert, dict(ACME_SOLVER_LABELS)))
    return made


def spinapp_executors(sets: list[ObjectSet]) -> Iterator[tuple[ObjectSet, list[ObjectSet], Obj, Obj | None]]:
    """(set, the sets applied by then, SpinApp, its executor or None) for
    every SpinApp of an app: the executor spin-operator finds in the
    SpinApp's namespace once the app is applied."""
    for s in deployable(sets, from_step=2):
        applied = applied_with(sets, s)
        for app in s.of_kind("SpinApp"):
            ns, executor = app.namespace or "default", get(app.doc, "spec", "executor")
            yield s, applied, app, next((e for t in applied if (e := t.find("SpinAppExecutor", ns, executor))), None)


def spinapp_variable(app: Obj, name: str) -> dict | None:
    """The entry of a SpinApp's spec.variables called name."""
    return next((v for v in get(app.doc, "spec", "variables", default=[]) or [] if v.get("name") == name), None)


def container_script(container: dict) -> str:
    """A container's command and args, one a line: the script of a `sh -c`."""
    return "\n".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))


def mount_holding(mounts: list[dict], path: str, itself: bool = True) -> dict | None:
    """The deepest volumeMount a file path lies under; with `itself`, also
    one mounted at exactly that path (a file mounted with subPath)."""

    def holds(m: dict) -> bool:
        return (itself and path == m.get("mountPath")) or path.startswith(str(m.get("mountPath", "")).rstrip("/") + "/")

    return max((m for m in mounts if holds(m)), key=lambda m: len(str(m.get("mountPath"))), default=None)


# -- values the workloads read --------------------------------------------------

UNRESOLVED = object()


def env_value(s: ObjectSet, obj: Obj, container: dict, name: str):
    """The value of a container's environment variable: a literal or a
    ConfigMap key of the set. None when the variable is not set; UNRESOLVED
    when it comes from somewhere the manifests do not show (a Secret)."""
    for e in container.get("env") or []:
        if e.get("name") != name:
            continue
        if "value" in e:
            return str(e["value"])
        ref = get(e, "valueFrom", "configMapKeyRef")
        if ref:
            return configmap_value(s, obj.namespace, ref.get("name"), ref.get("key"), UNRESOLVED)
        return UNRESOLVED
    found = None
    for source in container.get("envFrom") or []:  # later sources win; env above wins over all
        prefix, ref = source.get("prefix", ""), source.get("configMapRef")
        if ref and name.startswith(prefix):
            cm = s.find("ConfigMap", obj.namespace, ref.get("name"))
            data = (cm.doc.get("data") or {}) if cm else {}
            if name[len(prefix) :] in data:
                found = str(data[name[len(prefix) :]])
    return found


def configmap_value(s: ObjectSet, namespace: str | None, name: str, key: str, missing=None):
    """A key of a ConfigMap of the set, as a string; `missing` when there is none."""
    cm = s.find("ConfigMap", namespace, name)
    value = (cm.doc.get("data") or {}).get(key) if cm else None
    return missing if value is None else str(value)


def example_secrets(sets: list[ObjectSet], s: ObjectSet | None = None) -> list[Obj]:
    """The example Secrets, which stand for the ones made by hand: those of
    manifests/secrets.example.yaml, and for set `s` (when given) those of the
    secrets.example.yaml of each component it includes instead of the base's
    of the same name (manifests/components/valkey-single's Secret valkey)."""
    examples = [o for t in sets if not t.deployable and not t.for_component for o in t.objects if o.kind == "Secret"]
    if s is None:
        return examples
    for t in sets:
        if t.deployable or t.for_component not in s.components:
            continue
        for o in t.objects:
            if o.kind != "Secret":
                continue
            same = (o.name, o.namespace or "default")
            examples = [x for x in examples if (x.name, x.namespace or "default") != same] + [o]
    return examples


def example_secret(examples: list[Obj], namespace: str | None, name: str) -> Obj | None:
    return next((x for x in examples if x.name == name and (x.namespace or "default") == (namespace or "default")), None)


def example_secret_keys(example: Obj) -> dict:
    return {**(example.doc.get("data") or {}), **(example.doc.get("stringData") or {})}


def example_secret_value(examples: list[Obj], namespace: str | None, name: str, key: str) -> str | None:
    """A key of an example Secret (stringData, or data decoded); None when
    the examples do not have it."""
    for ex in examples:
        if ex.name != name or (ex.namespace or "default") != (namespace or "default"):
            continue
        string_data, data = ex.doc.get("stringData") or {}, ex.doc.get("data") or {}
        if key in string_data:
            return str(string_data[key])
        if key in data:
            try:
                return base64.b64decode(str(data[key]), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def resolved_values(s: ObjectSet, examples: list[Obj], obj: Obj) -> list[tuple[str, str, str | None]]:
    """(where, variable, value) of every environment variable of a
    workload's containers and every variable of a SpinApp, with its value
    resolved: a literal, a ConfigMap key of the set, a key of an example
    Secret (secrets.example.yaml stands for the Secrets made by hand); None
    when the manifests do not show it. envFrom sources give all their keys."""
    out = []
    ns = obj.namespace
    variables = get(obj.doc, "spec", "variables", default=[]) or [] if obj.kind == "SpinApp" else []
    for v in variables:
        secret, config = get(v, "valueFrom", "secretKeyRef"), get(v, "valueFrom", "configMapKeyRef")
        value = str(v["value"]) if "value" in v else None
        if secret:
            value = example_secret_value(examples, ns, secret.get("name"), secret.get("key"))
        elif config:
            value = configmap_value(s, ns, config.get("name"), config.get("key"))
        out.append((f"{obj.ref()}: variable {v.get('name')!r}", str(v.get("name")), value))
    for _, cont in containers_of(pod_spec(obj) or {}):
        where = f"{obj.ref()}: container {cont.get('name')!r}"
        for e in cont.get("env") or []:
            ref = get(e, "valueFrom", "secretKeyRef")
            value = example_secret_value(examples, ns, ref.get("name"), ref.get("key")) if ref else env_value(s, obj, cont, e.get("name"))
            out.append((f"{where} env {e.get('name')}", str(e.get("name")), None if value is UNRESOLVED else value))
        for source in cont.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if source.get("configMapRef"):
                cm = s.find("ConfigMap", ns, source["configMapRef"].get("name"))
                for key, value in ((cm.doc.get("data") or {}) if cm else {}).items():
                    out.append((f"{where} env {prefix}{key}", prefix + key, str(value)))
            if source.get("secretRef"):
                name = source["secretRef"].get("name")
                ex = example_secret(examples, ns, name)
                for key in example_secret_keys(ex) if ex else {}:
                    out.append((f"{where} env {prefix}{key}", prefix + key, example_secret_value(examples, ns, name, key)))
    return out


# -- the refresher and its exporter -----------------------------------------------

# The refresher's defaults for settings the manifests may leave out
# (refresher/src/config.rs; tests/test_refresher_defaults.py holds them to
# what `refresher once --help` and `refresher exporter --help` say).
REFRESHER_DEFAULTS = {"REFRESH_DEADLINE": "60s", "RATES_KEY": "rates", "RATES_CHANNEL": "rates_updated"}


def is_exporter(container: dict, refresher_image: str) -> bool:
    """A container running `refresher exporter` (the refresher's image)."""
    image = split_image(str(container.get("image", "")))[0].rsplit("/", 1)[-1]
    return image == refresher_image and "exporter" in (container.get("command") or []) + (container.get("args") or [])


def exporter_containers(s: ObjectSet, refresher_image: str) -> list[tuple[Obj, dict]]:
    return [(o, cont) for o in s.objects for _, cont in containers_of(pod_spec(o) or {}) if is_exporter(cont, refresher_image)]
