"""Valkey without a single point of failure (manifests/valkey-ha.md): data
nodes replicated under Sentinels, all in the pods of one workload (the
base's StatefulSet `valkey`: containers `valkey` and `sentinel`). These
rules judge every such topology, a workload whose pods run both a data node
and a Sentinel: the Sentinels' quorum, the ACL users replication and
Sentinel log in as, TLS on every link between them, the pods' spread over
nodes and their disruption budget, the write safety of a primary cut off
from its replicas, and the clients that find the primary through the
Sentinels. A Valkey without Sentinels (components/valkey-single) is held to
the rules of valkey.py only, and to having no replica settings."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .. import redis_url
from ..context import Context
from ..model import Check, Obj, ObjectSet, applied_with, containers_of, deployable, get, pod_spec, rule
from ..valkey_config import POD_NAME_FIELD, SENTINEL_GLOBAL, ValkeyServer, acl_users, pod_names, valkey_servers
from ..workloads import (
    REFRESHER_DEFAULTS,
    certificate_making,
    env_value,
    example_secret_value,
    example_secrets,
    exporter_containers,
    pod_labels,
    replicas_of,
    resolved_values,
    selector_matches,
)
from .networking import disruptions_allowed
from .valkey import (
    PRIMARY_NAME_ENV,
    SENTINELS_ENV,
    VALKEY_URL_ENV,
    certificate_covers,
    certificate_names,
    valkey_behind,
    valkey_tls_secret,
)

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
# The ACL users of a replicated data node, and what each is for.
HA_USERS = {
    "default": "the refresher's",
    "edge": "the edge's",
    "replicator": "the one replicas log in to their primary as (masteruser)",
    "sentinel": "the one the Sentinels log in to data nodes as (sentinel auth-user)",
}
EXPORTER_USER = "exporter"
# Commands every client library sends on connecting; any user may have them.
CONNECTION_COMMANDS = {"ping", "auth", "hello", "client|setinfo", "client|setname"}
# What a replica sends its primary (Valkey's ACL documentation, "ACL rules
# for Sentinel and Replicas": SYNC, PSYNC, REPLCONF, PING).
REPLICATION_NEEDS = {"psync", "replconf", "ping"}
REPLICATION_MAY = REPLICATION_NEEDS | {"sync"}
# What a Sentinel sends a data node (the same documentation): it watches it
# (PING, INFO, ROLE), talks to the other Sentinels through it (PUBLISH and
# SUBSCRIBE on __sentinel__:hello) and fails it over (MULTI, SLAVEOF or
# REPLICAOF, CONFIG REWRITE, CLIENT KILL, EXEC; SCRIPT KILL for a busy one).
SENTINEL_NEEDS = {"ping", "info", "role", "multi", "exec", "publish", "subscribe", "config|rewrite", "client|setname", "client|kill", "script|kill"}
SENTINEL_REPLICAOF = {"slaveof", "replicaof"}
SENTINEL_CHANNEL = "__sentinel__:hello"
EDGE_COMMANDS = {"get", "subscribe"}
EDGE_MAY = EDGE_COMMANDS | {"unsubscribe"}


@dataclass
class Topology:
    """A workload whose pods run Valkey data nodes and Sentinels."""

    obj: Obj
    data: list[ValkeyServer]
    sentinels: list[ValkeyServer]

    @property
    def replicas(self) -> int | None:
        return replicas_of(self.obj)


def topologies(s: ObjectSet) -> list[Topology]:
    """Every workload of the set whose pods run a data node and a Sentinel."""
    by: dict[tuple, tuple[Obj, list, list]] = {}
    for v in valkey_servers(s):
        entry = by.setdefault(v.obj.identity(), (v.obj, [], []))
        entry[2 if v.sentinel else 1].append(v)
    return [Topology(o, d, st) for o, d, st in by.values() if d and st]


def readable(servers: list[ValkeyServer]) -> list[ValkeyServer]:
    """The servers whose config the manifests show (valkey-tls reports the others)."""
    return [v for v in servers if v.lines is not None]


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False


def per_pod(value: str, obj: Obj) -> list[str]:
    """A config value for each pod of a StatefulSet (the pod's name for
    <field:metadata.name>); the value itself when it names no pod."""
    if POD_NAME_FIELD not in value:
        return [value]
    return [value.replace(POD_NAME_FIELD, name) for name in pod_names(obj)]


def unresolved(value: str) -> bool:
    return bool(re.search(r"<[$a-z][^>]*>", value))


# -- ACL rules -------------------------------------------------------------------


@dataclass
class Acl:
    """What an ACL rule list (`user NAME RULES...`) grants, read left to right."""

    on: bool = False
    passwords: list[str] = field(default_factory=list)
    nopass: bool = False
    keys: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    commands: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)


def parse_acl(rules: list[str]) -> Acl:
    a = Acl()
    for r in rules:
        low = r.lower()
        if low == "on":
            a.on = True
        elif low == "off":
            a.on = False
        elif r.startswith(">") or r.startswith("#"):
            a.passwords.append(r[1:] if r.startswith(">") else r)
            a.nopass = False
        elif low == "nopass":
            a.nopass, a.passwords = True, []
        elif low == "resetpass":
            a.nopass, a.passwords = False, []
        elif low == "resetkeys":
            a.keys = []
        elif low == "resetchannels":
            a.channels = []
        elif low == "allkeys" or r.startswith("~") or r.startswith("%"):
            a.keys.append(r)
        elif low == "allchannels" or r.startswith("&"):
            a.channels.append(r)
        elif low in ("allcommands", "+@all"):
            a.categories.add("all")
        elif low in ("nocommands", "-@all"):
            a.commands, a.categories = set(), set()
        elif low.startswith("+@"):
            a.categories.add(low[2:])
        elif low.startswith("-@"):
            a.categories.discard(low[2:])
        elif low.startswith("+"):
            a.commands.add(low[1:])
        elif low.startswith("-"):
            a.commands.discard(low[1:])
        elif low == "reset":
            a = Acl()
        else:
            a.unknown.append(r)
    return a


def acl_problems(a: Acl, needs: set[str], may: set[str], channels: list[str], keys: list[str], why: str) -> list[str]:
    """What a user's ACL grants beyond `may` (plus the connection commands),
    the channels and the key patterns given, or lacks of `needs`."""
    problems = []
    if not a.on:
        problems.append("is not `on`")
    if a.nopass or not a.passwords:
        problems.append("has no password (>…)")
    for r in a.unknown:
        problems.append(f"{r}: a rule this checker does not know")
    for category in sorted(a.categories):
        problems.append(f"+@{category}: grants a whole category of commands; grant them one by one ({why})")
    for granted, needed, what in ((a.keys, keys, "touch keys"), (a.channels, channels, "use a Pub/Sub channel")):
        problems += [f"{r}: may {what} ({why}{'' if needed else ', which needs none'})" for r in granted if r not in needed]
        problems += [f"lacks {r}, which it needs" for r in needed if r not in granted]
    for cmd in sorted(a.commands - may - CONNECTION_COMMANDS):
        problems.append(f"+{cmd}: more than it needs ({why})")
    for cmd in sorted(needs - a.commands):
        problems.append(f"cannot run {cmd}, which it needs")
    return problems


def user_acl(server: ValkeyServer, name: str) -> Acl | None:
    line = acl_users(server).get(name)
    return None if line is None else parse_acl(line.text.split()[2:])


# -- the rules -------------------------------------------------------------------


@rule("valkey-ha-quorum")
def valkey_ha_quorum(ctx: Context, c: Check) -> None:
    """The Sentinels can agree and fail over: a workload running data nodes
    and Sentinels has at least 3 replicas (n); every Sentinel monitors
    exactly one primary (`sentinel monitor NAME HOST PORT Q`) on the data
    nodes' tls-port, with a quorum Q a majority of them (n/2 < Q <= n), and
    all Sentinels the same NAME and Q; every other per-primary option
    (down-after-milliseconds, auth-user, ...) names that primary (Sentinel
    refuses to start otherwise); Sentinels that announce or monitor host
    names resolve them (`sentinel resolve-hostnames yes`) and announce them
    (`sentinel announce-hostnames yes`); the init container that writes the
    configs is told the same n (VALKEY_REPLICAS, when it reads it)."""
    n_topologies = set()
    quorums = set()
    for s in deployable(ctx.sets):
        for topo in topologies(s):
            n_topologies.add(topo.obj.identity())
            n = topo.replicas
            where = topo.obj.ref()
            if n is None or n < 3:
                c.fail(
                    f"{where}: {n} replica(s): Sentinels need at least 3 pods to keep a majority (quorum) and a "
                    f"replica to promote when one pod is lost"
                )
            monitored = set()
            for sentinel in readable(topo.sentinels):
                w = sentinel.where()
                monitors = sentinel.sentinel_lines("monitor")
                if len(monitors) != 1:
                    c.fail(f"{w}: {len(monitors)} `sentinel monitor` line(s); it must monitor exactly one primary")
                    continue
                if len(monitors[0]) != 4:
                    c.fail(f"{w}: `sentinel monitor {' '.join(monitors[0])}` is not NAME HOST PORT QUORUM")
                    continue
                name, host, port, quorum = monitors[0]
                monitored.add((name, quorum))
                if not quorum.isdigit() or n is None or not (n / 2 < int(quorum) <= n):
                    c.fail(
                        f"{w}: quorum {quorum} of `sentinel monitor {name}` is not a majority of the {n} Sentinels "
                        f"(more than {n / 2 if n else '?'} and at most {n}): "
                        + ("a minority could fail over a primary the others still reach" if quorum.isdigit() and n and int(quorum) <= n / 2 else "they could never agree")
                    )
                else:
                    quorums.add(int(quorum))
                data_ports = {v.tls_port() for v in readable(topo.data)}
                if port not in data_ports:
                    c.fail(f"{w}: monitors the primary on port {port}, not the data nodes' tls-port ({', '.join(sorted(p or 'none' for p in data_ports))})")
                for line in sentinel.lines or []:
                    words = line.text.split()
                    if len(words) >= 3 and words[0].lower() == "sentinel" and words[1].lower() not in SENTINEL_GLOBAL | {"monitor"}:
                        if words[2] != name:
                            c.fail(f"{w}: `sentinel {words[1]} {words[2]} …` names a primary it does not monitor ({name}): Sentinel would refuse to start")
                d = sentinel.directives or {}
                names = [v for v in [d.get("sentinel announce-ip", ""), host] if v and not is_ip(v)]
                if names and d.get("sentinel resolve-hostnames") != "yes":
                    c.fail(f"{w}: uses host names ({', '.join(names)}) without `sentinel resolve-hostnames yes`: Sentinel cannot reach them")
                if d.get("sentinel announce-ip") and not is_ip(d["sentinel announce-ip"]) and d.get("sentinel announce-hostnames") != "yes":
                    c.fail(f"{w}: announces a host name without `sentinel announce-hostnames yes`: clients would be given addresses the certificate does not cover")
            if len(monitored) > 1:
                c.fail(f"{where}: its Sentinels monitor different primaries or quorums ({', '.join(sorted(' '.join(m) for m in monitored))})")
            for writer in {id(w): w for v in topo.data + topo.sentinels for w in v.writers}.values():
                told = env_value(s, topo.obj, writer, "VALKEY_REPLICAS")
                if isinstance(told, str) and n is not None and told != str(n):
                    c.fail(f"{where}: init container {writer.get('name')!r} VALKEY_REPLICAS {told!r} is not the {n} replicas: it would ask the wrong peers")
    c.summary = (
        f"{len(n_topologies)} Sentinel topology(ies) of at least 3 pods, each Sentinel monitoring one primary with a majority quorum "
        f"({', '.join(map(str, sorted(quorums))) or 'none'})"
    )


@rule("valkey-ha-acl")
def valkey_ha_acl(ctx: Context, c: Check) -> None:
    """Every data node of a Sentinel topology (one rendered config for all
    its pods) defines the ACL users default (requirepass), edge, replicator
    and sentinel, and exporter where the exporter runs (exporter-acl holds
    its rules); replication logs in as replicator (`masteruser replicator`,
    `masterauth` its password) and the Sentinels as sentinel (`sentinel
    auth-user NAME sentinel`, `sentinel auth-pass` its password), and
    Sentinels require of clients the password they give each other
    (requirepass = sentinel sentinel-pass). replicator may run only what a
    replica sends (PSYNC, SYNC, REPLCONF, PING): no key, no channel, no
    category (+@read, +@write, ...); sentinel only what a Sentinel sends
    (PING, INFO, ROLE, MULTI, EXEC, SLAVEOF/REPLICAOF, CONFIG REWRITE,
    CLIENT SETNAME/KILL, SCRIPT KILL, PUBLISH, SUBSCRIBE) on channel
    __sentinel__:hello only, no key; edge is unchanged: GET of the rates key
    (%R~) and SUBSCRIBE to the rates channel, and the connection commands."""
    refresher_image = ctx.image_built_from("refresher")
    checked = set()
    for s in deployable(ctx.sets):
        exporters = exporter_containers(s, refresher_image)
        for topo in topologies(s):
            for data in readable(topo.data):
                w = data.where()
                checked.add(topo.obj.identity())
                users = acl_users(data)
                needed = dict(HA_USERS)
                if exporters:
                    needed[EXPORTER_USER] = "the exporter's (components/monitoring)"
                for name, what in needed.items():
                    label = f"[{s.label}] " if name == EXPORTER_USER else ""  # the others do not depend on the overlay
                    if name not in users:
                        c.fail(f"{label}{w}: defines no ACL user {name}, {what}")
                    elif users[name].unset:
                        c.fail(f"{label}{w}: ACL user {name} is never written: {', '.join(users[name].unset)} not set")
                default = user_acl(data, "default")
                if default is not None and (default.nopass or not default.passwords):
                    c.fail(f"{w}: ACL user default has no password")
                writer = data.writers[0] if data.writers else {}
                key = env_value(s, topo.obj, writer, "RATES_KEY") or REFRESHER_DEFAULTS["RATES_KEY"]
                channel = env_value(s, topo.obj, writer, "RATES_CHANNEL") or REFRESHER_DEFAULTS["RATES_CHANNEL"]
                edge = user_acl(data, "edge")
                if edge is not None:
                    for problem in acl_problems(edge, EDGE_COMMANDS, EDGE_MAY, [f"&{channel}"], [f"%R~{key}"], "the edge GETs the rates key and SUBSCRIBEs to the rates channel"):
                        c.fail(f"{w}: ACL user edge: {problem}")
                replicator = user_acl(data, "replicator")
                if replicator is not None:
                    for problem in acl_problems(replicator, REPLICATION_NEEDS, REPLICATION_MAY, [], [], "replication sends PSYNC, REPLCONF and PING only"):
                        c.fail(f"{w}: ACL user replicator: {problem}")
                sentinel_user = user_acl(data, "sentinel")
                if sentinel_user is not None:
                    problems = acl_problems(
                        sentinel_user, SENTINEL_NEEDS, SENTINEL_NEEDS | SENTINEL_REPLICAOF, [f"&{SENTINEL_CHANNEL}"], [], "what a Sentinel sends a data node"
                    )
                    if not sentinel_user.commands & SENTINEL_REPLICAOF:
                        problems.append("cannot run SLAVEOF or REPLICAOF, with which Sentinel fails over")
                    for problem in problems:
                        c.fail(f"{w}: ACL user sentinel: {problem}")
                d = data.directives or {}
                if d.get("masteruser") != "replicator":
                    c.fail(
                        f"{w}: masteruser is {d.get('masteruser', 'not set')!r}: replication must log in as ACL user replicator "
                        f"(`masteruser replicator`), not as default"
                    )
                if replicator is not None and d.get("masterauth") not in replicator.passwords:
                    c.fail(f"{w}: masterauth is not ACL user replicator's password: replicas could not log in to their primary")
                for sentinel in readable(topo.sentinels):
                    sw = sentinel.where()
                    auth_users = sentinel.sentinel_lines("auth-user")
                    if not auth_users or auth_users[-1][1:] != ["sentinel"]:
                        got = " ".join(auth_users[-1][1:]) if auth_users else "none"
                        c.fail(f"{sw}: `sentinel auth-user` is {got!r}: Sentinel must log in to the data nodes as ACL user sentinel")
                    auth_passes = sentinel.sentinel_lines("auth-pass")
                    auth_pass = auth_passes[-1][1] if auth_passes and len(auth_passes[-1]) > 1 else None
                    if sentinel_user is not None and auth_pass not in sentinel_user.passwords:
                        c.fail(f"{sw}: `sentinel auth-pass` is not ACL user sentinel's password on the data nodes")
                    sd = sentinel.directives or {}
                    if not sd.get("requirepass"):
                        c.fail(f"{sw}: no requirepass: anyone in reach could reconfigure the Sentinels (SENTINEL SET, FAILOVER)")
                    elif sd.get("sentinel sentinel-pass") != sd.get("requirepass"):
                        c.fail(f"{sw}: `sentinel sentinel-pass` is not its requirepass: the Sentinels could not log in to each other")
    c.summary = f"{len(checked)} replicated Valkey(s) with users default, edge, replicator, sentinel (and exporter), replication and Sentinel logged in as their own users"


@rule("valkey-ha-tls")
def valkey_ha_tls(ctx: Context, c: Check) -> None:
    """TLS on every link of a Sentinel topology: replication
    (`tls-replication yes` on every data node), Sentinel to data node and to
    Sentinel (`tls-replication yes` on every Sentinel, which serves on its
    tls-port only, `port 0`), and clients to Sentinel (every
    VALKEY_SENTINELS URL is rediss://, in every overlay); and the
    certificate covers the names peers reach each other by: each pod's name
    as its data node announces it (replica-announce-ip) and as its Sentinel
    does (sentinel announce-ip), which Sentinel gives clients for the
    primary. valkey-certificate holds it to the clients' names."""
    links = set()
    for s in deployable(ctx.sets):
        applied = applied_with(ctx.sets, s)
        examples = example_secrets(ctx.sets, s)
        topos = topologies(s)
        for topo in topos:
            for v in readable(topo.data + topo.sentinels):
                w, d = v.where(), v.directives or {}
                links.add((topo.obj.identity(), v.container.get("name")))
                if d.get("tls-replication") != "yes":
                    what = "Sentinel would connect to the data nodes and the other Sentinels in clear" if v.sentinel else "replication (the data set, passwords) would cross the network in clear"
                    c.fail(f"{w}: no `tls-replication yes`: {what}")
                if v.sentinel and (d.get("port", "26379") != "0" or v.tls_port() is None):
                    c.fail(f"{w}: the Sentinel must serve TLS only: `port 0` and a tls-port")
                announce = d.get("sentinel announce-ip" if v.sentinel else "replica-announce-ip")
                directive = "sentinel announce-ip" if v.sentinel else "replica-announce-ip"
                if not announce:
                    c.fail(f"{w}: no {directive}: its peers would know it by its pod's address, which no certificate covers")
                    continue
                secret, _ = valkey_tls_secret(s, v)
                cert = certificate_making(applied, v.obj.namespace, secret) if secret else None
                if cert is None:
                    continue  # valkey-certificate reports it
                names = per_pod(announce, topo.obj)
                if any(unresolved(name) for name in names):
                    c.fail(f"{w}: cannot tell which name it announces ({directive} {announce})")
                    continue
                missing = [name for name in names if not is_ip(name) and not certificate_covers(cert, name)]
                if missing:
                    c.fail(
                        f"[{s.label}] {cert.ref()}: {certificate_names(cert)} do not cover {', '.join(map(repr, missing))} "
                        f"({directive} of {w}): its peers would refuse its certificate"
                    )
        if not topos:
            continue
        for o in s.objects:
            for where, variable, value in resolved_values(s, examples, o):
                if variable != SENTINELS_ENV or not value:
                    continue
                url = redis_url.parse(value)
                if url is not None and not url.tls:
                    c.fail(f"[{s.label}] {where}: {url.redacted()} is a {url.scheme}:// URL: the Sentinels serve TLS only; use rediss://")
    c.summary = f"{len(links)} data node(s) and Sentinel(s) replicate and talk over TLS, announcing names their certificate covers"


@rule("valkey-ha-spread")
def valkey_ha_spread(ctx: Context, c: Check) -> None:
    """A node lost or drained takes one pod of a Sentinel topology at most:
    its pods are spread over nodes (kubernetes.io/hostname), by a required
    podAntiAffinity term on its own pods or by a topologySpreadConstraint
    with maxSkew 1 and whenUnsatisfiable DoNotSchedule; and one
    PodDisruptionBudget covers them that lets exactly one go at a time
    (maxUnavailable: 1, or minAvailable: replicas - 1)."""
    n = set()
    for s in deployable(ctx.sets):
        for topo in topologies(s):
            o, spec, labels = topo.obj, pod_spec(topo.obj) or {}, pod_labels(topo.obj) or {}
            n.add(o.identity())
            anti = get(spec, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", default=[]) or []
            spread = spec.get("topologySpreadConstraints") or []
            by_affinity = any(
                t.get("topologyKey") == HOSTNAME_TOPOLOGY
                and selector_matches(t.get("labelSelector") or {}, labels)
                and bool(t.get("labelSelector"))
                and (not t.get("namespaces") or o.namespace in t["namespaces"])
                for t in anti
            )
            by_spread = any(
                t.get("topologyKey") == HOSTNAME_TOPOLOGY
                and t.get("maxSkew") == 1
                and t.get("whenUnsatisfiable") == "DoNotSchedule"
                and bool(t.get("labelSelector"))
                and selector_matches(t.get("labelSelector") or {}, labels)
                for t in spread
            )
            if not (by_affinity or by_spread):
                c.fail(
                    f"{o.ref()}: its pods are not spread over nodes ({HOSTNAME_TOPOLOGY}): give it a required "
                    f"podAntiAffinity term on its own pods, or a topologySpreadConstraint with maxSkew 1 and "
                    f"whenUnsatisfiable DoNotSchedule; otherwise one node may hold two Sentinels and its loss the quorum"
                )
            budgets = [
                b for b in s.of_kind("PodDisruptionBudget") if b.namespace == o.namespace and selector_matches(get(b.doc, "spec", "selector", default={}) or {}, labels)
            ]
            if not budgets:
                c.fail(f"{o.ref()}: no PodDisruptionBudget covers its pods: a drain may evict them all at once")
            for b in budgets:
                allowed = disruptions_allowed(get(b.doc, "spec", default={}) or {}, topo.replicas or 0)
                if allowed != 1:
                    c.fail(
                        f"{b.ref()}: lets {allowed} of the {topo.replicas} pods of {o.ref()} go at once, not 1: "
                        + ("a drain would never finish" if allowed is not None and allowed < 1 else "the pods left could lose the primary and the quorum")
                        + " (maxUnavailable: 1)"
                    )
    c.summary = f"{len(n)} Sentinel topology(ies) spread one pod per node, a drain taking one pod at a time"


@rule("valkey-ha-writes")
def valkey_ha_writes(ctx: Context, c: Check) -> None:
    """A primary cut off from its replicas stops taking writes, which a
    failover elsewhere would discard (the day's One-Frame call count among
    them): every data node of a Sentinel topology of n pods sets
    `min-replicas-to-write` of at least 1, and at most n - 2 so that writes
    go on while one pod is away (the PodDisruptionBudget's one), with a
    positive `min-replicas-max-lag`. A Valkey without Sentinels has no
    replica to wait for and sets none (it would refuse every write)."""
    n = set()
    for s in deployable(ctx.sets):
        replicas = {(topo.obj.identity(), v.container.get("name")): topo.replicas for topo in topologies(s) for v in topo.data}
        for v in readable(valkey_servers(s)):
            if v.sentinel:
                continue
            d, w, key = v.directives or {}, v.where(), (v.obj.identity(), v.container.get("name"))
            value = d.get("min-replicas-to-write", "0")
            count = int(value) if value.isdigit() else None
            if key not in replicas:
                if count:
                    c.fail(f"{w}: min-replicas-to-write {value} without replicas: it would refuse every write")
                continue
            n.add(key)
            pods = replicas[key] or 0
            if count is None or count < 1:
                c.fail(
                    f"{w}: min-replicas-to-write {value}: a primary cut off from its replicas would go on taking writes "
                    f"that the Sentinels' failover discards; set min-replicas-to-write 1"
                )
            elif count > pods - 2:
                c.fail(f"{w}: min-replicas-to-write {value} of {pods} pods: writes would stop while one pod is away (a drain, a restart); at most {pods - 2}")
            lag = d.get("min-replicas-max-lag", "10")
            if not lag.isdigit() or int(lag) < 1:
                c.fail(f"{w}: min-replicas-max-lag {lag!r}: give the seconds within which a replica must have acknowledged (e.g. 10)")
    c.summary = f"{len(n)} replicated data node(s) refuse writes without a replica; no single Valkey waits for one"


@rule("valkey-sentinel-clients")
def valkey_sentinel_clients(ctx: Context, c: Check) -> None:
    """The clients find the primary through the Sentinels, where there are
    Sentinels, and only there. In a set with a Sentinel topology every
    container with VALKEY_URL (the refresher, the exporter) also reads
    VALKEY_SENTINELS (behind VALKEY_URL's Service are replicas too, which
    refuse writes) and VALKEY_PRIMARY_NAME, the name the Sentinels monitor;
    the Sentinels' URL (the example Secret's) names a Service of the set
    whose port goes to a Sentinel's tls-port, with the password the
    Sentinels require. In a set without Sentinels (components/valkey-single)
    no container reads VALKEY_SENTINELS."""
    n = set()
    for s in deployable(ctx.sets):
        examples = example_secrets(ctx.sets, s)
        topos = topologies(s)
        monitored = {m[0] for t in topos for v in readable(t.sentinels) for m in v.sentinel_lines("monitor") if m}
        requirepass = {(v.directives or {}).get("requirepass") for t in topos for v in readable(t.sentinels)}
        for o in s.objects:
            spec = pod_spec(o)
            if spec is None:
                continue
            values = resolved_values(s, examples, o)
            for _, cont in containers_of(spec):
                names = {e.get("name") for e in cont.get("env") or []}
                where = f"{o.ref()}: container {cont.get('name')!r}"
                if SENTINELS_ENV in names and not topos:
                    c.fail(
                        f"[{s.label}] {where}: reads {SENTINELS_ENV}, but no Sentinel runs in this set: drop it and "
                        f"{PRIMARY_NAME_ENV} (components/valkey-single and valkey-single/monitoring do)"
                    )
                    continue
                if not topos or not names & {VALKEY_URL_ENV, SENTINELS_ENV}:
                    continue
                n.add((o.identity(), cont.get("name")))
                if SENTINELS_ENV not in names:
                    c.fail(
                        f"[{s.label}] {where}: reads {VALKEY_URL_ENV} without {SENTINELS_ENV}: behind its Service are replicas too, "
                        f"which refuse writes; give it the Sentinels' URL and {PRIMARY_NAME_ENV}"
                    )
                    continue
                primary = env_value(s, o, cont, PRIMARY_NAME_ENV)
                if not isinstance(primary, str):
                    c.fail(f"[{s.label}] {where}: no literal {PRIMARY_NAME_ENV}: the Sentinels monitor {', '.join(sorted(monitored))}")
                elif primary not in monitored:
                    c.fail(f"[{s.label}] {where}: {PRIMARY_NAME_ENV} {primary!r} is not the name the Sentinels monitor ({', '.join(sorted(monitored))})")
                url_text = next((v for w, name, v in values if name == SENTINELS_ENV and w.startswith(where + " ")), None)
                url = redis_url.parse(url_text or "")
                if url is None:
                    continue  # unknown (a Secret no example describes: references reports it)
                svc, why = valkey_behind(s, url.bare_host, url.port, sentinel=True)
                if svc is None:
                    c.fail(f"[{s.label}] {where}: {SENTINELS_ENV} {url.redacted()} reaches no Sentinel: {why}")
                password = url.userinfo.partition(":")[2]
                for token in requirepass:
                    m = re.fullmatch(r"<secret:([^/>]+)/([^>]+)>", token or "")
                    expected = example_secret_value(examples, o.namespace, m.group(1), m.group(2)) if m else token
                    if expected is not None and password != expected:
                        c.fail(f"[{s.label}] {where}: {SENTINELS_ENV} {url.redacted()} does not log in with the password the Sentinels require ({token})")
    c.summary = f"{len(n)} client(s) ask the Sentinels for the primary by the name they monitor; none where there are no Sentinels"
