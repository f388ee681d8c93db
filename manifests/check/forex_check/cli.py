"""The command line: load the context, run every rule of RULES, report, and
exit 0 only when every rule passes, 1 otherwise (also when nothing could be
loaded).

Two reports. `--format text` (the default): one line per rule (its failures
under it) and a last line. `--format json`: JSON Lines for CI systems, one
object per failure with the keys rule, file, object and message, and nothing
else; a clean tree prints nothing."""

from __future__ import annotations

import argparse
import inspect
import json
import os
from pathlib import Path

from .context import Context, load_context
from .model import Check, Finding, LoadError, Obj
from .rules import RULES

# Where full upstream CRDs may be found (crd-schema validates the kinds whose
# vendored CRD is reduced against them too): --upstream-crds, else this
# environment variable, else DEFAULT_UPSTREAM_CRDS beside the checkout (the
# team's shared folder next to the repository root) when it exists.
UPSTREAM_CRDS_ENV = "FOREX_UPSTREAM_CRDS"
DEFAULT_UPSTREAM_CRDS = Path("../shared/k8s/crds")


def run_rules(ctx: Context) -> list[Check]:
    checks = []
    for rule in RULES:
        check = Check(rule.rule_name)
        rule(ctx, check)
        checks.append(check)
    return checks


def report_text(ctx: Context, checks: list[Check]) -> None:
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
    else:
        print(f"manifests: {len(distinct)} objects, all checks passed")


def quoted_object(message: str, refs: dict[str, Obj]) -> Obj | None:
    """The object whose ref() comes first in a message: what a finding
    recorded without its object is about (messages start with it)."""
    found = [(i, -len(ref), obj) for ref, obj in refs.items() if (i := message.find(ref)) >= 0]
    return min(found, key=lambda hit: hit[:2])[2] if found else None


def finding_json(rule: str, finding: Finding, refs: dict[str, Obj]) -> str:
    obj = finding.obj or quoted_object(finding.message, refs)
    file = finding.file or (obj.file if obj else None)
    return json.dumps({"rule": rule, "file": file, "object": obj.key() if obj else None, "message": finding.message})


def report_json(ctx: Context, checks: list[Check]) -> None:
    refs = {o.ref(): o for s in ctx.every_set for o in s.objects}
    for check in checks:
        for finding in check.failures:
            print(finding_json(check.name, finding, refs))


def run(root: Path, use_kubectl: bool, output: str = "text", upstream_crds: Path | None = None) -> int:
    try:
        ctx = load_context(root, use_kubectl, upstream_crds)
    except LoadError as e:
        if output == "json":
            print(json.dumps({"rule": "load", "file": None, "object": None, "message": str(e)}))
        else:
            print(f"FAIL load: {e}")
            print("manifests: could not be loaded")
        return 1

    checks = run_rules(ctx)
    (report_json if output == "json" else report_text)(ctx, checks)
    return 1 if any(c.failures for c in checks) else 0


def list_rules() -> int:
    """Prints every rule's name and documentation, in the order they run."""
    for i, rule in enumerate(RULES):
        if i:
            print()
        print(rule.rule_name)
        for line in inspect.getdoc(rule).splitlines():
            print(f"    {line}" if line else "")
    return 0


def default_upstream_crds(root: Path) -> Path | None:
    if os.environ.get(UPSTREAM_CRDS_ENV):
        return Path(os.environ[UPSTREAM_CRDS_ENV])
    beside = (root / DEFAULT_UPSTREAM_CRDS).resolve()
    return beside if beside.is_dir() else None


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
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: a line per rule and a last line (default); json: one JSON object per failure "
        "(rule, file, object, message), one a line, nothing for a clean tree",
    )
    parser.add_argument(
        "--upstream-crds",
        metavar="DIR",
        help=f"full upstream CRDs to validate the kinds of reduced vendored CRDs against too "
        f"(default: ${UPSTREAM_CRDS_ENV}, else {DEFAULT_UPSTREAM_CRDS} from the repository root when it "
        f"exists; '' for none)",
    )
    args = parser.parse_args(argv)
    if args.list_rules:
        return list_rules()
    if args.upstream_crds is None:
        upstream = default_upstream_crds(args.root.resolve())
    else:
        upstream = Path(args.upstream_crds) if args.upstream_crds else None
    return run(args.root.resolve(), use_kubectl=not args.no_kubectl, output=args.format, upstream_crds=upstream)
