"""The exporter's Valkey user: it may read what `refresher exporter`
reads, and nothing more."""

from __future__ import annotations

import re

from ...context import Context
from ...model import Check, Obj, ObjectSet, containers_of, deployable, get, pod_spec, rule
from ...valkey_config import written_files
from ...workloads import REFRESHER_DEFAULTS, env_value, example_secrets, exporter_containers

# The exporter's Valkey ACL user. It reads the snapshot (RATES_KEY), rates:seq,
# the per-day call counters and the last run's hash, with GET and HGETALL, and
# the node's replication (INFO, which reads no key); the connection commands
# are what a client library sends on connecting.
EXPORTER_USER = "exporter"
EXPORTER_KEY_PATTERNS = ("rates:seq", "oneframe:calls:*", "refresher:last-run")  # and RATES_KEY
EXPORTER_COMMANDS = {"get", "hgetall", "info"}
CONNECTION_COMMANDS = {"ping", "auth", "hello", "client|setinfo", "client|setname"}


def valkey_acl_users(s: ObjectSet, obj: Obj, container: dict) -> dict[str, tuple[list[str], list[str]] | str]:
    """The ACL users a container's shell script writes into a config file
    with `printf 'user NAME RULES...\\n' "$VAR"...` (valkey_config.py):
    NAME -> (rules, names of the variables the line uses that the container
    does not set), each `"$VAR"` replaced by the container's value (a
    Secret's by <secret:...>), as printf would write them; or "" -> the
    reason the script cannot be read."""
    files, problem = written_files(s, obj, container)
    users: dict[str, tuple[list[str], list[str]] | str] = {}
    for lines in files.values():
        for line in lines:
            words = line.text.split()
            if len(words) >= 2 and words[0] == "user":
                users[words[1]] = (words[2:], list(line.unset))
    if problem and not users:
        users[""] = problem
    return users


def acl_problems(rules: list[str], needed_keys: set[str], commands: set[str]) -> list[str]:
    """What a user's ACL rules allow beyond reading `needed_keys` with
    `commands` (plus the connection commands), or what it lacks of them."""
    problems, patterns, granted = [], set(), set()
    if "on" not in rules:
        problems.append("is not `on`")
    if "nopass" in rules or not any(r[:1] in (">", "#") for r in rules):
        problems.append("has no password (>…)")
    for r in rules:
        if r in ("on", "off", "resetkeys", "resetchannels", "resetpass", "nopass") or r[:1] in (">", "<", "#"):
            continue
        m = re.fullmatch(r"(%(R|W|RW)~|~)(.+)", r)
        if r == "allkeys" or m:
            pattern = "*" if r == "allkeys" else m.group(3)
            if r == "allkeys" or m.group(2) != "R":
                problems.append(f"{r}: may write keys (the exporter only reads: %R~)")
            patterns.add(pattern)
        elif r == "allchannels" or r.startswith("&"):
            problems.append(f"{r}: may use a Pub/Sub channel (the exporter needs none: resetchannels only)")
        elif r in ("allcommands", "+@all") or r.startswith("+@"):
            problems.append(f"{r}: grants a whole category of commands; grant them one by one")
        elif r in ("nocommands", "-@all"):
            granted = set()
        elif r.startswith("+"):
            granted.add(r[1:].lower())
        elif r.startswith("-"):
            granted.discard(r[1:].lower())
        else:
            problems.append(f"{r}: a rule this checker does not know")
    for cmd in sorted(granted - commands - CONNECTION_COMMANDS):
        problems.append(f"+{cmd}: more than it needs (it reads with {', '.join(sorted(commands))} only)")
    for cmd in sorted(commands - granted):
        problems.append(f"cannot run {cmd}, which it needs")
    for pattern in sorted(needed_keys - patterns):
        problems.append(f"cannot read {pattern}, which it reads")
    for pattern in sorted(patterns - needed_keys):
        problems.append(f"may read {pattern}, which it does not need")
    return problems


@rule("exporter-acl")
def exporter_acl(ctx: Context, c: Check) -> None:
    """The exporter's Valkey user (written by Valkey's init container, as
    `printf 'user exporter ...'`) can read what the exporter reads, the
    snapshot (RATES_KEY), rates:seq, oneframe:calls:* and refresher:last-run,
    with GET and HGETALL, and the node's replication with INFO, and nothing more: read-only key patterns, exactly
    those, no channel, no other command than the connection's. Where the
    exporter runs, Valkey's init container gets the user's password (so the
    line is written), and the example Secret's URL the exporter reads logs in
    as that user."""
    refresher_image = ctx.image_built_from("refresher")
    checked = set()
    for s in deployable(ctx.sets):
        examples = example_secrets(ctx.sets, s)
        exporters = exporter_containers(s, refresher_image)
        workloads = [o for o in s.objects if pod_spec(o) is not None]
        for valkey in workloads:
            for _, cont in containers_of(pod_spec(valkey) or {}):
                users = valkey_acl_users(s, valkey, cont)
                if EXPORTER_USER not in users:
                    continue
                where = f"{valkey.ref()}: container {cont.get('name')!r}, ACL user {EXPORTER_USER}"
                user = users[EXPORTER_USER]
                if isinstance(user, str):
                    c.fail(f"{where}: {user}")
                    continue
                rules, unset = user
                key = next((env_value(s, o, e, "RATES_KEY") for o, e in exporters if env_value(s, o, e, "RATES_KEY")), None)
                key = key or env_value(s, valkey, cont, "RATES_KEY") or REFRESHER_DEFAULTS["RATES_KEY"]
                for problem in acl_problems(rules, {str(key), *EXPORTER_KEY_PATTERNS}, EXPORTER_COMMANDS):
                    c.fail(f"{where}: {problem}")
                checked.add(valkey.identity())
                if exporters and unset:
                    c.fail(
                        f"[{s.label}] {where}: {', '.join(unset)} not set, so the user is never written and the exporter "
                        f"cannot log in (components/monitoring sets it)"
                    )
        if exporters and not any(EXPORTER_USER in valkey_acl_users(s, v, cont) for v in workloads for _, cont in containers_of(pod_spec(v) or {})):
            c.fail(f"[{s.label}] the exporter runs, but no Valkey init container writes an ACL user {EXPORTER_USER}")
        for o, cont in exporters:
            for e in cont.get("env") or []:
                ref = get(e, "valueFrom", "secretKeyRef")
                if e.get("name") != "VALKEY_URL" or not ref:
                    continue
                example = next((x for x in examples if x.name == ref.get("name")), None)
                url = str(get(example.doc, "stringData", ref.get("key"), default="")) if example else ""
                m = re.fullmatch(r"rediss?://([^:@/]*)(?::[^@/]*)?@.*", url)
                if url and (not m or m.group(1) != EXPORTER_USER):
                    c.fail(f"{example.ref()}: {ref.get('key')} (the exporter's VALKEY_URL) must log in as {EXPORTER_USER}: rediss://{EXPORTER_USER}:<password>@…")
    c.summary = (
        f"ACL user {EXPORTER_USER} of {len(checked)} Valkey(s) reads the rates key, {', '.join(EXPORTER_KEY_PATTERNS)} "
        f"with {', '.join(sorted(EXPORTER_COMMANDS))}, and nothing more"
    )
