"""The command line: load the context, run every rule of RULES, print one
line per rule (its failures under it) and a last line; exit 0 only when
every rule passes, 1 otherwise (also when nothing could be loaded)."""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

from .context import load_context
from .model import Check, LoadError
from .rules import RULES


def run(root: Path, use_kubectl: bool) -> int:
    try:
        ctx = load_context(root, use_kubectl)
    except LoadError as e:
        print(f"FAIL load: {e}")
        print("manifests: could not be loaded")
        return 1

    checks = []
    for rule in RULES:
        check = Check(rule.rule_name)
        rule(ctx, check)
        checks.append(check)
    for check in checks:
        if check.failures:
            print(f"FAIL {check.name}: {len(check.failures)} problem(s)")
            for f in check.failures:
                print(f"  - {f}")
        else:
            print(f"ok   {check.name}: {check.summary}")

    distinct = {json.dumps(o.doc, sort_keys=True) for s in ctx.every_set for o in s.objects}
    failed = [c.name for c in checks if c.failures]
    if failed:
        print(f"manifests: {len(distinct)} objects, {len(failed)} check(s) failed: {', '.join(failed)}")
        return 1
    print(f"manifests: {len(distinct)} objects, all checks passed")
    return 0


def list_rules() -> int:
    """Prints every rule's name and documentation, in the order they run."""
    for i, rule in enumerate(RULES):
        if i:
            print()
        print(rule.rule_name)
        for line in inspect.getdoc(rule).splitlines():
            print(f"    {line}" if line else "")
    return 0


def main(argv: list[str] | None = None, description: str = "", default_root: Path | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--root",
        type=Path,
        default=default_root,
        help="repository root holding manifests/ and spin.toml (default: this checkout)",
    )
    parser.add_argument("--no-kubectl", action="store_true", help="do not render with kubectl kustomize")
    parser.add_argument("--list-rules", action="store_true", help="print each rule's name and what it checks, then exit")
    args = parser.parse_args(argv)
    if args.list_rules:
        return list_rules()
    return run(args.root.resolve(), use_kubectl=not args.no_kubectl)
