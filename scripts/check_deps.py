#!/usr/bin/env python3
"""Offline dependency policy check (run by `make lint` and CI).

Every dependency in Cargo.lock must come from crates.io, carry a license
from the allow-list below, and not be one of the banned crates. This is the
part of a dependency audit that works without network access; the RustSec
advisory database cannot be fetched from this environment.
"""
import json
import re
import subprocess
import sys

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
ALLOWED = {
    "MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause", "BSD-3-Clause",
    "ISC", "Zlib", "Unicode-3.0", "Unicode-DFS-2016", "Unlicense", "BSL-1.0", "CC0-1.0",
    "MPL-2.0", "MPL-2.0+",
}
# Native TLS would pull OpenSSL into images that never speak TLS.
BANNED = {"openssl", "openssl-sys", "native-tls"}


def allowed(expr: str) -> bool:
    """A small SPDX evaluator: OR of ANDs, parentheses, legacy '/' for OR."""
    expr = expr.replace("/", " OR ")
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+-]+(?: WITH [A-Za-z0-9.+-]+)?", expr)
    pos = 0

    def parse_or():
        nonlocal pos
        value = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            value = parse_and() or value
        return value

    def parse_and():
        nonlocal pos
        value = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            value = parse_atom() and value
        return value

    def parse_atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = parse_or()
            pos += 1  # ")"
            return value
        return tok in ALLOWED

    result = parse_or()
    return result and pos == len(tokens)


def main() -> int:
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
    members = set(meta["workspace_members"])
    problems = []
    deps = [p for p in meta["packages"] if p["id"] not in members]
    for p in deps:
        name = f'{p["name"]} {p["version"]}'
        if p.get("source") != CRATES_IO:
            problems.append(f"{name}: comes from {p.get('source')}, not crates.io")
        license_expr = p.get("license")
        if not license_expr:
            problems.append(f"{name}: no SPDX license in its manifest")
        elif not allowed(license_expr):
            problems.append(f"{name}: license {license_expr!r} is not on the allow-list")
        if p["name"] in BANNED:
            problems.append(f"{name}: banned crate")
    for line in problems:
        print(f"dependencies: {line}", file=sys.stderr)
    print(f"dependencies: {len(deps)} crates checked (sources, licenses, bans): "
          f"{'ok' if not problems else str(len(problems)) + ' problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
