"""How the checker reads a Valkey pod: which containers run a data node
(valkey-server) or a Sentinel (valkey-server --sentinel, valkey-sentinel),
and the configuration each runs with: the lines the pod's init containers
write into its config file, then its `--directive value` arguments.

An init container writes a config file with a group of printf statements
redirected to it, as base/valkey.yaml and components/valkey-single do:

    {
      printf '%s\\n' 'port 0' 'tls-port 6379'
      printf 'requirepass %s\\n' "$VALKEY_PASSWORD"
      if ...; then printf 'replicaof %s 6379\\n' "$primary"; fi
    } > /etc/valkey/valkey.conf

Every printf of the group counts (a conditional one too). The variables it
prints are resolved as the container sets them: a literal, a ConfigMap key,
`<secret:NAME/KEY>` for a Secret's key, `<field:PATH>` for the pod's own
fields (metadata.name), a shell variable assigned once in the script from
such values, `<$name>` for any other shell variable, and `<unset>` for a
variable the container does not set (recorded with the line)."""

from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass, field
from functools import cached_property

from .model import Obj, ObjectSet, get, pod_spec
from .workloads import UNRESOLVED, configmap_value, container_script, env_value

# The programs that serve Valkey (the image's valkey-server; redis-server alike),
# and those that start a Sentinel by their name alone.
VALKEY_SERVERS = {"valkey-server", "redis-server"}
SENTINEL_PROGRAMS = {"valkey-sentinel", "redis-sentinel"}
SHELLS = {"sh", "bash", "ash", "dash"}
UNSET = "<unset>"
POD_NAME_FIELD = "<field:metadata.name>"
# Sentinel's `sentinel OPTION` lines that are about the Sentinel itself; all
# others (monitor, down-after-milliseconds, auth-pass, known-replica, ...)
# name a monitored primary first.
SENTINEL_GLOBAL = {
    "announce-ip",
    "announce-port",
    "resolve-hostnames",
    "announce-hostnames",
    "sentinel-user",
    "sentinel-pass",
    "myid",
    "deny-scripts-reconfig",
    "current-epoch",
}


# -- reading a shell script -----------------------------------------------------


@dataclass
class Word:
    """A shell word as segments of (text, expands): single-quoted text does
    not expand, double-quoted and bare text does."""

    parts: list[tuple[str, bool]] = field(default_factory=list)

    def literal(self) -> str:
        return "".join(text for text, _ in self.parts)


def shell_words(line: str) -> tuple[list[Word], str]:
    """The words of one shell statement up to a `;`, `&`, `|`, `>` or `#`
    (outside quotes), and what follows it."""
    words, word, i, n = [], None, 0, len(line)

    def add(text, expands):
        nonlocal word
        if word is None:
            word = Word()
        word.parts.append((text, expands))

    while i < n:
        ch = line[i]
        if ch in " \t":
            if word is not None:
                words.append(word)
                word = None
            i += 1
        elif ch == "'":
            end = line.find("'", i + 1)
            end = n if end < 0 else end
            add(line[i + 1 : end], False)
            i = end + 1
        elif ch == '"':
            j, text = i + 1, ""
            while j < n and line[j] != '"':
                if line[j] == "\\" and j + 1 < n and line[j + 1] in '"\\$`':
                    text += line[j + 1]
                    j += 2
                else:
                    text += line[j]
                    j += 1
            add(text, True)
            i = j + 1
        elif ch == "\\" and i + 1 < n:
            add(line[i + 1], False)
            i += 2
        elif ch in ";&|>" or (ch == "#" and word is None):
            break
        else:
            j = i
            while j < n and line[j] not in " \t'\"\\;&|>" and not (line[j] == "#" and j == i and word is None):
                j += 1
            add(line[i:j], True)
            i = j
    if word is not None:
        words.append(word)
    return words, line[i:]


@functools.cache  # the same scripts are read by several rules
def statements(line: str) -> tuple[str, ...]:
    """The statements of a line: split at `;`, `&&` and `||` outside quotes,
    without a leading `then`, `else`, `do` or `if`."""
    out, start, quote, i = [], 0, "", 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
        elif ch == ";" or line.startswith("&&", i) or line.startswith("||", i):
            out.append(line[start:i])
            i += 1 if ch == ";" else 2
            start = i
            continue
        i += 1
    out.append(line[start:])
    cleaned = []
    for statement in out:
        statement = statement.strip()
        while True:
            m = re.match(r"(then|else|do|if|!)\s+", statement)
            if not m:
                break
            statement = statement[m.end() :]
        if statement:
            cleaned.append(statement)
    return tuple(cleaned)


@functools.cache
def logical_lines(script: str) -> tuple[str, ...]:
    """The script's lines, a line ending in a backslash joined with the next."""
    out, pending = [], ""
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.endswith("\\") and not stripped.startswith("#"):
            pending += stripped[:-1] + " "
            continue
        out.append(pending + stripped)
        pending = ""
    if pending:
        out.append(pending)
    return tuple(out)


VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


class Resolver:
    """The values a container's script prints: its environment, and the
    shell variables its script assigns once from such values."""

    def __init__(self, s: ObjectSet, obj: Obj, container: dict, script: str):
        self.s, self.obj, self.container = s, obj, container
        self.env = {e.get("name"): e for e in container.get("env") or []}
        # Each shell variable the script assigns: the words it assigns, or
        # None for a value this reader does not follow (a loop's, read's).
        assignments: dict[str, list[list[Word] | None]] = {}
        for line in logical_lines(script):
            for statement in statements(line):
                m = re.match(r"(?:for|read)\s+([A-Za-z_]\w*)", statement)
                if m:
                    assignments.setdefault(m.group(1), []).append(None)
                    continue
                words, _ = shell_words(statement)
                first = words[0].parts if words else []
                m = re.match(r"([A-Za-z_]\w*)=", first[0][0]) if first and first[0][1] else None
                if m:
                    value = Word([(first[0][0][m.end() :], True), *first[1:]])
                    assignments.setdefault(m.group(1), []).append([value, *words[1:]])
        self.assignments = assignments

    def value(self, name: str, unset: list[str], depth: int = 0) -> str:
        e = self.env.get(name)
        if e is not None:
            if "value" in e:
                return str(e["value"])
            ref = get(e, "valueFrom", "secretKeyRef")
            if ref:
                return f"<secret:{ref.get('name')}/{ref.get('key')}>"
            ref = get(e, "valueFrom", "configMapKeyRef")
            if ref:
                return configmap_value(self.s, self.obj.namespace, ref.get("name"), ref.get("key"), f"<configmap:{ref.get('name')}/{ref.get('key')}>")
            ref = get(e, "valueFrom", "fieldRef", "fieldPath")
            if ref:
                return f"<field:{ref}>"
            return f"<${name}>"
        assigned = self.assignments.get(name)
        if assigned is not None:
            if len(assigned) == 1 and assigned[0] is not None and len(assigned[0]) == 1 and depth < 5:
                text = self.expand(assigned[0][0], unset, depth + 1)
                if text is not None:
                    return text
            return f"<${name}>"
        found = env_value(self.s, self.obj, self.container, name)  # envFrom
        if found is UNRESOLVED:
            return f"<${name}>"
        if found is not None:
            return found
        unset.append(name)
        return UNSET

    def expand(self, word: Word, unset: list[str], depth: int = 0) -> str | None:
        """A word with its variables' values; None when it uses an expansion
        this reader does not follow (${X%...}, $(...), $((...)))."""
        out = ""
        for text, expands in word.parts:
            if not expands:
                out += text
                continue
            if re.search(r"\$\(|\$\{\w*[^\w}]|`", text):
                return None
            out += VAR.sub(lambda m: self.value(m.group(1) or m.group(2), unset, depth), text)
        return out


def printf(fmt: str, args: list[str]) -> str:
    """What printf writes: %s and %d take the next argument (or nothing), %%
    is %, backslash escapes are read; the format repeats while arguments
    remain."""
    out, i = "", 0
    while True:
        used, j = 0, 0
        while j < len(fmt):
            ch = fmt[j]
            if ch == "%" and j + 1 < len(fmt):
                spec = fmt[j + 1]
                if spec == "%":
                    out += "%"
                else:
                    out += args[i] if i < len(args) else ""
                    i += 1
                    used += 1
                j += 2
            elif ch == "\\" and j + 1 < len(fmt):
                out += {"n": "\n", "t": "\t", "\\": "\\", "r": "\r"}.get(fmt[j + 1], fmt[j + 1])
                j += 2
            else:
                out += ch
                j += 1
        if i >= len(args) or not used:
            return out


@dataclass(frozen=True)
class Line:
    text: str
    unset: tuple[str, ...] = ()  # variables the printf that wrote it prints and the container does not set


def written_files(s: ObjectSet, obj: Obj, container: dict) -> tuple[dict[str, list[Line]], str]:
    """The files a container's script writes with printf, each as its lines:
    a `{ ... } > FILE` group of printf statements, or one printf
    redirected to a file; and a problem, when one cannot be read."""
    script = container_script(container)
    resolver = Resolver(s, obj, container, script)
    files: dict[str, list[Line]] = {}
    group: list[Line] | None = None
    problem = ""
    for line in logical_lines(script):
        if group is None and line == "{":
            group = []
            continue
        m = re.fullmatch(r"\}\s*>>?\s*(\S+)", line)
        if group is not None and m:
            files.setdefault(m.group(1), []).extend(group)
            group = None
            continue
        for statement in statements(line):
            if not re.match(r"printf\s", statement):
                continue
            words, rest = shell_words(statement)
            target = re.fullmatch(r">>?\s*(\S+)\s*", rest)
            if group is None and target is None:
                continue
            unset: list[str] = []
            texts = [resolver.expand(w, unset) for w in words[1:]]
            if not texts or any(t is None for t in texts):
                problem = f"cannot read the printf statement {statement[:60]!r}"
                continue
            out = printf(texts[0], texts[1:])
            lines = [Line(text, tuple(unset)) for text in out.split("\n")[:-1] if text.strip()]
            if target is not None and group is None:
                files.setdefault(target.group(1).strip("'\""), []).extend(lines)
            elif group is not None:
                group.extend(lines)
    return files, problem


# -- the servers of a pod -----------------------------------------------------------


def server_words(container: dict) -> list[str] | None:
    """The words that start Valkey in a container, from the program on: its
    command and args, or a line of its `sh -c` script."""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    programs = VALKEY_SERVERS | SENTINEL_PROGRAMS
    start = next((i for i, w in enumerate(words) if posixpath.basename(w) in programs), None)
    if start is not None:
        return words[start:]
    if len(words) >= 3 and posixpath.basename(words[0]) in SHELLS and words[1] == "-c":
        for line in logical_lines(words[2]):
            parts, _ = shell_words(line)
            texts = [p.literal() for p in parts]
            if texts[:1] == ["exec"]:
                texts = texts[1:]
            if texts and posixpath.basename(texts[0]) in programs:
                return texts
    return None


def config_directives(lines: list[str]) -> dict[str, str]:
    """Valkey config lines as {directive (lower case): value, quotes removed};
    a later line wins, as in Valkey. Sentinel's `sentinel OPTION ...` lines
    are keyed `sentinel option`, users are left to acl_users()."""
    out = {}
    for line in lines:
        name, _, value = line.strip().partition(" ")
        if not name or name.startswith("#"):
            continue
        name, value = name.lower(), value.strip()
        if name == "sentinel":
            option, _, value = value.partition(" ")
            name, value = f"sentinel {option.lower()}", value.strip()
        elif name == "user":
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[name] = value
    return out


@dataclass
class ValkeyServer:
    """A Valkey of the manifests: the workload, its container, whether it
    is a Sentinel, and the config lines it runs with (None, with `problem`,
    when the manifests do not show them)."""

    obj: Obj
    container: dict
    sentinel: bool
    lines: list[Line] | None
    problem: str = ""
    writers: list[dict] = field(default_factory=list)  # the init containers that write its config

    @cached_property
    def directives(self) -> dict[str, str] | None:
        return None if self.lines is None else config_directives([line.text for line in self.lines])

    @property
    def kind(self) -> str:
        return "Sentinel" if self.sentinel else "Valkey"

    def where(self) -> str:
        return f"{self.obj.ref()}: container {self.container.get('name')!r}"

    def tls_port(self) -> str | None:
        port = (self.directives or {}).get("tls-port", "0")
        return None if port in ("", "0") else port

    def sentinel_lines(self, option: str) -> list[list[str]]:
        """The arguments of every `sentinel OPTION ...` line."""
        out = []
        for line in self.lines or []:
            words = line.text.split()
            if len(words) >= 2 and words[0].lower() == "sentinel" and words[1].lower() == option:
                out.append(words[2:])
        return out


def valkey_servers(s: ObjectSet, objects: list[Obj] | None = None) -> list[ValkeyServer]:
    """Every container of the set (or of `objects`) that runs Valkey, with the
    lines of the config files it is started with, as its pod's init
    containers write them, then its `--directive value` arguments, which
    Valkey applies after the files."""
    out = []
    for o in s.objects if objects is None else objects:
        spec = pod_spec(o) or {}
        for cont in spec.get("containers") or []:
            words = server_words(cont)
            if words is None:
                continue
            sentinel = posixpath.basename(words[0]) in SENTINEL_PROGRAMS or "--sentinel" in words
            rest = [w for w in words[1:] if w != "--sentinel"]
            paths = []
            while rest and not rest[0].startswith("--"):
                paths.append(rest.pop(0))
            lines: list[Line] = []
            problem, writers = "", []
            for path in paths:
                found = False
                for init in spec.get("initContainers") or []:
                    files, trouble = written_files(s, o, init)
                    if path in files:
                        found = True
                        writers.append(init)
                        lines += files[path]
                        if trouble:
                            problem = f"init container {init.get('name')!r}: {trouble}"
                if not found:
                    problem = (
                        f"its config file {path} is written by no init container; this checker reads the config an init "
                        f"container writes with printf statements in a `{{ ... }} > {path}` group"
                    )
            while rest:
                name = rest.pop(0)[2:]
                value = []
                while rest and not rest[0].startswith("--"):
                    value.append(rest.pop(0))
                lines.append(Line(f"{name} {' '.join(value)}"))
            out.append(ValkeyServer(o, cont, sentinel, None if problem else lines, problem, writers))
    return out


def acl_users(server: ValkeyServer) -> dict[str, Line]:
    """The ACL users a data node's config defines (`user NAME RULES...`),
    by name; `requirepass` makes `default` one, as Valkey does."""
    users = {}
    for line in server.lines or []:
        words = line.text.split()
        if len(words) >= 2 and words[0].lower() == "user":
            users[words[1]] = line
        elif len(words) == 2 and words[0].lower() == "requirepass":
            users.setdefault("default", Line(f"user default on >{words[1]} ~* &* +@all", line.unset))
    return users


def pod_names(obj: Obj) -> list[str]:
    """The names of the pods a StatefulSet makes (NAME-0 ... NAME-(n-1))."""
    replicas = get(obj.doc, "spec", "replicas", default=1)
    return [f"{obj.name}-{i}" for i in range(replicas if isinstance(replicas, int) else 0)] if obj.kind == "StatefulSet" else []
