"""The SpinApp and what it runs on: the apply order that makes its
executor exist first, the executors (RuntimeClass or runtime-shim's
`spinImage`), its replicas, its variables against spin.toml, the hosts it may
reach, the Valkey key and channel it shares, and its key-value stores."""

from __future__ import annotations

import re

from ..context import CLUSTER_DIR, Context, spin_variables
from ..kustomize import CLUSTER_SCOPED
from ..model import Check, applied_before, containers_of, deployable, get, pod_spec, rule
from ..valkey_config import valkey_servers
from ..workloads import (
    REFRESHER_DEFAULTS,
    UNRESOLVED,
    env_value,
    example_secret,
    example_secrets,
    exporter_containers,
    mount_holding,
    spinapp_executors,
    spinapp_variable,
)
from .valkey import valkey_behind

# The containerd runtime handler K3s registers when it finds
# containerd-shim-spin-v2 on a node (manifests/README.md, "Nodes").
SPIN_SHIM_HANDLER = "spin"

# Key-value store types of Spin 3.6.3, the Spin inside containerd-shim-spin
# 0.24 (spin-operator passes `type` through unchecked). `spin` is SQLite, in a
# file when given a `path`.
KV_STORE_TYPES = {"spin", "redis", "azure_cosmos", "aws_dynamo"}

# Volume names spin-operator v0.6.1 adds to a SpinApp's pod itself (runtime
# config Secret, CA bundle): a spec.volumes entry of the same name makes an
# invalid Deployment (internal/controller/deployment.go).
SPINAPP_RESERVED_VOLUMES = {"spin-runtime-config", "spin-ca"}

OUTBOUND_HOST = re.compile(r"rediss?://\{\{\s*valkey_host\s*\}\}")


@rule("apply-order")
def apply_order(ctx: Context, c: Check) -> None:
    """What an app needs exists before it is applied. Step 1
    (manifests/cluster) creates the namespaces and every SpinApp's executor, in
    the SpinApp's namespace (spin-operator looks only there, and its webhook
    rejects a SpinApp whose executor does not exist yet; in one apply kustomize
    emits the SpinApp first). An app holds nothing cluster-wide (a
    ClusterIssuer included) and no Namespace, so `kubectl delete -k` of it
    leaves them and the Secrets."""
    sets, cluster_kinds = ctx.sets, ctx.schemas.cluster_kinds
    n = set()
    for s in deployable(sets, from_step=2):
        earlier = applied_before(sets, s)
        for o in s.objects:
            if o.kind in CLUSTER_SCOPED or o.kind in cluster_kinds:
                what = "deleting it deletes the namespace's Secrets and everything else in it" if o.kind == "Namespace" else "it is cluster-wide"
                c.fail(
                    f"{o.ref()}: belongs in manifests/{CLUSTER_DIR}/, not in an app: "
                    f"`kubectl delete -k` of the app would delete it, and {what}"
                )
            elif o.namespace is None:
                c.fail(f"{o.ref()}: has no namespace; it would land in kubectl's current namespace")
        for ns in sorted({o.namespace for o in s.objects if o.kind not in CLUSTER_SCOPED and o.namespace}):
            if not any(t.find("Namespace", None, ns) for t in earlier):
                c.fail(f"namespace {ns} of the app is not created by manifests/{CLUSTER_DIR}, which is applied first")
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            executor = get(app.doc, "spec", "executor")
            ns = app.namespace or "default"
            if not executor:
                c.fail(f"{app.ref()}: spec.executor is missing")
            elif any(t.find("SpinAppExecutor", ns, executor) for t in earlier):
                continue
            elif s.find("SpinAppExecutor", ns, executor):
                c.fail(
                    f"{app.ref()}: SpinAppExecutor {executor!r} is created by the same apply as the SpinApp; "
                    f"kustomize emits the SpinApp first and spin-operator's webhook rejects it while the executor "
                    f"does not exist: move the executor to manifests/{CLUSTER_DIR}/"
                )
            else:
                elsewhere = sorted({e.ref() for t in earlier + [s] for e in t.of_kind("SpinAppExecutor") if e.name == executor})
                hint = f"; found only {', '.join(elsewhere)}" if elsewhere else ""
                c.fail(
                    f"{app.ref()}: SpinAppExecutor {executor!r} does not exist in namespace {ns} "
                    f"after manifests/{CLUSTER_DIR}{hint}"
                )
    c.summary = (
        f"manifests/{CLUSTER_DIR} creates the namespace and the executor of {len(n)} SpinApp(s) before the app; "
        f"the apps hold nothing cluster-wide"
    )


@rule("runtime")
def runtime(ctx: Context, c: Check) -> None:
    """The executor of every SpinApp names in runtimeClassName a RuntimeClass
    that exists once the app is applied, and that class's handler is `spin`,
    the one K3s registers for containerd-shim-spin-v2."""
    used = set()
    for _, applied, app, ex in spinapp_executors(ctx.sets):
        name = get(ex.doc, "spec", "deploymentConfig", "runtimeClassName") if ex else None
        if not name:
            continue  # no executor (apply-order reports it), or a spinImage executor
        rc = next((r for t in applied for r in t.of_kind("RuntimeClass") if r.name == name), None)
        if rc is None:
            known = sorted({r.name for t in applied for r in t.of_kind("RuntimeClass")})
            c.fail(
                f"{ex.ref()}: runtimeClassName {name!r} matches no RuntimeClass of the manifests "
                f"(RuntimeClasses: {', '.join(known) or 'none'}); the pods of {app.ref()} would never start"
            )
            continue
        used.add(name)
        if rc.doc.get("handler") != SPIN_SHIM_HANDLER:
            c.fail(
                f"{rc.ref()}: handler {rc.doc.get('handler')!r} is not {SPIN_SHIM_HANDLER!r}, the containerd runtime "
                f"K3s registers for containerd-shim-spin-v2; the pods of {app.ref()} would not start"
            )
    c.summary = f"RuntimeClass(es) {', '.join(sorted(used)) or 'none'} exist and use handler {SPIN_SHIM_HANDLER!r}"


@rule("spin-image")
def spin_image_executor(ctx: Context, c: Check) -> None:
    """A SpinApp on a `spinImage` executor (runtime-shim) can start: the
    container pulls the app itself, anonymously (spin-operator passes no
    imagePullSecrets on), over HTTPS trusting the CA bundle the executor
    mounts (installDefaultCACerts or caCertSecret), and runtime-shim accepts
    only the runtime config it implements: key-value store `default` of type
    `spin`, no SQLite databases, LLM or runtime config from a Secret."""
    n = set()
    for s, _, app, ex in spinapp_executors(ctx.sets):
        executor = get(app.doc, "spec", "executor")
        config = get(ex.doc, "spec", "deploymentConfig", default={}) if ex else {}
        if not config.get("spinImage"):
            continue
        n.add(app.identity())
        where = f"[{s.label}] {app.ref()} (executor {executor!r}, spinImage)"
        if get(app.doc, "spec", "imagePullSecrets"):
            c.fail(f"{where}: imagePullSecrets do not reach the container, which pulls the app anonymously; make the app's image public")
        if not config.get("installDefaultCACerts") and not config.get("caCertSecret"):
            c.fail(f"{ex.ref()}: neither installDefaultCACerts nor caCertSecret: the container has no CA bundle to pull the app over HTTPS")
        runtime_config = get(app.doc, "spec", "runtimeConfig", default={}) or {}
        for key in ("loadFromSecret", "sqliteDatabases", "llmCompute"):
            if runtime_config.get(key):
                c.fail(f"{where}: runtimeConfig.{key} is not supported by runtime-shim, which would refuse to start")
        for store in runtime_config.get("keyValueStores") or []:
            if (store.get("name"), store.get("type")) != ("default", "spin"):
                c.fail(
                    f"{where}: key-value store {store.get('name')!r} of type {store.get('type')!r}: runtime-shim "
                    f"provides only 'default' of type 'spin', and would refuse to start"
                )
    c.summary = f"{len(n)} SpinApp(s) on a spinImage executor: public app image, CA bundle, runtime config runtime-shim accepts"


@rule("replicas")
def replicas(ctx: Context, c: Check) -> None:
    """A SpinApp either fixes its pod count or leaves it to an autoscaler.
    Without enableAutoscaling it runs at least one pod (replicas >= 1); with
    enableAutoscaling: true it sets no replicas (0 reads as unset): spin-operator
    v0.6.1's webhook refuses both (internal/webhook/spinapp_validating.go,
    validateReplicas). The autoscaler-* rules below hold the autoscaler itself
    to the SpinApp: one per autoscaled SpinApp, aimed at its Deployment."""
    fixed, autoscaled = set(), set()
    for s in ctx.sets:
        for app in s.of_kind("SpinApp"):
            if get(app.doc, "spec", "enableAutoscaling") is True:
                autoscaled.add(app.identity())
                if get(app.doc, "spec", "replicas") not in (None, 0):
                    c.fail(
                        f"{app.ref()}: replicas is {get(app.doc, 'spec', 'replicas')!r} with enableAutoscaling: true; "
                        f"spin-operator refuses replicas when an autoscaler owns the count (drop it)",
                        obj=app,
                    )
                continue
            fixed.add(app.identity())
            count = get(app.doc, "spec", "replicas")
            if not isinstance(count, int) or count < 1:
                got = "missing" if count is None else f"{count!r}"
                c.fail(f"{app.ref()}: replicas is {got}; it must be at least 1 unless enableAutoscaling is true", obj=app)
    c.summary = f"{len(fixed)} SpinApp(s) with a fixed count of at least one replica, {len(autoscaled)} autoscaled without replicas"


@rule("variables")
def variables(ctx: Context, c: Check) -> None:
    """The SpinApp supplies every variable spin.toml requires, each once,
    with a value or valueFrom, and nothing spin.toml does not declare."""
    declared = spin_variables(ctx.spin)
    required = sorted(n for n, d in declared.items() if d.get("required") is True)
    n = set()
    for s in ctx.sets:
        for app in s.of_kind("SpinApp"):
            n.add(app.identity())
            supplied = {}
            for var in get(app.doc, "spec", "variables", default=[]) or []:
                name = var.get("name")
                if name in supplied:
                    c.fail(f"{app.ref()}: variable {name!r} is given twice")
                supplied[name] = var
                if name not in declared:
                    c.fail(
                        f"{app.ref()}: variable {name!r} is not declared in spin.toml [variables] "
                        f"(declared: {', '.join(sorted(declared))})"
                    )
                if "value" not in var and "valueFrom" not in var:
                    c.fail(f"{app.ref()}: variable {name!r} has neither value nor valueFrom")
            for name in required:
                if name not in supplied:
                    c.fail(
                        f"{app.ref()}: spin.toml variable {name!r} is required but the SpinApp "
                        f"does not supply it in spec.variables"
                    )
    c.summary = f"{len(n)} SpinApp(s) supply the required {', '.join(required) or '(none)'} and only declared variables"


@rule("outbound")
def outbound(ctx: Context, c: Check) -> None:
    """The components may reach Valkey and nothing else: every
    allowed_outbound_hosts entry of spin.toml is redis://{{ valkey_host }} or
    (TLS) rediss://{{ valkey_host }}, and the SpinApp's valkey_host is a
    Valkey Service of its namespace (NAME[.<ns>[.svc[.cluster.local]]]:PORT,
    NAME valkey or valkey-read) whose port goes to a Valkey data node's
    tls-port, the host the example Secret's edge-url connects to."""
    spin = ctx.spin
    components = spin.get("component") or {}
    if "valkey_host" not in spin_variables(spin):
        c.fail("spin.toml does not declare the variable valkey_host")
    for cid, comp in sorted(components.items()):
        for host in comp.get("allowed_outbound_hosts") or []:
            if not OUTBOUND_HOST.fullmatch(str(host)):
                c.fail(
                    f"spin.toml [component.{cid}] allowed_outbound_hosts has {host!r}; the components may reach "
                    f"only Valkey: use exactly 'redis://{{{{ valkey_host }}}}' or 'rediss://{{{{ valkey_host }}}}'"
                )
    hosts = set()
    for s in deployable(ctx.sets):
        examples = example_secrets(ctx.sets, s)
        for app in s.of_kind("SpinApp"):
            ns = app.namespace or "default"
            var = spinapp_variable(app, "valkey_host")
            if var is None:
                continue  # reported by the variables check
            value = var.get("value")
            if value is None:
                c.fail(f"{app.ref()}: valkey_host must be an inline value (it is not secret), so it can be checked")
                continue
            pattern = rf"(valkey|valkey-read)(\.{re.escape(ns)}(\.svc(\.cluster\.local)?)?)?:(\d+)"
            m = re.fullmatch(pattern, value)
            if not m:
                c.fail(
                    f"{app.ref()}: valkey_host {value!r} is not the Valkey Service of namespace {ns} "
                    f"(expected e.g. valkey-read.{ns}.svc.cluster.local:6379)"
                )
            else:
                svc, why = valkey_behind(s, value.rsplit(":", 1)[0], int(m.group(5)), sentinel=False)
                if svc is None:
                    c.fail(f"[{s.label}] {app.ref()}: valkey_host {value!r} reaches no Valkey: {why}")
            hosts.add(value)
            # The example edge-url must point at the same host, or copying it would break the edge.
            secret_ref = get(spinapp_variable(app, "valkey_url") or {}, "valueFrom", "secretKeyRef") or {}
            example = example_secret(examples, ns, secret_ref.get("name")) if secret_ref else None
            url = get(example.doc, "stringData", secret_ref.get("key")) if example else None
            if url:
                m = re.fullmatch(r"rediss?://[^@/]*@([^/?#]+)/?.*", url)
                if not m or m.group(1) != value:
                    c.fail(f"[{s.label}] {example.ref()}: {secret_ref.get('key')}'s host is not the SpinApp's valkey_host ({value})")
    n_hosts = sum(len(comp.get("allowed_outbound_hosts") or []) for comp in components.values())
    c.summary = f"{len(components)} component(s), {n_hosts} outbound host(s), all redis[s]://{{{{ valkey_host }}}} = {', '.join(sorted(hosts))}"


@rule("rates-contract")
def rates_contract(ctx: Context, c: Check) -> None:
    """The Valkey key and channel are the same everywhere: the
    SpinApp's rates_key/rates_channel (or spin.toml's defaults), the key and
    channel Valkey's ACL grants the edge (RATES_KEY/RATES_CHANNEL of the
    containers of each Valkey workload of the namespace, the base's
    StatefulSet or components/valkey-single's Deployment), the ones the
    refresher writes (its RATES_KEY/RATES_CHANNEL, or its defaults), and the
    key the exporter (components/monitoring) reads."""
    declared = spin_variables(ctx.spin)
    refresher_image = ctx.image_built_from("refresher")
    agreed = set()
    pairs = (("rates_key", "RATES_KEY"), ("rates_channel", "RATES_CHANNEL"))
    for s in deployable(ctx.sets):
        for app in s.of_kind("SpinApp"):
            ns = app.namespace
            supplied = {v.get("name"): v for v in get(app.doc, "spec", "variables", default=[]) or []}
            expected = {}
            for var, env in pairs:
                v = supplied.get(var)
                if v is not None and "value" not in v:
                    c.fail(f"{app.ref()}: {var} must be an inline value (it is not secret), so it can be checked")
                    continue
                expected[env] = str(v["value"]) if v is not None else str(declared.get(var, {}).get("default"))
            valkeys = list({v.obj.identity(): v.obj for v in valkey_servers(s) if not v.sentinel and v.obj.namespace == ns}.values())
            if not valkeys:
                c.fail(f"{app.ref()}: there is no Valkey (a workload running valkey-server) in namespace {ns}")
            for valkey in valkeys:
                acl = [cont for _, cont in containers_of(pod_spec(valkey) or {}) if any(env_value(s, valkey, cont, env) is not None for _, env in pairs)]
                if not acl:
                    c.fail(f"{valkey.ref()}: no container sets RATES_KEY/RATES_CHANNEL, from which the edge's ACL is written")
                for cont in acl:
                    for env, want in expected.items():
                        got = env_value(s, valkey, cont, env)
                        if got != want:
                            c.fail(
                                f"{valkey.ref()}: container {cont.get('name')!r} {env} {got if got is UNRESOLVED else repr(got)} "
                                f"(what Valkey's ACL lets the edge use) is not the SpinApp's {env.lower()} {want!r} ({app.ref()})"
                            )
            readers = [(job, cont, "writes") for job in s.of_kind("CronJob") for _, cont in containers_of(pod_spec(job) or {})]
            readers += [(o, cont, "reads") for o, cont in exporter_containers(s, refresher_image)]
            for job, cont, verb in readers:
                if job.namespace != ns:
                    continue
                for env, want in expected.items():
                    if verb == "reads" and env != "RATES_KEY":
                        continue  # the exporter subscribes to nothing
                    got = env_value(s, job, cont, env)
                    got = REFRESHER_DEFAULTS[env] if got is None else got
                    if got != want:
                        c.fail(
                            f"{job.ref()}: container {cont.get('name')!r} {verb} {env} {got if got is UNRESOLVED else repr(got)}, "
                            f"not the SpinApp's {env.lower()} {want!r} ({app.ref()})"
                        )
            agreed.add(f"{expected.get('RATES_KEY')}/{expected.get('RATES_CHANNEL')}")
    c.summary = f"key/channel {', '.join(sorted(agreed))} agree across the SpinApp, Valkey's ACL, the refresher and the exporter"


@rule("kv-store")
def kv_stores(ctx: Context, c: Check) -> None:
    """Every key-value store of a SpinApp has a type Spin 3.6.3 knows
    (SQLite is `spin`); a `spin` store has an absolute path on a writable
    volume mounted into the pod, which every volumeMount names; no volume
    takes a name spin-operator adds itself (spin-runtime-config, spin-ca)."""
    n = set()
    for s in ctx.sets:
        for app in s.of_kind("SpinApp"):
            volumes = {v.get("name") for v in get(app.doc, "spec", "volumes", default=[]) or []}
            mounts = get(app.doc, "spec", "volumeMounts", default=[]) or []
            for name in sorted(volumes & SPINAPP_RESERVED_VOLUMES):
                c.fail(f"{app.ref()}: volume {name!r} clashes with the volume spin-operator adds to the pod under that name; rename it")
            for m in mounts:
                if m.get("name") not in volumes:
                    c.fail(f"{app.ref()}: volumeMount {m.get('name')!r} names no volume of spec.volumes")
            if get(app.doc, "spec", "runtimeConfig", "loadFromSecret"):
                continue  # the runtime config is in a Secret: not in the manifests
            for store in get(app.doc, "spec", "runtimeConfig", "keyValueStores", default=[]) or []:
                name, kind = store.get("name"), store.get("type")
                where = f"{app.ref()}: key-value store {name!r}"
                n.add((app.identity(), name))
                if kind not in KV_STORE_TYPES:
                    c.fail(
                        f"{where} has type {kind!r}, which Spin 3.6.3 (containerd-shim-spin 0.24) does not know "
                        f"({', '.join(sorted(KV_STORE_TYPES))}; SQLite is 'spin')"
                    )
                    continue
                if kind != "spin":
                    continue
                option = next((o for o in store.get("options") or [] if o.get("name") == "path"), None)
                path = None if option is None else option.get("value")
                if path is None:
                    c.fail(f"{where}: needs an inline path option, a file on a mounted volume (without one the store lives in memory)")
                    continue
                if not str(path).startswith("/"):
                    c.fail(
                        f"{where}: path {path!r} must be absolute (Spin resolves a relative one against the runtime "
                        f"config file's directory, / under containerd-shim-spin: on no volume)"
                    )
                    continue
                mount = mount_holding(mounts, str(path), itself=False)
                if mount is None:
                    where_mounted = ", ".join(str(m.get("mountPath")) for m in mounts) or "none"
                    c.fail(f"{where}: path {path!r} is on no volumeMount of the SpinApp (mounted: {where_mounted})")
                elif mount.get("readOnly"):
                    c.fail(f"{where}: path {path!r} is on the read-only volumeMount {mount.get('mountPath')!r}")
    c.summary = f"{len(n)} key-value store(s) of a known type; SQLite files on mounted volumes"
