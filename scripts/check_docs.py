#!/usr/bin/env python3
"""Checks that the project's Markdown links lead somewhere.

Every Markdown file of the repository (what `git ls-files` lists, plus new
files git does not ignore) is read, and each relative link in it must
resolve, as GitHub renders it:

- a path (relative to the file, or to the repository root when it starts
  with `/`) must name a file or directory of the repository (not one git
  ignores, not outside the repository);
- an `#anchor`, alone or after a path to a Markdown file (or a directory,
  meaning its README.md), must be a heading of that file under GitHub's slug
  rules (lowercase; punctuation dropped except `-` and `_`; each space a
  `-`; repeated headings get `-1`, `-2`, ...) or an explicit
  `<a id="...">` / `<a name="...">`. Anchors into other kinds of files
  (e.g. `#L10` of source code) are not checked.

Links inside code blocks and code spans are not links. External http(s)
links are never fetched; `--verbose` lists them.

`--max-lines N` also fails on any file of the repository longer than N
lines, except the generated or vendored ones of LONG_FILES_ALLOWED.

Exit 0 when all is well, 1 with one line per problem
(`file:line: link: why`), 2 on a usage error.

    python3 scripts/check_docs.py [--verbose] [--max-lines N] [--root DIR]
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

# Files that may be longer than --max-lines: generated or vendored, not
# written by hand (paths from the repository root; `*` stays within a
# directory, `**` crosses them).
LONG_FILES_ALLOWED = (
    "Cargo.lock",  # cargo writes it
    "manifests/crds/**",  # upstream CRDs, vendored for the offline checker
    "manifests/components/monitoring/dashboards/*.json",  # Grafana's export format
    "shared/openapi.json",  # one OpenAPI document is what clients' tools read
)


# --- Listing the repository -------------------------------------------------


def repository_files(root: Path) -> list[str]:
    """Tracked files and new ones git does not ignore, that exist on disk."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    names = sorted({n for n in out.decode("utf-8").split("\0") if n})
    return [n for n in names if (root / n).is_file()]


def directories_of(files: list[str]) -> set[str]:
    dirs = {""}
    for f in files:
        parent = PurePosixPath(f).parent
        while str(parent) != ".":
            dirs.add(str(parent))
            parent = parent.parent
    return dirs


# --- Reading Markdown ---------------------------------------------------------

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")  # any indent: fences inside list items too
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
EXPLICIT_ANCHOR = re.compile(
    r"<(?:a\b[^>]*?\s(?:id|name)|[a-zA-Z][a-zA-Z0-9]*\b[^>]*?\sid)\s*=\s*[\"']([^\"']+)[\"']",
    re.I,
)
# [text](target "title") and ![alt](target): text may hold one level of brackets.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"
    r"\(\s*(<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?\s*\)"
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>\n]*>|\S+)", re.M)
AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]*)>", re.I)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\s(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)


def blank_code_blocks(text: str) -> str:
    """`text` with the lines of fenced code blocks emptied (line numbers kept)."""
    lines = text.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                lines[i] = ""
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
            lines[i] = ""
    return "\n".join(lines)


def blank_code_spans(text: str) -> str:
    """`text` with each code span replaced by spaces of its length."""

    def blank(m: re.Match[str]) -> str:
        if "\n\n" in m.group(0):  # a span never crosses a paragraph
            return m.group(0)
        return re.sub(r"[^\n]", " ", m.group(0))

    return CODE_SPAN.sub(blank, text)


def heading_text(raw: str) -> str:
    """What GitHub renders of a heading's Markdown: the text without markup."""
    parts = []
    pos = 0
    for m in CODE_SPAN.finditer(raw):
        parts.append(("md", raw[pos : m.start()]))
        parts.append(("code", m.group(2).strip() if m.group(2).strip() else m.group(2)))
        pos = m.end()
    parts.append(("md", raw[pos:]))
    out = []
    for kind, s in parts:
        if kind == "code":
            out.append(s)
            continue
        s = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", s)  # images: their alt text
        s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)  # links: their text
        s = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", s)  # reference links
        s = re.sub(r"<[^>]+>", "", s)  # inline HTML
        s = re.sub(r"(?<![\w\\])_+|_+(?!\w)", "", s)  # _emphasis_ (not snake_case)
        s = re.sub(r"\\(.)", r"\1", s)  # backslash escapes
        out.append(html.unescape(s))
    return "".join(out).strip()


def slug(text: str) -> str:
    """GitHub's slug of a heading's text (as github-slugger makes it)."""
    kept = []
    for c in text.lower():
        if c in " -_" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc":
            kept.append(c)
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown document offers: heading slugs and explicit ids."""
    found: set[str] = set()
    occurrences: dict[str, int] = {}

    def add_heading(raw: str) -> None:
        base = slug(heading_text(raw))
        result = base
        while result in occurrences:
            occurrences[base] += 1
            result = f"{base}-{occurrences[base]}"
        occurrences[result] = 0
        found.add(result)

    body = blank_code_blocks(text)
    lines = body.split("\n")
    previous = ""
    for line in lines:
        atx = ATX.match(line)
        if atx:
            add_heading(atx.group(2) or "")
            previous = ""
            continue
        setext = SETEXT.match(line)
        if (
            setext
            and previous.strip()
            and not previous.lstrip().startswith(("|", ">", "-", "*", "+", "<"))
            and not re.match(r"^ {0,3}\d+[.)]\s", previous)
        ):
            add_heading(previous.strip())
            previous = ""
            continue
        previous = line
    for m in EXPLICIT_ANCHOR.finditer(blank_code_spans(body)):
        found.add(m.group(1))
    return found


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def links(text: str) -> list[Link]:
    """Every link target of a Markdown document, with its line (1-based)."""
    body = blank_code_spans(blank_code_blocks(text))
    starts = [0]
    for i, c in enumerate(body):
        if c == "\n":
            starts.append(i + 1)

    def line_of(offset: int) -> int:
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, AUTOLINK, HTML_LINK):
        for m in pattern.finditer(body):
            target = m.group(1).strip()
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1].strip()
            found.append(Link(line_of(m.start(1)), target))
    found.sort(key=lambda link: link.line)
    return found


# --- Checking -------------------------------------------------------------------


class Repository:
    def __init__(self, root: Path):
        self.root = root
        self.files = repository_files(root)
        self.file_set = set(self.files)
        self.dirs = directories_of(self.files)
        self._anchors: dict[str, set[str]] = {}

    def read(self, name: str) -> str:
        return (self.root / name).read_text(encoding="utf-8", errors="replace")

    def anchors_of(self, name: str) -> set[str]:
        if name not in self._anchors:
            self._anchors[name] = anchors(self.read(name))
        return self._anchors[name]

    def markdown_files(self) -> list[str]:
        return [f for f in self.files if f.lower().endswith(".md")]


SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def resolve(source: str, path: str) -> str | None:
    """`path` from `source` as a repository path; None when it leaves the repository."""
    base = PurePosixPath("/") if path.startswith("/") else PurePosixPath("/", source).parent
    parts: list[str] = []
    for part in (base / path.lstrip("/")).parts[1:]:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts)


def check_link(repo: Repository, source: str, target: str) -> str | None:
    """Why `target`, linked from `source`, leads nowhere; None when it resolves."""
    path, _, anchor = target.partition("#")
    path = unquote(path.split("?", 1)[0])
    anchor = unquote(anchor)
    if path:
        resolved = resolve(source, path)
        if resolved is None:
            return "leads outside the repository"
        if resolved not in repo.file_set and resolved not in repo.dirs:
            if (repo.root / resolved).exists():
                return f"{resolved} exists but is not in the repository (ignored by git)"
            return f"no file or directory {resolved}"
        document = resolved
        if resolved in repo.dirs:
            readme = f"{resolved}/README.md" if resolved else "README.md"
            if not anchor:
                return None
            if readme not in repo.file_set:
                return f"directory {resolved or '.'} has no README.md for #{anchor}"
            document = readme
    else:
        document = source
    if not anchor or not document.lower().endswith(".md"):
        return None
    if anchor not in repo.anchors_of(document):
        where = "this file" if document == source else document
        return f"no heading or anchor #{anchor} in {where}"
    return None


def check_links(repo: Repository, verbose: bool) -> list[str]:
    problems = []
    external = 0
    for source in repo.markdown_files():
        for link in links(repo.read(source)):
            target = link.target
            if not target:
                problems.append(f"{source}:{link.line}: (empty): a link without a target")
                continue
            if SCHEME.match(target):
                if target.lower().startswith(("http://", "https://")):
                    external += 1
                    if verbose:
                        print(f"{source}:{link.line}: {target}: external, not fetched")
                continue
            why = check_link(repo, source, target)
            if why:
                problems.append(f"{source}:{link.line}: {target}: {why}")
    if verbose:
        print(f"{len(repo.markdown_files())} Markdown files, {external} external links (not fetched)")
    return problems


def allowed_long(name: str) -> bool:
    for pattern in LONG_FILES_ALLOWED:
        rx = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(rx, name):
            return True
    return False


def check_lengths(repo: Repository, max_lines: int) -> list[str]:
    problems = []
    for name in repo.files:
        if allowed_long(name):
            continue
        data = (repo.root / name).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        count = len(data.splitlines())
        if count > max_lines:
            problems.append(f"{name}:{count}: {count} lines, more than --max-lines {max_lines}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="the repository (default: the one holding this script)")
    parser.add_argument("--verbose", action="store_true", help="also list external links (never fetched)")
    parser.add_argument(
        "--max-lines",
        type=int,
        metavar="N",
        help="also fail on a file longer than N lines (generated and vendored files excepted)",
    )
    args = parser.parse_args(argv)
    if args.max_lines is not None and args.max_lines < 1:
        parser.error("--max-lines takes a positive number")
    root = args.root or Path(__file__).resolve().parent
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"check_docs: {root} is not in a git repository: {e}", file=sys.stderr)
        return 2
    repo = Repository(Path(top))
    problems = check_links(repo, args.verbose)
    if args.max_lines is not None:
        problems += check_lengths(repo, args.max_lines)
    for p in problems:
        print(p)
    if problems:
        print(f"check_docs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    if args.verbose:
        print("check_docs: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
